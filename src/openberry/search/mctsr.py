"""MCTSr: Monte Carlo Tree Self-Refine (Zhang et al. 2024, arXiv 2406.07394).

Nodes are whole answers. The search starts from the model's naive answer and a dummy "I don't
know" answer; each rollout picks one answer by a UCT variant, samples one more self-evaluation
reward for it, asks the model to critique it and to rewrite it from the critique, and samples a
reward for the rewrite, which becomes a new child:

- reward: a score in [-100, 100] written after ``Score:``; the last number is used; a score at
  or above 95 becomes 50 (full-score suppression, as in the code);
- ``Q(a) = (min R_a + mean R_a) / 2`` over the node's reward samples (`q_value`);
- candidates: a node is selectable while it has fewer than ``max_children`` (3) children or
  none of its children has a Q above its own ("not fully expanded", `is_candidate`);
- ``UCT(a) = V(a) + c * sqrt(ln(N(parent) + 1) / (N(a) + eps))`` with c = 1.4, eps = 1e-5,
  N = number of reward samples; root-level answers have N(parent) = 0, so their UCT is V
  (`uct`);
- backup: ``V(a) = (Q(a) + max_child V(child)) / 2`` (`backed_up_values`), the paper's rule,
  propagated to every ancestor (the original code reached only one level);
- final answer: the answer node with the highest Q (the dummy excluded). There is no
  ground-truth early stop: MCTSr's code stopped as soon as an answer matched the reference,
  which made its reported figures an oracle pass@k.

Prompts come from a profile (``prompts``, ``--prompts``; `openberry.formats.profiles`):
berry-tiny's short frames (``tiny``), or the paper's critique, rewrite and reward instructions
rendered through the model's chat template (``paper``). Departures: the rewrite sees the answer
and its critique (the code sent only the critique). Identical answers are separate nodes (the
code keyed nodes by answer text, which merged their histories and re-parented them). Rewards
are read by `openberry.formats.replies.read_score` (a chatty "I would rate this 85/100" too);
an unparsable reward is re-sampled up to ``reward_retries`` times, then counted as 0 and
recorded in the node's ``info["unparsed_rewards"]`` (the code retried forever).

Rollouts in flight (``in_flight`` = K > 1) depart from the paper's sequential loop as parallel
MCTS does (Chaslot et al. 2008, "Parallel Monte-Carlo Tree Search"; AlphaGo Zero's virtual
loss): a round selects K answers one after another (`select_round`), each pick counting for the
picks after it as one more reward sample of -100 on its node (`VIRTUAL_REWARD`, the virtual
loss: its Q, its N and, through V, its ancestors' values change), and as a child still to come
that may beat its node (`openberry.search.common.expandable`). An answer is picked twice in a
round only while it stays the best candidate with its losses. The K extra reward samples and the
K critiques go out as one request each (in one backend call, as they share their sampling
settings), the K rewrites as one and the K rewards of the rewrites as one; the losses are then
dropped and the real rewards counted in pick order. The last round takes the rollouts left, so
``rollouts`` is the number of new answers either way; in_flight=1 is the sequential loop.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from openberry.formats.profiles import TINY, PromptProfile
from openberry.formats.replies import read_score
from openberry.models.base import SamplingParams
from openberry.records import Problem
from openberry.search.common import (
    PROMPTS_METADATA,
    MutableNode,
    Step,
    TreeBuilder,
    expandable,
    generate_solutions,
    picks_in_flight,
    reply_params,
    rewrite_children,
)
from openberry.search.engine import Generate, SearchError, SearchGen
from openberry.search.scorers import ScorerConfig, suppress_full_score

__all__ = [
    "DUMMY_ANSWERS",
    "VIRTUAL_REWARD",
    "MCTSrConfig",
    "MCTSrState",
    "backed_up_values",
    "backup",
    "choose",
    "evaluate",
    "expand",
    "initial_answers",
    "is_candidate",
    "mctsr",
    "q_value",
    "select",
    "select_round",
    "uct",
]

DUMMY_ANSWERS: tuple[str, ...] = (
    "I Don't Know",
    "I can't understand this question.",
    "I can't help with this question.",
    "I don't know how to solve this question.",
    "I don't know the answer to this question.",
    "I don't know the answer to this question, sorry.",
)
"""The "I don't know" answers one of which starts the search beside the naive answer."""

VIRTUAL_REWARD = -100.0
"""The virtual loss: while a rollout is in flight, its node's reward sample still to come counts
as the worst reward."""


@dataclass(frozen=True)
class MCTSrConfig:
    """MCTSr settings; defaults are the paper's and its code's."""

    rollouts: int = 8
    """Rollouts (select, critique, rewrite, evaluate); the paper reports 4 and 8, the code ran 16."""
    in_flight: int = 1
    """Rollouts run at once: each selects with a virtual loss on the nodes chosen before it in
    the round, and their critique, rewrite and reward calls go out together as one request
    each (1: the paper's sequential loop)."""
    c: float = 1.4
    """UCT exploration constant."""
    epsilon: float = 1e-5
    """Added to N(a) in the UCT denominator."""
    max_children: int = 3
    """Children after which a node counts as fully expanded (if a child beats it)."""
    temperature: float = 0.95
    """Sampling temperature of every call (answers, critiques, rewrites, rewards)."""
    max_new_tokens: int = 256
    """Most tokens of an answer."""
    critique_max_new_tokens: int = 64
    """Most tokens of a critique."""
    reward_retries: int = 3
    """Re-samples of a reward that has no number before it counts as 0."""
    backup: Literal["ancestors", "parent"] = "ancestors"
    """``ancestors``: the paper's backup through every ancestor; ``parent``: one level, as the
    code did."""
    scorer_config: ScorerConfig = field(default_factory=ScorerConfig)
    """Full-score suppression settings of the reward."""
    prompts: PromptProfile = field(default=TINY, metadata=PROMPTS_METADATA)
    """Role prompts (``--prompts``): ``tiny``, berry-tiny's frames; ``paper``, the paper's
    instructions through the chat template; or a profile file (`openberry.formats.profiles`)."""

    def __post_init__(self) -> None:
        if self.in_flight < 1:
            raise SearchError(f"in_flight must be >= 1, got {self.in_flight}")


def q_value(rewards: Sequence[float]) -> float:
    """MCTSr's Q: ``(min R + mean R) / 2``; -100 (the worst reward) for no samples."""
    if not rewards:
        return -100.0
    return 0.5 * (min(rewards) + sum(rewards) / len(rewards))


def uct(value: float, n_parent: int, n: int, c: float = 1.4, epsilon: float = 1e-5) -> float:
    """``value + c * sqrt(ln(n_parent + 1) / (n + epsilon))``."""
    return value + c * math.sqrt(math.log(n_parent + 1) / (n + epsilon))


def is_candidate(
    q: float, child_qs: Sequence[float], max_children: int, in_flight: int = 0
) -> bool:
    """Not fully expanded: fewer than `max_children` children, or no child with Q above `q`;
    picks `in_flight` count as children that may beat it (`openberry.search.common.expandable`)."""
    return expandable(q, child_qs, max_children, in_flight)


def backed_up_values(
    q: Sequence[float], children: Sequence[Sequence[int]], mode: str = "ancestors"
) -> list[float]:
    """V for every node: ``(Q + max_child V) / 2`` bottom-up (``ancestors``), or one level using
    the children's raw Q (``parent``). Leaves keep V = Q. Nodes must be in creation order."""
    v = list(q)
    for i in range(len(q) - 1, -1, -1):
        kids = children[i]
        if kids:
            best = max(v[k] if mode == "ancestors" else q[k] for k in kids)
            v[i] = 0.5 * (q[i] + best)
    return v


def _reply_params(cfg: MCTSrConfig, role: str) -> SamplingParams:
    """Settings of a critique or a reward: the profile's role settings, else
    ``critique_max_new_tokens``. In the tiny profile both are one line with the same settings,
    so the engine sends a node's reward sample and its critique, and those of every problem, in
    one backend call."""
    return reply_params(cfg.prompts.role(role), cfg.critique_max_new_tokens, cfg.temperature)


def _reward_requests(problem: Problem, texts: Sequence[str], cfg: MCTSrConfig) -> Generate:
    prompts = tuple(cfg.prompts.self_eval_prompt(problem.question, t) for t in texts)
    return Generate(prompts, _reply_params(cfg, "self_eval"))


def _parse_rewards(rows: list[list[Any]], cfg: MCTSrConfig) -> list[float | None]:
    """Each row's reward (`read_score` of the reply, after the profile's reply start), a full
    score suppressed; None where the reply states no score."""
    out = []
    for row in rows:
        s = read_score(cfg.prompts.self_eval.reply + row[0].text)
        out.append(None if s is None else suppress_full_score(s, cfg.scorer_config))
    return out


@dataclass
class MCTSrState:
    """One problem's MCTSr while it runs: what the steps below read and update."""

    problem: Problem
    tree: TreeBuilder
    """The tree so far: node 0 is the problem, every other node an answer."""
    config: MCTSrConfig
    answers: list[int] = field(default_factory=list)
    """Node ids of the answers in creation order (the dummy included)."""
    dummy: int | None = None
    """Node id of the dummy answer."""


def evaluate(state: MCTSrState, ids: Sequence[int]) -> Step[None]:
    """Evaluation: one self-evaluation reward for each node of `ids`, appended to its
    ``rewards``. An unparsable reward is re-sampled up to ``reward_retries`` times, then counts
    as 0 (``info["unparsed_rewards"]``)."""
    cfg, tree = state.config, state.tree
    todo = list(ids)
    for attempt in range(cfg.reward_retries + 1):
        if not todo:
            return
        rows = yield _reward_requests(state.problem, [tree[i].text for i in todo], cfg)
        for i, row in zip(todo, rows, strict=True):
            tree[i].generated_tokens += row[0].num_tokens
        parsed = _parse_rewards(rows, cfg)
        left = []
        for i, r in zip(todo, parsed, strict=True):
            if r is not None:
                tree[i].rewards.append(r)
            elif attempt == cfg.reward_retries:
                tree[i].rewards.append(0.0)
                tree[i].info["unparsed_rewards"] = tree[i].info.get("unparsed_rewards", 0) + 1
            else:
                left.append(i)
        todo = left


def initial_answers(state: MCTSrState, rng: random.Random) -> Step[None]:
    """Initialisation: the model's naive answer and a dummy answer drawn from `DUMMY_ANSWERS`,
    children of the problem, one reward each."""
    cfg, tree = state.config, state.tree
    sample = SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature)
    prompt = cfg.prompts.solve_prompt(state.problem.question)
    (((solution, forced),),) = yield from generate_solutions([prompt], sample, cfg.prompts)
    first = tree.add_solution(0, solution, forced)
    dummy = tree.add(0, rng.choice(DUMMY_ANSWERS), terminal=True, info={"dummy": True})
    state.dummy = dummy.id
    state.answers += [first.id, dummy.id]
    yield from evaluate(state, [first.id, dummy.id])


def backup(
    state: MCTSrState, pending: Mapping[int, int] | None = None
) -> tuple[list[float], list[float]]:
    """Backup: Q of every node from all its rewards so far (`q_value`; 0 for the problem) and
    the backed-up V (`backed_up_values`, by ``config.backup``), indexed by node id. Each pick
    in flight (`pending`, per node id) counts as one more reward of `VIRTUAL_REWARD` on its node:
    the virtual loss, which lowers its Q and, through V, its ancestors'."""
    pending = pending or {}
    q = [
        q_value(n.rewards + [VIRTUAL_REWARD] * pending.get(n.id, 0)) if n.id else 0.0
        for n in state.tree.nodes
    ]
    return q, backed_up_values(q, [n.children for n in state.tree.nodes], state.config.backup)


def select(
    state: MCTSrState,
    q: Sequence[float],
    v: Sequence[float],
    pending: Mapping[int, int] | None = None,
) -> int | None:
    """Selection: among the answers that are not fully expanded (`is_candidate`), the node id
    with the best `uct` (N = reward samples, each pick in `pending` counting one); ties go to the
    older answer. None when every answer is fully expanded."""
    cfg, tree, pending = state.config, state.tree, pending or {}

    def n(i: int) -> int:
        return len(tree[i].rewards) + pending.get(i, 0)

    cands = [
        i
        for i in state.answers
        if is_candidate(q[i], [q[k] for k in tree[i].children], cfg.max_children, pending.get(i, 0))
    ]
    if not cands:
        return None

    def score(i: int) -> float:
        parent = tree[i].parent
        return uct(v[i], n(parent) if parent else 0, n(i), cfg.c, cfg.epsilon)

    return max(cands, key=lambda i: (score(i), -i))


def select_round(state: MCTSrState, k: int) -> list[int]:
    """Selection of `k` rollouts in flight (`openberry.search.common.picks_in_flight`): each
    pick is `select` on the Q and V of `backup` with the round's earlier picks as virtual
    losses."""
    return picks_in_flight(lambda pending: select(state, *backup(state, pending), pending), k)


def expand(state: MCTSrState, picks: Sequence[int], first_rollout: int) -> Step[list[MutableNode]]:
    """Expansion by self-refine of each answer of `picks` (one rollout each): it counts a visit
    and gets one more reward sample (MCTSr's repeated sampling, sent with the critiques: one
    request of every pick's reward prompt and one of every pick's critique prompt); the
    rewrites from the critiques (one request) become new answers, in pick order, marked with
    their rollouts from `first_rollout` on, still without a reward."""
    cfg, tree, problem = state.config, state.tree, state.problem
    for i in picks:
        tree[i].visits += 1
    reward_rows, critique_rows = yield [
        _reward_requests(problem, [tree[i].text for i in picks], cfg),
        Generate(
            tuple(cfg.prompts.critique_prompt(problem.question, tree[i].text) for i in picks),
            _reply_params(cfg, "critique"),
        ),
    ]
    unparsed = []
    for i, row, r in zip(picks, reward_rows, _parse_rewards(reward_rows, cfg), strict=True):
        tree[i].generated_tokens += row[0].num_tokens
        if r is None:
            unparsed.append(i)
        else:
            tree[i].rewards.append(r)
    if unparsed:
        yield from evaluate(state, unparsed)
    sample = SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature)
    critiques = [row[0] for row in critique_rows]
    children = yield from rewrite_children(
        tree, problem, picks, critiques, sample, first_rollout, cfg.prompts
    )
    state.answers += [c.id for c in children]
    return children


def choose(state: MCTSrState) -> int:
    """The final answer: the answer node with the highest Q, never the dummy (ties go to the
    older one), among the nodes that state an answer when any does. Every answer node records
    its visits (at least its reward samples), its value (V mapped from [-100, 100] to [0, 1]),
    ``info["q"]`` and ``info["backed_up"]``."""
    q, v = backup(state)
    for i in state.answers:
        node = state.tree[i]
        node.visits = max(node.visits, len(node.rewards))
        node.value = (v[i] + 100.0) / 200.0
        node.info["q"] = q[i]
        node.info["backed_up"] = v[i]
    real = [i for i in state.answers if i != state.dummy]
    answered = [i for i in real if state.tree[i].answer is not None]
    return max(answered or real, key=lambda i: (q[i], -i))


def mctsr(problem: Problem, rng: random.Random, config: MCTSrConfig) -> SearchGen:
    """Run MCTSr on one problem (see the module docstring)."""
    cfg = config
    state = MCTSrState(problem=problem, tree=TreeBuilder(problem, "mctsr"), config=cfg)
    yield from initial_answers(state, rng)
    done = 0
    while done < cfg.rollouts:
        picks = select_round(state, min(cfg.in_flight, cfg.rollouts - done))
        if not picks:
            break
        children = yield from expand(state, picks, done + 1)
        yield from evaluate(state, [c.id for c in children])
        done += len(picks)
    best = choose(state)
    tree = state.tree
    tree.root.visits = cfg.rollouts
    return tree.freeze(
        chosen=tree.path(best),
    )

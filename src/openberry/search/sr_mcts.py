"""LLaMA-Berry's SR-MCTS with the PPRM and Enhanced Borda Count (Zhang et al. 2024,
arXiv 2410.02884 section 3).

States are whole solutions; an action rewrites one. Each rollout:

1. **selection**: over every solution that the dynamic-pruning rule keeps (fewer than
   ``max_children`` = 2 children, or no child with a higher Q), the one with the highest
   ``Q(s) + c * sqrt(ln N(parent) / N(s))``, c = 1.4 (`uct_berry`);
2. **expansion**: self-refine, a critique then a rewrite from it: one new solution;
3. **evaluation**: the pairwise preference reward model compares the new solution with every
   other one (both orders, to cancel position bias); EBC over all solutions gives the new one
   ``Q = alpha * Q_g + (1 - alpha) * Q_l``, alpha = 0.9;
4. **backpropagation** to the parent only: ``Q(parent) <- (1 - gamma) Q(parent) + gamma Q(new)``,
   gamma = 0.1 (`berry_backup`).

After the last rollout every solution is ranked by EBC. The answer is, by default, the majority
vote over the final answers of all the tree's solutions (the paper's maj@k, Appendix B), reached
through that answer's top-EBC solution; ``answer_selection="ebc"`` takes the top-EBC solution
itself (the paper's rm@k). No reference answer is involved in either. The vote is the default:
self-refinement moves the tree towards the right answer, and a vote over the refinements is robust
to a judge that ranks near-identical solutions poorly.

Preferences come from the judge model (``preference="judge"``: "Is solution A better than
solution B?" and P(Yes) from the next-token probabilities, the PPRM), or from a Bradley-Terry
model over the value head's scores (``preference="value"``; the paper writes the PPRM in this BT
form). Judge answers are cached per ordered pair, so each rollout asks only about the new
solution: 2(n - 1) comparisons for n solutions.

Prompts come from a profile (``prompts``, ``--prompts``; `openberry.formats.profiles`):
berry-tiny's frames (``tiny``), or the papers' instructions through the chat template
(``paper``: MCTSr's critique and rewrite, the paper's PPRM question). A judge whose reply does
not start with Yes or No is read from a written answer, and an unreadable verdict is a tie
(`openberry.search.scorers.judge_preferences`), counted in the solutions' ``info``.

Departures: the root is the model's first solution at the sampling temperature (the paper leaves
the temperature unreported; we use MCTSr's 0.95). N counts a node's evaluation plus the times it
was selected. The local win rate and tie-breaking follow `openberry.search.ebc`.

Rollouts in flight (``in_flight`` = K > 1) depart from the paper's sequential loop as parallel
MCTS does (Chaslot et al. 2008; AlphaGo Zero's virtual loss): a round selects K solutions one
after another (`select_round`), each pick counting for the picks after it as the backup of a
child with Q 0 (`VIRTUAL_Q`, the virtual loss: one more visit of the node and of the problem,
its Q times 1 - gamma) and as a child still to come that may beat its node, so a node with a
rewrite in flight is selectable again only below ``max_children``
(`openberry.search.common.expandable`). The K critiques go out as one request, the K rewrites as
one and every judge (or value) prompt of the new solutions as one; each new solution's Q is its
EBC score among all solutions after the round, and the K backups follow in pick order. The last
round takes the rollouts left; in_flight=1 is the sequential loop.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from openberry.formats.profiles import TINY, PromptProfile
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
    vote_key,
)
from openberry.search.ebc import LocalRule, ebc_ranking, ebc_scores, symmetrize
from openberry.search.engine import Generate, SearchError, SearchGen
from openberry.search.scorers import (
    ScorerConfig,
    forward_table,
    judge_preferences,
    value_preferences,
    value_scores,
)

__all__ = [
    "VIRTUAL_Q",
    "SRMCTSConfig",
    "SRMCTSState",
    "backup",
    "berry_backup",
    "choose_answer",
    "evaluate",
    "expand",
    "first_solution",
    "rank",
    "select",
    "select_round",
    "sr_mcts",
    "uct_berry",
    "virtual_stats",
]

VIRTUAL_Q = 0.0
"""The virtual loss: while a rollout is in flight, its node counts the visit still to come, and
the child still to come as the worst Q, backed up by `berry_backup`."""


@dataclass(frozen=True)
class SRMCTSConfig:
    """SR-MCTS settings; defaults are the paper's Table A1."""

    rollouts: int = 8
    """Rollouts N_max (paper: 8 and 16)."""
    in_flight: int = 1
    """Rollouts run at once: each selects with a virtual loss on the nodes chosen before it in
    the round, and their critique, rewrite and reward calls go out together as one request
    each (1: the paper's sequential loop)."""
    c: float = 1.4
    """UCT exploration constant."""
    gamma: float = 0.1
    """Weight of the new child's Q in its parent's update."""
    max_children: int = 2
    """Dynamic-pruning child limit."""
    alpha: float = 0.9
    """EBC weight of the global quantile score against the local win rate."""
    local_rule: LocalRule = "neighbours"
    """EBC local win rate (see openberry.search.ebc)."""
    preference: Literal["judge", "value"] = "judge"
    """Where pairwise preferences come from: the judge model (PPRM) or BT over value scores."""
    temperature: float = 0.95
    """Sampling temperature of solutions, critiques and rewrites."""
    max_new_tokens: int = 256
    """Most tokens of a solution."""
    critique_max_new_tokens: int = 64
    """Most tokens of a critique."""
    scorer_config: ScorerConfig = field(default_factory=ScorerConfig)
    """Scorer settings: the value scorer's (``preference="value"``) and the judge's prompt frame
    (``judge_frame``, for ``preference="judge"``)."""
    answer_selection: Literal["vote", "ebc"] = "vote"
    """How the answer is chosen after the last rollout: ``vote``, the most frequent final answer
    over every solution of the tree (the paper's maj@k; a tie goes to the answer with the higher
    summed EBC score), reached through its top-EBC solution; ``ebc``, the top-EBC solution (the
    paper's rm@k)."""
    prompts: PromptProfile = field(default=TINY, metadata=PROMPTS_METADATA)
    """Role prompts (``--prompts``): ``tiny``, berry-tiny's frames; ``paper``, the papers'
    instructions through the chat template; or a profile file (`openberry.formats.profiles`)."""

    def __post_init__(self) -> None:
        if self.in_flight < 1:
            raise SearchError(f"in_flight must be >= 1, got {self.in_flight}")


def uct_berry(q: float, n_parent: int, n: int, c: float = 1.4) -> float:
    """``q + c * sqrt(ln N(parent) / N(node))``; an unvisited node scores +inf."""
    if n <= 0:
        return math.inf
    return q + c * math.sqrt(math.log(max(n_parent, 1)) / n)


def berry_backup(parent_q: float, child_q: float, gamma: float = 0.1) -> float:
    """``(1 - gamma) * parent_q + gamma * child_q``."""
    return (1.0 - gamma) * parent_q + gamma * child_q


def choose_answer(rule: str, answers: list[str | None], scores: list[float]) -> int:
    """Index of the solution that answers (`SRMCTSConfig.answer_selection`): the top EBC score
    (``ebc``), or the top-scored solution of the most frequent answer (``vote``; ties between
    answers go to the higher summed score; solutions without an answer do not vote, and when
    none has one the top score wins)."""
    top = max(range(len(scores)), key=lambda k: (scores[k], -k))
    if rule == "ebc":
        return top
    keys = [vote_key(a) if a is not None else None for a in answers]
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return top
    mass: dict[str, float] = {}
    for key, score in zip(keys, scores, strict=True):
        if key is not None:
            mass[key] = mass.get(key, 0.0) + score
    winner = max(counts, key=lambda key: (counts[key], mass[key]))
    return max((k for k, key in enumerate(keys) if key == winner), key=lambda k: (scores[k], -k))


@dataclass
class SRMCTSState:
    """One problem's SR-MCTS while it runs: what the steps below read and update."""

    problem: Problem
    tree: TreeBuilder
    """The tree so far: node 0 is the problem, every other node a solution."""
    config: SRMCTSConfig
    solutions: list[int] = field(default_factory=list)
    """Node ids of the solutions in creation order: solution k is node ``solutions[k]``."""
    q: dict[int, float] = field(default_factory=dict)
    """Q of each solution, by node id."""
    judged: dict[tuple[int, int], float] = field(default_factory=dict)
    """Judge P(Yes) per ordered pair of solution indices (k, l), solution k shown first."""
    values: dict[int, float] = field(default_factory=dict)
    """Value-head score per solution index (``preference="value"``)."""


def solution_params(config: SRMCTSConfig) -> SamplingParams:
    """Sampling settings of a solution (the first one and every rewrite)."""
    return SamplingParams(max_new_tokens=config.max_new_tokens, temperature=config.temperature)


def critique_params(config: SRMCTSConfig) -> SamplingParams:
    """Sampling settings of a critique: the profile's (tiny: one line), else
    ``critique_max_new_tokens``."""
    return reply_params(config.prompts.critique, config.critique_max_new_tokens, config.temperature)


def preference_table(state: SRMCTSState) -> list[list[float]]:
    """P(solution i preferred to solution j) for every pair of the solutions so far."""
    if state.config.preference == "judge":
        return symmetrize(forward_table(len(state.solutions), state.judged))
    return value_preferences([state.values[k] for k in range(len(state.solutions))])


def solution_parents(state: SRMCTSState) -> list[int | None]:
    """The solution index of each solution's parent (None for the first solution)."""
    index = {nid: k for k, nid in enumerate(state.solutions)}
    return [index.get(state.tree[nid].parent) for nid in state.solutions]  # type: ignore[arg-type]


def evaluate(state: SRMCTSState, new: int = 1) -> Step[list[float]]:
    """Evaluation of the `new` newest solutions, in one request: the judge compares each with
    every older solution in both orders (or the value head scores each); their Qs are their EBC
    scores among all solutions, stored in ``state.q`` and returned in creation order."""
    cfg, tree = state.config, state.tree
    texts = [tree[nid].text for nid in state.solutions]
    fresh = range(len(texts) - new, len(texts))
    if cfg.preference == "judge":
        pairs = [p for k in fresh for p in [(k, j) for j in range(k)] + [(j, k) for j in range(k)]]
        got = yield from judge_preferences(
            state.problem,
            texts,
            pairs,
            frame=cfg.scorer_config.judge_frame,
            prompts=cfg.prompts,
            notes=[tree[nid].info for nid in state.solutions],
        )
        state.judged.update(got)
    else:
        scores = yield from value_scores(
            state.problem, [texts[k] for k in fresh], cfg.scorer_config, cfg.prompts
        )
        for k, v in zip(fresh, scores, strict=True):
            state.values[k] = v
            tree[state.solutions[k]].info["value_score"] = v
    ebc = ebc_scores(
        preference_table(state), solution_parents(state), alpha=cfg.alpha, rule=cfg.local_rule
    )
    for k in fresh:
        state.q[state.solutions[k]] = ebc[k]
    return [ebc[k] for k in fresh]


def first_solution(state: SRMCTSState) -> Step[MutableNode]:
    """The model's first solution, evaluated; it and the problem count one visit each."""
    prompt = state.config.prompts.solve_prompt(state.problem.question)
    params, profile = solution_params(state.config), state.config.prompts
    (((solution, forced),),) = yield from generate_solutions([prompt], params, profile)
    first = state.tree.add_solution(0, solution, forced)
    state.solutions.append(first.id)
    yield from evaluate(state)
    first.visits = 1
    state.tree.root.visits = 1
    return first


def virtual_stats(
    state: SRMCTSState, pending: Mapping[int, int]
) -> tuple[dict[int, float], list[int]]:
    """Q by node id and visits by node id as selection sees them, each pick in flight
    (`pending`, per node id) counted as `backup` of a child with `VIRTUAL_Q`: the virtual loss
    (one more visit of the node and of the problem, the node's Q moved towards 0)."""
    q, visits = dict(state.q), [n.visits for n in state.tree.nodes]
    for nid, times in pending.items():
        for _ in range(times):
            q[nid] = berry_backup(q[nid], VIRTUAL_Q, state.config.gamma)
            visits[nid] += 1
            visits[0] += 1
    return q, visits


def select(state: SRMCTSState, pending: Mapping[int, int] | None = None) -> int | None:
    """Selection: among the solutions dynamic pruning keeps (fewer than ``max_children``
    children, or none with a higher Q; picks in flight count as children that may beat it,
    `openberry.search.common.expandable`), the node id with the best `uct_berry` on the
    `virtual_stats` of `pending`; ties go to the older solution. None when pruning keeps none."""
    cfg, tree, pending = state.config, state.tree, pending or {}
    q, visits = virtual_stats(state, pending)
    cands = [
        nid
        for nid in state.solutions
        if expandable(
            q[nid], [q[c] for c in tree[nid].children], cfg.max_children, pending.get(nid, 0)
        )
    ]
    if not cands:
        return None
    return max(
        cands,
        key=lambda nid: (
            uct_berry(q[nid], visits[tree[nid].parent], visits[nid], cfg.c),  # type: ignore[index]
            -nid,
        ),
    )


def select_round(state: SRMCTSState, k: int) -> list[int]:
    """Selection of `k` rollouts in flight (`openberry.search.common.picks_in_flight`): each
    pick is `select` with the round's earlier picks as virtual losses."""
    return picks_in_flight(lambda pending: select(state, pending), k)


def expand(state: SRMCTSState, picks: Sequence[int], first_rollout: int) -> Step[list[MutableNode]]:
    """Expansion by self-refine of each solution of `picks` (one rollout each): their critiques
    in one request, then their rewrites in one, added as new solutions (one visit each) in pick
    order, marked with their rollouts from `first_rollout` on."""
    tree, problem, cfg = state.tree, state.problem, state.config
    crit = yield Generate(
        tuple(cfg.prompts.critique_prompt(problem.question, tree[i].text) for i in picks),
        critique_params(cfg),
    )
    critiques = [row[0] for row in crit]
    children = yield from rewrite_children(
        tree, problem, picks, critiques, solution_params(cfg), first_rollout, cfg.prompts
    )
    for child in children:
        child.visits = 1
        state.solutions.append(child.id)
    return children


def backup(state: SRMCTSState, selected: int, child: int) -> None:
    """Backup to the parent only: `selected` and the problem count one more visit, and
    `selected`'s Q moves towards its new `child`'s (`berry_backup`)."""
    state.tree[selected].visits += 1
    state.tree.root.visits += 1
    state.q[selected] = berry_backup(state.q[selected], state.q[child], state.config.gamma)


def rank(state: SRMCTSState) -> tuple[list[float], list[int]]:
    """Final EBC over every solution: each solution's node gets its Q clipped to [0, 1] as
    ``value``, ``info["ebc_score"]`` and ``info["rank"]``. Returns the scores and the ranking
    (solution indices, best first)."""
    cfg = state.config
    prefs = preference_table(state)
    order = ebc_ranking(prefs)
    final = ebc_scores(prefs, solution_parents(state), alpha=cfg.alpha, rule=cfg.local_rule)
    for k, nid in enumerate(state.solutions):
        node = state.tree[nid]
        node.value = min(1.0, max(0.0, state.q[nid]))
        node.info["ebc_score"] = final[k]
        node.info["rank"] = order.index(k) + 1
    return final, order


def sr_mcts(problem: Problem, rng: random.Random, config: SRMCTSConfig) -> SearchGen:
    """Run SR-MCTS on one problem (see the module docstring)."""
    cfg = config
    state = SRMCTSState(problem=problem, tree=TreeBuilder(problem, "sr-mcts"), config=cfg)
    yield from first_solution(state)
    done = 0
    while done < cfg.rollouts:
        picks = select_round(state, min(cfg.in_flight, cfg.rollouts - done))
        if not picks:
            break
        children = yield from expand(state, picks, done + 1)
        yield from evaluate(state, len(children))
        for selected, child in zip(picks, children, strict=True):
            backup(state, selected, child.id)
        done += len(picks)
    final, order = rank(state)
    tree, sols = state.tree, state.solutions
    best = sols[choose_answer(cfg.answer_selection, [tree[nid].answer for nid in sols], final)]
    return tree.freeze(
        chosen=tree.path(best),
        info={
            "ranking": [sols[k] for k in order],
        },
    )

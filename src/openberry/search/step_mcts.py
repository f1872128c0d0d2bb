"""Step-level prior + value tree search: AlphaGo Zero's PUCT search over ordinary solution steps.

AlphaGo Zero (Silver et al. 2017, "Mastering the game of Go without human knowledge", Methods,
"Search algorithm") searches with one network that gives a *prior* over moves and a *value* of a
position: select by PUCT, expand a leaf, evaluate it with the value, back the value up. rStar-Math
(Guan et al. 2025, arXiv 2501.04519, section 3.1) and RAP (Hao et al. 2023, arXiv 2305.14992,
section 3.3) run the same loop over the steps of a solution written by a language model. Here:

- **node**: one solution step, by default one line (generation stops at ``"\\n"``); with
  ``step_split`` a paragraph or a ``Step k`` section (`openberry.formats.steps`: its stop strings
  end a sampled step, its separator follows each step in the prompt); node 0 is the problem;
- **expand** (`expand`): the ``children`` next lines of a node are sampled together, in one policy
  call (``SamplingParams(n=children, stop=("\\n",))``); identical lines are merged into one child;
- **prior** (`sibling_priors`): the softmax over siblings of each line's mean token log-probability
  (its length-normalised log-probability). That equals ``exp(mean log p)`` normalised over the
  siblings: the per-token geometric-mean probability, so long and short lines compete on equal
  terms, and a line the model is sure of gets most of the mass (a softmax of *probabilities*
  would be nearly uniform). Uniform when the backend returns no log-probabilities;
- **value** (`evaluate`): the value head of `openberry.search.scorers` (the rating-token value
  ``p(<positive_rating>)`` renormalised over the two rating tokens, as `beam` uses it) rates the
  newest step in its partial chain; a node's *path value* is the ``value_aggregate`` (default
  the minimum, PRM-style) of its steps' ratings, the conclusion's own rating left out unless
  ``value_conclusion``. Each rating is first mixed with the policy's confidence in the line,
  as RAP's reward combines a self-evaluation with a likelihood (section 3.2):
  ``rating ** alpha * p ** (1 - alpha)``, ``p`` the line's per-token probability
  (`openberry.search.scorers.step_reward`; ``alpha`` 1 is the rating alone). All new children
  of an expansion are rated in one request. With
  ``step_scorer`` ``prm``/``prm-head`` a process reward model rates the newest step at its tag
  instead, and the path value is the ``prm_aggregate`` of all its steps' rewards;
- **select** (`select`): from the root, descend to the child with the best
  ``Q + c_puct * P * sqrt(N(parent)) / (1 + N(child))`` (`puct_scores`) until a node without
  children or a terminal node. With ``widen`` (progressive widening), "sample this node's lines
  again" competes with its children (`widen_score`): its prior is the policy's probability of a
  line not yet among the children (`unexplored_mass`, from their sequence log-probabilities),
  its Q the node's own; when it wins, selection stops there and the node is expanded again.
  A node whose samples were all one line otherwise keeps one child, however low its value;
- **rollout** (``rollout``, on by default): after an expansion, the best-valued new child is
  expanded in turn, down to a terminal line, so every simulation ends in an answer
  (rStar-Math's rollouts, with the value head choosing each step);
- **backup** (`backup`): every new child counts one visit with its path value as its Q; every
  node of the selected path gets one visit per new child (a rollout: its terminal's value) and
  its Q becomes the mean of all leaf values backed up through it. A simulation that selects a
  terminal node backs up its path value once more (no model call), as AlphaGo Zero does for a
  finished game;
- **simulations in flight** (`select_round`, ``in_flight``): a round selects up to
  ``in_flight`` paths, each after a *virtual loss* on the paths selected before it (their nodes
  count ``virtual_loss`` as a pending backed-up value, as parallel MCTS does, Chaslot et al.
  2008), expands all their leaves in one policy call and rates all new children in one value
  request, then backs the paths up in selection order. A leaf two selections share is expanded
  once. One problem searched alone then fills a batch of ``in_flight * children`` rows;
- **terminal**: a line that states an answer (`answer_of_text`: ``\\boxed{}``, ``####``, "the
  answer is"), a line at ``max_depth``, or an empty line (the model ended or left a blank line:
  no answer, path value 0);
- **answer** (`choose`): ``vote`` sums the path values of the terminal nodes of each answer and
  takes the winner's best-valued terminal; ``visits`` takes the most visited terminal with an
  answer. When no terminal states an answer, the best-valued leaf is finished greedily in one
  call (``finish_tokens``), its lines added as nodes.

Where we depart: AlphaGo Zero's value is learned from self-play outcomes and rStar-Math's Q from
terminal rewards of full rollouts; we use the value head directly at every new step (as RAP's
"self-evaluation" reward does), mixed with the line's own probability rather than with RAP's
answer-confidence term (which needs extra samples per step). No Dirichlet noise at the root and no temperature on visit
counts: the search is for inference, not for self-play data. One expansion adds all sampled
children at once rather than one child per simulation. Defaults and how they were chosen on the
validation split: docs/search.md.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from openberry.formats.profiles import TINY, PromptProfile
from openberry.formats.steps import StepSplit, join_steps, split_steps, step_stops
from openberry.models.base import SamplingParams
from openberry.records import Generation, Problem
from openberry.search.common import (
    PROMPTS_METADATA,
    MutableNode,
    Step,
    TreeBuilder,
    answer_of_text,
    force_step_answer,
    mean_logprob,
    softmax,
    strip_tags,
    value_vote,
)
from openberry.search.engine import Generate, SearchError, SearchGen
from openberry.search.scorers import (
    ScorerConfig,
    newest_step_rewards,
    node_steps,
    path_score,
    path_value,
    step_reward,
)

__all__ = [
    "StepMCTSConfig",
    "StepMCTSState",
    "backup",
    "choose",
    "evaluate",
    "expand",
    "finish_greedily",
    "path_value",
    "puct_scores",
    "select",
    "select_round",
    "sibling_priors",
    "simulate",
    "step_mcts",
    "step_reward",
    "unexplored_mass",
    "widen_score",
]


@dataclass(frozen=True)
class StepMCTSConfig:
    """Step-level MCTS settings; the defaults were chosen on the validation split
    (docs/search.md)."""

    simulations: int = 8
    """Simulations (each expands one node, or revisits a terminal one)."""
    children: int = 3
    """Next lines sampled per expansion, in one policy call (``n``)."""
    c_puct: float = 1.0
    """PUCT exploration constant."""
    temperature: float = 0.7
    """Sampling temperature of the lines."""
    max_step_tokens: int = 64
    """Most tokens per line."""
    max_depth: int = 12
    """Most lines per solution: a line at this depth is terminal."""
    answer_selection: Literal["vote", "visits"] = "vote"
    """``vote``: the answer whose terminal nodes have the largest summed path value, through
    its best-valued terminal; ``visits``: the most visited terminal node with an answer."""
    in_flight: int = 1
    """Simulations run at once: each selects after a virtual loss on the paths selected before
    it in the round, and their expansions and evaluations go out as one request each."""
    virtual_loss: float = 0.0
    """The value a pending simulation counts as while its round is in flight."""
    rollout: bool = True
    """After an expansion, go on expanding the best-valued new child until a terminal line (each
    step one policy call of ``children`` lines), so every simulation reaches an answer."""
    widen: bool = True
    """Progressive widening: selection may sample a node's next lines again, when the policy's
    probability of a line not yet among its children outscores every child."""
    alpha: float = 0.2
    """RAP's reward mix: a step's reward is ``rating ** alpha * p ** (1 - alpha)``, with ``p``
    the line's per-token probability ``exp(mean log p)`` (the policy's confidence); 1 is the
    rating alone, 0 the confidence alone. Path values, backups and the vote read it."""
    finish_tokens: int = 256
    """Most tokens of the greedy finish when no terminal states an answer (0: none)."""
    step_scorer: Literal["value", "prm", "prm-head"] = "value"
    """What rates a new step: ``value``, the value head in the OpenLongCoT chain; ``prm``, a
    token-probability process reward model; ``prm-head``, a reward-head one (the value role's
    model, ``--value-model``; `openberry.search.scorers`)."""
    step_split: StepSplit = "line"
    """What one step (node) is: ``line`` (stops at a newline), ``paragraph`` (at a blank
    line), ``header`` (before the next ``Step k`` header) or ``auto`` (either)."""
    scorer_config: ScorerConfig = field(default_factory=ScorerConfig)
    """How step ratings combine into a path value: ``value_aggregate`` and ``value_conclusion``
    for ``value`` (steps are always rated after positive earlier steps), ``prm_aggregate`` and
    the other ``prm_*`` settings for a PRM; the other fields (``step_split`` too: the nodes are
    the steps) are unused."""
    prompts: PromptProfile = field(default=TINY, metadata=PROMPTS_METADATA)
    """Role prompts (``--prompts``): the solve prompt of ``tiny`` (berry-tiny's
    frame) or ``paper`` (the papers' instruction through the chat template, each step written
    in the assistant's reply), or a profile file (`openberry.formats.profiles`)."""

    def __post_init__(self) -> None:
        if self.in_flight < 1:
            raise SearchError(f"in_flight must be >= 1, got {self.in_flight}")
        if self.children < 1:
            raise SearchError(f"children must be >= 1, got {self.children}")
        if not 0.0 <= self.alpha <= 1.0:
            raise SearchError(f"alpha must be in [0, 1], got {self.alpha}")


def sibling_priors(mean_logprobs: Sequence[float]) -> list[float]:
    """The softmax of the siblings' mean token log-probabilities (= ``exp(mean log p)``
    normalised); uniform when none is finite."""
    if not any(math.isfinite(x) for x in mean_logprobs):
        return [1.0 / len(mean_logprobs)] * len(mean_logprobs) if mean_logprobs else []
    return softmax([x if math.isfinite(x) else -math.inf for x in mean_logprobs])


def puct_scores(
    q: Sequence[float], priors: Sequence[float], visits: Sequence[int], n_parent: int, c_puct: float
) -> list[float]:
    """``Q + c_puct * P * sqrt(N(parent)) / (1 + N(child))`` for each child."""
    root = math.sqrt(n_parent)
    return [qi + c_puct * p * root / (1 + n) for qi, p, n in zip(q, priors, visits, strict=True)]


@dataclass
class StepMCTSState:
    """One problem's step-level MCTS while it runs: what the steps below read and update."""

    problem: Problem
    tree: TreeBuilder
    """The tree so far: node 0 is the problem, every other node one line."""
    config: StepMCTSConfig
    pending: dict[int, int] = field(default_factory=dict)
    """Virtual visits: per node, the simulations of the current round selected through it."""


def lines_of(state: StepMCTSState, node_id: int) -> list[str]:
    """The lines of the path from the root to `node_id` (the problem excluded)."""
    return [state.tree[i].text for i in state.tree.path(node_id)[1:]]


def step_prompt(state: StepMCTSState, node_id: int) -> str:
    """The policy prompt that asks for the line after `node_id`."""
    done = join_steps(lines_of(state, node_id), state.config.step_split)
    return state.config.prompts.solve_prompt(state.problem.question) + done


def effective_q(state: StepMCTSState, node: MutableNode) -> float:
    """A node's Q with the round's virtual losses: each pending simulation through the node
    counts as a backed-up ``virtual_loss``."""
    q, pending = node.value or 0.0, state.pending.get(node.id, 0)
    if not pending:
        return q
    return (q * node.visits + state.config.virtual_loss * pending) / (node.visits + pending)


def visits_of(state: StepMCTSState, node: MutableNode) -> int:
    """A node's visit count with the round's pending simulations through it."""
    return node.visits + state.pending.get(node.id, 0)


def select(state: StepMCTSState) -> list[MutableNode]:
    """Selection: the path from the root down the best `puct_scores` child (ties to the older
    child) to a node without children or a terminal node. Q and N include the virtual losses
    of the simulations already selected in this round (``state.pending``)."""
    tree, cfg = state.tree, state.config
    path = [tree.root]
    while path[-1].children and not path[-1].terminal:
        node = path[-1]
        kids = [tree[k] for k in node.children]
        scores = puct_scores(
            [effective_q(state, k) for k in kids],
            [k.prior or 0.0 for k in kids],
            [visits_of(state, k) for k in kids],
            visits_of(state, node),
            cfg.c_puct,
        )
        best = max(range(len(kids)), key=lambda i: (scores[i], -i))
        if cfg.widen and widen_score(state, node, kids) > scores[best]:
            break
        path.append(kids[best])
    return path


def widen_score(state: StepMCTSState, node: MutableNode, kids: Sequence[MutableNode]) -> float:
    """PUCT score of sampling `node`'s next lines once more (progressive widening): the node's
    own Q as the first-play value of an unseen line, the `unexplored_mass` as its prior and
    the node's expansions so far as its visits."""
    mass = unexplored_mass(kids)
    expansions = node.info.get("expansions", 1)
    return effective_q(state, node) + state.config.c_puct * mass * math.sqrt(
        visits_of(state, node)
    ) / (1 + expansions)


def select_round(state: StepMCTSState, k: int) -> list[list[MutableNode]]:
    """`k` selections, each after a virtual loss on the paths selected before it; a leaf to be
    expanded that an earlier selection of the round already holds is dropped (a terminal leaf
    may be revisited). The virtual losses are gone when this returns."""
    paths: list[list[MutableNode]] = []
    held: set[int] = set()
    for _ in range(k):
        path = select(state)
        for node in path:
            state.pending[node.id] = state.pending.get(node.id, 0) + 1
        leaf = path[-1]
        if leaf.terminal or leaf.id not in held:
            held.add(leaf.id)
            paths.append(path)
    state.pending.clear()
    return paths


def _sum_logprob(gen: Generation) -> float | None:
    return sum(gen.logprobs) if gen.logprobs else None


def unexplored_mass(kids: Sequence[MutableNode]) -> float:
    """The policy's probability of a next line other than `kids`: 1 minus their sequence
    probabilities ``exp(sum log p)`` (0 when a child has no log-probabilities)."""
    seen = [k.info.get("logprob") for k in kids]
    if any(x is None for x in seen):
        return 0.0
    return max(0.0, 1.0 - sum(math.exp(x) for x in seen))


def _or_inf(x: float | None) -> float:
    return -math.inf if x is None else x


def add_line(state: StepMCTSState, parent: int, gen: Generation, depth: int) -> MutableNode:
    """A child of `parent` for the generated line, marked terminal when it states an answer,
    is empty, or reaches ``max_depth``; a line equal to a sibling's merges into it. Tags of the
    OpenLongCoT format are removed (`strip_tags`), as the value prompts remove them: a line of
    tags alone is an empty line, so every node's text is one step of its value prompt."""
    tree, line = state.tree, strip_tags(gen.text).strip()
    for k in tree[parent].children:
        if tree[k].text == line:
            tree[k].info["samples"] += 1
            tree[k].generated_tokens += max(gen.num_tokens, 0)
            return tree[k]
    answer = answer_of_text(line) if line else None
    node = tree.add(parent, line, generation=gen, meta_action="expansion")
    node.info = {"samples": 1, "mean_logprob": mean_logprob(gen), "logprob": _sum_logprob(gen)}
    if answer is not None:
        node.meta_action, node.answer = "conclusion", answer
    node.terminal = answer is not None or not line or depth >= state.config.max_depth
    return node


def add_children(state: StepMCTSState, node: MutableNode, gens: Sequence[Generation]) -> list[int]:
    """The sampled lines `gens` as children of `node` (`add_line`), with fresh
    `sibling_priors` over all its children. Returns the ids of the new children."""
    depth = len(state.tree.path(node.id))
    before = set(node.children)
    if before:
        node.info["expansions"] = node.info.get("expansions", 1) + 1
    for gen in gens:
        add_line(state, node.id, gen, depth)
    kids = [state.tree[k] for k in node.children]
    for k, p in zip(
        kids, sibling_priors([_or_inf(k.info["mean_logprob"]) for k in kids]), strict=True
    ):
        k.prior = p
    return [k.id for k in kids if k.id not in before]


def expand(
    state: StepMCTSState, nodes: Sequence[MutableNode], params: SamplingParams
) -> Step[list[list[int]]]:
    """Expansion: ``params.n`` next lines of each of `nodes`, all in one policy call, added as
    their children (`add_children`). Returns the ids of each node's new children."""
    out = yield Generate(tuple(step_prompt(state, n.id) for n in nodes), params)
    return [add_children(state, n, gens) for n, gens in zip(nodes, out, strict=True)]


def evaluate(state: StepMCTSState, ids: Sequence[int]) -> Step[list[float]]:
    """Evaluation: the step scorer (the value head, or a PRM) rates the newest step of each
    node of `ids` in its partial solution (one request for all), ``info["step_value"]``;
    returns their path values (`path_score`), also their ``rewards``. An empty line is not
    rated: its path value is 0."""
    tree, cfg = state.tree, state.config
    rated = [i for i in ids if tree[i].text]
    steps = [node_steps(lines_of(state, i), cfg.step_split) for i in rated]
    if steps:
        ratings = yield from newest_step_rewards(
            state.problem.question, steps, cfg.step_scorer, cfg.scorer_config, cfg.prompts
        )
        for i, r in zip(rated, ratings, strict=True):
            tree[i].info["step_value"] = r
    values = []
    for i in ids:
        ratings = [
            step_reward(
                tree[k].info.get("step_value", 0.0), tree[k].info.get("mean_logprob"), cfg.alpha
            )
            for k in tree.path(i)[1:]
        ]
        conclusion = tree[i].meta_action == "conclusion"
        v = path_score(ratings, conclusion, cfg.step_scorer, cfg.scorer_config)
        v = v if tree[i].text else 0.0
        tree[i].rewards.append(v)
        values.append(v)
    return values


def backup(path: Sequence[MutableNode], values: Sequence[float]) -> None:
    """Backup: each of `values` counts one visit of every node of `path`, whose Q (``value``)
    is the mean of every leaf value backed up through it."""
    for node in path:
        total = (node.value or 0.0) * node.visits + sum(values)
        node.visits += len(values)
        node.value = total / node.visits if node.visits else None


def leaf_reward(node: MutableNode) -> float:
    """The path value a node was evaluated with (0 when it never was)."""
    return node.rewards[-1] if node.rewards else 0.0


def grow(
    state: StepMCTSState, paths: list[list[MutableNode]], active: list[int], params: SamplingParams
) -> Step[dict[int, list[float]]]:
    """Expand the last node of each path of `active` (one policy call), evaluate all new
    children (one value request) and back each child's value up from the child. With
    ``rollout``, a path moves on to its best-valued new child and grows again, all paths in
    lockstep, until that child is terminal. Returns the values to back up along each path."""
    cfg, tree = state.config, state.tree
    results: dict[int, list[float]] = {}
    while active:
        news = yield from expand(state, [paths[i][-1] for i in active], params)
        flat = [c for new in news for c in new]
        value_of = dict(zip(flat, (yield from evaluate(state, flat)), strict=True))
        going = []
        for i, new in zip(active, news, strict=True):
            results[i] = [value_of[c] for c in new]
            for c in new:
                backup([tree[c]], [value_of[c]])
            if cfg.rollout and new:
                best = tree[max(new, key=lambda c: (value_of[c], -c))]
                paths[i].append(best)
                if best.terminal:
                    results[i] = [value_of[best.id]]
                else:
                    going.append(i)
        active = going
    return results


def simulate(state: StepMCTSState, params: SamplingParams, k: int = 1) -> Step[int]:
    """One round of `k` simulations in flight (`select_round`): a terminal leaf backs up its
    path value again; the other leaves are expanded and evaluated together (`grow`); then each
    path is backed up (`backup`) in selection order. Returns the simulations run."""
    paths = select_round(state, k)
    results = {i: [leaf_reward(p[-1])] for i, p in enumerate(paths) if p[-1].terminal}
    active = [i for i, p in enumerate(paths) if not p[-1].terminal]
    results.update((yield from grow(state, paths, active, params)))
    for i, path in enumerate(paths):
        backup(path, results[i])
    return len(paths)


def finish_greedily(state: StepMCTSState) -> Step[MutableNode | None]:
    """When no terminal states an answer: the rest of the solution from the best-valued leaf,
    greedy, in one call; its lines become a chain of nodes (``info["finish"]``) up to the first
    that states an answer. Returns that node, or None."""
    tree, cfg = state.tree, state.config
    leaves = [n for n in tree.nodes if not n.children and n.text] or [tree.root]
    node = max(leaves, key=lambda n: (leaf_reward(n), -n.id))
    params = SamplingParams(max_new_tokens=cfg.finish_tokens, temperature=0.0)
    out = yield Generate((step_prompt(state, node.id),), params)
    gen = out[0][0]
    first = True
    for line in split_steps(gen.text, cfg.step_split):
        node = tree.add(node.id, line, meta_action="expansion", info={"finish": True})
        if first:
            node.prompt_tokens = max(gen.prompt_tokens, 0)
            node.generated_tokens = max(gen.num_tokens, 0)
            first = False
        node.answer = answer_of_text(line)
        if node.answer is not None:
            node.meta_action, node.terminal = "conclusion", True
            return node
    return (yield from force_step_answer(tree, node.id, step_prompt(state, node.id), cfg.prompts))


def choose(state: StepMCTSState) -> Step[MutableNode | None]:
    """The terminal that answers, by ``answer_selection`` over every terminal with an answer
    (see `StepMCTSConfig`), else the one `finish_greedily` writes (``finish_tokens`` > 0)."""
    tree = state.tree
    done = [n for n in tree.nodes if n.terminal and n.answer is not None]
    if done:
        if state.config.answer_selection == "visits":
            return max(done, key=lambda n: (n.visits, n.rewards[-1], -n.id))
        answers = [n.answer or "" for n in done]
        return done[value_vote(answers, [n.rewards[-1] for n in done])]
    if state.config.finish_tokens > 0:
        return (yield from finish_greedily(state))
    return None


def step_mcts(problem: Problem, rng: random.Random, config: StepMCTSConfig) -> SearchGen:
    """Run step-level MCTS on one problem (see the module docstring). The search draws nothing
    at random beyond the engine's seeded sampling, so `rng` is unused."""
    state = StepMCTSState(problem, TreeBuilder(problem, "step-mcts"), config)
    params = SamplingParams(
        n=config.children,
        max_new_tokens=config.max_step_tokens,
        temperature=config.temperature,
        stop=step_stops(config.step_split),
    )
    done = 0
    while done < config.simulations:
        done += yield from simulate(state, params, min(config.in_flight, config.simulations - done))
    chosen = yield from choose(state)
    if state.tree.root.value is None:
        state.tree.root.value = 0.0
    return state.tree.freeze(chosen=state.tree.path(chosen.id) if chosen is not None else ())

"""Step-level prior + value tree search: AlphaGo Zero's PUCT search over ordinary solution steps.

AlphaGo Zero (Silver et al. 2017, "Mastering the game of Go without human knowledge", Methods,
"Search algorithm") searches with one network that gives a *prior* over moves and a *value* of a
position: select by PUCT, expand a leaf, evaluate it with the value, back the value up. rStar-Math
(Guan et al. 2025, arXiv 2501.04519, section 3.1) and RAP (Hao et al. 2023, arXiv 2305.14992,
section 3.3) run the same loop over the steps of a solution written by a language model. Here:

- **node**: one solution step, i.e. one line (generation stops at ``"\\n"``); node 0 is the problem;
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
  ``value_conclusion``. All new children of an expansion are rated in one request;
- **select** (`select`): from the root, descend to the child with the best
  ``Q + c_puct * P * sqrt(N(parent)) / (1 + N(child))`` (`puct_scores`) until a node without
  children or a terminal node;
- **backup** (`backup`): every new child counts one visit with its path value as its Q; every
  node of the selected path gets one visit per new child and its Q becomes the mean of all leaf
  values backed up through it. A simulation that selects a terminal node backs up its path value
  once more (no model call), as AlphaGo Zero does for a finished game;
- **terminal**: a line that states an answer (`answer_of_text`: ``\\boxed{}``, ``####``, "the
  answer is"), a line at ``max_depth``, or an empty line (the model ended or left a blank line:
  no answer, path value 0);
- **answer** (`choose`): ``vote`` sums the path values of the terminal nodes of each answer and
  takes the winner's best-valued terminal; ``visits`` takes the most visited terminal with an
  answer. When no terminal states an answer, the best-valued leaf is finished greedily in one
  call (``finish_tokens``), its lines added as nodes.

Where we depart: AlphaGo Zero's value is learned from self-play outcomes and rStar-Math's Q from
terminal rewards of full rollouts; we use the value head directly at every new step and no
rollout (as RAP's "self-evaluation" reward does), so one simulation costs one policy call of
``children`` lines and one value request. No Dirichlet noise at the root and no temperature on
visit counts: the search is for inference, not for self-play data. One expansion adds all
sampled children at once rather than one child per simulation.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from openberry.formats.openlongcot import RATING_TOKENS
from openberry.formats.prompts import solve_prompt
from openberry.models.base import SamplingParams
from openberry.records import Generation, Problem
from openberry.search.common import (
    MutableNode,
    Step,
    TreeBuilder,
    answer_of_text,
    strip_tags,
    value_vote,
)
from openberry.search.engine import Generate, NextTokenProbs, SearchGen
from openberry.search.scorers import (
    ScorerConfig,
    rating_value,
    solution_steps,
    step_value_prompts,
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
    "sibling_priors",
    "simulate",
    "step_mcts",
]


@dataclass(frozen=True)
class StepMCTSConfig:
    """Step-level MCTS settings. The defaults are provisional (``children`` and ``temperature``
    from a first comparison on the validation split); they still have to be chosen there in
    full."""

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
    finish_tokens: int = 256
    """Most tokens of the greedy finish when no terminal states an answer (0: none)."""
    scorer_config: ScorerConfig = field(default_factory=ScorerConfig)
    """How step ratings combine into a path value: ``value_aggregate`` and ``value_conclusion``
    are read (steps are always rated after positive earlier steps); the other fields are
    unused."""


def sibling_priors(mean_logprobs: Sequence[float]) -> list[float]:
    """The softmax of the siblings' mean token log-probabilities (= ``exp(mean log p)``
    normalised); uniform when none is finite."""
    finite = [x for x in mean_logprobs if math.isfinite(x)]
    if not finite:
        return [1.0 / len(mean_logprobs)] * len(mean_logprobs) if mean_logprobs else []
    top = max(finite)
    es = [math.exp(x - top) if math.isfinite(x) else 0.0 for x in mean_logprobs]
    total = sum(es)
    return [e / total for e in es]


def puct_scores(
    q: Sequence[float], priors: Sequence[float], visits: Sequence[int], n_parent: int, c_puct: float
) -> list[float]:
    """``Q + c_puct * P * sqrt(N(parent)) / (1 + N(child))`` for each child."""
    root = math.sqrt(n_parent)
    return [qi + c_puct * p * root / (1 + n) for qi, p, n in zip(q, priors, visits, strict=True)]


def path_value(ratings: Sequence[float], conclusion: bool, config: ScorerConfig) -> float:
    """A path's value from its steps' ratings (root first): their ``value_aggregate``; the last
    rating is left out when the path ends in a `conclusion`, unless ``value_conclusion``."""
    kept = list(ratings)
    if conclusion and not config.value_conclusion and len(kept) > 1:
        kept = kept[:-1]
    if not kept:
        return 0.0
    if config.value_aggregate == "last":
        return kept[-1]
    if config.value_aggregate == "mean":
        return sum(kept) / len(kept)
    return min(kept)


@dataclass
class StepMCTSState:
    """One problem's step-level MCTS while it runs: what the steps below read and update."""

    problem: Problem
    tree: TreeBuilder
    """The tree so far: node 0 is the problem, every other node one line."""
    config: StepMCTSConfig


def lines_of(state: StepMCTSState, node_id: int) -> list[str]:
    """The lines of the path from the root to `node_id` (the problem excluded)."""
    return [state.tree[i].text for i in state.tree.path(node_id)[1:]]


def step_prompt(state: StepMCTSState, node_id: int) -> str:
    """The policy prompt that asks for the line after `node_id`."""
    done = "".join(line + "\n" for line in lines_of(state, node_id))
    return solve_prompt(state.problem.question) + done


def select(state: StepMCTSState) -> list[MutableNode]:
    """Selection: the path from the root down the best `puct_scores` child (ties to the older
    child) to a node without children or a terminal node."""
    tree, cfg = state.tree, state.config
    path = [tree.root]
    while path[-1].children and not path[-1].terminal:
        node = path[-1]
        kids = [tree[k] for k in node.children]
        scores = puct_scores(
            [k.value or 0.0 for k in kids],
            [k.prior or 0.0 for k in kids],
            [k.visits for k in kids],
            node.visits,
            cfg.c_puct,
        )
        best = max(range(len(kids)), key=lambda i: (scores[i], -i))
        path.append(kids[best])
    return path


def _mean_logprob(gen: Generation) -> float | None:
    lps = gen.logprobs or ()
    return sum(lps) / len(lps) if lps else None


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
    node.info = {"samples": 1, "mean_logprob": _mean_logprob(gen)}
    if answer is not None:
        node.meta_action, node.answer = "conclusion", answer
    node.terminal = answer is not None or not line or depth >= state.config.max_depth
    return node


def expand(state: StepMCTSState, node: MutableNode, params: SamplingParams) -> Step[list[int]]:
    """Expansion: ``params.n`` next lines of `node` in one policy call, added as its children
    (`add_line`), with their `sibling_priors`. Returns the ids of the new children."""
    out = yield Generate((step_prompt(state, node.id),), params)
    depth = len(state.tree.path(node.id))
    before = set(node.children)
    for gen in out[0]:
        add_line(state, node.id, gen, depth)
    kids = [state.tree[k] for k in node.children]
    for k, p in zip(
        kids, sibling_priors([_or_inf(k.info["mean_logprob"]) for k in kids]), strict=True
    ):
        k.prior = p
    return [k.id for k in kids if k.id not in before]


def evaluate(state: StepMCTSState, ids: Sequence[int]) -> Step[list[float]]:
    """Evaluation: the value head rates the newest step of each node of `ids` in its partial
    chain (one request for all), ``info["step_value"]``; returns their path values, also their
    ``rewards``. An empty line is not rated: its path value is 0."""
    tree, question = state.tree, state.problem.question
    rated = [i for i in ids if tree[i].text]
    prompts = [
        step_value_prompts(question, solution_steps("\n".join(lines_of(state, i))))[-1]
        for i in rated
    ]
    if prompts:
        cands = (RATING_TOKENS["positive"], RATING_TOKENS["negative"])
        probs = yield NextTokenProbs(tuple(prompts), cands)
        for i, p in zip(rated, probs, strict=True):
            tree[i].info["step_value"] = rating_value(p)
    values = []
    for i in ids:
        ratings = [tree[k].info.get("step_value", 0.0) for k in tree.path(i)[1:]]
        v = path_value(ratings, tree[i].meta_action == "conclusion", state.config.scorer_config)
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


def simulate(state: StepMCTSState, params: SamplingParams) -> Step[None]:
    """One simulation: `select` a path; a terminal leaf backs up its path value again, any other
    leaf is expanded (`expand`), its new children evaluated (`evaluate`), each child's value
    backed up from the child (`backup`)."""
    path = select(state)
    leaf = path[-1]
    if leaf.terminal:
        backup(path, [leaf.rewards[-1] if leaf.rewards else 0.0])
        return
    new = yield from expand(state, leaf, params)
    values = yield from evaluate(state, new)
    for i, v in zip(new, values, strict=True):
        backup([state.tree[i]], [v])
    backup(path, values)


def finish_greedily(state: StepMCTSState) -> Step[MutableNode | None]:
    """When no terminal states an answer: the rest of the solution from the best-valued leaf,
    greedy, in one call; its lines become a chain of nodes (``info["finish"]``) up to the first
    that states an answer. Returns that node, or None."""
    tree, cfg = state.tree, state.config
    leaves = [n for n in tree.nodes if not n.children and n.text] or [tree.root]
    node = max(leaves, key=lambda n: (n.rewards[-1] if n.rewards else 0.0, -n.id))
    params = SamplingParams(max_new_tokens=cfg.finish_tokens, temperature=0.0)
    out = yield Generate((step_prompt(state, node.id),), params)
    gen = out[0][0]
    first = True
    for line in (s.strip() for s in gen.text.splitlines()):
        if not line:
            continue
        node = tree.add(node.id, line, meta_action="expansion", info={"finish": True})
        if first:
            node.prompt_tokens = max(gen.prompt_tokens, 0)
            node.generated_tokens = max(gen.num_tokens, 0)
            first = False
        node.answer = answer_of_text(line)
        if node.answer is not None:
            node.meta_action, node.terminal = "conclusion", True
            return node
    return None


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
        stop=("\n",),
    )
    for _sim in range(config.simulations):
        yield from simulate(state, params)
    chosen = yield from choose(state)
    if state.tree.root.value is None:
        state.tree.root.value = 0.0
    return state.tree.freeze(chosen=state.tree.path(chosen.id) if chosen is not None else ())

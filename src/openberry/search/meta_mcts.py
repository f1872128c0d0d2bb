"""LLaMA-O1's meta-action MCTS: AlphaGo-Zero-style prior policy and value over OpenLongCoT thoughts
(SimpleBerry/LLaMA-O1 ``online_train.py`` / ``offline_collect.py``).

Nodes are thoughts written in the OpenLongCoT language, each with a meta action (``expansion``,
``critic``, ``refine``, ``conclusion``, ``problem``). One causal LM plays three roles:

- **policy head**: the path to a node, then a new node header ending in its meta tag; the model
  writes the thought up to ``<end_of_thought>``. The child's **prior** is its length-normalised
  sequence probability ``exp(mean log p)``, normalised over the siblings of one expansion;
- **value head**: the parent path, the candidate line up to ``<start_of_rating>``; the value is
  ``p(<positive_rating>) / (p(<positive_rating>) + p(<negative_rating>))`` at the position
  that predicts the rating;
- an optional **verifier** (training time only, e.g. the grader against the reference) labels
  ``<conclusion>`` nodes successful or failed, drives the patience stop and the leaf-value
  rectification (`rectify`).

One simulation (`simulate`): from the root, while a node has ``max_children`` children descend to
the child with the best PUCT score (`puct_scores`)::

    score(c) = V(c) + c_puct * P(c) * sqrt(sum_siblings N) / (1 + N(c))
               + varentropy_lambda * softmax_siblings(varentropy)(c)

else expand it: sample ``num_candidates`` meta actions (`sample_metas`), write one child per meta,
evaluate each with the value head; the value of the best new child, discounted by ``gamma`` at
each level, is averaged into every node on the way back (running mean). Meta actions come from
the tree's transition statistics (online code: ``T[m(parent), m(child)] += value(child)``,
row softmax), the offline rule table, or the model itself (``meta_policy="model"``: the header
stops after ``<start_of_thought>`` and the model writes the meta tag).

The default, ``meta_policy="expansion"``, is where we depart from LLaMA-O1: AlphaGo Zero's prior +
value search (Silver et al. 2017, Methods) over expansion steps in the OpenLongCoT format, as the
step-level MCTS (`openberry.search.step_mcts`) runs it over plain lines. The ``num_candidates``
children of a node are sampled together, in one call (``n``), under one header that stops after
``<start_of_thought>``: the model writes each tag, so it decides when to conclude (berry-tiny,
told ``<expansion>``, never writes an answer). Expansion steps are kept; ``<critic>`` and
``<refine>`` thoughts are dropped unless ``critique`` keeps them (`expansion_meta`); a thought
that states an answer (`answer_of_text`) is a terminal ``<conclusion>``, which a simulation that
selects it backs up again without a model call (`closed`). Prior, value, PUCT and backup are the
ones above. The default and its settings were chosen on the validation split (docs/search.md,
"How the defaults were chosen").

The final answer (no reference involved) is, by default, a vote over every ``<conclusion>`` of
the tree, each weighted by the lowest value-head estimate of the steps leading to it (PRM-weighted
majority), reached through that answer's best-valued conclusion; ``answer_selection="value"``
takes the best-valued conclusion itself. The original online trainer chooses no answer (it trains
on the tree). When the simulations end without a conclusion, the best leaf is finished greedily
(``finish_steps``).

The search is written as mctx writes its search, one function per step over a state
(`MetaMCTSState`): `select` a path, `expand` its last node (policy head) and `evaluate` the new
children (value head), `backup` the leaf value, and finally `choose` the conclusion that answers.
`simulate` is one simulation; `meta_mcts` runs them.

Fixes of the original code's bugs (labelled B1-B17 in docs/search.md), each with a regression test
named after it in ``tests/search/test_meta_mcts.py``:

- B2/B3: node ids are a per-tree counter (our `TreeBuilder`): no recursion, no duplicates;
- B4: the root is the problem text, not a tuple holding the reference solution;
- B6: each child keeps its own prior, entropy and varentropy;
- B7: log-probabilities are those of the generated tokens (the backend aligns them);
- B9: the value is read at the position that predicts the rating, in search and in training;
- B11: values are probabilities, so discounting moves towards failure, and 0.0 is a value, not
  "unset";
- B14: the verifier is called on ``<conclusion>`` nodes only;
- B15: no hint carries the reference answer; hints are off by default and answer-free;
- B16: ``<conclusion>`` has its own meta action (no critic hint), the meta sampler is not
  memoised per node, generated text is cut only at a stop string;
- B17: the prior is the siblings' probabilities normalised (not a softmax of probabilities,
  which is nearly uniform), and the optional noise is additive, not a factor that flips
  negative scores.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from openberry.formats.openlongcot import (
    META_TAGS,
    RATING_START,
    RATING_TOKENS,
    THOUGHT_END,
    node_header,
    node_line,
    rating_prompt,
)
from openberry.models.base import SamplingParams
from openberry.records import Generation, Problem
from openberry.search.common import (
    MutableNode,
    Step,
    TreeBuilder,
    answer_of_text,
    softmax,
    strip_tags,
    value_vote,
)
from openberry.search.engine import Generate, NextTokenProbs, SearchError, SearchGen
from openberry.search.scorers import ScorerConfig, rating_value, step_reward
from openberry.search.scorers import path_value as ratings_value
from openberry.tree import META_ACTIONS, Tree

__all__ = [
    "ALLOWED_TRANSITIONS",
    "META_ORDER",
    "MetaMCTSConfig",
    "MetaMCTSState",
    "backup",
    "choose",
    "choose_conclusion",
    "closed",
    "evaluate",
    "expand",
    "expansion_meta",
    "init_state",
    "meta_mcts",
    "puct_scores",
    "rectify",
    "rule_metas",
    "sample_metas",
    "select",
    "simulate",
    "transition_matrix",
    "write_children",
]

META_ORDER: tuple[str, ...] = ("expansion", "problem", "critic", "refine", "conclusion")
"""Row/column order of the transition matrix (the original's order)."""

ALLOWED_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "problem": ("expansion",),
    "expansion": ("expansion", "conclusion", "critic"),
    "critic": ("refine",),
    "refine": ("refine", "expansion", "conclusion"),
    "conclusion": ("critic",),
}
"""Meta actions that may follow each meta action (the OpenLongCoT trees' grammar: a critic
follows a step or a conclusion, a refine follows a critic). ``transition_mask=False`` lifts it."""

_FAILURE = 1e-6  # reward_epsilon: the rectified value of a failed leaf


@dataclass(frozen=True)
class MetaMCTSConfig:
    """Meta-action MCTS settings. The defaults were chosen on the validation split
    (docs/search.md, "How the defaults were chosen"); the original online trainer's are
    ``meta_policy=transitions``, ``num_candidates=2``, ``max_children=4``, ``temperature=1.0``
    (its code: 1.5), ``node_value=rating`` with the rest as here (it chooses no answer; ``vote``
    was the default before)."""

    simulations: int = 16
    """Simulations (each expands one node, or revisits a terminal conclusion)."""
    num_candidates: int = 3
    """Children written per expansion: one per sampled meta action, or ``n`` samples of one
    prompt in the expansion mode (original trainer: 2)."""
    max_children: int = 3
    """Children a node gets before the search descends below it; merged and dropped samples
    count (online 5, offline 4)."""
    c_puct: float = 1.4
    """PUCT exploration constant."""
    varentropy_lambda: float = 0.1
    """Weight of the sibling-softmax of varentropy in the selection score."""
    gamma: float = 0.9
    """Discount of a value per level on the way back up."""
    meta_policy: Literal["expansion", "transitions", "rules", "model"] = "expansion"
    """How meta actions are chosen. ``expansion`` (chosen on the validation split,
    docs/search.md): the children of a node are sampled together in one call (``n`` =
    ``num_candidates``), the model writing each tag; expansion steps are kept (critic and refine
    thoughts as ``critique`` says) and a thought that states an answer is a terminal conclusion.
    ``transitions``: the tree's transition statistics (online code); ``rules``: the rule table
    (offline code); ``model``: one prompt per candidate, the model writes the meta tag."""
    critique: Literal["none", "model", "conclusions"] = "none"
    """With ``meta_policy=expansion``, what becomes of the critic and refine thoughts the model
    writes: ``none``, dropped (the sample still counts towards ``max_children``); ``model``,
    kept where the model writes them; ``conclusions``, kept, and a conclusion is not terminal, so
    the model may critique and refine it."""
    transition_mask: bool = True
    """Restrict transitions to `ALLOWED_TRANSITIONS`."""
    temperature: float = 0.7
    """Sampling temperature of thoughts (online code: 1.5; 1.0 before the expansion mode)."""
    max_thought_tokens: int = 64
    """Most tokens per thought (online code: 64)."""
    noise: float = 0.0
    """Scale of uniform additive noise on selection scores (0: none)."""
    merge_duplicates: bool = True
    """A thought identical to a sibling (same meta, same text) adds no node; the expansion still
    counts towards ``max_children``, so a confident node is descended sooner. Nodes keep the
    local ids they were written under; the id the twin's header took goes to the next new node."""
    finish_steps: int = 8
    """Greedy thoughts written from the best leaf when no conclusion was found (0: none)."""
    patience: int = 2
    """With a verifier: stop after this many successful conclusions (online 2, offline 1)."""
    answer_selection: Literal["vote", "value", "visits"] = "visits"
    """How the answer is chosen: ``vote``, the answer with the largest summed path value over
    all conclusions (a path's value is the lowest value-head estimate of its steps; ties go to
    the answer more conclusions state), through its best-valued conclusion; ``value``, the
    best-valued conclusion; ``visits``, the most visited conclusion (ties to the best-valued)."""
    node_value: Literal["rating", "path"] = "path"
    """The value a new thought starts with (and a revisited conclusion backs up): ``rating``,
    its own value-head rating (LLaMA-O1); ``path``, the lowest rating on its path (`path_value`:
    PRM-style, a conclusion's own rating left out, as step-level MCTS values a line)."""
    alpha: float = 0.2
    """RAP's reward mix (`openberry.search.scorers.step_reward`): a thought's rating is read as
    ``rating ** alpha * p ** (1 - alpha)``, ``p`` its per-token probability; 1 is the value
    head alone. Node values, path values and the answer vote read it; the tree's recorded
    ratings (``info["original_value"]``) stay the value head's."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise SearchError(f"alpha must be in [0, 1], got {self.alpha}")


def puct_scores(
    values: Sequence[float],
    priors: Sequence[float],
    visits: Sequence[int],
    varentropies: Sequence[float],
    c_puct: float = 1.4,
    varentropy_lambda: float = 0.1,
) -> list[float]:
    """Selection score of each sibling: ``V + c P sqrt(sum N) / (1 + N) + lambda softmax(VE)``."""
    total = sum(visits)
    bonus = softmax(list(varentropies))
    return [
        v + c_puct * p * math.sqrt(total) / (1 + n) + varentropy_lambda * b
        for v, p, n, b in zip(values, priors, visits, bonus, strict=True)
    ]


def transition_matrix(
    edges: Sequence[tuple[str, str, float]], mask: bool = True
) -> dict[str, dict[str, float]]:
    """Row-softmax of summed child values per (parent meta, child meta) pair.

    Args:
        edges: (parent meta, child meta, child value) for every edge of the tree.
        mask: keep only `ALLOWED_TRANSITIONS` (the others get probability 0).
    """
    sums = {a: dict.fromkeys(META_ORDER, 0.0) for a in META_ORDER}
    for a, c, v in edges:
        sums[a][c] += v
    out = {}
    for a in META_ORDER:
        cols = list(ALLOWED_TRANSITIONS[a]) if mask else list(META_ORDER)
        probs = softmax([sums[a][c] for c in cols])
        out[a] = {c: 0.0 for c in META_ORDER}
        out[a].update(zip(cols, probs, strict=True))
    return out


def sample_metas(row: dict[str, float], num: int, rng: random.Random) -> list[str]:
    """`num` meta actions drawn with replacement from one row of the transition matrix."""
    metas = [m for m in META_ORDER if row.get(m, 0.0) > 0]
    weights = [row[m] for m in metas]
    return rng.choices(metas, weights=weights, k=num)


def rule_metas(
    meta: str, text: str, value: float, has_conclusion_child: bool, num: int, rng: random.Random
) -> list[str]:
    """The offline collector's rule table (``offline_collect.py``), one draw per candidate."""
    out = []
    for _ in range(num):
        if meta == "conclusion":
            out.append("critic")
        elif meta == "critic":
            out.append("refine")
        elif "answer" in text.lower():
            if has_conclusion_child:
                out.append("critic")
            else:
                out.append("conclusion" if rng.random() < value else "critic")
        elif meta == "problem":
            out.append("expansion")
        elif meta == "expansion":
            r = rng.random()
            if r < value:
                out.append("expansion")
            elif r < value + 0.2 * (1 - value):
                out.append("problem")
            else:
                out.append("critic")
        else:
            out.append("expansion")
    return out


def rectify(
    parents: Sequence[int | None],
    leaves: Sequence[tuple[int, bool]],
    gamma: float = 0.9,
    failure: float = _FAILURE,
) -> tuple[list[float | None], list[int]]:
    """Leaf-value rectification: verified leaves push 1 (success) or `failure` up the tree.

    Each leaf's target is averaged into the leaf and, discounted by `gamma` per level, into every
    ancestor (running mean per node). Probabilities, so the discount moves towards failure and a
    value of 0 is a value (LLaMA-O1's log-scale discount and ``if not tv`` test, B11, are gone).

    Returns:
        (rectified value per node, None where no verified leaf reached it; count per node).
    """
    true: list[float | None] = [None] * len(parents)
    count = [0] * len(parents)
    for leaf, ok in leaves:
        x = 1.0 if ok else failure
        node: int | None = leaf
        while node is not None:
            count[node] += 1
            prev = true[node]
            true[node] = x if prev is None else prev + (x - prev) / count[node]
            x *= gamma
            node = parents[node]
    return true, count


def choose_conclusion(answers: Sequence[str], values: Sequence[float], rule: str = "vote") -> int:
    """Index of the chosen conclusion (`MetaMCTSConfig.answer_selection`): the highest value
    (``value``), or the highest-valued conclusion of the answer with the largest summed value
    (``vote``; ties go to the answer more conclusions state, then to the earlier conclusion)."""
    if not answers:
        raise ValueError("no conclusion to choose from")
    if rule == "vote":
        return value_vote(answers, values)
    if rule != "value":
        raise ValueError(f"unknown answer_selection {rule!r}; expected 'vote' or 'value'")
    return max(range(len(answers)), key=lambda i: (values[i], -i))


def clean_thought(text: str) -> str:
    """Generated thought text without any tag of the format (B16: nothing else is cut)."""
    return strip_tags(text).strip()


def _rating_of(value: float | None) -> str:
    if value is None:
        return "unknown"
    return "positive" if value >= 0.5 else "negative"


def _stats(gen: Generation) -> tuple[float, float, float]:
    lps = gen.logprobs or ()
    mean_lp = sum(lps) / len(lps) if lps else -math.inf
    return mean_lp, gen.mean_entropy, gen.mean_varentropy


Verifier = Callable[[str], bool | None]
"""Training-time verifier: final answer -> correct? (None when it cannot tell)."""


@dataclass
class MetaMCTSState:
    """One problem's meta-action MCTS while it runs: what the steps below read and update."""

    tree: TreeBuilder
    """The tree so far; node 0 is the problem."""
    config: MetaMCTSConfig
    rng: random.Random
    """The search's only randomness (meta actions, selection noise), drawn in a fixed order."""
    verifier: Verifier | None = None
    """Training-time verifier of conclusions; None at inference."""
    successes: int = 0
    """Conclusions the verifier accepted so far (the patience stop)."""


def init_state(
    problem: Problem, rng: random.Random, config: MetaMCTSConfig, verifier: Verifier | None = None
) -> MetaMCTSState:
    """A tree holding only the root: the problem text as a thought, value 1."""
    tree = TreeBuilder(problem, "meta-mcts")
    tree.root.text = clean_thought(problem.question)
    tree.root.value = 1.0
    return MetaMCTSState(tree=tree, config=config, rng=rng, verifier=verifier)


def thought_params(config: MetaMCTSConfig, temperature: float, n: int = 1) -> SamplingParams:
    """Sampling settings of `n` thoughts from one prompt: each ends at ``<end_of_thought>`` (or
    where a rating would start), with the token statistics the prior and varentropy need."""
    return SamplingParams(
        n=n,
        max_new_tokens=config.max_thought_tokens,
        temperature=temperature,
        stop=(THOUGHT_END, RATING_START),
        token_stats=True,
    )


# Local ids: the ids written into node headers.


def local_id(node: MutableNode) -> int:
    """The id `node` was written under: ``info["local_id"]`` where it differs from its tree id.

    A merged twin adds no node after its header took an id, so the candidates after it in its
    expansion are not at the tree ids they were written under. Each node keeps its header's id
    and every later prompt shows it, so a path is always the text the model saw.
    """
    return node.info.get("local_id", node.id)


def fresh_ids(tree: TreeBuilder, count: int) -> list[int]:
    """The `count` smallest local ids no node has. The id a merged twin took goes to the next
    new node, so local ids stay as small as the tree (a model trained on small trees has seen
    small ids only)."""
    used = {local_id(n) for n in tree.nodes}
    return [i for i in range(len(used) + count) if i not in used][:count]


def thought_line(tree: TreeBuilder, node: MutableNode) -> str:
    """`node` as one OpenLongCoT line, under its own and its parent's local ids."""
    father = -1 if node.parent is None else local_id(tree[node.parent])
    return node_line(
        father, local_id(node), node.meta_action or "expansion", node.text, _rating_of(node.value)
    )


def path_text(tree: TreeBuilder, node_id: int) -> str:
    """The lines of the path from the root to `node_id`: the context its children are written
    and rated in."""
    return "\n".join(thought_line(tree, tree[i]) for i in tree.path(node_id))


# Selection.


def expandable(config: MetaMCTSConfig, node: MutableNode) -> bool:
    """Whether `node` has been expanded fewer than ``max_children`` times (merged twins count)."""
    return node.info.get("expansions", 0) < config.max_children


def sampled_together(config: MetaMCTSConfig) -> bool:
    """Whether the children of a node are sampled in one call (``meta_policy=expansion``)."""
    return config.meta_policy == "expansion"


def closed(config: MetaMCTSConfig, node: MutableNode) -> bool:
    """Whether `node` ends its path: a terminal conclusion in the expansion mode, unless
    ``critique=conclusions`` lets the model critique it. (The original rules always let a
    ``<critic>`` follow a conclusion.)"""
    return node.terminal and sampled_together(config) and config.critique != "conclusions"


def puct_child(state: MetaMCTSState, node: MutableNode) -> MutableNode:
    """The child of `node` with the best PUCT score (`puct_scores`, plus uniform noise when
    ``config.noise`` > 0, one draw per child); ties go to the older child."""
    cfg = state.config
    kids = [state.tree[k] for k in node.children]
    scores = puct_scores(
        [k.value if k.value is not None else 0.0 for k in kids],
        [k.prior if k.prior is not None else 0.0 for k in kids],
        [k.visits for k in kids],
        [k.info.get("varentropy") or 0.0 for k in kids],
        cfg.c_puct,
        cfg.varentropy_lambda,
    )
    if cfg.noise > 0:
        scores = [s + cfg.noise * state.rng.uniform(-1, 1) for s in scores]
    best = max(range(len(kids)), key=lambda i: (scores[i], -kids[i].id))
    return kids[best]


def select(state: MetaMCTSState) -> list[MutableNode]:
    """Selection: the path from the root through fully widened nodes, each step to the best
    PUCT child. Its last node is the one to expand, or a `closed` one to revisit."""
    path = [state.tree.root]
    node = path[-1]
    while not closed(state.config, node) and not expandable(state.config, node) and node.children:
        node = puct_child(state, node)
        path.append(node)
    return path


# Expansion (policy head) and evaluation (value head).


def propose_metas(state: MetaMCTSState, node: MutableNode) -> list[str | None]:
    """The meta action of each prompt that writes children of `node`, by ``config.meta_policy``
    (one prompt per candidate, or one prompt for all in the expansion mode); None where the
    model writes the tag itself."""
    cfg, tree = state.config, state.tree
    if sampled_together(cfg):
        return [None]  # one prompt, ``num_candidates`` samples (`thought_params`)
    if cfg.meta_policy == "model":
        return [None] * cfg.num_candidates
    if cfg.meta_policy == "rules":
        has_concl = any(tree[c].meta_action == "conclusion" for c in node.children)
        v = node.value if node.value is not None else 0.5
        return rule_metas(  # type: ignore[return-value]
            node.meta_action or "problem", node.text, v, has_concl, cfg.num_candidates, state.rng
        )
    edges = [
        (tree[n.parent].meta_action or "problem", n.meta_action or "expansion", n.value or 0.0)
        for n in tree.nodes[1:]
    ]
    row = transition_matrix(edges, cfg.transition_mask)[node.meta_action or "problem"]
    return sample_metas(row, cfg.num_candidates, state.rng)  # type: ignore[return-value]


def written_meta(text: str) -> str:
    """The meta action whose tag a generated thought starts with (``expansion`` if none)."""
    for cand in META_ACTIONS:
        if text.lstrip().startswith(META_TAGS[cand]):
            return cand
    return "expansion"


def expansion_meta(config: MetaMCTSConfig, meta: str, text: str) -> str | None:
    """The meta action a thought the model wrote with tag `meta` keeps in the expansion mode:
    ``conclusion`` when it is one or states an answer (`answer_of_text`), critic and refine as
    ``config.critique`` says, None where it is dropped (a ``<problem>`` thought always is)."""
    if meta == "problem" or (meta in ("critic", "refine") and config.critique == "none"):
        return None
    if meta == "conclusion" or (meta != "critic" and answer_of_text(text) is not None):
        return "conclusion"
    return meta


def add_thought(
    state: MetaMCTSState, parent: int, meta: str | None, lid: int, gen: Generation
) -> MutableNode | None:
    """Add thought `gen`, written under local id `lid` with meta action `meta` (None: the tag it
    starts with), as a child of `parent`; each call counts one expansion of `parent`.

    Returns the new child, or None when ``merge_duplicates`` folds it into an identical sibling
    (which then counts its tokens and ``info["duplicates"]``) or the expansion mode drops it
    (`expansion_meta`; the parent counts ``info["dropped"]``)."""
    tree = state.tree
    meta = written_meta(gen.text) if meta is None else meta
    text = clean_thought(gen.text)
    tree[parent].info["expansions"] = tree[parent].info.get("expansions", 0) + 1
    if sampled_together(state.config):
        kept = expansion_meta(state.config, meta, text)
        if kept is None:
            tree[parent].info["dropped"] = tree[parent].info.get("dropped", 0) + 1
            return None
        meta = kept
    twin = next(
        (
            tree[k]
            for k in tree[parent].children
            if tree[k].text == text and tree[k].meta_action == meta
        ),
        None,
    )
    if twin is not None and state.config.merge_duplicates:
        twin.generated_tokens += max(gen.num_tokens, 0)
        twin.info["duplicates"] = twin.info.get("duplicates", 0) + 1
        return None
    mean_lp, ent, vent = _stats(gen)
    child = tree.add(parent, text, generation=gen, meta_action=meta)
    if lid != child.id:
        child.info["local_id"] = lid
    child.info.update(
        {
            "seq_prob": math.exp(mean_lp) if math.isfinite(mean_lp) else 0.0,
            "entropy": None if math.isnan(ent) else ent,
            "varentropy": None if math.isnan(vent) else vent,
            "finish_reason": gen.finish_reason,
        }
    )
    if meta == "conclusion":
        child.terminal = True
        child.answer = answer_of_text(text)
    return child


def expand(
    state: MetaMCTSState,
    node_ids: Sequence[int],
    metas: Sequence[Sequence[str | None]],
    params: SamplingParams,
    contexts: Mapping[int, str],
) -> Step[list[MutableNode]]:
    """Expansion (policy head): one request writes ``params.n`` children of each node per meta
    action; the children of one prompt share its header's local id.

    Args:
        node_ids: the nodes to extend.
        metas: per node, the meta action of each prompt (None: the model writes the tag).
        params: sampling settings of the thoughts (`thought_params`).
        contexts: `path_text` of each node in `node_ids`.

    Returns:
        The new children in writing order (merged twins add none; see `add_thought`).
    """
    tree = state.tree
    prompts, owners = [], []
    ids = iter(fresh_ids(tree, sum(len(ms) for ms in metas)))
    for nid, ms in zip(node_ids, metas, strict=True):
        for m in ms:
            lid = next(ids)
            prompts.append(contexts[nid] + "\n" + node_header(local_id(tree[nid]), lid, m))
            owners.append((nid, m, lid))
    out = yield Generate(tuple(prompts), params)
    new = [
        add_thought(state, nid, m, lid, gen)
        for (nid, m, lid), row in zip(owners, out, strict=True)
        for gen in row
    ]
    return [c for c in new if c is not None]


def evaluate(
    state: MetaMCTSState, children: Sequence[MutableNode], contexts: Mapping[int, str]
) -> Step[None]:
    """Evaluation (value head): rate each new child in its parent's context (`contexts`, the
    parents' `path_text`) and set its ``value`` and ``info["original_value"]``.

    The request is sent even when empty (every candidate merged), so that all problems of a
    batch stay in step."""
    tree = state.tree
    prompts = tuple(
        rating_prompt(
            contexts[c.parent],  # type: ignore[index]
            local_id(tree[c.parent]),  # type: ignore[index]
            local_id(c),
            c.meta_action,  # type: ignore[arg-type]
            c.text,
        )
        for c in children
    )
    probs = yield NextTokenProbs(
        prompts, (RATING_TOKENS["positive"], RATING_TOKENS["negative"]), model="value"
    )
    alpha = state.config.alpha
    for c, p in zip(children, probs, strict=True):
        c.info["original_value"] = rating_value(p)
        c.value = thought_reward(c, alpha)
        if state.config.node_value == "path":
            c.value = c.info["path_value"] = path_value(tree, c.id, alpha)


def set_priors(tree: TreeBuilder, node_ids: Sequence[int]) -> None:
    """Priors of the children of each node: their sequence probabilities normalised over the
    siblings (B17), uniform when all are 0."""
    for nid in set(node_ids):
        kids = [tree[k] for k in tree[nid].children]
        total = sum(k.info.get("seq_prob", 0.0) for k in kids)
        for k in kids:
            k.prior = k.info.get("seq_prob", 0.0) / total if total > 0 else 1.0 / len(kids)


def write_children(
    state: MetaMCTSState,
    node_ids: Sequence[int],
    metas: Sequence[Sequence[str | None]],
    params: SamplingParams,
) -> Step[list[MutableNode]]:
    """Expand and evaluate: write children (`expand`), rate them (`evaluate`), set the priors
    (`set_priors`). Returns the new children."""
    # The extended nodes' ratings do not change while their children are written and rated, so
    # policy and value prompts share their path text.
    contexts = {nid: path_text(state.tree, nid) for nid in node_ids}
    new = yield from expand(state, node_ids, metas, params, contexts)
    yield from evaluate(state, new, contexts)
    set_priors(state.tree, node_ids)
    return new


# Backup.


def leaf_value(state: MetaMCTSState, node: MutableNode) -> float:
    """The value a simulation backs up after expanding `node`: that of the child PUCT picks
    now (`puct_child`), 0 when `node` still has no child."""
    return (puct_child(state, node).value or 0.0) if node.children else 0.0


def verify(state: MetaMCTSState, children: Sequence[MutableNode]) -> None:
    """Training time (B14): the verifier labels each new conclusion with an answer
    ``info["leaf_type"]`` successful or failed; accepted ones count towards the patience stop."""
    if state.verifier is None:
        return
    for c in children:
        if c.meta_action == "conclusion" and c.answer is not None:
            ok = state.verifier(c.answer)
            if ok is not None:
                c.info["leaf_type"] = "successful" if ok else "failed"
                state.successes += bool(ok)


def backup(path: Sequence[MutableNode], value: float, gamma: float) -> None:
    """Backup: `value`, discounted by `gamma` once more at each level from the leaf up, is
    averaged into every node of `path` (running mean over the node's visits)."""
    v = value
    for n in reversed(path):
        v *= gamma
        n.visits += 1
        prev = n.value if n.visits > 1 and n.value is not None else v
        n.value = prev + (v - prev) / n.visits


def simulate(state: MetaMCTSState, params: SamplingParams) -> Step[list[MutableNode]]:
    """One simulation: `select` a path, expand and evaluate its last node (`write_children`),
    `verify` the new conclusions, `backup` the `leaf_value`. Returns the new children. A path
    that ends in a `closed` node backs up that node's own rating again, with no model call."""
    path = select(state)
    node = path[-1]
    if closed(state.config, node):
        rated = "original_value" in node.info
        own = thought_reward(node, state.config.alpha) if rated else 0.0
        value = node.info.get("path_value", own)
        backup(path, value, state.config.gamma)
        return []
    new = yield from write_children(state, [node.id], [propose_metas(state, node)], params)
    value = leaf_value(state, node)
    verify(state, new)
    backup(path, value, state.config.gamma)
    return new


def rectify_tree(state: MetaMCTSState) -> None:
    """Training time: `rectify` the values with the verifier's verdicts, recorded as
    ``info["true_value"]`` and ``info["rectify_visits"]``."""
    nodes = state.tree.nodes
    leaves = [
        (n.id, n.info["leaf_type"] == "successful")
        for n in nodes
        if n.info.get("leaf_type") in ("successful", "failed")
    ]
    true, counts = rectify([n.parent for n in nodes], leaves, state.config.gamma)
    for n, tv, k in zip(nodes, true, counts, strict=True):
        if tv is not None:
            n.info["true_value"] = tv
            n.info["rectify_visits"] = k


# Choosing the answer.


def thought_reward(node: MutableNode, alpha: float) -> float:
    """A thought's value-head rating mixed with its per-token probability (`step_reward`);
    the rating alone at ``alpha`` 1 or without log-probabilities."""
    p = node.info.get("seq_prob", 0.0)
    rating = node.info.get("original_value", 1.0)
    return step_reward(rating, math.log(p) if p > 0 else None, alpha)


def path_value(tree: TreeBuilder, node_id: int, alpha: float = 1.0) -> float:
    """The lowest value-head estimate of the steps leading to a node (PRM-style: one bad step
    sinks it), the node's own included, each mixed with its confidence by `alpha`
    (`thought_reward`); a conclusion's own rating is left out, as in the ``value`` scorer."""
    ratings = [thought_reward(tree[i], alpha) for i in tree.path(node_id)[1:]]
    return ratings_value(ratings, tree[node_id].meta_action == "conclusion", ScorerConfig())


def best_conclusion(state: MetaMCTSState) -> MutableNode | None:
    """The conclusion `choose_conclusion` picks by ``answer_selection`` over every conclusion
    with an answer, scored by `path_value`; None when there is none."""
    tree = state.tree
    concl = [n for n in tree.nodes if n.meta_action == "conclusion" and n.answer is not None]
    if not concl:
        return None
    values = [path_value(tree, n.id, state.config.alpha) for n in concl]
    if state.config.answer_selection == "visits":
        return max(zip(concl, values, strict=True), key=lambda nv: (nv[0].visits, nv[1]))[0]
    answers = [n.answer for n in concl]
    return concl[choose_conclusion(answers, values, state.config.answer_selection)]  # type: ignore[arg-type]


def finish_greedily(state: MetaMCTSState) -> Step[MutableNode | None]:
    """Up to ``finish_steps`` greedy thoughts from the best-valued leaf, the model choosing the
    meta actions; returns the first conclusion with an answer, or None."""
    tree, cfg = state.tree, state.config
    leaves = [n for n in tree.nodes if not n.children and n.id != 0 and not closed(cfg, n)] or [
        tree.root
    ]
    node = max(leaves, key=lambda n: (n.value or 0.0, -n.id))
    greedy = thought_params(cfg, 0.0)
    for _ in range(cfg.finish_steps):
        new = yield from write_children(state, [node.id], [[None]], greedy)
        if not new:  # the expansion mode dropped the thought, or it merged into a sibling
            return None
        (node,) = new
        node.info["finish"] = True
        if node.meta_action == "conclusion" and node.answer is not None:
            return node
        if closed(cfg, node):
            return None
    return None


def choose(state: MetaMCTSState) -> Step[MutableNode | None]:
    """The conclusion that answers: `best_conclusion`, else one `finish_greedily` writes."""
    chosen = best_conclusion(state)
    if chosen is None and state.config.finish_steps > 0:
        chosen = yield from finish_greedily(state)
    return chosen


def freeze_tree(tree: TreeBuilder, verifier: Verifier | None, chosen: MutableNode | None) -> Tree:
    """The finished tree, its chosen path ending at `chosen` (none when None)."""
    tree.root.value = tree.root.value if tree.root.value is not None else 0.0
    return tree.freeze(
        chosen=tree.path(chosen.id) if chosen is not None else (),
        info={
            "verifier": verifier is not None,
        },
    )


def meta_mcts(
    problem: Problem,
    rng: random.Random,
    config: MetaMCTSConfig,
    verifier: Verifier | None = None,
) -> SearchGen:
    """Run meta-action MCTS on one problem (see the module docstring).

    `verifier` is for training-time search only (it usually knows the reference answer); at
    inference leave it None: no patience stop, no rectification.
    """
    state = init_state(problem, rng, config, verifier)
    n = config.num_candidates if sampled_together(config) else 1
    params = thought_params(config, config.temperature, n)
    for _sim in range(config.simulations):
        yield from simulate(state, params)
        if verifier is not None and state.successes >= config.patience:
            break
    if verifier is not None:
        rectify_tree(state)
    chosen = yield from choose(state)
    return freeze_tree(state.tree, verifier, chosen)

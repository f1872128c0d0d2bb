"""LLaMA-O1's meta-action MCTS: AlphaGo-Zero-style prior policy and value over OpenLongCoT thoughts
(SimpleBerry/LLaMA-O1 ``online_train.py`` / ``offline_collect.py``; seed-spec sections 3.2-3.6).

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

The final answer (no reference involved) is, by default, a vote over every ``<conclusion>`` of
the tree, each weighted by the lowest value-head estimate of the steps leading to it (PRM-weighted
majority), reached through that answer's best-valued conclusion; ``answer_selection="value"``
takes the best-valued conclusion itself. The original online trainer chooses no answer (it trains
on the tree). We chose the default on the arithmetic *validation* split with berry-tiny (200
problems, ``meta_policy="model"``, `berry eval` with ``--batch-size 200``): 32.5 / 36.5 % at 4 / 8
rollouts against 31.0 / 30.0 % for the best-valued conclusion (docs/search.md). When the
simulations end without a conclusion, the best leaf is finished greedily (``finish_steps``).

Fixes of the original's bugs (seed-spec 3.8), each with a regression test named after it in
``tests/search/test_meta_mcts.py``:

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
from collections.abc import Callable, Sequence
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
    TreeBuilder,
    answer_of_text,
    strip_tags,
    vote_key,
)
from openberry.search.engine import Generate, NextTokenProbs, SearchGen
from openberry.search.scorers import rating_value
from openberry.tree import META_ACTIONS

__all__ = [
    "ALLOWED_TRANSITIONS",
    "META_ORDER",
    "MetaMCTSConfig",
    "choose_conclusion",
    "meta_mcts",
    "puct_scores",
    "rectify",
    "rule_metas",
    "sample_metas",
    "transition_matrix",
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
    """Meta-action MCTS settings (defaults: the original online trainer unless noted)."""

    simulations: int = 16
    """Simulations (each expands one node)."""
    num_candidates: int = 2
    """Children written per expansion, one per sampled meta action."""
    max_children: int = 4
    """Children a node gets before the search descends below it (online 5, offline 4)."""
    c_puct: float = 1.4
    """PUCT exploration constant."""
    varentropy_lambda: float = 0.1
    """Weight of the sibling-softmax of varentropy in the selection score."""
    gamma: float = 0.9
    """Discount of a value per level on the way back up."""
    meta_policy: Literal["transitions", "rules", "model"] = "transitions"
    """How meta actions are chosen: the tree's transition statistics (online code), the rule
    table (offline code), or the model writes the meta tag."""
    transition_mask: bool = True
    """Restrict transitions to `ALLOWED_TRANSITIONS`."""
    temperature: float = 1.0
    """Sampling temperature of thoughts (online code: 1.5)."""
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
    answer_selection: Literal["vote", "value"] = "vote"
    """How the answer is chosen: ``vote``, the answer with the largest summed path value over
    all conclusions (a path's value is the lowest value-head estimate of its steps; ties go to
    the answer more conclusions state), through its best-valued conclusion; ``value``, the
    best-valued conclusion."""


def softmax(xs: Sequence[float]) -> list[float]:
    if not xs:
        return []
    m = max(xs)
    es = [math.exp(x - m) for x in xs]
    s = sum(es)
    return [e / s for e in es]


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
    """The offline collector's rule table (seed-spec 3.6.1), one draw per candidate."""
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
    candidates = list(range(len(answers)))
    if rule == "vote":
        keys = [vote_key(a) for a in answers]
        mass: dict[str, float] = {}
        for key, v in zip(keys, values, strict=True):
            mass[key] = mass.get(key, 0.0) + v
        winner = max(mass, key=lambda k: (mass[k], keys.count(k)))
        candidates = [i for i in candidates if keys[i] == winner]
    elif rule != "value":
        raise ValueError(f"unknown answer_selection {rule!r}; expected 'vote' or 'value'")
    return max(candidates, key=lambda i: (values[i], -i))


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
    cfg = config
    b = TreeBuilder(problem, "meta-mcts")
    root = b.root
    root.text = clean_thought(problem.question)
    root.value = 1.0
    successes = 0
    stops = (THOUGHT_END, RATING_START)
    params = SamplingParams(
        max_new_tokens=cfg.max_thought_tokens,
        temperature=cfg.temperature,
        stop=stops,
        token_stats=True,
    )

    # Local ids written into node headers. A merged twin adds no node after its header took an
    # id, so the candidates after it in its expansion are not at the tree ids they were written
    # under: each node keeps its header's id (``info["local_id"]`` where the two differ), and
    # every later prompt shows it, so a path is always the text the model saw. The id a merged
    # twin took goes to the next new node: ids stay as small as the tree (berry-tiny, trained on
    # small trees, wrote worse thoughts under ids that skipped every merged twin: 21.0-21.5 %
    # against 25.5-28.0 % at 4 rollouts, seeds 0-2; BENCHMARKS.md, "Search").
    def local_id(n: MutableNode) -> int:
        return n.info.get("local_id", n.id)

    def fresh_ids(count: int) -> list[int]:
        """The `count` smallest local ids no node has."""
        used = {local_id(n) for n in b.nodes}
        return [i for i in range(len(used) + count) if i not in used][:count]

    def line(n: MutableNode) -> str:
        father = -1 if n.parent is None else local_id(b[n.parent])
        return node_line(
            father, local_id(n), n.meta_action or "expansion", n.text, _rating_of(n.value)
        )

    def path_text(node_id: int) -> str:
        return "\n".join(line(b[i]) for i in b.path(node_id))

    def metas_for(node: MutableNode) -> list[str]:
        if cfg.meta_policy == "model":
            return [None] * cfg.num_candidates  # type: ignore[list-item]
        if cfg.meta_policy == "rules":
            has_concl = any(b[c].meta_action == "conclusion" for c in node.children)
            v = node.value if node.value is not None else 0.5
            return rule_metas(
                node.meta_action or "problem", node.text, v, has_concl, cfg.num_candidates, rng
            )
        edges = [
            (b[n.parent].meta_action or "problem", n.meta_action or "expansion", n.value or 0.0)
            for n in b.nodes[1:]
        ]
        row = transition_matrix(edges, cfg.transition_mask)[node.meta_action or "problem"]
        return sample_metas(row, cfg.num_candidates, rng)

    def write_children(
        node_ids: Sequence[int], metas: Sequence[Sequence[str | None]], gen_params: SamplingParams
    ) -> SearchGen:
        """Policy head for every (node, meta), then the value head for every new child."""
        prompts, owners = [], []
        ids = iter(fresh_ids(sum(len(ms) for ms in metas)))
        # Path strings of the extended nodes: their ratings do not change while their children
        # are written and rated, so policy and value prompts share them.
        contexts = {nid: path_text(nid) for nid in node_ids}
        for nid, ms in zip(node_ids, metas, strict=True):
            for m in ms:
                lid = next(ids)
                prompts.append(contexts[nid] + "\n" + node_header(local_id(b[nid]), lid, m))
                owners.append((nid, m, lid))
        out = yield Generate(tuple(prompts), gen_params)
        new: list[MutableNode] = []
        for (nid, m, lid), row in zip(owners, out, strict=True):
            g = row[0]
            text = g.text
            meta = m
            if meta is None:  # the model wrote the tag
                meta = "expansion"
                for cand in META_ACTIONS:
                    if text.lstrip().startswith(META_TAGS[cand]):
                        meta = cand
                        break
            text = clean_thought(text)
            b[nid].info["expansions"] = b[nid].info.get("expansions", 0) + 1
            twin = next(
                (b[k] for k in b[nid].children if b[k].text == text and b[k].meta_action == meta),
                None,
            )
            if twin is not None and cfg.merge_duplicates:
                # The same thought again: count its tokens on the twin, add no node.
                twin.generated_tokens += max(g.num_tokens, 0)
                twin.info["duplicates"] = twin.info.get("duplicates", 0) + 1
                continue
            mean_lp, ent, vent = _stats(g)
            child = b.add(nid, text, generation=g, meta_action=meta)
            if lid != child.id:
                child.info["local_id"] = lid
            child.info.update(
                {
                    "seq_prob": math.exp(mean_lp) if math.isfinite(mean_lp) else 0.0,
                    "entropy": None if math.isnan(ent) else ent,
                    "varentropy": None if math.isnan(vent) else vent,
                    "finish_reason": g.finish_reason,
                }
            )
            if meta == "conclusion":
                child.terminal = True
                child.answer = answer_of_text(text)
            new.append(child)
        # Value head for the new children, each in its parent's context (an empty request when
        # every child was a duplicate, so that all problems of a batch stay in step).
        vprompts = tuple(
            rating_prompt(
                contexts[c.parent],  # type: ignore[index]
                local_id(b[c.parent]),  # type: ignore[index]
                local_id(c),
                c.meta_action,  # type: ignore[arg-type]
                c.text,
            )
            for c in new
        )
        cands = (RATING_TOKENS["positive"], RATING_TOKENS["negative"])
        probs = yield NextTokenProbs(vprompts, cands)
        for c, p in zip(new, probs, strict=True):
            c.value = rating_value(p)
            c.info["original_value"] = c.value
        # Priors: sequence probabilities normalised over each node's children (B17).
        for nid in set(node_ids):
            kids = [b[k] for k in b[nid].children]
            total = sum(k.info.get("seq_prob", 0.0) for k in kids)
            for k in kids:
                k.prior = k.info.get("seq_prob", 0.0) / total if total > 0 else 1.0 / len(kids)
        return new

    def select(node: MutableNode) -> MutableNode:
        kids = [b[k] for k in node.children]
        scores = puct_scores(
            [k.value if k.value is not None else 0.0 for k in kids],
            [k.prior if k.prior is not None else 0.0 for k in kids],
            [k.visits for k in kids],
            [k.info.get("varentropy") or 0.0 for k in kids],
            cfg.c_puct,
            cfg.varentropy_lambda,
        )
        if cfg.noise > 0:
            scores = [s + cfg.noise * rng.uniform(-1, 1) for s in scores]
        best = max(range(len(kids)), key=lambda i: (scores[i], -kids[i].id))
        return kids[best]

    def expandable(node: MutableNode) -> bool:
        return node.info.get("expansions", 0) < cfg.max_children

    for _sim in range(cfg.simulations):
        # Selection: descend through fully widened nodes.
        path = [root]
        node = root
        while not expandable(node) and node.children:
            node = select(node)
            path.append(node)
        new = yield from write_children([node.id], [metas_for(node)], params)
        leaf_value = (select(node).value or 0.0) if node.children else 0.0
        if verifier is not None:
            for c in new:
                if c.meta_action == "conclusion" and c.answer is not None:
                    ok = verifier(c.answer)
                    if ok is not None:
                        c.info["leaf_type"] = "successful" if ok else "failed"
                        successes += bool(ok)
        # Backup: discounted value averaged into every node on the path (running mean).
        v = leaf_value
        for n in reversed(path):
            v *= cfg.gamma
            n.visits += 1
            prev = n.value if n.visits > 1 and n.value is not None else v
            n.value = prev + (v - prev) / n.visits
        if verifier is not None and successes >= cfg.patience:
            break

    # Rectification with the verifier's verdicts (training-time only).
    if verifier is not None:
        leaves = [
            (n.id, n.info["leaf_type"] == "successful")
            for n in b.nodes
            if n.info.get("leaf_type") in ("successful", "failed")
        ]
        true, counts = rectify([n.parent for n in b.nodes], leaves, cfg.gamma)
        for n, tv, k in zip(b.nodes, true, counts, strict=True):
            if tv is not None:
                n.info["true_value"] = tv
                n.info["rectify_visits"] = k

    def best_conclusion() -> MutableNode | None:
        concl = [n for n in b.nodes if n.meta_action == "conclusion" and n.answer is not None]
        if not concl:
            return None
        answers = [n.answer for n in concl]
        values = [path_value(n.id) for n in concl]
        return concl[choose_conclusion(answers, values, cfg.answer_selection)]  # type: ignore[arg-type]

    def path_value(node_id: int) -> float:
        """The lowest value-head estimate of the steps leading to a conclusion (PRM-style: one
        bad step sinks it); the conclusion's own rating is left out, as in the ``value`` scorer
        (berry-tiny rates right conclusions below wrong ones)."""
        steps = b.path(node_id)[1:-1] or b.path(node_id)[1:]
        return min(b[i].info.get("original_value", 1.0) for i in steps)

    chosen = best_conclusion()
    if chosen is None and cfg.finish_steps > 0:
        # Finish greedily from the best-valued leaf (the model chooses the meta actions).
        leaves = [n for n in b.nodes if not n.children and n.id != 0] or [root]
        node = max(leaves, key=lambda n: (n.value or 0.0, -n.id))
        greedy = SamplingParams(
            max_new_tokens=cfg.max_thought_tokens, temperature=0.0, stop=stops, token_stats=True
        )
        for _ in range(cfg.finish_steps):
            (node,) = yield from write_children([node.id], [[None]], greedy)
            node.info["finish"] = True
            if node.meta_action == "conclusion" and node.answer is not None:
                chosen = node
                break
    root.value = root.value if root.value is not None else 0.0
    return b.freeze(
        chosen=b.path(chosen.id) if chosen is not None else (),
        info={
            "verifier": verifier is not None,
        },
    )

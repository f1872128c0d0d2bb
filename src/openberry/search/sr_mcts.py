"""LLaMA-Berry's SR-MCTS with the PPRM and Enhanced Borda Count (Zhang et al. 2024,
arXiv 2410.02884 section 3; seed-spec section 2).

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
itself (the paper's rm@k). No reference answer is involved in either. We chose the default on the
arithmetic *validation* split with berry-tiny (200 problems; this rule 70.5 % at 8 rollouts and
74.5 % at 16, top EBC 63.5 % and 55.5 %): self-refinement moves the tree towards the right answer,
and a vote over the refinements is robust to a judge that ranks near-identical solutions poorly
(BENCHMARKS.md, "Search").

Preferences come from the judge model (``preference="judge"``: "Is solution A better than
solution B?" and P(Yes) from the next-token probabilities, the PPRM), or from a Bradley-Terry
model over the value head's scores (``preference="value"``; the paper writes the PPRM in this BT
form). Judge answers are cached per ordered pair, so each rollout asks only about the new
solution: 2(n - 1) comparisons for n solutions.

Departures: the root is the model's first solution at the sampling temperature (the paper leaves
the temperature unreported; we use MCTSr's 0.95). N counts a node's evaluation plus the times it
was selected. The local win rate and tie-breaking follow `openberry.search.ebc`.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from openberry.formats.prompts import review_prompt, solve_prompt
from openberry.models.base import SamplingParams
from openberry.records import Problem
from openberry.search.common import TreeBuilder, rewrite_child, vote_key
from openberry.search.ebc import LocalRule, ebc_ranking, ebc_scores, symmetrize
from openberry.search.engine import Generate, SearchGen
from openberry.search.scorers import (
    ScorerConfig,
    forward_table,
    judge_preferences,
    value_preferences,
    value_scores,
)

__all__ = ["SRMCTSConfig", "berry_backup", "sr_mcts", "uct_berry"]


@dataclass(frozen=True)
class SRMCTSConfig:
    """SR-MCTS settings; defaults are the paper's Table A1."""

    rollouts: int = 8
    """Rollouts N_max (paper: 8 and 16)."""
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
    """Value-scorer settings (for ``preference="value"``)."""
    answer_selection: Literal["vote", "ebc"] = "vote"
    """How the answer is chosen after the last rollout: ``vote``, the most frequent final answer
    over every solution of the tree (the paper's maj@k; a tie goes to the answer with the higher
    summed EBC score), reached through its top-EBC solution; ``ebc``, the top-EBC solution (the
    paper's rm@k)."""


def uct_berry(q: float, n_parent: int, n: int, c: float = 1.4) -> float:
    """``q + c * sqrt(ln N(parent) / N(node))``; an unvisited node scores +inf."""
    if n <= 0:
        return math.inf
    return q + c * math.sqrt(math.log(max(n_parent, 1)) / n)


def berry_backup(parent_q: float, child_q: float, gamma: float = 0.1) -> float:
    """``(1 - gamma) * parent_q + gamma * child_q``."""
    return (1.0 - gamma) * parent_q + gamma * child_q


def _select(rule: str, answers: list[str | None], scores: list[float]) -> int:
    """Index of the chosen solution: the top EBC score (``ebc``), or the top-scored solution of
    the most frequent answer (``vote``; ties between answers go to the higher summed score;
    solutions without an answer do not vote, and when none has one the top score wins)."""
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


def sr_mcts(problem: Problem, rng: random.Random, config: SRMCTSConfig) -> SearchGen:
    """Run SR-MCTS on one problem (see the module docstring)."""
    cfg = config
    b = TreeBuilder(problem, "sr-mcts")
    sample = SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature)
    critique_params = SamplingParams(
        max_new_tokens=cfg.critique_max_new_tokens, temperature=cfg.temperature, stop=("\n",)
    )
    sols: list[int] = []  # node ids of solutions, index k = solution k
    q: dict[int, float] = {}
    judged: dict[tuple[int, int], float] = {}  # (k, l) -> judge P(Yes) with k shown first
    values: dict[int, float] = {}

    def table() -> list[list[float]]:
        if cfg.preference == "judge":
            return symmetrize(forward_table(len(sols), judged))
        return value_preferences([values[k] for k in range(len(sols))])

    def parents() -> list[int | None]:
        index = {nid: k for k, nid in enumerate(sols)}
        return [index.get(b[nid].parent) for nid in sols]  # type: ignore[arg-type]

    def evaluate_new() -> SearchGen:
        k = len(sols) - 1
        texts = [b[nid].text for nid in sols]
        if cfg.preference == "judge":
            pairs = [(k, j) for j in range(k)] + [(j, k) for j in range(k)]
            got = yield from judge_preferences(problem, texts, pairs)
            judged.update(got)
        else:
            (v,) = yield from value_scores(problem, [texts[k]], cfg.scorer_config)
            values[k] = v
            b[sols[k]].info["value_score"] = v
        return ebc_scores(table(), parents(), alpha=cfg.alpha, rule=cfg.local_rule)[k]

    out = yield Generate((solve_prompt(problem.question),), sample)
    first = out[0][0]
    root = b.add_solution(0, first)
    sols.append(root.id)
    q[root.id] = yield from evaluate_new()
    root.visits = 1
    b.root.visits = 1

    for rollout in range(cfg.rollouts):
        cands = [
            nid
            for nid in sols
            if len(b[nid].children) < cfg.max_children
            or max(q[c] for c in b[nid].children) < q[nid]
        ]
        if not cands:
            break
        selected = max(
            cands,
            key=lambda nid: (
                uct_berry(q[nid], b[b[nid].parent].visits, b[nid].visits, cfg.c),
                -nid,
            ),
        )
        b[selected].visits += 1
        b.root.visits += 1
        crit = yield Generate((review_prompt(problem.question, b[selected].text),), critique_params)
        child = yield from rewrite_child(b, problem, selected, crit[0][0], sample, rollout + 1)
        child.visits = 1
        sols.append(child.id)
        q[child.id] = yield from evaluate_new()
        q[selected] = berry_backup(q[selected], q[child.id], cfg.gamma)

    prefs = table()
    order = ebc_ranking(prefs)
    final = ebc_scores(prefs, parents(), alpha=cfg.alpha, rule=cfg.local_rule)
    for k, nid in enumerate(sols):
        b[nid].value = min(1.0, max(0.0, q[nid]))
        b[nid].info["ebc_score"] = final[k]
        b[nid].info["rank"] = order.index(k) + 1
    best = sols[_select(cfg.answer_selection, [b[nid].answer for nid in sols], final)]
    return b.freeze(
        chosen=b.path(best),
        info={
            "ranking": [sols[k] for k in order],
        },
    )

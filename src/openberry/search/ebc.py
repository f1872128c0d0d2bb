"""Enhanced Borda Count: pairwise preferences to one score per solution (LLaMA-Berry, section 3.3).

LLaMA-Berry's pairwise preference reward model (PPRM) says how likely solution i beats solution j;
EBC turns the n x n table of those probabilities into a ranking and a scalar score:

1. local preferences ``M[i][j] = 1`` iff ``P[i][j] >= 0.5`` (`preference_matrix`);
2. transitive closure of M, Warshall's algorithm (`transitive_closure`);
3. Borda count = out-degree of the closure, the number of solutions i beats (`borda_counts`);
4. ranking by Borda count; solutions with equal counts (a "layer", common when preferences have
   cycles) are re-ranked by the PPRM probabilities (`ebc_ranking`);
5. global quantile score ``Q_g = 1 - (rank - 1) / (n - 1)`` (`global_scores`);
6. local win rate ``Q_l`` against a node's neighbours in the search tree (`local_win_rates`);
7. ``Q = alpha * Q_g + (1 - alpha) * Q_l`` with alpha = 0.9 (`ebc_scores`).

Departures, each a choice the paper leaves open:

- Ties inside a layer are ordered by each member's summed probability of beating the other members
  of its layer (then by index). For two members this is exactly the paper's comparator
  ``P[i][j] > P[j][i]``; for more it is a total order even when the pairwise comparator is cyclic
  (sorting with a cyclic comparator gives an order that depends on the sort algorithm).
- A diagonal entry never counts: a solution does not beat itself, even when cycles put it in its
  own closure.
- ``Q_l``: the printed formula (the share of v's *children* that beat v) rewards a node for being
  beaten. By default we use the reading "derived from comparisons with adjacent nodes": the share
  of v's tree neighbours (parent and children) that v beats, 0 without neighbours. The printed
  formula is available as ``local="children_beat"``.
- With one solution, ``Q_g = 1``.

Pure Python, no model: the search methods feed it probabilities from any preference source.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

__all__ = [
    "LocalRule",
    "borda_counts",
    "ebc_ranking",
    "ebc_scores",
    "global_scores",
    "local_win_rates",
    "preference_matrix",
    "symmetrize",
    "transitive_closure",
]

Matrix = list[list[float]]
LocalRule = Literal["neighbours", "children_beat"]


def _check_square(p: Sequence[Sequence[float]]) -> int:
    n = len(p)
    if any(len(row) != n for row in p):
        raise ValueError("preference table must be square")
    return n


def symmetrize(p_forward: Sequence[Sequence[float]]) -> Matrix:
    """Cancel position bias: ``P[i][j] = (p(i first, i wins) + 1 - p(j first, j wins)) / 2``.

    `p_forward[i][j]` is the judge's probability that the first solution (i) is better when i is
    shown first. The result satisfies ``P[i][j] + P[j][i] = 1`` off the diagonal (diagonal 0.5).
    """
    n = _check_square(p_forward)
    out = [[0.5] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            if i != j:
                out[i][j] = 0.5 * (p_forward[i][j] + 1.0 - p_forward[j][i])
    return out


def preference_matrix(p: Sequence[Sequence[float]], threshold: float = 0.5) -> list[list[int]]:
    """``M[i][j] = 1`` iff ``P[i][j] >= threshold`` (i beats j), diagonal 0."""
    n = _check_square(p)
    return [[int(i != j and p[i][j] >= threshold) for j in range(n)] for i in range(n)]


def transitive_closure(m: Sequence[Sequence[int]]) -> list[list[int]]:
    """Boolean transitive closure (Warshall): i beats j if a chain of wins leads from i to j."""
    n = _check_square(m)
    c = [[int(bool(x)) for x in row] for row in m]
    for k in range(n):
        ck = c[k]
        for i in range(n):
            if c[i][k]:
                ci = c[i]
                for j in range(n):
                    if ck[j]:
                        ci[j] = 1
    return c


def borda_counts(c: Sequence[Sequence[int]]) -> list[int]:
    """Borda count of each solution: how many other solutions it beats in the closure."""
    n = _check_square(c)
    return [sum(c[i][j] for j in range(n) if j != i) for i in range(n)]


def ebc_ranking(p: Sequence[Sequence[float]], threshold: float = 0.5) -> list[int]:
    """Solution indices from best to worst: Borda count, then soft wins inside each layer."""
    return _rank(p, transitive_closure(preference_matrix(p, threshold)))


def _rank(p: Sequence[Sequence[float]], closure: Sequence[Sequence[int]]) -> list[int]:
    n = len(closure)
    borda = borda_counts(closure)
    layers: dict[int, list[int]] = {}
    for i in range(n):
        layers.setdefault(borda[i], []).append(i)
    order: list[int] = []
    for count in sorted(layers, reverse=True):
        members = layers[count]
        soft = {i: sum(p[i][j] for j in members if j != i) for i in members}
        order.extend(sorted(members, key=lambda i: (-soft[i], i)))
    return order


def global_scores(order: Sequence[int]) -> list[float]:
    """``Q_g = 1 - (rank - 1) / (n - 1)`` for each solution (rank 1 = best), indexed by solution."""
    n = len(order)
    scores = [0.0] * n
    for rank0, i in enumerate(order):
        scores[i] = 1.0 if n == 1 else 1.0 - rank0 / (n - 1)
    return scores


def local_win_rates(
    c: Sequence[Sequence[int]],
    parents: Sequence[int | None],
    rule: LocalRule = "neighbours",
) -> list[float]:
    """Local score of each solution from its tree neighbours (see the module docstring).

    Args:
        c: transitive closure, ``c[i][j] = 1`` iff i beats j.
        parents: parent index of each solution among the same solutions (None for none).
        rule: ``neighbours`` (share of parent and children that i beats) or ``children_beat``
            (the paper's printed formula: share of i's children that beat i).
    """
    n = _check_square(c)
    if len(parents) != n:
        raise ValueError("one parent entry per solution is needed")
    children: list[list[int]] = [[] for _ in range(n)]
    for i, par in enumerate(parents):
        if par is not None:
            children[par].append(i)
    out = []
    for i in range(n):
        if rule == "children_beat":
            kids = children[i]
            out.append(sum(c[u][i] for u in kids) / len(kids) if kids else 0.0)
        elif rule == "neighbours":
            near = children[i] + ([parents[i]] if parents[i] is not None else [])
            out.append(sum(c[i][u] for u in near) / len(near) if near else 0.0)
        else:
            raise ValueError(f"unknown local rule {rule!r}")
    return out


def ebc_scores(
    p: Sequence[Sequence[float]],
    parents: Sequence[int | None] | None = None,
    *,
    alpha: float = 0.9,
    rule: LocalRule = "neighbours",
    threshold: float = 0.5,
) -> list[float]:
    """``alpha * Q_g + (1 - alpha) * Q_l`` for every solution (LLaMA-Berry's EBC score).

    Args:
        p: ``p[i][j]`` = probability that solution i is better than solution j.
        parents: tree parents among the same solutions (None: no tree, ``Q_l = 0``).
        alpha: weight of the global quantile score (paper: 0.9).
        rule: local-score rule (see `local_win_rates`).
        threshold: probability from which i counts as beating j.
    """
    n = _check_square(p)
    if n == 0:
        return []
    closure = transitive_closure(preference_matrix(p, threshold))
    qg = global_scores(_rank(p, closure))
    ql = [0.0] * n if parents is None else local_win_rates(closure, parents, rule)
    return [alpha * g + (1 - alpha) * loc for g, loc in zip(qg, ql, strict=True)]

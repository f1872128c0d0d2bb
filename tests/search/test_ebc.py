"""Enhanced Borda Count: closed-form checks of each stage."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openberry.search.ebc import (
    borda_counts,
    ebc_ranking,
    ebc_scores,
    global_scores,
    local_win_rates,
    preference_matrix,
    symmetrize,
    transitive_closure,
)


def test_preference_matrix_thresholds_at_one_half_and_ignores_the_diagonal() -> None:
    p = [[0.9, 0.5, 0.2], [0.5, 0.5, 0.49], [0.8, 0.51, 0.5]]
    assert preference_matrix(p) == [[0, 1, 0], [1, 0, 0], [1, 1, 0]]


def test_transitive_closure_of_a_chain() -> None:
    chain = [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]]
    assert transitive_closure(chain) == [[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]]
    assert borda_counts(transitive_closure(chain)) == [3, 2, 1, 0]


@given(st.lists(st.lists(st.booleans(), min_size=5, max_size=5), min_size=5, max_size=5))
def test_closure_equals_reachability(rows: list[list[bool]]) -> None:
    m = [[int(x) for x in r] for r in rows]
    c = transitive_closure(m)
    n = len(m)
    for i, j in itertools.product(range(n), range(n)):
        # Reachable by a path of length 1..n (brute force by boolean powers).
        reach = set()
        frontier = {k for k in range(n) if m[i][k]}
        while frontier - reach:
            reach |= frontier
            frontier = {k for f in frontier for k in range(n) if m[f][k]}
        assert c[i][j] == int(j in reach)


def test_a_cycle_makes_one_layer_reranked_by_probabilities() -> None:
    # 0 > 1 > 2 > 0 (a cycle): equal Borda counts; soft wins decide: 0 has 0.9 + 0.4.
    p = [[0.5, 0.9, 0.4], [0.1, 0.5, 0.7], [0.6, 0.3, 0.5]]
    assert borda_counts(transitive_closure(preference_matrix(p))) == [2, 2, 2]
    assert ebc_ranking(p) == [0, 2, 1]  # soft wins: 0 -> 1.3, 1 -> 0.8, 2 -> 0.9


def test_global_scores_are_quantiles_of_the_rank() -> None:
    assert global_scores([2, 0, 1]) == [0.5, 0.0, 1.0]
    assert global_scores([0]) == [1.0]


def test_local_win_rates_both_rules() -> None:
    # Tree 0 -> 1, 0 -> 2; closure: 1 beats 0, 0 beats 2.
    c = [[0, 0, 1], [1, 0, 1], [0, 0, 0]]
    parents = [None, 0, 0]
    assert local_win_rates(c, parents, "neighbours") == [0.5, 1.0, 0.0]
    assert local_win_rates(c, parents, "children_beat") == [0.5, 0.0, 0.0]


def test_ebc_scores_combine_global_and_local_with_alpha() -> None:
    p = [[0.5, 0.2, 0.8], [0.8, 0.5, 0.9], [0.2, 0.1, 0.5]]  # 1 > 0 > 2
    scores = ebc_scores(p, [None, 0, 0], alpha=0.9)
    assert scores == pytest.approx([0.9 * 0.5 + 0.1 * 0.5, 0.9 * 1.0 + 0.1 * 1.0, 0.0])
    assert ebc_scores(p) == pytest.approx([0.45, 0.9, 0.0])


def test_symmetrize_cancels_position_bias() -> None:
    # A judge that says Yes 0.8 more often for whatever is shown first.
    forward = [[0.5, 0.9], [0.7, 0.5]]
    p = symmetrize(forward)
    assert p[0][1] == pytest.approx(0.5 * (0.9 + 0.3)) and p[0][1] + p[1][0] == pytest.approx(1)

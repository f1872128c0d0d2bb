"""The curriculum's draws and moves."""

from __future__ import annotations

import random

from openberry.records import Example, Problem
from openberry.training.rl.curriculum import CurriculumState, advance, draw_round


def _level(k: int, n: int) -> list[Example]:
    return [Example(Problem(id=f"L{k}/{i}", question=f"q{k}-{i}"), answer="1") for i in range(n)]


def test_level_zero_draws_only_its_own_problems() -> None:
    levels = [_level(0, 50), _level(1, 50)]
    picks = draw_round(levels, CurriculumState(), 16, 0.25, random.Random(0))
    assert len(picks) == 16
    assert {k for k, _ in picks} == {0}
    assert len({e.problem.id for _, e in picks}) == 16  # no repeats


def test_later_levels_review_earlier_ones() -> None:
    levels = [_level(0, 50), _level(1, 50), _level(2, 50)]
    picks = draw_round(levels, CurriculumState(level=2), 20, 0.25, random.Random(1))
    assert sum(k == 2 for k, _ in picks) == 15
    assert sum(k < 2 for k, _ in picks) == 5


def test_draws_are_reproducible_from_the_rng() -> None:
    levels = [_level(0, 50), _level(1, 50)]
    a = draw_round(levels, CurriculumState(level=1), 8, 0.5, random.Random(7))
    b = draw_round(levels, CurriculumState(level=1), 8, 0.5, random.Random(7))
    assert [e.problem.id for _, e in a] == [e.problem.id for _, e in b]


def test_advance_moves_up_at_the_threshold_and_stops_at_the_top() -> None:
    s = CurriculumState()
    assert advance(s, 0.59, 0.6, 3) == CurriculumState(0, 1)
    assert advance(s, 0.6, 0.6, 3) == CurriculumState(1, 0)
    assert advance(CurriculumState(2, 4), 1.0, 0.6, 3) == CurriculumState(2, 5)
    assert advance(s, None, 0.6, 3) == CurriculumState(0, 1)

"""A curriculum over problem length: self-play moves to longer problems as accuracy rises.

Levels are lists of problems, easiest first (for the arithmetic task: the operand count of its
problems). Each round draws most of its problems from the current level and a share
(``review_share``) from the levels already passed, so what was learnt is rehearsed; when the
search solves at least ``advance_at`` of the current level's problems in a round, the next round
moves up one level. Curriculum learning (Bengio et al. 2009) with a success threshold, as
self-play curricula in reasoning RL do; the state is two integers, saved with each checkpoint.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from openberry.records import Example

__all__ = ["CurriculumState", "advance", "draw_round"]


@dataclass(frozen=True)
class CurriculumState:
    """Where the curriculum stands."""

    level: int = 0
    """Index of the current level."""
    rounds_at_level: int = 0
    """Rounds played at the current level."""


def draw_round(
    levels: Sequence[Sequence[Example]],
    state: CurriculumState,
    n: int,
    review_share: float,
    rng: random.Random,
) -> list[tuple[int, Example]]:
    """`n` (level, example) pairs for one round: ``round(n * review_share)`` from the earlier
    levels (none at level 0), the rest from the current level, without repeats within a level."""
    review = round(n * review_share) if state.level > 0 else 0
    current = list(levels[state.level])
    picks = [(state.level, e) for e in rng.sample(current, min(n - review, len(current)))]
    earlier = [(k, e) for k in range(state.level) for e in levels[k]]
    picks += rng.sample(earlier, min(review, len(earlier)))
    return picks


def advance(
    state: CurriculumState, accuracy: float | None, advance_at: float, n_levels: int
) -> CurriculumState:
    """The state after a round whose current-level accuracy was `accuracy` (None: no problem of
    the level was played)."""
    if accuracy is not None and accuracy >= advance_at and state.level + 1 < n_levels:
        return CurriculumState(level=state.level + 1, rounds_at_level=0)
    return CurriculumState(level=state.level, rounds_at_level=state.rounds_at_level + 1)

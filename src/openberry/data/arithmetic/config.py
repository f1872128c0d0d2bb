"""Difficulty knobs of the arithmetic task, and the task's error type.

The defaults are chosen for a ~1M-10M parameter model trained from scratch on a CPU, with headroom
left for search: hard enough that such a model still makes mistakes for search to fix, easy enough
that it solves problems greedily. Small multipliers and at most one pair of parentheses keep each
step learnable.
"""

from __future__ import annotations

from dataclasses import dataclass

from openberry.errors import BerryError

__all__ = ["OPERATORS", "ArithmeticConfig", "ArithmeticTaskError"]

OPERATORS: tuple[str, ...] = ("+", "-", "*")
"""Every operator the task knows, in the order the config validation lists them."""


class ArithmeticTaskError(BerryError, ValueError):
    """A bad request to the arithmetic task: invalid config, unknown split, unreadable expression."""


@dataclass(frozen=True)
class ArithmeticConfig:
    """How hard the generated problems are. Every field's docstring is its help text.

    A problem is drawn as: a count of numbers, an operator between each pair of neighbours, the
    numbers themselves (a right operand of ``*`` comes from the multiplier range), and with
    probability `paren_prob` one pair of parentheses that changes the order of operations. Draws
    that break `allow_negative` or `max_value` are redrawn.
    """

    min_operands: int = 3
    """Fewest numbers in a problem; a problem with n numbers takes n - 1 steps. At least 2."""
    max_operands: int = 4
    """Most numbers in a problem; the count is drawn uniformly from [min_operands, max_operands]."""
    min_number: int = 1
    """Smallest operand (right operands of ``*`` excepted). Non-negative."""
    max_number: int = 30
    """Largest operand (right operands of ``*`` excepted)."""
    operators: str = "+-*"
    """Operators to draw from, each equally likely: a non-empty subset of ``+-*``, e.g. ``+-``."""
    min_multiplier: int = 2
    """Smallest right operand of ``*``; small multipliers keep products learnable for a tiny model."""
    max_multiplier: int = 9
    """Largest right operand of ``*``."""
    paren_prob: float = 0.25
    """Probability that a problem of 3+ numbers gets one pair of parentheses that changes its
    order of operations (parentheses never follow ``*``, so multipliers stay small)."""
    allow_negative: bool = False
    """Allow negative intermediate results and answers; when false such draws are redrawn."""
    max_value: int = 999
    """Largest absolute value any step result may have; larger draws are redrawn."""

    def __post_init__(self) -> None:
        for name in (
            "min_operands",
            "max_operands",
            "min_number",
            "max_number",
            "min_multiplier",
            "max_multiplier",
            "max_value",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ArithmeticTaskError(
                    f"ArithmeticConfig.{name} must be an integer, got {value!r}"
                )
        if self.min_operands < 2:
            raise ArithmeticTaskError(
                f"ArithmeticConfig.min_operands must be at least 2 (a problem needs at least one "
                f"operation), got {self.min_operands}"
            )
        if self.max_operands < self.min_operands:
            raise ArithmeticTaskError(
                f"ArithmeticConfig.max_operands ({self.max_operands}) is below min_operands "
                f"({self.min_operands}); raise max_operands or lower min_operands"
            )
        if self.min_number < 0:
            raise ArithmeticTaskError(
                f"ArithmeticConfig.min_number must be >= 0 (operands are written without a sign; "
                f"use allow_negative for negative results), got {self.min_number}"
            )
        if self.max_number < self.min_number:
            raise ArithmeticTaskError(
                f"ArithmeticConfig.max_number ({self.max_number}) is below min_number "
                f"({self.min_number})"
            )
        if not isinstance(self.operators, str) or not self.operators:
            raise ArithmeticTaskError(
                f"ArithmeticConfig.operators must be a non-empty string of operators from "
                f"'+-*', got {self.operators!r}"
            )
        unknown = sorted(set(self.operators) - set(OPERATORS))
        if unknown:
            raise ArithmeticTaskError(
                f"ArithmeticConfig.operators has unknown operator(s) {''.join(unknown)!r}; "
                f"use a subset of '+-*'"
            )
        if len(set(self.operators)) != len(self.operators):
            raise ArithmeticTaskError(
                f"ArithmeticConfig.operators lists an operator twice ({self.operators!r}); "
                f"list each once (operators are drawn uniformly)"
            )
        if "*" in self.operators:
            if self.min_multiplier < 0:
                raise ArithmeticTaskError(
                    f"ArithmeticConfig.min_multiplier must be >= 0, got {self.min_multiplier}"
                )
            if self.max_multiplier < self.min_multiplier:
                raise ArithmeticTaskError(
                    f"ArithmeticConfig.max_multiplier ({self.max_multiplier}) is below "
                    f"min_multiplier ({self.min_multiplier})"
                )
        if isinstance(self.paren_prob, bool) or not isinstance(self.paren_prob, (int, float)):
            raise ArithmeticTaskError(
                f"ArithmeticConfig.paren_prob must be a number, got {self.paren_prob!r}"
            )
        if not 0.0 <= self.paren_prob <= 1.0:
            raise ArithmeticTaskError(
                f"ArithmeticConfig.paren_prob is a probability and must lie in [0, 1], "
                f"got {self.paren_prob}"
            )
        if not isinstance(self.allow_negative, bool):
            raise ArithmeticTaskError(
                f"ArithmeticConfig.allow_negative must be true or false, got {self.allow_negative!r}"
            )
        if self.max_value < 1:
            raise ArithmeticTaskError(
                f"ArithmeticConfig.max_value must be >= 1, got {self.max_value}"
            )

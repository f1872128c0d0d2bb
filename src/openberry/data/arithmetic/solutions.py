"""Writers of step-by-step solutions: correct ones, ones with an injected slip, critiques,
per-step rating labels and pairwise comparisons; and a checker that replays any solution text.

A solution is one step per line, ``a op b = c`` in the canonical order (see `expression`), then
``The answer is \\boxed{N}.``. A *slip* makes one step's result wrong by a mistake a model makes
(off by one or two, a lost or extra carry, a neighbouring row of the times table, swapped
digits); the later steps carry the wrong value on, as a model would, so the final answer is wrong.
Flawed solutions are written on purpose, with the slips a small model makes: they train critics
and value heads.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any, Literal

from openberry.data.arithmetic.config import ArithmeticTaskError
from openberry.data.arithmetic.expression import (
    BinOp,
    Expr,
    Num,
    Step,
    canonical_redex,
    expression_of,
    parse_expression,
    parse_step,
    redexes,
    reduce_at,
    render,
)
from openberry.records import Problem

__all__ = [
    "HABIT_KIND",
    "SLIP_KINDS",
    "ComparisonPair",
    "Critique",
    "RatingLabel",
    "Slip",
    "Solution",
    "SolutionCheck",
    "answer_line",
    "check_solution",
    "habit_result",
    "random_slipped_solution",
    "rating_labels",
    "slip_result",
    "write_critique",
    "write_habitual_solution",
    "write_pair",
    "write_slipped_solution",
    "write_solution",
]

SLIP_KINDS: tuple[str, ...] = ("off_by", "carry", "wrong_product", "swapped_digits")
"""Kinds of injected mistakes: result off by 1 or 2; off by 10 (carry, results >= 10 only);
a neighbouring times-table entry (``*`` only); the last two digits swapped."""

HABIT_KIND = "forgot_carry"
"""The systematic mistake of `habit_result` / `write_habitual_solution` (not in `SLIP_KINDS`:
random slips never draw it)."""

_BOXED_RE = re.compile(r"\\boxed\{\s*(-?\d+)\s*\}")

RNG = random.Random | int


def _as_rng(rng: RNG) -> random.Random:
    if isinstance(rng, random.Random):
        return rng
    if isinstance(rng, bool) or not isinstance(rng, int):
        raise ArithmeticTaskError(f"rng must be a random.Random or an int seed, got {rng!r}")
    return random.Random(rng)


def answer_line(value: int | str) -> str:
    r"""The final line of a solution: ``The answer is \boxed{118}.``

    Args:
        value: The final answer.

    Returns:
        The line.
    """
    return f"The answer is \\boxed{{{value}}}."


@dataclass(frozen=True)
class Slip:
    """Where and how a flawed solution went wrong."""

    step_index: int
    """0-based index of the wrong step (the critique says ``Step {step_index + 1}``)."""
    kind: str
    """One of `SLIP_KINDS`, or `HABIT_KIND`."""
    correct_result: int
    """What the step should have computed."""
    wrong_result: int
    """What it wrote instead."""


@dataclass(frozen=True)
class Solution:
    """A written solution: its steps in order and, for a flawed one, the slip."""

    expression: str
    """Canonical expression the solution computes."""
    steps: tuple[Step, ...]
    """The steps as written; after a slip they carry the wrong value on."""
    slip: Slip | None = None
    """The injected mistake, None for a correct solution."""

    @property
    def answer(self) -> int:
        """The final answer as written (wrong for a flawed solution)."""
        return self.steps[-1].result

    @property
    def is_correct(self) -> bool:
        return self.slip is None

    @property
    def lines(self) -> tuple[str, ...]:
        """One line per step, then the answer line."""
        return (*(step.text for step in self.steps), answer_line(self.answer))

    @property
    def text(self) -> str:
        """The solution text, lines joined by newlines."""
        return "\n".join(self.lines)


def _reduce(expr: Expr, slip: tuple[int, int] | None = None) -> tuple[Step, ...]:
    """Canonical steps; with ``slip=(i, v)`` step i writes v and later steps carry it."""
    steps: list[Step] = []
    while isinstance(expr, BinOp):
        redex = canonical_redex(expr)
        result = redex.result
        if slip is not None and len(steps) == slip[0]:
            result = slip[1]
        steps.append(Step(redex.left, redex.op, redex.right, result))
        expr = reduce_at(expr, redex.path, result)
    return tuple(steps)


def _parse_with_steps(expression: str) -> Expr:
    expr = parse_expression(expression)
    if isinstance(expr, Num):
        raise ArithmeticTaskError(f"{expression!r} is a number; a solution needs an operation")
    return expr


def write_solution(expression: str) -> Solution:
    """The correct step-by-step solution of an expression.

    Args:
        expression: The expression (any spacing).

    Returns:
        The solution; ``solution.text`` is e.g.
        ``48 * 2 = 96\\n37 + 96 = 133\\n133 - 15 = 118\\nThe answer is \\boxed{118}.``
    """
    expr = _parse_with_steps(expression)
    return Solution(render(expr), _reduce(expr))


def _slip_values(step: Step, kind: str) -> list[int]:
    correct = step.result
    values: list[int] = []
    if kind == "off_by":
        values = [correct - 2, correct - 1, correct + 1, correct + 2]
    elif kind == "carry" and abs(correct) >= 10:
        values = [correct - 10, correct + 10]
    elif kind == "wrong_product" and step.op == "*":
        values = [
            correct - step.left,
            correct + step.left,
            correct - step.right,
            correct + step.right,
        ]
    elif kind == "swapped_digits":
        digits = str(abs(correct))
        if len(digits) >= 2 and digits[-1] != digits[-2] and not digits.endswith("0"):
            swapped = int(digits[:-2] + digits[-1] + digits[-2])
            values = [-swapped if correct < 0 else swapped]
    # A slip keeps the sign of a non-negative result: "5 - 3 = -1" is not a plausible slip.
    return [v for v in dict.fromkeys(values) if v != correct and (v >= 0 or correct < 0)]


def slip_result(step: Step, rng: RNG, *, kind: str | None = None) -> tuple[str, int]:
    """A plausible wrong result for one step, alone (no later steps are affected).

    Args:
        step: A correct step.
        rng: Chooses the kind and the value (a `random.Random` or an int seed).
        kind: Force one of `SLIP_KINDS`; None picks an applicable one at random.

    Returns:
        ``(kind, wrong_result)``.
    """
    rng = _as_rng(rng)
    if kind is not None and kind not in SLIP_KINDS:
        raise ArithmeticTaskError(f"unknown slip kind {kind!r}; choose one of {SLIP_KINDS}")
    kinds = [kind] if kind is not None else list(SLIP_KINDS)
    rng.shuffle(kinds)
    for candidate_kind in kinds:
        values = _slip_values(step, candidate_kind)
        if values:
            return candidate_kind, rng.choice(values)
    raise ArithmeticTaskError(f"no slip of kind {kind} applies to {step.text}")


def habit_result(step: Step) -> int | None:
    """The result a writer who forgets carries and borrows gives for `step`, or None.

    ``a + b`` whose units digits sum to 10 or more is written 10 too small (the carry is
    dropped); ``a - b`` whose units digit of ``a`` is smaller than that of ``b`` is written 10 too
    large (the borrow is dropped), when that keeps the result non-negative. Other steps (``*``,
    no carry) have no such mistake: None.
    """
    left, right = abs(step.left), abs(step.right)
    if step.left < 0 or step.right < 0:
        return None
    if step.op == "+" and left % 10 + right % 10 >= 10:
        return step.left + step.right - 10
    if step.op == "-" and left % 10 < right % 10 and step.left - step.right + 10 >= 0:
        return step.left - step.right + 10
    return None


def write_habitual_solution(expression: str, rng: RNG, rate: float) -> Solution:
    """A solution by a writer who forgets a carry or borrow with probability `rate` per chance.

    The steps are walked in order; at each step where `habit_result` applies, the writer drops
    the carry with probability `rate`, and the first such drop is the solution's only slip (later
    steps carry the wrong value on, correctly computed). Problems with no carry or borrow come
    out right. Unlike `random_slipped_solution` this mistake is systematic: the same step is
    always got wrong the same way, so a model that imitates such text puts most of its
    probability on the wrong value when `rate` > 0.5 (greedy decoding repeats it, sampling
    sometimes does not).

    Args:
        expression: The expression (any spacing).
        rng: Decides each drop (a `random.Random` or an int seed).
        rate: Probability of dropping each carry or borrow, in [0, 1].

    Returns:
        The solution (``slip.kind == HABIT_KIND`` when a carry was dropped).
    """
    if not 0.0 <= rate <= 1.0:
        raise ArithmeticTaskError(f"rate must lie in [0, 1], got {rate}")
    rng = _as_rng(rng)
    expr = _parse_with_steps(expression)
    correct = _reduce(expr)
    for index, step in enumerate(correct):
        wrong = habit_result(step)
        if wrong is not None and rng.random() < rate:
            slip = Slip(index, HABIT_KIND, step.result, wrong)
            return Solution(render(expr), _reduce(expr, (index, wrong)), slip)
    return Solution(render(expr), correct)


def write_slipped_solution(
    expression: str, step_index: int, rng: RNG, *, kind: str | None = None
) -> Solution:
    """A solution whose step `step_index` is wrong; later steps carry the wrong value on.

    Args:
        expression: The expression (any spacing).
        step_index: 0-based index of the step to get wrong.
        rng: Chooses the kind of slip and the wrong value (a `random.Random` or an int seed).
        kind: Force one of `SLIP_KINDS`; None picks an applicable one at random.

    Returns:
        The flawed solution; its final answer differs from the true value.

    Raises:
        ArithmeticTaskError: Bad step index or kind, or no slip of that kind at that step changes
            the final answer (possible only when a later step multiplies by 0).
    """
    rng = _as_rng(rng)
    expr = _parse_with_steps(expression)
    correct = _reduce(expr)
    if not 0 <= step_index < len(correct):
        raise ArithmeticTaskError(
            f"step_index {step_index} is out of range: {render(expr)} has {len(correct)} step(s)"
        )
    if kind is not None and kind not in SLIP_KINDS:
        raise ArithmeticTaskError(f"unknown slip kind {kind!r}; choose one of {SLIP_KINDS}")
    kinds = [kind] if kind is not None else list(SLIP_KINDS)
    rng.shuffle(kinds)
    step = correct[step_index]
    for candidate_kind in kinds:
        values = _slip_values(step, candidate_kind)
        rng.shuffle(values)
        for value in values:
            steps = _reduce(expr, (step_index, value))
            if steps[-1].result != correct[-1].result:
                slip = Slip(step_index, candidate_kind, step.result, value)
                return Solution(render(expr), steps, slip)
    raise ArithmeticTaskError(
        f"no slip of kind {kind or 'any'} at step {step_index + 1} of {render(expr)} changes the "
        f"final answer"
    )


def random_slipped_solution(expression: str, rng: RNG, *, kind: str | None = None) -> Solution:
    """A flawed solution with the slip at a step chosen uniformly at random.

    Args:
        expression: The expression (any spacing).
        rng: The only source of randomness (a `random.Random` or an int seed).
        kind: Force one of `SLIP_KINDS`; None picks one at random.

    Returns:
        The flawed solution.

    Raises:
        ArithmeticTaskError: No step admits a slip that changes the answer.
    """
    rng = _as_rng(rng)
    num_steps = len(write_solution(expression).steps)
    indices = list(range(num_steps))
    rng.shuffle(indices)
    for index in indices:
        try:
            return write_slipped_solution(expression, index, rng, kind=kind)
        except ArithmeticTaskError:
            continue
    raise ArithmeticTaskError(f"no step of {expression} admits a slip that changes the answer")


# -- critique ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Critique:
    """A critique of a solution and the refined continuation that fixes it."""

    text: str
    """``Step 2 is wrong: 48 * 2 = 96, not 86.`` or ``All steps are correct.``"""
    step_index: int | None
    """0-based index of the step named as wrong; None when the solution is correct."""
    refined: tuple[Step, ...]
    """The correct steps from the wrong one to the end (empty for a correct solution)."""
    answer: int
    """The true answer."""

    @property
    def refined_lines(self) -> tuple[str, ...]:
        """The refined steps, then the (correct) answer line."""
        return (*(step.text for step in self.refined), answer_line(self.answer))

    @property
    def refined_text(self) -> str:
        return "\n".join(self.refined_lines)


def write_critique(solution: Solution) -> Critique:
    """Critique a written solution: name the wrong step and its correct value, then redo it.

    Args:
        solution: A solution from `write_solution` or a slipped one.

    Returns:
        The critique; for a correct solution ``All steps are correct.`` and no refined steps.
    """
    reference = write_solution(solution.expression)
    if solution.slip is None:
        return Critique("All steps are correct.", None, (), reference.answer)
    index = solution.slip.step_index
    wrong = solution.steps[index]
    right = reference.steps[index]
    text = f"Step {index + 1} is wrong: {right.text}, not {wrong.result}."
    return Critique(text, index, reference.steps[index:], reference.answer)


# -- checking ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SolutionCheck:
    """The verdict of `check_solution`, one label per non-blank line."""

    line_labels: tuple[bool, ...]
    """Per non-blank line: True while every line so far is right (the path is still correct)."""
    first_error: int | None
    """Index (among non-blank lines) of the first wrong line, None when there is none."""
    answer: str | None
    r"""The number in the last ``\boxed{}``, None when there is none."""
    is_correct: bool
    """Every step right and in order, the expression fully reduced, the boxed answer its value."""


def check_solution(expression: str, text: str) -> SolutionCheck:
    r"""Replay a solution text against its expression: a process verifier for this task.

    A step line is right when it computes an operation that can be computed now (any order is
    accepted, not only the canonical one) and its result is correct; the answer line (the one with
    ``\boxed{}``) is right when it comes last, after the expression is fully reduced, and boxes
    its value. A line that is neither is wrong. After the first wrong line every label is False.

    Args:
        expression: The problem's expression.
        text: The solution, one step per line.

    Returns:
        The check.
    """
    # Equal operations (``2 * 1`` twice) make a step ambiguous, so every reading is followed.
    states: set[Expr] = {parse_expression(expression)}
    labels: list[bool] = []
    answer: str | None = None
    ok = True
    finished = False
    for line in (line for line in text.splitlines() if line.strip()):
        boxed = _BOXED_RE.findall(line)
        if boxed:
            answer = boxed[-1]
            ok = ok and not finished and Num(int(answer)) in states
            finished = True
            labels.append(ok)
            continue
        step = parse_step(line)
        if ok and step is not None and not finished and step.is_correct:
            states = {
                reduce_at(state, r.path, step.result)
                for state in states
                for r in redexes(state)
                if (r.left, r.op, r.right) == (step.left, step.op, step.right)
            }
            ok = bool(states)
        else:
            ok = False
        labels.append(ok)
    first_error = next((i for i, label in enumerate(labels) if not label), None)
    is_correct = bool(labels) and first_error is None and finished
    return SolutionCheck(tuple(labels), first_error, answer, is_correct)


# -- rating labels and pairs -------------------------------------------------------------------


@dataclass(frozen=True)
class RatingLabel:
    """A solution prefix and whether it is still on a correct path (a value-head target)."""

    lines: tuple[str, ...]
    """The solution lines up to and including the labelled one."""
    label: Literal["positive", "negative"]
    """``positive`` while every line so far is right, ``negative`` from the slip on."""


def rating_labels(solution: Solution) -> list[RatingLabel]:
    """One label per prefix of a solution (each step, then the answer line).

    Args:
        solution: A correct or slipped solution.

    Returns:
        ``len(solution.lines)`` labels; they turn negative exactly at the slipped step.
    """
    lines = solution.lines
    first_bad = solution.slip.step_index if solution.slip is not None else len(lines)
    return [
        RatingLabel(lines[: i + 1], "positive" if i < first_bad else "negative")
        for i in range(len(lines))
    ]


@dataclass(frozen=True)
class ComparisonPair:
    """Two solutions of one question, one correct and one flawed, and which is better."""

    question: str
    """The question both solve."""
    solution_a: str
    """First solution text."""
    solution_b: str
    """Second solution text."""
    better: Literal["a", "b"]
    """Which solution is the correct one."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "solution_a": self.solution_a,
            "solution_b": self.solution_b,
            "better": self.better,
        }


def write_pair(problem: Problem | str, rng: RNG) -> ComparisonPair:
    """A comparison of the correct solution with a randomly slipped one, in random order.

    Args:
        problem: The problem, or its question ``Compute <expression>.``.
        rng: Chooses the slip and the order (a `random.Random` or an int seed); the correct one
            comes first with probability 1/2.

    Returns:
        The pair.
    """
    rng = _as_rng(rng)
    question = problem.question if isinstance(problem, Problem) else problem
    expression = expression_of(question)
    correct = write_solution(expression).text
    flawed = random_slipped_solution(expression, rng).text
    if rng.random() < 0.5:
        return ComparisonPair(question, correct, flawed, "a")
    return ComparisonPair(question, flawed, correct, "b")

"""Arithmetic task: every written solution is checked by an oracle independent of the library.

The oracle reads the expression with Python's `ast` parser (structure only; nothing is evaluated
by Python) and the steps with its own regular expression, then replays the steps against the
syntax tree: each step must compute a node whose operands are already known, using the values
written so far. That checks the arithmetic of every step and that the steps reduce the
expression, in any order, to the final answer.
"""

from __future__ import annotations

import ast
import random
import re
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openberry.data.arithmetic import (
    SLIP_KINDS,
    ArithmeticConfig,
    ArithmeticTaskError,
    BinOp,
    Num,
    check_solution,
    draw_expression,
    parse_expression,
    parse_step,
    random_slipped_solution,
    rating_labels,
    render,
    write_critique,
    write_pair,
    write_slipped_solution,
    write_solution,
)

STEP_RE = re.compile(r"(-?\d+) ([-+*]) (\(-\d+\)|\d+) = (-?\d+)")
ANSWER_RE = re.compile(r"The answer is \\boxed\{(-?\d+)\}\.")
OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*"}


@dataclass
class Replay:
    steps: list[tuple[int, str, int, int]]
    arithmetic_ok: list[bool]
    follows_expression: bool
    final: int | None
    answer: int | None


def oracle_value(expression: str) -> int:
    def walk(node: ast.AST) -> int:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        assert isinstance(node, ast.BinOp)
        left, right = walk(node.left), walk(node.right)
        return {"+": left + right, "-": left - right, "*": left * right}[OPS[type(node.op)]]

    return walk(ast.parse(expression, mode="eval").body)


def replay(expression: str, text: str) -> Replay:
    """Parse a solution and replay it against Python's syntax tree of the expression."""
    *step_lines, last = text.split("\n")
    answer_match = ANSWER_RE.fullmatch(last)
    steps = []
    for line in step_lines:
        match = STEP_RE.fullmatch(line)
        assert match, f"not a step line: {line!r}"
        left, op, right, result = match.groups()
        steps.append((int(left), op, int(right.strip("()")), int(result)))
    arithmetic_ok = [{"+": a + b, "-": a - b, "*": a * b}[op] == c for a, op, b, c in steps]
    root = ast.parse(expression, mode="eval").body
    binops = [n for n in ast.walk(root) if isinstance(n, ast.BinOp)]
    final = _match_steps(root, binops, steps, {})
    answer = int(answer_match.group(1)) if answer_match else None
    return Replay(steps, arithmetic_ok, final is not None, final, answer)


def _known(node: ast.AST, written: dict[int, int]) -> int | None:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp):
        inner = _known(node.operand, written)
        return None if inner is None else -inner
    return written.get(id(node))


def _match_steps(root, binops, steps, written) -> int | None:
    """Assign each step to a syntax-tree node computable with the values written so far.

    Backtracks, because equal operations (``0 * 0`` twice) can be matched in several ways.
    Returns the value written for the root when every node is matched, else None.
    """
    if not steps:
        return _known(root, written) if len(written) == len(binops) else None
    a, op, b, c = steps[0]
    for node in binops:
        if (
            id(node) not in written
            and OPS[type(node.op)] == op
            and _known(node.left, written) == a
            and _known(node.right, written) == b
        ):
            final = _match_steps(root, binops, steps[1:], {**written, id(node): c})
            if final is not None:
                return final
    return None


def assert_correct_solution(expression: str, text: str) -> None:
    result = replay(expression, text)
    assert all(result.arithmetic_ok), text
    assert result.follows_expression, text
    assert result.final == oracle_value(expression) == result.answer, text


def assert_slipped_solution(expression: str, solution) -> None:
    """Exactly one wrong step, at the slip; later steps carry the wrong value; answer wrong."""
    result = replay(expression, solution.text)
    index = solution.slip.step_index
    assert [i for i, ok in enumerate(result.arithmetic_ok) if not ok] == [index], solution.text
    assert result.follows_expression, solution.text  # consistent with the values as written
    assert result.final == result.answer != oracle_value(expression), solution.text
    correct = replay(expression, write_solution(expression).text)
    assert result.steps[:index] == correct.steps[:index]
    assert result.steps[index][:3] == correct.steps[index][:3]
    assert result.steps[index][3] == solution.slip.wrong_result
    assert correct.steps[index][3] == solution.slip.correct_result
    assert solution.slip.kind in SLIP_KINDS


# -- expressions -------------------------------------------------------------------------------


@st.composite
def expressions(draw, depth: int = 3):
    if depth == 0 or draw(st.booleans()):
        return Num(draw(st.integers(-30, 30)))
    return BinOp(
        draw(st.sampled_from("+-*")), draw(expressions(depth - 1)), draw(expressions(depth - 1))
    )


@given(expressions())
def test_render_parse_roundtrip(expr):
    text = render(expr)
    assert parse_expression(text) == expr
    assert parse_expression(text.replace(" ", "")) == expr


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("(3 + 4) + 5", "3 + 4 + 5"),
        ("3 + (4 + 5)", "3 + (4 + 5)"),
        ("2 - (3 * 4)", "2 - 3 * 4"),
        ("((7))*2", "7 * 2"),
        ("20-(3+2*4)", "20 - (3 + 2 * 4)"),
    ],
)
def test_canonical_form_drops_only_redundant_parentheses(text, canonical):
    assert render(parse_expression(text)) == canonical


@pytest.mark.parametrize("bad", ["", "3 +", "3 + (4", "3 + 4)", "2 ** 3", "eval(1)", "4 / 2"])
def test_parse_errors_are_task_errors(bad):
    with pytest.raises(ArithmeticTaskError):
        parse_expression(bad)


def test_deep_nesting_is_refused_not_a_crash():
    with pytest.raises(ArithmeticTaskError, match="nest"):
        parse_expression("(" * 500 + "1" + ")" * 500)


def test_parse_step():
    step = parse_step("48 * 2 = 96")
    assert (step.left, step.op, step.right, step.result, step.is_correct) == (48, "*", 2, 96, True)
    assert parse_step("20 - (-14) = 34").right == -14
    assert parse_step("-14 + 5 = -9").left == -14
    assert not parse_step("48 * 2 = 86").is_correct
    assert parse_step("The answer is \\boxed{3}.") is None


# -- solutions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "lines"),
    [
        ("37 + 48 * 2 - 15", ["48 * 2 = 96", "37 + 96 = 133", "133 - 15 = 118"]),
        ("(2 + 3) * 4 + 6 * 2", ["2 + 3 = 5", "5 * 4 = 20", "6 * 2 = 12", "20 + 12 = 32"]),
        ("20 - (3 + 2 * 4)", ["2 * 4 = 8", "3 + 8 = 11", "20 - 11 = 9"]),
        ("3 * 4 + (5 + 6)", ["5 + 6 = 11", "3 * 4 = 12", "12 + 11 = 23"]),
        ("3 - 17 + 5", ["3 - 17 = -14", "-14 + 5 = -9"]),
        ("1 - (3 - 17)", ["3 - 17 = -14", "1 - (-14) = 15"]),
    ],
)
def test_solution_golden_order(expression, lines):
    solution = write_solution(expression)
    answer = lines[-1].split(" = ")[1]
    assert solution.text == "\n".join([*lines, f"The answer is \\boxed{{{answer}}}."])
    assert [s.text for s in solution.steps] == lines
    assert_correct_solution(expression, solution.text)


def test_slip_golden_critique():
    solution = write_slipped_solution("37 + 48 * 2 - 15", 0, random.Random(0), kind="carry")
    assert solution.slip.wrong_result in (86, 106)
    critique = write_critique(solution)
    wrong = solution.slip.wrong_result
    assert critique.text == f"Step 1 is wrong: 48 * 2 = 96, not {wrong}."
    assert critique.refined_text == (
        "48 * 2 = 96\n37 + 96 = 133\n133 - 15 = 118\nThe answer is \\boxed{118}."
    )


configs = st.builds(
    lambda lo, extra, nlo, nspan, ops, mlo, mspan, paren, neg: ArithmeticConfig(
        min_operands=lo,
        max_operands=lo + extra,
        min_number=nlo,
        max_number=nlo + nspan,
        operators=ops,
        min_multiplier=mlo,
        max_multiplier=mlo + mspan,
        paren_prob=paren,
        allow_negative=neg or ops == "-",
        max_value=10**6,
    ),
    st.integers(2, 5),
    st.integers(0, 3),
    st.integers(0, 10),
    st.integers(0, 40),
    st.sampled_from(["+", "-", "*", "+-", "+*", "-*", "+-*", "*-+"]),
    st.integers(0, 5),
    st.integers(0, 8),
    st.floats(0.0, 1.0),
    st.booleans(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs, seed=st.integers(0, 2**32))
def test_every_written_solution_is_correct(config, seed):
    rng = random.Random(seed)
    expr = draw_expression(rng, config)
    expression = render(expr)
    solution = write_solution(expression)
    assert_correct_solution(expression, solution.text)
    assert len(solution.steps) == expression.count(" ") // 2
    assert check_solution(expression, solution.text).is_correct
    for step in solution.steps:
        assert config.allow_negative or step.result >= 0
        if step.op == "*":
            assert config.min_multiplier <= step.right <= config.max_multiplier
    for index in range(len(solution.steps)):
        try:
            slipped = write_slipped_solution(expression, index, rng)
        except ArithmeticTaskError:
            # Only possible when every way to carry the slip on multiplies it by zero.
            assert config.min_multiplier == 0
            continue
        assert_slipped_solution(expression, slipped)
        check_slipped(expression, slipped)


def check_slipped(expression, slipped):
    index = slipped.slip.step_index
    critique = write_critique(slipped)
    step = slipped.steps[index]
    right = f"({step.right})" if step.right < 0 else str(step.right)
    named = f"{step.left} {step.op} {right} = {slipped.slip.correct_result}"
    assert critique.text == f"Step {index + 1} is wrong: {named}, not {slipped.slip.wrong_result}."
    assert critique.step_index == index
    # The refined continuation redoes the solution from the wrong step to the true answer.
    correct_lines = write_solution(expression).text.split("\n")
    assert critique.refined_text.split("\n") == correct_lines[index:]
    assert_correct_solution(expression, "\n".join([*correct_lines[:index], critique.refined_text]))
    labels = [label.label for label in rating_labels(slipped)]
    assert labels == ["positive"] * index + ["negative"] * (len(slipped.steps) + 1 - index)
    check = check_solution(expression, slipped.text)
    assert check.first_error == index and not check.is_correct
    assert check.line_labels == tuple(label == "positive" for label in labels)


@pytest.mark.parametrize("kind", SLIP_KINDS)
def test_each_slip_kind_is_what_it_says(kind):
    expression = "37 + 48 * 2 - 15"
    slipped = write_slipped_solution(expression, 0, random.Random(1), kind=kind)
    correct, wrong = slipped.slip.correct_result, slipped.slip.wrong_result
    assert slipped.slip.kind == kind
    if kind == "off_by":
        assert abs(wrong - correct) in (1, 2)
    elif kind == "carry":
        assert abs(wrong - correct) == 10
    elif kind == "wrong_product":
        assert abs(wrong - correct) in (48, 2)
    else:
        assert (correct, wrong) == (96, 69)
    assert_slipped_solution(expression, slipped)


def test_slip_errors():
    with pytest.raises(ArithmeticTaskError, match="out of range"):
        write_slipped_solution("2 + 3", 1, 0)
    with pytest.raises(ArithmeticTaskError, match="unknown slip kind"):
        write_slipped_solution("2 + 3", 0, 0, kind="typo")
    with pytest.raises(ArithmeticTaskError, match="changes the final answer"):
        write_slipped_solution("2 + 3", 0, 0, kind="wrong_product")  # no product to get wrong
    with pytest.raises(ArithmeticTaskError, match="changes the final answer"):
        write_slipped_solution("(2 + 3) * 0", 0, 0)  # multiplying by zero hides any slip


def test_slips_are_reproducible_from_a_seed():
    a = random_slipped_solution("(2 + 3) * 4 + 6 * 2", random.Random(5))
    b = random_slipped_solution("(2 + 3) * 4 + 6 * 2", 5)
    assert a == b


def test_critique_of_a_correct_solution():
    critique = write_critique(write_solution("2 + 3"))
    assert critique.text == "All steps are correct."
    assert critique.step_index is None and critique.refined == ()
    assert critique.refined_text == "The answer is \\boxed{5}."


def test_rating_labels_of_a_correct_solution_are_all_positive():
    labels = rating_labels(write_solution("37 + 48 * 2 - 15"))
    assert [label.label for label in labels] == ["positive"] * 4
    assert labels[1].lines == ("48 * 2 = 96", "37 + 96 = 133")


def test_check_solution_accepts_other_valid_orders_and_rejects_bad_lines():
    expression = "2 * 3 + 4 * 5"
    other_order = "4 * 5 = 20\n2 * 3 = 6\n6 + 20 = 26\nThe answer is \\boxed{26}."
    assert check_solution(expression, other_order).is_correct
    skipped = "2 * 3 = 6\n6 + 4 = 10\nThe answer is \\boxed{10}."
    assert check_solution(expression, skipped).line_labels == (True, False, False)
    assert not check_solution(expression, "hello\nThe answer is \\boxed{26}.").is_correct
    unfinished = check_solution(expression, "2 * 3 = 6\nThe answer is \\boxed{26}.")
    assert unfinished.first_error == 1 and unfinished.answer == "26"


def test_pairs_are_balanced_and_the_better_one_is_correct():
    rng = random.Random(0)
    expression = "37 + 48 * 2 - 15"
    pairs = [write_pair(f"Compute {expression}.", rng) for _ in range(400)]
    share_a = sum(p.better == "a" for p in pairs) / len(pairs)
    assert 0.4 < share_a < 0.6
    for pair in pairs:
        better = pair.solution_a if pair.better == "a" else pair.solution_b
        worse = pair.solution_b if pair.better == "a" else pair.solution_a
        assert_correct_solution(expression, better)
        assert replay(expression, worse).answer != oracle_value(expression)
        assert set(pair.to_dict()) == {"question", "solution_a", "solution_b", "better"}


def test_habit_result_drops_carries_and_borrows() -> None:
    from openberry.data.arithmetic.expression import Step
    from openberry.data.arithmetic.solutions import habit_result

    assert habit_result(Step(29, "+", 25, 54)) == 44  # 9 + 5 carries
    assert habit_result(Step(21, "+", 25, 46)) is None
    assert habit_result(Step(54, "-", 25, 29)) == 39  # 4 < 5 borrows
    assert habit_result(Step(15, "-", 8, 7)) == 17
    assert habit_result(Step(58, "-", 25, 33)) is None
    assert habit_result(Step(18, "*", 3, 54)) is None


def test_habitual_solution_is_systematic() -> None:
    from openberry.data.arithmetic.solutions import HABIT_KIND, write_habitual_solution

    always = write_habitual_solution("29 + 25 + 15", 0, 1.0)
    assert always.slip is not None and always.slip.kind == HABIT_KIND
    assert always.text.startswith("29 + 25 = 44\n44 + 15 = 59")
    assert write_habitual_solution("29 + 25 + 15", 0, 0.0).is_correct
    assert write_habitual_solution("25 * 2 + 3", 0, 1.0).is_correct  # nothing to carry
    wrong = sum(
        not write_habitual_solution("29 + 25", seed, 0.65).is_correct for seed in range(400)
    )
    assert 0.58 < wrong / 400 < 0.72
    with pytest.raises(ArithmeticTaskError):
        write_habitual_solution("1 + 2", 0, 1.5)

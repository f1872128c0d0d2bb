"""Integer expressions of the arithmetic task: AST, parser, renderer and step-by-step reduction.

Semantics are the school ones: parentheses first, then ``*``, then left to right. The parser is
a small recursive-descent parser over ``+ - * ( )`` and non-negative integer literals (a ``-``
directly before a literal, e.g. ``(-14)``, makes it negative); nothing is ever passed to `eval`.

An expression's structure *is* its tree: `render` writes the fewest parentheses that make
`parse_expression` give the same tree back, so ``render(parse_expression(s))`` is the canonical
form of ``s`` (the string that splits are hashed on) and redundant parentheses disappear.

Reduction replaces one innermost operation whose operands are both numbers (a *redex*) by its
result. The canonical order takes the redex inside the most parentheses, then a ``*``, then the
leftmost; every order gives the same set of step results, because each step computes the value of
one subtree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from openberry.data.arithmetic.config import OPERATORS, ArithmeticTaskError
from openberry.records import Problem

__all__ = [
    "BinOp",
    "Expr",
    "Num",
    "Redex",
    "Step",
    "apply_operator",
    "canonical_redex",
    "evaluate",
    "expression_of",
    "parse_expression",
    "parse_step",
    "question_text",
    "redexes",
    "reduce_at",
    "render",
]

_QUESTION_PREFIX = "Compute "
_PRECEDENCE = {"+": 1, "-": 1, "*": 2}
_MAX_NESTING = 64  # deeper parentheses are refused rather than risk Python's recursion limit
_TOKEN_RE = re.compile(r"\d+|[-+*()]|\S")
_STEP_RE = re.compile(
    r"\s*(-?\d+)\s*([-+*])\s*(\(\s*-\s*\d+\s*\)|-?\d+)\s*=\s*(-?\d+)\s*\.?\s*",
)


@dataclass(frozen=True)
class Num:
    """An integer literal (or an already computed intermediate result)."""

    value: int


@dataclass(frozen=True)
class BinOp:
    """``left op right`` with ``op`` one of ``+ - *``."""

    op: str
    left: Expr
    right: Expr


Expr = Num | BinOp


def apply_operator(op: str, left: int, right: int) -> int:
    """Compute ``left op right``.

    Args:
        op: ``+``, ``-`` or ``*``.
        left: Left operand.
        right: Right operand.

    Returns:
        The integer result.
    """
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    raise ArithmeticTaskError(f"unknown operator {op!r}; expected one of {' '.join(OPERATORS)}")


def evaluate(expr: Expr) -> int:
    """Value of an expression tree.

    Args:
        expr: The expression.

    Returns:
        Its integer value.
    """
    if isinstance(expr, Num):
        return expr.value
    return apply_operator(expr.op, evaluate(expr.left), evaluate(expr.right))


# -- parsing -----------------------------------------------------------------------------------


def _tokenize(text: str) -> list[int | str]:
    tokens: list[int | str] = []
    depth = 0
    for match in _TOKEN_RE.finditer(text):
        token = match.group()
        if token.isdigit():
            tokens.append(int(token))
            continue
        if token not in ("+", "-", "*", "(", ")"):
            raise ArithmeticTaskError(
                f"cannot read expression {text!r}: unexpected {token!r} at position "
                f"{match.start()} (only integers, + - * and parentheses are allowed)"
            )
        depth += {"(": 1, ")": -1}.get(token, 0)
        if depth > _MAX_NESTING:
            raise ArithmeticTaskError(
                f"cannot read expression: parentheses nest deeper than {_MAX_NESTING}"
            )
        tokens.append(token)
    return tokens


def parse_expression(text: str) -> Expr:
    """Parse an expression such as ``37 + (48 - 5) * 2``.

    Args:
        text: The expression; spaces are optional.

    Returns:
        Its tree (``*`` binds tighter than ``+``/``-``; equal precedence groups to the left).

    Raises:
        ArithmeticTaskError: The text is not a well-formed expression.
    """
    tokens = _tokenize(text)
    if not tokens:
        raise ArithmeticTaskError("cannot read an empty expression")
    expr, pos = _parse_sum(tokens, 0, text)
    if pos != len(tokens):
        raise ArithmeticTaskError(f"cannot read expression {text!r}: unexpected {tokens[pos]!r}")
    return expr


def _parse_sum(tokens: list[int | str], pos: int, text: str) -> tuple[Expr, int]:
    left, pos = _parse_product(tokens, pos, text)
    while pos < len(tokens) and tokens[pos] in ("+", "-"):
        op = str(tokens[pos])
        right, pos = _parse_product(tokens, pos + 1, text)
        left = BinOp(op, left, right)
    return left, pos


def _parse_product(tokens: list[int | str], pos: int, text: str) -> tuple[Expr, int]:
    left, pos = _parse_factor(tokens, pos, text)
    while pos < len(tokens) and tokens[pos] == "*":
        right, pos = _parse_factor(tokens, pos + 1, text)
        left = BinOp("*", left, right)
    return left, pos


def _parse_factor(tokens: list[int | str], pos: int, text: str) -> tuple[Expr, int]:
    if pos >= len(tokens):
        raise ArithmeticTaskError(f"cannot read expression {text!r}: it ends too early")
    token = tokens[pos]
    if isinstance(token, int):
        return Num(token), pos + 1
    if token == "-" and pos + 1 < len(tokens) and isinstance(tokens[pos + 1], int):
        return Num(-int(tokens[pos + 1])), pos + 2
    if token == "(":
        inner, pos = _parse_sum(tokens, pos + 1, text)
        if pos >= len(tokens) or tokens[pos] != ")":
            raise ArithmeticTaskError(f"cannot read expression {text!r}: missing ')'")
        return inner, pos + 1
    raise ArithmeticTaskError(
        f"cannot read expression {text!r}: expected a number or '(' but found {token!r}"
    )


# -- rendering ---------------------------------------------------------------------------------


def _needs_parens(parent_op: str, child: Expr, side: int) -> bool:
    """Whether `child`, as the left (0) or right (1) operand of `parent_op`, is written in ()."""
    if isinstance(child, Num):
        return side == 1 and child.value < 0
    if side == 0:
        return _PRECEDENCE[child.op] < _PRECEDENCE[parent_op]
    return _PRECEDENCE[child.op] <= _PRECEDENCE[parent_op]


def render(expr: Expr) -> str:
    """Write an expression with single spaces around operators and the fewest parentheses.

    Args:
        expr: The expression.

    Returns:
        Text that `parse_expression` reads back to the same tree, e.g. ``(37 + 48) * 2 - 15``.
    """
    if isinstance(expr, Num):
        return str(expr.value)
    parts = []
    for side, child in enumerate((expr.left, expr.right)):
        text = render(child)
        parts.append(f"({text})" if _needs_parens(expr.op, child, side) else text)
    return f"{parts[0]} {expr.op} {parts[1]}"


# -- reduction ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Redex:
    """An operation whose two operands are numbers, i.e. one that can be computed now."""

    path: tuple[int, ...]
    """Route from the root to the operation: 0 = left operand, 1 = right operand."""
    op: str
    """The operator."""
    left: int
    """Left operand."""
    right: int
    """Right operand."""
    depth: int
    """How many pairs of parentheses enclose the operation in the rendered expression."""
    position: int
    """Rank of the operator in the rendered expression, left to right from 0."""

    @property
    def result(self) -> int:
        return apply_operator(self.op, self.left, self.right)


def redexes(expr: Expr) -> list[Redex]:
    """Every operation of `expr` that can be computed now, left to right.

    Args:
        expr: The expression.

    Returns:
        The redexes in the order their operators appear in ``render(expr)``; empty for a number.
    """
    found: list[Redex] = []
    _collect_redexes(expr, (), 0, [0], found)
    return found


def _collect_redexes(
    expr: Expr, path: tuple[int, ...], depth: int, counter: list[int], found: list[Redex]
) -> None:
    if isinstance(expr, Num):
        return
    left_depth = depth + int(isinstance(expr.left, BinOp) and _needs_parens(expr.op, expr.left, 0))
    _collect_redexes(expr.left, (*path, 0), left_depth, counter, found)
    position = counter[0]
    counter[0] += 1
    if isinstance(expr.left, Num) and isinstance(expr.right, Num):
        found.append(Redex(path, expr.op, expr.left.value, expr.right.value, depth, position))
    right_depth = depth + int(
        isinstance(expr.right, BinOp) and _needs_parens(expr.op, expr.right, 1)
    )
    _collect_redexes(expr.right, (*path, 1), right_depth, counter, found)


def canonical_redex(expr: Expr) -> Redex:
    """The operation the canonical order computes next: innermost parentheses, then ``*``, then
    the leftmost.

    Args:
        expr: An expression with at least one operation.

    Returns:
        The chosen redex.
    """
    found = redexes(expr)
    if not found:
        raise ArithmeticTaskError(f"{render(expr)} is a number; there is nothing to compute")
    return min(found, key=lambda r: (-r.depth, r.op != "*", r.position))


def reduce_at(expr: Expr, path: tuple[int, ...], value: int) -> Expr:
    """Replace the subtree at `path` by the number `value`.

    Args:
        expr: The expression.
        path: Route to the subtree (see `Redex.path`).
        value: The number written in its place (its result, or a slipped one).

    Returns:
        The new expression.
    """
    if not path:
        return Num(value)
    if not isinstance(expr, BinOp):
        raise ArithmeticTaskError(f"path {path} goes below a number in {render(expr)}")
    if path[0] == 0:
        return BinOp(expr.op, reduce_at(expr.left, path[1:], value), expr.right)
    return BinOp(expr.op, expr.left, reduce_at(expr.right, path[1:], value))


# -- steps -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One written step ``left op right = result``; `result` may be wrong in a flawed solution."""

    left: int
    """Left operand."""
    op: str
    """Operator: ``+``, ``-`` or ``*``."""
    right: int
    """Right operand."""
    result: int
    """The result as written."""

    @property
    def is_correct(self) -> bool:
        """Whether the written result is the true result of the operation."""
        return apply_operator(self.op, self.left, self.right) == self.result

    @property
    def text(self) -> str:
        """The step as one line, e.g. ``48 * 2 = 96`` (a negative right operand in parentheses)."""
        right = f"({self.right})" if self.right < 0 else str(self.right)
        return f"{self.left} {self.op} {right} = {self.result}"

    def __str__(self) -> str:
        return self.text


def parse_step(line: str) -> Step | None:
    """Read one step line ``a op b = c`` (``-14 + 5 = -9`` and ``20 - (-14) = 34`` included).

    Args:
        line: One line of a solution.

    Returns:
        The step, or None when the line is not a step (the arithmetic is not checked here).
    """
    match = _STEP_RE.fullmatch(line)
    if match is None:
        return None
    left, op, right, result = match.groups()
    right = right.strip("()").replace(" ", "")
    return Step(int(left), op, int(right), int(result))


# -- question text -----------------------------------------------------------------------------


def question_text(expression: str) -> str:
    """The question for an expression: ``Compute 37 + 48 * 2 - 15.``

    Args:
        expression: Canonical expression text.

    Returns:
        The question.
    """
    return f"{_QUESTION_PREFIX}{expression}."


def expression_of(problem: Problem | str) -> str:
    """The canonical expression of an arithmetic problem or question.

    Args:
        problem: A `Problem` of this task, or a question ``Compute <expression>.``.

    Returns:
        The canonical expression text.

    Raises:
        ArithmeticTaskError: The question is not of this task's form.
    """
    question = problem.question if isinstance(problem, Problem) else problem
    text = question.strip()
    if not text.startswith(_QUESTION_PREFIX) or not text.endswith("."):
        raise ArithmeticTaskError(
            f"not an arithmetic-task question (expected 'Compute <expression>.'): {question!r}"
        )
    return render(parse_expression(text[len(_QUESTION_PREFIX) : -1]))

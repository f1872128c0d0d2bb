"""Seeded problem generation and the fixed train / validation / test splits.

Split membership belongs to the *problem*, not to the draw: a canonical expression string goes to
the split chosen by a BLAKE2b hash of the string and a constant salt (never Python's `hash`,
which changes between runs). Generation for a split draws problems and keeps those that hash to
that split, so the splits never overlap, whatever the counts, seeds or configs: a problem that is
in ``test`` for one config is in ``test`` for every config. Within a split the same expression can
occur twice (small problem spaces such as 2-operand problems repeat); deduplicating would skew the
evaluation splits towards longer problems.

Problem ``index`` of ``split`` is drawn from its own random stream, derived from
``(seed, split, index)``, so any problem can be regenerated alone and ``limit`` only cuts a prefix.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import random
from collections.abc import Iterator

from openberry.data.arithmetic.config import ArithmeticConfig, ArithmeticTaskError
from openberry.data.arithmetic.expression import (
    BinOp,
    Expr,
    Num,
    canonical_redex,
    evaluate,
    parse_expression,
    question_text,
    reduce_at,
    render,
)
from openberry.data.arithmetic.solutions import write_solution
from openberry.records import Example, Problem

__all__ = [
    "SOURCE",
    "SPLITS",
    "SPLIT_FRACTIONS",
    "SPLIT_SIZES",
    "derive_seed",
    "draw_expression",
    "iter_examples",
    "load_split",
    "make_example",
    "split_of",
]

logger = logging.getLogger(__name__)

SOURCE = "arithmetic"
"""`Problem.source` of every generated problem."""
SPLITS: tuple[str, ...] = ("train", "validation", "test")
SPLIT_FRACTIONS: dict[str, float] = {"train": 0.9, "validation": 0.05, "test": 0.05}
"""Share of the space of distinct expressions that each split owns."""
SPLIT_SIZES: dict[str, int] = {"train": 10_000, "validation": 500, "test": 500}
"""Default number of problems per split when no limit is given. Any split extends further on
request (a larger limit, or `iter_examples` for an endless stream)."""

_SPLIT_SALT = b"openberry/arithmetic/split/v1"
_BUCKETS = 10_000
_MAX_DRAWS = 1_000  # draws per problem before a config is declared infeasible
_MAX_SPLIT_DRAWS = 20_000  # problems drawn while looking for one that falls into a split


def derive_seed(*parts: object) -> int:
    """A 64-bit seed derived from `parts` by BLAKE2b (stable across runs and platforms).

    Args:
        *parts: Values whose ``str`` identifies the random stream, e.g. ``(seed, split, index)``.

    Returns:
        A non-negative integer seed for `random.Random`.
    """
    data = "\x1f".join(str(part) for part in parts).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def split_of(expression: str) -> str:
    """The split a problem belongs to, from its expression alone.

    Args:
        expression: The expression (any spacing; it is canonicalised first).

    Returns:
        ``train``, ``validation`` or ``test``.
    """
    return _split_of_canonical(render(parse_expression(expression)))


def _split_of_canonical(canonical: str) -> str:
    digest = hashlib.blake2b(_SPLIT_SALT + b"\x00" + canonical.encode(), digest_size=8).digest()
    bucket = int.from_bytes(digest, "big") % _BUCKETS
    cumulative = 0.0
    for split in ("test", "validation"):
        cumulative += SPLIT_FRACTIONS[split] * _BUCKETS
        if bucket < cumulative:
            return split
    return "train"


# -- drawing -----------------------------------------------------------------------------------


def _step_values(expr: Expr) -> list[int]:
    values = []
    while isinstance(expr, BinOp):
        redex = canonical_redex(expr)
        values.append(redex.result)
        expr = reduce_at(expr, redex.path, redex.result)
    return values


def _satisfies(expr: Expr, config: ArithmeticConfig) -> bool:
    for value in _step_values(expr):
        if abs(value) > config.max_value or (value < 0 and not config.allow_negative):
            return False
    return True


def _build(numbers: list[int], ops: list[str], span: tuple[int, int] | None) -> Expr:
    parts = []
    for i, number in enumerate(numbers):
        if i:
            parts.append(ops[i - 1])
        if span is not None and i == span[0]:
            parts.append("(")
        parts.append(str(number))
        if span is not None and i == span[1]:
            parts.append(")")
    return parse_expression(" ".join(parts))


def _draw_candidate(rng: random.Random, config: ArithmeticConfig) -> Expr:
    count = rng.randint(config.min_operands, config.max_operands)
    ops = [rng.choice(config.operators) for _ in range(count - 1)]
    numbers = [rng.randint(config.min_number, config.max_number)]
    for op in ops:
        if op == "*":
            numbers.append(rng.randint(config.min_multiplier, config.max_multiplier))
        else:
            numbers.append(rng.randint(config.min_number, config.max_number))
    plain = _build(numbers, ops, None)
    if count < 3 or rng.random() >= config.paren_prob:
        return plain
    # Only spans that change the order of operations; never right after '*', so that the
    # right operand of every '*' stays a small multiplier.
    grouped = []
    for start in range(count - 1):
        if start > 0 and ops[start - 1] == "*":
            continue
        for end in range(start + 1, count):
            if end - start + 1 == count:
                continue
            expr = _build(numbers, ops, (start, end))
            if expr != plain:
                grouped.append(expr)
    return rng.choice(grouped) if grouped else plain


def draw_expression(rng: random.Random, config: ArithmeticConfig | None = None) -> Expr:
    """Draw one expression that satisfies `config` (see `ArithmeticConfig` for the recipe).

    Args:
        rng: The only source of randomness.
        config: Difficulty knobs; the defaults when None.

    Returns:
        The expression tree (render it for the canonical text).

    Raises:
        ArithmeticTaskError: No draw out of many satisfied the config (e.g. only ``-`` with no
            negatives allowed and many operands).
    """
    config = config or ArithmeticConfig()
    for _ in range(_MAX_DRAWS):
        expr = _draw_candidate(rng, config)
        if _satisfies(expr, config):
            return expr
    raise ArithmeticTaskError(
        f"no problem satisfying the config was found in {_MAX_DRAWS} draws; the constraints "
        f"(allow_negative={config.allow_negative}, max_value={config.max_value}) reject almost "
        f"every draw of {config}. Allow negatives, raise max_value or change the operators."
    )


# -- examples and splits -----------------------------------------------------------------------


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ArithmeticTaskError(
            f"unknown arithmetic split {split!r}; choose one of {', '.join(SPLITS)}"
        )


@functools.lru_cache(maxsize=8192)  # pure: a problem depends only on its arguments
def _draw_in_split(split: str, index: int, config: ArithmeticConfig, seed: int) -> Expr:
    rng = random.Random(derive_seed("arithmetic", seed, split, index))
    for draws in range(1, _MAX_SPLIT_DRAWS + 1):
        expr = draw_expression(rng, config)
        if _split_of_canonical(render(expr)) == split:
            if draws > 200:
                logger.debug("arithmetic/%s/%d took %d draws", split, index, draws)
            return expr
    raise ArithmeticTaskError(
        f"no problem of the {split!r} split was found in {_MAX_SPLIT_DRAWS} draws: the config "
        f"{config} allows too few distinct problems. Widen the number range or add operands."
    )


def make_example(
    split: str, index: int, *, config: ArithmeticConfig | None = None, seed: int = 0
) -> Example:
    """Problem number `index` of `split`, with its answer and worked solution.

    Args:
        split: ``train``, ``validation`` or ``test``.
        index: Position in the split (0-based); any index can be generated alone.
        config: Difficulty knobs; the defaults when None.
        seed: Selects an independent set of problems (the split partition does not change).

    Returns:
        The example; ``problem.id`` is ``arithmetic/<split>/<index>``, ``answer`` the value as
        a string, ``solution`` the step-by-step text.
    """
    _check_split(split)
    if index < 0:
        raise ArithmeticTaskError(f"problem index must be >= 0, got {index}")
    config = config or ArithmeticConfig()
    expr = _draw_in_split(split, index, config, seed)
    expression = render(expr)
    meta = {
        "expression": expression,
        "num_operations": _count_operations(expr),
        "num_operands": _count_operations(expr) + 1,
        "operators": "".join(sorted(set(_operators(expr)), key="+-*".index)),
        "has_parentheses": "(" in expression,
        "split": split,
        "seed": seed,
    }
    problem = Problem(
        id=f"{SOURCE}/{split}/{index}",
        question=question_text(expression),
        source=SOURCE,
        meta=meta,
    )
    solution = write_solution(expression)
    return Example(problem=problem, answer=str(evaluate(expr)), solution=solution.text)


def _count_operations(expr: Expr) -> int:
    if isinstance(expr, Num):
        return 0
    return 1 + _count_operations(expr.left) + _count_operations(expr.right)


def _operators(expr: Expr) -> list[str]:
    if isinstance(expr, Num):
        return []
    return [*_operators(expr.left), expr.op, *_operators(expr.right)]


def iter_examples(
    split: str = "train",
    *,
    config: ArithmeticConfig | None = None,
    seed: int = 0,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[Example]:
    """Examples ``start, start + 1, ...`` of a split; endless when `stop` is None.

    Args:
        split: ``train``, ``validation`` or ``test``.
        config: Difficulty knobs; the defaults when None.
        seed: Selects an independent set of problems.
        start: First index.
        stop: Index to stop before; None for an endless stream (take what you need).

    Yields:
        Examples as `make_example` builds them.
    """
    _check_split(split)
    config = config or ArithmeticConfig()
    index = start
    while stop is None or index < stop:
        yield make_example(split, index, config=config, seed=seed)
        index += 1


def load_split(
    split: str = "test",
    *,
    limit: int | None = None,
    config: ArithmeticConfig | None = None,
    seed: int = 0,
) -> list[Example]:
    """The fixed problems of a split.

    Args:
        split: ``train``, ``validation`` or ``test``.
        limit: Number of problems; None for the default size (`SPLIT_SIZES`: 10,000 for train,
            500 for validation and test). A larger limit extends the split with further
            problems, still disjoint from the other splits.
        config: Difficulty knobs; the defaults when None.
        seed: Selects an independent set of problems (the split partition does not change).

    Returns:
        Examples ``arithmetic/<split>/0`` ... ``arithmetic/<split>/<limit - 1>``.

    Raises:
        ArithmeticTaskError: Unknown split, negative limit, or a config that cannot produce the
            problems.
    """
    _check_split(split)
    if limit is None:
        limit = SPLIT_SIZES[split]
        if limit is None:
            raise ArithmeticTaskError(
                f"the {split!r} split is unbounded; pass a limit (or stream it with iter_examples)"
            )
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ArithmeticTaskError(f"limit must be a non-negative integer, got {limit!r}")
    return list(iter_examples(split, config=config, seed=seed, stop=limit))

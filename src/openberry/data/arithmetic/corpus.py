"""Training corpora from the arithmetic task, as JSON-ready rows (used by ``berry data corpus``).

Every row has an ``id``: ``arithmetic/<split>/<index>`` (ratings add ``/<node id>``). Kinds:

``solutions``
    ``{"id", "prompt", "completion", "correct"}``: the solve prompt (``solve_prompt``:
    ``Question: ...\nSolution:\n``), a solution text, and whether it is correct. A share `slip_rate` of the solutions has one slipped step (flawed text is part of
    the corpus by design, as in real pretraining text; filter on ``correct`` for clean SFT).
``openlongcot``
    ``{"id", "text", "shape"}``: a whole tree in OpenLongCoT form (``tree_to_string``). With
    probability `slip_rate` the ``critique`` shape (slip → critic → refine), else ``branching``.
``critique``
    ``{"id", "prompt", "completion", "correct"}``: prompt = ``review_prompt`` (question +
    proposed solution + ``Review:``); completion = the critique line (``Step 2 is wrong: ...`` or ``All steps are correct.``) + the refined steps +
    the correct answer line. `slip_rate` is the share of flawed solutions.
``ratings``
    ``{"id", "question", "lines", "label", "text"}``: one row per prefix of a solution (each step,
    then the answer line); ``label`` is ``positive`` while the path is correct and ``negative``
    from the slip on; ``text`` is the OpenLongCoT path (``path_to_string``), whose rating tokens
    are the value-head targets. `slip_rate` is the share of flawed solutions.
``pairs``
    ``{"id", "question", "solution_a", "solution_b", "better"}``: one correct and one flawed
    solution in random order; `slip_rate` does not apply.
``pretrain``
    ``{"id", "role", "text", "correct"}``: `berry-tiny`'s pretraining mixture, one document per
    problem in one of its roles (solve, OpenLongCoT tree, review, self-evaluation, judge; see
    `openberry.data.arithmetic.pretrain`). `slip_rate` is the share of flawed solutions in
    solve documents and of slipped trees.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

from openberry.data.arithmetic.config import ArithmeticConfig, ArithmeticTaskError
from openberry.data.arithmetic.expression import expression_of
from openberry.data.arithmetic.generate import SPLIT_SIZES, derive_seed, iter_examples
from openberry.data.arithmetic.solutions import (
    Solution,
    random_slipped_solution,
    write_critique,
    write_pair,
    write_solution,
)
from openberry.data.arithmetic.trees import branching_tree, critique_tree, solution_tree
from openberry.formats.prompts import review_prompt, solve_prompt
from openberry.records import Example

__all__ = ["CORPUS_KINDS", "DEFAULT_SLIP_RATES", "corpus_rows"]

CORPUS_KINDS: tuple[str, ...] = (
    "solutions",
    "openlongcot",
    "critique",
    "ratings",
    "pairs",
    "pretrain",
)
DEFAULT_SLIP_RATES: dict[str, float] = {
    "solutions": 0.1,
    "openlongcot": 0.5,
    "critique": 0.8,
    "ratings": 0.5,
    "pairs": 1.0,
    "pretrain": 0.2,
}
"""Share of flawed solutions per kind when `corpus_rows` gets no slip_rate."""

Row = dict[str, Any]


def _maybe_slipped(example: Example, rng: random.Random, slip_rate: float) -> Solution:
    expression = expression_of(example.problem)
    if rng.random() < slip_rate:
        return random_slipped_solution(expression, rng)
    return write_solution(expression)


def _solutions_rows(example: Example, rng: random.Random, slip_rate: float) -> Iterator[Row]:
    solution = _maybe_slipped(example, rng, slip_rate)
    yield {
        "id": example.id,
        "prompt": solve_prompt(example.problem.question),
        "completion": solution.text,
        "correct": solution.is_correct,
    }


def _openlongcot_rows(example: Example, rng: random.Random, slip_rate: float) -> Iterator[Row]:
    from openberry.formats.openlongcot import tree_to_string

    if rng.random() < slip_rate:
        flawed = random_slipped_solution(expression_of(example.problem), rng)
        tree, shape = critique_tree(example.problem, flawed), "critique"
    else:
        tree, shape = branching_tree(example.problem, rng), "branching"
    yield {"id": example.id, "text": tree_to_string(tree), "shape": shape}


def _critique_rows(example: Example, rng: random.Random, slip_rate: float) -> Iterator[Row]:
    solution = _maybe_slipped(example, rng, slip_rate)
    critique = write_critique(solution)
    yield {
        "id": example.id,
        "prompt": review_prompt(example.problem.question, solution.text),
        "completion": f"{critique.text}\n{critique.refined_text}",
        "correct": solution.is_correct,
    }


def _ratings_rows(example: Example, rng: random.Random, slip_rate: float) -> Iterator[Row]:
    from openberry.formats.openlongcot import path_to_string

    tree = solution_tree(example.problem, _maybe_slipped(example, rng, slip_rate))
    for node in tree.nodes[1:]:
        path = tree.path(node.id)
        yield {
            "id": f"{example.id}/{node.id}",
            "question": example.problem.question,
            "lines": [tree.nodes[i].text for i in path[1:]],
            "label": node.rating,
            "text": path_to_string(tree, node.id),
        }


def _pairs_rows(example: Example, rng: random.Random, slip_rate: float) -> Iterator[Row]:
    yield {"id": example.id, **write_pair(example.problem, rng).to_dict()}


_ROW_WRITERS: dict[str, Callable[[Example, random.Random, float], Iterator[Row]]] = {
    "solutions": _solutions_rows,
    "openlongcot": _openlongcot_rows,
    "critique": _critique_rows,
    "ratings": _ratings_rows,
    "pairs": _pairs_rows,
}


def corpus_rows(
    kind: str,
    split: str = "train",
    *,
    limit: int | None = None,
    seed: int = 0,
    config: ArithmeticConfig | None = None,
    slip_rate: float | None = None,
) -> Iterator[Row]:
    """Rows of one corpus kind (schemas in the module docstring), deterministic per arguments.

    Args:
        kind: One of `CORPUS_KINDS`.
        split: Which split's problems to write (``train`` for training corpora).
        limit: Number of rows (not problems: ``ratings`` writes several rows per problem). None
            writes the rows of the split's default number of problems (`SPLIT_SIZES`: 10,000
            for train, 500 for validation and test); a larger limit draws further problems.
        seed: Selects the problems and the slips.
        config: Difficulty knobs; the defaults when None.
        slip_rate: Share of flawed solutions in [0, 1]; None takes `DEFAULT_SLIP_RATES`.

    Returns:
        An iterator of JSON-ready dicts. Arguments are checked when it is created.

    Raises:
        ArithmeticTaskError: Unknown kind or split, bad limit or slip_rate.
    """
    if kind not in CORPUS_KINDS:
        raise ArithmeticTaskError(
            f"unknown arithmetic corpus kind {kind!r}; choose one of {', '.join(CORPUS_KINDS)}"
        )
    if split not in SPLIT_SIZES:
        raise ArithmeticTaskError(
            f"unknown arithmetic split {split!r}; choose one of {', '.join(SPLIT_SIZES)}"
        )
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ArithmeticTaskError(f"limit must be a non-negative integer or None, got {limit!r}")
    rate = DEFAULT_SLIP_RATES[kind] if slip_rate is None else slip_rate
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
        raise ArithmeticTaskError(f"slip_rate must be a number in [0, 1], got {slip_rate!r}")
    if kind == "pretrain":
        from openberry.data.arithmetic.pretrain import MixtureConfig, pretraining_docs

        mixture = MixtureConfig(slip_rate=float(rate))
        return pretraining_docs(split, limit=limit, seed=seed, config=config, mixture=mixture)
    return _rows(kind, split, limit, seed, config or ArithmeticConfig(), float(rate))


def _rows(
    kind: str, split: str, limit: int | None, seed: int, config: ArithmeticConfig, rate: float
) -> Iterator[Row]:
    if limit == 0:
        return
    stop = SPLIT_SIZES[split] if limit is None else None  # with a limit, as many as it takes
    written = 0
    write = _ROW_WRITERS[kind]
    for index, example in enumerate(iter_examples(split, config=config, seed=seed, stop=stop)):
        rng = random.Random(derive_seed("arithmetic-corpus", kind, seed, split, index))
        for row in write(example, rng, rate):
            yield row
            written += 1
            if limit is not None and written >= limit:
                return

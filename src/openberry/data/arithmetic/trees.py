"""Arithmetic solutions as OpenLongCoT trees (LLaMA-O1's tree language, docs/formats.md).

Three shapes, all built from the same steps as the text writers:

- `solution_tree`: a chain ``<problem>`` → one ``<expansion>`` per step → ``<conclusion>``, rated
  positive on a correct path and negative from a slip on.
- `branching_tree`: the correct chain with sibling expansions at some steps: a slipped step
  (negative) or the same expression reduced in another valid order (positive). Siblings are
  leaves and are placed before or after the main step at random, so position says nothing.
- `critique_tree`: a slipped chain, its wrong ``<conclusion>`` (negative), a ``<critic>`` naming the
  wrong step (positive), one ``<refine>`` per redone step and the correct ``<conclusion>``.

Text in OpenLongCoT form comes from `openberry.formats.openlongcot` (``tree_to_string``,
``path_to_string``). Ratings are explicit labels; `Node.value` is left unset.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from openberry.data.arithmetic.config import ArithmeticTaskError
from openberry.data.arithmetic.expression import (
    BinOp,
    Step,
    canonical_redex,
    expression_of,
    parse_expression,
    redexes,
    reduce_at,
)
from openberry.data.arithmetic.solutions import (
    RNG,
    Solution,
    _as_rng,
    answer_line,
    slip_result,
    write_critique,
    write_solution,
)
from openberry.records import Problem
from openberry.tree import Node, Tree

__all__ = ["branching_tree", "critique_tree", "solution_tree"]


@dataclass(frozen=True)
class _Spec:
    parent: int | None
    text: str
    meta_action: str
    rating: str
    terminal: bool = False
    answer: str | None = None
    info: Mapping[str, Any] = field(default_factory=dict)


def _add(specs: list[_Spec], spec: _Spec) -> int:
    specs.append(spec)
    return len(specs) - 1


def _assemble(problem: Problem, specs: list[_Spec], method: str, chosen: tuple[int, ...]) -> Tree:
    # Invariant relied on by Tree: ids are creation order and every parent precedes its child.
    children: list[list[int]] = [[] for _ in specs]
    for node_id, spec in enumerate(specs):
        if spec.parent is not None:
            children[spec.parent].append(node_id)
    nodes = tuple(
        Node(
            id=node_id,
            parent=spec.parent,
            children=tuple(children[node_id]),
            text=spec.text,
            meta_action=spec.meta_action,  # type: ignore[arg-type]
            rating=spec.rating,  # type: ignore[arg-type]
            terminal=spec.terminal,
            answer=spec.answer,
            info=spec.info,
        )
        for node_id, spec in enumerate(specs)
    )
    return Tree(problem, nodes, method=method, chosen=chosen, info={"source": "arithmetic"})


def _root(problem: Problem) -> _Spec:
    return _Spec(None, problem.question, "problem", "positive")


def _add_chain(specs: list[_Spec], parent: int, solution: Solution) -> list[int]:
    """Expansions and conclusion of `solution` under `parent`; returns their ids."""
    first_bad = solution.slip.step_index if solution.slip is not None else len(solution.steps) + 1
    ids = []
    for index, step in enumerate(solution.steps):
        info: dict[str, Any] = {"step_index": index}
        if solution.slip is not None and index == solution.slip.step_index:
            info["slip"] = solution.slip.kind
        rating = "positive" if index < first_bad else "negative"
        parent = _add(specs, _Spec(parent, step.text, "expansion", rating, info=info))
        ids.append(parent)
    conclusion = _Spec(
        parent,
        answer_line(solution.answer),
        "conclusion",
        "positive" if solution.is_correct else "negative",
        terminal=True,
        answer=str(solution.answer),
    )
    ids.append(_add(specs, conclusion))
    return ids


def solution_tree(problem: Problem, solution: Solution | None = None) -> Tree:
    """A solution as a chain: problem, one expansion per step, conclusion.

    Args:
        problem: The problem (its question is the root's text).
        solution: A correct or slipped solution of it; None writes the correct one.

    Returns:
        The tree; node ``i`` (1-based) is step ``i``, the last node the conclusion. Ratings are
        positive before the slip and negative from it on; ``chosen`` is the whole chain when the
        solution is correct and empty otherwise.
    """
    solution = solution or write_solution(expression_of(problem))
    specs = [_root(problem)]
    ids = _add_chain(specs, 0, solution)
    chosen = (0, *ids) if solution.is_correct else ()
    return _assemble(problem, specs, "arithmetic/solution", chosen)


def branching_tree(problem: Problem, rng: RNG, *, branch_prob: float = 0.5) -> Tree:
    """The correct chain with sibling alternatives at some steps.

    At each step, with probability `branch_prob`, one sibling leaf is added: with probability 1/2
    (when the expression allows another order) a different operation that can be computed now,
    rated positive; otherwise the same step with a slipped result, rated negative.

    Args:
        problem: The problem.
        rng: The only source of randomness (a `random.Random` or an int seed).
        branch_prob: Probability of a sibling at each step, in [0, 1].

    Returns:
        The tree; ``chosen`` is the correct chain.
    """
    if not 0.0 <= branch_prob <= 1.0:
        raise ArithmeticTaskError(f"branch_prob must lie in [0, 1], got {branch_prob}")
    rng = _as_rng(rng)
    expr = parse_expression(expression_of(problem))
    specs = [_root(problem)]
    chosen = [0]
    index = 0
    while isinstance(expr, BinOp):
        main = canonical_redex(expr)
        main_step = Step(main.left, main.op, main.right, main.result)
        sibling = _sibling(expr, main.path, main_step, index, chosen[-1], rng, branch_prob)
        sibling_first = sibling is not None and rng.random() < 0.5
        if sibling is not None and sibling_first:
            _add(specs, sibling)
        main_spec = _Spec(
            chosen[-1], main_step.text, "expansion", "positive", info={"step_index": index}
        )
        chosen.append(_add(specs, main_spec))
        if sibling is not None and not sibling_first:
            _add(specs, sibling)
        expr = reduce_at(expr, main.path, main.result)
        index += 1
    answer = str(expr.value)
    conclusion = _Spec(chosen[-1], answer_line(answer), "conclusion", "positive", True, answer)
    chosen.append(_add(specs, conclusion))
    return _assemble(problem, specs, "arithmetic/branching", tuple(chosen))


def _sibling(
    expr: BinOp,
    main_path: tuple[int, ...],
    main_step: Step,
    index: int,
    parent: int,
    rng: random.Random,
    branch_prob: float,
) -> _Spec | None:
    """The sibling leaf of step `index` (a child of `parent`), or None."""
    if rng.random() >= branch_prob:
        return None
    alternatives = [r for r in redexes(expr) if r.path != main_path]
    if alternatives and rng.random() < 0.5:
        alt = rng.choice(alternatives)
        text = Step(alt.left, alt.op, alt.right, alt.result).text
        info = {"step_index": index, "alternative": True}
        return _Spec(parent, text, "expansion", "positive", info=info)
    kind, wrong = slip_result(main_step, rng)
    text = Step(main_step.left, main_step.op, main_step.right, wrong).text
    info = {"step_index": index, "slip": kind}
    return _Spec(parent, text, "expansion", "negative", info=info)


def critique_tree(problem: Problem, solution: Solution) -> Tree:
    """A slipped solution, its critique and the refined continuation, as one chain.

    problem → expansions (negative from the slip on) → wrong conclusion (negative) → critic
    (positive) → one refine per redone step (positive) → correct conclusion (positive).

    Args:
        problem: The problem.
        solution: A slipped solution of it (from `write_slipped_solution`).

    Returns:
        The tree; ``chosen`` is the whole chain (it ends at the correct answer).

    Raises:
        ArithmeticTaskError: The solution has no slip, so there is nothing to critique.
    """
    if solution.slip is None:
        raise ArithmeticTaskError("critique_tree needs a slipped solution; this one is correct")
    critique = write_critique(solution)
    specs = [_root(problem)]
    ids = _add_chain(specs, 0, solution)
    info = {"step_index": critique.step_index}
    parent = _add(specs, _Spec(ids[-1], critique.text, "critic", "positive", info=info))
    ids.append(parent)
    for offset, step in enumerate(critique.refined):
        info = {"step_index": solution.slip.step_index + offset}
        parent = _add(specs, _Spec(parent, step.text, "refine", "positive", info=info))
        ids.append(parent)
    answer = str(critique.answer)
    conclusion = _Spec(parent, answer_line(answer), "conclusion", "positive", True, answer)
    ids.append(_add(specs, conclusion))
    return _assemble(problem, specs, "arithmetic/critique", (0, *ids))

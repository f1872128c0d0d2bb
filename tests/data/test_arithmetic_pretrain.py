"""berry-tiny's pretraining mixture: role shares, slip rates, and every document parses back."""

from __future__ import annotations

import collections

import pytest

from openberry.data.arithmetic import check_solution, evaluate, parse_expression
from openberry.data.arithmetic.config import ArithmeticTaskError
from openberry.data.arithmetic.expression import expression_of
from openberry.data.arithmetic.pretrain import (
    CORRECT_SCORES,
    FLAWED_SCORES,
    ROLES,
    MixtureConfig,
    pretraining_docs,
)
from openberry.data.arithmetic.solutions import habit_result, write_solution
from openberry.formats.openlongcot import string_to_tree
from openberry.formats.prompts import (
    JUDGE_NO,
    JUDGE_YES,
    REVIEW_OK,
    judge_prompt,
    review_prompt,
    self_eval_prompt,
    solve_prompt,
)


def _question(text: str) -> str:
    first = text.split("\n", 1)[0]
    assert first.startswith("Question: ")
    return first.removeprefix("Question: ")


def _split_after(text: str, marker: str) -> tuple[str, str]:
    head, sep, tail = text.partition(marker)
    assert sep, f"{marker!r} not in {text!r}"
    return head + sep, tail


def test_shares_and_determinism() -> None:
    docs = list(pretraining_docs(limit=3000, seed=1))
    assert len(docs) == 3000
    assert docs[:50] == list(pretraining_docs(limit=50, seed=1))
    assert docs[:50] != list(pretraining_docs(limit=50, seed=2))
    counts = collections.Counter(d["role"] for d in docs)
    mix = MixtureConfig()
    for role in ROLES:
        assert abs(counts[role] / 3000 - getattr(mix, role)) < 0.03, (role, counts)


def _solve_docs(**rates) -> list[dict]:
    mix = MixtureConfig(solve=1, openlongcot=0, review=0, self_eval=0, judge=0, **rates)
    docs = list(pretraining_docs(limit=800, mixture=mix))
    assert {d["role"] for d in docs} == {"solve"}
    for d in docs:
        question = _question(d["text"])
        prompt, solution = _split_after(d["text"], "Solution:\n")
        assert prompt == solve_prompt(question)
        check = check_solution(expression_of(question), solution)
        assert check.is_correct == d["correct"]
        d["question"], d["solution"] = question, solution
    return docs


def test_solve_documents_slip_at_the_set_rates() -> None:
    random_only = _solve_docs(habit_rate=0.0, slip_rate=0.3)
    assert 0.25 < sum(not d["correct"] for d in random_only) / 800 < 0.35
    # habit_rate 1: every problem with a carry or borrow comes out wrong, exactly there.
    for d in _solve_docs(habit_rate=1.0, slip_rate=0.0):
        steps = write_solution(expression_of(d["question"])).steps
        first = next((i for i, st in enumerate(steps) if habit_result(st) is not None), None)
        assert d["correct"] == (first is None)
        if first is not None:
            line = d["solution"].split("\n")[first]
            assert line.endswith(f"= {habit_result(steps[first])}")
    # the default mixture: flawed text at a set, substantial rate
    default = _solve_docs()
    assert 0.35 < sum(not d["correct"] for d in default) / 800 < 0.6


def test_every_role_document_is_well_formed() -> None:
    seen = set()
    for d in pretraining_docs(limit=600, seed=3):
        text, role = d["text"], d["role"]
        seen.add(role)
        if role == "openlongcot":
            tree = string_to_tree(text)
            assert tree.nodes[0].meta_action == "problem"
            continue
        question = _question(text)
        expression = expression_of(question)
        value = evaluate(parse_expression(expression))
        if role == "review":
            head, rest = _split_after(text, "Review:\n")
            solution = head.split("Proposed solution:\n", 1)[1].removesuffix("\nReview:\n")
            assert head == review_prompt(question, solution)
            review, corrected = rest.split("\nCorrected solution:\n")
            assert (review == REVIEW_OK) == d["correct"]
            assert check_solution(expression, corrected).is_correct
            assert corrected.endswith(f"\\boxed{{{value}}}.")
        elif role == "self_eval":
            head, score = _split_after(text, "Score: ")
            solution = head.split("Proposed solution:\n", 1)[1].removesuffix("\nScore: ")
            assert head == self_eval_prompt(question, solution)
            assert int(score) in (CORRECT_SCORES if d["correct"] else FLAWED_SCORES)
        elif role == "judge":
            head, answer = _split_after(text, "better than solution B? ")
            a = head.split("Solution A:\n", 1)[1].split("\nSolution B:\n")[0]
            b = head.split("Solution B:\n", 1)[1].split("\nIs solution A")[0]
            assert head == judge_prompt(question, a, b)
            a_ok = check_solution(expression, a).is_correct
            assert a_ok != check_solution(expression, b).is_correct
            assert answer == (JUDGE_YES if a_ok else JUDGE_NO)
    assert seen == set(ROLES)


def test_bad_mixture_is_refused() -> None:
    with pytest.raises(ArithmeticTaskError):
        MixtureConfig(slip_rate=1.5)
    with pytest.raises(ArithmeticTaskError):
        MixtureConfig(solve=0, openlongcot=0, review=0, self_eval=0, judge=0)
    with pytest.raises(ArithmeticTaskError):
        next(pretraining_docs("nope"))

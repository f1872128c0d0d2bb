"""The role prompts: exact frames, and each one a prefix of the next where the roles chain."""

from __future__ import annotations

from openberry.formats.prompts import (
    REVIEW_OK,
    judge_prompt,
    refine_prompt,
    review_prompt,
    self_eval_prompt,
    solve_prompt,
)

Q = "Compute 2 + 3 * 4."
S = "3 * 4 = 12\n2 + 12 = 14\nThe answer is \\boxed{14}."


def test_frames() -> None:
    assert solve_prompt(Q) == f"Question: {Q}\nSolution:\n"
    assert review_prompt(Q, S + "\n") == f"Question: {Q}\nProposed solution:\n{S}\nReview:\n"
    assert self_eval_prompt(Q, S).endswith(f"{S}\nScore: ")
    judge = judge_prompt(Q, S, "x")
    assert judge.endswith("Solution B:\nx\nIs solution A better than solution B? ")


def test_refine_extends_review() -> None:
    review = review_prompt(Q, S)
    refine = refine_prompt(Q, S, REVIEW_OK + "\n")
    assert refine == f"{review}{REVIEW_OK}\nCorrected solution:\n"


def test_reviewed_solutions_never_follow_the_solve_frame() -> None:
    """Flawed solutions shown for review must not read as answers to the solve prompt."""
    for prompt in (review_prompt(Q, S), self_eval_prompt(Q, S), judge_prompt(Q, S, S)):
        assert "Solution:\n" not in prompt

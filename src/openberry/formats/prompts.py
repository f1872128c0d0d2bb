"""Plain-text prompts for the roles a model plays in search (besides OpenLongCoT's policy/value).

One module owns these strings so that the corpus a model is trained on (`berry-tiny`'s
pretraining mixture, `openberry.data.arithmetic.pretrain`) and the search code that prompts it
agree to the character: search reads them through the ``tiny`` prompt profile
(`openberry.formats.profiles.TINY`), byte-identical to these functions
(tests/formats/test_profiles.py). Every prompt ends where the model's answer starts:

============  ==============================================  =====================================
role          prompt ends with                                model writes
============  ==============================================  =====================================
solve         ``Question: Q\\nSolution:\\n``                    the solution lines, answer line last
review        ``...Proposed solution:\\nS\\nReview:\\n``          one critique line (`REVIEW_OK` or
                                                              ``Step k is wrong: ...``)
refine        ``...Review:\\nC\\nCorrected solution:\\n``         a whole new solution
self-eval     ``...Proposed solution:\\nS\\nScore: ``             an integer in [-100, 100] (MCTSr
                                                              reward, section 3.2 of the paper)
judge         ``...Is solution A better than solution B? ``   `JUDGE_YES` or `JUDGE_NO` (PPRM)
============  ==============================================  =====================================

Departures from the papers: MCTSr and LLaMA-Berry prompt large chat models with long English
instructions; a 1M-10M-parameter model cannot follow instructions, so each role has a short fixed
frame that the model learns from its corpus. Reviewed, scored and judged solutions follow
``Proposed solution:`` or ``Solution A:`` rather than ``Solution:``, so that the flawed solutions
those documents show do not change what the model writes after ``Solution:``.
"""

from __future__ import annotations

__all__ = [
    "JUDGE_NO",
    "JUDGE_YES",
    "REVIEW_OK",
    "judge_prompt",
    "refine_prompt",
    "review_prompt",
    "self_eval_prompt",
    "solve_prompt",
]

REVIEW_OK = "All steps are correct."
"""The review of a solution with no wrong step."""
JUDGE_YES = "Yes"
"""The judge's answer when solution A is better (one token in openberry tokenizers)."""
JUDGE_NO = "No"
"""The judge's answer when solution B is better."""


def solve_prompt(question: str) -> str:
    """Prompt for a step-by-step solution of `question`."""
    return f"Question: {question}\nSolution:\n"


def _proposed(question: str, solution: str) -> str:
    return f"Question: {question}\nProposed solution:\n{solution.rstrip()}\n"


def review_prompt(question: str, solution: str) -> str:
    """Prompt for a one-line review of `solution` (MCTSr's critique step)."""
    return f"{_proposed(question, solution)}Review:\n"


def refine_prompt(question: str, solution: str, review: str) -> str:
    """Prompt for a corrected solution, given a solution and its review (MCTSr's rewrite)."""
    return f"{review_prompt(question, solution)}{review.strip()}\nCorrected solution:\n"


def self_eval_prompt(question: str, solution: str) -> str:
    """Prompt for a score in [-100, 100] of `solution` (MCTSr's self-evaluation reward)."""
    return f"{_proposed(question, solution)}Score: "


def judge_prompt(question: str, solution_a: str, solution_b: str) -> str:
    """Prompt for the pairwise judge: the next token is `JUDGE_YES` if A is better, else `JUDGE_NO`."""
    return (
        f"Question: {question}\nSolution A:\n{solution_a.rstrip()}\n"
        f"Solution B:\n{solution_b.rstrip()}\nIs solution A better than solution B? "
    )

"""Reading chatty replies: scores, Yes/No verdicts and critiques, as tables, plus one named
regression test per fix over MCTSr's code parser (`openberry.search.scorers.parse_score`)."""

from __future__ import annotations

import pytest

from openberry.formats.replies import read_critique, read_score, read_yes_no
from openberry.search.scorers import parse_score

SCORES = [
    # berry-tiny's replies, read after the tiny frame's "Score: "
    ("85", 85.0),
    (" -40\n", -40.0),
    ("Score: 85", 85.0),
    ("Score: -60", -60.0),
    ("Score: 250", 100.0),
    ("Score: -250", -100.0),
    # chat replies
    ("**Score: 70**", 70.0),
    ("**Score:** 65", 65.0),
    ("[Analyst] Step 2 adds wrongly.\n[Score] -50", -50.0),
    ("[Score]: 40", 40.0),
    ("Score = 12.5", 12.5),
    ("The score is -20.", -20.0),
    ("Final score: \\boxed{35}", 35.0),
    ("Score: −30", -30.0),
    ("score of 85/100", 85.0),
    ("Score: 8.5/10", 85.0),
    ("I would rate this 85/100.", 85.0),
    ("I'd give it a 60.", 60.0),
    ("Rating: 4/5", 80.0),
    ("Overall this deserves 45 out of 100.", 45.0),
    ("Score: 70. It computes 12 + 3 = 15.", 70.0),
    ("The score should be low.\n[Score] 20\nThis score reflects 3 errors.", 20.0),
    ("Score: 70 - a solid answer", 70.0),
    # nothing stated
    ("", None),
    ("I cannot evaluate this.", None),
    ("The answer is 12.", None),
    ("12 + 3 = 15", None),
]


@pytest.mark.parametrize(("reply", "score"), SCORES)
def test_read_score(reply: str, score: float | None) -> None:
    assert read_score(reply) == score


@pytest.mark.parametrize(
    "reply",
    ["Score: 7 + 18 = 25", "Score: 54 - 8 = 46", "Score: 6 -14 = 2", "Score: 8 + 5", "Score: 90"],
)
def test_berry_tiny_replies_read_as_mctsr_reads_them(reply: str) -> None:
    """berry-tiny sometimes writes a step where its score goes: MCTSr's code reads the last
    number, and so does `read_score`, so the tiny profile's searches do not change."""
    assert read_score(reply) == parse_score(reply.removeprefix("Score: "))


# -- one regression test per fix over MCTSr's parser ---------------------------------------------


def test_regression_prose_after_the_score_is_not_the_score() -> None:
    reply = "Score: 70. The solution computes 12 + 3 = 15 correctly."
    assert parse_score(reply) == 15 and read_score(reply) == 70


def test_regression_a_rating_out_of_ten_is_scaled() -> None:
    assert parse_score("[Score] 7 out of 10") == 10 and read_score("[Score] 7 out of 10") == 70


def test_regression_a_rating_without_the_word_score() -> None:
    reply = "I would rate this 85/100."
    assert parse_score(reply) == 100 and read_score(reply) == 85


def test_regression_a_reply_that_states_no_score_is_unparsed() -> None:
    reply = "The answer is 12, which is correct."
    assert parse_score(reply) == 12 and read_score(reply) is None


def test_regression_markdown_around_the_score() -> None:
    assert read_score("**Score:** 65") == 65 and read_score("**Score: 70**") == 70


def test_regression_a_unicode_minus_is_a_negative_score() -> None:
    assert parse_score("Score: −30") == 30 and read_score("Score: −30") == -30


# -- Yes / No --------------------------------------------------------------------------------------

VERDICTS = [
    ("Yes", True),
    ("No", False),
    ("yes", True),
    ("**Yes**", True),
    ("**No**, the second answer is better.", False),
    ("Answer: No.", False),
    ("**Answer:** Yes", True),
    ("Verdict - no", False),
    ('"Yes"', True),
    ("The answer is Yes.", True),
    ("First Answer is better. Yes.", True),
    ("After comparing both, my answer is: **No**", False),
    ("Nobody can tell.", None),
    ("I think yes, but also no.", None),
    ("", None),
]


@pytest.mark.parametrize(("reply", "verdict"), VERDICTS)
def test_read_yes_no(reply: str, verdict: bool | None) -> None:
    assert read_yes_no(reply) is verdict


def test_regression_yes_no_with_formatting_around_it() -> None:
    """The judge's first token is Yes or No only for a trained PPRM; an instruct model writes
    ``**Yes**`` or ``Answer: No.``, which read as the verdict they state."""
    assert read_yes_no("**Yes**") is True and read_yes_no("Answer: No.") is False


# -- critiques -------------------------------------------------------------------------------------


def test_read_critique_takes_any_length_and_refuses_an_empty_one() -> None:
    long = "Step 1 is right.\n\n" + "The second step adds 3 instead of 4. " * 200
    assert read_critique(long) == long.strip()
    assert read_critique("  All steps are correct.\n") == "All steps are correct."
    assert read_critique(" \n ") is None

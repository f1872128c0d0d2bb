"""Answer extraction: boxes, GSM8K markers, answer sentences and the fallback modes."""

from __future__ import annotations

import pytest

from openberry.grading.extract import (
    all_boxed,
    extract_answer,
    last_boxed,
    looks_like_bare_answer,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so $\boxed{5}$.", "5"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"nested \boxed{\frac{\sqrt{2}}{\{2\}}} end", r"\frac{\sqrt{2}}{\{2\}}"),
        (r"first \boxed{1} then \boxed{2}", "2"),
        (r"\fbox{7}", "7"),
        (r"\boxed 5.", "5"),
        (r"\boxed{3} and a broken \boxed{4", "3"),
        ("no box here", None),
        (r"\boxed{ (1, 2) }", "(1, 2)"),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_all_boxed_in_order():
    assert all_boxed(r"max \boxed{2} and min \boxed{1}, bad \boxed{") == ["2", "1"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # 1. the box wins over every other marker
        ("The answer is 3. #### 4\n\\boxed{5}", "5"),
        # 2. GSM8K: the last #### line, thousands separators removed
        ("She makes 9 * 2 = 18 dollars.\n#### 18", "18"),
        ("#### 1,000", "1000"),
        ("#### 3\nmore\n#### 4", "4"),
        # 3. answer sentences, case-insensitive, last occurrence
        ("The answer is 42.", "42"),
        ("so THE ANSWER IS 7", "7"),
        ("The answer is 3. Wait, the answer is 4.", "4"),
        ("Final Answer: The final answer is $3$. I hope it is correct.", "3"),
        ("final answer is $-\\frac{1}{2}$.", "-\\frac{1}{2}"),
        ("Final Answer: 12 apples", "12 apples"),
        ("**Final Answer:** \\(k < -5\\).", "k < -5"),
        ("the answer is $5$, which is the number of apples", "5"),
        ("The answer is $x=5$ and $x=-2$.", "$x=5$ and $x=-2$"),
        ("The values are: so the final answer is:\n\n$$ 42 $$\n\nDone.", "42"),
        ("Hence, the solution is \\(f(n) = n\\) for all \\(n\\).", "f(n) = n"),
        ("The answer is 3.5.", "3.5"),
    ],
)
def test_extract_answer_priority(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("There are 3 cats and 12 dogs.", "12"),
        ("The total is $1,234,567 today.", "1234567"),
        ("It is 1{,}000 m.", "1000"),
        ("The temperature is -5 degrees.", "-5"),
        ("We get 3.75 hours.", "3.75"),
        ("About 3/4 of them.", "3/4"),
        ("Half is \\(\\frac{3}{4}\\) of it", "\\frac{3}{4}"),
        ("the range 3-4", "4"),
        ("no numbers at all", None),
    ],
)
def test_last_number_fallback(text, expected):
    assert extract_answer(text, fallback="last_number") == expected


def test_fallback_modes():
    text = "  I think it is 12 or so  "
    assert extract_answer(text, fallback="none") is None
    assert extract_answer(text, fallback="whole") == "I think it is 12 or so"
    assert extract_answer(text, fallback="last_number") == "12"
    assert extract_answer("", fallback="whole") is None
    with pytest.raises(ValueError, match="fallback"):
        extract_answer("x", fallback="first")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "whole"),
    [
        ("0.5", True),
        ("1,2", True),
        ("(1, 2)", True),
        (r"8\sqrt{3} \text{ square inches}", True),
        (r"x \in [2, 5)", True),
        ("The total is 42", False),
        ("first line\nsecond line 3", False),
        ("we get 2 + 3 = 5 so 5", False),
    ],
)
def test_auto_fallback_takes_bare_answers_whole(text, whole):
    assert looks_like_bare_answer(text) is whole
    got = extract_answer(text, fallback="auto")
    if whole:
        assert got == text.strip()
    else:
        assert got == extract_answer(text, fallback="last_number")


def test_regression_long_bare_answer_taken_whole():
    """A long one-line bare answer (deep LaTeX) is taken whole, not cut to a number inside it."""
    deep = "\\frac{1}{" * 100 + "2" + "}" * 100
    assert extract_answer(deep, fallback="auto") == deep


def test_regression_answer_sentence_keeps_only_final_math_run():
    """The prose and the earlier maths of an answer sentence are dropped (olympiadbench-586)."""
    text = (
        "**Final Answer:** The values of \\(x\\) for which \\(f(x) = g(x)\\) are "
        "\\(x = 5\\) and \\(x = -2\\)."
    )
    assert extract_answer(text) == "\\(x = 5\\) and \\(x = -2\\)"
    assert extract_answer("The answer is: for \\(a\\) we get \\(1\\), \\(2\\) or \\(3\\).") == (
        "\\(1\\), \\(2\\) or \\(3\\)"
    )


def test_regression_many_unbalanced_boxes_are_linear():
    """Brace matching is one pass: 100,000 unbalanced boxes no longer take quadratic time."""
    import time

    text = "\\boxed{" * 100_000 + " \\boxed{7}"
    start = time.monotonic()
    assert last_boxed(text) == "7"
    assert time.monotonic() - start < 2.0

r"""Answer kinds where we follow math-verify's verdicts: decimal commas, several boxes, intervals
against inequalities, matrices, unboxed final answers, and what must stay apart.

The cases are our own; the kinds come from where our grader and math-verify's test suite disagreed
(see ``bench/grader_mathverify.py``).
"""

from __future__ import annotations

import pytest

from openberry.grading import (
    Grader,
    decimal_comma,
    extract_answer,
    final_boxes,
    normalize_answer,
)


@pytest.fixture(scope="module")
def grader():
    with Grader(timeout=5) as g:
        yield g


def _check(grader, pred: str, gold: str, equal: bool) -> None:
    verdict = grader.grade(pred, gold)
    assert verdict.correct is equal, verdict


# -- decimal comma ------------------------------------------------------------------------------

DECIMAL_COMMA = [
    ("2,5", "2.5", True),
    ("2.5", "2,5", True),
    ("0,125", "1/8", True),
    ("1234,5", "1234.5", True),
    ("-3,75", "-3.75", True),
    ("1,000", "1000", True),  # a thousands separator, not 1.000
    ("1,000", "1", False),
    ("2,500", "2500", True),
    ("2,500", "2.5", False),
    ("(2,5)", "2.5", False),  # a tuple
    ("2, 5", "2.5", False),  # a list: a space after the comma
    ("$2,5$", "2.5", False),  # LaTeX: a list, as math-verify reads it
    ("2,5", "2.6", False),
]


@pytest.mark.parametrize(("pred", "gold", "equal"), DECIMAL_COMMA)
def test_decimal_comma(grader, pred, gold, equal):
    _check(grader, pred, gold, equal)


@pytest.mark.parametrize(
    ("text", "reading"),
    [
        ("1,22", "1.22"),
        ("0,111", "0.111"),  # no thousands grouping starts with 0
        ("1000,99", "1000.99"),  # nor has four digits before a comma
        ("12,3456", "12.3456"),
        ("-0,5", "-0.5"),
        ("1,234", None),
        ("1, 22", None),
        ("(1,22)", None),
        ("$1,22$", None),
        ("1,2,3", None),
        ("x,5", None),
    ],
)
def test_decimal_comma_reading(text, reading):
    assert decimal_comma(text) == reading


def test_regression_decimal_comma_reads_as_decimal(grader):
    """A bare 0,375 was a list of 0 and 375 and never equalled 0.375."""
    assert grader.grade("0,375", "0.375").correct
    assert grader.grade("3/8", "0,375").correct


# -- several boxes --------------------------------------------------------------------------------

SEVERAL_BOXES = [
    (r"\boxed{4, 9}", r"\boxed{4} and \boxed{9}", True),
    (r"\boxed{-1}, \boxed{6}", "6, -1", True),
    ("{2, 5}", r"$\boxed{2}\boxed{5}$", True),
    (r"so $x = \boxed{3}$ or $x = \boxed{7}$", r"\{3, 7\}", True),
    (r"\boxed{(1, 4)} and \boxed{(4, 1)}", "(4,1), (1,4)", True),
    (r"\boxed{4, 8}", r"\boxed{4} and \boxed{9}", False),
    (r"\boxed{4, 9, 10}", r"\boxed{4} and \boxed{9}", False),
    # far apart with no separator between them: not one answer, the gold is its last box
    (r"\boxed{4, 9}", r"\boxed{4} we checked this twice over \boxed{9}", False),
]


@pytest.mark.parametrize(("pred", "gold", "equal"), SEVERAL_BOXES)
def test_several_boxes(grader, pred, gold, equal):
    _check(grader, pred, gold, equal)


@pytest.mark.parametrize(
    ("text", "boxes"),
    [
        (r"\boxed{1}\boxed{2}", ["1", "2"]),
        (r"\boxed{1} apples and \boxed{2} pears", ["1", "2"]),
        (r"\boxed{5}; \boxed{6}; \boxed{7}", ["5", "6", "7"]),
        (r"\boxed{5}, \boxed{5}", ["5"]),
        (r"\boxed{3} no no no no no no \boxed{4}", ["4"]),
        (r"area \boxed{12} first" + " and so on" * 8 + r" then \boxed{14}", ["14"]),
        (r"\boxed{2} and \boxed{3", ["2"]),
        ("no box", []),
    ],
)
def test_final_boxes(text, boxes):
    assert final_boxes(text) == boxes


def test_regression_gold_over_several_boxes_is_a_set(grader):
    """A gold "\\boxed{1} and \\boxed{-2}" was read as -2 alone, so the full answer was wrong."""
    assert grader.grade(r"$\boxed{-2, 1}$", r"\(\boxed{1}\) and \(\boxed{-2}\).").correct


def test_regression_prediction_boxes_joined_against_a_set(grader):
    """A prediction "\\boxed{1}, \\boxed{2}, \\boxed{3}" was read as 3 against the set {1,2,3}."""
    assert grader.grade(r"\boxed{1}, \boxed{2}, \boxed{3}", "{1, 2, 3}").correct


def test_last_box_alone_still_counts(grader):
    """Our departure from math-verify: the last box alone is accepted on either side."""
    assert grader.grade(r"max is \boxed{1} and min is \boxed{2}", "2").correct
    assert grader.grade(r"\boxed{11+x}", r"This yields $\boxed{x+11}$ or $\boxed{11+x}$.").correct


# -- intervals and inequalities -------------------------------------------------------------------

INTERVALS = [
    (r"-1 \le y \le 4", r"y \in [-1, 4]", True),
    (r"y \in [-1, 4]", r"-1 \le y \le 4", True),
    (r"-1 \\le y \\le 4", r"y \in [-1,4]", True),
    (r"y \in [-1,4]", r"-1 \\le y \\le 4", True),
    (r"0 < t \\leq 3", "(0,3]", True),
    (r"-1 \le y < 4", "[-1,4]", False),
    (r"-1 \\le y \\le 4", "[-1,5]", False),
]


@pytest.mark.parametrize(("pred", "gold", "equal"), INTERVALS)
def test_interval_against_inequalities(grader, pred, gold, equal):
    _check(grader, pred, gold, equal)


def test_regression_doubled_backslash_inequality_is_an_interval():
    """``-2 \\\\le x`` (an escaping slip) was read as a line break and never became [-2, 7]."""
    assert normalize_answer(r"-2 \\le x \\le 7") == "[-2,7]"
    assert normalize_answer(r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}") == (
        r"\begin{pmatrix}1\\2\end{pmatrix}"
    )


# -- matrices -------------------------------------------------------------------------------------

MATRICES = [
    (r"\begin{pmatrix} 0.25 \\ 2 \end{pmatrix}", r"\begin{pmatrix} \frac{1}{4} \\ 2 \end{pmatrix}"),
    (
        r"\begin{pmatrix} 0.333333 \\ 2 \end{pmatrix}",
        r"\begin{pmatrix} \frac{1}{3} \\ 2 \end{pmatrix}",
    ),
]


@pytest.mark.parametrize(("pred", "gold"), MATRICES)
def test_matrix_against_its_decimals(grader, pred, gold):
    _check(grader, pred, gold, True)


def test_matrix_rounded_to_two_places_is_not_equal_by_default(grader):
    """math-verify's default precision is 6 decimal places; 0.33 is not 1/3 there or here."""
    pred = r"\begin{pmatrix} 0.33 \\ 2 \end{pmatrix}"
    _check(grader, pred, r"\begin{pmatrix} \frac{1}{3} \\ 2 \end{pmatrix}", False)


# -- unboxed final answers ------------------------------------------------------------------------

UNBOXED = [
    ("Work.\nFinal Answer: The area of $\\triangle PQR$ is 48. I hope it is correct.", "48"),
    ("Work.\nFinal Answer: Tom finished the race 7 minutes early.", "7"),
    ("Final Answer: The number of ways is $\\frac{5}{2}$.", "\\frac{5}{2}"),
    ("Final Answer: The two roots are $2$ and $5$.", "$2$ and $5$"),
    (
        r"First $a = \boxed{6}$, then $b = \boxed{8}$. Adding them, the final answer is $14$.",
        "14",
    ),
    # what must not change
    ("Final Answer: Tom ran 3 miles in 20 minutes.", "Tom ran 3 miles in 20 minutes"),
    ("Final Answer: It rose 28% in a year.", "It rose 28% in a year"),
    ("The final answer is 5 if n is even.", "5 if n is even"),
    (r"\boxed{7}. So the answer is correct.", "7"),
    (r"The final answer is \boxed{9}.", "9"),
]


@pytest.mark.parametrize(("text", "answer"), UNBOXED)
def test_unboxed_final_answer(text, answer):
    assert extract_answer(text) == answer


def test_regression_answer_sentence_states_value_after_verb():
    """ "Final Answer: The largest $k$ is 21." gave the variable ``k`` instead of 21."""
    assert extract_answer("Final Answer: The largest $k$ is 21. I hope it is correct.") == "21"


def test_regression_answer_sentence_after_the_last_box_wins(grader):
    """A step's box (\\boxed{30}) beat the answer sentence that followed it."""
    text = r"Tax is $\boxed{30}$, so the total is $\$1,030$. The final answer is $1,030$."
    assert grader.grade(text, "1030").correct


# -- what must stay apart -------------------------------------------------------------------------

APART = [
    (r"\boxed{12, 345}", "12345", False),  # a list of two
    (r"\boxed{12,345}", "12345", True),
    (r"$12,\! 345$", "12345", True),  # LaTeX's thousands idiom
    (r"14 {, }916", "14916", True),
    ("1, 000", "1000", False),
]


@pytest.mark.parametrize(("pred", "gold", "equal"), APART)
def test_thousands_against_lists(grader, pred, gold, equal):
    _check(grader, pred, gold, equal)


def test_regression_space_after_comma_is_a_list_not_thousands(grader):
    """\\boxed{32, 349} was read as 32349."""
    verdict = grader.grade(r"the pair is $\boxed{21, 430}$", "21430")
    assert not verdict.correct
    assert verdict.reason == "not equivalent"


def test_regression_group_braces_are_not_a_value():
    """``{1, 2, 3}`` (LaTeX grouping) was one opaque atom instead of a list."""
    assert normalize_answer("{1, 2, 3}") == "1,2,3"
    assert normalize_answer(r"\{1, 2\}") == r"\{1,2\}"
    assert normalize_answer("{x}^{2}") == "{x}^2"


def test_regression_an_answer_stated_before_its_marker_is_read() -> None:
    """SmolLM2 ended a solution with "Step 2: 22 is the final answer."; with no forward marker,
    search read no answer at all."""
    from openberry.grading.extract import extract_answer

    cases = [
        ("Step 1: 18 * 5 = 90\n\nStep 2: 22 is the final answer.", "22"),
        ("So $x=5$ is the answer.", "x=5"),
        ("1,000 is our final answer", "1000"),
        ("3 is the answer, so the final answer is 4.", "4"),  # a forward marker wins
        ("This is the answer.", None),  # no number or math: nothing stated
    ]
    for text, expected in cases:
        assert extract_answer(text, fallback="none") == expected, text

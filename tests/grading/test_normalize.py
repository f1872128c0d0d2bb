"""Normalisation rules and exact number parsing."""

from __future__ import annotations

from fractions import Fraction

import pytest

from openberry.grading.normalize import (
    has_percent,
    normalize_answer,
    parse_number,
    split_structure,
    split_top_level,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # delimiters and spacing
        (r"$\frac{1}{2}$", r"\frac{1}{2}"),
        (r"\( 3 \)", "3"),
        (r"\[ 3 \]", "3"),
        (r"\left( 1, 2 \right)", "(1,2)"),
        (r"1\!000", "1000"),
        (r"a\,b\;c~d", "abcd"),
        (r"\displaystyle \frac12", r"\frac{1}{2}"),
        # text commands, fractions
        (r"\text{Monday}", "Monday"),
        (r"\textbf{(C)}", "C"),
        (r"\mathrm{e}", "e"),
        (r"\mbox{yes}", "yes"),
        (r"\dfrac{3}{4}", r"\frac{3}{4}"),
        (r"\tfrac{3}{4}", r"\frac{3}{4}"),
        (r"\frac34", r"\frac{3}{4}"),
        (r"\sqrt2", r"\sqrt{2}"),
        # units
        (r"10 \text{ cm}", "10"),
        (r"12\text{ cm}^2", "12"),
        (r"8\sqrt{3} \text { square inches}", r"8\sqrt{3}"),
        ("5 feet", "5"),
        ("30 dollars", "30"),
        (r"\$324", "324"),
        ("20 workers", "20"),
        ("4 blue shoe boxes", "4"),
        ("12 square units", "12"),
        ("5 m", "5"),
        (r"2\pi \text{ cm}", r"2\pi"),
        ("2 and 3", "2,3"),
        # thousands separators vs tuples and lists
        ("1,000,000", "1000000"),
        ("1{,}000", "1000"),
        ("-12,345.5", "-12345.5"),
        ("(1,2)", "(1,2)"),
        ("1,2", "1,2"),
        ("1,23", "1,23"),
        ("12345,67890", "12345,67890"),
        # percent and degrees
        (r"50\%", "50"),
        ("50%", "50"),
        (r"30^\circ", "30"),
        (r"30^{\circ}", "30"),
        ("30°", "30"),
        # multiple choice
        ("(B)", "B"),
        ("B)", "B"),
        (r"\text{(B)}", "B"),
        ("(B) 42", "B"),
        # assignments and inequalities
        ("x = 5", "5"),
        ("k=3", "3"),
        (r"\theta = 30^\circ", "30"),
        ("x=5, x=-2", "5,-2"),
        ("x=1, y=2", "x=1,y=2"),
        (r"x \in [2, 5)", "[2,5)"),
        ("k < -5", r"(-\infty,-5)"),
        (r"x \geq 3", r"[3,\infty)"),
        (r"1 < x \le 3", "(1,3]"),
        ("f(y) = 1", "f(x)=1"),
        ("f(y)=x+y", "f(y)=x+y"),
        # intervals, sets, infinity, pi
        (r"(-\infty, 3] \cup (4, +\infty)", r"(-\infty,3]\cup(4,\infty)"),
        (r"\lbrace 1, 2 \rbrace", r"\{1,2\}"),
        ("∞", r"\infty"),
        ("2π", r"2\pi"),
        # trailing period, leading plus
        ("5.", "5"),
        ("+7", "7"),
    ],
)
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


def test_has_percent():
    assert has_percent(r"50\%")
    assert has_percent("50 percent")
    assert not has_percent("50")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12", Fraction(12)),
        ("-0.25", Fraction(-1, 4)),
        (".5", Fraction(1, 2)),
        ("3/4", Fraction(3, 4)),
        (r"\frac{3}{4}", Fraction(3, 4)),
        (r"-\frac{1}{2}", Fraction(-1, 2)),
        (r"\frac{-1}{2}", Fraction(-1, 2)),
        ("1/0", None),
        ("x", None),
        (r"\sqrt{2}", None),
        ("1" * 5000, None),  # beyond the int/str digit limit: not a crash, just "not a number"
    ],
)
def test_parse_number(text, value):
    assert parse_number(text) == value


def test_split_structure_kinds():
    assert split_structure("(1,2)").kind == "bracket"
    assert split_structure("[1,2)").brackets == "[)"
    assert split_structure(r"\{1,2\}").kind == "list"
    assert split_structure("1,2").kind == "list"
    assert split_structure(r"(1,2)\cup(3,4)").parts == ("(1,2)", "(3,4)")
    assert split_structure(r"\frac{1}{2}").kind == "atom"
    assert split_structure("(1)+(2)").kind == "atom"


def test_split_top_level_respects_brackets():
    assert split_top_level(r"(1,2),\{3,4\},f(5,6)") == ["(1,2)", r"\{3,4\}", "f(5,6)"]

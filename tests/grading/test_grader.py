"""Equivalence: true/false tables, the fast path, batches, threads and import lightness."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from importcheck import imported_roots
from openberry.grading import Grader, GraderConfig, Verdict, grade, grade_many, is_equivalent


@pytest.fixture(scope="module")
def grader():
    with Grader(timeout=5) as g:
        yield g


EQUIVALENT = [
    (r"\frac{1}{2}", "0.5"),
    (r"\frac12", "0.5"),
    ("1/2", r"\frac{1}{2}"),
    ("0.5", "1/2"),
    (r"\dfrac{3}{4}", "0.75"),
    ("-0.25", r"-\frac{1}{4}"),
    (r"\sqrt{2}/2", r"\frac{\sqrt2}{2}"),
    (r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}"),
    ("x^2+1", "1+x^2"),
    ("2x", "x+x"),
    (r"\{1, 2\}", r"\{2, 1\}"),
    ("3, 5", "5, 3"),
    ("(1, 2)", "(1,2)"),
    ("[2, 5)", "[2,5)"),
    (r"(-\infty, 3] \cup (4, \infty)", r"(-\infty,3]\cup(4,\infty)"),
    (r"x \in [2, 5)", "[2,5)"),
    ("k < -5", r"(-\infty, -5)"),
    ("1,000,000", "1000000"),
    (r"50\%", "50"),
    (r"50\%", "0.5"),
    (r"30^\circ", "30"),
    (r"10 \text{ cm}", "10"),
    (r"\text{(B)}", "B"),
    ("x = 5", "5"),
    ("3.14159", r"3.14159265"),  # decimals: relative tolerance 1e-4
    ("0.3333", "1/3"),
    (r"\pi", r"\pi"),
    (r"2\pi", r"\pi + \pi"),
    (r"\infty", "∞"),
    ("f(y) = 1", "f(x)=1"),
    ("The answer is $\\boxed{\\frac{1}{2}}$.", "0.5"),
    ("so we get\n#### 1,250", "1250"),
]

NOT_EQUIVALENT = [
    ("0.5", "0.6"),
    (r"\frac{1}{3}", "0.33"),
    ("1000", "1000.5"),
    ("(1, 2)", "(2, 1)"),
    ("[2, 5)", "(2, 5)"),
    ("1,2", "1,2,3"),
    (r"\{1,2\}", r"\{1,3\}"),
    ("x^2", "x^3"),
    (r"\sqrt{2}", "1.41"),
    ("B", "C"),
    (r"50\%", "0.05"),
    ("4.0", "4.2"),
    ("2n^2-2n+1", "n^2-2n+1"),
    ("3\\sqrt{2}-2", "3-\\sqrt{2}"),
    ("f(y)=x+y", "f(x)=x+x"),
]


@pytest.mark.parametrize(("pred", "gold"), EQUIVALENT)
def test_equivalent(grader, pred, gold):
    verdict = grader.grade(pred, gold)
    assert verdict.correct, verdict
    assert verdict.reason is None


@pytest.mark.parametrize(("pred", "gold"), NOT_EQUIVALENT)
def test_not_equivalent(grader, pred, gold):
    verdict = grader.grade(pred, gold)
    assert not verdict.correct, verdict
    assert verdict.reason


def test_verdict_fields_and_reasons(grader):
    v = grader.grade("We find $\\boxed{7}$.", "7")
    assert v == Verdict(True, None, "7", "7")
    assert grader.grade("I could not solve it.", "7") == Verdict(
        False, "no answer found", None, "7"
    )
    assert grader.grade("7", "").reason == "gold answer is empty"
    assert grader.grade("7", None).reason == "gold answer is empty"
    assert grader.grade(None, "7").reason == "no answer found"
    # the gold may be a reference solution: its box is used
    assert grader.grade("7", "so it is \\boxed{7}").correct
    with pytest.raises(AttributeError):
        v.correct = False  # type: ignore[misc]


def test_fast_path_needs_no_worker():
    with Grader() as g:
        assert g.grade(r"\frac{1}{2}", "0.5").correct
        assert not g.grade("3", "4").correct  # both plain numbers: "not equal" is final
        assert g._pool is None


def test_module_level_api():
    assert grade(r"\frac{1}{2}", "0.5").correct
    assert is_equivalent("x+x", "2x")
    assert not is_equivalent("1", "2")


def test_config_is_frozen_and_validated():
    cfg = GraderConfig()
    with pytest.raises(AttributeError):
        cfg.timeout = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="timeout"):
        GraderConfig(timeout=0)
    with pytest.raises(ValueError, match="workers"):
        GraderConfig(workers=0)
    assert Grader(cfg, timeout=2).config.timeout == 2


def test_grade_many_keeps_input_order(grader):
    pairs = [
        ("x+x", "2x"),
        ("1", "2"),
        (r"\frac{1}{2}", "0.5"),
        ("y^2", "y^3"),
        ("no answer here", "5"),
        (r"\sin^2 x + \cos^2 x", "1"),
    ] * 3
    expected = [grader.grade(p, g) for p, g in pairs]
    assert grader.grade_many(pairs, workers=2) == expected
    assert [v.correct for v in expected[:6]] == [True, False, True, False, False, True]
    assert grade_many(pairs[:3], workers=1) == expected[:3]
    done = []
    grader.grade_many(pairs, progress=done.append)
    assert sum(done) == len(pairs)


def test_grade_from_threads(grader):
    results: dict[int, bool] = {}

    def work(i: int) -> None:
        results[i] = grader.grade(f"{i}x + x", f"{i + 1}x").correct

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == {0: True, 1: True, 2: True, 3: True}


def test_close_then_reuse():
    g = Grader(timeout=5)
    assert g.grade("x+x", "2x").correct
    g.close()
    assert g._pool is None
    assert g.grade("x+x", "2x").correct  # a new pool is started
    g.close()


def test_regression_multi_part_answer_over_several_boxes(grader):
    """A two-part gold ("1,2") answered as "max \\boxed{2} ... min \\boxed{1}" is correct."""
    text = "The maximum is \\(\\boxed{2}\\). The minimum is \\(\\boxed{1}\\)."
    assert grader.grade(text, "1,2").correct
    assert not grader.grade(text, "1,3").correct
    two_lists = "So \\boxed{10, 11, 12} and \\boxed{-2, -1, 0}"
    assert grader.grade(two_lists, "10,11,12,-2,-1,0").correct
    assert not grader.grade("only \\boxed{1}", "1,2").correct


def test_regression_function_dummy_variable(grader):
    """f(y) = 1 and f(x) = 1 are the same function (the bound variable's name is irrelevant)."""
    assert grader.grade("the final answer is: \\(\\boxed{f(y) = 1}\\).", "$f(x)=1$").correct


def test_regression_unmarked_solution_final_latex_expression(grader):
    """Without a box, a final LaTeX answer is found (the last number alone would be the 3)."""
    text = "First step.\n\nTherefore, the value is \\(-\\frac{2\\sqrt{3}}{3}\\), as required."
    assert grader.grade(text, r"-\frac{2 \sqrt{3}}{3}").correct


def test_regression_no_answer_reason_with_raw_text(grader):
    """An unmarked solution without any answer is reported as "no answer found"."""
    assert grader.grade("I could not finish this problem.", "7").reason == "no answer found"


def test_regression_unit_words_in_gold(grader):
    r"""A gold with a unit ("8\sqrt{3} \text { square inches}") matches the bare value."""
    assert grader.grade(r"\boxed{8\sqrt{3}}", r"8\sqrt{3} \text { square inches}").correct


def test_regression_inequality_answer_vs_interval(grader):
    """ "Final answer: k < -5" matches the interval (-oo, -5)."""
    assert grader.grade("Final answer: \\(k < -5\\).", r"(-\infty,-5)").correct


def test_import_is_light():
    heavy = ("math_verify", "sympy", "pebble", "latex2sympy2_extended")
    assert imported_roots("import openberry.grading", heavy) == []


def test_regression_script_without_main_guard(tmp_path):
    """Worker processes must not re-run a calling script that lacks ``if __name__ == ...``.

    The first version started workers with "spawn", which re-imports ``__main__``; such a script
    then broke the pool. Workers now fork on Linux.
    """
    script = tmp_path / "unguarded.py"
    script.write_text(
        textwrap.dedent(
            """
            from openberry.grading import grade
            print(grade("x+x", "2x", timeout=10).correct)
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "True", out.stderr[-2000:]


def test_regression_answer_sentence_with_several_assignments(grader):
    """ "Final Answer: the values of x ... are x = 5 and x = -2" equals the gold list "5,-2"."""
    text = (
        "**Final Answer:** The values of \\(x\\) for which \\(f(x) = g(x)\\) are "
        "\\(x = 5\\) and \\(x = -2\\)."
    )
    verdict = grader.grade(text, "$5,-2$")
    assert verdict.correct
    assert verdict.pred == "\\(x = 5\\) and \\(x = -2\\)"

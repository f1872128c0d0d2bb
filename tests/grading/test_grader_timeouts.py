"""The hard time limit: absurd inputs return within the limit, and the grader recovers."""

from __future__ import annotations

import logging
import time

import pytest

from openberry.grading import Grader

LIMIT = 2.0
SLACK = 1.5  # pool polling (0.1 s), killing the worker, and a loaded 2-core machine


@pytest.fixture(scope="module")
def grader():
    with Grader(timeout=LIMIT) as g:
        assert g.grade("x+x", "2x").correct  # start the worker outside the timed calls
        yield g


def _timed(grader: Grader, pred: str, gold: str):
    start = time.monotonic()
    verdict = grader.grade(pred, gold)
    return verdict, time.monotonic() - start


@pytest.mark.parametrize(
    "pred",
    [
        "2^{33219}",  # about 10,000 digits
        "\\boxed{2^{33219}+1}",
        "1" * 10_000,  # a 10,000-digit literal
        "9^{9^{9^{9}}}",
        "10^{10^{7}}",
        "(10^{8})!",
        "\\boxed{" + "\\frac{1}{" * 400 + "2" + "}" * 400 + "}",
        "(" * 500 + "1" + ")" * 500,
        "\\sqrt{" * 300 + "2" + "}" * 300,
    ],
)
def test_absurd_inputs_return_within_the_limit(grader, pred):
    verdict, elapsed = _timed(grader, pred, "5")
    assert elapsed < LIMIT + SLACK
    assert verdict.correct is False
    assert verdict.reason


def test_guard_refusals_are_logged(grader, caplog):
    with caplog.at_level(logging.WARNING, logger="openberry.grading.grader"):
        assert not grader.grade("\\boxed{9^{9^{9^{9}}}}", "7").correct
    assert any("too large" in r.getMessage() for r in caplog.records)


def test_guards_name_the_problem(grader):
    assert "too large" in grader.grade("9^{9^{9^{9}}}", "1").reason
    assert "nested" in grader.grade("(" * 100 + "1" + ")" * 100, "1").reason
    assert "too long" in grader.grade("x" * 5000, "1").reason
    assert "too long" in grader.grade("1", "x" * 2_000_000).reason
    assert grader.grade("2^{2019}", "2^{2019}").correct  # large but legitimate


def test_hard_kill_then_recovery(caplog):
    """sympy stuck longer than the limit: the worker is killed, a new one serves the next call."""
    # math-verify's own alarm (60 s) and our size guard are disabled so that only the hard
    # limit can stop 3^(10^9).
    with Grader(timeout=LIMIT, mv_timeout=60, max_power_digits=None) as g:
        assert g.grade("x+x", "2x").correct
        pid_before = set(g._pool._pool_manager.worker_manager.workers)
        with caplog.at_level(logging.WARNING, logger="openberry.grading.grader"):
            verdict, elapsed = _timed(g, "3^{10^{9}}", "7")
        assert verdict.correct is False
        assert verdict.reason == f"timeout after {LIMIT:.1f} s"
        assert elapsed < LIMIT + SLACK
        assert any("timed out" in r.message for r in caplog.records)
        # the next call works, on a replacement worker
        verdict, _ = _timed(g, "x+x", "2x")
        assert verdict.correct
        assert set(g._pool._pool_manager.worker_manager.workers) != pid_before


def test_batch_with_a_hanging_pair_keeps_order():
    pairs = [("x+x", "2x"), ("3^{10^{9}}", "7"), ("y^2", "y*y"), ("1", "2")]
    with Grader(timeout=LIMIT, mv_timeout=60, max_power_digits=None) as g:
        start = time.monotonic()
        verdicts = g.grade_many(pairs, workers=2)
        elapsed = time.monotonic() - start
    assert [v.correct for v in verdicts] == [True, False, True, False]
    assert verdicts[1].reason.startswith("timeout")
    assert elapsed < 2 * LIMIT + 10  # includes starting two workers


def test_huge_inputs_stay_cheap_in_process(grader):
    """The in-process part (extraction, normalisation, guards) is bounded on megabyte inputs."""
    for pred in ("\\boxed{" + "\\text{a}" * 50_000 + "}", "The answer is " + "a " * 200_000):
        verdict, elapsed = _timed(grader, pred, "1")
        assert not verdict.correct
        assert "too long" in verdict.reason
        assert elapsed < 1.0
    verdict, elapsed = _timed(grader, "x" * 2_000_000, "1")
    assert verdict.reason.startswith("prediction too long")

"""Metrics of `openberry.evaluation.metrics`, against brute force where there is one."""

from __future__ import annotations

import itertools
import math

import pytest

from evaldirs import greedy_records, mctsr_records, record, sample
from openberry.evaluation.metrics import (
    RunName,
    coverage_ks,
    maj_at_k,
    majority_vote,
    pass_at_k,
    summarize_run,
)


def brute_pass_at_k(n: int, c: int, k: int) -> float:
    """Fraction of the k-subsets of n samples (the first c correct) with a correct sample."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 11))
def test_pass_at_k_matches_brute_force(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(n, c, k), abs=1e-12), (
                n,
                c,
                k,
            )


def test_pass_at_k_edges_and_closed_forms():
    assert pass_at_k(1, 0, 1) == 0.0
    assert pass_at_k(1, 1, 1) == 1.0
    assert pass_at_k(10, 0, 10) == 0.0
    assert pass_at_k(10, 1, 10) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 = c/n
    assert pass_at_k(5, 4, 2) == 1.0  # n - c < k: every pair has a correct sample
    # Large n stays finite and exact enough (no big binomials): 1 - C(990, 10) / C(1000, 10).
    expected = 1 - math.comb(990, 10) / math.comb(1000, 10)
    assert pass_at_k(1000, 10, 10) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("n", "c", "k", "message"),
    [
        (3, 1, 4, "larger than the number of samples"),
        (3, 4, 1, "more than the number of samples"),
        (-1, 0, 1, "n must be >= 0"),
        (3, -1, 1, "c must be >= 0"),
        (3, 1, -2, "k must be >= 0"),
        (3, 1, 0, "k must be >= 1"),
        (0, 0, 1, "larger than the number of samples"),
    ],
)
def test_pass_at_k_rejects_bad_arguments(n, c, k, message):
    with pytest.raises(ValueError, match=message):
        pass_at_k(n, c, k)


def test_pass_at_k_rejects_non_integers():
    with pytest.raises(TypeError):
        pass_at_k(3.0, 1, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        pass_at_k(3, True, 1)  # type: ignore[arg-type]


def test_maj_at_k_majority_wins():
    assert maj_at_k(["1", "2", "2"], [True, False, False]) is False
    assert maj_at_k(["1", "2", "1"], [True, False, True]) is True


def test_maj_at_k_tie_goes_to_the_earliest_answer():
    assert maj_at_k(["2", "1", "1", "2"], [False, True, True, False]) is False
    assert maj_at_k(["1", "2", "2", "1"], [True, False, False, True]) is True
    assert majority_vote(["a", "b", "b", "a"]) == 0


def test_maj_at_k_none_answers_do_not_vote():
    assert maj_at_k([None, None, "3"], [False, False, True]) is True
    assert maj_at_k([None, "  ", None], [False, False, False]) is False
    assert majority_vote([None, None]) is None


def test_maj_at_k_first_k_only():
    answers = ["1", "2", "2", "2"]
    correct = [True, False, False, False]
    assert maj_at_k(answers, correct, k=1) is True
    assert maj_at_k(answers, correct, k=2) is True  # tie: "1" came first
    assert maj_at_k(answers, correct, k=3) is False


def test_maj_at_k_normalises_whitespace_and_uses_first_occurrence_grade():
    # " 7" and "7 " are one answer; the winner's grade is that of its first occurrence.
    assert maj_at_k([" 7", "8", "7 "], [True, False, False]) is True
    assert maj_at_k(["8", "7 ", " 7"], [False, False, True]) is False
    # The self-consistency method's normalisation: LaTeX forms of one answer vote together,
    # blank answers do not vote.
    assert maj_at_k(["3", "\\dfrac{1}{2}", "$\\frac{1}{2}$"], [False, True, True]) is True
    assert maj_at_k(["   ", "", "4"], [False, False, True]) is True


def test_maj_at_k_rejects_bad_arguments():
    with pytest.raises(ValueError, match="differ in length"):
        maj_at_k(["1"], [True, False])
    with pytest.raises(ValueError, match="larger than the number of answers"):
        maj_at_k(["1"], [True], k=2)
    with pytest.raises(ValueError, match="k must be >= 1"):
        maj_at_k(["1"], [True], k=0)


def test_coverage_ks():
    assert coverage_ks(1) == [1]
    assert coverage_ks(8) == [1, 2, 4, 8]
    assert coverage_ks(6) == [1, 2, 4, 6]
    assert coverage_ks(0) == []


def test_run_name():
    assert RunName.parse("best-of-n@16") == RunName("best-of-n", 16)
    assert str(RunName.parse("sr-mcts@8")) == "sr-mcts@8"
    for bad in ("mctsr", "@4", "mctsr@x"):
        with pytest.raises(ValueError, match=r"METHOD@BUDGET|not an integer"):
            RunName.parse(bad)


def test_summary_keeps_oracle_metrics_out_of_accuracy():
    s = summarize_run(greedy_records(), run="greedy@1")
    assert (s["method"], s["budget"], s["problems"], s["samples"]) == ("greedy", 1, 4, 2)
    assert s["accuracy"] == pytest.approx(0.5)
    assert s["maj@2"] == pytest.approx(0.5)
    assert s["coverage"] == {"pass@1": pytest.approx(0.5), "pass@2": pytest.approx(0.75)}
    # Any candidate of sample 0 correct on problems 0, 1, 3: an oracle, not accuracy.
    assert s["oracle"]["oracle_any_node"] == pytest.approx(0.75)
    assert s["oracle"]["oracle_any_node"] != s["accuracy"]
    # Best score picks "5" (wrong) on problem 1 and "9" (right) on problem 3; 0 and 2 unscored.
    assert s["oracle"]["best_scored_node"] == pytest.approx(0.5)
    assert s["oracle"]["best_scored_node_problems"] == 2
    assert "oracle_any_node" not in s and "best_scored_node" not in s
    assert [w["index"] for w in s["wrong"]] == [1, 2, 3]
    assert s["wrong"][0] == {
        "id": "arithmetic/test/1",
        "index": 1,
        "answer": "5",
        "reference": "7",
        "verdict": "wrong",
        "tree": "trees/000001-s0.json",
    }
    assert s["warnings"] == []


def test_summary_cost():
    s = summarize_run(mctsr_records(tokens=400), run="mctsr@4")
    cost = s["cost"]
    assert cost["generated_tokens"] == 400
    assert cost["prompt_tokens"] == 1200
    assert cost["scored_tokens"] == 10
    assert cost["calls"] == pytest.approx(5.0)  # samples: 8 and 2 calls
    assert cost["wall_time"] == pytest.approx(1.25)
    assert cost["total_generated_tokens"] == 8 * 400
    assert cost["total_tokens"] == 8 * (400 + 1200 + 10)
    assert cost["no_answer"] == 0
    assert s["accuracy"] == pytest.approx(7 / 8)
    assert summarize_run(greedy_records(), run="greedy@1")["cost"]["no_answer"] == 1


def test_summary_single_sample_and_uneven_samples():
    rows = mctsr_records()
    for r in rows:
        r["samples"] = r["samples"][:1]
    s = summarize_run(rows, run="mctsr@4")
    assert s["samples"] == 1 and "maj@1" not in s and s["coverage"] == {"pass@1": 1.0}
    rows[0]["samples"] = mctsr_records()[0]["samples"]  # 2 samples, one wrong
    s = summarize_run(rows, run="mctsr@4")
    assert s["samples"] == 1
    assert s["accuracy"] == pytest.approx((0.5 + 3) / 4)
    assert "between 1 and 2 samples" in s["warnings"][0]


def test_summary_of_a_record_without_samples_and_an_odd_run_name():
    rows = [{"id": "a", "index": 0, "answer": "1", "correct": True, "reference": "1"}]
    s = summarize_run(rows, run="custom")
    assert s["accuracy"] == 1.0 and s["samples"] == 1
    assert s["method"] == "custom" and s["budget"] is None
    assert "METHOD@BUDGET" in s["warnings"][0]
    empty = summarize_run([], run="x@1")
    assert empty["accuracy"] is None and empty["problems"] == 0 and empty["wrong"] == []


def test_wall_time_per_problem_counts_each_batch_once():
    """Problems of a chunk run together: the chunk costs its longest search, not their sum."""
    rows = []
    for index, (chunk, wall) in enumerate([(0, 1.0), (0, 3.0), (1, 2.0), (1, 0.5), (2, 4.0)]):
        r = record("mctsr@4", index, "1", [sample("1", True, wall=wall)])
        r["chunk"] = chunk
        rows.append(r)
    cost = summarize_run(rows, run="mctsr@4")["cost"]
    assert cost["batch_wall_time"] == pytest.approx(3.0 + 2.0 + 4.0)
    assert cost["wall_time_per_problem"] == pytest.approx(9.0 / 5)
    assert cost["wall_time"] == pytest.approx((1 + 3 + 2 + 0.5 + 4) / 5)  # latency inside a batch
    # Records without a chunk (hand-made files) count as batches of one.
    for r in rows:
        del r["chunk"]
    assert summarize_run(rows)["cost"]["batch_wall_time"] == pytest.approx(10.5)

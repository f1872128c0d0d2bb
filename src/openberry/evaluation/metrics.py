"""Metrics over `berry eval` records: accuracy, maj@K, pass@k coverage, oracle metrics and cost.

Definitions (see also ``docs/eval.md``, "Metrics and reports"):

- **accuracy** is the mean over problems of the fraction of correct samples, ``mean_i c_i / n_i``,
  where problem ``i`` ran ``n_i`` independent searches (``--samples``) of which ``c_i`` returned a
  correct answer. It equals the unbiased pass@1 estimator and, with one sample, the fraction of
  problems answered correctly. The answer of a search is the one the *method* chose; the reference
  answer is used only to grade it.
- **pass@k** (`pass_at_k`) is the unbiased estimator of Chen et al. 2021, "Evaluating Large
  Language Models Trained on Code" (arXiv:2107.03374), eq. 1:
  ``pass@k = E_i[1 - C(n_i - c_i, k) / C(n_i, k)]``, the probability that at least one of ``k``
  samples drawn without replacement from the ``n_i`` is correct, computed in the numerically
  stable product form of that paper's reference code.
- **maj@K** (`maj_at_k`) is the majority vote of self-consistency (Wang et al. 2022,
  "Self-Consistency Improves Chain of Thought Reasoning in Language Models", arXiv:2203.11171):
  the most frequent final answer among the first K samples wins; it costs K searches.

**Oracle metrics are kept apart from accuracy.** The seed projects (MCTSr, LLaMA-Berry, LLaMA-O1
evaluation scripts) count a problem as solved when *any* node of the search tree reaches the
reference answer. That uses the reference to pick the answer, which no deployed system can do, and
it grows with the size of the tree whether or not the method can recognise the right answer. We
report it, as ``oracle_any_node``, under an ``oracle`` key and never under ``accuracy``; pass@k for
k > 1 is likewise a *coverage* metric (it asks whether a correct answer was among k tries) and
sits under ``coverage``. ``best_scored_node`` re-selects, after the search, the candidate answer
with the highest node value: it does not look at the reference, but it is not the method's own
choice and is computed only on problems where some candidate was scored, so it sits in the oracle
block too and reports how many problems it used.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "COST_FIELDS",
    "RunName",
    "coverage_ks",
    "maj_at_k",
    "majority_vote",
    "pass_at_k",
    "summarize_run",
]

logger = logging.getLogger(__name__)

COST_FIELDS: tuple[str, ...] = (
    "generated_tokens",
    "prompt_tokens",
    "scored_tokens",
    "calls",
    "wall_time",
)
"""Per-sample cost fields of a record, averaged per problem by `summarize_run`."""

_TOKEN_FIELDS = ("generated_tokens", "prompt_tokens", "scored_tokens")


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem (Chen et al. 2021, eq. 1).

    ``1 - C(n - c, k) / C(n, k)``: the probability that at least one of `k` samples drawn without
    replacement from `n` samples, `c` of them correct, is correct. Computed as
    ``1 - prod_{i = n - c + 1}^{n} (1 - k / i)``, which never forms large binomials.

    Args:
        n: Number of samples drawn for the problem (>= 1).
        c: Number of correct samples (0 <= c <= n).
        k: Number of samples the metric allows (1 <= k <= n).

    Raises:
        ValueError: A negative argument, ``k < 1``, ``k > n`` or ``c > n``.
        TypeError: An argument is not an int.
    """
    _check_count("n", n)
    _check_count("c", c)
    _check_count("k", k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > n:
        raise ValueError(f"k={k} is larger than the number of samples n={n}")
    if c > n:
        raise ValueError(f"c={c} correct samples is more than the number of samples n={n}")
    if n - c < k:
        return 1.0  # every k-subset contains a correct sample
    miss = 1.0
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def _answered(answer: str | None) -> bool:
    return answer is not None and bool(str(answer).strip())


def majority_vote(answers: Sequence[str | None], k: int | None = None) -> int | None:
    """Index of the first occurrence of the winning answer among the first `k`, or None.

    The vote is the self-consistency method's own (`openberry.search.common.majority`):
    answers are compared in normalised form (LaTeX spacing and wrappers removed, so ``$7$`` and
    `` 7`` are one answer), None or blank answers do not vote, and a tie between answers with
    equally many votes goes to the one that appeared first.

    Raises:
        ValueError: ``k < 1`` or ``k > len(answers)``.
    """
    from openberry.search.common import majority

    if k is None:
        k = len(answers)
    _check_count("k", k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > len(answers):
        raise ValueError(f"k={k} is larger than the number of answers ({len(answers)})")
    winner, _counts = majority([a if _answered(a) else None for a in answers[:k]])
    return winner


def maj_at_k(answers: Sequence[str | None], correct: Sequence[bool], k: int | None = None) -> bool:
    """Whether the majority answer among the first `k` samples is correct (maj@k).

    Self-consistency (Wang et al. 2022), voting as `majority_vote` (the grader is not called):
    None answers do not vote, ties go to the answer that appeared first, and the winner's
    correctness is that of its first occurrence. No vote at all -> False.

    Args:
        answers: Final answers of the samples, in sample order.
        correct: Grade of each sample's answer, same length as `answers`.
        k: How many leading samples vote (default: all).

    Raises:
        ValueError: `answers` and `correct` differ in length, ``k < 1`` or ``k > len(answers)``.
    """
    if len(answers) != len(correct):
        raise ValueError(f"answers and correct differ in length ({len(answers)} != {len(correct)})")
    winner = majority_vote(answers, k)
    return False if winner is None else bool(correct[winner])


def coverage_ks(k_max: int) -> list[int]:
    """The k of the pass@k coverage curve: 1, 2, 4, ... up to `k_max`, and `k_max` itself."""
    if k_max < 1:
        return []
    ks = []
    k = 1
    while k <= k_max:
        ks.append(k)
        k *= 2
    if ks[-1] != k_max:
        ks.append(k_max)
    return ks


@dataclass(frozen=True)
class RunName:
    """A run of `berry eval`: ``METHOD@BUDGET`` (``mctsr@8``, ``best-of-n@16``)."""

    method: str
    budget: int

    @classmethod
    def parse(cls, text: str) -> RunName:
        """Split ``METHOD@BUDGET`` at its last ``@``.

        Raises:
            ValueError: No ``@``, an empty method, or a budget that is not an integer.
        """
        method, sep, budget = str(text).rpartition("@")
        if not sep or not method:
            raise ValueError(f"run name {text!r} is not METHOD@BUDGET")
        try:
            value = int(budget)
        except ValueError:
            raise ValueError(f"run name {text!r}: budget {budget!r} is not an integer") from None
        return cls(method, value)

    def __str__(self) -> str:
        return f"{self.method}@{self.budget}"


def _is_true(value: Any) -> bool:
    return value is True


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    value = float(value)
    return value if math.isfinite(value) else 0.0


def _samples(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The record's samples; a record without them counts as one sample (its top-level grade)."""
    samples = record.get("samples")
    if isinstance(samples, list) and samples:
        return [s if isinstance(s, Mapping) else {} for s in samples]
    return [
        {
            "answer": record.get("answer"),
            "correct": record.get("correct"),
            "verdict": record.get("verdict"),
        }
    ]


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _sort_key(record: Mapping[str, Any]) -> tuple[int, str]:
    index = record.get("index")
    return (index if isinstance(index, int) else 1 << 62, str(record.get("id", "")))


def _split_run_name(run: str | None, warnings: list[str]) -> tuple[str | None, int | None]:
    """(method, budget) of a ``METHOD@BUDGET`` run name; a malformed name is the method alone,
    with no budget, and adds a warning."""
    if run is None:
        return None, None
    try:
        name = RunName.parse(run)
    except ValueError as exc:
        warnings.append(f"{exc}; it is left out of the budget plots")
        return run, None
    return name.method, name.budget


def _common_samples(counts: Sequence[int], warnings: list[str]) -> int:
    """K, the smallest number of samples of any problem (0 without problems); warns when the
    problems differ."""
    k_max = min(counts) if counts else 0
    if counts and max(counts) != k_max:
        warnings.append(
            f"problems have between {k_max} and {max(counts)} samples; maj@K and pass@k use "
            f"K={k_max}, accuracy uses every sample"
        )
    return k_max


def _grade_metrics(
    per_problem: Sequence[Sequence[Mapping[str, Any]]], grades: Sequence[Sequence[bool]], k_max: int
) -> dict[str, Any]:
    """``accuracy``, ``maj@K`` (only when K > 1) and the pass@k ``coverage`` block, in that order."""
    metrics: dict[str, Any] = {"accuracy": _mean([sum(g) / len(g) for g in grades])}
    if k_max > 1:
        metrics[f"maj@{k_max}"] = _mean(
            [
                float(maj_at_k([s.get("answer") for s in samples], g, k_max))
                for samples, g in zip(per_problem, grades, strict=True)
            ]
        )
    metrics["coverage"] = {
        f"pass@{k}": _mean([pass_at_k(len(g), sum(g), k) for g in grades])
        for k in coverage_ks(k_max)
    }
    return metrics


def _is_score(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _oracle_metrics(per_problem: Sequence[Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """The ``oracle`` block from each problem's sample 0 (module docstring: why it is apart)."""
    any_node: list[float] = []
    best_scored: list[float] = []
    for samples in per_problem:
        first = samples[0]
        candidates = [c for c in first.get("candidates") or [] if isinstance(c, Mapping)]
        # The chosen answer is itself a node's answer, so it counts even if candidates is empty.
        any_node.append(
            float(
                _is_true(first.get("correct"))
                or any(_is_true(c.get("correct")) for c in candidates)
            )
        )
        scored = [c for c in candidates if _is_score(c.get("score"))]
        if scored:
            best = max(scored, key=lambda c: c["score"])  # first of the best on ties
            best_scored.append(float(_is_true(best.get("correct"))))
    return {
        "oracle_any_node": _mean(any_node),
        "best_scored_node": _mean(best_scored),
        "best_scored_node_problems": len(best_scored),
    }


def _batch_wall_time(
    records: Sequence[Mapping[str, Any]], per_problem: Sequence[Sequence[Mapping[str, Any]]]
) -> float:
    """Sum over chunks of the chunk's longest sample wall time.

    Problems of one chunk are searched together, and a record's wall_time is the time from the
    chunk's start to that problem's end: the chunk took the longest of them. A record without a
    chunk is a chunk of its own.
    """
    chunk_wall: dict[Any, float] = {}
    for pos, (r, samples) in enumerate(zip(records, per_problem, strict=True)):
        key = r.get("chunk", f"record-{pos}")
        longest = max(_number(s.get("wall_time")) for s in samples)
        chunk_wall[key] = max(chunk_wall.get(key, 0.0), longest)
    return sum(chunk_wall.values())


def _cost_metrics(
    records: Sequence[Mapping[str, Any]], per_problem: Sequence[Sequence[Mapping[str, Any]]]
) -> dict[str, Any]:
    """The ``cost`` block: per-problem means of `COST_FIELDS`, run totals, batch wall time.

    Wall time per problem is the batch wall time divided by the problems (what the run cost),
    while the mean of ``wall_time`` is the latency a problem saw inside its batch.
    """
    cost: dict[str, Any] = {}
    for name in COST_FIELDS:
        per = [sum(_number(s.get(name)) for s in samples) / len(samples) for samples in per_problem]
        cost[name] = _mean(per)
    totals = {
        name: sum(_number(s.get(name)) for samples in per_problem for s in samples)
        for name in _TOKEN_FIELDS
    }
    for name in _TOKEN_FIELDS:
        cost[f"total_{name}"] = int(totals[name])
    cost["total_tokens"] = int(sum(totals.values()))
    cost["total_calls"] = int(sum(_number(s.get("calls")) for p in per_problem for s in p))
    cost["total_wall_time"] = sum(_number(s.get("wall_time")) for p in per_problem for s in p)
    n = len(records)
    cost["batch_wall_time"] = _batch_wall_time(records, per_problem)
    cost["wall_time_per_problem"] = cost["batch_wall_time"] / n if n else None
    cost["no_answer"] = sum(not _answered(s[0].get("answer")) for s in per_problem)
    return cost


def _wrong_answers(
    records: Sequence[Mapping[str, Any]],
    per_problem: Sequence[Sequence[Mapping[str, Any]]],
    grades: Sequence[Sequence[bool]],
) -> list[dict[str, Any]]:
    """The problems whose sample 0 is wrong, in record order, with what a report shows of them."""
    return [
        {
            "id": r.get("id"),
            "index": r.get("index"),
            "answer": samples[0].get("answer"),
            "reference": r.get("reference"),
            "verdict": samples[0].get("verdict"),
            "tree": samples[0].get("tree"),
        }
        for r, samples, g in zip(records, per_problem, grades, strict=True)
        if not g[0]
    ]


def summarize_run(
    records: Sequence[Mapping[str, Any]], *, run: str | None = None
) -> dict[str, Any]:
    """Summarise one run's records (one per problem) into a JSON-ready dict.

    Keys: ``run``, ``method``, ``budget`` (None when `run` is not METHOD@BUDGET), ``problems``,
    ``samples`` (K, the smallest number of samples of any problem), ``accuracy`` (see the module
    docstring; None without records), ``maj@K`` (only when K > 1), ``coverage`` (``pass@k`` for k
    in `coverage_ks`), ``oracle`` (``oracle_any_node``, ``best_scored_node`` and
    ``best_scored_node_problems``), ``cost`` (means per problem of the per-sample cost fields,
    totals over the run, ``batch_wall_time`` (the sum over chunks of their longest search) and
    ``wall_time_per_problem`` (that over the problems), ``no_answer``), ``wrong`` (sample 0's
    wrong answers, by index) and ``warnings``.

    Args:
        records: The run's records (``openberry.eval-record`` objects).
        run: The run name, ``METHOD@BUDGET``.
    """
    warnings: list[str] = []
    method, budget = _split_run_name(run, warnings)
    records = sorted(records, key=_sort_key)
    per_problem = [_samples(r) for r in records]
    k_max = _common_samples([len(s) for s in per_problem], warnings)
    grades = [[_is_true(s.get("correct")) for s in samples] for samples in per_problem]
    summary: dict[str, Any] = {
        "run": run,
        "method": method,
        "budget": budget,
        "problems": len(records),
        "samples": k_max,
    }
    summary.update(_grade_metrics(per_problem, grades, k_max))
    summary["oracle"] = _oracle_metrics(per_problem)
    summary["cost"] = _cost_metrics(records, per_problem)
    summary["wrong"] = _wrong_answers(records, per_problem, grades)
    summary["warnings"] = warnings
    return summary

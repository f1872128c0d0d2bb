r"""Agreement of answer graders with ProcessBench's ``final_answer_correct`` labels.

ProcessBench (Qwen, arXiv 2412.06559) holds real model solutions to GSM8K, MATH and OlympiadBench
problems; ``final_answer_correct`` was judged by Qwen2.5-72B-Instruct against the reference answer.
ProcessBench has no gold answers, so they are joined by problem text (after ``' '.join(s.split())``):

- ``gsm8k-*`` rows: ``gsm8k_test.jsonl`` ``question``; gold = text after the last ``####``;
- ``math-*`` rows: ``math_test_full5000.jsonl`` ``problem``; gold = last ``\boxed{}`` of ``solution``;
- ``olympiadbench-*`` rows: ``olympiadbench_test.jsonl`` ``question``; gold = ``final_answer``
  joined with ", ".

The prediction is the row's ``steps`` joined with "\n\n". Two graders are compared on the matched
rows:

1. math-verify alone: ``verify(parse(gold_wrapped), parse(solution))`` with math-verify 0.9.0's
   defaults (``parsing_timeout=5``, ``timeout_seconds=5``), where ``gold_wrapped`` is ``f"${gold}$"``
   (also for OlympiadBench golds that already carry ``$...$``); each row runs in a pebble worker with a
   hard 30 s limit (never reached in our runs);
2. openberry's grader: ``Grader(timeout=T).grade_many([(solution, gold), ...], workers=N)``.

Usage::

    .venv/bin/python bench/grader_processbench.py                     # report
    .venv/bin/python bench/grader_processbench.py --write-disagreements  # refresh the list

The disagreement list (``tests/grading/data/processbench_disagreements.jsonl``) keeps the
human-written ``reason`` of rows already listed; new rows get ``"TODO: review"``.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"
DEFAULT_DISAGREEMENTS = REPO / "tests" / "grading" / "data" / "processbench_disagreements.jsonl"
PROCESSBENCH_FILE = "processbench_dev1000.jsonl"


@dataclass(frozen=True)
class Row:
    """One matched ProcessBench row.

    Attributes:
        id: ProcessBench id (``math-17``).
        solution: The model's steps joined with a blank line.
        gold: The joined gold answer.
        label: ``final_answer_correct``.
    """

    id: str
    solution: str
    gold: str
    label: bool


def _iter(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def _key(text: str) -> str:
    return " ".join(text.split())


def load_rows(data_dir: Path) -> tuple[list[Row], int]:
    """Join ProcessBench rows with their gold answers.

    Args:
        data_dir: Folder with the shared benchmark files.

    Returns:
        ``(matched_rows, total_rows)``.
    """
    from openberry.grading.extract import last_boxed

    gold: dict[str, dict[str, str]] = {
        "gsm8k": {
            _key(r["question"]): r["answer"].split("####")[-1].strip()
            for r in _iter(data_dir / "gsm8k_test.jsonl")
        },
        "math": {
            _key(r["problem"]): last_boxed(r["solution"]) or ""
            for r in _iter(data_dir / "math_test_full5000.jsonl")
        },
        "olympiadbench": {
            _key(r["question"]): ", ".join(r["final_answer"])
            for r in _iter(data_dir / "olympiadbench_test.jsonl")
        },
    }
    rows: list[Row] = []
    total = 0
    for r in _iter(data_dir / PROCESSBENCH_FILE):
        total += 1
        answer = gold[r["id"].split("-")[0]].get(_key(r["problem"]))
        if answer:
            rows.append(Row(r["id"], "\n\n".join(r["steps"]), answer, r["final_answer_correct"]))
    return rows, total


def _wrap_gold(gold: str) -> str:
    return f"${gold}$"


def math_verify_alone(gold: str, solution: str) -> bool:
    """math-verify's verdict with its defaults (runs in a worker process).

    Args:
        gold: The gold answer.
        solution: The whole model solution.

    Returns:
        ``verify(parse(gold_wrapped), parse(solution))``.
    """
    from math_verify import parse, verify

    return bool(verify(parse(_wrap_gold(gold)), parse(solution)))


def _quiet_worker() -> None:
    for name in ("math_verify", "latex2sympy2_extended"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def run_math_verify_alone(
    rows: list[Row], workers: int, progress: Callable[[int], object] | None = None
) -> list[bool]:
    """math-verify alone on every row, in parallel, with a hard 30 s limit per row.

    Args:
        rows: Matched rows.
        workers: Worker processes.
        progress: Optional callable told how many rows finished.

    Returns:
        One verdict per row (a timed-out row counts as False).
    """
    from pebble import ProcessPool

    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    out: list[bool] = []
    with ProcessPool(max_workers=workers, initializer=_quiet_worker, context=ctx) as pool:
        futures = [
            pool.schedule(math_verify_alone, args=(r.gold, r.solution), timeout=30) for r in rows
        ]
        for fut in futures:
            try:
                out.append(bool(fut.result()))
            except Exception:  # timeout or crash: math-verify gave no True
                out.append(False)
            if progress is not None:
                progress(1)
    return out


def run_ours(rows: list[Row], workers: int, timeout: float) -> list:
    """openberry's grader on every row.

    Args:
        rows: Matched rows.
        workers: Worker processes for the slow path.
        timeout: Hard limit per row in seconds.

    Returns:
        One `openberry.grading.Verdict` per row.
    """
    from openberry.grading import Grader

    with Grader(timeout=timeout) as grader:
        return grader.grade_many([(r.solution, r.gold) for r in rows], workers=workers)


def _by_split(rows: list[Row], verdicts: list[bool]) -> str:
    parts = []
    for split in ("gsm8k", "math", "olympiadbench"):
        pairs = [
            (v, r) for v, r in zip(verdicts, rows, strict=True) if r.id.startswith(split + "-")
        ]
        agree = sum(v == r.label for v, r in pairs)
        parts.append(f"{split} {agree}/{len(pairs)}")
    return "[" + ", ".join(parts) + "]"


def load_disagreements(path: Path) -> dict[str, dict]:
    """The listed disagreement rows by id (empty when the file is absent)."""
    if not path.is_file():
        return {}
    return {row["id"]: row for row in _iter(path)}


def main(argv: list[str] | None = None) -> int:
    """Run both graders and print agreement figures (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("BERRY_DATA_DIR") or DEFAULT_DATA_DIR),
        help="folder with processbench_dev1000.jsonl and the gold files (default: ../shared/data "
        "or $BERRY_DATA_DIR)",
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--timeout", type=float, default=5.0, help="our grader's limit per row")
    parser.add_argument("--disagreements", type=Path, default=DEFAULT_DISAGREEMENTS)
    parser.add_argument(
        "--write-disagreements",
        action="store_true",
        help="rewrite the disagreement list (keeping existing reasons)",
    )
    parser.add_argument("--skip-math-verify", action="store_true", help="only run our grader")
    args = parser.parse_args(argv)

    rows, total = load_rows(args.data_dir)
    print(f"ProcessBench rows: {total}, matched to a gold answer: {len(rows)}")
    n = len(rows)
    if not args.skip_math_verify:
        t0 = time.perf_counter()
        mv = run_math_verify_alone(rows, args.workers)
        agree = sum(v == r.label for v, r in zip(mv, rows, strict=True))
        print(
            f"math-verify alone: {agree}/{n} = {agree / n:.4f} agree "
            f"({time.perf_counter() - t0:.1f} s, {args.workers} workers)  {_by_split(rows, mv)}"
        )
    t0 = time.perf_counter()
    ours = run_ours(rows, args.workers, args.timeout)
    agree = sum(v.correct == r.label for v, r in zip(ours, rows, strict=True))
    elapsed = time.perf_counter() - t0
    print(
        f"openberry grader:  {agree}/{n} = {agree / n:.4f} agree ({elapsed:.1f} s)  "
        f"{_by_split(rows, [v.correct for v in ours])}"
    )
    timeouts = sum(1 for v in ours if v.reason and v.reason.startswith("timeout"))
    print(f"openberry timeouts: {timeouts}")

    listed = load_disagreements(args.disagreements)
    found = []
    for v, r in zip(ours, rows, strict=True):
        if v.correct != r.label:
            old = listed.get(r.id, {})
            found.append(
                {
                    "id": r.id,
                    "ours": v.correct,
                    "label": r.label,
                    "extracted": v.pred,
                    "gold": r.gold,
                    "reason": old.get("reason", "TODO: review"),
                }
            )
    new = sorted({d["id"] for d in found} - set(listed))
    gone = sorted(set(listed) - {d["id"] for d in found})
    print(
        f"disagreements: {len(found)} (not yet listed: {new or 'none'}; listed but gone: "
        f"{gone or 'none'})"
    )
    if args.write_disagreements:
        from openberry.jsonl import write_jsonl

        write_jsonl(args.disagreements, found)
        print(f"wrote {args.disagreements}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

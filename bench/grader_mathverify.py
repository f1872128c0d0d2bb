r"""Agreement of answer graders with the verdicts of math-verify's own test suite.

math-verify (the public repository huggingface/Math-Verify) tests its grader with tables of
``(gold, pred, expected)`` cases in ``tests/*.py``. This script runs those cases through openberry's
grader and through math-verify, side by side, and prints how often each agrees with the expected
verdict. It ships no cases: build the file yourself from math-verify's tests, for
example from the source distribution, which includes them::

    pip download math-verify==0.9.0 --no-deps --no-binary :all: -d /tmp/mv
    tar xzf /tmp/mv/math_verify-0.9.0.tar.gz -C /tmp/mv   # tests/ is inside

and collect each parametrised table (the ``parametrize`` marks of the test functions) into a JSONL
file, one case per line::

    {"id": "test_all::test_latex_notation[3]", "gold": "$9$", "pred": "Answer \\( 9 \\)",
     "expected": true,
     "config": {"match_types": ["latex"], "precision": 6, "strict": true,
                "allow_set_relation_comp": false}}

``config`` holds the arguments the test passed to its ``compare_strings`` helper (``match_types``
``"latex"``/``"expr"``; ``precision`` is verify's ``float_rounding``); ``"match_types": null`` means
the test called ``parse``/``verify`` with their defaults. ``config`` may be left out (defaults).

Three graders are compared:

1. math-verify with the test's own options, as its ``compare_strings`` helper calls it
   (``LatexExtractionConfig(boxed_match_priority=0)`` and/or ``ExprExtractionConfig()``);
2. math-verify with its defaults: ``verify(parse(gold), parse(pred))``;
3. openberry: ``Grader(timeout=T).grade_many([(pred, gold), ...])`` with default options, as
   ``berry grade PRED GOLD`` does.

A case is *option-dependent* when math-verify's verdicts under 1 and 2 differ: its expected verdict
then follows from a non-default option (latex-only extraction, ``precision=2``,
``allow_set_relation_comp=True``, ``strict=False``) that openberry's grader does not have. Agreement
is printed on all cases and on the option-independent ones. Each math-verify call runs in a pebble
worker with a hard 30 s limit. Our misses are listed grouped by a rough kind.

Usage::

    .venv/bin/python bench/grader_mathverify.py --cases /path/to/mathverify_cases.jsonl
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_DEFAULT_CONFIG: dict[str, Any] = {
    "match_types": ["latex", "expr"],
    "precision": 6,
    "strict": True,
    "allow_set_relation_comp": False,
}


@dataclass(frozen=True)
class Case:
    """One test case of math-verify's suite.

    Attributes:
        id: Where it came from (``file::test[i]``).
        gold: The gold text.
        pred: The prediction text.
        expected: Whether the test expects "equal".
        config: The options the test used (see the module docstring).
    """

    id: str
    gold: str
    pred: str
    expected: bool
    config: dict[str, Any] = field(default_factory=dict)


def _iter(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def load_cases(path: Path) -> list[Case]:
    """Read the cases file.

    Args:
        path: A JSONL file with ``id``, ``gold``, ``pred``, ``expected`` and optional ``config``.

    Returns:
        The cases, in file order.
    """
    cases = []
    for i, r in enumerate(_iter(path)):
        cfg = {**_DEFAULT_CONFIG, **(r.get("config") or {})}
        cases.append(Case(str(r.get("id", i)), r["gold"], r["pred"], bool(r["expected"]), cfg))
    return cases


def math_verify_verdicts(gold: str, pred: str, config: dict[str, Any]) -> tuple[bool, bool]:
    """math-verify's verdict with the test's options and with its defaults (runs in a worker).

    Args:
        gold: Gold text.
        pred: Prediction text.
        config: The test's options.

    Returns:
        ``(with_test_options, with_defaults)``.
    """
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    default = bool(verify(parse(gold), parse(pred)))
    if config.get("match_types") is None:
        return default, default
    targets: list[Any] = []
    for kind in config["match_types"]:
        if kind == "latex":
            targets.append(LatexExtractionConfig(boxed_match_priority=0))
        elif kind == "expr":
            targets.append(ExprExtractionConfig())
    own = verify(
        parse(gold, targets),
        parse(pred, targets),
        float_rounding=config["precision"],
        strict=config["strict"],
        allow_set_relation_comp=config["allow_set_relation_comp"],
    )
    return bool(own), default


def _quiet_worker() -> None:
    for name in ("math_verify", "latex2sympy2_extended"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def run_math_verify(cases: list[Case], workers: int) -> list[tuple[bool, bool]]:
    """math-verify on every case, in parallel, with a hard 30 s limit per case.

    Args:
        cases: The cases.
        workers: Worker processes.

    Returns:
        One ``(with_test_options, with_defaults)`` pair per case (a timed-out case is False).
    """
    from pebble import ProcessPool

    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    out = []
    with ProcessPool(max_workers=workers, initializer=_quiet_worker, context=ctx) as pool:
        futures = [
            pool.schedule(math_verify_verdicts, args=(c.gold, c.pred, c.config), timeout=30)
            for c in cases
        ]
        for fut in futures:
            try:
                out.append(fut.result())
            except Exception:  # timeout or crash: math-verify gave no True
                out.append((False, False))
    return out


def run_ours(cases: list[Case], workers: int, timeout: float) -> list:
    """openberry's grader on every case, with default options.

    Args:
        cases: The cases.
        workers: Worker processes for the slow path.
        timeout: Hard limit per case in seconds.

    Returns:
        One `openberry.grading.Verdict` per case.
    """
    from openberry.grading import Grader

    with Grader(timeout=timeout) as grader:
        return grader.grade_many([(c.pred, c.gold) for c in cases], workers=workers)


_THOUSANDS_RE = re.compile(r"^-?[1-9]\d{0,2}(,\d{3})+(\.\d+)?$")


def miss_kind(case: Case, said: bool) -> str:
    """A rough kind for one of our misses (first rule that fits).

    Args:
        case: The case we got wrong.
        said: Our verdict.

    Returns:
        A short label.
    """
    both = case.gold + " " + case.pred
    bare = [s.strip().strip("$") for s in (case.gold, case.pred)]
    if said and not case.expected:
        return "said equal, expected not"
    if any(re.fullmatch(r"-?\d+,\d+", s) and not _THOUSANDS_RE.match(s) for s in bare):
        return "decimal comma"
    if any(s.count("\\boxed") + s.count("\\fbox") > 1 for s in (case.gold, case.pred)):
        return "several boxes"
    if "matrix}" in both:
        return "matrix"
    if "\\in" in both and re.search(r"\\le|\\ge|<|>", both):
        return "interval vs inequality"
    if len(case.pred) > 200 and "\\boxed" not in case.pred:
        return "unboxed answer in a solution"
    return "other"


def _pct(k: int, n: int) -> str:
    return f"{k}/{n} = {k / n:.4f}" if n else "0/0"


def _report(label: str, verdicts: list[bool], cases: list[Case], keep: list[bool]) -> None:
    all_agree = sum(v == c.expected for v, c in zip(verdicts, cases, strict=True))
    sub = [(v, c) for v, c, k in zip(verdicts, cases, keep, strict=True) if k]
    sub_agree = sum(v == c.expected for v, c in sub)
    print(
        f"{label:<34} all {_pct(all_agree, len(cases))};  "
        f"option-independent {_pct(sub_agree, len(sub))}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the graders on the cases and print agreement figures (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cases", type=Path, required=True, help="JSONL file of cases (see below)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--timeout", type=float, default=5.0, help="our grader's limit per case")
    parser.add_argument(
        "--skip-math-verify",
        action="store_true",
        help="only run our grader (every case then counts as option-independent)",
    )
    args = parser.parse_args(argv)

    cases = load_cases(args.cases)
    print(f"cases: {len(cases)} from {args.cases}")
    keep = [True] * len(cases)
    if not args.skip_math_verify:
        t0 = time.perf_counter()
        mv = run_math_verify(cases, args.workers)
        keep = [own == default for own, default in mv]
        print(
            f"option-dependent cases: {keep.count(False)} "
            f"({', '.join(c.id for c, k in zip(cases, keep, strict=True) if not k) or 'none'})"
        )
        _report("math-verify, the tests' options:", [m[0] for m in mv], cases, keep)
        _report("math-verify, defaults:", [m[1] for m in mv], cases, keep)
        print(f"  ({time.perf_counter() - t0:.1f} s, {args.workers} workers)")
    t0 = time.perf_counter()
    ours = run_ours(cases, args.workers, args.timeout)
    _report("openberry grader (defaults):", [v.correct for v in ours], cases, keep)
    print(f"  ({time.perf_counter() - t0:.1f} s)")

    groups: dict[str, list[str]] = {}
    for v, c, k in zip(ours, cases, keep, strict=True):
        if v.correct != c.expected:
            tag = "" if k else " (option-dependent)"
            line = f"{c.id}{tag}: extracted {v.pred!r:.60} vs gold {v.gold!r:.60} ({v.reason})"
            groups.setdefault(miss_kind(c, v.correct), []).append(line)
    print(f"openberry misses: {sum(len(g) for g in groups.values())}")
    for kind, lines in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        print(f"  {kind} ({len(lines)}):")
        for line in lines:
            print(f"    {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

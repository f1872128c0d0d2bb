r"""`berry grade`: grade one answer, or a JSONL file of model outputs, against gold answers.

Only the standard library is imported at module level; `openberry.grading` (itself light: sympy,
math-verify and pebble load only in worker processes) and tqdm are imported inside the command, so
``berry grade '\frac{1}{2}' '0.5'`` answers in well under a second.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

__all__ = ["register"]

logger = logging.getLogger(__name__)

_DESCRIPTION = """\
Decide whether a model's answer equals a reference answer.

The prediction may be a whole solution: its last \\boxed{}, '#### X' line or "the answer is X"
sentence is used, else (for a bare answer such as 0.5) the whole text, else its last number.
Both sides are normalised (units, \\text{}, thousands separators, percent, degrees, "x =", choice
letters...), compared exactly (integers, decimals, fractions, tuples, intervals, sets), and
otherwise handed to math-verify in a worker process with a hard time limit. See docs/grader.md."""

_EPILOG = """\
single answer: prints 'true' or 'false' (exit status 0 either way); -v adds the reason and the
extracted answers. Put '--' before answers that start with '-' (berry grade -- -\\frac12 -0.5).

file mode (--file): every row needs the --pred-field and --gold-field keys (a line that is not
UTF-8 or not a JSON object, a missing key or a null value stops with an error naming the line,
before anything is graded; numbers are read as text and a list gold is joined with ', ').
Prints 'accuracy: A (correct/total)'. With --out, writes one verdict row per input row, in
input order: the input row's fields plus 'correct' (bool), 'extracted' (the answer found in the
prediction, or null) and, when false, 'reason' (these three keys replace input fields of the same
name). A progress bar is shown on stderr when it is a terminal.

examples:
  berry grade '\\frac{1}{2}' '0.5'
  berry grade -v 'so the answer is $\\boxed{(1,2)}$' '(1, 2)'
  berry grade --file preds.jsonl --pred-field output --gold-field answer --out verdicts.jsonl
"""


def register(subparsers: Any) -> None:
    """Add the ``grade`` subcommand.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """
    p = subparsers.add_parser(
        "grade",
        help="grade an answer (or a JSONL file of answers) against gold answers",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("pred", nargs="?", metavar="PRED", help="the model's answer or solution text")
    p.add_argument("gold", nargs="?", metavar="GOLD", help="the reference answer")
    p.add_argument(
        "-v",
        "--verbose",
        dest="show_reason",
        action="store_true",
        help="single answer: also print the reason and the extracted answers",
    )
    p.add_argument("--file", metavar="F.jsonl", help="grade every row of this JSONL file")
    p.add_argument("--pred-field", metavar="P", help="row key holding the prediction (--file)")
    p.add_argument("--gold-field", metavar="G", help="row key holding the gold answer (--file)")
    p.add_argument("--out", metavar="V.jsonl", help="write one verdict row per input row here")
    p.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="hard limit in seconds for the slow (math-verify) path of one answer (default: 5)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        metavar="N",
        help="worker processes for the slow path in --file mode (default: 2)",
    )
    p.add_argument(
        "--fallback",
        choices=("auto", "last_number", "none", "whole"),
        default="auto",
        help="answer to use when the prediction has no box or answer marker: 'auto' (default) "
        "takes a bare answer whole and else the last number",
    )
    p.set_defaults(func=run)


def _field_text(value: Any, where: str, key: str) -> str:
    from openberry.errors import BerryError

    if value is None:
        raise BerryError(f"{where}: field {key!r} is null")
    if isinstance(value, (bool, dict)):
        raise BerryError(f"{where}: field {key!r} must be text or a number, got {value!r}")
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def run(args: argparse.Namespace) -> int:
    """Run ``berry grade`` (see ``berry grade --help``).

    Args:
        args: Parsed arguments.

    Returns:
        The exit status (0).
    """
    from openberry.errors import BerryError

    if args.timeout <= 0:
        raise BerryError(f"--timeout must be > 0, got {args.timeout}")
    if args.workers < 1:
        raise BerryError(f"--workers must be >= 1, got {args.workers}")
    if args.file is None:
        if args.pred is None or args.gold is None:
            raise BerryError("give PRED and GOLD, or --file F.jsonl --pred-field P --gold-field G")
        if args.out is not None or args.pred_field or args.gold_field:
            raise BerryError("--out, --pred-field and --gold-field need --file")
        return _grade_one(args)
    if args.pred is not None:
        raise BerryError("give either PRED GOLD or --file, not both")
    if not args.pred_field or not args.gold_field:
        raise BerryError("--file needs --pred-field and --gold-field")
    return _grade_file(args)


def _grade_one(args: argparse.Namespace) -> int:
    from openberry.grading import Grader, GraderConfig

    with Grader(GraderConfig(timeout=args.timeout, fallback=args.fallback)) as grader:
        verdict = grader.grade(args.pred, args.gold)
    print("true" if verdict.correct else "false")
    if args.show_reason:
        print(f"reason: {verdict.reason or 'equivalent'}")
        print(f"extracted: {verdict.pred}")
        print(f"gold: {verdict.gold}")
    return 0


def _grade_file(args: argparse.Namespace) -> int:
    from openberry.grading import Grader, GraderConfig
    from openberry.jsonl import iter_jsonl, write_jsonl

    rows: list[dict[str, Any]] = []
    pairs: list[tuple[str, str]] = []
    for lineno, row in iter_jsonl(args.file):
        where = f"{args.file}:{lineno}"
        for key in (args.pred_field, args.gold_field):
            if key not in row:
                from openberry.errors import BerryError

                raise BerryError(f"{where}: missing field {key!r} (keys: {', '.join(row) or '-'})")
        pred = _field_text(row[args.pred_field], where, args.pred_field)
        gold = _field_text(row[args.gold_field], where, args.gold_field)
        rows.append(row)
        pairs.append((pred, gold))

    bar = None
    if sys.stderr.isatty() and pairs:
        from tqdm import tqdm

        bar = tqdm(total=len(pairs), desc="grading", unit="row", file=sys.stderr)
    config = GraderConfig(timeout=args.timeout, fallback=args.fallback, workers=args.workers)
    try:
        with Grader(config) as grader:
            verdicts = grader.grade_many(
                pairs, workers=args.workers, progress=bar.update if bar else None
            )
    finally:
        if bar is not None:
            bar.close()

    n = len(verdicts)
    n_correct = sum(v.correct for v in verdicts)
    timeouts = sum(1 for v in verdicts if v.reason and v.reason.startswith("timeout"))
    if timeouts:
        logger.warning(
            "%d row(s) timed out after %.1f s and were counted as incorrect", timeouts, args.timeout
        )
    accuracy = n_correct / n if n else 0.0
    print(f"accuracy: {accuracy:.4f} ({n_correct}/{n})")
    if args.out is not None:
        out_rows = []
        for row, verdict in zip(rows, verdicts, strict=True):
            out = {k: v for k, v in row.items() if k not in ("correct", "extracted", "reason")}
            out["correct"] = verdict.correct
            out["extracted"] = verdict.pred
            if not verdict.correct:
                out["reason"] = verdict.reason
            out_rows.append(out)
        write_jsonl(args.out, out_rows)
        logger.info("wrote %d verdict row(s) to %s", len(out_rows), args.out)
    return 0

"""`berry report`: metrics, tables and plots of `berry eval` output directories.

Only the standard library is imported at module level; `openberry.evaluation.report` (and
matplotlib, for the plots) is imported when the command runs.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from openberry.cli._args import int_at_least

__all__ = ["register", "run"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_WRONG_TREES = 20

_DESCRIPTION = """\
Summarise output directories of 'berry eval' (OUT/run.json and OUT/<METHOD@BUDGET>/records.jsonl).

With one DIR: (re)write DIR/report.json (every number), DIR/report.md (tables, plots, wrong
answers), DIR/plots/accuracy_vs_tokens.png and DIR/plots/accuracy_vs_budget.png, and a tree
viewer page for the first wrong answers of each run (DIR/<run>/wrong/*.html); print the tables.
With several DIRs: print them side by side, one row per directory and run; --out OUT also writes
OUT/report.md, OUT/report.json and combined plots under OUT/plots/.

Accuracy is the mean over problems of the fraction of correct samples (the answer each search
chose; pass@1). Metrics that use the reference answer to choose among answers (coverage pass@k,
oracle any node), or re-select an answer after the search (best-scored node), are in a separate
table and never called accuracy. Record files are only read: a torn last line (a crash) is
reported as a warning and not counted. See docs/eval.md, "Metrics and reports"."""

_EPILOG = """\
examples:
  berry report runs/ev                          # rewrite runs/ev/report.md and print the tables
  berry report runs/ev --max-wrong-trees 50     # more tree pages of wrong answers
  berry report runs/base runs/sft               # compare two evaluations on stdout
  berry report runs/base runs/sft --out runs/cmp   # ... and write runs/cmp/report.md and plots
"""


def register(subparsers: Any) -> None:
    """Add the ``report`` subcommand.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """
    p = subparsers.add_parser(
        "report",
        help="metrics, tables and plots of 'berry eval' output directories (compare several)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dirs", metavar="DIR", nargs="+", help="output directory of 'berry eval'")
    p.add_argument(
        "--out",
        metavar="OUT",
        help="with several DIRs: write the comparison (report.md, report.json, plots/) here",
    )
    p.add_argument(
        "--max-wrong-trees",
        type=int_at_least(0),
        default=DEFAULT_MAX_WRONG_TREES,
        metavar="N",
        help="with one DIR: tree viewer pages written per run for its first wrong answers "
        f"(default: {DEFAULT_MAX_WRONG_TREES})",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``berry report`` (see ``berry report --help``).

    Args:
        args: Parsed arguments.

    Returns:
        The exit status (0).

    Raises:
        BerryError: A directory is missing or holds no records, a record file is damaged before
            its last line, or ``--out`` is given with one DIR or names one of the DIRs.
    """
    from openberry.errors import BerryError
    from openberry.evaluation.report import compare_dirs, markdown_tables, write_report

    dirs = [Path(d) for d in args.dirs]
    for d in dirs:
        if not d.exists():
            raise BerryError(f"{d}: no such directory")
        if not d.is_dir():
            raise BerryError(f"{d}: not a directory (expected an output directory of 'berry eval')")

    if len(dirs) == 1:
        if args.out:
            raise BerryError(
                f"--out is for comparing several directories; the report of one is written into "
                f"it ({dirs[0]}/report.md)"
            )
        out = dirs[0]
        try:
            summary = write_report(out, max_wrong_trees=args.max_wrong_trees)
        except OSError as exc:
            raise BerryError(f"{out}: cannot write the report: {exc.strerror or exc}") from exc
        print(markdown_tables(summary))
        print()
        pages = sum(r.get("wrong_pages", {}).get("written", 0) for r in summary["runs"].values())
        print(f"report: {out / 'report.md'}")
        print(f"data:   {out / 'report.json'}")
        for plot in summary.get("plots", []):
            print(f"plot:   {out / plot}")
        if pages:
            print(f"pages:  {pages} tree page(s) of wrong answers under {out}/<run>/wrong/")
        if summary["warnings"]:
            print(f"{len(summary['warnings'])} warning(s): see {out / 'report.md'}")
        return 0

    out = Path(args.out) if args.out else None
    try:
        text = compare_dirs(dirs, out)
    except OSError as exc:
        raise BerryError(f"{out}: cannot write the comparison: {exc.strerror or exc}") from exc
    print(text, end="")
    if out is not None:
        print()
        print(f"report: {out / 'report.md'}")
        print(f"data:   {out / 'report.json'}")
    return 0

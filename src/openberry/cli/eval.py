"""`berry eval`: evaluate search methods on a dataset, with durable records and a report.

Only the standard library is imported at module level; the runner (and torch, for ``--backend
hf``) is imported when the command runs.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from openberry.cli._args import add_backend_args, int_at_least, model_spec
from openberry.cli.solve import METHOD_HELP
from openberry.models.builtin import DEFAULT_MODEL

__all__ = ["register", "run"]

logger = logging.getLogger(__name__)

_DESCRIPTION = """\
Run one or more search methods over a dataset and grade every answer against the reference.

Each (method, budget) pair is a run, METHOD@BUDGET (greedy has no budget: greedy@1). A run writes
one record per problem to OUT/METHOD@BUDGET/records.jsonl as the problem finishes (appended and
fsync'ed: a crash, even kill -9, loses at most the problems in flight), and every search tree to
OUT/METHOD@BUDGET/trees/. At the end OUT/report.md, OUT/report.json and plots under OUT/plots/
compare the runs ('berry report OUT' rewrites them; 'berry report A B' compares two evaluations).

Search never sees the reference answer: it is read only by the grader, after each search.
Problems are searched in batches of --batch-size (a batch shares its model calls, which is where
the speed comes from); --resume re-runs a cut-short batch whole with its seed, so a resumed
evaluation writes the same records as one that was never interrupted."""

_EPILOG = """\
examples:
  berry eval --dataset arithmetic --split test --limit 50 --method greedy,mctsr --rollouts 4 --out runs/ev
  berry eval --dataset arithmetic --split test --method self-consistency,sr-mcts \\
      --budget-sweep 1,2,4,8,16 --out runs/sweep
  berry eval --dataset arithmetic --method greedy --out runs/ev --resume     # after a crash
  berry eval --dataset math500 --path ../shared/data/math500_test.jsonl \\
      --model Qwen/Qwen2.5-Math-1.5B-Instruct --chat-template \\
      --method best-of-n --rollouts 8 --set scorer=logprob --out runs/math500
  berry eval --dataset math500 --backend openai --base-url http://localhost:8000/v1 \\
      --model Qwen2.5-Math-7B-Instruct --method self-consistency --rollouts 16 --out runs/vllm
  berry eval --dataset gsm8k --method mctsr --workers 2 --out runs/ray      # two Ray workers

--set [METHOD:]KEY=VALUE sets a config field (see 'berry solve --help'); without METHOD: it
applies to every method given and must be valid for each.
"""


def _key_value(text: str) -> tuple[str, str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected [METHOD:]KEY=VALUE, got {text!r}")
    scope, colon, name = key.partition(":")
    if not colon:
        scope, name = "", key
    return scope.strip(), name.strip(), value


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"budgets must be integers >= 1, got {text!r}")
    return values


def _methods(text: str) -> tuple[str, ...]:
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in names if m not in METHOD_HELP]
    if bad or not names:
        what = ", ".join(bad) if bad else repr(text)
        raise argparse.ArgumentTypeError(
            f"unknown method {what}; choose from {', '.join(METHOD_HELP)}"
        )
    return names


def register(subparsers: Any) -> None:
    """Add the ``eval`` command to the ``berry`` parser."""
    p = subparsers.add_parser(
        "eval",
        help="evaluate search methods on a dataset (records, report, plots)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("what to evaluate")
    g.add_argument("--dataset", required=True, metavar="NAME|PATH", help="dataset name or file")
    g.add_argument(
        "--path", metavar="FILE", help="read the dataset's rows from FILE (JSONL, JSON, parquet)"
    )
    g.add_argument("--split", metavar="S", help="split (default: the dataset's default)")
    g.add_argument("--limit", type=int_at_least(1), metavar="N", help="first N problems only")
    g.add_argument(
        "--method",
        type=_methods,
        default=("greedy",),
        metavar="M[,M...]",
        help=f"methods, comma-separated: {', '.join(METHOD_HELP)} (default: greedy)",
    )
    budget = g.add_mutually_exclusive_group()
    budget.add_argument(
        "--rollouts", type=int_at_least(1), metavar="N", help="budget of every method (default: 4)"
    )
    budget.add_argument(
        "--budget-sweep",
        type=_int_list,
        metavar="N,N,...",
        help="run every method at each of these budgets, e.g. 1,2,4,8,16",
    )
    g.add_argument(
        "--samples",
        type=int_at_least(1),
        default=1,
        metavar="K",
        help="independent searches per problem, for maj@K and pass@k (default: 1)",
    )
    g.add_argument(
        "--set",
        dest="overrides",
        type=_key_value,
        action="append",
        default=[],
        metavar="[METHOD:]KEY=VALUE",
        help="set a method config field (repeatable)",
    )
    g.add_argument("--seed", type=int, default=0, metavar="S", help="run seed (default: 0)")

    m = p.add_argument_group("models")
    m.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="PATH_OR_ID",
        help=f"policy: directory, hub id, built-in or served name (default: {DEFAULT_MODEL})",
    )
    m.add_argument("--judge", metavar="PATH_OR_ID", help="separate PPRM judge model")
    add_backend_args(m)

    o = p.add_argument_group("running and output")
    o.add_argument("--out", required=True, metavar="DIR", help="output directory")
    o.add_argument(
        "--resume", action="store_true", help="continue the evaluation in --out (same settings)"
    )
    o.add_argument(
        "--batch-size",
        type=int_at_least(1),
        default=64,
        metavar="B",
        help="problems searched together (default: 64); fixed for the life of an evaluation",
    )
    o.add_argument(
        "--workers",
        type=int_at_least(1),
        default=1,
        metavar="N",
        help="search on N Ray actors on this machine, each with its own backend (default: 1, "
        "in process; needs pip install 'openberry[ray]')",
    )
    o.add_argument(
        "--ray-address", metavar="ADDR", help="join this Ray cluster (e.g. ray://head:10001, auto)"
    )
    o.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: when stderr is a terminal; else a log line per batch)",
    )
    o.add_argument("--no-report", action="store_true", help="skip the report at the end")
    o.add_argument(
        "--max-wrong-trees",
        type=int_at_least(0),
        default=20,
        metavar="N",
        help="tree viewer pages of wrong answers per run in the report (default: 20)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``berry eval`` (see ``berry eval --help``)."""
    from openberry.evaluation.runner import EvalConfig, evaluate

    budgets = args.budget_sweep or ((args.rollouts,) if args.rollouts else (4,))
    config = EvalConfig(
        dataset=args.dataset,
        out=args.out,
        methods=args.method,
        budgets=budgets,
        path=args.path,
        split=args.split,
        limit=args.limit,
        samples=args.samples,
        seed=args.seed,
        overrides=tuple(args.overrides),
        batch_size=args.batch_size,
        policy=model_spec(args),
        judge=model_spec(args, args.judge) if args.judge else None,
    )
    summary = evaluate(
        config,
        resume=args.resume,
        workers=args.workers,
        ray_address=args.ray_address,
        progress=args.progress,
    )
    logger.info(
        "%d record(s) written, %d already there, %.1f s",
        summary.written,
        summary.skipped,
        summary.wall_time,
    )
    if args.no_report:
        print(f"records: {summary.out}/<run>/records.jsonl (runs: {', '.join(summary.runs)})")
        return 0
    from openberry.evaluation.report import markdown_tables, write_report

    report = write_report(summary.out, max_wrong_trees=args.max_wrong_trees)
    print(markdown_tables(report))
    print(f"report: {summary.out / 'report.md'}  (plots: {summary.out / 'plots'})")
    return 0

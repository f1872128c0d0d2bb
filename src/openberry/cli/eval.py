"""`berry eval`: evaluate search methods on a dataset, with durable records and a report.

Only the standard library is imported at module level; the runner (and torch, for ``--backend
hf``) is imported when the command runs. The options that set an `EvalConfig` field take their
help and default from the field (read from the runner's source, not imported); options left out
keep the field's default.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from openberry.cli._args import (
    GGUF_MODEL_HELP,
    add_backend_args,
    add_prompts_arg,
    add_role_args,
    int_at_least,
    model_spec,
    role_specs,
)
from openberry.cli._config import (
    FieldOption,
    add_config_file_option,
    add_field_options,
    method_settings,
)
from openberry.models.builtin import DEFAULT_MODEL
from openberry.search.registry import DEFAULT_ROLLOUTS, REGISTRY

__all__ = [
    "add_model_options",
    "add_running_options",
    "add_what_options",
    "eval_config",
    "register",
    "run",
]

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
applies to every method given and must be valid for each; '--set help' lists the settings of the
methods given. --config FILE reads options from a TOML or YAML file whose keys are the flags
(dataset = "arithmetic", method = "greedy,mctsr", budget-sweep = [1, 2, 4], set = ["c=1.0"]);
flags given on the command line win. Every tree's info.config is its search's whole config, its
prompt profile (--prompts) included; --prompts is part of what --resume must keep.
"""

_EVAL_CONFIG = "openberry.evaluation.runner:EvalConfig"
"""Read from source for help and defaults; importing the runner would slow ``berry --help``."""


def _key_value(text: str) -> tuple[str, str, str]:
    if text.strip() == "help":
        return "", "help", ""
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
    bad = [m for m in names if m not in REGISTRY]
    if bad or not names:
        what = ", ".join(bad) if bad else repr(text)
        raise argparse.ArgumentTypeError(
            f"unknown method {what}; choose from {', '.join(REGISTRY)}"
        )
    return names


_WHAT: tuple[FieldOption, ...] = (
    ("--dataset", "dataset", {"required": True, "metavar": "NAME|PATH"}),
    ("--path", "path", {"metavar": "FILE"}),
    ("--split", "split", {"metavar": "S"}),
    ("--question-field", "question_field", {"metavar": "F"}),
    ("--answer-field", "answer_field", {"metavar": "F"}),
    ("--limit", "limit", {"type": int_at_least(1), "metavar": "N"}),
    (
        "--method",
        "methods",
        {
            "type": _methods,
            "metavar": "M[,M...]",
            "help": f"methods, comma-separated: {', '.join(REGISTRY)}",
        },
    ),
)
_SAMPLING: tuple[FieldOption, ...] = (
    ("--samples", "samples", {"type": int_at_least(1), "metavar": "K"}),
    (
        "--set",
        "overrides",
        {
            "type": _key_value,
            "action": "append",
            "metavar": "[METHOD:]KEY=VALUE",
            "help": "set a method config field (repeatable; '--set help' lists them)",
        },
    ),
    ("--seed", "seed", {"type": int, "metavar": "S"}),
)
_RUNNING: tuple[FieldOption, ...] = (
    ("--out", "out", {"required": True, "metavar": "DIR", "note": None}),
)


def register(subparsers: Any) -> None:
    """Add the ``eval`` command to the ``berry`` parser."""
    p = subparsers.add_parser(
        "eval",
        help="evaluate search methods on a dataset (records, report, plots)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_what_options(p.add_argument_group("what to evaluate"))
    add_model_options(p.add_argument_group("models"))
    add_running_options(p.add_argument_group("running and output"))
    add_config_file_option(p)
    p.set_defaults(func=run)


def add_what_options(g: Any) -> None:
    """Dataset, methods, budgets, samples, settings and seed options."""
    add_field_options(g, _EVAL_CONFIG, _WHAT)
    budget = g.add_mutually_exclusive_group()
    budget.add_argument(
        "--rollouts",
        type=int_at_least(1),
        metavar="N",
        help=f"budget of every method (default: {DEFAULT_ROLLOUTS})",
    )
    add_field_options(
        budget,
        _EVAL_CONFIG,
        [
            (
                "--budget-sweep",
                "budgets",
                {
                    "type": _int_list,
                    "metavar": "N,N,...",
                    "help": "run every method at each of these budgets, e.g. 1,2,4,8,16",
                    "note": None,
                },
            )
        ],
    )
    add_field_options(g, _EVAL_CONFIG, _SAMPLING)


def add_model_options(m: Any) -> None:
    """Policy, judge, backend and prompt profile options."""
    m.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="PATH_OR_ID",
        help=f"policy: directory, hub id, built-in or served name (default: {DEFAULT_MODEL}), "
        f"{GGUF_MODEL_HELP}",
    )
    add_role_args(m)
    add_backend_args(m)
    add_prompts_arg(m)


def add_running_options(o: Any, report: bool = True) -> None:
    """Output, resume, batching, Ray and progress options (and the report's, with `report`)."""
    add_field_options(o, _EVAL_CONFIG, _RUNNING)
    o.add_argument(
        "--resume",
        action="store_true",
        help="continue the evaluation in --out with the settings that shape its results; "
        "--base-url, --timeout, --max-retries, --max-retry-time, --workers, --ray-address and "
        "--progress may change (recorded in run.json)",
    )
    add_field_options(
        o, _EVAL_CONFIG, [("--batch-size", "batch_size", {"type": int_at_least(1), "metavar": "B"})]
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
    if not report:
        return
    o.add_argument("--no-report", action="store_true", help="skip the report at the end")
    o.add_argument(
        "--max-wrong-trees",
        type=int_at_least(0),
        default=20,
        metavar="N",
        help="tree viewer pages of wrong answers per run in the report (default: 20)",
    )


def eval_config(args: argparse.Namespace) -> Any:
    """The `EvalConfig` of the options given (the fields' defaults for the others)."""
    import dataclasses

    from openberry.evaluation.runner import EvalConfig

    names = {f.name for f in dataclasses.fields(EvalConfig)}
    values = {k: v for k, v in vars(args).items() if k in names}
    if args.rollouts:
        values["budgets"] = (args.rollouts,)
    values["overrides"] = tuple(values.get("overrides", ()))
    values["policy"] = model_spec(args)
    values.update({"judge": None, "value": None, **role_specs(args)})
    return EvalConfig(**values)


def run(args: argparse.Namespace) -> int:
    """Run ``berry eval`` (see ``berry eval --help``)."""
    from openberry.evaluation.runner import evaluate

    config = eval_config(args)
    if any(key == "help" for _, key, _ in config.overrides):
        print(method_settings(config.methods))
        return 0
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

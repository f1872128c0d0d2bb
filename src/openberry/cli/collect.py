"""`berry collect`: self-play tree collection on a training split (`openberry.training.collect`).

It takes `berry eval`'s options (it runs through the same runner) and adds ``--hint-answer``.
Only the standard library is imported at module level.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from openberry.cli._config import add_config_file_option, method_settings
from openberry.cli.eval import (
    add_model_options,
    add_running_options,
    add_what_options,
    eval_config,
)

__all__ = ["register", "run"]

logger = logging.getLogger(__name__)

DEFAULT_SPLIT = "train"

_DESCRIPTION = """\
Search a dataset's training split with any method and keep every search tree, each candidate
solution marked by the training-time verifier, as training data for 'berry extract'.

After each search the grader checks every candidate answer in the tree against the reference
and stores the verdict in the tree (node.info["verified"]); the search itself never sees the
reference. Layout (as 'berry eval'): OUT/METHOD@N/trees/IIIIII-sJ.json (one tree per problem and
sample), OUT/METHOD@N/records.jsonl (one durable record per problem), OUT/run.json, and
OUT/manifest.json (method, search config, model, seed, counts, accuracy and oracle coverage:
the share of problems where some candidate in the trees is right).

A crash, even kill -9, loses at most the problems in flight: --resume searches a cut-short batch
again with its seed, so the resumed collection writes the same trees as an uninterrupted one.
--split defaults to 'train'. --hint-answer (LLaMA-O1's ground-truth hint) appends the reference
answer to every question the search sees: off by default, recorded in run.json and the manifest;
trees collected with it say nothing about search at inference."""

_EPILOG = """\
examples:
  berry collect --dataset arithmetic --limit 1000 --method self-consistency --rollouts 8 --out runs/col-sc
  berry collect --dataset arithmetic --limit 500 --method step-mcts --rollouts 8 --out runs/col-step
  berry collect --dataset arithmetic --method step-mcts --out runs/col-step --resume   # after a crash
  berry collect --dataset gsm8k --path train.jsonl --model Qwen/Qwen2.5-Math-1.5B-Instruct \\
      --chat-template --method sr-mcts --rollouts 8 --workers 4 --out runs/col-gsm8k
  berry extract pairs runs/col-sc --out pairs.jsonl          # then: berry train pprm ...
"""


def register(subparsers: Any) -> None:
    """Add the ``collect`` command to the ``berry`` parser."""
    p = subparsers.add_parser(
        "collect",
        help="search a training split and keep the verified trees (training data)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = p.add_argument_group("what to collect")
    add_what_options(what)
    what.add_argument(
        "--hint-answer",
        action="store_true",
        help="append the reference answer to every question searched (an oracle leak; off by "
        "default, recorded in the manifest)",
    )
    add_model_options(p.add_argument_group("models"))
    add_running_options(p.add_argument_group("running and output"), report=False)
    add_config_file_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``berry collect`` (see ``berry collect --help``)."""
    from openberry.training.collect import MANIFEST, collect

    if getattr(args, "split", None) is None:
        args.split = DEFAULT_SPLIT
    config = eval_config(args)
    if any(key == "help" for _, key, _ in config.overrides):
        print(method_settings(config.methods))
        return 0
    if config.hint_answer:
        logger.warning("--hint-answer: the search sees every reference answer (recorded)")
    summary, manifest = collect(
        config,
        resume=args.resume,
        workers=args.workers,
        ray_address=args.ray_address,
        progress=args.progress,
    )
    for name, run_info in manifest["runs"].items():
        print(
            f"{name}: {run_info['problems']} problems, {run_info['trees']} trees, "
            f"{run_info['nodes']} nodes, accuracy {_pct(run_info['accuracy'])}, "
            f"oracle coverage {_pct(run_info['oracle_coverage'])}"
        )
    rate = summary.written / summary.wall_time * 60 if summary.wall_time else 0.0
    print(
        f"{summary.written} problem(s) collected, {summary.skipped} already there, "
        f"{summary.wall_time:.1f} s ({rate:.1f} problems/min)"
    )
    print(f"manifest: {summary.out / MANIFEST}")
    return 0


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"

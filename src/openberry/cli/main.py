"""`berry`: the openberry command line.

Each subcommand lives in its own module under `openberry.cli` and exposes ``register(subparsers)``.
Those modules import only the standard library at module level, so ``berry --help`` and the light
commands (``data``, ``grade``) start fast; torch and friends are imported inside the commands that
need them. `main` returns an exit code and never calls `sys.exit`, so it is testable in-process.
A command's ``--config FILE`` is read before parsing (`openberry.cli._config.expand_config_files`).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from openberry import __version__
from openberry.cli._config import expand_config_files
from openberry.errors import BerryError

__all__ = ["main"]

# Order is the order shown in --help.
_COMMAND_MODULES = (
    "openberry.cli.data",
    "openberry.cli.grade",
    "openberry.cli.train",
    "openberry.cli.generate",
    "openberry.cli.solve",
    "openberry.cli.eval",
    "openberry.cli.collect",
    "openberry.cli.report",
    "openberry.cli.extract",
    "openberry.cli.view",
    "openberry.cli.serve",
)

_EPILOG = """\
examples:
  berry data list
  berry data show arithmetic --split test --limit 3
  berry data show math500 --path ../shared/data/math500_test.jsonl --limit 2
  berry grade '\\frac{1}{2}' '0.5'
  berry grade --file preds.jsonl --pred-field output --gold-field answer --out verdicts.jsonl
  berry solve "Compute 21 + 12 + 3." --method mctsr --rollouts 4 --out runs/solve
  berry eval --dataset arithmetic --split test --limit 50 --method greedy,sr-mcts --out runs/ev
  berry report runs/ev
  berry collect --dataset arithmetic --limit 500 --method step-mcts --rollouts 8 --out runs/col
  berry view tree.json --open

Run 'berry COMMAND --help' for a command's options.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="berry",
        description="openberry: o1-style mathematical reasoning with tree search, "
        "reward models and self-play RL.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"openberry {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose >= 2 else logging.INFO
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        argv = expand_config_files(parser, argv)
    except BerryError as exc:
        print(f"berry: error: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    _configure_logging(args.verbose, args.quiet)
    try:
        return int(args.func(args) or 0)
    except BerryError as exc:
        print(f"berry {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `berry data show ... | head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

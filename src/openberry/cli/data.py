"""`berry data`: list known datasets, show problems, write training corpora.

Only the standard library and light openberry modules are imported at module level; the loader
imports ``pyarrow``/``datasets`` only when a parquet file or the hub is actually read, and the
arithmetic generator is imported inside the commands that use it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from openberry.cli._args import int_at_least
from openberry.data.datasets import (
    DATA_DIR_ENV,
    DATASETS,
    LoadResult,
    count_rows,
    data_dir,
    load_examples,
    local_file,
)
from openberry.records import Example

__all__ = ["register"]

logger = logging.getLogger(__name__)

_SHOWN_SKIPS = 5
_CORPUS_SOURCES = ("arithmetic",)
# Kept in step with openberry.data.arithmetic.CORPUS_KINDS for --help; checked at run time.
_KINDS_HELP = "solutions, openlongcot, critique, ratings, pairs, pretrain"

_DATA_EPILOG = f"""\
Datasets are read from --path FILE, else from ${DATA_DIR_ENV}/<default file>, else from the
Hugging Face hub (only when online). 'arithmetic' is generated and needs no file.

examples:
  berry data list
  {DATA_DIR_ENV}=../shared/data berry data show gsm8k --limit 2
  berry data show arithmetic --split test --limit 3
  berry data corpus arithmetic --kind solutions --limit 1000 --out corpus.jsonl
"""

_SHOW_EPILOG = f"""\
NAME is a known dataset (see 'berry data list') or the path of a JSONL, JSON-array or parquet
file. Known datasets are read from --path FILE, else from ${DATA_DIR_ENV}/<default file>,
else from the Hugging Face hub when online. Rows may name their fields as the dataset does or
with the usual aliases of published copies (question: problem, question, prompt; answer: answer,
expected_answer, final_answer, gold); --question-field / --answer-field name any other. A bad row
stops with an error naming its line (and, for a missing field, listing the row's keys) unless
--skip-bad is given; skipped rows are counted on stderr.

examples:
  berry data show arithmetic --limit 3
  berry data show math500 --path ../shared/data/math500_test.jsonl --limit 2
  {DATA_DIR_ENV}=../shared/data berry data show olympiadbench --limit 1 --json
  berry data show mine.jsonl --question-field prompt --answer-field gold --skip-bad
"""

_CORPUS_EPILOG = f"""\
Kinds: {_KINDS_HELP}.
The file is written atomically (a temporary file renamed into place) and the row count printed.

examples:
  berry data corpus arithmetic --kind solutions --limit 1000 --out sft.jsonl
  berry data corpus arithmetic --kind openlongcot --seed 1 --out longcot.jsonl
  berry data corpus arithmetic --kind pairs --slip-rate 0.3 --out pairs.jsonl
"""


def register(subparsers: Any) -> None:
    """Add the ``data`` command and its subcommands to the ``berry`` parser.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """
    raw = argparse.RawDescriptionHelpFormatter
    parser = subparsers.add_parser(
        "data",
        help="list datasets, show problems, write training corpora",
        description="List known datasets, show their problems, write training corpora.",
        epilog=_DATA_EPILOG,
        formatter_class=raw,
    )
    parser.set_defaults(func=lambda args: _no_subcommand(parser))
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    p_list = sub.add_parser(
        "list",
        help="table of known datasets",
        description=f"Show the known datasets, whether their file is in ${DATA_DIR_ENV}, "
        "its row count, and the Hugging Face hub id.",
        epilog="example:\n  BERRY_DATA_DIR=../shared/data berry data list\n",
        formatter_class=raw,
    )
    p_list.set_defaults(func=_cmd_list)

    p_show = sub.add_parser(
        "show",
        help="print a dataset's problems",
        description="Print problems (id, question, answer) of a dataset or a local file.",
        epilog=_SHOW_EPILOG,
        formatter_class=raw,
    )
    p_show.add_argument("name", metavar="NAME|PATH", help="dataset name or file path")
    p_show.add_argument("--path", metavar="FILE", help="read the dataset from this file")
    p_show.add_argument("--split", metavar="S", help="split (default: the dataset's default)")
    p_show.add_argument("--limit", metavar="N", type=int_at_least(0), help="show at most N")
    p_show.add_argument("--question-field", metavar="F", help="field holding the question")
    p_show.add_argument("--answer-field", metavar="F", help="field holding the gold answer")
    p_show.add_argument("--id-field", metavar="F", help="field holding the problem id")
    p_show.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip bad rows (counted on stderr) instead of failing",
    )
    p_show.add_argument(
        "--json", action="store_true", help="print JSON Lines (id, question, answer, ...)"
    )
    p_show.set_defaults(func=_cmd_show)

    p_corpus = sub.add_parser(
        "corpus",
        help="write a training corpus (JSONL)",
        description="Write a training corpus generated from a built-in dataset as JSON Lines.",
        epilog=_CORPUS_EPILOG,
        formatter_class=raw,
    )
    p_corpus.add_argument("source", choices=_CORPUS_SOURCES, help="generator (arithmetic)")
    p_corpus.add_argument("--kind", required=True, metavar="KIND", help=f"one of {_KINDS_HELP}")
    p_corpus.add_argument("--split", default="train", help="train, validation or test (train)")
    p_corpus.add_argument("--limit", metavar="N", type=int_at_least(0), help="at most N rows")
    p_corpus.add_argument("--seed", metavar="S", type=int, default=0, help="random seed (0)")
    p_corpus.add_argument(
        "--slip-rate",
        metavar="R",
        type=_probability,
        help="slip rate passed to the generator, 0..1 (default: the generator's)",
    )
    p_corpus.add_argument("--out", required=True, metavar="FILE.jsonl", help="output file")
    p_corpus.set_defaults(func=_cmd_corpus)


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def _no_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


# ----------------------------------------------------------------------------------------------
# list


def _cmd_list(args: argparse.Namespace) -> int:
    directory = data_dir()
    rows = [("NAME", "ROWS", "LOCAL", "HUB", "DESCRIPTION")]
    for spec in DATASETS.values():
        if spec.builtin:
            local, count = "built-in", "-"
        else:
            found = local_file(spec)
            local = "yes" if found else "-"
            count = str(count_rows(found)) if found else "-"
        hub = spec.hub_id or "-"
        if spec.hub_id and spec.hub_config:
            hub += f" ({spec.hub_config})"
        rows.append((spec.name, count, local, hub, spec.description))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])
    if directory is None:
        print(f"\n{DATA_DIR_ENV} is not set: set it to a directory holding the files below.")
    elif not directory.is_dir():
        print(f"\n{DATA_DIR_ENV}={directory} is not a directory.")
    else:
        print(f"\nlocal files: {DATA_DIR_ENV}={directory}")
    print("default files: " + ", ".join(s.local_file for s in DATASETS.values() if s.local_file))
    return 0


# ----------------------------------------------------------------------------------------------
# show


def _cmd_show(args: argparse.Namespace) -> int:
    result = load_examples(
        args.name,
        path=args.path,
        split=args.split,
        limit=args.limit,
        question_field=args.question_field,
        answer_field=args.answer_field,
        id_field=args.id_field,
        skip_bad=args.skip_bad,
    )
    for i, example in enumerate(result.examples):
        if args.json:
            print(json.dumps(_example_row(example), ensure_ascii=False))
        else:
            if i:
                print()
            print(_format_example(example))
    _report(result)
    return 0


def _example_row(example: Example) -> dict[str, Any]:
    problem = example.problem
    return {
        "id": problem.id,
        "question": problem.question,
        "answer": example.answer,
        "solution": example.solution,
        "source": problem.source,
        "meta": dict(problem.meta),
    }


def _indent(text: str, width: int) -> str:
    return text.replace("\n", "\n" + " " * width)


def _format_example(example: Example) -> str:
    problem = example.problem
    lines = [
        f"== {problem.id}",
        f"question: {_indent(problem.question.strip(), 10)}",
        f"answer:   {_indent(str(example.answer), 10)}",
    ]
    if problem.meta:
        lines.append("meta:     " + ", ".join(f"{k}={v}" for k, v in problem.meta.items()))
    return "\n".join(lines)


def _report(result: LoadResult) -> None:
    n = len(result.examples)
    print(f"{n} problem{'' if n == 1 else 's'} from {result.origin}", file=sys.stderr)
    if result.skipped:
        k = len(result.skipped)
        print(f"skipped {k} bad row{'' if k == 1 else 's'}:", file=sys.stderr)
        for line, reason in result.skipped[:_SHOWN_SKIPS]:
            print(f"  line {line}: {reason}", file=sys.stderr)
        if len(result.skipped) > _SHOWN_SKIPS:
            print(f"  ... and {len(result.skipped) - _SHOWN_SKIPS} more", file=sys.stderr)


# ----------------------------------------------------------------------------------------------
# corpus


def _cmd_corpus(args: argparse.Namespace) -> int:
    from openberry.data import arithmetic
    from openberry.jsonl import write_jsonl

    # corpus_rows validates kind, split and limit before the first row, so a bad argument fails
    # before the output file is opened.
    kwargs: dict[str, Any] = {"limit": args.limit, "seed": args.seed}
    if args.slip_rate is not None:
        kwargs["slip_rate"] = args.slip_rate
    logger.info("writing %s corpus (%s split) to %s", args.kind, args.split, args.out)
    n = write_jsonl(args.out, arithmetic.corpus_rows(args.kind, args.split, **kwargs))
    print(f"wrote {n} {args.kind} rows to {args.out}")
    return 0

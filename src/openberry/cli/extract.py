"""`berry extract`: training data (JSONL) from verified search trees.

Only the standard library is imported at module level; `openberry.training.extract` (pure
Python, no torch) is imported inside the command.
"""

from __future__ import annotations

import argparse
from typing import Any

from openberry.cli._args import int_at_least

__all__ = ["register"]

_DESCRIPTION = """\
Turn verified search trees into training rows (docs/training-data.md).

SOURCE is a collection or eval directory (its */trees/*.json), one run's directory (trees/*.json),
a trees directory or tree files. Only trees whose candidate solutions carry the grader's verdict
(node.info["verified"], written by `berry collect` and `berry eval`) are used; the others are
skipped and counted. Each problem's verified solutions, from all its trees and methods, are split
into steps (one per line) and merged into a prefix trie; a trie step's return is the share of
correct solutions through it."""

_EPILOG = """\
kinds and rows (every row has "id", the problem id, and "kind"):
  best-paths   distinct verified-correct solutions, up to --max-per-problem per problem:
               {"prompt": "Question: Q\\nSolution:\\n", "completion": "LINES\\n"}
  pairs        outcome pairs (a correct vs a wrong solution) and step pairs (two sibling steps
               after the same prefix whose returns differ by >= --value-gap, each with
               >= --min-count solutions), up to --max-pairs-per-problem of each per problem, each
               pair as two rows (both orders) with the same "pair" id: {"pair", "kind":
               "outcome"|"step", "question", "solution_a", "solution_b", "label": 1 if A is better,
               "prompt": judge prompt, "chosen", "rejected", "completion"} (Yes/No)
  values       one row per trie step with >= --min-count solutions: {"prompt": value-head prompt
               ending at the rating slot, "value": its return in [0, 1], "count"}
  journey      O1-Journey long thought: a correct path with up to --journey-k detours into
               branches every verified solution got wrong (at most --detour-steps steps, never an
               answer line), each ended by a reflection (the tree's own critique where one fits,
               else --reflection) and a return to the correct step; each chosen place keeps its
               detour with chance --detour-rate; prompt/completion rows whose "ignore_spans"
               mark the wrong steps (berry train sft leaves them out of the loss; off with
               --no-mask-wrong-steps), or OpenLongCoT {"text"} documents with --format
               openlongcot. The defaults are the best measured on the validation split
               (docs/training-data.md)
  shortcut     the same correct path alone, for exactly the problems journey writes
  openlongcot  each problem's trie as one OpenLongCoT document {"text"} (ratings from returns)

All choices are random at --seed and reproducible. Prints one summary line.

examples:
  berry extract best-paths runs/collect --out data/sft.jsonl
  berry extract pairs runs/collect --pair-kinds outcome --out data/pairs.jsonl
  berry extract journey runs/collect --out data/journey.jsonl
  berry extract journey runs/collect --journey-k 2 --detour-steps 2 --detour-rate 1 \\
      --no-mask-wrong-steps --out data/journey-o1.jsonl      # every journey with detours
  berry extract shortcut runs/collect --out data/shortcut.jsonl
"""


def register(subparsers: Any) -> None:
    """Add the ``extract`` subcommand.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """
    p = subparsers.add_parser(
        "extract",
        help="training data (SFT paths, pairs, values, journeys) from verified search trees",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "kind",
        metavar="KIND",
        choices=("best-paths", "pairs", "values", "journey", "shortcut", "openlongcot"),
        help="best-paths, pairs, values, journey, shortcut or openlongcot (see below)",
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="directories or tree files")
    p.add_argument("--out", required=True, metavar="FILE.jsonl", help="where to write the rows")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (default: 0)")
    _add_int(p, "--max-per-problem", 4, "best-paths: most correct solutions per problem")
    _add_int(p, "--max-pairs-per-problem", 4, "pairs: most outcome and most step pairs per problem")
    p.add_argument(
        "--pair-kinds",
        default="outcome,step",
        metavar="K[,K]",
        help="pairs: which pairs, outcome and/or step (default: outcome,step)",
    )
    p.add_argument(
        "--judge-frame",
        choices=("plain", "step"),
        default="plain",
        help="pairs: the judge prompt frame (plain: both whole solutions; step: the OpenLongCoT "
        "value frame at A's first differing step; search with --set "
        "scorer_config.judge_frame=step then) (default: plain)",
    )
    p.add_argument(
        "--value-gap",
        type=float,
        default=0.5,
        metavar="G",
        help="pairs: least return difference of a step pair (default: 0.5)",
    )
    _add_int(p, "--min-count", 1, "least solutions through a step for step pairs and values")
    _add_int(p, "--journey-k", 1, "journey/shortcut: most detours per journey")
    _add_int(p, "--detour-steps", 1, "journey/shortcut: most steps of one detour")
    p.add_argument(
        "--detour-rate",
        type=float,
        default=0.25,
        metavar="P",
        help="journey: chance that each chosen detour place gets its detour; below 1 some "
        "journeys are the correct path alone (default: 0.25)",
    )
    p.add_argument(
        "--reflection",
        default=None,
        metavar="TEMPLATE",
        help="journey: reflection line when the tree has no fitting critique; {step} is the "
        "detour's first step number, {line} its text (default: 'Step {step} is wrong.')",
    )
    p.add_argument(
        "--no-critiques",
        action="store_true",
        help="journey: always use --reflection, never the tree's own critiques",
    )
    p.add_argument(
        "--mask-wrong-steps",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="journey: mark the detours' wrong steps as ignore_spans, which berry train sft "
        "leaves out of the loss: it learns the reflection and the return, not the mistake "
        "(default: on)",
    )
    p.add_argument(
        "--format",
        choices=("text", "openlongcot"),
        default="text",
        help="journey: prompt/completion rows (text, default) or OpenLongCoT documents",
    )
    p.set_defaults(func=run)


def _add_int(p: argparse.ArgumentParser, flag: str, default: int, text: str) -> None:
    p.add_argument(
        flag,
        type=int_at_least(1),
        default=default,
        metavar="N",
        help=f"{text} (default: {default})",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``berry extract`` (see ``berry extract --help``).

    Returns:
        The exit status (0).
    """
    from openberry.jsonl import write_jsonl
    from openberry.training.extract import (
        DEFAULT_REFLECTION,
        ExtractConfig,
        counts_line,
        extract,
        load_problems,
    )

    config = ExtractConfig(
        seed=args.seed,
        max_per_problem=args.max_per_problem,
        max_pairs_per_problem=args.max_pairs_per_problem,
        pair_kinds=tuple(k.strip() for k in args.pair_kinds.split(",") if k.strip()),
        value_gap=args.value_gap,
        judge_frame=args.judge_frame,
        min_count=args.min_count,
        journey_k=args.journey_k,
        detour_steps=args.detour_steps,
        detour_rate=args.detour_rate,
        reflection=DEFAULT_REFLECTION if args.reflection is None else args.reflection,
        use_critiques=not args.no_critiques,
        format=args.format,
        mask_wrong_steps=args.mask_wrong_steps,
    )
    loaded = load_problems(args.sources)
    result = extract(args.kind, loaded.problems, config)
    write_jsonl(args.out, result.rows)
    print(f"{counts_line(result, loaded)} -> {args.out}")
    return 0

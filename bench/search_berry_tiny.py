"""Accuracy and cost of every search method on berry-tiny (the Search table in BENCHMARKS.md).

Runs each method at several budgets over the first N problems of the arithmetic test split,
all problems of a run searched together by the batched engine, and appends one JSON line per
(method, variant, budget) to ``--out`` (so an interrupted run keeps what it finished and
``--resume`` skips it). Accuracy is the chosen answer graded exactly against the reference
(integers); the reference is used only here, after search.

Usage::

    .venv/bin/python bench/search_berry_tiny.py --limit 200 --budgets 4,8,16 --out bench/results/search.jsonl
    .venv/bin/python bench/search_berry_tiny.py --table bench/results/search.jsonl   # markdown table
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from openberry.data.arithmetic import load_split
from openberry.models.hf import HFPolicy, tune_cpu_malloc
from openberry.search import make_search, run_search

_ORIGINAL_META = {
    "meta_policy": "transitions",
    "num_candidates": "2",
    "max_children": "4",
    "temperature": "1.0",
    "node_value": "rating",
    "answer_selection": "vote",
    "alpha": "1.0",
}
"""Meta-action MCTS as the original online trainer runs it (the defaults before the expansion
mode), with the value-weighted vote as its answer."""

RUNS: list[tuple[str, str, dict[str, str]]] = [
    ("self-consistency", "", {}),
    ("mctsr", "", {}),
    ("sr-mcts", "judge-ebc", {"preference": "judge", "answer_selection": "ebc"}),
    ("sr-mcts", "value-ebc", {"preference": "value", "answer_selection": "ebc"}),
    ("sr-mcts", "judge-vote", {"preference": "judge", "answer_selection": "vote"}),
    ("sr-mcts", "value-vote", {"preference": "value", "answer_selection": "vote"}),
    ("best-of-n", "value", {"scorer": "value"}),
    ("best-of-n", "pprm", {"scorer": "pprm"}),
    ("beam", "value", {}),
    ("step-mcts", "", {}),
    ("meta-mcts", "default", {}),
    ("meta-mcts", "model", {**_ORIGINAL_META, "meta_policy": "model"}),
    ("meta-mcts", "transitions", _ORIGINAL_META),
]


def run_one(policy, examples, method, variant, overrides, budget, seed):
    search = make_search(method, rollouts=budget, overrides=overrides)
    start = time.perf_counter()
    results = run_search(search, [e.problem for e in examples], policy, seed=seed)
    wall = time.perf_counter() - start
    n = len(examples)
    correct = sum(r.answer == e.answer for r, e in zip(results, examples, strict=True))
    return {
        "method": method,
        "variant": variant,
        "budget": budget,
        "problems": n,
        "accuracy": correct / n,
        "generated_tokens": sum(r.stats.generated_tokens for r in results) / n,
        "prompt_tokens": sum(r.stats.prompt_tokens for r in results) / n,
        "scored_tokens": sum(r.stats.scored_tokens for r in results) / n,
        "calls": sum(r.stats.calls for r in results) / n,
        "nodes": sum(len(r.tree) for r in results) / n,
        "wall_s": round(wall, 1),
        "seed": seed,
    }


def table(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out = [
        "| method | variant | rollouts | accuracy | gen. tokens / problem | calls / problem | wall (s) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r['method']} | {r['variant'] or '-'} | {r['budget']} | {100 * r['accuracy']:.1f} % "
            f"| {r['generated_tokens']:.0f} | {r['calls']:.1f} | {r['wall_s']:.0f} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="berry-tiny")
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--budgets", default="4,8,16")
    ap.add_argument("--methods", default="", help="comma-separated method[:variant] filter")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench/results/search.jsonl"))
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--table", type=Path, help="print the markdown table of a results file")
    args = ap.parse_args()
    if args.table:
        print(table(args.table))
        return
    tune_cpu_malloc()  # as every berry command does on a CPU
    policy = HFPolicy.from_pretrained(args.model)
    examples = load_split("test", limit=args.limit)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if args.resume and args.out.exists():
        for line in args.out.read_text().splitlines():
            r = json.loads(line)
            done.add((r["method"], r["variant"], r["budget"]))
    wanted = set(filter(None, args.methods.split(",")))
    todo = [("greedy", "", {}, 1)] + [
        (m, v, o, int(b)) for m, v, o in RUNS for b in args.budgets.split(",")
    ]
    for method, variant, overrides, budget in todo:
        name = f"{method}:{variant}" if variant else method
        if wanted and name not in wanted and method not in wanted:
            continue
        if (method, variant, budget) in done:
            continue
        row = run_one(policy, examples, method, variant, overrides, budget, args.seed)
        print(json.dumps(row), flush=True)
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

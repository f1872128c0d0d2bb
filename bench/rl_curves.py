"""Greedy accuracy against training wall time for every arm of the RL comparison: one plot.

Reads the ``metrics.jsonl`` of `berry train rl` runs (its ``eval_*`` rows: greedy accuracy on the
evaluation split; ``elapsed_s`` is training time, evaluations excluded) and the JSONL rows that
``bench/trl_grpo.py`` appends (``wall_s`` likewise), groups runs into arms by a label, and draws
each arm's mean over its seeds with the range as a band. Prints the table of the plotted points.

Usage::

    python bench/rl_curves.py --arm "openberry grpo=runs/corpus-grpo-s*" \\
        --arm "openberry expert-iteration=runs/corpus-ei-s*" \\
        --trl "TRL GRPO=runs/trl-corpus.jsonl" --key eval_default \\
        --out docs/images/rl_corpus.png
"""

from __future__ import annotations

import argparse
import glob
import json
from collections import defaultdict
from pathlib import Path


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def berry_curve(run: Path, key: str) -> list[tuple[float, float]]:
    """(training seconds, accuracy) of one `berry train rl` run's evaluations."""
    return [(r["elapsed_s"], r[key]) for r in _rows(run / "metrics.jsonl") if key in r]


def trl_curves(path: Path, operands: str) -> dict[int, list[tuple[float, float]]]:
    """seed -> (training seconds, accuracy) of the TRL rows for one operand setting."""
    out: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for r in _rows(path):
        if r.get("operands") == operands and "accuracy" in r:
            out[r["seed"]].append((r["wall_s"], r["accuracy"]))
    return out


def _mean_curve(curves: list[list[tuple[float, float]]]) -> list[tuple[float, float, float, float]]:
    """Point k of every curve averaged: (time, mean, min, max) over the curves that have it."""
    n = max(len(c) for c in curves)
    points = []
    for k in range(n):
        at = [c[k] for c in curves if len(c) > k]
        accs = [a for _, a in at]
        points.append((sum(t for t, _ in at) / len(at), sum(accs) / len(at), min(accs), max(accs)))
    return points


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arm", action="append", default=[], help="LABEL=GLOB of run directories")
    ap.add_argument("--trl", action="append", default=[], help="LABEL=FILE of trl_grpo.py rows")
    ap.add_argument("--key", default="eval_default", help="metrics key of berry runs")
    ap.add_argument("--operands", default="3-4", help="operand setting of the TRL rows")
    ap.add_argument("--title", default="greedy accuracy on the test split")
    ap.add_argument("--out", required=True, help="PNG to write")
    args = ap.parse_args()
    arms: dict[str, list[list[tuple[float, float]]]] = {}
    for spec in args.arm:
        label, pattern = spec.split("=", 1)
        runs = [Path(p) for p in sorted(glob.glob(pattern)) if Path(p).is_dir()]
        arms[label] = [berry_curve(p, args.key) for p in runs]
    for spec in args.trl:
        label, path = spec.split("=", 1)
        arms[label] = list(trl_curves(Path(path), args.operands).values())
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    print("| arm | seeds | training s | accuracy (mean, min-max) |\n|---|---:|---:|---|")
    for label, curves in arms.items():
        points = _mean_curve([c for c in curves if c])
        t = [p[0] for p in points]
        ax.plot(t, [p[1] for p in points], marker="o", label=f"{label} ({len(curves)} seeds)")
        ax.fill_between(t, [p[2] for p in points], [p[3] for p in points], alpha=0.2)
        for p in points:
            print(
                f"| {label} | {len(curves)} | {p[0]:.0f} | {100 * p[1]:.1f} % ({100 * p[2]:.1f}-{100 * p[3]:.1f}) |"
            )
    ax.set_xlabel("training wall time (s), evaluation excluded")
    ax.set_ylabel("greedy accuracy")
    ax.set_title(args.title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)


if __name__ == "__main__":
    main()

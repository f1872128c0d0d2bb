"""``berry collect`` killed with SIGKILL at several points, resumed each time: the same trees as one
uninterrupted collection at the same seed; and its speed beside ``berry eval`` on the same method.

Runs, as subprocesses of the ``berry`` CLI (each loads the model itself):

1. ``berry eval`` over the problems (no report), timed;
2. ``berry collect`` over the same problems, uninterrupted, timed;
3. ``berry collect`` into another directory, killed with SIGKILL as soon as its record file holds
   1, 2, ... ``--kills`` more records than at the last kill, and resumed after each kill until it
   finishes.

Prints one JSON line: the kill points (records on disk when killed), whether the trees of 2 and 3
are equal (tree statistics, which hold wall times, left out), and problems per minute of 1 and 2::

    python bench/collect_resume.py --method step-mcts --rollouts 8 --limit 48 --kills 5
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from openberry.tree import Tree


def _trees(run_dir: Path) -> dict[str, dict]:
    found = {}
    for p in sorted((run_dir / "trees").glob("*.json")):
        d = Tree.load(p).to_dict()
        d["info"] = {k: v for k, v in d["info"].items() if k != "stats"}
        found[p.name] = d
    return found


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.is_file() else 0


def _kill_at(cmd: list[str], records: Path, at: int) -> int | None:
    """Start ``cmd``; SIGKILL it once ``records`` holds ``at`` lines. Returns the lines on disk
    when killed, or None when the run finished first."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None:
        if _lines(records) >= at:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return _lines(records)
        time.sleep(0.005)
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--method", default="step-mcts")
    ap.add_argument("--rollouts", type=int, default=8)
    ap.add_argument("--limit", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--kills", type=int, default=5)
    args = ap.parse_args()
    base = [sys.executable, "-m", "openberry.cli.main", "-q"]
    what = ["--dataset", "arithmetic", "--limit", str(args.limit), "--method", args.method]
    what += ["--rollouts", str(args.rollouts), "--batch-size", str(args.batch_size)]
    run = f"{args.method}@{args.rollouts}"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        ev = [*base, "eval", *what, "--split", "train", "--no-report", "--out", str(out / "eval")]
        subprocess.run(ev, check=True, capture_output=True)
        t1 = time.perf_counter()
        subprocess.run([*base, "collect", *what, "--out", str(out / "full")], check=True)
        t2 = time.perf_counter()
        cmd = [*base, "collect", *what, "--out", str(out / "killed")]
        records, kills = out / "killed" / run / "records.jsonl", []
        for _ in range(args.kills):
            got = _kill_at(cmd + (["--resume"] if kills else []), records, _lines(records) + 1)
            if got is None:
                break
            kills.append(got)
        subprocess.run([*cmd, "--resume"], check=True, capture_output=True)
        same = _trees(out / "killed" / run) == _trees(out / "full" / run)
        print(
            json.dumps(
                {
                    "run": run,
                    "problems": args.limit,
                    "kills_at_records": kills,
                    "same_trees_as_uninterrupted": same,
                    "eval_problems_per_min": round(args.limit / (t1 - t0) * 60, 1),
                    "collect_problems_per_min": round(args.limit / (t2 - t1) * 60, 1),
                }
            )
        )


if __name__ == "__main__":
    main()

"""Wall time of batched sampled searches on berry-tiny: one side of an A/B between two checkouts.

Loads the model once, then times ``--repeats`` batched searches of the same problems per method
(each from an empty prefix store) and prints one JSON line: per method the median, every run and
the generated tokens (equal on both sides when the searches are the same) and tokens per second
at the median. ``--alone`` searches the problems one at a time, as ``berry solve`` and
``berry eval --batch-size 1`` do. Run it alternately from
two checkouts, each with its own source first on the path, for example the code before a change
in a git worktree::

    git worktree add /tmp/before REV
    ROOT=$PWD
    for round in 1 2 3 4; do
      for dir in /tmp/before $ROOT; do
        (cd $dir && PYTHONPATH=$dir/src $ROOT/.venv/bin/python $ROOT/bench/search_timing.py)
      done
    done

It uses only APIs that older checkouts have too (`HFPolicy`, `make_search`, `run_search`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from _search_setup import settings

from openberry.data.arithmetic import load_split
from openberry.models.hf import HFPolicy, tune_cpu_malloc
from openberry.search import make_search, run_search


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--methods",
        default="meta-mcts,mctsr,sr-mcts",
        help="comma-separated; METHOD+KEY=VALUE+... sets config fields, e.g. mctsr+in_flight=4",
    )
    ap.add_argument("--problems", type=int, default=64)
    ap.add_argument("--rollouts", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--alone",
        action="store_true",
        help="search the problems one at a time (as `berry solve` and `--batch-size 1` do)",
    )
    args = ap.parse_args()
    tune_cpu_malloc()
    torch.set_num_threads(args.threads)
    policy = HFPolicy.from_pretrained("berry-tiny", prefix_cache_mb=1024)
    problems = [e.problem for e in load_split("test", limit=args.problems)]
    out = {}
    for entry in args.methods.split(","):
        method, *pairs = entry.split("+")
        over = {"meta_policy": "model"} if method == "meta-mcts" else {}
        over.update(settings(pairs))
        search = make_search(method, rollouts=args.rollouts, overrides=over)
        runs, tokens = [], 0
        for _ in range(args.repeats):
            policy.reset_prefix_cache()
            start = time.perf_counter()
            if args.alone:
                results = [run_search(search, [p], policy, seed=0)[0] for p in problems]
            else:
                results = run_search(search, problems, policy, seed=0)
            runs.append(time.perf_counter() - start)
            tokens = sum(r.tree.info["stats"]["generated_tokens"] for r in results)
        out[entry] = {
            "median_s": round(statistics.median(runs), 3),
            "runs_s": [round(x, 2) for x in runs],
            "generated_tokens": tokens,
            "tokens_per_s": round(tokens / statistics.median(runs), 1),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()

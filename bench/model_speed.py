"""Load time and greedy decode speed of one model through `ModelSpec` (any `--model` berry takes,
GGUF files and named models included): tokens/s at batch 1 and batch 16.

Usage::

    .venv/bin/python bench/model_speed.py --model smollm2-135m-instruct --chat-template --threads 1

Run it on an otherwise idle machine: with two torch threads on a core another process holds,
every operation waits for the descheduled thread and the figures swing tenfold.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from openberry.models.base import SamplingParams
from openberry.models.spec import ModelSpec


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--chat-template", action="store_true")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    policy = ModelSpec(args.model, chat_template=args.chat_template, prefix_cache_mb=0).build()
    report: dict = {"model": args.model, "threads": args.threads, "load_s": 0.0}
    report["load_s"] = round(time.perf_counter() - t0, 1)
    questions = [f"Write a long story about the number {a}." for a in range(3, 19)]
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=0)
    policy.generate(questions[:2], SamplingParams(max_new_tokens=4, temperature=0))  # warm-up
    for batch in (1, 16):
        rates = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            out = policy.generate(questions[:batch], params)
            tokens = sum(row[0].num_tokens for row in out)
            rates.append(tokens / (time.perf_counter() - start))
        report[f"batch_{batch}_tokens_per_s"] = round(statistics.median(rates), 1)
        report[f"batch_{batch}_runs"] = [round(r, 1) for r in rates]
    print(json.dumps(report))


if __name__ == "__main__":
    main()

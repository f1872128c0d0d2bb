"""Speed of the batched search engine on berry-tiny (the speed targets in BENCHMARKS.md).

1. **Batching**: 64 problems searched together against the same 64 searched one at a time, at
   temperature 0; the trees must be identical (checked here) and the batch faster (target: at
   least 5x). Wall times on a shared CPU swing by a third between runs, so every batched and
   plain measurement is repeated (``--repeats``) and the median reported with all runs.
2. **Throughput**: generated tokens per second during a batched search (every model call
   included: generation, rewards, critiques, judges, values) against plain batched generation on
   the same model: one ``generate`` call of the same 64 solve prompts at temperature 1, with 8
   samples each (512 sequences, shared prefixes) and with 1 sample each (64 sequences, the batch
   width of one search round); target: at least 60 %. Each plain run starts from an empty prefix
   store, as every search does.

Usage::

    .venv/bin/python bench/search_speed.py --methods mctsr,sr-mcts --problems 64 --threads 2

Run it on an otherwise idle machine: wall-clock figures are only as good as the CPU's quiet.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time

import torch
from _search_setup import add_search_args, bench_problems, bench_search, settings

from openberry.formats.prompts import solve_prompt
from openberry.models import SamplingParams
from openberry.models.hf import DEFAULT_PREFIX_CACHE_MB, HFPolicy, tune_cpu_malloc
from openberry.search import run_search
from openberry.search.engine import problem_rng
from openberry.serve.scheduler import Scheduler


def same_tree(a, b, tol: float = 1e-4) -> bool:
    """Structure, texts, answers, visits and the chosen path exactly; values and priors within
    `tol` (batched and single forward passes differ in the last float bits, and values are
    rounded to 4 decimals, so a value next to a rounding boundary may land 1e-4 apart)."""
    if a.chosen != b.chosen or len(a.nodes) != len(b.nodes):
        return False

    def close(x, y) -> bool:
        return (x is None) == (y is None) and (x is None or abs(x - y) <= tol + 1e-9)

    return all(
        (m.parent, m.text, m.meta_action, m.answer, m.visits)
        == (n.parent, n.text, n.meta_action, n.answer, n.visits)
        and close(m.value, n.value)
        and close(m.prior, n.prior)
        for m, n in zip(a.nodes, b.nodes, strict=True)
    )


def scheduled(search, problems, policy) -> list:
    """Each problem's search as a job of `berry serve`'s scheduler: [(tree, stats)]."""
    scheduler = Scheduler({"policy": policy}, max_active=len(problems), max_queue=len(problems))
    try:
        jobs = [scheduler.submit(search(p, problem_rng(0, p))) for p in problems]
        return [job.future.result() for job in jobs]
    finally:
        scheduler.close()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_search_args(ap)
    ap.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs of each batched and plain measurement; the median is reported (the "
        "one-at-a-time run, 64 searches in a row, runs once)",
    )
    ap.add_argument(
        "--plain-repeats",
        type=int,
        default=9,
        help="runs of each plain generation (a fraction of a second each, so the most exposed "
        "to noise); the median is reported",
    )
    ap.add_argument(
        "--prefix-cache-mb",
        type=float,
        default=DEFAULT_PREFIX_CACHE_MB,
        help="HFPolicy prefix store (0: off)",
    )
    ap.add_argument(
        "--no-tune-malloc",
        action="store_true",
        help="leave glibc's allocator as it is (berry commands call tune_cpu_malloc)",
    )
    ap.add_argument(
        "--no-cpu-decode-attention",
        action="store_true",
        help="keep transformers' SDPA for decode steps on a CPU (HFPolicy's default computes "
        "them with openberry.models.cpu_attention)",
    )
    ap.add_argument(
        "--scheduler",
        action="store_true",
        help="also run each sampled search as jobs of berry serve's scheduler (every backend "
        "call as soon as it is ready, no round barrier) and report its tokens/s",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tuned = False if args.no_tune_malloc else tune_cpu_malloc()
    policy = HFPolicy.from_pretrained(
        args.model,
        prefix_cache_mb=args.prefix_cache_mb,
        cpu_decode_attention=not args.no_cpu_decode_attention,
    )
    problems = bench_problems(args.problems)
    report: dict = {
        "problems": len(problems),
        "rollouts": args.rollouts,
        "settings": settings(args.settings),
        "threads": args.threads,
        "prefix_cache_mb": args.prefix_cache_mb,
        "malloc_tuned": tuned,
        "attention": policy.model.config._attn_implementation,
    }
    print(json.dumps(report), flush=True)

    # Plain batched generation: the reference throughput.
    policy.generate(
        [solve_prompt(p.question) for p in problems[:8]], SamplingParams(max_new_tokens=8)
    )

    def timed(fn, repeats=None):
        """(result of the last run, median seconds, all seconds) over `repeats` runs (default
        `args.repeats`); the prefix store is emptied before each run, as `run_search` does."""
        times, out = [], None
        for _ in range(repeats or args.repeats):
            policy.reset_prefix_cache()
            start = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - start)
        return out, statistics.median(times), [round(t, 2) for t in times]

    def plain(n: int) -> float:
        """Generated tokens per second of one plain `generate` call, `n` samples per prompt
        (median over the repeats)."""
        out, seconds, runs = timed(
            lambda: policy.generate(
                [solve_prompt(p.question) for p in problems],
                SamplingParams(n=n, max_new_tokens=256, temperature=1.0, seed=0),
            ),
            args.plain_repeats,
        )
        tokens = sum(g.num_tokens for row in out for g in row)
        report[f"plain_n{n}"] = {
            "tokens": tokens,
            "seconds": round(seconds, 2),
            "runs_s": runs,
            "tokens_per_s": round(tokens / seconds),
        }
        print(json.dumps({f"plain_n{n}": report[f"plain_n{n}"]}), flush=True)
        return tokens / seconds

    plain_rate = plain(8)
    # The same batch width as one search round: one sample per problem.
    one_rate = plain(1)

    for method in args.methods.split(","):
        search = bench_search(
            method, args.rollouts, **{**settings(args.settings), "temperature": "0"}
        )
        together, batch_s, batch_runs = timed(
            functools.partial(run_search, search, problems, policy, seed=0)
        )
        start = time.perf_counter()
        alone = [run_search(search, [p], policy, seed=0)[0] for p in problems]
        single_s = time.perf_counter() - start
        same = sum(same_tree(a.tree, b.tree) for a, b in zip(together, alone, strict=True))
        # Throughput of a sampled search (the default temperature), batched.
        sampled = bench_search(method, args.rollouts, **settings(args.settings))
        results, search_s, search_runs = timed(
            functools.partial(run_search, sampled, problems, policy, seed=0)
        )
        tokens = sum(r.stats.generated_tokens for r in results)
        cached = sum(getattr(r.stats, "cached_prompts", 0) for r in results)  # older code: none
        if args.scheduler:
            # The same sampled search as jobs of the serving scheduler: no round barrier.
            jobs_out, sched_s, sched_runs = timed(lambda s=sampled: scheduled(s, problems, policy))
            sched_tokens = sum(stats.generated_tokens for _tree, stats in jobs_out)
            report[f"{method}_scheduler"] = {
                "runs_s": sched_runs,
                "tokens_per_s": round(sched_tokens / sched_s),
                "share_of_plain_n1": round((sched_tokens / sched_s) / one_rate, 3),
            }
            print(json.dumps({f"{method}_scheduler": report[f"{method}_scheduler"]}), flush=True)
        row = {
            "method": method,
            "batched_s": round(batch_s, 2),
            "batched_runs_s": batch_runs,
            "one_at_a_time_s": round(single_s, 2),
            "speedup": round(single_s / batch_s, 2),
            "identical_trees": f"{same}/{len(problems)}",
            "sampled_runs_s": search_runs,
            "search_tokens_per_s": round(tokens / search_s),
            "sampled_generated_tokens": tokens,
            "sampled_scored_tokens": sum(r.stats.scored_tokens for r in results),
            "sampled_cached_prompts": cached,
            "share_of_plain_n8": round((tokens / search_s) / plain_rate, 3),
            "share_of_plain_n1": round((tokens / search_s) / one_rate, 3),
        }
        report[method] = row
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

"""Where a batched search spends its time on berry-tiny (the breakdown in BENCHMARKS.md).

Runs one sampled search per method (64 problems of the arithmetic test split by default) after a
warm-up run, with `HFPolicy` wrapped to time its parts:

- ``decode_forward_s``: forward passes of decode steps (one new token per row), and
  ``tail_steps`` / ``tail_forward_s``: those run with at most an eighth of the call's rows left;
- ``policy_prefill_s``: reading the prompts of `generate` calls (store look-ups, copying stored
  keys and values into the batch, the forward passes, pre-passes for shared prefixes and long
  rests, adding the prompts to the store), and ``policy_prefill_padded_tokens``: the positions
  those passes computed, padding included;
- ``store_write_s``: adding generated tokens to the store;
- ``decode_loop_s``: the rest of `generate` (sampling, stop checks, dropping finished rows);
- ``next_token_s``: `next_token_probs` calls (values, judges), whole;
- ``store_mb``: the prefix store's size after the search;
- ``decode_attention_s`` / ``prefill_attention_s``: attention of decode steps (one query per row)
  and of every other forward pass (policy prompts, values, judges), when the model runs
  `openberry.models.cpu_attention` (HFPolicy's default on a CPU; absent otherwise).

The wrappers cost a little time themselves, so the parts sum to slightly more than a plain run.

Then the search's own `generate` calls are replayed alone, in order, with the same prompts and
settings and no other model call in between, on an emptied prefix store (``replay_s``,
``replay_tokens_per_s``, against ``search_tokens_per_s`` of the uninstrumented warm-up search):
what generating the search's tokens costs without the search around it, at the search's own
context lengths. Each call keeps the seed the engine gave it, so the replay writes nearly the
same tokens (``replay_tokens``; a prefix store filled differently can flip a sample by float
rounding).

Usage::

    .venv/bin/python bench/search_profile.py --methods sr-mcts,meta-mcts
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch
from _search_setup import add_search_args, bench_problems, bench_search, settings

from openberry.models.hf import HFPolicy, tune_cpu_malloc
from openberry.models.hf.decode import Decoder
from openberry.models.hf.prefix import PrefixCache
from openberry.models.hf.runtime import HFRuntime
from openberry.search import run_search

OWNERS: dict[str, type] = {
    "_generate_rows": Decoder,
    "forward": HFRuntime,
    "prefill": PrefixCache,
    "store_decoded": PrefixCache,
    "generate": HFPolicy,
    "next_token_probs": HFPolicy,
}
"""The class of each method `instrument` wraps (`HFPolicy` is composed of the others)."""


def instrument(policy: HFPolicy) -> tuple[dict[str, float], Callable[[], None]]:
    """Wrap the methods of `OWNERS` to add their times to the returned dict; the function
    returned with it puts back the attention wrapper (the class methods are put back by the
    caller)."""
    times: dict[str, float] = defaultdict(float)
    state: dict[str, Any] = {"call": None, "rows": 0, "prefill": 0}

    def timed(name: str, key: str):
        real = getattr(OWNERS[name], name)

        def wrapper(self, *args, **kwargs):
            start = time.perf_counter()
            out = real(self, *args, **kwargs)
            times[key] += time.perf_counter() - start
            return out

        setattr(OWNERS[name], name, wrapper)

    def call_kind(name: str):
        real = getattr(OWNERS[name], name)

        def wrapper(self, *args, **kwargs):
            state["call"] = name
            try:
                return real(self, *args, **kwargs)
            finally:
                state["call"] = None

        setattr(OWNERS[name], name, wrapper)

    real_rows = Decoder._generate_rows

    def generate_rows(self, prompt_rows, params, *args, **kwargs):
        state["rows"] = len(prompt_rows) * params.n
        return real_rows(self, prompt_rows, params, *args, **kwargs)

    Decoder._generate_rows = generate_rows
    real_forward = HFRuntime.forward

    def forward(self, ids, mask, pos, cache=None, keep=0):
        start = time.perf_counter()
        out = real_forward(self, ids, mask, pos, cache, keep)
        spent = time.perf_counter() - start
        if state["call"] == "generate" and not state["prefill"] and ids.shape[1] == 1:
            times["decode_forward_s"] += spent
            times["decode_steps"] += 1
            if ids.shape[0] <= state["rows"] / 8:
                times["tail_steps"] += 1
                times["tail_forward_s"] += spent
        elif state["call"] == "generate":
            times["policy_prefill_padded_tokens"] += ids.shape[0] * ids.shape[1]
        return out

    HFRuntime.forward = forward
    real_prefill = PrefixCache.prefill

    def prefill(self, *args, **kwargs):
        state["prefill"] += 1
        start = time.perf_counter()
        try:
            return real_prefill(self, *args, **kwargs)
        finally:
            state["prefill"] -= 1
            if state["call"] == "generate":
                times["policy_prefill_s"] += time.perf_counter() - start

    PrefixCache.prefill = prefill

    def restore() -> None:
        """Put back what was wrapped outside `HFPolicy` (the attention function)."""

    try:
        from openberry.models import cpu_attention
    except ImportError:  # older code
        cpu_attention = None
    if (
        cpu_attention is not None
        and policy.model.config._attn_implementation == cpu_attention.IMPLEMENTATION
    ):
        from transformers import AttentionInterface

        real_attention = cpu_attention.decode_attention

        def attention(module, query, *args, **kwargs):
            start = time.perf_counter()
            out = real_attention(module, query, *args, **kwargs)
            key = "decode_attention_s" if query.shape[2] == 1 else "prefill_attention_s"
            times[key] += time.perf_counter() - start
            return out

        AttentionInterface.register(cpu_attention.IMPLEMENTATION, attention)

        def restore() -> None:
            AttentionInterface.register(cpu_attention.IMPLEMENTATION, real_attention)

    timed("store_decoded", "store_write_s")
    timed("generate", "generate_s")
    timed("next_token_probs", "next_token_s")
    call_kind("generate")
    call_kind("next_token_probs")
    return times, restore


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_search_args(ap)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tune_cpu_malloc()
    policy = HFPolicy.from_pretrained(args.model)
    problems = bench_problems(args.problems)
    for method in args.methods.split(","):
        search = bench_search(method, args.rollouts, **settings(args.settings))
        # Warm-up, uninstrumented, recording the generate calls for the replay.
        calls: list = []
        real_generate = HFPolicy.generate

        def recording(self, prompts, params, real=real_generate, calls=calls):
            calls.append((list(prompts), params))
            return real(self, prompts, params)

        HFPolicy.generate = recording
        start = time.perf_counter()
        warm = run_search(search, problems, policy, seed=0)
        search_s = time.perf_counter() - start
        HFPolicy.generate = real_generate
        saved = {name: getattr(owner, name) for name, owner in OWNERS.items()}
        times, restore = instrument(policy)
        start = time.perf_counter()
        results = run_search(search, problems, policy, seed=0)
        wall = time.perf_counter() - start
        for name, fn in saved.items():
            setattr(OWNERS[name], name, fn)
        restore()
        gen = times["generate_s"]
        row = {
            "method": method,
            "wall_s": round(wall, 3),
            "generated_tokens": sum(r.stats.generated_tokens for r in results),
            "decode_steps": int(times["decode_steps"]),
            "decode_forward_s": round(times["decode_forward_s"], 3),
            "tail_steps": int(times["tail_steps"]),
            "tail_forward_s": round(times["tail_forward_s"], 3),
            "policy_prefill_s": round(times["policy_prefill_s"], 3),
            "policy_prefill_padded_tokens": int(times["policy_prefill_padded_tokens"]),
            "store_write_s": round(times["store_write_s"], 3),
            "decode_loop_s": round(
                gen
                - times["decode_forward_s"]
                - times["policy_prefill_s"]
                - times["store_write_s"],
                3,
            ),
            "next_token_s": round(times["next_token_s"], 3),
            "store_mb": round(policy.prefix_store.nbytes / 2**20, 1),
        }
        for key in ("decode_attention_s", "prefill_attention_s"):
            if key in times:
                row[key] = round(times[key], 3)
        policy.reset_prefix_cache()
        start = time.perf_counter()
        replayed = [policy.generate(prompts, params) for prompts, params in calls]
        replay_s = time.perf_counter() - start
        replay_tokens = sum(g.num_tokens for out in replayed for r in out for g in r)
        row["search_tokens_per_s"] = round(sum(r.stats.generated_tokens for r in warm) / search_s)
        row["replay_s"] = round(replay_s, 3)
        row["replay_tokens"] = replay_tokens
        row["replay_tokens_per_s"] = round(replay_tokens / replay_s)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

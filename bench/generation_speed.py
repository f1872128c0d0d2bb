"""Generation speed of `HFPolicy` (our batched decode loop) vs plain ``model.generate``.

Two measurements on a tiny random-init Llama built in-process (no downloads; the ~1M-parameter
shape of the project's first CPU measurements (BENCHMARKS.md): hidden 128, 4 layers, 4 heads, MLP 512, tied
embeddings, character-level tokenizer; ``--shape 7m`` builds an 8.4M model (near the 10M ceiling of a built-in model) instead:
hidden 256, 8 layers, 8 heads, MLP 1024), on CPU with ``torch.set_num_threads(2)`` by default:

1. **Batched decode.** New tokens per second at batch 1, 16 and 64, greedy and sampled
   (temperature 1, top-p 1, no top-k), the same prompts for both paths and a forced length: the
   tokenizer has no EOS token and the model's ``generation_config.eos_token_id`` is None, so both
   paths generate exactly ``--new-tokens`` tokens per row (checked). Our path also computes the
   per-token logprobs of the chosen tokens (part of the `Policy` contract); ``model.generate``
   does not.
2. **Prefix reuse.** 8 sibling prompts sharing a ``--prefix-len``-token prefix plus a short
   distinct suffix, 32 greedy new tokens each, with ``HFPolicy(share_prefixes=True)`` vs
   ``share_prefixes=False`` (each sibling recomputes the prefix); and ``n=8`` samples of one prompt
   vs 8 copies of the prompt. Also the prefill alone (``max_new_tokens=1``). Greedy outputs with
   and without sharing are compared (tokens equal, logprobs within 1e-4).

Each timing is the median of ``--repeats`` runs after one warm-up run; the paths being compared
are run alternately so that load from other processes hits both alike. Seeds are fixed.

Usage::

    .venv/bin/python bench/generation_speed.py            # full run (a few minutes on 2 cores)
    .venv/bin/python bench/generation_speed.py --quick    # smoke run (seconds)

Prints markdown tables.
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import time
from collections.abc import Callable
from typing import Any

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from openberry.models import SamplingParams
from openberry.models.hf import HFPolicy

CHARS = string.ascii_letters + string.digits + " +-*/=().,:\n"


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Character-level tokenizer over printable characters, with a pad token and no EOS."""
    vocab = {tok: i for i, tok in enumerate(["<pad>", "<unk>", *string.printable])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>")


SHAPES = {
    # name: (hidden, MLP, layers, heads)
    "1m": (128, 512, 4, 4),  # the feasibility study's ~1M-parameter model
    "7m": (256, 1024, 8, 8),  # 8.4M: near the ~10M ceiling of a built-in model
}


def build_model(vocab_size: int, seed: int = 0, shape: str = "1m") -> LlamaForCausalLM:
    """A random-init Llama of one of `SHAPES`, without EOS."""
    hidden, mlp, layers, heads = SHAPES[shape]
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=mlp,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        pad_token_id=0,
        bos_token_id=None,
        eos_token_id=None,
    )
    model = LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model


def random_text(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(CHARS) for _ in range(length))


def alternate(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median seconds of each function, run alternately (one warm-up each)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def plain_generate(model: Any, tokenizer: Any, prompts: list[str], new: int, sample: bool) -> int:
    """``model.generate`` on left-padded prompts; returns the number of new tokens."""
    tokenizer.padding_side = "left"
    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    kwargs: dict[str, Any] = {"do_sample": sample, "max_new_tokens": new, "pad_token_id": 0}
    if sample:
        kwargs.update(temperature=1.0, top_p=1.0, top_k=0)
    torch.manual_seed(0)
    with torch.inference_mode():
        out = model.generate(**enc, **kwargs)
    return int(out.shape[0] * (out.shape[1] - enc["input_ids"].shape[1]))


def ours_generate(policy: HFPolicy, prompts: list[str], new: int, sample: bool) -> int:
    params = SamplingParams(max_new_tokens=new, temperature=1.0 if sample else 0.0, seed=0)
    out = policy.generate(prompts, params)
    return sum(g.num_tokens for row in out for g in row)


def bench_decode(
    model: Any, tokenizer: Any, batches: list[int], new: int, repeats: int
) -> list[str]:
    # No prefix store: the same prompts are timed repeatedly, and model.generate has none.
    policy = HFPolicy(model, tokenizer, name="bench", prefix_cache_mb=0)
    rng = random.Random(0)
    lines = [
        "| batch | mode | plain `generate` tok/s | ours tok/s | ours / plain |",
        "|---|---|---|---|---|",
    ]
    for batch in batches:
        prompts = [random_text(rng, rng.randint(24, 40)) for _ in range(batch)]
        for sample in (False, True):
            n_plain = plain_generate(model, tokenizer, prompts, new, sample)
            n_ours = ours_generate(policy, prompts, new, sample)
            assert n_plain == n_ours == batch * new, (n_plain, n_ours, batch * new)
            t = alternate(
                {
                    "plain": lambda p=prompts, s=sample: plain_generate(
                        model, tokenizer, p, new, s
                    ),
                    "ours": lambda p=prompts, s=sample: ours_generate(policy, p, new, s),
                },
                repeats,
            )
            tp, to = batch * new / t["plain"], batch * new / t["ours"]
            mode = "sampled" if sample else "greedy"
            lines.append(f"| {batch} | {mode} | {tp:,.0f} | {to:,.0f} | {to / tp:.2f} |")
    return lines


def bench_prefix(model: Any, tokenizer: Any, prefix_len: int, new: int, repeats: int) -> list[str]:
    # Sharing within one call only: no prefix store, or repeated timings would re-use the prefix
    # of the previous repeat.
    shared = HFPolicy(model, tokenizer, name="bench", share_prefixes=True, prefix_cache_mb=0)
    plain = HFPolicy(model, tokenizer, name="bench", share_prefixes=False, prefix_cache_mb=0)
    rng = random.Random(1)
    prefix = random_text(rng, prefix_len)
    suffixes = ["<step>", " Step 2:", " So x =", " Next,", "<meta>", " Check:", " Thus", " Wait,"]
    siblings = [prefix + s for s in suffixes]
    greedy = SamplingParams(max_new_tokens=new, temperature=0)
    a, b = shared.generate(siblings, greedy), plain.generate(siblings, greedy)
    for ra, rb in zip(a, b, strict=True):
        assert ra[0].token_ids == rb[0].token_ids
        assert max(abs(x - y) for x, y in zip(ra[0].logprobs, rb[0].logprobs, strict=True)) < 1e-4
    one = SamplingParams(max_new_tokens=1, temperature=0)
    n8 = SamplingParams(n=8, max_new_tokens=new, seed=0)
    n1 = SamplingParams(max_new_tokens=new, seed=0)
    cases = {
        f"8 siblings, {new} new tokens: sharing on": lambda: shared.generate(siblings, greedy),
        f"8 siblings, {new} new tokens: sharing off": lambda: plain.generate(siblings, greedy),
        "8 siblings, prefill only (1 new token): sharing on": lambda: shared.generate(
            siblings, one
        ),
        "8 siblings, prefill only (1 new token): sharing off": lambda: plain.generate(
            siblings, one
        ),
        f"n=8 of one prompt, {new} new tokens (sampled)": lambda: plain.generate([prefix], n8),
        f"8 copies of the prompt, {new} new tokens, sharing on": lambda: shared.generate(
            [prefix] * 8, n1
        ),
        f"8 copies of the prompt, {new} new tokens, sharing off": lambda: plain.generate(
            [prefix] * 8, n1
        ),
    }
    t = alternate(cases, repeats)
    ptoks = len(shared.encode_prompt(siblings[0]))
    lines = [
        f"Prompts: {prefix_len}-token shared prefix + 5-8 token suffix ({ptoks} tokens for the "
        "first sibling); greedy outputs with and without sharing equal (checked).",
        "",
        "| case | median ms |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v * 1000:.0f} |" for k, v in t.items()]
    keys = list(t)
    lines += [
        "",
        f"Speed-up of sharing, 8 siblings with decode: {t[keys[1]] / t[keys[0]]:.2f}x; "
        f"prefill only: {t[keys[3]] / t[keys[2]]:.2f}x; "
        f"n=8 vs 8 copies without sharing: {t[keys[6]] / t[keys[4]]:.2f}x.",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small sizes, 1 repeat")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per case")
    parser.add_argument("--new-tokens", type=int, default=None, help="new tokens (decode bench)")
    parser.add_argument("--prefix-len", type=int, default=256, help="shared prefix tokens")
    parser.add_argument("--skip-decode", action="store_true", help="only the prefix bench")
    parser.add_argument("--skip-prefix", action="store_true", help="only the decode bench")
    parser.add_argument(
        "--shape", choices=sorted(SHAPES), default="1m", help="model shape (default 1m)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats = args.repeats or (1 if args.quick else 5)
    new = args.new_tokens or (16 if args.quick else 128)
    batches = [1, 4] if args.quick else [1, 16, 64]
    tokenizer = build_tokenizer()
    model = build_model(len(tokenizer), shape=args.shape)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"torch {torch.__version__}, {args.threads} threads, model {params / 1e6:.2f}M params, "
        f"{repeats} repeats (median)\n"
    )
    if not args.skip_decode:
        print(f"### Batched decode: {new} new tokens per row\n")
        print("\n".join(bench_decode(model, tokenizer, batches, new, repeats)) + "\n")
    if not args.skip_prefix:
        prefix_len = 64 if args.quick else args.prefix_len
        print("### Prefix reuse: 8 siblings\n")
        print("\n".join(bench_prefix(model, tokenizer, prefix_len, 32, repeats)))


if __name__ == "__main__":
    main()

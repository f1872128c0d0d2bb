"""`berry train`: training stages. ``berry train sft``: supervised fine-tuning / continued
pretraining (`openberry.training.sft`).

Only the standard library and the light `openberry.training.sft` module (whose heavy imports are
inside its functions) are imported at module level. The options of ``sft`` are the fields of
`SFTConfig`, built by `openberry.cli._config.add_field_options` (help text from each field's
docstring). Options left out take their value from ``--config FILE``, then from ``--recipe NAME``
when given, else from the `SFTConfig` defaults.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from openberry.cli._args import int_at_least
from openberry.cli._config import FieldOption, add_config_file_option, add_field_options
from openberry.training.sft import DTYPES, RECIPES, REQUIRED_FIELDS, SFTConfig, SFTError

__all__ = ["register"]

_SFT_EPILOG = """\
Data rows: {"text": ...} is a document (loss on all tokens, packed into --max-length blocks);
{"prompt": ..., "completion": ...} is a pair (loss on the completion and its EOS only). Files may
mix both. The run directory gets checkpoint-N/ dirs, metrics.jsonl (one JSON line per log),
final/ (model or LoRA adapter + tokenizer), sft_config.json and result.json.

examples:
  # continued pretraining on OpenLongCoT trees (text rows)
  berry data corpus arithmetic --kind openlongcot --limit 20000 --out longcot.jsonl
  berry train sft --model ./runs/base/final --data longcot.jsonl --out runs/cpt \\
      --max-steps 2000 --max-length 512 --batch-size 16 --threads 2

  # LoRA on prompt/completion rows
  berry data corpus arithmetic --kind solutions --limit 5000 --out solutions.jsonl
  berry train sft --model Qwen/Qwen2.5-0.5B --data solutions.jsonl --lora --lora-r 8 \\
      --lr 1e-4 --out runs/lora --eval-steps 100 --save-steps 100

  # from scratch: a JSON model config and a tokenizer trained on the data, e.g. llama-2m.json =
  #   {"model_type": "llama", "hidden_size": 128, "intermediate_size": 384,
  #    "num_hidden_layers": 4, "num_attention_heads": 4, "max_position_embeddings": 512}
  berry train sft --from-scratch llama-2m.json --data longcot.jsonl --vocab-size 512 \\
      --out runs/scratch --max-steps 3000 --scheduler cosine_with_min_lr

  # continue a stopped run exactly where its last checkpoint left off
  berry train sft --model ./runs/base/final --data longcot.jsonl --out runs/cpt --resume
"""

_SFT_OPTIONS: tuple[FieldOption, ...] = (
    ("--model", "model", {"metavar": "PATH_OR_ID", "note": "required unless --from-scratch"}),
    ("--data", "data", {"metavar": "FILE_OR_ID"}),
    ("--eval-data", "eval_data", {"metavar": "FILE_OR_ID"}),
    ("--out", "output_dir", {"metavar": "DIR"}),
    ("--text-field", "text_field", {"metavar": "F"}),
    ("--prompt-field", "prompt_field", {"metavar": "F"}),
    ("--completion-field", "completion_field", {"metavar": "F"}),
    ("--eval-fraction", "eval_fraction", {"metavar": "P"}),
    ("--max-length", "max_length", {"type": int_at_least(2), "metavar": "N"}),
    (
        "--no-packing",
        "packing",
        {
            "help": "do not pack documents: each is truncated to --max-length and padded per "
            "batch like a pair"
        },
    ),
    ("--lora", "lora", {}),
    ("--lora-r", "lora_r", {"type": int_at_least(1), "metavar": "R"}),
    ("--lora-alpha", "lora_alpha", {"type": int_at_least(1), "metavar": "A"}),
    ("--lora-dropout", "lora_dropout", {"metavar": "P"}),
    ("--lora-target-modules", "lora_target_modules", {"metavar": "NAME"}),
    ("--from-scratch", "from_scratch", {"metavar": "CONFIG.json"}),
    ("--tokenizer", "tokenizer", {"metavar": "DIR"}),
    ("--vocab-size", "vocab_size", {"type": int_at_least(16), "metavar": "N"}),
    ("--max-steps", "max_steps", {"type": int_at_least(1), "metavar": "N"}),
    ("--lr", "learning_rate", {"metavar": "LR"}),
    ("--warmup-steps", "warmup_steps", {"type": int_at_least(0), "metavar": "N"}),
    ("--scheduler", "lr_scheduler", {"metavar": "NAME"}),
    ("--min-lr-rate", "min_lr_rate", {"metavar": "R"}),
    ("--weight-decay", "weight_decay", {"metavar": "W"}),
    ("--adam-beta2", "adam_beta2", {"metavar": "B"}),
    ("--max-grad-norm", "max_grad_norm", {"metavar": "N"}),
    ("--batch-size", "batch_size", {"type": int_at_least(1), "metavar": "N"}),
    ("--grad-accum", "grad_accum", {"type": int_at_least(1), "metavar": "N"}),
    ("--eval-steps", "eval_steps", {"type": int_at_least(1), "metavar": "N"}),
    ("--save-steps", "save_steps", {"type": int_at_least(1), "metavar": "N"}),
    ("--save-total-limit", "save_total_limit", {"type": int_at_least(1), "metavar": "N"}),
    ("--logging-steps", "logging_steps", {"type": int_at_least(1), "metavar": "N"}),
    ("--seed", "seed", {"metavar": "S"}),
    ("--threads", "threads", {"type": int_at_least(1), "metavar": "N"}),
    ("--tensorboard", "tensorboard", {}),
    ("--resume", "resume", {}),
    ("--dtype", "dtype", {"choices": DTYPES}),
    ("--save-dtype", "save_dtype", {"choices": DTYPES}),
    ("--no-eval-on-start", "eval_on_start", {"help": "skip the evaluation before the first step"}),
)
"""(flag, `SFTConfig` field, argparse settings): the option's type, ``nargs`` or flag action
follow the field's type hint and its help is the field's docstring unless given here."""


def register(subparsers: Any) -> None:
    """Add the ``train`` command and its ``sft`` subcommand to the ``berry`` parser.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """
    raw = argparse.RawDescriptionHelpFormatter
    parser = subparsers.add_parser(
        "train",
        help="train models (sft: supervised fine-tuning / continued pretraining)",
        description="Train models. Stages: sft (supervised fine-tuning, continued pretraining, "
        "training from scratch).",
        epilog="Run 'berry train STAGE --help' for a stage's options.",
        formatter_class=raw,
    )
    parser.set_defaults(func=lambda args: _no_subcommand(parser))
    sub = parser.add_subparsers(dest="train_command", metavar="STAGE")

    p_sft = sub.add_parser(
        "sft",
        help="supervised fine-tuning / continued pretraining of a causal LM",
        description="Fine-tune a causal LM (all weights or a LoRA adapter), continue its "
        "pretraining, or train one from scratch, on text and prompt/completion rows, with the "
        "transformers Trainer: checkpoints, exact --resume, eval loss and metrics.jsonl.",
        epilog=_SFT_EPILOG,
        formatter_class=raw,
    )
    p_sft.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        metavar="NAME",
        default=argparse.SUPPRESS,
        help="named recipe that supplies defaults for every option; explicit options override "
        f"it (registered: {', '.join(sorted(RECIPES)) or 'none yet'})",
    )
    add_field_options(p_sft, SFTConfig, _SFT_OPTIONS)
    add_config_file_option(p_sft)
    p_sft.set_defaults(func=_cmd_sft)


def _no_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _cmd_sft(args: argparse.Namespace) -> int:
    from openberry.training.sft import train_sft

    names = {name for _, name, _ in _SFT_OPTIONS}
    values = {k: v for k, v in vars(args).items() if k in names}
    if "model" not in values and values.get("from_scratch"):
        values["model"] = Path(values["from_scratch"]).stem  # a label only
    for name in ("data", "eval_data", "lora_target_modules"):
        if name in values:
            values[name] = tuple(values[name])
    recipe = getattr(args, "recipe", None)
    given = {**RECIPES.get(recipe or "", {}), **values}
    missing = [
        flag for flag, name, _ in _SFT_OPTIONS if name in REQUIRED_FIELDS and name not in given
    ]
    if missing:
        raise SFTError(f"missing {' and '.join(missing)}")
    config = SFTConfig.from_recipe(recipe, **values)
    result = train_sft(config)
    losses = [f"train loss {_fmt(result.train_loss)}", f"eval loss {_fmt(result.eval_loss)}"]
    if result.initial_eval_loss is not None:
        losses[-1] += f" (before: {_fmt(result.initial_eval_loss)})"
    print(
        f"trained to step {result.step} in {result.wall_seconds:.1f} s: {', '.join(losses)}, "
        f"{result.tokens_seen:,} tokens seen"
    )
    print(f"final {'adapter' if config.lora else 'model'}: {result.final_dir}")
    sys.stdout.flush()
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"

"""`berry train`: training stages. ``berry train sft``: supervised fine-tuning / continued
pretraining (`openberry.training.sft`); ``berry train pprm``: the pairwise judge
(`openberry.training.pprm`); ``berry train value``: the rating-token value
(`openberry.training.value`).

Only the standard library and the light training modules (whose heavy imports are inside their
functions) are imported at module level. The options of each stage are the fields of its config
(`SFTConfig`, `PPRMConfig`, `ValueConfig`), built by `openberry.cli._config.add_field_options`
(help text from each field's docstring). Options left out take their value from ``--config
FILE``, then (sft) from ``--recipe NAME`` when given, else from the config's defaults.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from openberry.cli._args import add_gguf_file_arg, int_at_least, join_gguf_file
from openberry.cli._config import FieldOption, add_config_file_option, add_field_options
from openberry.training.pprm import PPRMConfig
from openberry.training.rl import RL_RECIPES, RLConfig, RLError
from openberry.training.sft import DTYPES, RECIPES, REQUIRED_FIELDS, SFTConfig, SFTError
from openberry.training.value import ValueConfig

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

_HEAD_OPTIONS: tuple[FieldOption, ...] = (
    ("--data", "data", {"metavar": "FILE"}),
    ("--out", "output_dir", {"metavar": "DIR"}),
    ("--model", "model", {"metavar": "PATH_OR_ID"}),
    ("--eval-file", "eval_file", {"metavar": "FILE"}),
    ("--eval-fraction", "eval_fraction", {"metavar": "P"}),
    ("--max-length", "max_length", {"type": int_at_least(1), "metavar": "N"}),
    ("--lora", "lora", {}),
    ("--lora-r", "lora_r", {"type": int_at_least(1), "metavar": "R"}),
    ("--lora-alpha", "lora_alpha", {"type": int_at_least(1), "metavar": "A"}),
    ("--lora-dropout", "lora_dropout", {"metavar": "P"}),
    ("--lora-target-modules", "lora_target_modules", {"metavar": "NAME"}),
    (
        "--adapter-only",
        "merge_lora",
        {"help": "with --lora: save the adapter alone in final/ instead of merging it"},
    ),
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
"""Options shared by ``pprm`` and ``value`` (fields of `HeadConfig`)."""

_PPRM_OPTIONS: tuple[FieldOption, ...] = (
    *_HEAD_OPTIONS,
    ("--loss", "loss", {}),
    ("--beta", "beta", {"metavar": "B"}),
)
_VALUE_OPTIONS: tuple[FieldOption, ...] = (
    *_HEAD_OPTIONS,
    ("--value-field", "value_field", {"metavar": "F"}),
)

_HEAD_WRITES = """\
The run directory gets checkpoint-N/ dirs, metrics.jsonl (one JSON line per log: train loss,
and the held-out metrics eval_* before the first step, every --eval-steps and at the end),
final/ (a plain model directory: a LoRA adapter is merged unless --adapter-only),
{name}_config.json and result.json (initial_eval and final_eval: the held-out metrics before and
after). --resume continues from the last complete checkpoint (weights, optimizer, schedule and
data order){exact}."""

_PPRM_EPILOG = (
    """\
Rows (JSONL, both orders of each pair, as `berry extract` writes them): {"id": PROBLEM,
"pair": PAIR_ID, "prompt": judge_prompt(question, solution_a, solution_b), "label": 1 if A is
better else 0, ...}. Loss: classify (default) fits P(Yes)/(P(Yes)+P(No)) after the prompt to
the label (binary cross-entropy); dpo runs TRL's DPO on chosen/rejected = Yes/No with the
initial model as reference. Held out: --eval-file, else --eval-fraction of the problems.
Metrics: order_accuracy (each row alone) and pair_accuracy (both orders averaged).
"""
    + _HEAD_WRITES.format(
        name="pprm", exact=", exactly\nfor --loss classify (TRL draws the data order for dpo)"
    )
    + """

examples:
  berry train pprm --data pairs.jsonl --out runs/judge --max-steps 300 --threads 2
  berry solve "Compute 12 + 30." --method sr-mcts --judge runs/judge/final
  # a real judge on a GPU: LoRA on Gemma-2-2B-it, merged into final/
  berry train pprm --model google/gemma-2-2b-it --data pairs.jsonl --eval-file test-pairs.jsonl \\
      --lora --lr 1e-4 --batch-size 8 --grad-accum 4 --dtype bfloat16 --out runs/gemma-judge
  # measure any judge on held-out pairs (untrained vs trained)
  python bench/judge_accuracy.py --judge berry-tiny --pairs test-pairs.jsonl
"""
)

_VALUE_EPILOG = (
    """\
Rows (JSONL, as `berry extract --kind values` writes them): {"id": PROBLEM, "prompt":
VALUE_PROMPT ending at the rating slot (openberry.search.scorers.step_value_prompts), "value":
share of verified-correct solutions through the step, in [0, 1]}. Loss: binary cross-entropy of
p(<positive_rating>) renormalised over the two rating tokens against the soft target value.
Held out: --eval-file, else --eval-fraction of the problems. Metrics: mse (soft target), brier
and auc (target binarised at 0.5). The value head is the policy itself: check the policy's
accuracy after a fit (berry eval --model OUT/final).
"""
    + _HEAD_WRITES.format(name="value", exact=", exactly")
    + """

examples:
  berry train value --data values.jsonl --out runs/value --max-steps 300 --threads 2
  berry eval --dataset arithmetic --split validation --method step-mcts --model runs/value/final
"""
)


_RL_OPTIONS: tuple[FieldOption, ...] = (
    ("--out", "output_dir", {"metavar": "DIR", "note": "required"}),
    ("--model", "model", {"metavar": "PATH_OR_ID"}),
    ("--device", "device", {"metavar": "DEV"}),
    ("--dtype", "dtype", {"choices": DTYPES}),
    ("--algo", "algo", {}),
    ("--method", "method", {"metavar": "NAME"}),
    ("--rollouts", "rollouts", {"type": int_at_least(1), "metavar": "N"}),
    ("--set", "search_set", {"metavar": "KEY=VALUE"}),
    ("--dataset", "dataset", {"metavar": "NAME_OR_FILE"}),
    ("--split", "split", {"metavar": "SPLIT"}),
    ("--eval-split", "eval_split", {"metavar": "SPLIT"}),
    ("--levels", "levels", {"metavar": "K"}),
    ("--advance-at", "advance_at", {"metavar": "P"}),
    ("--review-share", "review_share", {"metavar": "P"}),
    ("--level-size", "level_size", {"type": int_at_least(1), "metavar": "N"}),
    ("--rounds", "rounds", {"type": int_at_least(1), "metavar": "N"}),
    ("--problems-per-round", "problems_per_round", {"type": int_at_least(1), "metavar": "N"}),
    ("--epochs", "epochs", {"metavar": "E"}),
    ("--minibatch-size", "minibatch_size", {"type": int_at_least(1), "metavar": "N"}),
    ("--lr", "lr", {"metavar": "LR"}),
    ("--warmup-steps", "warmup_steps", {"type": int_at_least(0), "metavar": "N"}),
    ("--clip-coef", "clip_coef", {"metavar": "EPS"}),
    ("--vf-coef", "vf_coef", {"metavar": "C"}),
    ("--kl-coef", "kl_coef", {"metavar": "C"}),
    ("--ent-coef", "ent_coef", {"metavar": "C"}),
    ("--max-grad-norm", "max_grad_norm", {"metavar": "N"}),
    ("--gamma", "gamma", {"metavar": "G"}),
    ("--gae-lambda", "gae_lambda", {"metavar": "L"}),
    ("--no-norm-adv", "norm_adv", {"help": "do not normalise advantages per minibatch"}),
    ("--replay-capacity", "replay_capacity", {"type": int_at_least(1), "metavar": "N"}),
    ("--replay-rounds", "replay_rounds", {"type": int_at_least(0), "metavar": "K"}),
    ("--alpha", "alpha", {"metavar": "A"}),
    ("--beta-start", "beta_start", {"metavar": "B"}),
    ("--beta-steps", "beta_steps", {"type": int_at_least(1), "metavar": "N"}),
    ("--lora-r", "lora_r", {"type": int_at_least(1), "metavar": "R"}),
    ("--lora-alpha", "lora_alpha", {"type": int_at_least(1), "metavar": "A"}),
    ("--lora-dropout", "lora_dropout", {"metavar": "P"}),
    ("--lora-target-modules", "lora_target_modules", {"metavar": "NAME"}),
    ("--max-length", "max_length", {"type": int_at_least(2), "metavar": "N"}),
    ("--eval-every", "eval_every", {"type": int_at_least(1), "metavar": "N"}),
    ("--eval-limit", "eval_limit", {"type": int_at_least(1), "metavar": "N"}),
    ("--eval-levels", "eval_levels", {"metavar": "K"}),
    ("--batch-size", "batch_size", {"type": int_at_least(1), "metavar": "N"}),
    ("--seed", "seed", {"metavar": "S"}),
    ("--workers", "workers", {"type": int_at_least(1), "metavar": "N"}),
    ("--ray-address", "ray_address", {"metavar": "ADDR"}),
    ("--threads", "threads", {"type": int_at_least(1), "metavar": "N"}),
    ("--checkpoints-kept", "checkpoints_kept", {"type": int_at_least(1), "metavar": "N"}),
    ("--tensorboard", "tensorboard", {}),
    ("--resume", "resume", {}),
)
"""(flag, `RLConfig` field, argparse settings) of ``berry train rl``."""

_RL_EPILOG = """\
Each round: the policy searches --problems-per-round training problems (--method, --rollouts),
the verifier grades every answer in the trees, each step of each tree becomes a replay row
(advantage by --algo), and epochs * new rows / --minibatch-size minibatches drawn from the
prioritized replay update the LoRA adapter. Arithmetic problems follow a curriculum over
--levels (operand counts): the next level starts when the search solves --advance-at of the
current one. The run directory gets metrics.jsonl (one JSON line per round: play accuracy,
oracle, losses, clip fraction, approx KL, explained variance, and eval_* greedy accuracy every
--eval-every rounds), checkpoints/round-N/ (adapter, optimiser, replay, state; no pickle),
final/ (the adapter: use it as --model OUT/final), rl_config.json and result.json. --resume
continues from the last checkpoint exactly (a killed round is played again from the start).

examples:
  berry train rl --out runs/rl --rounds 40 --threads 2        # grpo on 8 samples per problem
  berry train rl --recipe tiny-rl --out runs/tiny-rl        # how berry-tiny-rl was made
  berry train rl --out runs/rl-ppo --algo ppo --method step-mcts --rollouts 8
  berry train rl --out runs/rl --rounds 60 --resume        # continue, and go on to round 60
  berry eval --dataset arithmetic --split test --method greedy --model runs/rl/final
"""


def register(subparsers: Any) -> None:
    """Add the ``train`` command and its ``sft`` subcommand to the ``berry`` parser.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """
    raw = argparse.RawDescriptionHelpFormatter
    parser = subparsers.add_parser(
        "train",
        help="train models (sft, pprm judge, value head, self-play rl)",
        description="Train models. Stages: sft (supervised fine-tuning, continued pretraining, "
        "training from scratch), pprm (the pairwise judge), value (the rating-token value), rl "
        "(self-play reinforcement learning).",
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
    add_gguf_file_arg(p_sft)
    add_config_file_option(p_sft)
    p_sft.set_defaults(func=_cmd_sft)

    p_pprm = sub.add_parser(
        "pprm",
        help="train the pairwise preference judge (PPRM) on pair rows",
        description="Train a causal LM as the pairwise judge of sr-mcts/pprm scoring: "
        "P(Yes) after judge_prompt(question, A, B) says A is better (classification loss, or "
        "DPO with TRL). Held-out pair and order accuracy before and after.",
        epilog=_PPRM_EPILOG,
        formatter_class=raw,
    )
    add_field_options(p_pprm, PPRMConfig, _PPRM_OPTIONS)
    add_gguf_file_arg(p_pprm)
    add_config_file_option(p_pprm)
    p_pprm.set_defaults(func=_cmd_pprm)

    p_value = sub.add_parser(
        "value",
        help="train the rating-token value head on value rows",
        description="Fit p(<positive_rating>) renormalised over the two rating tokens (the "
        "value scorer) to Monte-Carlo step values. Held-out MSE, Brier and AUC before and after.",
        epilog=_VALUE_EPILOG,
        formatter_class=raw,
    )
    add_field_options(p_value, ValueConfig, _VALUE_OPTIONS)
    add_gguf_file_arg(p_value)
    add_config_file_option(p_value)
    p_value.set_defaults(func=_cmd_value)

    p_rl = sub.add_parser(
        "rl",
        help="self-play RL: search, verify, replay, PPO / GRPO / expert iteration on LoRA",
        description="Self-play reinforcement learning without gold solutions: the policy "
        "searches training problems, the verifier grades the answers, and the trees train a "
        "LoRA adapter (PPO with GAE and the rating-token value, GRPO, or expert iteration) "
        "from a prioritized replay, with a curriculum over problem length.",
        epilog=_RL_EPILOG,
        formatter_class=raw,
    )
    p_rl.add_argument(
        "--recipe",
        choices=sorted(RL_RECIPES),
        metavar="NAME",
        default=argparse.SUPPRESS,
        help="named recipe that supplies defaults for every option; explicit options override "
        f"it (registered: {', '.join(sorted(RL_RECIPES))}; tiny-rl made berry-tiny-rl)",
    )
    add_field_options(p_rl, RLConfig, _RL_OPTIONS)
    add_gguf_file_arg(p_rl)
    add_config_file_option(p_rl)
    p_rl.set_defaults(func=_cmd_rl)


def _no_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _with_gguf_file(values: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """`values` with ``--model DIR --gguf-file NAME`` recorded as the model ``DIR/NAME``."""
    gguf_file = getattr(args, "gguf_file", None)
    if gguf_file:
        values["model"] = join_gguf_file(values.get("model"), gguf_file)
    return values


def _cmd_sft(args: argparse.Namespace) -> int:
    from openberry.training.sft import train_sft

    names = {name for _, name, _ in _SFT_OPTIONS}
    values = _with_gguf_file({k: v for k, v in vars(args).items() if k in names}, args)
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


def _head_config(cls: type, options: tuple[FieldOption, ...], args: argparse.Namespace) -> Any:
    names = {name for _, name, _ in options}
    values = _with_gguf_file({k: v for k, v in vars(args).items() if k in names}, args)
    for name in ("data", "lora_target_modules"):
        if name in values:
            values[name] = tuple(values[name])
    missing = [
        flag for flag, name, _ in options if name in ("data", "output_dir") and name not in values
    ]
    if missing:
        raise SFTError(f"missing {' and '.join(missing)}")
    return cls(**values)


def _print_head_result(result: Any, keys: tuple[str, ...]) -> None:
    before, after = result.initial_eval or {}, result.final_eval or {}
    shown = [
        f"{k} {_fmt(before.get(k))} -> {_fmt(after.get(k))}"
        for k in ("loss", *keys)
        if k in before or k in after
    ]
    print(
        f"trained to step {result.step} in {result.wall_seconds:.1f} s: train loss "
        f"{_fmt(result.train_loss)}; held out (before -> after): {', '.join(shown) or '-'}"
    )
    print(f"final model: {result.final_dir}")
    sys.stdout.flush()


def _cmd_pprm(args: argparse.Namespace) -> int:
    from openberry.training.pprm import train_pprm

    result = train_pprm(_head_config(PPRMConfig, _PPRM_OPTIONS, args))
    _print_head_result(result, ("pair_accuracy", "order_accuracy"))
    return 0


def _cmd_value(args: argparse.Namespace) -> int:
    from openberry.training.value import train_value

    result = train_value(_head_config(ValueConfig, _VALUE_OPTIONS, args))
    _print_head_result(result, ("mse", "brier", "auc"))
    return 0


def _cmd_rl(args: argparse.Namespace) -> int:
    from openberry.training.rl import train_rl

    names = {name for _, name, _ in _RL_OPTIONS}
    values = _with_gguf_file({k: v for k, v in vars(args).items() if k in names}, args)
    for name in ("search_set", "levels", "eval_levels", "lora_target_modules"):
        if name in values:
            values[name] = tuple(values[name])
    if "output_dir" not in values:
        raise RLError("missing --out")
    config = RLConfig(**{**RL_RECIPES.get(getattr(args, "recipe", ""), {}), **values})
    from tqdm.auto import tqdm

    with tqdm(total=config.rounds, desc="rl rounds", unit="round") as bar:

        def resumed(done: int) -> None:
            bar.n = bar.last_print_n = done  # the rate and ETA count this session's rounds
            bar.refresh()

        result = train_rl(config, progress=bar.update, on_start=resumed)
    before, after = result["initial_eval"], result["final_eval"]
    shown = [f"{k[5:]} {_fmt(before.get(k))} -> {_fmt(after.get(k))}" for k in after]
    print(
        f"{result['rounds']} rounds, {result['updates']} updates in {result['elapsed_s']:.1f} s; "
        f"greedy accuracy (before -> after): {', '.join(shown) or '-'}"
    )
    print(f"final adapter: {result['final_dir']}")
    sys.stdout.flush()
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"

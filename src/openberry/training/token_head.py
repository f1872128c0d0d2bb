"""Training a causal LM as a two-token head: the pairwise judge and the rating-token value.

Both of openberry's learned scorers read a probability off two candidate next tokens at the end
of a prompt (`openberry.search.scorers`): the PPRM judge (LLaMA-Berry, section 2.3) reads
``P(Yes) / (P(Yes) + P(No))`` after `openberry.formats.prompts.judge_prompt`, and the value
head (LLaMA-O1) reads ``p(<positive_rating>)`` renormalised over the two rating tokens after a
prompt of `openberry.search.scorers.step_value_prompts`. This module fits that probability:

- Rows: ``(prompt, target p in [0, 1])``; a row also has a ``group`` (the problem id: the
  held-out split never cuts a group) and, for judge rows, a ``pair`` id and a 0/1 ``label``.
- Loss: binary cross-entropy between ``q = softmax(l_pos, l_neg)[0]`` -- the softmax over the
  two candidate tokens' logits at the last prompt position -- and the soft target ``p``
  (``p`` in {0, 1} makes it a classification loss). Since ``q = sigmoid(l_pos - l_neg)`` this is
  `binary_cross_entropy_with_logits(l_pos - l_neg, p)`; the rest of the vocabulary does not
  enter, exactly as the scorers renormalise over the two tokens.
- Prompts are tokenised as `openberry.models.hf.HFPolicy` tokenises them (``tokenizer(prompt)``,
  no chat template), so the head is trained on the tokens it reads at search time. A prompt
  longer than ``max_length`` tokens is dropped (counted): cutting it would cut the question or
  the final line the answer depends on.
- Batches are padded on the LEFT with ``position_ids`` counted over the real tokens (as the
  backend pads), so the last position of every row is its last real token, and the model is
  asked for the logits of that position only (``logits_to_keep=1``), which keeps memory flat for
  large vocabularies.
- Training reuses `openberry.training.sft`: its Trainer subclass (epoch-seeded length-grouped
  shuffle, so ``resume`` is exact), its `TrainingArguments`, LoRA, metrics.jsonl, checkpoint and
  final-save helpers. Evaluation (every ``eval_steps``, before the first step and at the end)
  is this module's own: the mean loss on the held-out rows plus the caller's metrics of the
  predicted probabilities (pair accuracy for the judge, Brier score and AUC for the value).
- At the end: ``output_dir/final/`` -- a plain model directory (a LoRA adapter is merged into
  the weights unless ``merge_lora`` is off, then the adapter alone is saved), the run's config
  (``<name>_config.json``) and ``result.json`` (`HeadResult`).

Importing this module is light; torch, transformers and peft are imported when training runs.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openberry.fileio import write_text_atomic
from openberry.training.sft import DTYPES, SFTError

__all__ = [
    "HeadConfig",
    "HeadResult",
    "HeadRow",
    "LeftPadCollator",
    "build_head_dataset",
    "evaluate_head",
    "head_probabilities",
    "split_by_group",
    "train_head",
    "two_token_logits",
    "two_token_loss",
]

logger = logging.getLogger(__name__)

MetricsFn = Callable[[Sequence["HeadRow"], Sequence[float]], Mapping[str, float | None]]
"""Task metrics of held-out rows from the predicted probabilities ``q`` (one per row)."""


@dataclass(frozen=True)
class HeadRow:
    """One training row of a two-token head."""

    prompt: str
    """The prompt; the head's two tokens are candidates for the token after it."""
    target: float
    """Target probability of the first (positive) token, renormalised over the two."""
    group: str
    """Held-out unit (the problem id): a group is never split between train and eval."""
    pair: str | None = None
    """Judge rows: the pair id shared by the two orders of one pair."""
    label: int | None = None
    """Judge rows: 1 when solution A is the better one, else 0."""


@dataclass(frozen=True)
class HeadConfig:
    """Settings shared by ``berry train pprm`` and ``berry train value``."""

    data: tuple[str, ...]
    """Training rows: JSONL files (pair rows for pprm, value rows for value; see docs/training.md)."""
    output_dir: str
    """Run directory: checkpoints, metrics.jsonl, final/ model, the run's config, result.json."""
    model: str = "berry-tiny"
    """Model directory, hub id or built-in name to start from."""
    eval_file: str | None = None
    """A separate held-out file of rows; when given, no training rows are held out."""
    eval_fraction: float = 0.1
    """Share of the problems (row id) held out for evaluation when no eval file is given
    (seeded; every row of a held-out problem is held out); 0: no evaluation."""
    max_length: int = 1024
    """Longest prompt in tokens; longer rows are dropped (counted)."""
    lora: bool = False
    """Train a LoRA adapter (peft) instead of all weights."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA alpha (the update is scaled by alpha / r)."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA input."""
    lora_target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    """Names of the modules that get LoRA adapters."""
    merge_lora: bool = True
    """With --lora: merge the adapter into the weights of final/ (a plain model directory); off:
    final/ holds the adapter only (it loads as --model/--judge too, with its base model)."""
    max_steps: int = 300
    """Optimizer steps to train for (the data is repeated as needed)."""
    learning_rate: float = 3e-4
    """Peak learning rate (about 1e-4..5e-4 for all weights of a small model; LoRA takes more)."""
    warmup_steps: int = 20
    """Linear warmup steps."""
    lr_scheduler: str = "cosine"
    """Learning-rate schedule: a transformers scheduler name (linear, cosine, cosine_with_min_lr,
    constant_with_warmup, ...)."""
    min_lr_rate: float = 0.1
    """Final learning rate as a share of the peak, for the *_with_min_lr schedules."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    adam_beta2: float = 0.98
    """AdamW beta2."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (0: no clipping)."""
    batch_size: int = 16
    """Rows per micro-batch."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    eval_steps: int = 100
    """Evaluate every this many steps (and before the first step and at the end)."""
    save_steps: int = 100
    """Save a checkpoint every this many steps."""
    save_total_limit: int = 2
    """Most checkpoints kept (older ones are deleted)."""
    logging_steps: int = 10
    """Log the training loss every this many steps."""
    seed: int = 0
    """Seed of the eval split, LoRA init and the data order."""
    threads: int | None = None
    """CPU threads for torch (torch.set_num_threads); default: torch's choice."""
    tensorboard: bool = False
    """Also log to TensorBoard (output_dir/runs; needs pip install openberry[tensorboard])."""
    resume: bool = False
    """Continue from the last complete checkpoint in output_dir, exactly (fresh start if none)."""
    dtype: str = "float32"
    """Dtype the model is loaded and trained in (float32, bfloat16, float16)."""
    save_dtype: str | None = None
    """Dtype of the saved final weights (e.g. bfloat16 halves the files); default: as trained."""
    eval_on_start: bool = True
    """Evaluate once before the first step (the untrained model's metrics; skipped on resume)."""

    def __post_init__(self) -> None:
        for name in ("data", "lora_target_modules"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(str(v) for v in value))
        if not self.data:
            raise SFTError("no training data: give at least one rows file")
        if not self.output_dir:
            raise SFTError("output_dir is empty")
        positive = (
            "max_steps",
            "batch_size",
            "grad_accum",
            "eval_steps",
            "save_steps",
            "save_total_limit",
            "logging_steps",
            "lora_r",
            "lora_alpha",
            "max_length",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise SFTError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise SFTError(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise SFTError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.learning_rate <= 0 or self.warmup_steps < 0 or self.weight_decay < 0:
            raise SFTError("learning_rate must be > 0, warmup_steps and weight_decay >= 0")
        if self.threads is not None and self.threads < 1:
            raise SFTError(f"threads must be >= 1, got {self.threads}")
        for name in ("dtype", "save_dtype"):
            value = getattr(self, name)
            if value is not None and value not in DTYPES:
                raise SFTError(f"{name} must be one of {', '.join(DTYPES)}, got {value!r}")


@dataclass(frozen=True)
class HeadResult:
    """What a finished run reports (also written to ``output_dir/result.json``)."""

    output_dir: str
    """The run directory."""
    step: int
    """The final optimizer step."""
    train_loss: float | None
    """The last logged training loss."""
    initial_eval: dict[str, float] | None
    """Held-out metrics before the first step (``loss`` and the task's metrics; None when not
    measured)."""
    final_eval: dict[str, float] | None
    """Held-out metrics of the final weights (None without eval rows)."""
    wall_seconds: float
    """Wall time of this call."""
    final_dir: str
    """Directory of the saved final model (or adapter) and tokenizer."""


# ----------------------------------------------------------------------------------------------
# Rows and datasets


def split_by_group(
    rows: Sequence[HeadRow], fraction: float, seed: int
) -> tuple[list[HeadRow], list[HeadRow]]:
    """A seeded (train, eval) split holding out ``round(fraction * groups)`` whole groups (at
    least one when `fraction` > 0 and there are two or more groups)."""
    groups = sorted({r.group for r in rows})
    n_eval = 0
    if fraction > 0 and len(groups) >= 2:
        n_eval = min(len(groups) - 1, max(1, round(fraction * len(groups))))
    random.Random(seed).shuffle(groups)
    held = set(groups[:n_eval])
    return [r for r in rows if r.group not in held], [r for r in rows if r.group in held]


def _token_id(tokenizer: Any, text: str) -> int:
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1:
        raise SFTError(f"{text!r} is {len(ids)} tokens in this tokenizer, not one")
    return int(ids[0])


@functools.cache
def _dataset_class() -> type:
    from openberry.training.sft import TokenDataset

    class _HeadDataset(TokenDataset):
        """Prompt token ids (`TokenDataset`, grouped by length) with a target per row."""

        def __init__(self, sequences: list[Any], rows: list[HeadRow]) -> None:
            super().__init__(sequences, [len(s) for s in sequences], grouped=True)
            self.rows = rows

        def __getitem__(self, index: int) -> dict[str, Any]:
            return {"input_ids": self.sequences[index], "target": self.rows[index].target}

    return _HeadDataset


def build_head_dataset(
    rows: Sequence[HeadRow], tokenizer: Any, max_length: int, label: str = "train"
) -> Any:
    """Tokenise the prompts (as the hf backend does); rows longer than `max_length` are
    dropped and counted."""
    import numpy as np

    from openberry.training.sft import _encode

    kept_ids, kept_rows = [], []
    for row, ids in zip(rows, _encode(tokenizer, [r.prompt for r in rows], label), strict=True):
        if 0 < len(ids) <= max_length:
            kept_ids.append(np.asarray(ids, dtype=np.int64))
            kept_rows.append(row)
    if len(kept_rows) < len(rows):
        logger.warning(
            "%s: %d of %d rows dropped: prompt longer than max_length=%d tokens",
            label,
            len(rows) - len(kept_rows),
            len(rows),
            max_length,
        )
    return _dataset_class()(kept_ids, kept_rows)


class LeftPadCollator:
    """Left-pads prompts into a batch: ``input_ids``, ``attention_mask`` (0 on padding),
    ``position_ids`` (0.. over the real tokens) and ``target`` (float)."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = int(pad_token_id)

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for i, f in enumerate(features):
            row = torch.as_tensor(f["input_ids"], dtype=torch.long)
            ids[i, width - len(row) :] = row
            mask[i, width - len(row) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        target = torch.tensor([float(f["target"]) for f in features], dtype=torch.float32)
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "position_ids": positions,
            "target": target,
        }


# ----------------------------------------------------------------------------------------------
# The head: logits, loss, probabilities


def two_token_logits(model: Any, batch: Mapping[str, Any], token_ids: Sequence[int]) -> Any:
    """[B, 2] logits of the two tokens at the last position of a left-padded batch."""
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        logits_to_keep=1,
        use_cache=False,
    )
    index = out.logits.new_tensor(list(token_ids), dtype=batch["input_ids"].dtype)
    return out.logits[:, -1, :].float().index_select(-1, index)


def two_token_loss(logits: Any, target: Any, weights: Any = None) -> Any:
    """Mean binary cross-entropy between softmax over the two logits (its first entry) and
    the soft `target` probability; with `weights`, each row's term is weighted first (the
    importance weights of prioritized replay)."""
    import torch

    margin = logits[:, 0] - logits[:, 1]
    if weights is None:
        return torch.nn.functional.binary_cross_entropy_with_logits(margin, target.to(margin.dtype))
    per = torch.nn.functional.binary_cross_entropy_with_logits(
        margin, target.to(margin.dtype), reduction="none"
    )
    return (weights * per).mean()


def head_probabilities(
    model: Any, dataset: Any, pad_token_id: int, token_ids: Sequence[int], batch_size: int
) -> tuple[list[float], float]:
    """(q of every row in dataset order, mean loss) under `model`, in eval mode, no grad."""
    import torch

    collate = LeftPadCollator(pad_token_id)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    probs: list[float] = []
    total = 0.0
    try:
        with torch.inference_mode():
            for start in range(0, len(dataset), batch_size):
                items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
                batch = {k: v.to(device) for k, v in collate(items).items()}
                logits = two_token_logits(model, batch, token_ids)
                loss = two_token_loss(logits, batch["target"])
                total += float(loss) * len(items)
                probs += torch.sigmoid(logits[:, 0] - logits[:, 1]).tolist()
    finally:
        model.train(was_training)
    return probs, total / max(1, len(dataset))


# ----------------------------------------------------------------------------------------------
# Trainer


@functools.cache
def _head_trainer_class() -> type:
    from openberry.training.sft import _trainer_class

    class HeadTrainer(_trainer_class()):  # type: ignore[misc]
        """The sft Trainer with the two-token loss and this module's evaluation."""

        head_tokens: tuple[int, int] = (0, 0)
        head_metrics: MetricsFn | None = None
        head_pad: int = 0

        def compute_loss(
            self, model: Any, inputs: Any, return_outputs: bool = False, **kwargs: Any
        ) -> Any:
            logits = two_token_logits(model, inputs, self.head_tokens)
            loss = two_token_loss(logits, inputs["target"])
            return (loss, {"logits": logits}) if return_outputs else loss

        def evaluate(
            self,
            eval_dataset: Any = None,
            ignore_keys: Any = None,
            metric_key_prefix: str = "eval",
        ) -> dict[str, float]:
            dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
            metrics = evaluate_head(
                self.model,
                dataset,
                self.head_pad,
                self.head_tokens,
                self.args.per_device_eval_batch_size,
                self.head_metrics,
            )
            metrics = {f"{metric_key_prefix}_{k}": v for k, v in metrics.items()}
            self.log(metrics)
            self.control = self.callback_handler.on_evaluate(
                self.args, self.state, self.control, metrics
            )
            return metrics

    return HeadTrainer


def evaluate_head(
    model: Any,
    dataset: Any,
    pad_token_id: int,
    token_ids: Sequence[int],
    batch_size: int,
    metrics_fn: MetricsFn | None,
) -> dict[str, float]:
    """``loss`` and the task metrics (None values left out) of `model` on `dataset`."""
    probs, loss = head_probabilities(model, dataset, pad_token_id, token_ids, batch_size)
    out = {"loss": loss}
    if metrics_fn is not None:
        out.update(
            {k: float(v) for k, v in metrics_fn(dataset.rows, probs).items() if v is not None}
        )
    return out


# ----------------------------------------------------------------------------------------------
# The run


def load_model_and_tokenizer(config: HeadConfig) -> tuple[Any, Any]:
    """The causal LM and tokenizer named by ``config.model`` (built-in names resolved)."""
    from openberry.models.base import ModelError
    from openberry.models.builtin import resolve_model
    from openberry.models.gguf import load_causal_lm, load_tokenizer

    try:
        path = resolve_model(config.model)
        tokenizer = load_tokenizer(path)
        model = load_causal_lm(path, label=config.model, dtype=_dtype(config.dtype))
    except (OSError, ValueError, ModelError) as exc:
        raise SFTError(f"could not load model {config.model!r}: {exc}") from exc
    return model, tokenizer


def _dtype(name: str) -> Any:
    import torch

    return getattr(torch, name)


def pad_id(tokenizer: Any) -> int:
    """The tokenizer's pad id (EOS when it has none)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise SFTError("the tokenizer has neither a pad nor an EOS token")
    return int(pad)


def prepare_run(config: HeadConfig, name: str) -> tuple[Path | None, float]:
    """Check the output dir, cut stale metrics, write ``<name>_config.json``; return the
    checkpoint to resume from and the elapsed seconds logged before it."""
    from openberry.training.sft import METRICS_FILE, _check_output_dir, _reset_metrics

    checkpoint = _check_output_dir(config)  # type: ignore[arg-type]
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    elapsed = _reset_metrics(out / METRICS_FILE, checkpoint)
    write_text_atomic(
        out / f"{name}_config.json", json.dumps(dataclasses.asdict(config), indent=2) + "\n"
    )
    return checkpoint, elapsed


def save_final(config: HeadConfig, model: Any, tokenizer: Any) -> Path:
    """final/: the model, a LoRA adapter merged into it unless ``merge_lora`` is off."""
    from openberry.training.sft import FINAL_DIR, _save_final

    final = Path(config.output_dir) / FINAL_DIR
    adapter_only = config.lora and not config.merge_lora
    if config.lora and config.merge_lora:
        model = model.merge_and_unload()
    _save_final(model, tokenizer, final, config.save_dtype, adapter_only)
    return final


def write_result(
    config: HeadConfig, trainer: Any, final: Path, evals: tuple[Any, Any], started: float
) -> HeadResult:
    """The `HeadResult` of a run, written to ``result.json``."""
    from openberry.training.sft import METRICS_FILE, _read_metrics

    losses = [
        r["loss"] for r in _read_metrics(Path(config.output_dir) / METRICS_FILE) if "loss" in r
    ]
    result = HeadResult(
        output_dir=config.output_dir,
        step=int(trainer.state.global_step),
        train_loss=float(losses[-1]) if losses else None,
        initial_eval=evals[0],
        final_eval=evals[1],
        wall_seconds=round(time.monotonic() - started, 3),
        final_dir=str(final),
    )
    write_text_atomic(
        Path(config.output_dir) / "result.json",
        json.dumps(dataclasses.asdict(result), indent=2) + "\n",
    )
    return result


def logged_evals(config: HeadConfig, step: int) -> tuple[dict[str, float] | None, ...]:
    """The held-out metrics logged at step 0 and at `step` (prefix ``eval_`` dropped; the
    lines of one step merged)."""
    from openberry.training.sft import METRICS_FILE, _read_metrics

    rows = _read_metrics(Path(config.output_dir) / METRICS_FILE)

    def at(s: int) -> dict[str, float] | None:
        merged: dict[str, float] = {}
        for r in rows:
            if r.get("step") == s:
                merged.update({k[5:]: v for k, v in r.items() if k.startswith("eval_")})
        return merged or None

    return at(0), at(step)


def train_head(
    config: HeadConfig,
    *,
    name: str,
    train_rows: Sequence[HeadRow],
    eval_rows: Sequence[HeadRow],
    tokens: tuple[str, str],
    metrics_fn: MetricsFn | None = None,
    model: Any = None,
    tokenizer: Any = None,
    callbacks: Sequence[Any] = (),
) -> HeadResult:
    """Fit the two-token head (module docstring) and save ``final/`` and ``result.json``.

    Args:
        config: the run's settings.
        name: the stage name (``pprm``, ``value``): the config is saved as ``NAME_config.json``.
        train_rows, eval_rows: the rows (eval may be empty: no evaluation).
        tokens: the (positive, negative) candidate tokens; each must be one token.
        metrics_fn: task metrics of the held-out predictions.
        model, tokenizer: an already-built model and tokenizer (tests); default: loaded.
        callbacks: extra `transformers.TrainerCallback` objects.
    """
    import torch

    from openberry.training.sft import (
        METRICS_FILE,
        _apply_lora,
        _metrics_callback,
        _training_args,
        train_from,
    )

    started = time.monotonic()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    checkpoint, elapsed = prepare_run(config, name)
    if model is None or tokenizer is None:
        model, tokenizer = load_model_and_tokenizer(config)
    token_ids = (_token_id(tokenizer, tokens[0]), _token_id(tokenizer, tokens[1]))
    train_ds = build_head_dataset(train_rows, tokenizer, config.max_length, "train")
    eval_ds = (
        build_head_dataset(eval_rows, tokenizer, config.max_length, "eval") if eval_rows else None
    )
    if len(train_ds) == 0:
        raise SFTError("no training rows (after dropping prompts over max_length)")
    if eval_ds is not None and len(eval_ds) == 0:
        eval_ds = None
    logger.info("train: %d rows; eval: %d rows", len(train_ds), len(eval_ds or ()))
    if config.lora:
        model = _apply_lora(model, config)  # type: ignore[arg-type]
    args = _training_args(config, eval_ds is not None, checkpoint is not None)  # type: ignore[arg-type]
    trainer = _head_trainer_class()(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        data_collator=LeftPadCollator(pad_id(tokenizer)),
        processing_class=tokenizer,
        callbacks=[_metrics_callback(Path(config.output_dir) / METRICS_FILE, elapsed), *callbacks],
    )
    trainer.head_tokens, trainer.head_metrics = token_ids, metrics_fn
    trainer.head_pad = pad_id(tokenizer)
    train_from(trainer, checkpoint)
    step = int(trainer.state.global_step)
    initial, final_eval = logged_evals(config, step)
    if eval_ds is not None and final_eval is None:
        final_eval = {k[5:]: v for k, v in trainer.evaluate().items()}
    final = save_final(config, trainer.model, tokenizer)
    for k, v in (final_eval or {}).items():
        if isinstance(v, float) and not math.isfinite(v):
            logger.warning("final eval %s is not finite: %s", k, v)
    return write_result(config, trainer, final, (initial, final_eval), started)

"""Supervised fine-tuning and continued pretraining of a causal LM on the transformers `Trainer`.

Importing this module is light; torch, transformers, peft and datasets are imported by
`train_sft`.

What is implemented (`train_sft`, driven by one flat `SFTConfig`):

- Data: local ``.jsonl``/``.json``/``.parquet`` files, or Hugging Face dataset ids (``ID`` or
  ``ID:SPLIT``, default split ``train``; refused with a clear error when the hub is offline). A row
  with a ``prompt``/``completion`` pair (field names configurable) is a *pair*: the loss is taken
  on the completion tokens and the EOS that follows them only; a pair may also carry
  ``ignore_spans``, ``[[start, end], ...]`` character spans of its completion whose tokens carry
  no loss (a token is left out when its first character lies in a span; for example the wrong
  steps of a journey, `openberry.training.extract`). Otherwise a row with a ``text``
  field is a *document*: the loss is taken on all its tokens and its EOS. Files may mix both. A
  row with neither raises an error naming the file and line.
- Tokenisation, once, up front. A document is ``tokenizer(text)`` (the tokenizer's own special
  tokens, e.g. BOS) followed by EOS. A pair's prompt is tokenised exactly as
  `openberry.models.hf.HFPolicy` encodes a prompt (``tokenizer.encode(prompt)``, no chat
  template); the completion tokens are the tokens of ``prompt + completion`` after the prompt's
  own tokens when those are a prefix of the joint tokenisation (the usual case), else the
  completion tokenised alone; then EOS. So the model is trained on the very prompt tokens it sees
  at inference, and the prompt/completion boundary is exact. Prompt and completion are joined
  with nothing in between: a prompt should end with its own separator (e.g. ``"\\n"``).
- Packing (``packing=True``, the default): the token ids of all documents, each followed by EOS,
  are concatenated and cut into blocks of exactly ``max_length`` tokens; training drops the
  remainder, evaluation keeps it as one shorter block. Blocks have no padding and full loss. As in
  GPT-style pretraining, a document can attend across the EOS to the previous document in the same
  block (no per-document attention mask). Pairs are never packed: they are truncated to
  ``max_length`` (counted and logged; a pair whose prompt alone fills ``max_length`` is dropped,
  also counted), padded per batch on the right (``attention_mask`` 0 and label -100 on padding),
  and batches are grouped by length (Trainer's `LengthGroupedSampler`) so little time is spent on
  padding. With ``packing=False`` documents are treated like pairs with an empty prompt.
- Training with `transformers.Trainer`: AdamW, the named LR schedule with warmup, gradient
  clipping, checkpoints every ``save_steps`` (``checkpoint-N``), evaluation every ``eval_steps``
  and once before the first step, a progress bar with ETA. LoRA through peft (``get_peft_model``;
  only the adapter trains). From scratch: a JSON model config plus a BPE tokenizer trained on the
  training texts (`openberry.training.tokenizer`, with the OpenLongCoT tags and the judge's ``Yes``/``No`` as single tokens).
- ``output_dir/metrics.jsonl``: one JSON line per Trainer log (train loss, learning rate, grad
  norm, eval loss, ...) with ``step``, ``epoch``, ``tokens_seen`` and ``elapsed_s``; flushed per
  line. ``tokens_seen`` counts the non-padding input tokens of the training batches: prompt,
  completion and EOS tokens of pairs, every token of packed blocks (use it for throughput; the
  tokens that carry loss are fewer for pairs).
- Resume (``resume=True``): from the last complete checkpoint (one with a readable
  ``trainer_state.json``, which Trainer writes last). Trainer restores weights, optimizer,
  scheduler and RNG states and skips the batches already seen in the current epoch; the shuffle
  of every epoch is seeded by ``seed + epoch`` (for both samplers), so a run killed and resumed
  ends with the same weights as an uninterrupted run (tested bit for bit on CPU). Lines of
  ``metrics.jsonl`` logged after the checkpoint are cut before training continues.
- At the end: ``output_dir/final/`` (model or LoRA adapter, and tokenizer, as safetensors, cast to
  ``save_dtype`` when set), ``sft_config.json`` (the config) and ``result.json`` (`SFTResult`).

Where this departs from the Trainer defaults: the training shuffle of prompt/completion data uses
our own epoch-seeded `LengthGroupedSampler` (Trainer's draws from the global RNG, which makes
resumes after the first epoch inexact); token counting is our own (non-padding tokens, the same on
every transformers version); the final model is saved by us, not by ``trainer.save_model``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import random
import re
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openberry.errors import BerryError
from openberry.fileio import write_text_atomic

__all__ = [
    "IGNORE_SPANS_FIELD",
    "RECIPES",
    "REQUIRED_FIELDS",
    "Row",
    "SFTCollator",
    "SFTConfig",
    "SFTError",
    "SFTResult",
    "TokenDataset",
    "build_dataset",
    "last_checkpoint",
    "load_rows",
    "split_rows",
    "train_from",
    "train_sft",
]

logger = logging.getLogger(__name__)

_RECIPE_DIR = Path(__file__).resolve().parent / "recipes"

RECIPES: dict[str, dict[str, Any]] = {
    # berry-tiny (docs/berry-tiny.md): a ~1M-parameter Llama trained from scratch on the
    # arithmetic pretraining mixture (openberry.data.arithmetic.pretrain), fixed seed.
    "tiny": {
        "model": "berry-tiny",
        "from_scratch": str(_RECIPE_DIR / "berry_tiny.json"),
        "data": ("arithmetic:pretrain:200000:0",),
        "eval_fraction": 0.005,
        "vocab_size": 256,
        "max_length": 256,
        "packing": True,
        "max_steps": 3600,
        "batch_size": 32,
        "learning_rate": 3e-3,
        "warmup_steps": 100,
        "lr_scheduler": "cosine_with_min_lr",
        "min_lr_rate": 0.1,
        "adam_beta2": 0.98,
        "max_grad_norm": 1.0,
        "eval_steps": 400,
        "save_steps": 400,
        "logging_steps": 50,
        "seed": 0,
        "threads": 2,
    },
}
"""Named recipes: field name -> value defaults for `SFTConfig` (explicit settings override them);
``berry train sft --recipe NAME`` picks one."""

DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16")
"""Accepted names for `SFTConfig.dtype` and `SFTConfig.save_dtype`."""

METRICS_FILE = "metrics.jsonl"
FINAL_DIR = "final"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
IGNORE_SPANS_FIELD = "ignore_spans"
"""Field of a pair row: character spans ``[[start, end], ...]`` of the completion left out of
the loss."""
GENERATED_PREFIX = "arithmetic:"
"""Data sources ``arithmetic:KIND[:LIMIT[:SEED]]`` are generated on the fly (`corpus_rows`)."""
_LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet", ".pq")
_HUB_ID_RE = re.compile(r"^[\w.-]+(/[\w.-]+)?(:[\w.-]+)?$")


class SFTError(BerryError, ValueError):
    """A bad SFT setting, data file, model or output directory; the message says what to fix."""


@dataclass(frozen=True)
class SFTConfig:
    """One SFT / continued-pretraining run. Every field's docstring is its ``--help`` text."""

    model: str
    """Model directory or hub id to start from (a label only when --from-scratch is given)."""
    data: tuple[str, ...]
    """Training data: .jsonl/.json/.parquet files, Hugging Face dataset ids (ID or ID:SPLIT), or a
    generated corpus arithmetic:KIND[:LIMIT[:SEED]] (KIND as in berry data corpus, e.g. pretrain)."""
    output_dir: str
    """Run directory: checkpoints, metrics.jsonl, final/ model, sft_config.json, result.json."""
    text_field: str = "text"
    """Field of a document row (loss on all its tokens)."""
    prompt_field: str = "prompt"
    """Field of a pair row's prompt (no loss on it)."""
    completion_field: str = "completion"
    """Field of a pair row's completion (loss on it and the EOS after it)."""
    eval_data: tuple[str, ...] = ()
    """Held-out files or dataset ids; when none, eval_fraction of the training rows is held out."""
    eval_fraction: float = 0.02
    """Share of training rows held out for evaluation when no eval data is given (seeded); 0: none."""
    max_length: int = 512
    """Tokens per training sequence: packed block size; longer pairs are truncated (counted)."""
    packing: bool = True
    """Pack documents into max_length blocks (EOS between documents); pairs are never packed."""
    lora: bool = False
    """Train a LoRA adapter (peft) instead of all weights; final/ then holds the adapter."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA alpha (the update is scaled by alpha / r)."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA input."""
    lora_target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    """Names of the modules that get LoRA adapters."""
    from_scratch: str | None = None
    """JSON model config (e.g. LlamaConfig fields with "model_type": "llama") to train from random
    weights; a tokenizer is trained on the training texts unless --tokenizer is given."""
    tokenizer: str | None = None
    """Tokenizer directory to use instead of the model's (or instead of training one)."""
    vocab_size: int = 512
    """Vocabulary size of the tokenizer trained for --from-scratch."""
    max_steps: int = 1000
    """Optimizer steps to train for (the data is repeated as needed)."""
    learning_rate: float = 3e-4
    """Peak learning rate."""
    warmup_steps: int = 50
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
    batch_size: int = 32
    """Sequences per micro-batch."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    eval_steps: int = 200
    """Evaluate every this many steps."""
    save_steps: int = 200
    """Save a checkpoint every this many steps."""
    save_total_limit: int = 2
    """Most checkpoints kept (older ones are deleted)."""
    logging_steps: int = 10
    """Log the training loss every this many steps."""
    seed: int = 0
    """Seed of weight init (LoRA, from scratch), the eval split and the data order."""
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
    """Evaluate once before the first step (the baseline eval loss; skipped on resume)."""

    def __post_init__(self) -> None:
        for name in ("data", "eval_data", "lora_target_modules"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(str(v) for v in value))
        if not self.data:
            raise SFTError("no training data: give at least one file or dataset id")
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
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise SFTError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_length < 2:
            raise SFTError(f"max_length must be >= 2, got {self.max_length}")
        if not 0.0 <= self.eval_fraction < 1.0:
            raise SFTError(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise SFTError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if not 0.0 <= self.min_lr_rate <= 1.0:
            raise SFTError(f"min_lr_rate must be in [0, 1], got {self.min_lr_rate}")
        if self.learning_rate <= 0 or self.warmup_steps < 0 or self.weight_decay < 0:
            raise SFTError("learning_rate must be > 0, warmup_steps and weight_decay >= 0")
        if not 0.0 < self.adam_beta2 < 1.0:
            raise SFTError(f"adam_beta2 must be in (0, 1), got {self.adam_beta2}")
        if self.max_grad_norm < 0:
            raise SFTError(f"max_grad_norm must be >= 0, got {self.max_grad_norm}")
        if self.threads is not None and self.threads < 1:
            raise SFTError(f"threads must be >= 1, got {self.threads}")
        if self.vocab_size < 16:
            raise SFTError(f"vocab_size must be >= 16, got {self.vocab_size}")
        for name in ("dtype", "save_dtype"):
            value = getattr(self, name)
            if value is not None and value not in DTYPES:
                raise SFTError(f"{name} must be one of {', '.join(DTYPES)}, got {value!r}")
        if self.lora and self.from_scratch:
            raise SFTError("lora and from_scratch do not go together: train all weights instead")
        if self.lora and not self.lora_target_modules:
            raise SFTError("lora needs at least one target module")

    @classmethod
    def from_recipe(cls, name: str | None = None, **overrides: Any) -> SFTConfig:
        """A config from the recipe `name` (see `RECIPES`), with `overrides` on top."""
        values: dict[str, Any] = {}
        if name is not None:
            if name not in RECIPES:
                known = ", ".join(sorted(RECIPES)) or "none registered"
                raise SFTError(f"unknown recipe {name!r} (known: {known})")
            values.update(RECIPES[name])
        values.update(overrides)
        missing = [name for name in REQUIRED_FIELDS if name not in values]
        if missing:
            raise SFTError(f"missing setting(s): {', '.join(missing)}")
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise SFTError(f"unknown setting(s): {', '.join(unknown)}")
        return cls(**values)


REQUIRED_FIELDS: tuple[str, ...] = tuple(
    f.name
    for f in dataclasses.fields(SFTConfig)
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
)
"""`SFTConfig` fields without a default, in field order."""


@dataclass(frozen=True)
class SFTResult:
    """What a finished `train_sft` run reports (also written to ``output_dir/result.json``)."""

    output_dir: str
    """The run directory."""
    step: int
    """The final optimizer step."""
    train_loss: float | None
    """The last logged training loss (None when no step was logged)."""
    eval_loss: float | None
    """Eval loss of the final weights (None without eval data)."""
    initial_eval_loss: float | None
    """Eval loss before the first step (None without eval data, or when it was not measured)."""
    tokens_seen: int
    """Non-padding input tokens of all training batches, resumed runs included (module
    docstring): prompt + completion + EOS tokens of pairs, all tokens of packed blocks."""
    wall_seconds: float
    """Wall time of this call (a resumed run counts only its own time)."""
    final_dir: str
    """Directory of the saved final model (or LoRA adapter) and tokenizer."""


# ----------------------------------------------------------------------------------------------
# Rows


@dataclass(frozen=True)
class Row:
    """One training row: a document (`text`) or a pair (`prompt`, `completion`)."""

    where: str
    """File and line (or dataset row) it came from, for error messages."""
    text: str | None = None
    prompt: str | None = None
    completion: str | None = None
    ignore_spans: tuple[tuple[int, int], ...] = ()
    """Character spans ``[start, end)`` of the completion whose tokens carry no loss."""


def load_rows(
    sources: Sequence[str],
    *,
    text_field: str = "text",
    prompt_field: str = "prompt",
    completion_field: str = "completion",
) -> list[Row]:
    """Read and classify the rows of local files or hub datasets (module docstring).

    Raises:
        SFTError: a missing file, an unreadable row, a row with neither form, the hub offline.
    """
    rows: list[Row] = []
    for source in sources:
        n_before = len(rows)
        for where, raw in _source_rows(source):
            rows.append(_classify(raw, where, text_field, prompt_field, completion_field))
        logger.info("read %d rows from %s", len(rows) - n_before, source)
    return rows


def _source_rows(source: str) -> Iterable[tuple[str, Any]]:
    from openberry.data.datasets import _BadRow, _file_rows

    if source.startswith(GENERATED_PREFIX):
        yield from _generated_rows(source)
        return
    path = Path(source)
    if path.is_file():
        try:
            for _, where, raw in _file_rows(path):
                if isinstance(raw, _BadRow):
                    raise SFTError(f"{where}: {raw}")
                yield where, raw
        except BerryError as exc:
            raise SFTError(str(exc)) from exc
        return
    if path.exists():
        raise SFTError(f"{source}: not a file")
    if path.suffix.lower() in _LOCAL_SUFFIXES or not _HUB_ID_RE.match(source):
        raise SFTError(f"{source}: no such file")
    yield from _hub_rows(source)


def _generated_rows(source: str) -> Iterable[tuple[str, Any]]:
    """Rows of a built-in corpus: ``arithmetic:KIND[:LIMIT[:SEED]]`` (train split)."""
    from openberry.data.arithmetic import CORPUS_KINDS, corpus_rows

    parts = source[len(GENERATED_PREFIX) :].split(":")
    try:
        kind = parts[0]
        limit = int(parts[1]) if len(parts) > 1 else None
        seed = int(parts[2]) if len(parts) > 2 else 0
        if kind not in CORPUS_KINDS or len(parts) > 3:
            raise ValueError(kind)
    except ValueError as exc:
        raise SFTError(
            f"{source}: expected {GENERATED_PREFIX}KIND[:LIMIT[:SEED]] with KIND one of "
            f"{', '.join(CORPUS_KINDS)}"
        ) from exc
    for i, row in enumerate(corpus_rows(kind, "train", limit=limit, seed=seed)):
        yield f"{source} row {i}", row


def _hub_rows(source: str) -> Iterable[tuple[str, Any]]:
    from openberry.data.datasets import hub_offline

    name, _, split = source.partition(":")
    split = split or "train"
    if hub_offline():
        raise SFTError(
            f"{source}: no such file, and the Hugging Face hub is offline "
            "(HF_HUB_OFFLINE/HF_DATASETS_OFFLINE); pass a local .jsonl/.json/.parquet file"
        )
    import datasets

    logger.info("loading %s[%s] from the Hugging Face hub", name, split)
    try:
        ds = datasets.load_dataset(name, split=split)
    except (ConnectionError, FileNotFoundError, ValueError, OSError) as exc:
        raise SFTError(
            f"{source}: no such file, and it could not be loaded from the hub ({exc})"
        ) from exc
    for n, raw in enumerate(ds, start=1):
        yield f"hub:{name}[{split}] row {n}", raw


def _classify(raw: Any, where: str, text_f: str, prompt_f: str, completion_f: str) -> Row:
    if not isinstance(raw, dict):
        raise SFTError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    prompt, completion = raw.get(prompt_f), raw.get(completion_f)
    if prompt is not None and completion is not None:
        if not isinstance(prompt, str) or not isinstance(completion, str):
            raise SFTError(f"{where}: {prompt_f!r} and {completion_f!r} must be strings")
        spans = _ignore_spans(raw.get(IGNORE_SPANS_FIELD, ()), len(completion), where)
        return Row(where, prompt=prompt, completion=completion, ignore_spans=spans)
    text = raw.get(text_f)
    if text is not None:
        if not isinstance(text, str):
            raise SFTError(f"{where}: {text_f!r} must be a string, got {type(text).__name__}")
        return Row(where, text=text)
    raise SFTError(
        f"{where}: the row has neither a {text_f!r} field nor both {prompt_f!r} and "
        f"{completion_f!r} (fields: {', '.join(sorted(raw)) or 'none'}); set --text-field or "
        "--prompt-field/--completion-field"
    )


def _ignore_spans(raw: Any, length: int, where: str) -> tuple[tuple[int, int], ...]:
    """The row's ``ignore_spans`` as sorted (start, end) pairs inside the completion."""
    bad = SFTError(f"{where}: {IGNORE_SPANS_FIELD!r} must be a list of [start, end] integer pairs")
    if not isinstance(raw, list | tuple):
        raise bad
    spans = []
    for pair in raw:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise bad
        if any(isinstance(v, bool) or not isinstance(v, int) for v in pair):
            raise bad
        a, b = pair
        if not 0 <= a < b <= length:
            raise SFTError(
                f"{where}: {IGNORE_SPANS_FIELD!r} span [{a}, {b}] is not inside the "
                f"completion ({length} characters)"
            )
        spans.append((a, b))
    return tuple(sorted(spans))


def split_rows(rows: Sequence[Row], fraction: float, seed: int) -> tuple[list[Row], list[Row]]:
    """A seeded (train, eval) split holding out ``round(fraction * n)`` rows (at least one when
    `fraction` > 0 and there are two or more rows)."""
    n_eval = 0
    if fraction > 0 and len(rows) >= 2:
        n_eval = min(len(rows) - 1, max(1, round(fraction * len(rows))))
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_eval])
    return (
        [r for i, r in enumerate(rows) if i not in held],
        [r for i, r in enumerate(rows) if i in held],
    )


# ----------------------------------------------------------------------------------------------
# Tokenisation, packing, collation


class TokenDataset:
    """Tokenised sequences, each with the count of leading tokens that carry no loss.

    Items are ``{"input_ids": 1-D int array, "prompt_length": int}``, plus ``"ignore"`` (token
    ranges ``(start, end)`` past the prompt that carry no loss either) where a row has any.
    `grouped` is True when the sequences have varying lengths (pairs, unpacked documents), so
    training batches are grouped by length.
    """

    def __init__(
        self,
        sequences: list[Any],
        prompt_lengths: list[int],
        grouped: bool,
        ignored: list[tuple[tuple[int, int], ...]] | None = None,
    ) -> None:
        self.sequences = sequences
        self.prompt_lengths = prompt_lengths
        self.grouped = grouped
        self.ignored = ignored or [()] * len(sequences)

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = {"input_ids": self.sequences[index], "prompt_length": self.prompt_lengths[index]}
        if self.ignored[index]:
            item["ignore"] = self.ignored[index]
        return item

    @property
    def lengths(self) -> list[int]:
        """Token count of each sequence."""
        return [len(s) for s in self.sequences]

    @property
    def loss_tokens(self) -> int:
        """Tokens that carry loss, summed over the dataset."""
        past_prompts = zip(self.sequences, self.prompt_lengths, strict=True)
        ignored = sum(b - a for spans in self.ignored for a, b in spans)
        return sum(len(s) - p for s, p in past_prompts) - ignored


class SFTCollator:
    """Right-pads a list of `TokenDataset` items into a batch.

    Returns ``input_ids`` (padded with `pad_token_id`), ``attention_mask`` (0 on padding) and
    ``labels`` (the input ids, with -100 on the prompt, on an item's ``ignore`` ranges and on
    padding).
    """

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = int(pad_token_id)

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        labels = torch.full((len(features), width), -100, dtype=torch.long)
        for i, f in enumerate(features):
            row = torch.as_tensor(f["input_ids"], dtype=torch.long)
            n = len(row)
            ids[i, :n] = row
            mask[i, :n] = 1
            start = int(f.get("prompt_length", 0))
            labels[i, start:n] = row[start:]
            for a, b in f.get("ignore", ()):
                labels[i, a:b] = -100
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _pack_documents(
    doc_ids: Sequence[list[int]], max_length: int, keep_remainder: bool, label: str
) -> list[Any]:
    """Concatenate the documents (each ending in EOS) and cut the stream into blocks of exactly
    `max_length` tokens; the shorter last block is kept only with `keep_remainder`."""
    import numpy as np

    stream = np.fromiter(
        (t for ids in doc_ids for t in ids), dtype=np.int64, count=sum(map(len, doc_ids))
    )
    n_full = len(stream) // max_length
    blocks = list(stream[: n_full * max_length].reshape(n_full, max_length))
    if keep_remainder and len(stream) % max_length:
        blocks.append(stream[n_full * max_length :])
    logger.info(
        "%s: packed %d documents (%d tokens) into %d blocks of %d tokens (%d tokens dropped)",
        label,
        len(doc_ids),
        len(stream),
        len(blocks),
        max_length,
        0 if keep_remainder else len(stream) - n_full * max_length,
    )
    return blocks


def _pair_sequences(
    tokenizer: Any,
    pairs: Sequence[tuple[Any, Any]],
    spans: Sequence[tuple[tuple[int, int], ...]],
    eos: int,
    max_length: int,
    label: str,
) -> tuple[list[Any], list[int], list[tuple[tuple[int, int], ...]], int, int]:
    """Each pair as prompt + completion + EOS, cut to `max_length`, with its prompt length and
    the token ranges of its ``ignore_spans``.

    Returns (sequences, prompt lengths, ignored token ranges, how many were truncated, how many
    were dropped because the prompt alone fills `max_length`).
    """
    import numpy as np

    sequences: list[Any] = []
    prompt_lengths: list[int] = []
    ignored: list[tuple[tuple[int, int], ...]] = []
    truncated = dropped = 0
    encoded = _encode_pairs(tokenizer, pairs, label)
    for (prompt_ids, completion_ids), pair, row_spans in zip(encoded, pairs, spans, strict=True):
        ids = prompt_ids + completion_ids + [eos]
        if len(prompt_ids) >= max_length:
            dropped += 1
            continue
        truncated += len(ids) > max_length
        sequences.append(np.asarray(ids[:max_length], dtype=np.int64))
        prompt_lengths.append(len(prompt_ids))
        ranges = _span_tokens(tokenizer, pair, prompt_ids, completion_ids, row_spans)
        ignored.append(tuple((a, min(b, max_length)) for a, b in ranges if a < max_length))
    return sequences, prompt_lengths, ignored, truncated, dropped


def _span_tokens(
    tokenizer: Any,
    pair: tuple[str, str],
    prompt_ids: list[int],
    completion_ids: list[int],
    spans: tuple[tuple[int, int], ...],
) -> list[tuple[int, int]]:
    """Token ranges (positions in prompt + completion) of the completion tokens whose first
    character lies in one of `spans` (character spans of the completion)."""
    if not spans:
        return []
    if not getattr(tokenizer, "is_fast", False):
        raise SFTError(f"{IGNORE_SPANS_FIELD!r} needs a fast tokenizer (character offsets)")
    prompt, completion = pair
    joint = tokenizer(prompt + completion, return_offsets_mapping=True)
    if list(joint["input_ids"]) == prompt_ids + completion_ids:
        base, offsets = len(prompt), joint["offset_mapping"][len(prompt_ids) :]
    else:
        alone = tokenizer(completion, add_special_tokens=False, return_offsets_mapping=True)
        base, offsets = 0, alone["offset_mapping"]
    flags = [any(a <= start - base < b for a, b in spans) for start, _ in offsets]
    ranges: list[tuple[int, int]] = []
    for k, flag in enumerate(flags):
        pos = len(prompt_ids) + k
        if flag and ranges and ranges[-1][1] == pos:
            ranges[-1] = (ranges[-1][0], pos + 1)
        elif flag:
            ranges.append((pos, pos + 1))
    return ranges


def build_dataset(
    rows: Sequence[Row],
    tokenizer: Any,
    *,
    max_length: int,
    packing: bool,
    keep_remainder: bool,
    label: str = "train",
) -> TokenDataset:
    """Tokenise rows into a `TokenDataset` (packing and truncation: module docstring).

    Args:
        rows: documents and pairs.
        tokenizer: a transformers tokenizer with an EOS token.
        max_length: block size / longest sequence.
        packing: pack documents into blocks of exactly `max_length`.
        keep_remainder: keep the last, shorter packed block (for evaluation).
        label: name used in log messages.
    """
    import numpy as np

    eos = tokenizer.eos_token_id
    if eos is None:
        raise SFTError("the tokenizer has no EOS token; set one or pass --tokenizer DIR")
    docs = [r.text for r in rows if r.text is not None]
    pairs = [(r.prompt, r.completion) for r in rows if r.text is None]
    spans = [r.ignore_spans for r in rows if r.text is None]
    doc_ids = [[*ids, eos] for ids in _encode(tokenizer, docs, f"{label} documents")]
    if packing and doc_ids:
        sequences = _pack_documents(doc_ids, max_length, keep_remainder, label)
        truncated = 0
    else:
        sequences = [np.asarray(ids[:max_length], dtype=np.int64) for ids in doc_ids]
        truncated = sum(len(ids) > max_length for ids in doc_ids)
    prompt_lengths = [0] * len(sequences)
    ignored: list[tuple[tuple[int, int], ...]] = [()] * len(sequences)
    pair_seqs, pair_prompts, pair_ignored, pair_truncated, dropped = _pair_sequences(
        tokenizer, pairs, spans, eos, max_length, label
    )
    sequences += pair_seqs
    prompt_lengths += pair_prompts
    ignored += pair_ignored
    truncated += pair_truncated
    if truncated:
        logger.warning(
            "%s: %d rows longer than %d tokens were truncated", label, truncated, max_length
        )
    if dropped:
        logger.warning(
            "%s: %d pairs dropped: the prompt alone fills max_length=%d", label, dropped, max_length
        )
    grouped = bool(pairs) or (bool(doc_ids) and not packing)
    return TokenDataset(sequences, prompt_lengths, grouped, ignored)


def _encode(tokenizer: Any, texts: Sequence[str], what: str, **kwargs: Any) -> list[list[int]]:
    """Token ids of `texts`, tokenised in chunks with a progress bar (on a terminal)."""
    from tqdm.auto import tqdm

    out: list[list[int]] = []
    if not texts:
        return out
    chunk = 1024
    with tqdm(total=len(texts), desc=f"tokenizing {what}", disable=None) as bar:
        for start in range(0, len(texts), chunk):
            part = list(texts[start : start + chunk])
            out += [list(ids) for ids in tokenizer(part, **kwargs)["input_ids"]]
            bar.update(len(part))
    warn_unknown_tokens(tokenizer, texts, out, what)
    return out


def warn_unknown_tokens(
    tokenizer: Any, texts: Sequence[str], ids: Sequence[Sequence[int]], what: str
) -> int:
    """Log a warning naming the characters when some of `texts` tokenise to the unknown token
    (a model would learn to write ``<unk>`` there: a tokenizer trained on another corpus lacks
    them); return how many texts do."""
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return 0
    bad = [i for i, row in enumerate(ids) if unk in row]
    if bad:
        chars = sorted(
            {c for c in texts[bad[0]] if unk in tokenizer.encode(c, add_special_tokens=False)}
        )
        logger.warning(
            "%s: %d of %d texts contain characters the tokenizer cannot represent (they become "
            "its unknown token): %s in the first, text %d",
            what,
            len(bad),
            len(texts),
            "".join(chars) or "?",
            bad[0],
        )
    return len(bad)


def _encode_pairs(
    tokenizer: Any, pairs: Sequence[tuple[Any, Any]], label: str
) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, completion ids) of each pair; the boundary rule is in the module docstring."""
    if not pairs:
        return []
    prompts = _encode(tokenizer, [p for p, _ in pairs], f"{label} prompts")
    joints = _encode(tokenizer, [p + c for p, c in pairs], f"{label} prompt+completion")
    out: list[tuple[list[int], list[int]]] = []
    alone: list[int] = []
    for i, (p_ids, j_ids) in enumerate(zip(prompts, joints, strict=True)):
        n = len(p_ids)
        if j_ids[:n] == p_ids:
            out.append((p_ids, j_ids[n:]))
        else:
            out.append((p_ids, []))
            alone.append(i)
    if alone:
        logger.debug("%d prompts are not a prefix of prompt+completion", len(alone))
        completions = _encode(
            tokenizer,
            [pairs[i][1] for i in alone],
            f"{label} completions",
            add_special_tokens=False,
        )
        for i, ids in zip(alone, completions, strict=True):
            out[i] = (out[i][0], ids)
    return out


# ----------------------------------------------------------------------------------------------
# Output directory, checkpoints, metrics


def _checkpoint_dirs(output_dir: Path) -> list[tuple[int, Path]]:
    if not output_dir.is_dir():
        return []
    found = []
    for p in output_dir.iterdir():
        m = _CHECKPOINT_RE.match(p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    return sorted(found)


def last_checkpoint(output_dir: str | Path) -> Path | None:
    """The highest-step ``checkpoint-N`` in `output_dir` whose ``trainer_state.json`` (written
    last by Trainer) exists and parses; None if there is none."""
    for _, path in reversed(_checkpoint_dirs(Path(output_dir))):
        state = path / "trainer_state.json"
        try:
            json.loads(state.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            logger.warning("ignoring incomplete checkpoint %s", path)
            continue
        return path
    return None


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    """The parseable lines of a metrics file (a line cut by a kill is skipped)."""
    lines = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                lines.append(row)
    return lines


def _truncate_metrics(path: Path, max_step: int) -> float:
    """Keep the lines with ``step <= max_step``, less the end-of-call summaries (``train_runtime``
    lines: the resumed call writes its own); return the last kept ``elapsed_s`` (or 0)."""
    kept = [
        r
        for r in _read_metrics(path)
        if int(r.get("step", 0)) <= max_step and "train_runtime" not in r
    ]
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))
    return max((float(r.get("elapsed_s", 0.0)) for r in kept), default=0.0)


def _metrics_callback(path: Path, elapsed_offset: float) -> Any:
    from transformers import TrainerCallback

    class MetricsLog(TrainerCallback):
        """Appends every Trainer log to `path` as one JSON line (flushed per line)."""

        def __init__(self) -> None:
            self.t0 = time.monotonic()

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if not state.is_world_process_zero:  # one writer under accelerate launch
                return
            row: dict[str, Any] = {
                "step": int(state.global_step),
                "epoch": round(float(state.epoch or 0.0), 6),
                "tokens_seen": int(state.num_input_tokens_seen),
                "elapsed_s": round(elapsed_offset + time.monotonic() - self.t0, 3),
            }
            for key, value in (logs or {}).items():
                if key not in row and isinstance(value, (int, float, str)):
                    row[key] = value
            with path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()

    return MetricsLog()


# ----------------------------------------------------------------------------------------------
# Trainer subclass


@functools.cache
def _trainer_class() -> type:
    import torch
    from transformers import Trainer
    from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

    class EpochSeededLengthSampler(LengthGroupedSampler):
        """`LengthGroupedSampler` whose shuffle of epoch e is seeded by ``seed + e``."""

        def __init__(self, batch_size: int, lengths: list[int], seed: int) -> None:
            super().__init__(batch_size, lengths=lengths)
            self.seed = seed
            self.epoch = 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = int(epoch)

        def __iter__(self) -> Any:
            gen = torch.Generator().manual_seed(self.seed + self.epoch)
            return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=gen))

    class SFTTrainer(Trainer):
        """Trainer with the epoch-seeded length-grouped sampler and non-padding token counts."""

        def _get_train_sampler(self, *args: Any, **kwargs: Any) -> Any:
            dataset = args[0] if args and args[0] is not None else self.train_dataset
            if isinstance(dataset, TokenDataset) and dataset.grouped:
                seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
                size = self.args.train_batch_size * self.args.gradient_accumulation_steps
                return EpochSeededLengthSampler(size, dataset.lengths, seed)
            return super()._get_train_sampler(*args, **kwargs)

        def training_step(self, model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
            mask = inputs.get("attention_mask")
            if mask is not None:
                self.state.num_input_tokens_seen += int(mask.sum())
            return super().training_step(model, inputs, *args, **kwargs)

    return SFTTrainer


# ----------------------------------------------------------------------------------------------
# Model and tokenizer


def _torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, name)


def _load_tokenizer(config: SFTConfig, train_rows: Sequence[Row], output_dir: Path) -> Any:
    from transformers import AutoTokenizer

    from openberry.models.builtin import resolve_model
    from openberry.models.gguf import load_tokenizer

    source = config.tokenizer
    if source is None and config.from_scratch is None:
        source = resolve_model(config.model)
    if source is not None:
        try:
            return load_tokenizer(source)
        except (OSError, ValueError) as exc:
            raise SFTError(f"could not load the tokenizer {source!r}: {exc}") from exc
    saved = output_dir / "tokenizer"
    if config.resume and saved.is_dir():
        logger.info("resuming: reusing the tokenizer trained earlier in %s", saved)
        return AutoTokenizer.from_pretrained(str(saved))
    from openberry.formats.openlongcot import SPECIAL_TOKENS
    from openberry.formats.prompts import JUDGE_NO, JUDGE_YES
    from openberry.training.tokenizer import train_tokenizer

    positions = _scratch_values(config).get("max_position_embeddings")
    texts = [r.text if r.text is not None else f"{r.prompt}{r.completion}" for r in train_rows]
    tokenizer = train_tokenizer(
        texts,
        vocab_size=config.vocab_size,
        special_tokens=(*SPECIAL_TOKENS, JUDGE_YES, JUDGE_NO),
        model_max_length=positions if isinstance(positions, int) else config.max_length,
    )
    # Saved beside and renamed into place: a kill mid-save must not leave a half tokenizer that
    # --resume would load (it would fail, or train with another vocabulary).
    tmp = output_dir / "tokenizer.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer.save_pretrained(str(tmp))
    shutil.rmtree(saved, ignore_errors=True)
    tmp.replace(saved)
    return tokenizer


def _scratch_values(config: SFTConfig) -> dict[str, Any]:
    """The --from-scratch JSON model config, checked to be an object with a ``model_type``."""
    path = Path(str(config.from_scratch))
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SFTError(f"{path}: cannot read the model config ({exc.strerror or exc})") from exc
    except ValueError as exc:
        raise SFTError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(values, dict) or "model_type" not in values:
        raise SFTError(f'{path}: expected a JSON object with a "model_type" (e.g. "llama")')
    return dict(values)


def _load_model(config: SFTConfig, tokenizer: Any) -> Any:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from openberry.models.builtin import resolve_model
    from openberry.models.gguf import load_causal_lm

    dtype = _torch_dtype(config.dtype)
    if config.from_scratch is None:
        try:
            return load_causal_lm(resolve_model(config.model), label=config.model, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise SFTError(f"could not load model {config.model!r}: {exc}") from exc
    path = Path(config.from_scratch)
    values = _scratch_values(config)
    model_type = values.pop("model_type")
    values.update(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    try:
        model_config = AutoConfig.for_model(model_type, **values)
        torch.manual_seed(config.seed)
        model = AutoModelForCausalLM.from_config(model_config)
    except (ValueError, TypeError, KeyError) as exc:
        raise SFTError(f"{path}: not a causal-LM config ({exc})") from exc
    positions = getattr(model_config, "max_position_embeddings", None)
    if positions is not None and positions < config.max_length:
        raise SFTError(
            f"{path}: max_position_embeddings={positions} is below max_length={config.max_length}"
        )
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("built a %s model from scratch: %.2fM parameters", model_type, n_params / 1e6)
    return model.to(dtype=dtype)


def _lora_config(config: Any) -> Any:
    """The peft `LoraConfig` of a config with the ``lora_*`` fields of `SFTConfig`."""
    from peft import LoraConfig

    return LoraConfig(
        task_type="CAUSAL_LM",
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_target_modules),
    )


def _apply_lora(model: Any, config: SFTConfig) -> Any:
    import torch
    from peft import get_peft_model

    lora = _lora_config(config)
    torch.manual_seed(config.seed)
    try:
        model = get_peft_model(model, lora)
    except ValueError as exc:
        raise SFTError(f"cannot add LoRA adapters: {exc}") from exc
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info(
        "LoRA: %d of %d parameters train (%.2f%%)", trainable, total, 100 * trainable / total
    )
    return model


def _save_final(model: Any, tokenizer: Any, path: Path, save_dtype: str | None, lora: bool) -> None:
    """Model (or adapter) and tokenizer as safetensors, weights cast to `save_dtype` if set."""
    path.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {}
    if save_dtype is not None:
        dtype = _torch_dtype(save_dtype)
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        cast: dict[tuple[int, Any], Any] = {}  # keeps tied weights tied
        state = {}
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and (not lora or name in trainable):
                key = (tensor.data_ptr(), tensor.dtype)
                if key not in cast:
                    cast[key] = tensor.detach().to(dtype=dtype, copy=True)
                tensor = cast[key]
            state[name] = tensor
        kwargs["state_dict"] = state
    model.save_pretrained(str(path), **kwargs)
    if save_dtype is not None and not lora:
        config_file = path / "config.json"
        values = json.loads(config_file.read_text(encoding="utf-8"))
        for key in ("dtype", "torch_dtype"):
            if key in values:
                values[key] = save_dtype
        write_text_atomic(config_file, json.dumps(values, indent=2, sort_keys=True) + "\n")
    tokenizer.save_pretrained(str(path))


# ----------------------------------------------------------------------------------------------
# The run


def _training_args(
    config: SFTConfig, has_eval: bool, resuming: bool, args_class: Any = None, **extra: Any
) -> Any:
    """`TrainingArguments` (or `args_class`, a subclass such as TRL's ``DPOConfig``) from the
    config's optimisation, logging and checkpoint fields, with `extra` settings on top."""
    import torch
    from transformers import SchedulerType, TrainingArguments

    args_class = args_class or TrainingArguments

    try:
        SchedulerType(config.lr_scheduler)
    except ValueError:
        names = ", ".join(s.value for s in SchedulerType)
        raise SFTError(f"unknown lr_scheduler {config.lr_scheduler!r}; one of: {names}") from None
    report_to: Any = "none"
    if config.tensorboard:
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:
            raise SFTError(
                "--tensorboard needs the tensorboard package: pip install openberry[tensorboard]"
            )
        report_to = ["tensorboard"]
    values: dict[str, Any] = {
        "output_dir": config.output_dir,
        "max_steps": config.max_steps,
        "per_device_train_batch_size": config.batch_size,
        "per_device_eval_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.grad_accum,
        "learning_rate": config.learning_rate,
        "lr_scheduler_type": config.lr_scheduler,
        "warmup_steps": config.warmup_steps,
        "weight_decay": config.weight_decay,
        "adam_beta2": config.adam_beta2,
        "max_grad_norm": config.max_grad_norm,
        "logging_steps": config.logging_steps,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": config.save_total_limit,
        "eval_strategy": "steps" if has_eval else "no",
        "eval_steps": config.eval_steps,
        "eval_on_start": has_eval and config.eval_on_start and not resuming,
        "prediction_loss_only": True,
        "seed": config.seed,
        "data_seed": config.seed,
        "report_to": report_to,
        "disable_tqdm": False,
        "use_cpu": not torch.cuda.is_available(),
        "remove_unused_columns": False,
        "label_names": ["labels"],
        "dataloader_num_workers": 0,
        "save_safetensors": True,
    }
    if "min_lr" in config.lr_scheduler:
        values["lr_scheduler_kwargs"] = {"min_lr_rate": config.min_lr_rate}
    values.update(extra)
    known = {f.name for f in dataclasses.fields(args_class)}
    values = {k: v for k, v in values.items() if k in known}  # e.g. save_safetensors left v5
    try:
        return args_class(**values)
    except ValueError as exc:
        raise SFTError(f"invalid training settings: {exc}") from exc


class _Finished(Exception):
    """Leaves `Trainer.train` of a run resumed at ``max_steps`` before its first step."""


def train_from(trainer: Any, checkpoint: Path | None) -> None:
    """``trainer.train(resume_from_checkpoint=checkpoint)``, except that a run resumed from a
    checkpoint at ``max_steps`` (killed while saving final/, or resumed once finished) takes no
    step: Trainer checks ``max_steps`` only after a step, so it would train step max_steps + 1
    whenever max_steps is not a multiple of the steps per epoch. Trainer has loaded the
    checkpoint's weights and state when ``on_train_begin`` runs."""
    from transformers import TrainerCallback

    class StopWhenFinished(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step >= state.max_steps > 0:
                raise _Finished

    callback = StopWhenFinished()
    trainer.add_callback(callback)
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except _Finished:
        logger.info("resumed at step %d, max_steps: nothing to train", trainer.state.global_step)
    finally:
        trainer.remove_callback(callback)


def _check_output_dir(config: SFTConfig) -> Path | None:
    """Refuse an output dir with checkpoints unless resuming; the checkpoint to resume from."""
    out = Path(config.output_dir)
    if out.exists() and not out.is_dir():
        raise SFTError(f"{out}: exists and is not a directory")
    if _checkpoint_dirs(out) and not config.resume:
        raise SFTError(f"output dir {out} has checkpoints; pass --resume or choose another --out")
    checkpoint = last_checkpoint(out) if config.resume else None
    if checkpoint is not None:
        logger.info("resuming from %s", checkpoint)
    elif config.resume:
        logger.info("resume: no complete checkpoint in %s; starting from scratch", out)
    return checkpoint


def _reset_metrics(path: Path, checkpoint: Path | None) -> float:
    """Cut the metrics logged after `checkpoint` (all of them without one); return the elapsed
    seconds logged up to it."""
    if checkpoint is None:
        path.unlink(missing_ok=True)
        return 0.0
    match = _CHECKPOINT_RE.match(checkpoint.name)
    return _truncate_metrics(path, int(match.group(1)) if match else 0)


def _load_splits(config: SFTConfig) -> tuple[list[Row], list[Row]]:
    """Training and evaluation rows: ``eval_data`` when given, else a held-out fraction."""
    fields = {
        "text_field": config.text_field,
        "prompt_field": config.prompt_field,
        "completion_field": config.completion_field,
    }
    train_rows = load_rows(config.data, **fields)
    if config.eval_data:
        eval_rows = load_rows(config.eval_data, **fields)
    else:
        train_rows, eval_rows = split_rows(train_rows, config.eval_fraction, config.seed)
    if not train_rows:
        raise SFTError("no training rows")
    return train_rows, eval_rows


def _build_datasets(
    config: SFTConfig, tokenizer: Any, train_rows: Sequence[Row], eval_rows: Sequence[Row]
) -> tuple[TokenDataset, TokenDataset | None]:
    """Tokenise both splits; the eval set is None when it has no rows or no sequences."""
    build = functools.partial(
        build_dataset, tokenizer=tokenizer, max_length=config.max_length, packing=config.packing
    )
    train_ds = build(train_rows, keep_remainder=False, label="train")
    if len(train_ds) == 0:
        raise SFTError(
            f"no training sequences: the data has fewer than max_length={config.max_length} "
            "tokens to pack; lower --max-length or add data"
        )
    eval_ds = build(eval_rows, keep_remainder=True, label="eval") if eval_rows else None
    if eval_ds is not None and len(eval_ds) == 0:
        eval_ds = None
    logger.info(
        "train: %d sequences (%d loss tokens); eval: %d sequences",
        len(train_ds),
        train_ds.loss_tokens,
        len(eval_ds) if eval_ds is not None else 0,
    )
    return train_ds, eval_ds


def _make_trainer(
    config: SFTConfig,
    model: Any,
    tokenizer: Any,
    datasets: tuple[TokenDataset, TokenDataset | None],
    checkpoint: Path | None,
    elapsed_before: float,
    callbacks: Sequence[Any],
) -> Any:
    """The Trainer for this run; writes ``sft_config.json`` once the settings are valid."""
    out = Path(config.output_dir)
    train_ds, eval_ds = datasets
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    args = _training_args(config, eval_ds is not None, checkpoint is not None)
    write_text_atomic(
        out / "sft_config.json", json.dumps(dataclasses.asdict(config), indent=2) + "\n"
    )
    return _trainer_class()(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        data_collator=SFTCollator(pad),
        processing_class=tokenizer,
        callbacks=[_metrics_callback(out / METRICS_FILE, elapsed_before), *callbacks],
    )


def _final_eval_loss(
    trainer: Any, metrics: Sequence[dict[str, Any]], step: int, has_eval: bool
) -> float | None:
    """The eval loss logged at the last step, or a fresh evaluation when none was; None without
    an eval set."""
    if not has_eval:
        return None
    at_end = [r for r in metrics if "eval_loss" in r and r["step"] == step]
    if at_end:
        return float(at_end[-1]["eval_loss"])
    return float(trainer.evaluate()["eval_loss"])


def _finish(
    config: SFTConfig, trainer: Any, tokenizer: Any, has_eval: bool, started: float
) -> SFTResult:
    """Save the final model and ``result.json`` (main process only) and return the result."""
    out = Path(config.output_dir)
    step = int(trainer.state.global_step)
    metrics = _read_metrics(out / METRICS_FILE)
    eval_loss = _final_eval_loss(trainer, metrics, step, has_eval)
    initial = [r["eval_loss"] for r in metrics if "eval_loss" in r and r["step"] == 0]
    losses = [r["loss"] for r in metrics if "loss" in r]
    final_dir = out / FINAL_DIR
    if trainer.is_world_process_zero():
        _save_final(trainer.model, tokenizer, final_dir, config.save_dtype, config.lora)
    result = SFTResult(
        output_dir=str(out),
        step=step,
        train_loss=float(losses[-1]) if losses else None,
        eval_loss=eval_loss,
        initial_eval_loss=float(initial[0]) if initial else None,
        tokens_seen=int(trainer.state.num_input_tokens_seen),
        wall_seconds=round(time.monotonic() - started, 3),
        final_dir=str(final_dir),
    )
    if trainer.is_world_process_zero():
        write_text_atomic(
            out / "result.json", json.dumps(dataclasses.asdict(result), indent=2) + "\n"
        )
    if result.eval_loss is not None and not math.isfinite(result.eval_loss):
        logger.warning("the final eval loss is not finite: %s", result.eval_loss)
    return result


def train_sft(
    config: SFTConfig,
    *,
    model: Any = None,
    tokenizer: Any = None,
    callbacks: Sequence[Any] = (),
) -> SFTResult:
    """Run SFT / continued pretraining as `config` says (behaviour: module docstring).

    Args:
        config: the run's settings.
        model: an already-built causal LM (tests), used as given (``config.dtype`` is not
            applied); ``config.model`` is then only a label.
        tokenizer: its tokenizer (default: loaded from ``config.tokenizer`` or the model, or
            trained for ``from_scratch``).
        callbacks: extra `transformers.TrainerCallback` objects.

    Returns:
        The `SFTResult`, also written to ``output_dir/result.json``.

    Raises:
        SFTError: bad data, settings, model, or an output dir that has checkpoints while
            ``resume`` is off.
    """
    import torch

    started = time.monotonic()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    checkpoint = _check_output_dir(config)
    out = Path(config.output_dir)
    train_rows, eval_rows = _load_splits(config)
    out.mkdir(parents=True, exist_ok=True)
    elapsed_before = _reset_metrics(out / METRICS_FILE, checkpoint)
    if tokenizer is None:
        tokenizer = _load_tokenizer(config, train_rows, out)
    if model is None:
        model = _load_model(config, tokenizer)
    if config.lora:
        model = _apply_lora(model, config)
    datasets = _build_datasets(config, tokenizer, train_rows, eval_rows)
    trainer = _make_trainer(
        config, model, tokenizer, datasets, checkpoint, elapsed_before, callbacks
    )
    train_from(trainer, checkpoint)
    return _finish(config, trainer, tokenizer, datasets[1] is not None, started)

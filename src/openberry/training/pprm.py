"""Training the pairwise preference reward model (PPRM, LLaMA-Berry section 2.3).

The judge reads `openberry.formats.prompts.judge_prompt` (question, solution A, solution B,
ending at "Is solution A better than solution B? ") and the search takes
``P(A better) = P(Yes) / (P(Yes) + P(No))`` (`openberry.search.scorers.judge_preferences`).
``berry train pprm`` fits that from pair rows (docs/training.md), both orders of each pair:

- ``loss="classify"`` (default): the two-token head of `openberry.training.token_head` with
  ``(JUDGE_YES, JUDGE_NO)``: binary cross-entropy of the renormalised P(Yes) against the label.
- ``loss="dpo"``: LLaMA-Berry's objective, TRL's `DPOTrainer` on (prompt, chosen, rejected) with
  chosen/rejected the answers ``Yes``/``No`` the label implies (each followed by EOS, as TRL
  appends it); the reference is the initial model: a frozen copy for full weights, the
  adapter-disabled model with LoRA (TRL's own rule). Departure from the Trainer-only path:
  ``resume`` continues from the checkpoint but TRL draws the data order, so it is not tested
  bit for bit as the classify path is.

Held-out rows: ``eval_file``, else ``eval_fraction`` of the problems (row ``id``; a pair's two
orders and all pairs of one problem stay on one side). Metrics (`pair_metrics`), before the
first step, every ``eval_steps`` and at the end: ``order_accuracy`` (each row alone: the
judge's P(Yes) on the label's side of 0.5) and ``pair_accuracy`` (both orders averaged:
``P(A > B) = (p_yes(a, b) + 1 - p_yes(b, a)) / 2``, correct when strictly on the label's side of
0.5; a pair with one order in the file counts that order). `judge_accuracy` measures the same
for any judge model through the backend, in the rows' prompt frame or in the ``likelihood``
frame, which needs no judge training beyond a policy's (`openberry.search.scorers`).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from openberry.formats.prompts import JUDGE_NO, JUDGE_YES, judge_prompt
from openberry.search.scorers import (
    LIKELIHOOD_FRAME,
    parted_preference,
    parting_items,
    parting_lines,
)
from openberry.training.sft import SFTError
from openberry.training.token_head import HeadConfig, HeadResult, HeadRow, split_by_group

__all__ = [
    "PPRMConfig",
    "judge_accuracy",
    "load_pair_rows",
    "pair_metrics",
    "pair_row",
    "train_pprm",
]

logger = logging.getLogger(__name__)

LOSSES: tuple[str, ...] = ("classify", "dpo")


@dataclass(frozen=True)
class PPRMConfig(HeadConfig):
    """One ``berry train pprm`` run. Every field's docstring is its ``--help`` text."""

    loss: Literal["classify", "dpo"] = "classify"
    """classify: binary cross-entropy of P(Yes)/(P(Yes)+P(No)) against the label; dpo: TRL's
    DPO on chosen/rejected answers with the initial model as reference (LLaMA-Berry's)."""
    beta: float = 0.1
    """DPO beta (strength of the pull towards the reference model); dpo only."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss not in LOSSES:
            raise SFTError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.beta <= 0:
            raise SFTError(f"beta must be > 0, got {self.beta}")


# ----------------------------------------------------------------------------------------------
# Rows and metrics


def pair_row(raw: Mapping[str, Any], where: str = "row") -> HeadRow:
    """A pair row (``prompt`` -- or ``question``/``solution_a``/``solution_b`` --, ``label``,
    ``pair``, optional ``id``) as a `HeadRow` with target = label."""
    prompt = raw.get("prompt")
    if prompt is None and all(k in raw for k in ("question", "solution_a", "solution_b")):
        prompt = judge_prompt(raw["question"], raw["solution_a"], raw["solution_b"])
    label = raw.get("label")
    if not isinstance(prompt, str) or label not in (0, 1) or isinstance(label, bool):
        raise SFTError(
            f"{where}: a pair row needs a string 'prompt' and a 'label' of 0 or 1 "
            f"(fields: {', '.join(sorted(raw)) or 'none'})"
        )
    pair = str(raw.get("pair", where))
    group = str(raw["id"]) if raw.get("id") is not None else pair
    return HeadRow(prompt=prompt, target=float(label), group=group, pair=pair, label=int(label))


def load_pair_rows(paths: Iterable[str]) -> list[HeadRow]:
    """The pair rows of JSONL files.

    Raises:
        SFTError: a missing file or a row that is not a pair row (file and line named).
    """
    from openberry.jsonl import JSONLError, iter_jsonl

    rows = []
    for path in paths:
        try:
            rows += [pair_row(raw, f"{path}:{n}") for n, raw in iter_jsonl(path)]
        except JSONLError as exc:
            raise SFTError(str(exc)) from exc
    return rows


def pair_metrics(rows: Sequence[HeadRow], probs: Sequence[float]) -> dict[str, float | None]:
    """``order_accuracy``, ``pair_accuracy``, ``pairs`` of judge probabilities P(A better).

    The probability a row puts on the right answer is ``q`` when its label is 1, else ``1 - q``;
    a row is right when that is over 0.5, and a pair when the mean over its orders is.
    """
    if not rows:
        return {"order_accuracy": None, "pair_accuracy": None, "pairs": 0}
    right: dict[str, list[float]] = {}
    for row, q in zip(rows, probs, strict=True):
        right.setdefault(str(row.pair), []).append(q if row.label == 1 else 1.0 - q)
    order = sum(p > 0.5 for ps in right.values() for p in ps) / len(rows)
    pair = sum(sum(ps) / len(ps) > 0.5 for ps in right.values()) / len(right)
    return {"order_accuracy": order, "pair_accuracy": pair, "pairs": len(right)}


def judge_accuracy(
    judge: Any,
    rows: Sequence[HeadRow | Mapping[str, Any]],
    batch_size: int = 64,
    frame: str = "prompt",
) -> dict[str, float | None]:
    """Pair and order accuracy (`pair_metrics`) of any judge on pair rows.

    Args:
        judge: a `Policy` (``next_token_probs``, and ``score`` for the likelihood frame), a
            `ModelSpec`, or a model name/directory (built as ``ModelSpec(judge)``, e.g.
            ``berry-tiny`` or ``RUN/final``).
        rows: `HeadRow`s or raw pair rows (dicts); the likelihood frame needs raw rows with
            ``question``, ``solution_a`` and ``solution_b``.
        batch_size: prompts per backend call.
        frame: ``prompt`` (each row's own prompt, answered Yes/No, as the row's frame was
            extracted) or ``likelihood`` (`openberry.search.scorers.likelihood_preference`).

    Returns:
        ``order_accuracy``, ``pair_accuracy``, ``pairs``, ``rows`` and ``seconds``.
    """
    from openberry.models.spec import ModelSpec

    started = time.monotonic()
    if not hasattr(judge, "next_token_probs"):
        judge = (judge if isinstance(judge, ModelSpec) else ModelSpec(str(judge))).build()
    heads = [r if isinstance(r, HeadRow) else pair_row(r, f"row {i}") for i, r in enumerate(rows)]
    if frame == LIKELIHOOD_FRAME:
        probs = _likelihood_probs(judge, rows, batch_size)
    elif frame == "prompt":
        probs = _yes_probs(judge, [r.prompt for r in heads], batch_size)
    else:
        raise SFTError(f"unknown judge frame {frame!r}; choose prompt or likelihood")
    out = pair_metrics(heads, probs)
    out.update(rows=len(heads), seconds=round(time.monotonic() - started, 3))
    return out


def _yes_probs(judge: Any, prompts: Sequence[str], batch_size: int) -> list[float]:
    probs: list[float] = []
    for start in range(0, len(prompts), batch_size):
        for pr in judge.next_token_probs(
            prompts[start : start + batch_size], (JUDGE_YES, JUDGE_NO)
        ):
            yes, no = pr.get(JUDGE_YES, 0.0), pr.get(JUDGE_NO, 0.0)
            probs.append(yes / (yes + no) if yes + no > 0 else 0.5)
    return probs


def _likelihood_probs(
    judge: Any, rows: Sequence[HeadRow | Mapping[str, Any]], batch_size: int
) -> list[float]:
    parts = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping) or not all(
            isinstance(row.get(k), str) for k in ("question", "solution_a", "solution_b")
        ):
            raise SFTError(f"row {i}: the likelihood frame needs question, solution_a, solution_b")
        parts.append(parting_lines(row["question"], row["solution_a"], row["solution_b"]))
    items = parting_items(parts)
    logps: dict[tuple[str, str], float] = {}
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        scored = judge.score([c for c, _ in chunk], [x for _, x in chunk])
        logps.update({item: sum(lp) for item, lp in zip(chunk, scored, strict=True)})
    return [parted_preference(p, logps) for p in parts]


# ----------------------------------------------------------------------------------------------
# Training


def _splits(config: PPRMConfig) -> tuple[list[HeadRow], list[HeadRow]]:
    rows = load_pair_rows(config.data)
    if config.eval_file:
        return rows, load_pair_rows([config.eval_file])
    return split_by_group(rows, config.eval_fraction, config.seed)


def train_pprm(
    config: PPRMConfig,
    *,
    model: Any = None,
    tokenizer: Any = None,
    callbacks: Sequence[Any] = (),
) -> HeadResult:
    """Train the judge as `config` says (module docstring); ``final/`` loads as ``--judge``.

    Args:
        config: the run's settings.
        model, tokenizer: an already-built causal LM and its tokenizer (tests); default: loaded
            from ``config.model``.
        callbacks: extra `transformers.TrainerCallback` objects.

    Raises:
        SFTError: bad rows, settings, model, or an output dir with checkpoints and no resume.
    """
    from openberry.training.token_head import train_head

    train_rows, eval_rows = _splits(config)
    if not train_rows:
        raise SFTError("no training pairs")
    logger.info(
        "pairs: %d training rows, %d held-out rows (%d held-out pairs)",
        len(train_rows),
        len(eval_rows),
        len({r.pair for r in eval_rows}),
    )
    if config.loss == "dpo":
        return _train_dpo(config, train_rows, eval_rows, model, tokenizer, callbacks)
    return train_head(
        config,
        name="pprm",
        train_rows=train_rows,
        eval_rows=eval_rows,
        tokens=(JUDGE_YES, JUDGE_NO),
        metrics_fn=pair_metrics,
        model=model,
        tokenizer=tokenizer,
        callbacks=callbacks,
    )


def _dpo_dataset(rows: Sequence[HeadRow]) -> Any:
    import datasets

    return datasets.Dataset.from_list(
        [
            {
                "prompt": r.prompt,
                "chosen": JUDGE_YES if r.label else JUDGE_NO,
                "rejected": JUDGE_NO if r.label else JUDGE_YES,
            }
            for r in rows
        ]
    )


def _dpo_trainer_class() -> type:
    from trl import DPOTrainer

    from openberry.training.token_head import evaluate_head

    class JudgeDPOTrainer(DPOTrainer):
        """TRL's DPO trainer that also logs the judge's pair/order accuracy when it evaluates."""

        head_eval: Any = None
        head_tokens: tuple[int, int] = (0, 0)
        head_pad: int = 0

        def evaluate(
            self, eval_dataset: Any = None, ignore_keys: Any = None, metric_key_prefix: str = "eval"
        ) -> dict[str, float]:
            metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
            head = evaluate_head(
                self.model,
                self.head_eval,
                self.head_pad,
                self.head_tokens,
                self.args.per_device_eval_batch_size,
                pair_metrics,
            )
            extra = {f"{metric_key_prefix}_{k}": v for k, v in head.items() if k != "loss"}
            extra[f"{metric_key_prefix}_head_loss"] = head["loss"]
            self.log(extra)
            metrics.update(extra)
            return metrics

    return JudgeDPOTrainer


def _train_dpo(
    config: PPRMConfig,
    train_rows: Sequence[HeadRow],
    eval_rows: Sequence[HeadRow],
    model: Any,
    tokenizer: Any,
    callbacks: Sequence[Any],
) -> HeadResult:
    """DPO on the judge's answers with TRL (module docstring)."""
    import torch
    from trl import DPOConfig

    from openberry.training import token_head as th
    from openberry.training.sft import (
        METRICS_FILE,
        _lora_config,
        _metrics_callback,
        _training_args,
        train_from,
    )

    started = time.monotonic()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    checkpoint, elapsed = th.prepare_run(config, "pprm")
    if model is None or tokenizer is None:
        model, tokenizer = th.load_model_and_tokenizer(config)
    train_ds = th.build_head_dataset(train_rows, tokenizer, config.max_length, "train")
    eval_ds = th.build_head_dataset(eval_rows, tokenizer, config.max_length, "eval")
    if len(train_ds) == 0:
        raise SFTError("no training pairs (after dropping prompts over max_length)")
    has_eval = len(eval_ds) > 0
    args = _training_args(
        config,  # type: ignore[arg-type]
        has_eval,
        checkpoint is not None,
        args_class=DPOConfig,
        beta=config.beta,
        max_length=config.max_length + 8,
        gradient_checkpointing=False,
        bf16=False,
        fp16=False,
        label_names=None,
        prediction_loss_only=False,
        precompute_ref_log_probs=False,
    )
    trainer = _dpo_trainer_class()(
        model=model,
        ref_model=None if config.lora else copy.deepcopy(model).eval(),
        args=args,
        train_dataset=_dpo_dataset(train_ds.rows),
        eval_dataset=_dpo_dataset(eval_ds.rows) if has_eval else None,
        processing_class=tokenizer,
        peft_config=_lora_config(config) if config.lora else None,
        callbacks=[_metrics_callback(Path(config.output_dir) / METRICS_FILE, elapsed), *callbacks],
    )
    trainer.head_eval = eval_ds
    trainer.head_tokens = (th._token_id(tokenizer, JUDGE_YES), th._token_id(tokenizer, JUDGE_NO))
    trainer.head_pad = th.pad_id(tokenizer)
    train_from(trainer, checkpoint)
    step = int(trainer.state.global_step)
    initial, final_eval = th.logged_evals(config, step)
    if has_eval and final_eval is None:
        final_eval = {k[5:]: v for k, v in trainer.evaluate().items() if k.startswith("eval_")}
    final = th.save_final(config, trainer.model, tokenizer)
    return th.write_result(config, trainer, final, (initial, final_eval), started)

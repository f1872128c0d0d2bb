"""Training the rating-token value head (LLaMA-O1's value: the policy model itself rates a step).

The ``value`` scorer (`openberry.search.scorers`) reads ``p(<positive_rating>)`` renormalised
over the two rating tokens (`openberry.formats.openlongcot.RATING_TOKENS`) at the end of a
prompt built by `openberry.search.scorers.step_value_prompts` (`rating_value`). ``berry train
value`` fits it to value rows (docs/training.md): ``prompt`` ending at the rating slot and
``value`` in [0, 1], the Monte-Carlo share of verified-correct solutions through the step. The
loss is the two-token head's (`openberry.training.token_head`): binary cross-entropy of the
renormalised p(positive) against the soft target ``value``.

Held-out rows: ``eval_file``, else ``eval_fraction`` of the problems (row ``id``). Metrics
(`value_metrics`), before the first step, every ``eval_steps`` and at the end: ``mse`` (against
the soft target), ``brier`` (against the target binarised at 0.5) and ``auc`` (of the predicted
value for the binarised target; absent when the held-out rows have one class only).

The value head is the policy model itself: fitting it also moves the policy's next-token
distribution elsewhere. Check the policy after a value fit (docs/training.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from openberry.formats.openlongcot import RATING_TOKENS
from openberry.training.sft import SFTError
from openberry.training.token_head import HeadConfig, HeadResult, HeadRow, split_by_group

__all__ = ["ValueConfig", "auc", "load_value_rows", "train_value", "value_metrics", "value_row"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ValueConfig(HeadConfig):
    """One ``berry train value`` run. Every field's docstring is its ``--help`` text."""

    value_field: str = "value"
    """Field of a row's target value in [0, 1]."""


def value_row(raw: Mapping[str, Any], where: str = "row", field: str = "value") -> HeadRow:
    """A value row (``prompt``, ``value`` in [0, 1], optional ``id``) as a `HeadRow`."""
    prompt, value = raw.get("prompt"), raw.get(field)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1
    if not isinstance(prompt, str) or not ok:
        raise SFTError(
            f"{where}: a value row needs a string 'prompt' and a {field!r} in [0, 1] "
            f"(fields: {', '.join(sorted(raw)) or 'none'})"
        )
    group = str(raw["id"]) if raw.get("id") is not None else where
    return HeadRow(prompt=prompt, target=float(value), group=group)


def load_value_rows(paths: Iterable[str], field: str = "value") -> list[HeadRow]:
    """The value rows of JSONL files.

    Raises:
        SFTError: a missing file or a bad row (file and line named).
    """
    from openberry.jsonl import JSONLError, iter_jsonl

    rows = []
    for path in paths:
        try:
            rows += [value_row(raw, f"{path}:{n}", field) for n, raw in iter_jsonl(path)]
        except JSONLError as exc:
            raise SFTError(str(exc)) from exc
    return rows


def auc(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counting
    one half; None when either class is empty."""
    pos = [s for s, y in zip(scores, positive, strict=True) if y]
    neg = [s for s, y in zip(scores, positive, strict=True) if not y]
    if not pos or not neg:
        return None
    # Mann-Whitney U from ranks (average ranks for ties).
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(r for r, y in zip(ranks, positive, strict=True) if y)
    return (rank_sum - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def value_metrics(rows: Sequence[HeadRow], probs: Sequence[float]) -> dict[str, float | None]:
    """``mse`` (soft target), ``brier`` and ``auc`` (target binarised at 0.5) of predictions."""
    if not rows:
        return {"mse": None, "brier": None, "auc": None}
    targets = [r.target for r in rows]
    binary = [t >= 0.5 for t in targets]
    n = len(rows)
    return {
        "mse": sum((q - t) ** 2 for q, t in zip(probs, targets, strict=True)) / n,
        "brier": sum((q - float(y)) ** 2 for q, y in zip(probs, binary, strict=True)) / n,
        "auc": auc(probs, binary),
    }


def train_value(
    config: ValueConfig,
    *,
    model: Any = None,
    tokenizer: Any = None,
    callbacks: Sequence[Any] = (),
) -> HeadResult:
    """Fit the rating-token value (module docstring); ``final/`` loads as ``--model``.

    Args:
        config: the run's settings.
        model, tokenizer: an already-built causal LM and its tokenizer (tests); default: loaded
            from ``config.model``.
        callbacks: extra `transformers.TrainerCallback` objects.

    Raises:
        SFTError: bad rows, settings, model, or an output dir with checkpoints and no resume.
    """
    from openberry.training.token_head import train_head

    rows = load_value_rows(config.data, config.value_field)
    if config.eval_file:
        train_rows, eval_rows = rows, load_value_rows([config.eval_file], config.value_field)
    else:
        train_rows, eval_rows = split_by_group(rows, config.eval_fraction, config.seed)
    if not train_rows:
        raise SFTError("no training value rows")
    logger.info("values: %d training rows, %d held-out rows", len(train_rows), len(eval_rows))
    return train_head(
        config,
        name="value",
        train_rows=train_rows,
        eval_rows=eval_rows,
        tokens=(RATING_TOKENS["positive"], RATING_TOKENS["negative"]),
        metrics_fn=value_metrics,
        model=model,
        tokenizer=tokenizer,
        callbacks=callbacks,
    )

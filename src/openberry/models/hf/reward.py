"""`HFRewardModel`: a process reward model with a classification head (a `RewardModel`).

A reward-head PRM puts a classifier on a transformer instead of reading next-token
probabilities (the token-probability PRM of Math-Shepherd, Wang et al. 2024, arXiv 2312.08935,
needs no class of its own: any `Policy` answers it, `openberry.search.scorers`):

- **token classification** (``*ForTokenClassification``; Qwen2.5-Math-PRM's
  ``Qwen2ForProcessRewardModel``, Zhang et al. 2025, arXiv 2501.07301, is one through its own
  code): the reward of a step is the probability of the good class at the last token of the
  step's tag;
- **sequence classification** (``*ForSequenceClassification``, an outcome-style classifier used
  as a PRM): the reward of step k is the classifier's probability on the text up to and
  including step k's tag, one row per step.

A head with one logit gives ``sigmoid(logit)``; with more, ``softmax(logits)[label]``. The text
(question, steps, tags) is written by search (`openberry.search.scorers.prm_text`), which sends
each text with the character offsets where its tags end (`openberry.search.engine.StepRewards`);
the offsets are mapped to tokens with the fast tokenizer's offset mapping.

Loading: `reward_head` reads the checkpoint's ``config.json`` (its ``architectures``) without
running anything. A head transformers has is loaded with transformers' own class, never with
code from the checkpoint; a head only the checkpoint's code defines (an ``auto_map``) needs
``trust_remote_code=True`` (``--trust-remote-code``), and without it loading stops with a
`ModelError` that says so.

Where we depart: no chat template (a PRM trained in one, such as Qwen2.5-Math-PRM, gets it
written by the ``prm_prefix``/``prm_tag``/``prm_separator`` settings of the scorer); no KV
re-use across calls; a text longer than the model's context is not cut (the model refuses it).

Importing this module is light; torch and transformers are imported when a model is built.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openberry.models.base import ModelError

__all__ = ["HFRewardModel", "RewardHead", "reward_head"]

logger = logging.getLogger(__name__)

_KINDS = {
    "ForTokenClassification": "token",
    "ForSequenceClassification": "sequence",
    "ForProcessRewardModel": "token",
}
"""Architecture name suffix -> how its head is read."""
DEFAULT_BATCH_ROWS = 16
"""Rows (texts, or prefixes for a sequence head) per forward pass."""


@dataclass(frozen=True)
class RewardHead:
    """What `reward_head` found in a checkpoint's config."""

    architecture: str
    """The architecture named in ``config.json``."""
    kind: str
    """``token`` (read at each tag) or ``sequence`` (read on each prefix)."""
    remote: bool
    """The architecture is defined by the checkpoint's own code, not by transformers."""
    auto_class: str = ""
    """Remote code: the transformers auto class its ``auto_map`` names for the head."""


def _read_json(path: Path | str) -> dict[str, Any] | None:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _config_json(name_or_path: str) -> dict[str, Any] | None:
    """The checkpoint's ``config.json``: from a directory, or downloaded for a hub id; None for
    a file (``.gguf``), an adapter directory or anything unreadable."""
    from openberry.models.builtin import resolve_model

    try:
        resolved = resolve_model(str(name_or_path))
    except ModelError:
        return None
    path = Path(resolved)
    if path.is_dir():
        return _read_json(path / "config.json")
    if path.exists() or resolved.endswith(".gguf"):
        return None
    try:
        from huggingface_hub import hf_hub_download

        return _read_json(hf_hub_download(resolved, "config.json"))
    except Exception as exc:  # any failure: the causal-LM loader reports it
        logger.debug("no config.json for %s: %s", resolved, exc)
        return None


def _in_transformers(architecture: str) -> bool:
    import transformers

    try:
        return getattr(transformers, architecture, None) is not None
    except (ImportError, RuntimeError):
        return False


def reward_head(name_or_path: str, trust_remote_code: bool = False) -> RewardHead | None:
    """The reward head of a checkpoint, or None when its config names none (a causal LM).

    Raises:
        ModelError: the head needs the checkpoint's own code and `trust_remote_code` is off,
            or transformers lacks the architecture and the checkpoint ships no code for it.
    """
    config = _config_json(name_or_path) or {}
    archs = [a for a in config.get("architectures") or () if isinstance(a, str)]
    found = [(a, kind) for a in archs for suffix, kind in _KINDS.items() if a.endswith(suffix)]
    if not found:
        return None
    arch, kind = found[0]
    if _in_transformers(arch):
        return RewardHead(arch, kind, remote=False)
    if not config.get("auto_map"):
        raise ModelError(
            f"{name_or_path}: transformers has no architecture {arch} and the checkpoint "
            "ships no code for it (no auto_map in its config.json)"
        )
    if not trust_remote_code:
        raise ModelError(
            f"{name_or_path}: its reward head {arch} is defined by code in the model's "
            "repository, which loading would run; pass --trust-remote-code "
            "(ModelSpec.trust_remote_code) to allow it, for a repository you trust"
        )
    auto_map = config["auto_map"] if isinstance(config["auto_map"], dict) else {}
    wanted = (
        "AutoModelForTokenClassification"
        if kind == "token"
        else ("AutoModelForSequenceClassification")
    )
    auto_class = wanted if wanted in auto_map else "AutoModel"
    return RewardHead(arch, kind, remote=True, auto_class=auto_class)


def _load(name_or_path: str, head: RewardHead, dtype: Any) -> tuple[Any, Any]:
    import transformers
    from transformers import AutoTokenizer

    from openberry.models.builtin import resolve_model

    source = resolve_model(str(name_or_path))
    kwargs: dict[str, Any] = {} if dtype is None else {"dtype": dtype}
    try:
        if head.remote:
            logger.warning("running the code of %s (--trust-remote-code)", name_or_path)
            auto = getattr(transformers, head.auto_class)
            model = auto.from_pretrained(source, trust_remote_code=True, **kwargs)
        else:
            model = getattr(transformers, head.architecture).from_pretrained(source, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=head.remote)
    except (OSError, ValueError) as exc:
        raise ModelError(f"could not load reward model {name_or_path!r}: {exc}") from exc
    return model, tokenizer


class HFRewardModel:
    """A transformers model with a token or sequence classification head, as a process
    reward model (`openberry.models.base.RewardModel`).

    Args:
        model: the loaded classifier.
        tokenizer: its tokenizer (a fast one: rewards are placed by character offsets).
        kind: ``token`` or ``sequence`` (see the module docstring).
        name: the model name.
        batch_rows: most rows per forward pass.
        device: move the model there (None: keep).
        dtype: torch dtype or its name (None: keep).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        kind: str = "token",
        name: str | None = None,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        device: str | None = None,
        dtype: Any = None,
    ) -> None:
        import torch

        if kind not in ("token", "sequence"):
            raise ModelError(f"unknown reward head kind {kind!r} (token or sequence)")
        if not getattr(tokenizer, "is_fast", False):
            raise ModelError("a reward-head model needs a fast tokenizer (offset mapping)")
        self.torch = torch
        if dtype is not None and dtype != "auto":
            model = model.to(dtype=getattr(torch, dtype) if isinstance(dtype, str) else dtype)
        if device is not None:
            model = model.to(device)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.kind = kind
        self.name = name or str(getattr(model, "name_or_path", "") or "reward")
        self.batch_rows = max(1, batch_rows)
        self.device = next(model.parameters()).device
        pad = tokenizer.pad_token_id
        self.pad_token_id = int(pad if pad is not None else (tokenizer.eos_token_id or 0))
        if kind == "sequence" and getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = self.pad_token_id  # where the head finds the last token

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        *,
        device: str | None = None,
        dtype: str | None = None,
        trust_remote_code: bool = False,
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> HFRewardModel:
        """Load a reward-head checkpoint (a directory or hub id; see `reward_head`).

        Raises:
            ModelError: no reward head, remote code without `trust_remote_code`, or loading
                failed.
        """
        head = reward_head(name_or_path, trust_remote_code)
        if head is None:
            raise ModelError(
                f"{name_or_path} has no reward head: its config.json names no "
                "*ForTokenClassification or *ForSequenceClassification architecture"
            )
        import torch

        from openberry.models.hf.runtime import _resolve_dtype

        model, tokenizer = _load(name_or_path, head, _resolve_dtype(torch, dtype))
        return cls(
            model,
            tokenizer,
            kind=head.kind,
            name=str(name_or_path),
            batch_rows=batch_rows,
            device=device,
        )

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text as the model reads it."""
        return [len(ids) for ids in self.tokenizer(list(texts))["input_ids"]]

    def step_rewards(
        self, prompts: Sequence[str], ends: Sequence[Sequence[int]], label: int = 1
    ) -> list[tuple[float, ...]]:
        """The probability of class `label` at each offset of `ends` in each prompt (see
        `openberry.models.base.RewardModel.step_rewards`)."""
        if len(prompts) != len(ends):
            raise ModelError(f"{len(prompts)} prompts but {len(ends)} lists of ends")
        rows = self._rows(prompts, ends)
        flat = self._run(rows, label)
        out, pos = [], 0
        for e in ends:
            out.append(tuple(flat[pos : pos + len(e)]))
            pos += len(e)
        return out

    def _rows(
        self, prompts: Sequence[str], ends: Sequence[Sequence[int]]
    ) -> list[tuple[list[int], list[int]]]:
        """``(token ids, positions to read)`` per forward row: a prompt with the token of each
        end (token head), or one prefix per end read at its last token (sequence head)."""
        if self.kind == "sequence":
            texts = [p[:e] for p, es in zip(prompts, ends, strict=True) for e in es]
            return [(ids, [len(ids) - 1]) for ids in self.tokenizer(texts)["input_ids"]]
        enc = self.tokenizer(list(prompts), return_offsets_mapping=True)
        rows = []
        for ids, offsets, es in zip(enc["input_ids"], enc["offset_mapping"], ends, strict=True):
            rows.append((list(ids), [_token_at(offsets, e) for e in es]))
        return rows

    def _run(self, rows: Sequence[tuple[list[int], list[int]]], label: int) -> list[float]:
        """The good-class probability at every read position of `rows`, in order."""
        torch = self.torch
        out: list[float] = []
        for lo in range(0, len(rows), self.batch_rows):
            chunk = rows[lo : lo + self.batch_rows]
            width = max(len(ids) for ids, _ in chunk)
            ids = torch.full((len(chunk), width), self.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, (row, _) in enumerate(chunk):
                ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
                mask[i, : len(row)] = 1
            with torch.inference_mode():
                logits = self.model(
                    input_ids=ids.to(self.device), attention_mask=mask.to(self.device)
                ).logits.float()
            for i, (_, positions) in enumerate(chunk):
                for p in positions:
                    row_logits = logits[i] if logits.dim() == 2 else logits[i, p]
                    out.append(_class_prob(torch, row_logits, label))
        return out


def _token_at(offsets: Sequence[Sequence[int]], end: int) -> int:
    """The index of the last token that starts before character `end` (the token holding the
    character before it)."""
    best = -1
    for i, (start, stop) in enumerate(offsets):
        if stop > start and start < end:
            best = i
    if best < 0:
        raise ModelError(f"no token before character {end}")
    return best


def _class_prob(torch: Any, logits: Any, label: int) -> float:
    """``sigmoid`` of a one-logit head, else ``softmax(logits)[label]``."""
    if logits.numel() == 1:
        return float(torch.sigmoid(logits.reshape(())))
    if not 0 <= label < logits.numel():
        raise ModelError(f"label {label} is not a class of a {logits.numel()}-class head")
    return float(torch.softmax(logits, dim=-1)[label])

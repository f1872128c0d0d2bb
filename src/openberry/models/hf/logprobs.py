"""Per-token log-probabilities that `berry serve` needs beyond the `Policy` interface:
`prompt_logprobs` (``echo``) and `top_logprobs` (``logprobs=k``, ``top_logprobs``).

`HFPolicy` exposes both as methods; `openberry.serve.app` calls them when a policy has them.
Each runs one forward pass per batch of at most ``batch_size`` rows (None: all in one), without
the prefix store.

Importing this module is light; torch is used through the runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from openberry.models.base import ModelError

if TYPE_CHECKING:
    from openberry.models.hf.runtime import HFRuntime

__all__ = ["prompt_logprobs", "top_logprobs"]

TokenLogprob = tuple[str, int, float | None, dict[str, float] | None]
"""(token text, character offset, log p, top-k log p) of one prompt token."""


def prompt_logprobs(
    rt: HFRuntime, texts: Sequence[str], top_k: int, batch_size: int | None
) -> list[list[TokenLogprob]]:
    """Every token of each text: (token text, character offset, log p, top-k log p).

    The text is encoded as `generate` encodes a prompt. The log p of a token is given the
    tokens before it, and the top-k dict (token text -> log p, only when ``top_k > 0``) is the
    distribution it was drawn from; both are None for the first token (nothing precedes
    it). Offsets come from the fast tokenizer's offset mapping (special tokens such as BOS
    get offset 0), else from the lengths of decoded prefixes. `berry serve` uses this for
    ``echo`` (and `OpenAIPolicy.score` reads it back).
    """
    torch = rt.torch
    rows = [rt.encode_prompts([t])[0] for t in texts]
    result: list[list[TokenLogprob]] = []
    with torch.inference_mode():
        for chunk in _chunks(len(rows), batch_size):
            part = [rows[i] for i in chunk]
            width = max(len(r) for r in part)
            lps: list[list[float]] = [[] for _ in part]
            tops: list[list[dict[str, float]]] = [[] for _ in part]
            if width >= 2:
                ids, mask, pos = rt.left_pad(part)
                logp = torch.log_softmax(rt.forward(ids, mask, pos)[:, :-1].float(), -1)
                lps = logp.gather(-1, ids[:, 1:, None])[..., 0].tolist()
                if top_k > 0:
                    tops = _top_rows(rt, logp, top_k)
            for i, row, row_lps, row_tops in zip(chunk, part, lps, tops, strict=True):
                skip = width - len(row)
                values: list[float | None] = [None, *row_lps[skip:]][: len(row)]
                top: list[dict[str, float] | None] = (
                    [None, *row_tops[skip:]][: len(row)] if top_k > 0 else [None] * len(row)
                )
                offsets = _offsets(rt, texts[i], row)
                tokens = [rt.decode([t]) for t in row]
                result.append(list(zip(tokens, offsets, values, top, strict=True)))
    return result


def top_logprobs(
    rt: HFRuntime,
    prompts: Sequence[str],
    continuations: Sequence[Sequence[int]],
    k: int,
    batch_size: int | None,
) -> list[list[dict[str, float]]]:
    """The `k` most likely tokens at each position of each continuation (token text -> log p).

    Each prompt is encoded as `generate` encodes it and followed by its continuation's token
    ids (e.g. those `generate` returned); entry i is the distribution (temperature 1) that
    token i was drawn from. One forward pass per batch. Tokens that decode to the same text
    keep the larger log p. `berry serve` uses this for ``logprobs=k`` and ``top_logprobs``.
    """
    torch = rt.torch
    rows = [
        (rt.encode_prompts([p])[0], list(c)) for p, c in zip(prompts, continuations, strict=True)
    ]
    if any(not p for p, _ in rows):
        raise ModelError("top_logprobs needs non-empty prompts")
    result: list[list[dict[str, float]]] = []
    with torch.inference_mode():
        for chunk in _chunks(len(rows), batch_size):
            part = [rows[i] for i in chunk]
            width = max(len(c) for _, c in part)
            if width == 0:
                result += [[] for _ in part]
                continue
            # Position t predicts token t+1: the prompt's last position and all but the
            # continuation's last token give the width distributions.
            ids, mask, pos = rt.left_pad([p + c[:-1] if c else p for p, c in part])
            logp = torch.log_softmax(rt.forward(ids, mask, pos, keep=width).float(), -1)
            for (_, c), tops in zip(part, _top_rows(rt, logp, k), strict=True):
                result.append(tops[width - len(c) :])
    return result


def _chunks(n: int, batch_size: int | None) -> list[range]:
    size = batch_size or max(n, 1)
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


def _top_rows(rt: HFRuntime, logp: Any, k: int) -> list[list[dict[str, float]]]:
    """Per row and position of log-probs [B, T, V]: the k most likely tokens, token text ->
    log p, most likely first (tokens with the same text keep the larger)."""
    values, index = logp.topk(min(k, logp.shape[-1]), dim=-1)
    rows: list[list[dict[str, float]]] = []
    for row_values, row_index in zip(values.tolist(), index.tolist(), strict=True):
        row = []
        for vs, ts in zip(row_values, row_index, strict=True):
            top: dict[str, float] = {}
            for v, t in zip(vs, ts, strict=True):
                top.setdefault(rt.decode([t]), v)
            row.append(top)
        rows.append(row)
    return rows


def _offsets(rt: HFRuntime, text: str, ids: list[int]) -> list[int]:
    """Character offset of each token of `text` (encoded as `ids`)."""
    if rt.tokenizer.is_fast and not rt.chat:
        enc = rt.tokenizer(text, return_offsets_mapping=True)
        if list(enc["input_ids"]) == ids:
            return [int(a) for a, _ in enc["offset_mapping"]]
    return [len(rt.tokenizer.decode(ids[:k], skip_special_tokens=True)) for k in range(len(ids))]

"""Prefill-only calls of `HFPolicy`: `score` and `next_token_probs`.

Both run forward passes without decoding. Their rows are sorted by the tokens a pass must read
and cut into passes of at most ``batch_size`` (else `PREFILL_ROWS`) rows (`prefill_chunks`), so
that short rows are not padded to the longest of the whole call; results go back in the caller's
order. `next_token_probs` reads prompts through the prefix store (`PrefixCache.prefill`);
`score` runs prompt + completion whole, keeping only the logits of the last positions
(``logits_to_keep``).

Importing this module is light; torch is used through the runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from openberry.models.base import not_one_token

if TYPE_CHECKING:
    from openberry.models.hf.prefix import PrefixCache
    from openberry.models.hf.runtime import HFRuntime

__all__ = [
    "PREFILL_ROWS",
    "SCORE_LOGITS_BYTES",
    "logit_rows",
    "next_token_probs",
    "prefill_chunks",
    "score",
]

PREFILL_ROWS = 64
"""Rows per forward pass of `score` and `next_token_probs` when no `batch_size` is set: their
rows are sorted by length first, so small passes waste little on padding (the search engine sends
hundreds of judge and value prompts of mixed lengths in one call)."""


SCORE_LOGITS_BYTES = 512 * 2**20
"""Most bytes of float32 logits one `score` pass holds (rows x completion width x vocabulary x
4): a pass is cut into fewer rows when it would hold more. A chat model's vocabulary (49,152
tokens for SmolLM2) over 64 rows of 512-token completions is 6.4 GB of logits, and their
log-softmax as much again."""


def logit_rows(width: int, vocab: int, budget: int | None = None) -> int:
    """Rows of `width` scored positions over a `vocab`-token vocabulary that fit in `budget`
    (None: `SCORE_LOGITS_BYTES`) bytes of float32 logits (at least one)."""
    limit = SCORE_LOGITS_BYTES if budget is None else budget
    return max(1, limit // max(1, width * vocab * 4))


def prefill_chunks(lengths: Sequence[int], batch_size: int | None) -> list[list[int]]:
    """Row indices of prefill-only forward passes: rows sorted by the tokens a pass must read
    (`lengths`), at most `batch_size` (None: `PREFILL_ROWS`) per pass."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    size = batch_size or PREFILL_ROWS
    return [order[i : i + size] for i in range(0, len(order), size)]


def score(
    rt: HFRuntime,
    prompts: Sequence[str],
    completions: Sequence[str],
    batch_size: int | None,
) -> list[tuple[float, ...]]:
    """Per-token log p of each completion given its prompt (`HFPolicy.score`)."""
    torch = rt.torch
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    pairs = []
    for p, c in zip(prompts, completions, strict=True):
        p_ids = rt.encode_prompts([p])[0]
        pairs.append((p_ids, rt.encode_completion(p, p_ids, c)))
    result: list[tuple[float, ...]] = [()] * len(pairs)
    vocab = _vocab_size(rt)
    with torch.inference_mode():
        for chunk in prefill_chunks([len(p) + len(c) for p, c in pairs], batch_size):
            width = max(len(pairs[i][1]) for i in chunk)
            if width == 0:
                continue
            rows = logit_rows(width + 1, vocab)
            for start in range(0, len(chunk), rows):
                part = chunk[start : start + rows]
                for i, row in zip(part, _score_pass(rt, [pairs[i] for i in part]), strict=True):
                    result[i] = row
    return result


def _vocab_size(rt: HFRuntime) -> int:
    """Width of the model's logits: its output embedding's rows (else the tokenizer's size)."""
    head = rt.model.get_output_embeddings() if hasattr(rt.model, "get_output_embeddings") else None
    weight = getattr(head, "weight", None)
    return int(weight.shape[0]) if weight is not None else len(rt.tokenizer)


def _score_pass(
    rt: HFRuntime, part: Sequence[tuple[list[int], list[int]]]
) -> list[tuple[float, ...]]:
    """The per-token log p of the completions of one forward pass over ``(prompt ids,
    completion ids)`` pairs; the log-softmax is read at the targets only (``logit -
    logsumexp``), without a second vocabulary-wide copy."""
    torch = rt.torch
    width = max(len(c) for _, c in part)
    if width == 0:
        return [()] * len(part)
    ids, mask, pos = rt.left_pad([p + c for p, c in part])
    # Logits at position t predict token t+1: keep the last width+1 positions.
    logits = rt.forward(ids, mask, pos, keep=width + 1)[:, :-1, :].float()
    targets = ids[:, -width:]
    picked = logits.gather(-1, targets[..., None])[..., 0]
    tok_lp = (picked - torch.logsumexp(logits, dim=-1)).tolist()
    return [
        tuple(row[width - len(c) :]) if c else () for (_, c), row in zip(part, tok_lp, strict=True)
    ]


def next_token_probs(
    rt: HFRuntime,
    prefix: PrefixCache,
    prompts: Sequence[str],
    candidates: Sequence[str],
    batch_size: int | None,
) -> list[dict[str, float]]:
    """p(candidate | prompt) from the softmax at the last prompt position
    (`HFPolicy.next_token_probs`); a candidate must encode to exactly one token id."""
    torch = rt.torch
    cand_ids: dict[str, int] = {}
    for cand in candidates:
        toks = rt.tokenizer.encode(cand, add_special_tokens=False)
        if len(toks) != 1:
            raise not_one_token(cand, len(toks))
        cand_ids[cand] = int(toks[0])
    rows = rt.encode_prompts(prompts)
    index = torch.tensor(list(cand_ids.values()), dtype=torch.long, device=rt.device)
    result: list[dict[str, float]] = [{} for _ in rows]
    with torch.inference_mode():
        for chunk in prefill_chunks(prefix.unknown_lengths(rows), batch_size):
            logits, *_ = prefix.prefill([rows[i] for i in chunk])
            probs = torch.softmax(logits.float(), dim=-1)[:, index].tolist()
            for i, row in zip(chunk, probs, strict=True):
                result[i] = dict(zip(cand_ids, row, strict=True))
    return result

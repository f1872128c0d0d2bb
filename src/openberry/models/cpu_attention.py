"""Decode-step attention for CPUs: one query token attended with two matrix products.

transformers runs attention through ``torch.nn.functional.scaled_dot_product_attention``
(``attn_implementation="sdpa"``). On a CPU, a decode step (one query position per row) over a
padded batch uses the plain product ``softmax(q k^T) v`` instead of SDPA's fused kernel:
GEMV-shaped products are what the CPU's BLAS does well, while the fused kernel tiles the query
axis, which has length 1 here (the measured gain: BENCHMARKS.md, "Decode attention on a CPU").

`decode_attention` is registered with transformers' attention and mask interfaces under
`IMPLEMENTATION`; it computes single-query steps itself and hands everything else (prefill,
position biases, soft-capping, dropout) to transformers' own SDPA function, with the same
boolean mask SDPA would get. `use_decode_attention` switches a model on a CPU from ``sdpa`` to
it; `HFPolicy` calls that. Grouped-query attention is computed without repeating keys: the
query heads of one key/value head are laid out as that head's query rows.

This module imports torch and transformers.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

__all__ = ["IMPLEMENTATION", "decode_attention", "use_decode_attention"]

logger = logging.getLogger(__name__)

IMPLEMENTATION = "openberry_cpu_decode"
"""The name `decode_attention` is registered under in transformers."""


def decode_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature: query [B, Hq, q, D], key/value
    [B, Hkv, L, D], mask broadcastable to [B, 1, q, L] (bool: True attends; float: added).
    Returns ([B, q, Hq, D], None)."""
    q_len = query.shape[2]
    heads, kv_heads = query.shape[1], key.shape[1]
    if (
        q_len != 1
        or dropout
        or kwargs.get("position_bias") is not None
        or kwargs.get("softcap") is not None
        or kwargs.get("output_attentions", False)
        or heads % kv_heads
    ):
        return sdpa_attention_forward(
            module,
            query,
            key,
            value,
            attention_mask,
            dropout=dropout,
            scaling=scaling,
            is_causal=is_causal,
            **kwargs,
        )
    batch, dim = query.shape[0], query.shape[-1]
    group = heads // kv_heads
    scale = dim**-0.5 if scaling is None else scaling
    # Query head h reads key/value head h // group (transformers' repeat_kv): the group's
    # queries become that head's rows, [B, Hkv, group, D].
    q = query.reshape(batch, kv_heads, group, dim)
    scores = torch.matmul(q, key.transpose(-1, -2))  # [B, Hkv, group, L]
    scores.mul_(scale)
    if attention_mask is not None:
        mask = attention_mask[..., -1:, :]  # the one query position: [B or 1, 1, 1, L]
        if mask.dtype == torch.bool:
            scores.masked_fill_(~mask, float("-inf"))
        else:
            scores.add_(mask)
    out = torch.matmul(torch.softmax(scores, dim=-1), value)  # [B, Hkv, group, D]
    return out.reshape(batch, 1, heads, dim), None


AttentionInterface.register(IMPLEMENTATION, decode_attention)
AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)


def use_decode_attention(model: Any) -> bool:
    """Switch `model` (on a CPU, currently using ``sdpa``) to `decode_attention`; True when
    switched. Other devices and implementations are left as they are."""
    config = getattr(model, "config", None)
    device = next(model.parameters()).device
    if config is None or device.type != "cpu":
        return False
    if getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    setter = getattr(model, "set_attn_implementation", None)
    if not callable(setter):
        return False
    try:
        setter(IMPLEMENTATION)
    except (ValueError, TypeError, AttributeError) as exc:  # a model that refuses custom ones
        logger.debug("kept sdpa attention: %s", exc)
        return False
    return getattr(config, "_attn_implementation", None) == IMPLEMENTATION

"""The losses of the self-play update, on token log-probabilities.

- `ppo_policy_loss`: PPO's clipped surrogate (Schulman et al. 2017, "Proximal Policy Optimization
  Algorithms", eq. 7) per token, with the ratio ``exp(log pi - log pi_old)`` against the policy
  that wrote the step; each sample's tokens are averaged, then samples are averaged with their
  importance weights (prioritized replay). LLaMA-O1's trainer took the *base model* as "old"
  policy, so its ratio never measured the update; here old log-probabilities are stored with
  the experience.
- `kl_penalty`: the KL to the reference policy (the LoRA adapter disabled) per token, with the
  non-negative estimator ``exp(r) - r - 1``, ``r = log pi_ref - log pi`` (Schulman's "k3", as
  GRPO uses it, Shao et al. 2024, eq. 4).
- `entropy_of`: the policy's entropy at each action token (an exploration bonus).

The value loss is `openberry.training.token_head.two_token_loss`, the loss of `berry train value`,
with the replay's importance weights.

Tensors are [batch, positions]; ``mask`` marks the action tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = [
    "action_batch",
    "entropy_of",
    "kl_penalty",
    "masked_mean",
    "ppo_policy_loss",
    "sequence_logprobs",
]


def action_batch(
    rows: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int, max_length: int
) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``/``attention_mask`` of prompt + action rows, and the ``mask``
    over the shifted targets (``[B, L - 1]``) that marks action tokens. A prompt is cut on the
    left so that a row fits `max_length` (the action is kept whole; an action longer than
    `max_length` is cut on the right)."""
    rows = [(list(p), list(a)[:max_length]) for p, a in rows]
    rows = [(p[max(0, len(p) + len(a) - max_length) :], a) for p, a in rows]
    width = max(len(p) + len(a) for p, a in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width - 1), dtype=torch.float32)
    for i, (p, a) in enumerate(rows):
        n = len(p) + len(a)
        ids[i, :n] = torch.tensor(p + a, dtype=torch.long)
        attn[i, :n] = 1
        mask[i, max(len(p) - 1, 0) : n - 1] = 1.0
    return {"input_ids": ids, "attention_mask": attn, "mask": mask}


def sequence_logprobs(model: Any, batch: dict[str, torch.Tensor]) -> tuple[Any, Any]:
    """Log-probability of each next token (``[B, L - 1]``) and the logits it came from."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    logits = out.logits[:, :-1, :].float()
    targets = batch["input_ids"][:, 1:]
    logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return logp, logits


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of each row of `x` over its masked positions (0 for a row with none)."""
    return (x * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)


def entropy_of(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of the softmax of `logits` at each position."""
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def ppo_policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_coef: float,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped surrogate loss and its statistics (clip fraction, approximate KL to the old
    policy, mean ratio).

    Args:
        logp: ``[B, T]`` log-probabilities under the policy being trained.
        old_logp: ``[B, T]`` log-probabilities under the policy that wrote the samples.
        advantages: ``[B]`` one advantage per sample (every token of a step shares it).
        mask: ``[B, T]`` 1 at action tokens.
        clip_coef: PPO's epsilon.
        weights: ``[B]`` importance weights of prioritized replay (None: all 1).
    """
    ratio = torch.exp(logp - old_logp)
    adv = advantages.unsqueeze(-1)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_coef, 1.0 + clip_coef)
    per_sample = masked_mean(torch.maximum(unclipped, clipped), mask)
    w = torch.ones_like(per_sample) if weights is None else weights
    loss = (w * per_sample).mean()
    with torch.no_grad():
        n = mask.sum().clamp(min=1.0)
        log_ratio = logp - old_logp
        stats = {
            "clip_fraction": float((((ratio - 1.0).abs() > clip_coef).float() * mask).sum() / n),
            "approx_kl": float((((ratio - 1.0) - log_ratio) * mask).sum() / n),
            "ratio": float((ratio * mask).sum() / n),
        }
    return loss, stats


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sample mean of the k3 KL estimate ``exp(r) - r - 1``, ``r = ref_logp - logp``."""
    r = ref_logp - logp
    return masked_mean(torch.exp(r) - r - 1.0, mask)

"""The learner: step samples -> token rows with old and reference log-probabilities -> gradient
steps on the LoRA adapter.

One causal LM plays every role, as in LLaMA-O1: the policy (its next-token distribution), the
value (``p(<positive_rating>)`` renormalised over the two rating tokens after the value prompt)
and, with its adapter disabled, the frozen reference of the KL term. Only the adapter trains.

A replay item is a plain JSON object (prompt and action token ids, the old and reference
log-probabilities of the action tokens, the advantage, the value prompt's ids and target), so
the replay is saved without pickle. `loss_terms` computes every term for one minibatch;
`Learner.step` adds them up, clips the gradient and steps AdamW with a linear warm-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from openberry.formats.openlongcot import RATING_TOKENS
from openberry.training.rl.config import RLConfig, RLError
from openberry.training.rl.experience import StepSample
from openberry.training.rl.losses import (
    action_batch,
    entropy_of,
    kl_penalty,
    masked_mean,
    ppo_policy_loss,
    sequence_logprobs,
)
from openberry.training.token_head import _token_id, two_token_logits, two_token_loss

__all__ = ["Learner", "explained_variance", "scatter_actions"]


def scatter_actions(values: Sequence[Sequence[float]], mask: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` tensor with each row's values at its masked positions, in order (0
    elsewhere): stored per-action-token lists laid over a batch."""
    out = torch.zeros_like(mask)
    for i, row in enumerate(values):
        idx = mask[i].nonzero().squeeze(-1)
        n = min(len(row), idx.numel())
        out[i, idx[:n]] = torch.tensor(list(row[:n]), dtype=out.dtype, device=out.device)
    return out


def explained_variance(pred: Sequence[float], target: Sequence[float]) -> float | None:
    """``1 - Var(target - pred) / Var(target)`` (None when the target does not vary)."""
    if len(target) < 2:
        return None
    mean = sum(target) / len(target)
    var = sum((t - mean) ** 2 for t in target) / len(target)
    if var <= 0:
        return None
    err = [t - p for p, t in zip(pred, target, strict=True)]
    emean = sum(err) / len(err)
    return 1.0 - (sum((e - emean) ** 2 for e in err) / len(err)) / var


class Learner:
    """The model being trained, its tokenizer and optimiser.

    Args:
        model: a peft model (the LoRA adapter on the frozen policy).
        tokenizer: its tokenizer.
        runtime: the `HFRuntime` that samples with the same model (its prompt encoding is the
            one the search used).
        config: the run's settings.
    """

    def __init__(self, model: Any, tokenizer: Any, runtime: Any, config: RLConfig) -> None:
        self.model, self.tokenizer, self.runtime, self.config = model, tokenizer, runtime, config
        self.pad_id = int(runtime.pad_token_id)
        self.device = runtime.device
        self.rating_ids = [_token_id(tokenizer, RATING_TOKENS[k]) for k in ("positive", "negative")]
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise RLError("the model has no trainable parameters (no LoRA adapter?)")
        self.optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
        self.steps = 0

    # ----------------------------------------------------------------------- experience rows

    def encode(self, samples: Sequence[StepSample]) -> list[dict[str, Any]]:
        """Token rows of `samples` (prompt and action ids as the search's encoding gives them;
        the value prompt's ids only for ppo, the one algorithm with a value loss)."""
        prompts = self.runtime.encode_prompts([s.prompt for s in samples])
        with_value = self.config.algo == "ppo"
        values = self.runtime.encode_prompts([s.value_prompt or "" for s in samples if with_value])
        rows = []
        for k, (s, p_ids) in enumerate(zip(samples, prompts, strict=True)):
            action = self.runtime.encode_completion(s.prompt, p_ids, s.action)
            v_ids = values[k][-self.config.max_length :] if with_value and s.value_prompt else None
            rows.append(
                {
                    "problem": s.problem_id,
                    "node": s.node,
                    "prompt_ids": p_ids,
                    "action_ids": action[: self.config.max_length],
                    "value_ids": v_ids,
                    "advantage": s.advantage,
                    "value_target": s.value_target,
                }
            )
        return [r for r in rows if r["action_ids"]]

    def values(self, samples: Sequence[StepSample]) -> dict[int, float]:
        """The rating-token value of each sample's reached state (node id -> value)."""
        return self.tree_values([samples])[0]

    @torch.no_grad()
    def tree_values(self, trees: Sequence[Sequence[StepSample]]) -> list[dict[int, float]]:
        """`values` of each tree's samples, all trees' value prompts in batches of
        ``batch_size``."""
        todo = [(t, s) for t, samples in enumerate(trees) for s in samples if s.value_prompt]
        ids = self.runtime.encode_prompts([s.value_prompt for _, s in todo])
        out: list[dict[int, float]] = [{} for _ in trees]
        for lo in range(0, len(todo), self.config.batch_size):
            logits = self._rating_logits(ids[lo : lo + self.config.batch_size])
            probs = torch.softmax(logits, dim=-1)[:, 0].tolist()
            for (t, s), p in zip(todo[lo:], probs, strict=False):
                out[t][s.node] = p
        return out

    @torch.no_grad()
    def annotate(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Add ``old_logp`` (the current policy) and ``ref_logp`` (the adapter disabled) of the
        action tokens to each row."""
        self.model.eval()
        for lo in range(0, len(rows), self.config.minibatch_size):
            chunk = rows[lo : lo + self.config.minibatch_size]
            batch = self._batch(chunk)
            old, _ = sequence_logprobs(self.model, batch)
            with self.model.disable_adapter():
                ref, _ = sequence_logprobs(self.model, batch)
            for i, row in enumerate(chunk):
                at = batch["mask"][i].bool()
                row["old_logp"] = old[i][at].tolist()
                row["ref_logp"] = ref[i][at].tolist()
        return rows

    # ----------------------------------------------------------------------------- updates

    def step(
        self, rows: Sequence[dict[str, Any]], weights: Sequence[float]
    ) -> tuple[list[float], dict[str, float]]:
        """One gradient step on a minibatch; returns each row's new priority error and the
        step's statistics."""
        self.model.train()
        lr = self.config.lr * min(1.0, (self.steps + 1) / max(1, self.config.warmup_steps))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        w = torch.tensor(list(weights), dtype=torch.float32, device=self.device)
        loss, errors, stats = self.loss_terms(rows, w)
        if not torch.isfinite(loss):
            raise RLError(f"non-finite loss at update {self.steps}: {stats}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in self.model.parameters() if p.requires_grad]
        norm = torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
        self.optimizer.step()
        self.steps += 1
        self.model.eval()
        stats.update(loss=float(loss.detach()), grad_norm=float(norm), lr=lr)
        return errors, stats

    def loss_terms(
        self, rows: Sequence[dict[str, Any]], weights: torch.Tensor
    ) -> tuple[torch.Tensor, list[float], dict[str, float]]:
        """The minibatch's total loss, per-row errors (new priorities) and statistics."""
        cfg = self.config
        batch = self._batch(rows)
        logp, logits = sequence_logprobs(self.model, batch)
        mask = batch["mask"]
        stats: dict[str, float] = {}
        if cfg.algo == "expert-iteration":
            per = masked_mean(-logp, mask)
            loss = (weights * per).mean()
            stats["nll"] = float(per.mean().detach())
            return loss, per.detach().abs().tolist(), stats
        adv = torch.tensor([r["advantage"] for r in rows], dtype=torch.float32, device=self.device)
        if cfg.norm_adv and len(rows) > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        old = scatter_actions([r["old_logp"] for r in rows], mask)
        ref = scatter_actions([r["ref_logp"] for r in rows], mask)
        pg, pg_stats = ppo_policy_loss(logp, old, adv, mask, cfg.clip_coef, weights)
        kl = kl_penalty(logp, ref, mask)
        ent = masked_mean(entropy_of(logits), mask)
        loss = pg + cfg.kl_coef * (weights * kl).mean() - cfg.ent_coef * (weights * ent).mean()
        errors = masked_mean(-adv.unsqueeze(-1) * torch.exp(logp - old), mask).detach().abs()
        stats.update(pg_stats, policy_loss=float(pg.detach()), kl_ref=float(kl.mean().detach()))
        stats["entropy"] = float(ent.mean().detach())
        if cfg.algo == "ppo":
            vloss, verr = self._value_term(rows, weights)
            if vloss is not None:
                loss = loss + cfg.vf_coef * vloss
                stats["value_loss"] = float(vloss.detach())
                errors = errors + verr
        return loss, errors.tolist(), stats

    def _value_term(
        self, rows: Sequence[dict[str, Any]], weights: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        keep = [i for i, r in enumerate(rows) if r["value_ids"] and r["value_target"] is not None]
        err = torch.zeros(len(rows), device=self.device)
        if not keep:
            return None, err
        logits = self._rating_logits([rows[i]["value_ids"] for i in keep])
        target = torch.tensor(
            [rows[i]["value_target"] for i in keep], dtype=torch.float32, device=self.device
        )
        loss = two_token_loss(logits, target, weights[keep])
        with torch.no_grad():
            err[keep] = (torch.softmax(logits, -1)[:, 0] - target).abs()
        return loss, err

    # ----------------------------------------------------------------------------- helpers

    def _batch(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        pairs = [(r["prompt_ids"], r["action_ids"]) for r in rows]
        batch = action_batch(pairs, self.pad_id, self.config.max_length)
        return {k: v.to(self.device) for k, v in batch.items()}

    def _rating_logits(self, rows: Sequence[Sequence[int]]) -> torch.Tensor:
        ids, mask, pos = self.runtime.left_pad(rows)
        batch = {"input_ids": ids, "attention_mask": mask, "position_ids": pos}
        return two_token_logits(self.model, batch, self.rating_ids)

"""The update's losses on small tensors, by hand."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from openberry.training.rl.losses import (  # noqa: E402
    action_batch,
    entropy_of,
    kl_penalty,
    masked_mean,
    ppo_policy_loss,
)
from openberry.training.token_head import two_token_loss  # noqa: E402


def test_action_batch_marks_the_shifted_action_positions() -> None:
    b = action_batch([([1, 2, 3], [4, 5]), ([6], [7, 8, 9])], pad_id=0, max_length=16)
    assert b["input_ids"].tolist() == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 0]]
    assert b["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    # target t+1 is predicted at t: the actions 4, 5 are targets 2, 3 (shifted positions)
    assert b["mask"].tolist() == [[0, 0, 1, 1], [1, 1, 1, 0]]
    targets = b["input_ids"][:, 1:]
    assert targets[b["mask"].bool()].tolist() == [4, 5, 7, 8, 9]


def test_action_batch_cuts_prompts_on_the_left() -> None:
    b = action_batch([([1, 2, 3, 4, 5], [6, 7])], pad_id=0, max_length=4)
    assert b["input_ids"].tolist() == [[4, 5, 6, 7]]
    assert b["mask"].tolist() == [[0, 1, 1]]


def test_ppo_loss_by_hand() -> None:
    logp = torch.log(torch.tensor([[0.5, 0.5], [0.9, 0.2]]))
    old = torch.log(torch.tensor([[0.25, 0.5], [0.6, 0.2]]))
    adv = torch.tensor([1.0, -2.0])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    loss, stats = ppo_policy_loss(logp, old, adv, mask, clip_coef=0.2)
    # sample 0: ratios 2.0 (clipped to 1.2 for A > 0) and 1.0 -> -(1.2 + 1.0) / 2
    # sample 1: ratio 1.5 with A < 0: max(-(-2)(1.5), -(-2)(1.2)) = 3.0 (the pessimistic one)
    assert float(loss) == pytest.approx(((-1.1) + 3.0) / 2)
    assert stats["clip_fraction"] == pytest.approx(2 / 3)
    r = [2.0, 1.0, 1.5]
    assert stats["approx_kl"] == pytest.approx(sum(x - 1 - math.log(x) for x in r) / 3)
    w = torch.tensor([2.0, 0.0])
    weighted, _ = ppo_policy_loss(logp, old, adv, mask, 0.2, weights=w)
    assert float(weighted) == pytest.approx(2 * -1.1 / 2)


def test_ppo_gradient_is_zero_where_clipped() -> None:
    logp = torch.log(torch.tensor([[0.9]])).requires_grad_(True)
    old = torch.log(torch.tensor([[0.3]]))
    loss, _ = ppo_policy_loss(logp, old, torch.tensor([1.0]), torch.ones(1, 1), 0.2)
    loss.backward()
    assert float(logp.grad.abs().sum()) == 0.0


def test_kl_penalty_is_zero_at_the_reference_and_positive_elsewhere() -> None:
    logp = torch.log(torch.tensor([[0.5, 0.25]]))
    mask = torch.ones(1, 2)
    assert float(kl_penalty(logp, logp, mask)[0]) == pytest.approx(0.0)
    ref = torch.log(torch.tensor([[0.25, 0.5]]))
    r = [math.log(0.5), math.log(2.0)]
    want = sum(math.exp(x) - x - 1 for x in r) / 2
    assert float(kl_penalty(logp, ref, mask)[0]) == pytest.approx(want)


def test_entropy_of_uniform_is_log_vocab() -> None:
    assert float(entropy_of(torch.zeros(1, 1, 8))[0, 0]) == pytest.approx(math.log(8))


def test_masked_mean_ignores_padding() -> None:
    x = torch.tensor([[1.0, 3.0, 100.0], [5.0, 0.0, 0.0]])
    m = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert masked_mean(x, m).tolist() == [2.0, 0.0]


def test_value_loss_is_the_bce_of_the_renormalised_rating() -> None:
    logits = torch.tensor([[2.0, 0.0]])
    p = 1 / (1 + math.exp(-2.0))
    want = -(0.75 * math.log(p) + 0.25 * math.log(1 - p))
    target = torch.tensor([0.75])
    assert float(two_token_loss(logits, target)) == pytest.approx(want, rel=1e-5)
    weighted = two_token_loss(logits, target, torch.tensor([2.0]))
    assert float(weighted) == pytest.approx(2 * want, rel=1e-5)

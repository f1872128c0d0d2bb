"""GAE, its tree form and GRPO's baseline, against loops and sums written out by hand."""

from __future__ import annotations

import math
import random

import pytest

from openberry.training.rl.advantages import gae, group_advantages, normalize, tree_gae


def _reference_gae(rewards, values, next_values, dones, gamma, lam):
    """A_t = sum_k (gamma lam)^k delta_{t+k}, summed until the episode ends."""
    n = len(rewards)
    deltas = [
        rewards[t] + gamma * next_values[t] * (0 if dones[t] else 1) - values[t] for t in range(n)
    ]
    out = []
    for t in range(n):
        total, factor = 0.0, 1.0
        for k in range(t, n):
            total += factor * deltas[k]
            if dones[k]:
                break
            factor *= gamma * lam
        out.append(total)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_gae_matches_the_sum_of_discounted_deltas(seed) -> None:
    rng = random.Random(seed)
    n = rng.randint(1, 9)
    rewards = [rng.random() for _ in range(n)]
    values = [rng.random() for _ in range(n)]
    next_values = [*values[1:], rng.random()]
    dones = [rng.random() < 0.2 for _ in range(n)]
    adv, ret = gae(rewards, values, next_values, dones, 0.9, 0.8)
    want = _reference_gae(rewards, values, next_values, dones, 0.9, 0.8)
    assert adv == pytest.approx(want)
    assert ret == pytest.approx([a + v for a, v in zip(want, values, strict=True)])


def test_gae_lambda_one_is_the_monte_carlo_return_minus_value() -> None:
    adv, _ = gae([0, 0, 1], [0.2, 0.5, 0.7], [0.5, 0.7, 0.0], [False, False, True], 1.0, 1.0)
    assert adv == pytest.approx([0.8, 0.5, 0.3])


def test_gae_refuses_ragged_inputs() -> None:
    with pytest.raises(ValueError):
        gae([0, 1], [0.1], [0.2, 0.3], [False, True], 1.0, 0.9)


def test_tree_gae_on_a_chain_is_path_gae() -> None:
    # root 0 -> 1 -> 2 -> 3 (answer, right)
    values = {0: 0.4, 1: 0.5, 2: 0.6, 3: 0.9}
    adv = tree_gae(
        parents={1: 0, 2: 1, 3: 2},
        rewards={1: 0.0, 2: 0.0, 3: 1.0},
        values=values,
        dones={1: False, 2: False, 3: True},
        weights={1: 1, 2: 1, 3: 1},
        gamma=0.99,
        gae_lambda=0.95,
    )
    want, _ = gae([0, 0, 1], [0.4, 0.5, 0.6], [0.5, 0.6, 0.9], [False, False, True], 0.99, 0.95)
    assert [adv[1], adv[2], adv[3]] == pytest.approx(want)


def test_tree_gae_averages_the_branches_by_samples() -> None:
    # 0 -> 1 -> {2 (right, sampled twice), 3 (wrong)}
    values = {0: 0.5, 1: 0.6, 2: 0.8, 3: 0.3}
    adv = tree_gae(
        parents={1: 0, 2: 1, 3: 1},
        rewards={1: 0.0, 2: 1.0, 3: 0.0},
        values=values,
        dones={1: False, 2: True, 3: True},
        weights={1: 1, 2: 2, 3: 1},
        gamma=1.0,
        gae_lambda=0.5,
    )
    assert adv[2] == pytest.approx(1.0 - 0.6)
    assert adv[3] == pytest.approx(0.0 - 0.6)
    follow = (2 * 0.4 + 1 * -0.6) / 3
    assert adv[1] == pytest.approx(0.6 - 0.5 + 0.5 * follow)


def test_tree_gae_runs_root_to_leaf_not_upward() -> None:
    """Regression: LLaMA-O1's upward walk gave every depth-1 step zero advantage."""
    adv = tree_gae(
        parents={1: 0, 2: 1},
        rewards={1: 0.0, 2: 1.0},
        values={0: 0.5, 1: 0.5, 2: 0.5},
        dones={1: False, 2: True},
        weights={1: 1, 2: 1},
        gamma=1.0,
        gae_lambda=1.0,
    )
    assert adv[1] == pytest.approx(0.5)  # the answer below it counts


def test_group_advantages_by_hand() -> None:
    out = group_advantages([1.0, 0.0, 0.0, 1.0])
    assert out == pytest.approx([1.0, -1.0, -1.0, 1.0], abs=1e-5)
    assert group_advantages([1.0, 1.0]) == [0.0, 0.0]
    assert group_advantages([]) == []
    skew = group_advantages([1.0, 0.0, 0.0, 0.0])
    std = math.sqrt(3 / 16)
    assert skew[0] == pytest.approx(0.75 / std, rel=1e-5)


def test_normalize() -> None:
    out = normalize([1.0, 2.0, 3.0])
    assert sum(out) == pytest.approx(0.0)
    assert sum(x * x for x in out) / 3 == pytest.approx(1.0, rel=1e-6)
    assert normalize([5.0]) == [0.0]

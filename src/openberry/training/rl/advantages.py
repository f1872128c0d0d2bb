"""Advantages for the self-play update: GAE along a path, its tree form, and GRPO's group baseline.

- `gae` is Generalized Advantage Estimation (Schulman et al. 2016, "High-Dimensional Continuous
  Control Using Generalized Advantage Estimation", eq. 16) over one trajectory:
  ``delta_t = r_t + gamma * V(s_{t+1}) * (1 - done_t) - V(s_t)`` and
  ``A_t = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}``.
- `tree_gae` runs the same recursion over a search tree, from the leaves up: a node's step is
  the action that led from its parent's state to its own, and ``A(n) = delta(n) + gamma *
  lambda * mean_c A(c)`` over its children, weighted by how often each child was sampled. On a
  chain it is exactly `gae` along the root-to-leaf path; on a tree it is the expectation of
  path GAE over the branches the policy sampled. LLaMA-O1's trainer walked *upward* from a node
  to the root, so the advantage of a step depended on its ancestors instead of what followed it
  and every depth-1 step got zero; this is the fix (root-to-leaf direction).
- `group_advantages` is GRPO's baseline (Shao et al. 2024, "DeepSeekMath", section 4.1.2): each
  outcome reward minus the group mean, divided by the group standard deviation.

Pure Python: no torch, so the maths is tested in closed form and runs anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

__all__ = ["gae", "group_advantages", "normalize", "tree_gae"]


def gae(
    rewards: Sequence[float],
    values: Sequence[float],
    next_values: Sequence[float],
    dones: Sequence[bool],
    gamma: float,
    gae_lambda: float,
) -> tuple[list[float], list[float]]:
    """GAE advantages and returns (``A_t + V(s_t)``) of one trajectory.

    Args:
        rewards: r_t of each step.
        values: V(s_t), the value of the state each step starts from.
        next_values: V(s_{t+1}), the value of the state each step reaches (ignored where done).
        dones: whether the step ended the episode (no bootstrap past it).
        gamma: discount.
        gae_lambda: the GAE lambda.
    """
    n = len(rewards)
    if not len(values) == len(next_values) == len(dones) == n:
        raise ValueError("rewards, values, next_values and dones must have one entry per step")
    advantages = [0.0] * n
    running = 0.0
    for t in reversed(range(n)):
        live = 0.0 if dones[t] else 1.0
        delta = rewards[t] + gamma * next_values[t] * live - values[t]
        running = delta + gamma * gae_lambda * live * running
        advantages[t] = running
    return advantages, [a + v for a, v in zip(advantages, values, strict=True)]


def tree_gae(
    parents: Mapping[int, int],
    rewards: Mapping[int, float],
    values: Mapping[int, float],
    dones: Mapping[int, bool],
    weights: Mapping[int, float],
    gamma: float,
    gae_lambda: float,
) -> dict[int, float]:
    """GAE of every non-root node of a tree (see the module docstring).

    Args:
        parents: node -> parent, for every node but the root.
        rewards: reward of the step into each node (the verifier at an answer, 0 elsewhere).
        values: V of each node's state, the root's included.
        dones: whether the node ends the episode (an answer, or a line that ends the solution).
        weights: how often each node was sampled (its share among its siblings).
        gamma: discount.
        gae_lambda: the GAE lambda.

    Returns:
        node -> advantage of the step into it.
    """
    children: dict[int, list[int]] = {}
    for node, parent in parents.items():
        children.setdefault(parent, []).append(node)
    advantages: dict[int, float] = {}
    for node in sorted(parents, key=lambda n: -_depth(n, parents)):
        live = 0.0 if dones[node] else 1.0
        delta = rewards[node] + gamma * values[node] * live - values[parents[node]]
        kids = children.get(node, [])
        total = sum(weights[k] for k in kids)
        follow = sum(weights[k] * advantages[k] for k in kids) / total if total > 0 else 0.0
        advantages[node] = delta + gamma * gae_lambda * live * follow
    return advantages


def _depth(node: int, parents: Mapping[int, int]) -> int:
    depth = 0
    while node in parents:
        node, depth = parents[node], depth + 1
    return depth


def group_advantages(rewards: Sequence[float], eps: float = 1e-6) -> list[float]:
    """GRPO's group-relative advantages: ``(r - mean) / (std + eps)`` (population std); all
    zero when every reward is the same."""
    if not rewards:
        return []
    mean = sum(rewards) / len(rewards)
    std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / len(rewards))
    return [(r - mean) / (std + eps) for r in rewards]


def normalize(values: Sequence[float], eps: float = 1e-8) -> list[float]:
    """Values shifted to mean 0 and scaled to standard deviation 1 (a batch's advantages)."""
    return group_advantages(values, eps) if len(values) > 1 else [0.0] * len(values)

"""Proportional prioritized experience replay (Schaul et al. 2016, "Prioritized Experience
Replay", section 3.3 and Algorithm 1).

An item ``i`` with priority ``p_i = |delta_i| + eps`` is drawn with probability
``P(i) = p_i^alpha / sum_k p_k^alpha`` (section 3.3, proportional variant) and its loss is
scaled by the importance weight ``w_i = (N * P(i))^-beta``, with ``beta`` annealed linearly
from ``beta_start`` to 1 (section 3.4). New items get the largest priority seen so far
(Algorithm 1, line 6), so each is replayed at least about once before its error is known.
Sampling is stratified as in the paper's appendix B.2.1: the total mass is cut into
``batch_size`` equal segments and one uniform draw is made in each; a `SumTree` turns a mass
into an item in O(log N).

Where we depart from the paper or from LLaMA-O1:

- Weights are normalised by the largest weight of the sampled batch (Algorithm 1, line 10,
  read as a batch max, and as LLaMA-O1 does), not by the buffer-wide maximum some
  implementations compute from the smallest stored priority.
- The running max priority never decreases (the paper's ``max_{i<t} p_i``); it starts at 1.0.
- ``beta`` advances once per `PrioritizedReplay.step` (one learner update), not per sample.
- LLaMA-O1's ``PrioritizedReplayBuffer`` (``main.py``) kept plain Python lists, drew with
  ``numpy.random.choice`` over freshly normalised priorities (O(N) per batch, no
  stratification), took each item's first priority from its caller, and persisted with
  gzip + pickle. We use a sum tree, an explicit `numpy.random.Generator`, and JSON
  (`state_dict` / `from_state`, atomic `save`), so a saved buffer is readable, safe to load,
  and a round trip reproduces the same subsequent samples for the same generator state.

Pure Python + numpy; no torch, no pickle.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from openberry.errors import BerryError
from openberry.fileio import write_text_atomic

__all__ = ["PrioritizedReplay", "ReplayConfig", "ReplayError", "SumTree"]

logger = logging.getLogger(__name__)

STATE_FORMAT = 1
"""Version of the `PrioritizedReplay.state_dict` layout."""


class ReplayError(BerryError, ValueError):
    """A bad replay config, argument or saved state (empty buffer, NaN error, bad batch size)."""


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _finite(value: object) -> bool:
    return isinstance(value, (int, float, np.number)) and math.isfinite(float(value))


class SumTree:
    """Array-backed binary sum tree over ``capacity`` non-negative float priorities.

    The leaves are padded up to a power of two (padding leaves hold 0), so leaf order is index
    order and `find` is a prefix-sum search. A parallel max tree gives `max` of the stored
    leaves even after priorities decrease. Parents are recomputed from their children on every
    update (no running deltas), so the tree is a pure function of its leaves.
    """

    def __init__(self, capacity: int) -> None:
        if not _is_int(capacity) or capacity < 1:
            raise ReplayError(f"SumTree capacity must be a positive int, got {capacity!r}")
        self._capacity = int(capacity)
        self._leaves = 1 << (self._capacity - 1).bit_length()
        self._sum = np.zeros(2 * self._leaves, dtype=np.float64)
        self._max = np.zeros(2 * self._leaves, dtype=np.float64)

    @property
    def capacity(self) -> int:
        """Number of leaves that can hold a priority."""
        return self._capacity

    @property
    def total(self) -> float:
        """Sum of all leaf priorities."""
        return float(self._sum[1])

    @property
    def max(self) -> float:
        """Largest leaf priority (0.0 when all are 0)."""
        return float(self._max[1])

    def _check_index(self, index: int) -> int:
        if not _is_int(index) or not 0 <= index < self._capacity:
            raise ReplayError(f"index {index!r} is outside 0..{self._capacity - 1}")
        return int(index)

    def get(self, index: int) -> float:
        """The priority stored at leaf ``index``."""
        return float(self._sum[self._leaves + self._check_index(index)])

    def update(self, index: int, priority: float) -> None:
        """Set leaf ``index`` to ``priority`` (finite, >= 0) and refresh its ancestors."""
        node = self._leaves + self._check_index(index)
        value = float(priority)
        if not math.isfinite(value) or value < 0:
            raise ReplayError(f"priority must be finite and >= 0, got {priority!r}")
        self._sum[node] = value
        self._max[node] = value
        node //= 2
        while node >= 1:
            left, right = 2 * node, 2 * node + 1
            self._sum[node] = self._sum[left] + self._sum[right]
            self._max[node] = max(self._max[left], self._max[right])
            node //= 2

    def find(self, mass: float) -> int:
        """The smallest index whose inclusive prefix sum exceeds ``mass``.

        ``mass`` should lie in ``[0, total)``; a mass at or above ``total`` (float rounding)
        yields the last leaf with a positive priority. A leaf with priority 0 is never returned.
        """
        remaining = float(mass)
        if not remaining >= 0:  # also rejects NaN
            raise ReplayError(f"mass must be >= 0, got {mass!r}")
        if self.total <= 0:
            raise ReplayError("cannot search a sum tree whose total is 0")
        node = 1
        while node < self._leaves:
            left = 2 * node
            left_sum, right_sum = self._sum[left], self._sum[left + 1]
            if left_sum > 0 and (remaining < left_sum or right_sum <= 0):
                node = left
            else:
                remaining -= left_sum
                node = left + 1
        return node - self._leaves


@dataclass(frozen=True)
class ReplayConfig:
    """Settings of a `PrioritizedReplay` buffer (the paper's proportional variant)."""

    capacity: int = 100_000
    """Most items kept; once full, each new item overwrites the oldest."""
    alpha: float = 0.6
    """Priority exponent: P(i) is proportional to p_i^alpha (0 samples uniformly)."""
    beta_start: float = 0.4
    """Importance-sampling exponent at step 0; it anneals linearly to 1."""
    beta_steps: int = 1000
    """Updates (calls of step()) over which beta anneals from beta_start to 1."""
    eps: float = 1e-6
    """Added to |error| so that no item's priority is 0."""

    def __post_init__(self) -> None:
        checks = (
            (_is_int(self.capacity) and self.capacity >= 1, "capacity must be an int >= 1"),
            (_finite(self.alpha) and self.alpha >= 0, "alpha must be finite and >= 0"),
            (
                _finite(self.beta_start) and 0 <= self.beta_start <= 1,
                "beta_start must be in [0, 1]",
            ),
            (_is_int(self.beta_steps) and self.beta_steps >= 1, "beta_steps must be an int >= 1"),
            (_finite(self.eps) and self.eps > 0, "eps must be finite and > 0"),
        )
        for ok, message in checks:
            if not ok:
                raise ReplayError(f"ReplayConfig: {message} (got {self!r})")


class PrioritizedReplay:
    """A ring of at most ``config.capacity`` JSON-serialisable dict items, sampled by priority.

    Indices returned by `add` and `sample` are ring slots: once the buffer is full, a slot is
    reused by a later item, so an index kept across ``capacity`` more adds names a newer item.
    """

    def __init__(self, config: ReplayConfig | None = None) -> None:
        self.config = config if config is not None else ReplayConfig()
        self._tree = SumTree(self.config.capacity)
        self._priorities = np.zeros(self.config.capacity, dtype=np.float64)
        self._items: list[dict[str, Any]] = []
        self._position = 0
        self._step = 0
        self._max_priority = 1.0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def steps(self) -> int:
        """Number of `step` calls so far (drives the beta schedule)."""
        return self._step

    @property
    def beta(self) -> float:
        """``min(1, beta_start + steps * (1 - beta_start) / beta_steps)``; exactly 1 at the end."""
        cfg = self.config
        if self._step >= cfg.beta_steps:
            return 1.0
        return min(1.0, cfg.beta_start + self._step * (1.0 - cfg.beta_start) / cfg.beta_steps)

    @property
    def max_priority(self) -> float:
        """The largest priority seen so far (1.0 at first); new items get it."""
        return self._max_priority

    def priority(self, index: int) -> float:
        """The priority ``|error| + eps`` (before the ``alpha`` power) of slot ``index``."""
        return float(self._priorities[self._check_slot(index)])

    def step(self) -> None:
        """Advance the beta schedule by one learner update."""
        self._step += 1

    def add(self, item: Mapping[str, Any]) -> int:
        """Store ``item`` with the current max priority; return its slot index."""
        if not isinstance(item, Mapping):
            raise ReplayError(f"replay items must be dicts, got {type(item).__name__}")
        index = self._position
        if len(self._items) < self.config.capacity:
            self._items.append(dict(item))
        else:
            self._items[index] = dict(item)
        self._set_priority(index, self._max_priority)
        self._position = (index + 1) % self.config.capacity
        return index

    def sample(
        self, batch_size: int, rng: np.random.Generator
    ) -> tuple[list[int], list[dict[str, Any]], list[float]]:
        """Draw ``batch_size`` items (with replacement) by stratified proportional sampling.

        The total mass is split into ``batch_size`` equal segments with one uniform draw in
        each. Returns ``(indices, items, weights)`` with
        ``weights[j] = (N * P(i_j))^-beta / max_k (N * P(i_k))^-beta``: the max is over this
        batch, so the largest weight is 1. ``beta`` is `beta` at the current step.
        """
        if not _is_int(batch_size) or batch_size < 1:
            raise ReplayError(f"batch_size must be a positive int, got {batch_size!r}")
        if not self._items:
            raise ReplayError("cannot sample from an empty replay buffer")
        total = self._tree.total
        segment = total / batch_size
        masses = (np.arange(batch_size) + rng.random(batch_size)) * segment
        indices = [self._tree.find(float(m)) for m in masses]
        probs = np.array([self._tree.get(i) for i in indices]) / total
        raw = (len(self._items) * probs) ** (-self.beta)
        weights = raw / raw.max()
        return indices, [self._items[i] for i in indices], [float(w) for w in weights]

    def keep(self, predicate: Callable[[dict[str, Any]], bool]) -> int:
        """Drop every item for which ``predicate(item)`` is false; the others keep their
        priorities and their order from oldest to newest (slots are renumbered from 0), and the
        beta schedule and the running max priority stay. Returns the number dropped."""
        size, cap = len(self._items), self.config.capacity
        order = range(size) if size < cap else [(self._position + k) % cap for k in range(cap)]
        kept = [(self._items[i], float(self._priorities[i])) for i in order]
        kept = [(item, p) for item, p in kept if predicate(item)]
        if len(kept) == size:
            return 0
        self._tree = SumTree(cap)
        self._priorities[:] = 0.0
        self._items = [item for item, _ in kept]
        for index, (_, priority) in enumerate(kept):
            self._priorities[index] = priority
            self._tree.update(index, priority**self.config.alpha)
        self._position = len(kept) % cap
        return size - len(kept)

    def update_priorities(self, indices: Sequence[int], errors: Sequence[float]) -> None:
        """Set each slot's priority to ``|error| + eps``; all are checked before any is set."""
        indices, errors = list(indices), [float(e) for e in errors]
        if len(indices) != len(errors):
            raise ReplayError(f"got {len(indices)} indices but {len(errors)} errors")
        bad = [e for e in errors if not math.isfinite(e)]
        if bad:
            raise ReplayError(f"errors must be finite, got {bad[:3]}")
        slots = [self._check_slot(i) for i in indices]
        for slot, error in zip(slots, errors, strict=True):
            self._set_priority(slot, abs(error) + self.config.eps)

    def _check_slot(self, index: int) -> int:
        if not _is_int(index) or not 0 <= index < len(self._items):
            raise ReplayError(f"index {index!r} is not a filled slot (0..{len(self._items) - 1})")
        return int(index)

    def _set_priority(self, index: int, priority: float) -> None:
        self._priorities[index] = priority
        self._tree.update(index, priority**self.config.alpha)
        self._max_priority = max(self._max_priority, priority)

    def state_dict(self) -> dict[str, Any]:
        """The whole buffer as JSON-serialisable data (see `from_state`)."""
        size = len(self._items)
        return {
            "format": STATE_FORMAT,
            "config": dataclasses.asdict(self.config),
            "items": [dict(item) for item in self._items],
            "priorities": [float(p) for p in self._priorities[:size]],
            "position": self._position,
            "size": size,
            "step": self._step,
            "max_priority": self._max_priority,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> PrioritizedReplay:
        """Rebuild a buffer from `state_dict` output; raises `ReplayError` when malformed."""
        try:
            config = ReplayConfig(**state["config"])
            items, priorities = list(state["items"]), [float(p) for p in state["priorities"]]
            size, position, step = state["size"], state["position"], state["step"]
            max_priority = float(state["max_priority"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ReplayError(f"malformed replay state: {exc!r}") from exc
        _check_state(config, items, priorities, (size, position, step), max_priority)
        replay = cls(config)
        replay._items = [dict(item) for item in items]
        for index, priority in enumerate(priorities):
            replay._set_priority(index, priority)
        replay._position, replay._step = int(position), int(step)
        replay._max_priority = max_priority
        return replay

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write `state_dict` as JSON to ``path`` atomically (temp file, then rename)."""
        try:
            text = json.dumps(self.state_dict(), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ReplayError(f"replay items are not JSON-serialisable: {exc}") from exc
        written = write_text_atomic(path, text)
        logger.debug("saved %d replay items to %s", len(self), written)
        return written

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PrioritizedReplay:
        """Read a buffer written by `save`."""
        try:
            state = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ReplayError(f"cannot read replay buffer {path}: {exc}") from exc
        if not isinstance(state, dict):
            raise ReplayError(f"{path}: a replay buffer file holds a JSON object")
        replay = cls.from_state(state)
        logger.debug("loaded %d replay items from %s", len(replay), path)
        return replay


def _check_state(
    config: ReplayConfig,
    items: list[Any],
    priorities: list[float],
    counters: tuple[Any, Any, Any],
    max_priority: float,
) -> None:
    size, position, _ = counters
    problems = []
    if not all(_is_int(n) and n >= 0 for n in counters):
        problems.append("size, position and step must be ints >= 0")
    elif not (size == len(items) == len(priorities) <= config.capacity):
        problems.append("size, items and priorities disagree or exceed capacity")
    elif position >= config.capacity or (size < config.capacity and position != size):
        problems.append("write position does not match size and capacity")
    if not all(isinstance(item, dict) for item in items):
        problems.append("items must be JSON objects")
    if not all(math.isfinite(p) and p > 0 for p in priorities):
        problems.append("priorities must be finite and > 0")
    highest = max(priorities, default=0.0)
    if not (math.isfinite(max_priority) and max_priority > 0 and max_priority >= highest):
        problems.append("max_priority must be finite, > 0 and >= every priority")
    if problems:
        raise ReplayError("malformed replay state: " + "; ".join(problems))

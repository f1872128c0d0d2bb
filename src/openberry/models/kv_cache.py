"""KV caches for `HFPolicy`: a cache layer that grows in place, and a prefix store kept across
calls.

Tree search sends a model the same prefixes over and over: every expansion of a node re-sends
its whole path, every value or judge prompt repeats the solution it rates. Serving engines keep
the keys and values of such prefixes between requests (SGLang's RadixAttention, vLLM's
automatic prefix caching, both keyed by token blocks); this module does the same for the
transformers backend, which has no such cache of its own:

- `PrefixStore`: the keys and values of whole token sequences the model has already read, kept
  across calls under a byte budget (least recently used first out). `PrefixStore.lookup` finds
  the longest stored prefix of a new prompt: entries are indexed by a hash chain over blocks of
  `block` tokens, the match is checked token by token (no trust in hashes) and then extended
  past the last whole block. An entry whose tokens are a prefix of a new one is dropped, so
  the store keeps the ends of paths, not every step along them.
  Where this departs from the serving engines: an entry is one contiguous tensor per sequence
  rather than a tree of shared blocks, so two stored siblings hold their common prefix twice.
  That costs memory (bounded by the budget) but lets a batch be assembled with one copy per
  row, which matters more on a CPU than the duplicate bytes.
- `GrowingLayer`: a transformers cache layer whose keys and values live in a buffer with spare
  capacity, written in place. transformers' `DynamicLayer` concatenates at every decode step,
  copying the whole cache each time (quadratic in the generated length, and on a CPU a fresh
  allocation per layer per step). The buffer doubles when full.

Stored keys carry their rotary position (a prefix is always re-used at positions 0..L-1), so
only models whose every layer is full attention take part (`supports_growing_cache`); others
keep transformers' own cache and no prefix store.

This module imports torch and transformers: `HFPolicy` imports it when a policy is built.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

__all__ = ["GrowingLayer", "PrefixStore", "growing_cache", "supports_growing_cache"]

logger = logging.getLogger(__name__)

MIN_CAPACITY = 64
"""Fewest positions a `GrowingLayer` buffer is allocated with."""


class GrowingLayer(DynamicLayer):
    """A full-attention cache layer over buffers [B, H, capacity, D] written in place.

    ``keys``/``values`` are views of the first ``length`` positions (what attention reads).
    `adopt` starts a layer on buffers the caller has already filled with a prefix.
    """

    def __init__(self) -> None:
        super().__init__()
        self._kbuf: torch.Tensor | None = None
        self._vbuf: torch.Tensor | None = None
        self._len = 0

    @classmethod
    def adopt(cls, keys: torch.Tensor, values: torch.Tensor, length: int) -> GrowingLayer:
        """A layer whose first `length` positions of `keys`/`values` [B, H, C, D] are cached."""
        layer = cls()
        layer._kbuf, layer._vbuf, layer._len = keys, values, int(length)
        layer.device = keys.device
        layer.is_initialized = True
        layer._views()
        return layer

    def _views(self) -> None:
        assert self._kbuf is not None and self._vbuf is not None
        self.keys = self._kbuf[..., : self._len, :]
        self.values = self._vbuf[..., : self._len, :]

    @property
    def capacity(self) -> int:
        return 0 if self._kbuf is None else int(self._kbuf.shape[-2])

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self._kbuf = key_states.new_empty((*key_states.shape[:2], 0, key_states.shape[-1]))
        self._vbuf = value_states.new_empty((*value_states.shape[:2], 0, value_states.shape[-1]))
        self._len = 0
        self.is_initialized = True
        self._views()

    def _grow(self, needed: int) -> None:
        assert self._kbuf is not None and self._vbuf is not None
        size = max(needed, 2 * self.capacity, MIN_CAPACITY)
        kbuf = self._kbuf.new_empty((*self._kbuf.shape[:2], size, self._kbuf.shape[-1]))
        vbuf = self._vbuf.new_empty((*self._vbuf.shape[:2], size, self._vbuf.shape[-1]))
        kbuf[..., : self._len, :] = self._kbuf[..., : self._len, :]
        vbuf[..., : self._len, :] = self._vbuf[..., : self._len, :]
        self._kbuf, self._vbuf = kbuf, vbuf

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        assert self._kbuf is not None and self._vbuf is not None
        end = self._len + key_states.shape[-2]
        if end > self.capacity:
            self._grow(end)
        self._kbuf[..., self._len : end, :] = key_states
        self._vbuf[..., self._len : end, :] = value_states
        self._len = end
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self._len if self.is_initialized else 0

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.batch_select_indices(beam_idx)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep the rows `indices`. Increasing indices (finished rows dropped) are compacted
        inside the buffers, row by row, without a new allocation (on a CPU a fresh buffer
        means page faults on every page); any other order is gathered into new buffers."""
        if self._kbuf is None or self._vbuf is None:
            return
        order = [int(i) for i in indices.tolist()]
        if all(a < b for a, b in pairwise(order)):
            for new, old in enumerate(order):
                if new != old:
                    self._kbuf[new, :, : self._len].copy_(self._kbuf[old, :, : self._len])
                    self._vbuf[new, :, : self._len].copy_(self._vbuf[old, :, : self._len])
            self._kbuf = self._kbuf[: len(order)]
            self._vbuf = self._vbuf[: len(order)]
        else:
            indices = indices.to(self._kbuf.device)
            self._kbuf = self._kbuf.index_select(0, indices)
            self._vbuf = self._vbuf.index_select(0, indices)
        self._views()

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self._kbuf is not None and self._vbuf is not None:
            self._kbuf = self._kbuf.repeat_interleave(repeats, dim=0)
            self._vbuf = self._vbuf.repeat_interleave(repeats, dim=0)
            self._views()

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError("GrowingLayer.crop takes a negative count of tokens to remove")
        if tokens_to_remove and self.is_initialized:
            self._len = max(0, self._len + tokens_to_remove)
            self._views()

    def reset(self) -> None:
        self._kbuf = self._vbuf = None
        self._len = 0
        super().reset()


def supports_growing_cache(model: Any) -> bool:
    """True when every layer of `model` is plain full attention (transformers would give it a
    `DynamicLayer` each), so `GrowingLayer` and stored prefixes are exact for it."""
    try:
        probe = DynamicCache(config=model.config)
    except (TypeError, ValueError, AttributeError):
        return False
    return bool(probe.layers) and all(type(layer) is DynamicLayer for layer in probe.layers)


def growing_cache(layers: Sequence[GrowingLayer]) -> Cache:
    """A transformers `Cache` over the given layers."""
    return Cache(layers=list(layers))


@dataclass
class _Entry:
    tokens: tuple[int, ...]
    kv: torch.Tensor
    """[layers, 2, H, len(tokens), D]: keys (index 0) and values (index 1) of every token."""
    keys: list[int] = field(default_factory=list)
    """Block hash-chain keys this entry is indexed under."""

    @property
    def nbytes(self) -> int:
        return self.kv.numel() * self.kv.element_size()


class PrefixStore:
    """Keys and values of token sequences already read, for re-use by later prompts.

    Args:
        max_bytes: budget of stored tensors; least recently used entries go first. None: no
            limit (a store that lives for one call).
        block: tokens per hash block of the index (matches are then extended token by token).
    """

    def __init__(self, max_bytes: int | None, block: int = 16) -> None:
        if block < 1:
            raise ValueError(f"block must be >= 1, got {block}")
        self.max_bytes = max_bytes
        self.block = block
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._index: dict[int, dict[int, None]] = {}
        self._next_id = 0
        self.nbytes = 0
        self.lookups = 0
        self.hit_tokens = 0
        """Prompt tokens served from the store since the last `clear` (a statistic)."""

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Drop every entry and reset the statistics."""
        self._entries.clear()
        self._index.clear()
        self.nbytes = 0
        self.lookups = 0
        self.hit_tokens = 0

    def _chain(self, tokens: Sequence[int], limit: int) -> Iterator[tuple[int, int]]:
        """(prefix length, key) for each whole block of ``tokens[:limit]``: the key hashes the
        previous key with the block, so it stands for the whole prefix. `add` indexes an entry
        under all of them; `_find` walks them until one is missing."""
        h = 0
        for start in range(0, limit - self.block + 1, self.block):
            h = hash((h, tuple(tokens[start : start + self.block])))
            yield start + self.block, h

    def _find(self, tokens: Sequence[int], limit: int) -> tuple[int | None, int]:
        """(entry id, matched length) of the longest stored prefix of ``tokens[:limit]``."""
        limit = min(limit, len(tokens))
        best: int | None = None
        matched = 0
        for length, key in self._chain(tokens, limit):
            ids = self._index.get(key)
            if not ids:
                break
            best, matched = next(reversed(ids)), length
        if best is None:
            return None, 0
        entry = self._entries[best]
        if list(entry.tokens[:matched]) != list(tokens[:matched]):  # a hash collision
            return None, 0
        end = min(limit, len(entry.tokens))
        while matched < end and entry.tokens[matched] == tokens[matched]:
            matched += 1
        return best, matched

    def matched(self, tokens: Sequence[int], limit: int) -> int:
        """Length of the longest stored prefix of ``tokens[:limit]`` (no statistics, no LRU)."""
        return self._find(tokens, limit)[1]

    def lookup(self, tokens: Sequence[int], limit: int) -> tuple[torch.Tensor | None, int]:
        """The longest stored prefix of ``tokens[:limit]``: (kv [layers, 2, H, >=n, D], n), or
        (None, 0). Only the first n positions of the tensor belong to the prefix."""
        self.lookups += 1
        eid, matched = self._find(tokens, limit)
        if eid is None or matched == 0:
            return None, 0
        self._entries.move_to_end(eid)
        self.hit_tokens += matched
        return self._entries[eid].kv, matched

    def add(self, tokens: Sequence[int], kv: torch.Tensor) -> None:
        """Store the keys and values `kv` [layers, 2, H, len(tokens), D] of `tokens`."""
        if kv.shape[-2] != len(tokens):
            raise ValueError(f"kv holds {kv.shape[-2]} positions for {len(tokens)} tokens")
        if len(tokens) < self.block:
            return
        eid, matched = self._find(tokens, len(tokens))
        if eid is not None:
            old = self._entries[eid]
            if matched == len(tokens):  # already stored inside a longer entry
                self._entries.move_to_end(eid)
                return
            if matched == len(old.tokens):  # the old entry is a prefix of this one
                self._remove(eid)
        entry = _Entry(tuple(tokens), kv, [key for _, key in self._chain(tokens, len(tokens))])
        if self.max_bytes is not None and entry.nbytes > self.max_bytes:
            return
        eid = self._next_id
        self._next_id += 1
        self._entries[eid] = entry
        for key in entry.keys:
            self._index.setdefault(key, {})[eid] = None
        self.nbytes += entry.nbytes
        while self.max_bytes is not None and self.nbytes > self.max_bytes:
            self._remove(next(iter(self._entries)))

    def _remove(self, eid: int) -> None:
        entry = self._entries.pop(eid)
        self.nbytes -= entry.nbytes
        for key in entry.keys:
            ids = self._index.get(key)
            if ids is not None:
                ids.pop(eid, None)
                if not ids:
                    del self._index[key]

"""KV caches for `HFPolicy`: a cache layer that grows in place, and a prefix store kept across
calls.

Tree search sends a model the same prefixes over and over: every expansion of a node re-sends
its whole path, every value or judge prompt repeats the solution it rates. Serving engines keep
the keys and values of such prefixes between requests (SGLang's RadixAttention, vLLM's
automatic prefix caching, both keyed by token blocks); this module does the same for the
transformers backend, which has no such cache of its own:

- `PrefixStore`: the keys and values of token sequences the model has already read or
  written, kept across calls under a byte budget, as a radix tree of token segments (SGLang's
  RadixAttention): a sequence that extends a stored one stores only its new tokens, sequences
  that share a prefix share its segments, and `PrefixStore.lookup` returns the segments of the
  longest stored prefix of a new prompt. The least recently used segments leave first, always
  leaves, so a prefix outlives the branches through it. Where this departs from SGLang: no
  fixed-size pages (a segment is one tensor of any length), and a leaf that a new sequence
  extends is rewritten as one longer segment, so a path grown a step at a time is assembled
  from one segment per branch point rather than one per step.
- `arena`, `select_rows`, `repeat_rows`: `HFPolicy` keeps every layer's keys and values of a
  call in one buffer [layers, 2, B, H, T, D], so a row of all layers is one slice: dropping
  finished rows, repeating a prompt's row for its samples and copying a row into the store are
  one tensor operation each instead of one per layer and per keys/values.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

__all__ = [
    "GrowingLayer",
    "PrefixStore",
    "arena",
    "growing_cache",
    "repeat_rows",
    "select_rows",
    "supports_growing_cache",
]

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


def arena(cache: Cache, positions: int | None = None) -> torch.Tensor | None:
    """The keys and values of every layer of `cache` as one view [layers, 2, B, H, P, D], or None.

    `HFPolicy` allocates one buffer [layers, 2, B, H, capacity, D] per call and gives layer i
    the views ``[i, 0]`` (keys) and ``[i, 1]`` (values). While the layers still live there (no
    layer has grown on its own), a row of every layer is one slice of this view, so copying a
    row (compacting the batch, storing a row's prefix) is one tensor operation instead of one
    per layer and per keys/values. P is `positions` (default: the cached length).
    """
    layers = cache.layers
    if not layers or not all(
        isinstance(layer, GrowingLayer) and layer._kbuf is not None and layer._vbuf is not None
        for layer in layers
    ):
        return None
    first = layers[0]
    assert first._kbuf is not None and first._vbuf is not None
    base = first._kbuf.storage_offset()
    kv_step = first._vbuf.storage_offset() - base
    layer_step = layers[1]._kbuf.storage_offset() - base if len(layers) > 1 else 0
    storage = first._kbuf.untyped_storage().data_ptr()
    for i, layer in enumerate(layers):
        if layer._len != first._len:
            return None
        for buf, offset in (
            (layer._kbuf, base + i * layer_step),
            (layer._vbuf, base + i * layer_step + kv_step),
        ):
            if (
                buf.untyped_storage().data_ptr() != storage
                or buf.storage_offset() != offset
                or buf.shape != first._kbuf.shape
                or buf.stride() != first._kbuf.stride()
            ):
                return None
    if kv_step == 0 or (len(layers) > 1 and layer_step == 0):
        return None
    b, h, _, d = first._kbuf.shape
    size = (len(layers), 2, b, h, first._len if positions is None else positions, d)
    return first._kbuf.as_strided(size, (layer_step, kv_step, *first._kbuf.stride()), base)


def select_rows(cache: Cache, rows: Sequence[int]) -> None:
    """Keep the batch rows `rows` (increasing) of `cache`, compacted in place: one copy per
    moved row for all layers when they share one buffer (`arena`), else each layer's own
    `batch_select_indices`."""
    whole = arena(cache)
    if whole is None or any(a >= b for a, b in pairwise(rows)):
        index = torch.tensor(list(rows), dtype=torch.long, device=cache.layers[0].keys.device)
        cache.reorder_cache(index)
        return
    for new, old in enumerate(rows):
        if new != old:
            whole[:, :, new].copy_(whole[:, :, old])
    for layer in cache.layers:
        assert isinstance(layer, GrowingLayer) and layer._kbuf is not None
        layer._kbuf = layer._kbuf[: len(rows)]
        layer._vbuf = layer._vbuf[: len(rows)]  # type: ignore[index]
        layer._views()


def repeat_rows(cache: Cache, repeats: int) -> None:
    """Repeat every batch row of `cache` `repeats` times (row-major: r0, r0, r1, r1, ...),
    keeping the layers in one new buffer (`arena`) when they were in one."""
    first = cache.layers[0] if cache.layers else None
    whole = None if not isinstance(first, GrowingLayer) else arena(cache, first.capacity)
    if whole is None:
        cache.batch_repeat_interleave(repeats)
        return
    new = whole.repeat_interleave(repeats, dim=2)
    for i, layer in enumerate(cache.layers):
        assert isinstance(layer, GrowingLayer)
        layer._kbuf, layer._vbuf = new[i, 0], new[i, 1]
        layer._views()


KV = torch.Tensor | Callable[[int], torch.Tensor]
"""What `PrefixStore.add` takes for a sequence's keys and values: the tensor
[layers, 2, H, len(tokens), D], or a function ``kv(start)`` that returns the positions from
`start` on as a fresh tensor the store may keep (so that only what is new gets copied)."""


@dataclass(eq=False)
class _Node:
    """A segment of stored tokens: the edge of the radix tree from `parent` down to here."""

    tokens: tuple[int, ...]
    kv: torch.Tensor | None
    """[layers, 2, H, len(tokens), D]: keys (index 0) and values (index 1); None at the root."""
    parent: _Node | None
    children: dict[int, _Node] = field(default_factory=dict)
    """Child segments by their first token."""

    @property
    def nbytes(self) -> int:
        return 0 if self.kv is None else self.kv.numel() * self.kv.element_size()


class PrefixStore:
    """Keys and values of token sequences already read, for re-use by later prompts.

    A radix tree of token segments, as SGLang's RadixAttention keeps them: a sequence that
    extends a stored one stores only its new tokens, and sequences that share a prefix share its
    segments. A lookup returns the segments of the longest stored prefix, in order.

    Args:
        max_bytes: budget of stored tensors; the least recently used segments go first (always a
            leaf: a segment is used whenever a longer sequence through it is). None: no limit
            (a store that lives for one call).
    """

    def __init__(self, max_bytes: int | None) -> None:
        self.max_bytes = max_bytes
        self._root = _Node((), None, None)
        self._lru: OrderedDict[_Node, None] = OrderedDict()
        """Every segment, least recently used first; a segment is never older than its
        children (`_touch` moves a path leaf first), so the first is a leaf."""
        self.nbytes = 0
        self.lookups = 0
        self.hit_tokens = 0
        """Prompt tokens served from the store since the last `clear` (a statistic)."""

    def __len__(self) -> int:
        """Stored segments."""
        return len(self._lru)

    def clear(self) -> None:
        """Drop every segment and reset the statistics."""
        self._root.children.clear()
        self._lru.clear()
        self.nbytes = 0
        self.lookups = 0
        self.hit_tokens = 0

    def _walk(self, tokens: Sequence[int], limit: int) -> tuple[list[tuple[_Node, int]], int]:
        """The segments the longest stored prefix of ``tokens[:limit]`` runs through, each with
        how many of its tokens it uses (all but maybe the last's), and the prefix's length."""
        limit = min(limit, len(tokens))
        tokens = tuple(tokens[:limit])
        path: list[tuple[_Node, int]] = []
        node, pos = self._root, 0
        while pos < limit:
            child = node.children.get(tokens[pos])
            if child is None:
                break
            seg = child.tokens
            n = min(len(seg), limit - pos)
            if seg[:n] == tokens[pos : pos + n]:  # the usual case, compared in C
                m = n
            else:
                m = 1
                while seg[m] == tokens[pos + m]:
                    m += 1
            path.append((child, m))
            pos += m
            if m < len(seg):
                break
            node = child
        return path, pos

    def _touch(self, node: _Node) -> None:
        """Mark `node` and its ancestors used, the node first (so parents stay more recent)."""
        while node.parent is not None:
            self._lru.move_to_end(node)
            node = node.parent

    def matched(self, tokens: Sequence[int], limit: int) -> int:
        """Length of the longest stored prefix of ``tokens[:limit]`` (no statistics, no LRU)."""
        return self._walk(tokens, limit)[1]

    def lookup(self, tokens: Sequence[int], limit: int) -> tuple[list[torch.Tensor], int]:
        """The longest stored prefix of ``tokens[:limit]``: its keys and values as segments
        [layers, 2, H, n_i, D] in order (views of the store's tensors: copy, do not keep), and
        its length (the sum of the n_i; 0 with no segments)."""
        self.lookups += 1
        path, matched = self._walk(tokens, limit)
        if not path:
            return [], 0
        self._touch(path[-1][0])
        self.hit_tokens += matched
        pieces = []
        for node, m in path:
            assert node.kv is not None
            pieces.append(node.kv if m == len(node.tokens) else node.kv[..., :m, :])
        return pieces, matched

    def add(self, tokens: Sequence[int], kv: KV) -> None:
        """Store the keys and values of `tokens` (see `KV`); only the tokens past the longest
        stored prefix are copied. A leaf that the new tokens extend is rewritten as one longer
        segment, so a path grown a step at a time is not cut into one segment per step."""
        tokens = tuple(tokens)
        if isinstance(kv, torch.Tensor) and kv.shape[-2] != len(tokens):
            raise ValueError(f"kv holds {kv.shape[-2]} positions for {len(tokens)} tokens")
        path, matched = self._walk(tokens, len(tokens))
        if matched == len(tokens):  # already stored
            if path:
                self._touch(path[-1][0])
            return
        new = kv[..., matched:, :].clone() if isinstance(kv, torch.Tensor) else kv(matched)
        if new.shape[-2] != len(tokens) - matched:
            raise ValueError(
                f"kv holds {new.shape[-2]} positions for {len(tokens) - matched} new tokens"
            )
        if self.max_bytes is not None and new.numel() * new.element_size() > self.max_bytes:
            return
        parent = self._root
        if path:
            last, m = path[-1]
            if m < len(last.tokens):
                parent = self._split(last, m)
            elif not last.children and last.parent is not None:
                # Extend the leaf in place of a new child.
                assert last.kv is not None
                self.nbytes -= last.nbytes
                last.tokens += tokens[matched:]
                last.kv = torch.cat((last.kv, new), dim=-2)
                self.nbytes += last.nbytes
                self._touch(last)
                self._evict()
                return
            else:
                parent = last
        node = _Node(tokens[matched:], new, parent)
        parent.children[node.tokens[0]] = node
        self._lru[node] = None
        self.nbytes += node.nbytes
        self._touch(node)
        self._evict()

    def _split(self, node: _Node, m: int) -> _Node:
        """Cut `node`'s segment after its first `m` tokens; returns the new upper part."""
        assert node.kv is not None and node.parent is not None
        upper = _Node(node.tokens[:m], node.kv[..., :m, :].clone(), node.parent)
        node.parent.children[upper.tokens[0]] = upper
        node.tokens, node.kv = node.tokens[m:], node.kv[..., m:, :].clone()
        node.parent = upper
        upper.children[node.tokens[0]] = node
        self._lru[upper] = None  # newer than `node`, as a parent must be
        self._touch(upper)
        return upper

    def _evict(self) -> None:
        while self.max_bytes is not None and self.nbytes > self.max_bytes and self._lru:
            node = next(iter(self._lru))
            if node.children:  # cannot happen (see `_lru`); keep the invariant safe anyway
                self._lru.move_to_end(node)
                node = next((n for n in self._lru if not n.children), node)
            self._remove(node)

    def _remove(self, node: _Node) -> None:
        assert node.parent is not None
        del self._lru[node]
        del node.parent.children[node.tokens[0]]
        self.nbytes -= node.nbytes

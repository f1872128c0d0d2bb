"""Reading prompts into a KV cache with the prefix store: `PrefixCache`.

The data structures (`GrowingLayer`, `PrefixStore`, the one-buffer helpers) are in
`openberry.models.kv_cache`; this module is the glue between them and a model run. For
full-attention models a call's KV cache is one buffer [layers, 2, B, H, T, D]. A prompt starts
from the longest prefix of it in the store; prefixes several prompts of the call share are read
once first (`prefix_groups`); the few prompts whose unknown rest is much longer than the others'
are read in a pass of their own (`PrefixCache._store_long_rests`); then each row's known prefix
is copied into one left-padded cache and the rests are run (left-padded too, so the batch has
padding in the middle, masked out) with positions continuing from each prefix. Every prompt
read, and every generated row when it leaves the decode batch, is added to the store. Models
with sliding-window or other non-full-attention layers keep transformers' cache and run every
prompt whole.

Importing this module is light; `openberry.models.kv_cache` (torch) is imported when a
`PrefixCache` is built.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from openberry.models.base import DEFAULT_PREFIX_CACHE_MB, ModelError

if TYPE_CHECKING:
    from openberry.models.hf.runtime import HFRuntime

__all__ = [
    "DEFAULT_PREFIX_CACHE_MB",
    "PASS_TOKENS",
    "PREPASS_TOKENS",
    "PrefixCache",
    "prefix_groups",
    "token_passes",
]


PASS_TOKENS = 16384
"""Most padded tokens (rows x longest row) of one pass that stores prefixes ahead of a call."""


def token_passes(lengths: list[int], budget: int) -> list[list[int]]:
    """Indices of `lengths`, shortest first, in passes whose rows x longest row stays within
    `budget` (a row longer than the budget has a pass of its own)."""
    passes: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda k: lengths[k]):
        if passes and (len(passes[-1]) + 1) * lengths[i] <= budget:
            passes[-1].append(i)  # sorted: row i is the pass's longest
        else:
            passes.append([i])
    return passes


PREPASS_TOKENS = 256
"""What one extra forward pass is worth, in padded positions, when deciding whether to read a
call's few long prompt rests in a pass of their own (`PrefixCache._store_long_rests`)."""

logger = logging.getLogger(__name__)


class PrefixCache:
    """The prefix store of one model and the prefill that uses it.

    Args:
        runtime: the model it reads prompts with.
        prefix_cache_mb: budget (MiB) of the store kept across calls; 0 turns it off.
        share_prefixes: read a prefix shared by several rows of one call only once.
        min_shared_prefix: fewest shared tokens for rows to be grouped.

    Attributes:
        kv: `openberry.models.kv_cache` when the model supports a growing cache, else None.
        store: the `PrefixStore` kept across calls (None when off or unsupported).
    """

    def __init__(
        self,
        runtime: HFRuntime,
        prefix_cache_mb: float = DEFAULT_PREFIX_CACHE_MB,
        *,
        share_prefixes: bool = True,
        min_shared_prefix: int = 32,
    ) -> None:
        if prefix_cache_mb < 0:
            raise ModelError(f"prefix_cache_mb must be >= 0, got {prefix_cache_mb}")
        self.rt = runtime
        self.share_prefixes = share_prefixes
        self.min_shared_prefix = max(1, int(min_shared_prefix))
        self.kv: Any = _kv_module(runtime.model)
        self._kv_shape: tuple[int, int, int, Any] | None = None
        self._pool: Any = None
        self.store: Any = None
        if self.kv is not None and prefix_cache_mb > 0:
            self.store = self.kv.PrefixStore(int(prefix_cache_mb * 2**20))

    def reset(self) -> None:
        """Empty the store (after a weight update its keys and values are stale, and a search
        that starts from an empty store does not depend on earlier calls' float rounding)."""
        if self.store is not None:
            self.store.clear()

    def prefill(self, rows: list[list[int]], reserve: int = 0) -> tuple[Any, Any, Any, Any]:
        """Run the prompts `rows` into a fresh KV cache, re-using what is already known.

        With a growing cache (full-attention models): each row starts from the longest prefix
        in the store, prefixes shared by several rows of this call are run once first
        (`share_prefixes`), rows with much longer unknown rests than the others are run apart
        (`_store_long_rests`), and the rows are added to the store afterwards. Without a store
        (``prefix_cache_mb=0``) the last two use a store that lives for this call only. Models
        without a growing cache have their rows left-padded and run whole.

        Args:
            rows: prompt token ids.
            reserve: spare cache positions to allocate for tokens decoded afterwards.

        Returns:
            Last-position logits [B, V], attention mask [B, T] and position ids of the rows' last
            forward pass [B, t], and the cache, in row order.
        """
        rt = self.rt
        if self.kv is None or self.layout() is None:
            cache = rt.new_cache()
            ids, mask, pos = rt.left_pad(rows)
            logits = rt.forward(ids, mask, pos, cache=cache, keep=1)[:, -1, :]
            return logits, mask, pos, cache
        store = self.store if self.store is not None else self.kv.PrefixStore(None)
        if self.share_prefixes:
            self._store_shared_prefixes(rows, store)
        self._store_long_rests(rows, store)
        logits, mask, pos, cache, row_kv = self._prefill_stored(rows, store, reserve)
        if self.store is not None:
            for b, row in enumerate(rows):
                store.add(row, row_kv(b))
        return logits, mask, pos, cache

    def unknown_lengths(self, rows: list[list[int]]) -> list[int]:
        """Tokens of each row that a forward pass must read: what the store does not hold,
        after the prefixes several rows share (`_store_shared_prefixes`) were read once for the
        whole call. Without a store, the rows' lengths."""
        store = self.store
        if store is None or self.kv is None or self.layout() is None:
            return [len(r) for r in rows]
        if self.share_prefixes:
            self._store_shared_prefixes(rows, store)
        return [len(r) - store.matched(r, len(r) - 1) for r in rows]

    def repeat_rows(self, cache: Any, n: int) -> None:
        """Copy each row of `cache` to `n` consecutive rows (a prompt's samples)."""
        if self.kv is not None:
            self.kv.repeat_rows(cache, n)
        else:
            cache.batch_repeat_interleave(n)

    def select_rows(self, cache: Any, keep: list[int], index: Any) -> None:
        """Keep only the rows `keep` of `cache` (`index`: the same as a tensor)."""
        if self.kv is not None:
            self.kv.select_rows(cache, keep)
        else:
            cache.reorder_cache(index)

    def store_decoded(
        self,
        cache: Any,
        mask: Any,
        batch_rows: Sequence[int],
        prompts: Sequence[list[int]],
        generated: Sequence[list[int]],
    ) -> None:
        """Add to the store the keys and values of prompt + generated tokens of the given batch
        rows, read from the decode cache (its valid positions are the mask's ones, in order:
        stored prefix, prompt rest, then each fed token).

        Tree search reads what it generated again: a value prompt is the policy prompt plus the
        new thought, a refine prompt the review prompt plus the review, a beam's next step its
        path plus the last step. Serving engines cache generated tokens for the same reason
        (SGLang's radix cache inserts finished requests)."""
        torch = self.rt.torch
        todo = []
        for j, prompt, gen in zip(batch_rows, prompts, generated, strict=True):
            tokens = [*prompt, *gen]
            if gen:
                where = mask[j].nonzero()[: len(tokens), 0]
                if where.numel() == len(tokens):  # else not all of them are in the cache
                    todo.append((j, tokens, where))
        if not todo:
            return
        whole = self.kv.arena(cache)
        if whole is None:  # a layer grew on its own: gather the rows of every layer first
            index = torch.tensor([j for j, _, _ in todo], dtype=torch.long, device=self.rt.device)
            whole = torch.stack(
                [torch.stack((layer.keys[index], layer.values[index])) for layer in cache.layers]
            )
            todo = [(r, tokens, where) for r, (_, tokens, where) in enumerate(todo)]
        for j, tokens, where in todo:
            self.store.add(
                tokens,
                lambda start, j=j, where=where: whole[:, :, j].index_select(-2, where[start:]),
            )

    def _store_shared_prefixes(self, rows: list[list[int]], store: Any) -> None:
        """Run, in one batch, the prefixes several rows share (`prefix_groups`) that the store
        does not hold yet, and add them to it."""
        groups = prefix_groups(rows, self.min_shared_prefix)
        if groups is None:
            return
        todo = []
        for length, members in groups:
            if len(members) < 2:
                continue
            prefix = rows[members[0]][:length]
            if length - store.matched(prefix, length) >= self.min_shared_prefix:
                todo.append(prefix)
        self._store_in_passes(todo, store)

    def _store_in_passes(self, prefixes: list[list[int]], store: Any) -> None:
        """Run `prefixes` and add them to the store, in passes of at most `PASS_TOKENS` padded
        tokens (`token_passes`): one pass over every prefix of a large call (thousands of value
        prompts) would hold all their activations and keys at once."""
        for chunk in token_passes([len(p) for p in prefixes], PASS_TOKENS):
            todo = [prefixes[i] for i in chunk]
            *_, row_kv = self._prefill_stored(todo, store, 0)
            for b, prefix in enumerate(todo):
                store.add(prefix, row_kv(b))

    def _store_long_rests(self, rows: list[list[int]], store: Any) -> None:
        """Run first, in a batch of their own, the few rows whose unknown rest is much longer
        than the others', so that they do not pad every row of the batch to their length.

        In tree search most prompts of a call extend something already stored by a few
        tokens, while a handful (a new solution in a judge prompt, an evicted path) must be
        read in full, and one such row would pad every row of the pass to its length. The rows
        pre-run are the k longest rests, with k minimising
        ``PREPASS_TOKENS + k * longest + rows * (k+1)-th longest`` (padded positions).
        """
        known = [store.matched(r, len(r) - 1) for r in rows]
        rests = sorted(
            ((len(r) - k, i) for i, (r, k) in enumerate(zip(rows, known, strict=True))),
            reverse=True,
        )
        longest = rests[0][0]
        best, best_cost = 0, len(rows) * longest
        for k in range(1, len(rows)):
            cost = PREPASS_TOKENS + k * longest + len(rows) * rests[k][0]
            if cost < best_cost:
                best, best_cost = k, cost
        if best:
            self._store_in_passes([rows[i][:-1] for _, i in rests[:best]], store)

    def _prefill_stored(
        self, rows: list[list[int]], store: Any, reserve: int
    ) -> tuple[Any, Any, Any, Any, Any]:
        """Assemble each row's stored prefix into one left-padded cache (padding in the middle:
        stored prefix, then the rest of the row, both left-padded and masked) and run the rests.

        Returns:
            logits, mask, positions, cache (as `prefill`), and ``row_kv(b)``: row b's keys and
            values as `PrefixStore.add` takes them (``kv(start)``: the positions from start on),
            valid until the cache is decoded into.
        """
        rt = self.rt
        torch = rt.torch
        layout = self.layout()
        assert layout is not None  # prefill checked it
        n_layers, heads, head_dim, dtype = layout
        hits = [store.lookup(r, len(r) - 1) for r in rows]
        known = [n for _, n in hits]
        width = max(known)
        rests = [r[s:] for r, s in zip(rows, known, strict=True)]
        rest_width = max(len(r) for r in rests)
        buf = self._buffer(
            (n_layers, 2, len(rows), heads, width + rest_width + reserve, head_dim), dtype
        )
        p_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for b, (pieces, s) in enumerate(hits):
            # Masked positions still enter attention as 0 * value: no garbage (NaN) allowed.
            if s < width:
                buf[:, :, b, :, : width - s].zero_()
            if len(pieces) == 1:
                buf[:, :, b, :, width - s : width] = pieces[0]
            elif pieces:  # the stored segments of the prefix, in one copy
                torch.cat(pieces, dim=-2, out=buf[:, :, b, :, width - s : width])
            p_mask[b, width - s :] = 1
        layers = [self.kv.GrowingLayer.adopt(buf[i, 0], buf[i, 1], width) for i in range(n_layers)]
        cache = rt.new_cache(layers)
        s_ids, s_mask, _ = rt.left_pad(rests)
        offsets = torch.tensor(known, dtype=torch.long, device=rt.device)[:, None]
        s_pos = (offsets + s_mask.cumsum(-1) - 1).clamp(min=0)
        mask = torch.cat([p_mask.to(rt.device), s_mask], dim=-1)
        logits = rt.forward(s_ids, mask, s_pos, cache=cache, keep=1)[:, -1, :]
        end = width + rest_width

        def row_kv(b: int) -> Any:
            """`PrefixStore.add`'s ``kv(start)`` for row b: its positions from start on."""
            s, rest = known[b], len(rests[b])

            def positions(start: int) -> Any:
                tail = buf[:, :, b, :, end - rest + max(start - s, 0) : end]
                if start >= s:
                    return tail.clone()
                return torch.cat([buf[:, :, b, :, width - s + start : width], tail], dim=-2)

            return positions

        return logits, mask, s_pos, cache, row_kv

    def _buffer(self, shape: tuple[int, ...], dtype: Any) -> Any:
        """An uninitialised tensor of `shape` for a call's KV cache. On a CPU it is a view of
        one buffer kept across calls, since a fresh multi-MB tensor costs a page fault per page;
        a GPU's caching allocator already does this. Only one call's cache may use it at a
        time."""
        torch = self.rt.torch
        size = math.prod(shape)
        if self.rt.device.type != "cpu":
            return torch.empty(shape, dtype=dtype, device=self.rt.device)
        pool = self._pool
        if pool is None or pool.dtype != dtype or pool.numel() < size:
            pool = self._pool = torch.empty(size + size // 4, dtype=dtype, device=self.rt.device)
        return pool[:size].view(shape)

    def layout(self) -> tuple[int, int, int, Any] | None:
        """(layers, key/value heads, head dim, dtype) of the model's KV cache, from one probe;
        None (and no growing cache or store from then on) when the layers' key shapes differ,
        since one buffer holds every layer."""
        if self._kv_shape is None and self.kv is not None:
            rt = self.rt
            torch = rt.torch
            cache = rt.new_cache()
            ids = torch.tensor([[rt.pad_token_id]], dtype=torch.long, device=rt.device)
            with torch.inference_mode():
                rt.forward(ids, torch.ones_like(ids), torch.zeros_like(ids), cache, keep=1)
            layout = _uniform_kv_layout([layer.keys for layer in cache.layers])
            if layout is None:
                logger.warning(
                    "%s: layers have different key/value shapes; prompts are read whole, "
                    "without the prefix store",
                    rt.name,
                )
                self.kv = self.store = None
            self._kv_shape = layout
        return self._kv_shape


def prefix_groups(
    prompt_rows: list[list[int]], min_shared: int
) -> list[tuple[int, list[int]]] | None:
    """Group prompts by a shared token prefix, or None when no two prompts share enough.

    Prompts are sorted so that those with long common prefixes are adjacent, then grouped
    greedily while the group's common prefix stays at least `min_shared` tokens and the prefix
    tokens saved grow. A group's prefix stops one token short of its shortest prompt, so every
    prompt keeps a non-empty suffix whose last position gives the first next-token logits.

    Returns:
        (prefix length, prompt indices) per group; singletons have prefix length
        ``len(prompt) - 1``.
    """
    order = sorted(range(len(prompt_rows)), key=lambda i: prompt_rows[i])
    groups: list[tuple[int, list[int]]] = []
    shared = False
    for i in order:
        row = prompt_rows[i]
        if groups:
            length, members = groups[-1]
            head = prompt_rows[members[0]]
            lcp = _common_prefix(head, row, length if len(members) > 1 else len(head))
            lcp = min(lcp, len(row) - 1, len(head) - 1)
            new_length = min(lcp, length)
            # Join when the tokens saved grow: k members sharing new_length save more than
            # the k - 1 others sharing length did.
            if lcp >= min_shared and (
                len(members) == 1 or len(members) * new_length > (len(members) - 1) * length
            ):
                groups[-1] = (new_length, [*members, i])
                shared = True
                continue
        groups.append((max(len(row) - 1, 0), [i]))
    return groups if shared else None


def _uniform_kv_layout(keys: Sequence[Any]) -> tuple[int, int, int, Any] | None:
    """(layers, heads, head dim, dtype) of per-layer key tensors [B, H, T, D], or None when the
    layers differ in heads, head dim or dtype (or there are none)."""
    shapes = {(int(k.shape[1]), int(k.shape[3]), k.dtype) for k in keys}
    if len(shapes) != 1:
        return None
    ((heads, head_dim, dtype),) = shapes
    return len(keys), heads, head_dim, dtype


def _common_prefix(a: Sequence[int], b: Sequence[int], limit: int) -> int:
    """Length of the common prefix of `a` and `b`, at most `limit`."""
    n = min(len(a), len(b), limit)
    for k in range(n):
        if a[k] != b[k]:
            return k
    return n


def _kv_module(model: Any) -> Any:
    """`openberry.models.kv_cache` when this transformers and `model` support it, else None."""
    try:
        from openberry.models import kv_cache
    except ImportError:  # transformers without cache layers (< 4.56)
        return None
    return kv_cache if kv_cache.supports_growing_cache(model) else None

"""The batched decode loop of `HFPolicy.generate`: `Decoder`.

All prompts x n rows are decoded in one batch (no ``model.generate``): each prompt is read once
(`PrefixCache.prefill`) and its KV cache copied to its n samples, then one token per step with
explicit ``position_ids`` (so left padding does not shift positions). Rows that finish (EOS or
a stop string) are dropped from the batch and the cache once a quarter of the batch is done, so
short answers do not pay for long ones; their prompt and fed tokens go to the prefix store.
Stop strings are checked after a step only when a stop string could end inside the new token's
text (`Decoder._may_stop`), on the decoded tail of the row (the whole row is decoded only when
the tail contains a stop). Conventions (logprobs, token stats, EOS, stop cuts, seeds): the
`openberry.models.hf` docstring.

Importing this module is light; torch is used through the runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from openberry.models.base import SamplingParams
from openberry.records import FinishReason, Generation

if TYPE_CHECKING:
    from openberry.models.hf.prefix import PrefixCache
    from openberry.models.hf.runtime import HFRuntime

__all__ = ["MAY_STOP_MEMO", "RESERVE_TOKENS", "Decoder"]

MAY_STOP_MEMO = 1 << 16
"""Most (token, stop strings) answers `Decoder._may_stop` remembers."""

RESERVE_TOKENS = 128
"""Spare cache positions `generate` allocates up front for decoding (the cache doubles past it)."""


class _Rows:
    """What one decode call has produced so far, per row (prompt-major: p0 x n, p1 x n, ...).

    ``live[j]`` is the row of batch row j (finished rows leave the batch in groups);
    ``fed[i]`` counts the generated tokens of row i whose keys and values are in the cache (a
    token is fed at the step after it is chosen; a finished row still in the batch is fed tokens
    that are not its output, so only the first ``len(ids[i])`` count).
    """

    def __init__(self, rows: list[list[int]], token_stats: bool) -> None:
        b = len(rows)
        self.rows = rows
        self.ids: list[list[int]] = [[] for _ in range(b)]
        self.lps: list[list[float]] = [[] for _ in range(b)]
        # Per row, (entropy, varentropy) of each step's distribution (with token_stats).
        self.stats: list[list[tuple[float, float]]] | None = (
            [[] for _ in range(b)] if token_stats else None
        )
        self.done: list[Generation | None] = [None] * b
        self.live = list(range(b))
        self.fed = [0] * b

    def feed(self) -> None:
        """The tokens chosen at this step are now in the cache."""
        for i in self.live:
            self.fed[i] = min(self.fed[i] + 1, len(self.ids[i]))


class Decoder:
    """Samples continuations of token rows with a runtime and its prefix cache."""

    def __init__(self, runtime: HFRuntime, prefix: PrefixCache) -> None:
        self.rt = runtime
        self.prefix = prefix
        self._may_stop_memo: dict[tuple[int, tuple[str, ...]], bool] = {}

    def generate(
        self, prompt_ids: list[list[int]], params: SamplingParams, batch_size: int | None
    ) -> list[list[Generation]]:
        """`params.n` samples of each encoded prompt, at most `batch_size` rows per batch (the
        n samples of a prompt stay in one batch)."""
        torch = self.rt.torch
        gen = None
        if params.seed is not None and not params.greedy:
            gen = torch.Generator(device=self.rt.device)
            gen.manual_seed(params.seed)
        per_chunk = max(1, (batch_size or params.n * len(prompt_ids)) // params.n)
        results: list[Generation] = []
        with torch.inference_mode():
            for start in range(0, len(prompt_ids), per_chunk):
                chunk = prompt_ids[start : start + per_chunk]
                results += self._generate_rows(chunk, params, gen)
        return [results[i * params.n : (i + 1) * params.n] for i in range(len(prompt_ids))]

    def _generate_rows(
        self, prompt_rows: list[list[int]], params: SamplingParams, gen: Any
    ) -> list[Generation]:
        """Decode n samples of each prompt; rows are prompt-major (p0 x n, p1 x n, ...)."""
        torch = self.rt.torch
        state = _Rows([r for r in prompt_rows for _ in range(params.n)], params.token_stats)
        logits, mask, pos, cache = self._start(prompt_rows, params)
        keep_kv = self.prefix.store is not None and self.prefix.kv is not None
        eos = torch.tensor(sorted(self.rt.eos_token_ids) or [-1], device=self.rt.device)
        window = 4 * max((len(s) for s in params.stop), default=0) + 8
        for step in range(params.max_new_tokens):
            nxt = self._step(state, logits, params, gen, eos, window)
            keep = [j for j, i in enumerate(state.live) if state.done[i] is None]
            if not keep or step == params.max_new_tokens - 1:
                break
            if len(keep) <= 3 * len(state.live) // 4:
                mask, pos, nxt = self._drop_finished(state, cache, mask, pos, nxt, keep, keep_kv)
            mask = torch.cat([mask, mask.new_ones((len(state.live), 1))], dim=-1)
            pos = pos[:, -1:] + 1
            logits = self.rt.forward(nxt[:, None], mask, pos, cache=cache, keep=1)[:, -1, :]
            state.feed()
        if keep_kv:
            live = state.live
            self.prefix.store_decoded(
                cache,
                mask,
                range(len(live)),
                [state.rows[i] for i in live],
                [state.ids[i][: state.fed[i]] for i in live],
            )
        return [
            d
            if d is not None
            else self._make(
                state.rows[i],
                state.ids[i],
                state.lps[i],
                "length",
                len(state.ids[i]),
                None if state.stats is None else state.stats[i],
            )
            for i, d in enumerate(state.done)
        ]

    def _start(
        self, prompt_rows: list[list[int]], params: SamplingParams
    ) -> tuple[Any, Any, Any, Any]:
        """Read each prompt once and copy its cache, last logits, mask and positions to its n
        samples."""
        n = params.n
        logits, mask, pos, cache = self.prefix.prefill(
            prompt_rows, reserve=min(params.max_new_tokens, RESERVE_TOKENS)
        )
        if n > 1:
            self.prefix.repeat_rows(cache, n)
            logits = logits.repeat_interleave(n, dim=0)
            mask = mask.repeat_interleave(n, dim=0)
            pos = pos.repeat_interleave(n, dim=0)
        return logits, mask, pos, cache

    def _step(
        self,
        state: _Rows,
        logits: Any,
        params: SamplingParams,
        gen: Any,
        eos: Any,
        window: int,
    ) -> Any:
        """Choose every batch row's next token [B] and record it for the rows still running,
        finishing those that end with it (EOS or a stop string)."""
        torch = self.rt.torch
        logits = logits.float()
        logp = torch.log_softmax(logits, dim=-1)
        nxt = self._choose(logits, params, gen)
        chosen_lp = logp.gather(-1, nxt[:, None])[:, 0]
        is_eos = torch.isin(nxt, eos)
        nxt_l, eos_l = nxt.tolist(), is_eos.tolist()
        if state.stats is None:
            lp_l = chosen_lp.tolist()
        else:
            # One transfer for the three per-row numbers.
            lp_l, ent_l, var_l = torch.stack([chosen_lp, *_entropy_varentropy(logp)]).tolist()
        for j, i in enumerate(state.live):
            if state.done[i] is not None:
                # Finished, still in the batch until a quarter of it is done: its later
                # tokens are not its output (nor may they overwrite or revive its result).
                continue
            ids, lps = state.ids[i], state.lps[i]
            ids.append(nxt_l[j])
            lps.append(lp_l[j])
            stats = None
            if state.stats is not None:
                stats = state.stats[i]
                stats.append((ent_l[j], var_l[j]))
            if eos_l[j]:
                state.done[i] = self._make(state.rows[i], ids, lps, "eos", len(ids) - 1, stats)
            elif params.stop and self._may_stop(nxt_l[j], params.stop):
                state.done[i] = self._check_stop(
                    state.rows[i], ids, lps, params.stop, window, stats
                )
        return nxt

    def _drop_finished(
        self,
        state: _Rows,
        cache: Any,
        mask: Any,
        pos: Any,
        nxt: Any,
        keep: list[int],
        keep_kv: bool,
    ) -> tuple[Any, Any, Any]:
        """Drop the finished rows from the batch and the cache (storing their keys and values
        first when `keep_kv`); returns mask, positions and chosen tokens of the rows `keep`."""
        live = state.live
        if keep_kv:
            gone = [j for j, i in enumerate(live) if state.done[i] is not None]
            self.prefix.store_decoded(
                cache,
                mask,
                gone,
                [state.rows[live[j]] for j in gone],
                [state.ids[live[j]][: state.fed[live[j]]] for j in gone],
            )
        torch = self.rt.torch
        index = torch.tensor(keep, dtype=torch.long, device=self.rt.device)
        self.prefix.select_rows(cache, keep, index)
        state.live = [live[j] for j in keep]
        return mask[index], pos[index], nxt[index]

    def _choose(self, logits: Any, params: SamplingParams, gen: Any) -> Any:
        """Next token per row: argmax, or tempered nucleus sampling."""
        torch = self.rt.torch
        if params.greedy:
            return logits.argmax(dim=-1)
        probs = torch.softmax(logits / params.temperature, dim=-1)
        if params.top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            before = sorted_p.cumsum(-1) - sorted_p  # mass of strictly more likely tokens
            sorted_p = sorted_p.masked_fill(before >= params.top_p, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        return torch.multinomial(probs, 1, generator=gen)[:, 0]

    def _may_stop(self, token: int, stops: tuple[str, ...]) -> bool:
        """False when appending `token` cannot complete a stop string: no stop can end inside
        the token's text (`_may_end_in`), whatever text came before it. Conservative where a
        token's text alone is not its text in context: partial UTF-8 bytes (U+FFFD), empty text,
        and stops ending in whitespace (SentencePiece drops a leading space when a token is
        decoded alone). Answers are remembered per token and stop strings."""
        key = (token, stops)
        known = self._may_stop_memo.get(key)
        if known is not None:
            return known
        text = self.rt.token_text(token)
        if not text or "\ufffd" in text:
            answer = True
        else:
            answer = any(s[-1].isspace() or _may_end_in(text, s) for s in stops)
        if len(self._may_stop_memo) < MAY_STOP_MEMO:
            self._may_stop_memo[key] = answer
        return answer

    def _check_stop(
        self,
        prompt: list[int],
        ids: list[int],
        lps: list[float],
        stops: Sequence[str],
        window: int,
        stats: list[tuple[float, float]] | None = None,
    ) -> Generation | None:
        """A "stop" `Generation` if the decoded text contains a stop string, else None.

        Called after every new token, so a stop string can only newly appear at the end: the
        last `window` tokens (at least 4 per character of the longest stop, for byte-level
        tokens that decode to partial characters) are decoded first, and the whole row only when
        a stop shows up there. This keeps the check linear in the generated length.
        """
        decode = self.rt.decode
        cut: tuple[str, int] | None = None  # (text up to the first stop, tokens kept)
        last = self.rt.token_text(ids[-1])
        if last in stops:
            # The usual stop: one token whose text is a stop string (a special token such as
            # <end_of_thought>, or a newline), where no stop starts earlier: the cut is before
            # that token, as the general rule below would find with more decoding.
            before = decode(ids[:-1])
            text = decode(ids)
            hits = [i for i in (text.find(s) for s in stops) if i >= 0]
            if text == before + last and min(hits) == len(before):
                cut = (before, len(ids) - 1)
        if cut is None:
            if len(ids) > window:
                tail = decode(ids[-window:])
                if not any(s in tail for s in stops):
                    return None
            text = decode(ids)
            hits = [i for i in (text.find(s) for s in stops) if i >= 0]
            if not hits:
                return None
            first = text[: min(hits)]
            keep = len(ids)
            while keep > 0 and not first.startswith(decode(ids[:keep])):
                keep -= 1
            cut = (first, keep)
        cut_text, keep = cut
        return Generation(
            text=cut_text,
            token_ids=tuple(ids[:keep]),
            logprobs=tuple(lps[:keep]),
            finish_reason="stop",
            prompt_tokens=len(prompt),
            **_stat_fields(None if stats is None else stats[:keep]),
        )

    def _make(
        self,
        prompt: list[int],
        ids: list[int],
        lps: list[float],
        reason: FinishReason,
        text_tokens: int,
        stats: list[tuple[float, float]] | None = None,
    ) -> Generation:
        return Generation(
            text=self.rt.decode(ids[:text_tokens]),
            token_ids=tuple(ids),
            logprobs=tuple(lps),
            finish_reason=reason,
            prompt_tokens=len(prompt),
            **_stat_fields(stats),
        )


def _may_end_in(text: str, stop: str) -> bool:
    """True when an occurrence of `stop` could end inside `text`, whatever text precedes it:
    `stop` ends at some position e of `text`, with the part of `text` up to e equal to the
    matching end of `stop` (all of `stop`, or the start of `text` being the end of `stop`)."""
    last = stop[-1]
    for e, c in enumerate(text):
        if c == last:
            k = min(e + 1, len(stop))
            if text[e + 1 - k : e + 1] == stop[len(stop) - k :]:
                return True
    return False


def _entropy_varentropy(logp: Any) -> tuple[Any, Any]:
    """Per-row entropy and varentropy of log-probabilities [B, V] (float32): two [B] tensors.

    H = -sum p log p and varentropy = sum p (log p + H)^2 (two passes, no cancellation).
    Log-probs of -inf (masked tokens) are clamped so that p = 0 contributes exactly 0; any
    log p below about -104 already has p = 0 in float32, so the clamp changes nothing else.
    Peak extra memory is about two [B, V] tensors.
    """
    p = logp.exp()
    clamped = logp.clamp(min=-1e15)
    entropy = -(p * clamped).sum(-1)
    varentropy = clamped.add_(entropy[:, None]).square_().mul_(p).sum(-1)
    return entropy.clamp(min=0.0), varentropy


def _stat_fields(stats: list[tuple[float, float]] | None) -> dict[str, Any]:
    """`Generation` keyword arguments for per-token (entropy, varentropy) pairs."""
    if stats is None:
        return {}
    return {
        "entropies": tuple(h for h, _ in stats),
        "varentropies": tuple(v for _, v in stats),
    }

"""Hugging Face transformers backend: `HFPolicy`, a `Policy` over any causal LM.

Importing this module is light; torch, transformers and peft are imported when a policy is built.

What is implemented:

- `HFPolicy.generate`: our own batched decode loop (no ``model.generate``): all prompts x n rows
  are left-padded into one batch, the prompt is run once, then one token per step with a KV cache
  and explicit ``position_ids`` (so left padding does not shift positions). With ``n > 1`` each
  prompt is run once and its KV cache copied to its n samples. Rows that finish (EOS or a
  stop string) are dropped from the batch and the cache once a quarter of the batch is done, so
  short answers do not pay for long ones. Stop strings are checked after a step only when a
  stop string could end inside the new token's text (`HFPolicy._may_stop`), on the decoded
  tail of the row (the whole row is decoded only when the tail contains a stop).
- Prefix re-use within and across calls (full-attention models; `openberry.models.kv_cache`):
  the cache is a `GrowingLayer` per layer, written in place (transformers' `DynamicLayer`
  copies the whole cache at every decode step). A prompt starts from the longest prefix of it
  in the **prefix store** (``prefix_cache_mb``, kept across calls: tree search re-sends each
  node's path, and a value or judge prompt repeats text an earlier call read), and with
  ``share_prefixes=True`` prefixes that several prompts of one call share (at least
  ``min_shared_prefix`` tokens: sibling nodes share their whole path) are run once first. Each
  row's known prefix is copied into one left-padded cache, and the rest of each prompt
  (left-padded too, so the batch has padding in the middle, masked out) is run with positions
  continuing from its prefix length. Every prompt read is then added to the store, and so is
  every generated row (prompt and the tokens fed back), read from the decode cache when the
  row leaves the batch: tree search reads what it wrote (a value prompt is the policy prompt
  plus the new thought, a refine prompt the review prompt plus the review). Outputs equal
  those without re-use up to float rounding (tested within 1e-4 on logprobs, 1e-5 on
  probabilities). `reset_prefix_cache` empties the store; the search engine calls it before
  each search, so a search never depends on what ran before it. A call's few prompts whose
  unknown rest is much longer than the others' are read first in a pass of their own
  (`_store_long_rests`); `next_token_probs` sorts its rows by the tokens still unknown, so
  a pass pads little. On berry-tiny, batched meta-action MCTS on 64 problems took 7.6 s with
  the store off and 4.4 s with it (BENCHMARKS, "Speed of the batched engine"). Models with
  sliding-window or other non-full-attention layers keep transformers' cache and run every
  prompt whole.
- `HFPolicy.score`: one left-padded forward pass per batch over prompt + completion, keeping only
  the logits of the last positions (``logits_to_keep``).
- `HFPolicy.next_token_probs`: one forward pass, softmax at the last position.

Conventions (where this departs from ``model.generate``):

- Reported logprobs are the model's log p at temperature 1 of the chosen token, from the raw
  logits (before temperature and top-p), matching `Policy.generate`'s contract; sampling itself
  uses the tempered, nucleus-filtered distribution.
- With ``SamplingParams.token_stats``, each generated token (EOS included) also gets the entropy
  and varentropy of that same temperature-1 distribution, computed in float32 over the full
  vocabulary from the log-softmax the logprobs come from, and reduced to two numbers per row at
  each step. Without it nothing extra is computed.
- An EOS token, when generated, is the last entry of ``token_ids``/``logprobs`` (and of the
  entropies/varentropies); its text is not in ``text``. With a stop string the text is cut
  before the stop, and tokens (with their logprobs and stats) are cut to the longest prefix whose
  decoded text is a prefix of the returned text (a token straddling the stop is dropped).
- Reproducibility: with ``seed`` set, sampling draws from a ``torch.Generator`` seeded with it, so
  the same seed, prompts, settings, batch and device give the same samples; temperature 0 is
  argmax and deterministic. A sample does depend on its batch (rows share the generator).
- Prompt/completion boundary in `score`: the context is the prompt's own tokenisation (as in
  `generate`); the completion tokens are the tokens of ``prompt + completion`` after the prompt's
  tokens when those are a prefix of the joint tokenisation (the usual case), otherwise the
  completion tokenised alone. For text that `generate` produced, this gives back the generated
  tokens whenever the tokenizer round-trips them.
- The chat template is applied (as one user message, with the generation prompt) only when
  ``use_chat_template=True`` and the tokenizer has one; otherwise prompts are encoded as they are
  with the tokenizer's default special tokens (e.g. BOS).
"""

from __future__ import annotations

import inspect
import logging
import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from openberry.models.base import ModelError, SamplingParams
from openberry.records import FinishReason, Generation

__all__ = ["HFPolicy", "tune_cpu_malloc"]

PREFILL_ROWS = 64
"""Rows per forward pass of `score` and `next_token_probs` when no `batch_size` is set: their
rows are sorted by length first, so small passes waste little on padding (the search engine sends
hundreds of judge and value prompts of mixed lengths in one call)."""

ENCODED_PROMPTS = 4096
"""Prompt encodings `HFPolicy.encode_prompt` remembers."""

PREPASS_TOKENS = 256
"""What one extra forward pass is worth, in padded positions, when `HFPolicy` decides whether
to read a call's few long prompt rests in a pass of their own (`_store_long_rests`)."""

MAY_STOP_MEMO = 1 << 16
"""Most (token, stop strings) answers `HFPolicy._may_stop` remembers."""

RESERVE_TOKENS = 128
"""Spare cache positions `generate` allocates up front for decoding (the cache doubles past it)."""

logger = logging.getLogger(__name__)


class HFPolicy:
    """A transformers causal LM as a `Policy`.

    Args:
        model: an already-built causal LM (tests); when None, loaded from `name_or_path`.
        tokenizer: its tokenizer (required with `model`).
        name_or_path: local directory, hub id, or built-in name (``berry-tiny``) to load.
        dtype: torch dtype or its name (``"float32"``, ``"bfloat16"``, ``"auto"``); None keeps
            the model's.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; None keeps the model's.
        adapter: path of a peft (LoRA) adapter to load on top of the model.
        merge_adapter: merge the adapter into the weights (faster inference).
        use_chat_template: wrap prompts in the tokenizer's chat template.
        batch_size: most rows per forward pass (None: all in one); `generate` keeps the n samples
            of a prompt in one batch, so it may exceed this when ``n > batch_size``.
        name: the policy name (default: `name_or_path` or the model's ``name_or_path``).
        share_prefixes: in `generate` and `next_token_probs`, run a token prefix shared by several
            prompts only once.
        min_shared_prefix: fewest shared tokens for prompts to be grouped.
        prefix_cache_mb: budget (MiB) of the prefix store kept across calls: the keys and values
            of prompts already read, re-used by later prompts that start with them (tree search
            re-sends each node's path). 0 turns it off. `reset_prefix_cache` empties it.
        cpu_decode_attention: on a CPU, compute decode steps of an ``sdpa`` model with
            `openberry.models.cpu_attention` (two matrix products; faster there than SDPA's
            fused kernel). False keeps the model's attention as it is.
    """

    def __init__(
        self,
        model: Any = None,
        tokenizer: Any = None,
        *,
        name_or_path: str | None = None,
        dtype: Any = None,
        device: str | None = None,
        adapter: str | None = None,
        merge_adapter: bool = False,
        use_chat_template: bool = False,
        batch_size: int | None = None,
        name: str | None = None,
        share_prefixes: bool = True,
        min_shared_prefix: int = 32,
        prefix_cache_mb: float = 1024.0,
        cpu_decode_attention: bool = True,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._torch = torch
        torch_dtype = _resolve_dtype(torch, dtype)
        if model is None:
            if name_or_path is None:
                raise ModelError("HFPolicy needs a model or a name_or_path")
            from openberry.models.builtin import resolve_model

            source = resolve_model(str(name_or_path))
            try:
                kwargs = {} if torch_dtype is None else {"dtype": torch_dtype}
                model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
                if tokenizer is None:
                    tokenizer = AutoTokenizer.from_pretrained(source)
            except (OSError, ValueError) as exc:
                raise ModelError(f"could not load model {name_or_path!r}: {exc}") from exc
        elif tokenizer is None:
            raise ModelError("HFPolicy(model=...) also needs a tokenizer")
        if torch_dtype is not None and torch_dtype != "auto":
            model = model.to(dtype=torch_dtype)
        if device is not None:
            model = model.to(device)
        if adapter is not None:
            try:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(adapter))
            except (OSError, ValueError) as exc:
                raise ModelError(f"could not load adapter {adapter!r}: {exc}") from exc
            if merge_adapter:
                model = model.merge_and_unload()
        model.eval()
        if cpu_decode_attention and next(model.parameters()).device.type == "cpu":
            try:
                from openberry.models.cpu_attention import use_decode_attention
            except ImportError:  # a transformers without pluggable attention
                pass
            else:
                use_decode_attention(model)
        self.model = model
        self.tokenizer = tokenizer
        self.use_chat_template = use_chat_template
        self.batch_size = batch_size
        self.share_prefixes = share_prefixes
        self.min_shared_prefix = max(1, int(min_shared_prefix))
        self.name = name or str(name_or_path or getattr(model, "name_or_path", "") or "hf")
        self.device = next(model.parameters()).device
        self.eos_token_ids = _eos_ids(model, tokenizer)
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = min(self.eos_token_ids) if self.eos_token_ids else 0
        self.pad_token_id = int(pad)
        self._cache_kwarg = _cache_kwarg(model)
        self._encoded: OrderedDict[tuple[bool, str], tuple[int, ...]] = OrderedDict()
        self._may_stop_memo: dict[tuple[int, tuple[str, ...]], bool] = {}
        self._token_texts: dict[int, str] = {}
        if prefix_cache_mb < 0:
            raise ModelError(f"prefix_cache_mb must be >= 0, got {prefix_cache_mb}")
        self._kv: Any = _kv_module(model)
        self._kv_shape: tuple[int, int, int, Any] | None = None
        self._pool: Any = None
        self.prefix_store: Any = None
        """The `PrefixStore` kept across calls (None when off or unsupported by the model)."""
        if self._kv is not None and prefix_cache_mb > 0:
            self.prefix_store = self._kv.PrefixStore(int(prefix_cache_mb * 2**20))

    def reset_prefix_cache(self) -> None:
        """Empty the prefix store, so later results do not depend on earlier calls' float
        rounding (the search engine calls this at the start of every search)."""
        if self.prefix_store is not None:
            self.prefix_store.clear()

    @classmethod
    def from_pretrained(cls, name_or_path: Any, **kwargs: Any) -> HFPolicy:
        """Load model and tokenizer from a local directory, a hub id or a built-in name.

        ``berry-tiny`` (see `openberry.models.builtin`) loads from inside the package, offline.
        Other arguments: see the class.
        """
        return cls(name_or_path=str(name_or_path), **kwargs)

    # ----------------------------------------------------------------------------- encoding

    @property
    def _chat(self) -> bool:
        """True when prompts are wrapped in the tokenizer's chat template."""
        return bool(self.use_chat_template and getattr(self.tokenizer, "chat_template", None))

    def _format(self, prompt: str) -> str:
        if self._chat:
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        return prompt

    def encode_prompt(self, prompt: str) -> list[int]:
        """Token ids the model sees for `prompt` (chat template applied when asked)."""
        return self.encode_prompts([prompt])[0]

    def encode_prompts(self, prompts: Sequence[str]) -> list[list[int]]:
        """`encode_prompt` of each prompt; the ones not seen lately are encoded in one batch
        (the fast tokenizer spreads a batch over threads).

        The last `ENCODED_PROMPTS` encodings are remembered: search sends a prompt to
        `count_tokens` and to `generate` or `next_token_probs`.
        """
        chat = self._chat
        todo = list(dict.fromkeys(p for p in prompts if (chat, p) not in self._encoded))
        if todo:
            if chat:
                texts = [self._format(p) for p in todo]
                encoded = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
            else:
                encoded = self.tokenizer(todo)["input_ids"]
            for prompt, ids in zip(todo, encoded, strict=True):
                self._encoded[(chat, prompt)] = tuple(ids)
        out = []
        for prompt in prompts:
            self._encoded.move_to_end((chat, prompt))
            out.append(list(self._encoded[(chat, prompt)]))
        while len(self._encoded) > max(ENCODED_PROMPTS, len(prompts)):
            self._encoded.popitem(last=False)
        return out

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
        text = self._token_text(token)
        if not text or "\ufffd" in text:
            answer = True
        else:
            answer = any(s[-1].isspace() or _may_end_in(text, s) for s in stops)
        if len(self._may_stop_memo) < MAY_STOP_MEMO:
            self._may_stop_memo[key] = answer
        return answer

    def _token_text(self, token: int) -> str:
        """One token decoded alone (remembered: there are at most as many as the vocabulary)."""
        text = self._token_texts.get(token)
        if text is None:
            text = self._token_texts[token] = self._decode([token])
        return text

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Number of tokens of each text as a prompt (the search engine's cost accounting)."""
        return [len(ids) for ids in self.encode_prompts(texts)]

    def _encode_completion(self, prompt: str, prompt_ids: list[int], completion: str) -> list[int]:
        if not completion:
            return []
        if self._chat:
            joint = list(
                self.tokenizer.encode(self._format(prompt) + completion, add_special_tokens=False)
            )
        else:
            joint = list(self.tokenizer.encode(prompt + completion))
        n = len(prompt_ids)
        if joint[:n] == prompt_ids and len(joint) > n:
            return joint[n:]
        logger.debug(
            "prompt tokens are not a prefix of prompt+completion; encoding completion alone"
        )
        return list(self.tokenizer.encode(completion, add_special_tokens=False))

    def _left_pad(self, rows: Sequence[Sequence[int]]) -> tuple[Any, Any, Any]:
        """input_ids, attention_mask and position_ids of left-padded rows."""
        torch = self._torch
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            if r:
                ids[i, width - len(r) :] = torch.tensor(list(r), dtype=torch.long)
                mask[i, width - len(r) :] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        return ids.to(self.device), mask.to(self.device), pos.to(self.device)

    def _forward(self, ids: Any, mask: Any, pos: Any, cache: Any = None, keep: int = 0) -> Any:
        kwargs: dict[str, Any] = {
            "input_ids": ids,
            "attention_mask": mask,
            "position_ids": pos,
            "logits_to_keep": keep,
        }
        if cache is not None:
            kwargs[self._cache_kwarg] = cache
            kwargs["use_cache"] = True
        else:
            kwargs["use_cache"] = False
        return self.model(**kwargs).logits

    def _chunks(self, n: int) -> list[range]:
        size = self.batch_size or max(n, 1)
        return [range(i, min(i + size, n)) for i in range(0, n, size)]

    def _unknown_lengths(self, rows: list[list[int]]) -> list[int]:
        """Tokens of each row that a forward pass must read: what the prefix store does not
        hold, after the prefixes several rows share (`_store_shared_prefixes`) were read once
        for the whole call. Without a store, the rows' lengths."""
        store = self.prefix_store
        if store is None or self._kv is None or self._kv_layout() is None:
            return [len(r) for r in rows]
        if self.share_prefixes:
            self._store_shared_prefixes(rows, store)
        return [len(r) - store.matched(r, len(r) - 1) for r in rows]

    def _prefill_chunks(self, lengths: Sequence[int]) -> list[list[int]]:
        """Row indices of prefill-only forward passes (`score`, `next_token_probs`): rows sorted
        by the tokens a pass must read (`lengths`), at most `batch_size` (None: `PREFILL_ROWS`)
        per pass, so that short rows are not padded to the longest of the whole call. Results
        go back in the caller's order."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        size = self.batch_size or PREFILL_ROWS
        return [order[i : i + size] for i in range(0, len(order), size)]

    # ----------------------------------------------------------------------------- Policy API

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Generation]]:
        """Sample `params.n` continuations of each prompt in one batched decode loop.

        See the module docstring for the logprob, token-stats, EOS, stop-string and seed
        conventions.
        """
        torch = self._torch
        prompt_ids = self.encode_prompts(prompts)
        gen = None
        if params.seed is not None and not params.greedy:
            gen = torch.Generator(device=self.device)
            gen.manual_seed(params.seed)
        per_chunk = max(1, (self.batch_size or params.n * len(prompts)) // params.n)
        results: list[Generation] = []
        with torch.inference_mode():
            for start in range(0, len(prompt_ids), per_chunk):
                chunk = prompt_ids[start : start + per_chunk]
                results += self._generate_rows(chunk, params, gen)
        return [results[i * params.n : (i + 1) * params.n] for i in range(len(prompts))]

    def _generate_rows(
        self, prompt_rows: list[list[int]], params: SamplingParams, gen: Any
    ) -> list[Generation]:
        """Decode n samples of each prompt; rows are prompt-major (p0 x n, p1 x n, ...)."""
        torch = self._torch
        n = params.n
        rows = [r for r in prompt_rows for _ in range(n)]
        logits, mask, pos, cache = self._prefill(
            prompt_rows, reserve=min(params.max_new_tokens, RESERVE_TOKENS)
        )
        if n > 1:
            # Each prompt was run once: copy its KV cache to its n samples.
            if self._kv is not None:
                self._kv.repeat_rows(cache, n)
            else:
                cache.batch_repeat_interleave(n)
            logits = logits.repeat_interleave(n, dim=0)
            mask = mask.repeat_interleave(n, dim=0)
            pos = pos.repeat_interleave(n, dim=0)
        b = len(rows)
        out_ids: list[list[int]] = [[] for _ in range(b)]
        out_lps: list[list[float]] = [[] for _ in range(b)]
        # Per row, (entropy, varentropy) of each step's distribution (with params.token_stats).
        out_stats: list[list[tuple[float, float]]] | None = (
            [[] for _ in range(b)] if params.token_stats else None
        )
        done: list[Generation | None] = [None] * b
        # live[j] is the original row of batch row j; finished rows are dropped from the batch
        # (and from the KV cache) once at least a quarter of the batch has finished.
        live = list(range(b))
        # fed[i]: generated tokens of row i whose keys and values are in the cache (a token is
        # fed at the step after it is chosen; a finished row still in the batch is fed tokens
        # that are not its output, so only the first len(out_ids[i]) count).
        fed = [0] * b
        keep_kv = self.prefix_store is not None and self._kv is not None
        eos = torch.tensor(sorted(self.eos_token_ids) or [-1], device=self.device)
        window = 4 * max((len(s) for s in params.stop), default=0) + 8
        for step in range(params.max_new_tokens):
            logits = logits.float()
            logp = torch.log_softmax(logits, dim=-1)
            nxt = self._choose(logits, params, gen)
            chosen_lp = logp.gather(-1, nxt[:, None])[:, 0]
            is_eos = torch.isin(nxt, eos)
            nxt_l, eos_l = nxt.tolist(), is_eos.tolist()
            if out_stats is None:
                lp_l = chosen_lp.tolist()
            else:
                # One transfer for the three per-row numbers.
                lp_l, ent_l, var_l = torch.stack([chosen_lp, *_entropy_varentropy(logp)]).tolist()
            for j, i in enumerate(live):
                if done[i] is not None:
                    # Finished, still in the batch until a quarter of it is done: its later
                    # tokens are not its output (nor may they overwrite or revive its result).
                    continue
                out_ids[i].append(nxt_l[j])
                out_lps[i].append(lp_l[j])
                stats = None
                if out_stats is not None:
                    stats = out_stats[i]
                    stats.append((ent_l[j], var_l[j]))
                if eos_l[j]:
                    done[i] = self._make(
                        rows[i], out_ids[i], out_lps[i], "eos", len(out_ids[i]) - 1, stats
                    )
                elif params.stop and self._may_stop(nxt_l[j], params.stop):
                    done[i] = self._check_stop(
                        rows[i], out_ids[i], out_lps[i], params.stop, window, stats
                    )
            keep = [j for j, i in enumerate(live) if done[i] is None]
            if not keep or step == params.max_new_tokens - 1:
                break
            if len(keep) <= 3 * len(live) // 4:
                if keep_kv:
                    gone = [j for j, i in enumerate(live) if done[i] is not None]
                    self._store_decoded(
                        cache,
                        mask,
                        gone,
                        [rows[live[j]] for j in gone],
                        [out_ids[live[j]][: fed[live[j]]] for j in gone],
                    )
                index = torch.tensor(keep, dtype=torch.long, device=self.device)
                if self._kv is not None:
                    self._kv.select_rows(cache, keep)
                else:
                    cache.reorder_cache(index)
                mask, pos, nxt = mask[index], pos[index], nxt[index]
                live = [live[j] for j in keep]
            mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=-1)
            pos = pos[:, -1:] + 1
            logits = self._forward(nxt[:, None], mask, pos, cache=cache, keep=1)[:, -1, :]
            for i in live:
                fed[i] = min(fed[i] + 1, len(out_ids[i]))
        if keep_kv:
            self._store_decoded(
                cache,
                mask,
                range(len(live)),
                [rows[i] for i in live],
                [out_ids[i][: fed[i]] for i in live],
            )
        return [
            d
            if d is not None
            else self._make(
                rows[i],
                out_ids[i],
                out_lps[i],
                "length",
                len(out_ids[i]),
                None if out_stats is None else out_stats[i],
            )
            for i, d in enumerate(done)
        ]

    def _store_decoded(
        self,
        cache: Any,
        mask: Any,
        batch_rows: Sequence[int],
        prompts: Sequence[list[int]],
        generated: Sequence[list[int]],
    ) -> None:
        """Add to the prefix store the keys and values of prompt + generated tokens of the
        given batch rows, read from the decode cache (its valid positions are the mask's ones,
        in order: stored prefix, prompt rest, then each fed token).

        Tree search reads what it generated again: a value prompt is the policy prompt plus the
        new thought, a refine prompt the review prompt plus the review, a beam's next step its
        path plus the last step. Serving engines cache generated tokens for the same reason
        (SGLang's radix cache inserts finished requests)."""
        torch = self._torch
        todo = []
        for j, prompt, gen in zip(batch_rows, prompts, generated, strict=True):
            tokens = [*prompt, *gen]
            if gen:
                where = mask[j].nonzero()[: len(tokens), 0]
                if where.numel() == len(tokens):  # else not all of them are in the cache
                    todo.append((j, tokens, where))
        if not todo:
            return
        whole = self._kv.arena(cache)
        if whole is None:  # a layer grew on its own: gather the rows of every layer first
            index = torch.tensor([j for j, _, _ in todo], dtype=torch.long, device=self.device)
            whole = torch.stack(
                [torch.stack((layer.keys[index], layer.values[index])) for layer in cache.layers]
            )
            todo = [(r, tokens, where) for r, (_, tokens, where) in enumerate(todo)]
        for j, tokens, where in todo:
            self.prefix_store.add(
                tokens,
                lambda start, j=j, where=where: whole[:, :, j].index_select(-2, where[start:]),
            )

    def _prefix_groups(self, prompt_rows: list[list[int]]) -> list[tuple[int, list[int]]] | None:
        """Group prompts by a shared token prefix, or None when no two prompts share enough.

        Prompts are sorted so that those with long common prefixes are adjacent, then grouped
        greedily while the group's common prefix stays at least ``min_shared_prefix`` tokens and
        the prefix tokens saved grow.
        A group's prefix stops one token short of its shortest prompt, so every prompt keeps a
        non-empty suffix whose last position gives the first next-token logits.

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
                if lcp >= self.min_shared_prefix and (
                    len(members) == 1 or len(members) * new_length > (len(members) - 1) * length
                ):
                    groups[-1] = (new_length, [*members, i])
                    shared = True
                    continue
            groups.append((max(len(row) - 1, 0), [i]))
        return groups if shared else None

    def _prefill(self, rows: list[list[int]], reserve: int = 0) -> tuple[Any, Any, Any, Any]:
        """Run the prompts `rows` into a fresh KV cache, re-using what is already known.

        With a growing cache (full-attention models): each row starts from the longest prefix
        in the prefix store, prefixes shared by several rows of this call are run once first
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
        if self._kv is None or self._kv_layout() is None:
            cache = _new_cache(self.model)
            ids, mask, pos = self._left_pad(rows)
            logits = self._forward(ids, mask, pos, cache=cache, keep=1)[:, -1, :]
            return logits, mask, pos, cache
        store = self.prefix_store if self.prefix_store is not None else self._kv.PrefixStore(None)
        if self.share_prefixes:
            self._store_shared_prefixes(rows, store)
        self._store_long_rests(rows, store)
        logits, mask, pos, cache, row_kv = self._prefill_stored(rows, store, reserve)
        if self.prefix_store is not None:
            for b, row in enumerate(rows):
                store.add(row, row_kv(b))
        return logits, mask, pos, cache

    def _store_shared_prefixes(self, rows: list[list[int]], store: Any) -> None:
        """Run, in one batch, the prefixes several rows share (`_prefix_groups`) that the store
        does not hold yet, and add them to it."""
        groups = self._prefix_groups(rows)
        if groups is None:
            return
        todo = []
        for length, members in groups:
            if len(members) < 2:
                continue
            prefix = rows[members[0]][:length]
            if length - store.matched(prefix, length) >= self.min_shared_prefix:
                todo.append(prefix)
        if todo:
            *_, row_kv = self._prefill_stored(todo, store, 0)
            for b, prefix in enumerate(todo):
                store.add(prefix, row_kv(b))

    def _store_long_rests(self, rows: list[list[int]], store: Any) -> None:
        """Run first, in a batch of their own, the few rows whose unknown rest is much longer
        than the others', so that they do not pad every row of the batch to their length.

        In tree search most prompts of a call extend something already stored by a few
        tokens, while a handful (a new solution in a judge prompt, an evicted path) must be
        read in full: one such row made a 64-row pass compute 64 x 74 positions for about 280
        real ones. The rows pre-run are the k longest rests, with k minimising
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
            todo = [rows[i][:-1] for _, i in rests[:best]]
            *_, row_kv = self._prefill_stored(todo, store, 0)
            for b, prefix in enumerate(todo):
                store.add(prefix, row_kv(b))

    def _prefill_stored(
        self, rows: list[list[int]], store: Any, reserve: int
    ) -> tuple[Any, Any, Any, Any, Any]:
        """Assemble each row's stored prefix into one left-padded cache (padding in the middle:
        stored prefix, then the rest of the row, both left-padded and masked) and run the rests.

        Returns:
            logits, mask, positions, cache (as `_prefill`), and ``row_kv(b)``: row b's keys and
            values as `PrefixStore.add` takes them (``kv(start)``: the positions from start on),
            valid until the cache is decoded into.
        """
        torch = self._torch
        layout = self._kv_layout()
        assert layout is not None  # _prefill checked it
        n_layers, heads, head_dim, dtype = layout
        hits = [store.lookup(r, len(r) - 1) for r in rows]
        known = [n for _, n in hits]
        width = max(known)
        rests = [r[s:] for r, s in zip(rows, known, strict=True)]
        rest_width = max(len(r) for r in rests)
        buf = self._kv_buffer(
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
        layers = [self._kv.GrowingLayer.adopt(buf[i, 0], buf[i, 1], width) for i in range(n_layers)]
        cache = _new_cache(self.model, layers)
        s_ids, s_mask, _ = self._left_pad(rests)
        offsets = torch.tensor(known, dtype=torch.long, device=self.device)[:, None]
        s_pos = (offsets + s_mask.cumsum(-1) - 1).clamp(min=0)
        mask = torch.cat([p_mask.to(self.device), s_mask], dim=-1)
        logits = self._forward(s_ids, mask, s_pos, cache=cache, keep=1)[:, -1, :]
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

    def _kv_buffer(self, shape: tuple[int, ...], dtype: Any) -> Any:
        """An uninitialised tensor of `shape` for a call's KV cache. On a CPU it is a view of
        one buffer kept across calls (a fresh multi-MB tensor costs a page fault per page,
        which on berry-tiny took as long as the attention itself); a GPU's caching allocator
        already does this. Only one call's cache may use it at a time."""
        torch = self._torch
        size = math.prod(shape)
        if self.device.type != "cpu":
            return torch.empty(shape, dtype=dtype, device=self.device)
        pool = self._pool
        if pool is None or pool.dtype != dtype or pool.numel() < size:
            pool = self._pool = torch.empty(size + size // 4, dtype=dtype, device=self.device)
        return pool[:size].view(shape)

    def _kv_layout(self) -> tuple[int, int, int, Any] | None:
        """(layers, key/value heads, head dim, dtype) of the model's KV cache, from one probe;
        None (and no growing cache or prefix store from then on) when the layers' key shapes
        differ, since one buffer holds every layer."""
        if self._kv_shape is None and self._kv is not None:
            torch = self._torch
            cache = _new_cache(self.model)
            ids = torch.tensor([[self.pad_token_id]], dtype=torch.long, device=self.device)
            with torch.inference_mode():
                self._forward(ids, torch.ones_like(ids), torch.zeros_like(ids), cache, keep=1)
            layout = _uniform_kv_layout([layer.keys for layer in cache.layers])
            if layout is None:
                logger.warning(
                    "%s: layers have different key/value shapes; prompts are read whole, "
                    "without the prefix store",
                    self.name,
                )
                self._kv = self.prefix_store = None
            self._kv_shape = layout
        return self._kv_shape

    def _choose(self, logits: Any, params: SamplingParams, gen: Any) -> Any:
        """Next token per row: argmax, or tempered nucleus sampling."""
        torch = self._torch
        if params.greedy:
            return logits.argmax(dim=-1)
        probs = torch.softmax(logits / params.temperature, dim=-1)
        if params.top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            before = sorted_p.cumsum(-1) - sorted_p  # mass of strictly more likely tokens
            sorted_p = sorted_p.masked_fill(before >= params.top_p, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        return torch.multinomial(probs, 1, generator=gen)[:, 0]

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
        cut: tuple[str, int] | None = None  # (text up to the first stop, tokens kept)
        last = self._token_text(ids[-1])
        if last in stops:
            # The usual stop: one token whose text is a stop string (a special token such as
            # <end_of_thought>, or a newline), where no stop starts earlier: the cut is before
            # that token, as the general rule below would find with more decoding.
            before = self._decode(ids[:-1])
            text = self._decode(ids)
            hits = [i for i in (text.find(s) for s in stops) if i >= 0]
            if text == before + last and min(hits) == len(before):
                cut = (before, len(ids) - 1)
        if cut is None:
            if len(ids) > window:
                tail = self._decode(ids[-window:])
                if not any(s in tail for s in stops):
                    return None
            text = self._decode(ids)
            hits = [i for i in (text.find(s) for s in stops) if i >= 0]
            if not hits:
                return None
            first = text[: min(hits)]
            keep = len(ids)
            while keep > 0 and not first.startswith(self._decode(ids[:keep])):
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

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(
            list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False
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
            text=self._decode(ids[:text_tokens]),
            token_ids=tuple(ids),
            logprobs=tuple(lps),
            finish_reason=reason,
            prompt_tokens=len(prompt),
            **_stat_fields(stats),
        )

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> list[tuple[float, ...]]:
        """Per-token log p of each completion given its prompt (boundary rule: module docstring)."""
        torch = self._torch
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        pairs = []
        for p, c in zip(prompts, completions, strict=True):
            p_ids = self.encode_prompt(p)
            pairs.append((p_ids, self._encode_completion(p, p_ids, c)))
        result: list[tuple[float, ...]] = [()] * len(pairs)
        with torch.inference_mode():
            for chunk in self._prefill_chunks([len(p) + len(c) for p, c in pairs]):
                part = [pairs[i] for i in chunk]
                width = max(len(c) for _, c in part)
                if width == 0:
                    continue
                ids, mask, pos = self._left_pad([p + c for p, c in part])
                # Logits at position t predict token t+1: keep the last width+1 positions.
                logits = self._forward(ids, mask, pos, keep=width + 1)[:, :-1, :]
                logp = torch.log_softmax(logits.float(), dim=-1)
                targets = ids[:, -width:]
                tok_lp = logp.gather(-1, targets[..., None])[..., 0].tolist()
                for i, (_, c), row in zip(chunk, part, tok_lp, strict=True):
                    result[i] = tuple(row[width - len(c) :]) if c else ()
        return result

    def next_token_probs(
        self, prompts: Sequence[str], candidates: Sequence[str]
    ) -> list[dict[str, float]]:
        """p(candidate | prompt) from the softmax at the last prompt position.

        A candidate must encode (without special tokens) to exactly one token id.
        """
        torch = self._torch
        cand_ids: dict[str, int] = {}
        for cand in candidates:
            toks = self.tokenizer.encode(cand, add_special_tokens=False)
            if len(toks) != 1:
                raise ModelError(f"candidate {cand!r} is {len(toks)} tokens, not one")
            cand_ids[cand] = int(toks[0])
        rows = self.encode_prompts(prompts)
        index = torch.tensor(list(cand_ids.values()), dtype=torch.long, device=self.device)
        result: list[dict[str, float]] = [{} for _ in rows]
        with torch.inference_mode():
            for chunk in self._prefill_chunks(self._unknown_lengths(rows)):
                logits, *_ = self._prefill([rows[i] for i in chunk])
                probs = torch.softmax(logits.float(), dim=-1)[:, index].tolist()
                for i, row in zip(chunk, probs, strict=True):
                    result[i] = dict(zip(cand_ids, row, strict=True))
        return result

    # -------------------------------------------------- extras used by `berry serve` (not Policy)

    def prompt_logprobs(
        self, texts: Sequence[str], top_k: int = 0
    ) -> list[list[tuple[str, int, float | None, dict[str, float] | None]]]:
        """Every token of each text: (token text, character offset, log p, top-k log p).

        The text is encoded as `generate` encodes a prompt. The log p of a token is given the
        tokens before it, and the top-k dict (token text -> log p, only when ``top_k > 0``) is the
        distribution it was drawn from; both are None for the first token (nothing precedes
        it). Offsets come from the fast tokenizer's offset mapping (special tokens such as BOS
        get offset 0), else from the lengths of decoded prefixes. `berry serve` uses this for
        ``echo`` (and `OpenAIPolicy.score` reads it back).
        """
        torch = self._torch
        rows = [self.encode_prompt(t) for t in texts]
        result: list[list[tuple[str, int, float | None, dict[str, float] | None]]] = []
        with torch.inference_mode():
            for chunk in self._chunks(len(rows)):
                part = [rows[i] for i in chunk]
                width = max(len(r) for r in part)
                lps: list[list[float]] = [[] for _ in part]
                tops: list[list[dict[str, float]]] = [[] for _ in part]
                if width >= 2:
                    ids, mask, pos = self._left_pad(part)
                    logp = torch.log_softmax(self._forward(ids, mask, pos)[:, :-1].float(), -1)
                    lps = logp.gather(-1, ids[:, 1:, None])[..., 0].tolist()
                    if top_k > 0:
                        tops = self._top_rows(logp, top_k)
                for i, row, row_lps, row_tops in zip(chunk, part, lps, tops, strict=True):
                    skip = width - len(row)
                    values: list[float | None] = [None, *row_lps[skip:]][: len(row)]
                    top: list[dict[str, float] | None] = (
                        [None, *row_tops[skip:]][: len(row)] if top_k > 0 else [None] * len(row)
                    )
                    offsets = self._offsets(texts[i], row)
                    tokens = [self._decode([t]) for t in row]
                    result.append(list(zip(tokens, offsets, values, top, strict=True)))
        return result

    def _top_rows(self, logp: Any, k: int) -> list[list[dict[str, float]]]:
        """Per row and position of log-probs [B, T, V]: the k most likely tokens, token text ->
        log p, most likely first (tokens with the same text keep the larger)."""
        values, index = logp.topk(min(k, logp.shape[-1]), dim=-1)
        rows: list[list[dict[str, float]]] = []
        for row_values, row_index in zip(values.tolist(), index.tolist(), strict=True):
            row = []
            for vs, ts in zip(row_values, row_index, strict=True):
                top: dict[str, float] = {}
                for v, t in zip(vs, ts, strict=True):
                    top.setdefault(self._decode([t]), v)
                row.append(top)
            rows.append(row)
        return rows

    def _offsets(self, text: str, ids: list[int]) -> list[int]:
        if self.tokenizer.is_fast and not self._chat:
            enc = self.tokenizer(text, return_offsets_mapping=True)
            if list(enc["input_ids"]) == ids:
                return [int(a) for a, _ in enc["offset_mapping"]]
        return [
            len(self.tokenizer.decode(ids[:k], skip_special_tokens=True)) for k in range(len(ids))
        ]

    def top_logprobs(
        self, prompts: Sequence[str], continuations: Sequence[Sequence[int]], k: int
    ) -> list[list[dict[str, float]]]:
        """The `k` most likely tokens at each position of each continuation (token text -> log p).

        Each prompt is encoded as `generate` encodes it and followed by its continuation's token
        ids (e.g. those `generate` returned); entry i is the distribution (temperature 1) that
        token i was drawn from. One forward pass per batch. Tokens that decode to the same text
        keep the larger log p. `berry serve` uses this for ``logprobs=k`` and ``top_logprobs``.
        """
        torch = self._torch
        rows = [
            (self.encode_prompt(p), list(c)) for p, c in zip(prompts, continuations, strict=True)
        ]
        if any(not p for p, _ in rows):
            raise ModelError("top_logprobs needs non-empty prompts")
        result: list[list[dict[str, float]]] = []
        with torch.inference_mode():
            for chunk in self._chunks(len(rows)):
                part = [rows[i] for i in chunk]
                width = max(len(c) for _, c in part)
                if width == 0:
                    result += [[] for _ in part]
                    continue
                # Position t predicts token t+1: the prompt's last position and all but the
                # continuation's last token give the width distributions.
                ids, mask, pos = self._left_pad([p + c[:-1] if c else p for p, c in part])
                logp = torch.log_softmax(self._forward(ids, mask, pos, keep=width).float(), -1)
                for (_, c), tops in zip(part, self._top_rows(logp, k), strict=True):
                    result.append(tops[width - len(c) :])
        return result


_MALLOC_TUNED = False


def tune_cpu_malloc() -> bool:
    """Keep freed memory in this process instead of handing it back to the OS (glibc only).

    A CPU forward pass allocates and frees multi-MB tensors at every step. glibc serves those
    with fresh ``mmap`` pages (or trims the heap after them), so each step page-faults its
    buffers in again: on berry-tiny's batched meta-action MCTS that was about a million page
    faults and a quarter of the wall time. Raising glibc's mmap and trim thresholds keeps the
    pages (the same effect as PyTorch's advice to preload jemalloc or tcmalloc); the cost is
    that the process keeps its peak memory. `ModelSpec.build` (``berry generate``, ``solve``,
    ``eval``) and ``berry serve`` call this for the hf backend on a CPU; library users may call
    it once at start. Returns True when the settings were applied (False off glibc).
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = bool(mallopt(m_mmap_threshold, 1 << 30)) and bool(mallopt(m_trim_threshold, 1 << 31))
    _MALLOC_TUNED = ok
    return ok


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


def _resolve_dtype(torch: Any, dtype: Any) -> Any:
    if dtype is None or dtype == "auto" or not isinstance(dtype, str):
        return dtype
    resolved = getattr(torch, dtype, None)
    if not isinstance(resolved, torch.dtype):
        raise ModelError(f"unknown dtype {dtype!r}")
    return resolved


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    cfg = getattr(model, "generation_config", None)
    value = getattr(cfg, "eos_token_id", None) if cfg is not None else None
    if isinstance(value, int):
        ids.add(value)
    elif value is not None:
        ids.update(int(v) for v in value)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


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


def _cache_kwarg(model: Any) -> str:
    """Name of the KV-cache argument: ``cache`` (transformers >= 5.x) or ``past_key_values``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = inspect.signature(base.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _kv_module(model: Any) -> Any:
    """`openberry.models.kv_cache` when this transformers and `model` support it, else None."""
    try:
        from openberry.models import kv_cache
    except ImportError:  # transformers without cache layers (< 4.56)
        return None
    return kv_cache if kv_cache.supports_growing_cache(model) else None


def _new_cache(model: Any, layers: Any = None) -> Any:
    """A cache over the given `GrowingLayer`s, else transformers' `DynamicCache` for `model`."""
    if layers is not None:
        from openberry.models.kv_cache import growing_cache

        return growing_cache(layers)
    from transformers import DynamicCache

    try:
        return DynamicCache(config=model.config)
    except TypeError:
        return DynamicCache()

"""`HFPolicy`: the `Policy` over a transformers causal LM, composed of a runtime
(`openberry.models.hf.runtime`), a prefix cache (`openberry.models.hf.prefix`), a decoder
(`openberry.models.hf.decode`), the prefill-only calls (`openberry.models.hf.prefill`) and the
server's extras (`openberry.models.hf.logprobs`). Conventions: the `openberry.models.hf`
docstring.

Importing this module is light; torch, transformers and peft are imported when a policy is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from openberry.models.base import SamplingParams
from openberry.models.hf import logprobs, prefill
from openberry.models.hf.decode import Decoder
from openberry.models.hf.prefix import DEFAULT_PREFIX_CACHE_MB, PrefixCache
from openberry.models.hf.runtime import HFRuntime
from openberry.records import Generation

__all__ = ["HFPolicy"]


class HFPolicy:
    """A transformers causal LM as a `Policy`.

    Args:
        model: an already-built causal LM (tests); when None, loaded from `name_or_path`.
        tokenizer: its tokenizer (required with `model`).
        name_or_path: local directory, hub id, built-in name (``berry-tiny``), ``.gguf`` file
            or named GGUF model (``smollm2-135m-instruct``; see `openberry.models.gguf`), or a
            peft adapter directory (its ``adapter_config.json`` names the base model, loaded
            with it).
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
            `openberry.models.cpu_attention` (two matrix products, which suit a CPU better
            than SDPA's fused kernel for one query position). False keeps the model's attention
            as it is.
        gguf_file: the ``.gguf`` file inside `name_or_path` (a directory or hub id) to load,
            dequantized to float32 (needs the `gguf` package).

    Attributes:
        runtime: the loaded model (`HFRuntime`).
        prefix_cache: the prefix store and the prefill that uses it (`PrefixCache`).
        decoder: the decode loop (`Decoder`).
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
        prefix_cache_mb: float = DEFAULT_PREFIX_CACHE_MB,
        cpu_decode_attention: bool = True,
        gguf_file: str | None = None,
    ) -> None:
        self.runtime = HFRuntime(
            model,
            tokenizer,
            name_or_path=name_or_path,
            dtype=dtype,
            device=device,
            adapter=adapter,
            merge_adapter=merge_adapter,
            use_chat_template=use_chat_template,
            name=name,
            cpu_decode_attention=cpu_decode_attention,
            gguf_file=gguf_file,
        )
        self.prefix_cache = PrefixCache(
            self.runtime,
            prefix_cache_mb,
            share_prefixes=share_prefixes,
            min_shared_prefix=min_shared_prefix,
        )
        self.decoder = Decoder(self.runtime, self.prefix_cache)
        self.name = self.runtime.name
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, name_or_path: Any, **kwargs: Any) -> HFPolicy:
        """Load model and tokenizer from a local directory, a hub id, a built-in name, a GGUF
        file (or `gguf_file` inside a directory or hub id) or an adapter directory.

        ``berry-tiny`` (see `openberry.models.builtin`) loads from inside the package, offline.
        Other arguments: see the class.
        """
        return cls(name_or_path=str(name_or_path), **kwargs)

    # ------------------------------------------------------------- the runtime's attributes

    @property
    def model(self) -> Any:
        """The causal LM (a peft ``PeftModel`` while an unmerged adapter is loaded)."""
        return self.runtime.model

    @property
    def tokenizer(self) -> Any:
        return self.runtime.tokenizer

    @property
    def device(self) -> Any:
        return self.runtime.device

    @property
    def pad_token_id(self) -> int:
        return self.runtime.pad_token_id

    @property
    def max_context(self) -> int | None:
        """Most tokens, prompt and generated together, the model reads (`HFRuntime.max_context`;
        None when the model does not say)."""
        return self.runtime.max_context

    @property
    def eos_token_ids(self) -> set[int]:
        """Token ids that end a generation (the model's and the tokenizer's EOS)."""
        return self.runtime.eos_token_ids

    @eos_token_ids.setter
    def eos_token_ids(self, ids: set[int]) -> None:
        self.runtime.eos_token_ids = set(ids)

    @property
    def use_chat_template(self) -> bool:
        return self.runtime.use_chat_template

    @use_chat_template.setter
    def use_chat_template(self, value: bool) -> None:
        self.runtime.use_chat_template = value

    @property
    def chat(self) -> bool:
        """True when every prompt is wrapped in the chat template (`use_chat_template` and the
        tokenizer has one): ``--prompts auto`` then picks the ``paper`` profile."""
        return self.runtime.chat

    @property
    def prefix_store(self) -> Any:
        """The `PrefixStore` kept across calls (None when off or unsupported by the model)."""
        return self.prefix_cache.store

    @property
    def share_prefixes(self) -> bool:
        return self.prefix_cache.share_prefixes

    @share_prefixes.setter
    def share_prefixes(self, value: bool) -> None:
        self.prefix_cache.share_prefixes = value

    @property
    def min_shared_prefix(self) -> int:
        return self.prefix_cache.min_shared_prefix

    # ------------------------------------------------------------------ state across calls

    def reset_prefix_cache(self) -> None:
        """Empty the prefix store, so later results do not depend on earlier calls' float
        rounding (the search engine calls this at the start of every search) nor on weights
        since replaced (call it after every update of the model's weights)."""
        self.prefix_cache.reset()

    def load_adapter(self, path: str, *, merge: bool = False) -> None:
        """Load the peft (LoRA) adapter saved in `path` in place of the current one
        (`HFRuntime.load_adapter`) and empty the prefix store, whose keys and values came from
        the old weights."""
        self.runtime.load_adapter(path, merge=merge)
        self.reset_prefix_cache()

    # ----------------------------------------------------------------------------- encoding

    def encode_prompt(self, prompt: str) -> list[int]:
        """Token ids the model sees for `prompt` (chat template applied when asked)."""
        return self.runtime.encode_prompts([prompt])[0]

    def encode_prompts(self, prompts: Sequence[str]) -> list[list[int]]:
        """`encode_prompt` of each prompt (`HFRuntime.encode_prompts`)."""
        return self.runtime.encode_prompts(prompts)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Number of tokens of each text as a prompt (the search engine's cost accounting)."""
        return [len(ids) for ids in self.runtime.encode_prompts(texts)]

    # ----------------------------------------------------------------------------- Policy API

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Generation]]:
        """Sample `params.n` continuations of each prompt in one batched decode loop.

        See the `openberry.models.hf` docstring for the logprob, token-stats, EOS, stop-string
        and seed conventions.
        """
        prompt_ids = self.runtime.encode_prompts(prompts)
        return self.decoder.generate(prompt_ids, params, self.batch_size)

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> list[tuple[float, ...]]:
        """Per-token log p of each completion given its prompt (boundary rule: the
        `openberry.models.hf` docstring)."""
        return prefill.score(self.runtime, prompts, completions, self.batch_size)

    def next_token_probs(
        self, prompts: Sequence[str], candidates: Sequence[str]
    ) -> list[dict[str, float]]:
        """p(candidate | prompt) from the softmax at the last prompt position.

        A candidate must encode (without special tokens) to exactly one token id.
        """
        return prefill.next_token_probs(
            self.runtime, self.prefix_cache, prompts, candidates, self.batch_size
        )

    # -------------------------------------------------- extras used by `berry serve` (not Policy)

    def prompt_logprobs(
        self, texts: Sequence[str], top_k: int = 0
    ) -> list[list[tuple[str, int, float | None, dict[str, float] | None]]]:
        """Every token of each text: (token text, character offset, log p, top-k log p); see
        `openberry.models.hf.logprobs.prompt_logprobs`."""
        return logprobs.prompt_logprobs(self.runtime, texts, top_k, self.batch_size)

    def top_logprobs(
        self, prompts: Sequence[str], continuations: Sequence[Sequence[int]], k: int
    ) -> list[list[dict[str, float]]]:
        """The `k` most likely tokens at each position of each continuation (token text -> log
        p); see `openberry.models.hf.logprobs.top_logprobs`."""
        return logprobs.top_logprobs(self.runtime, prompts, continuations, k, self.batch_size)

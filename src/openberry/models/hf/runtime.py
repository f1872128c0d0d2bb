"""The loaded model of `HFPolicy`: weights, tokenizer, device, chat template and LoRA adapters.

`HFRuntime` owns everything the other parts of the backend share: it loads a model (a directory,
a hub id, a built-in name, a GGUF file (`openberry.models.gguf`), or a peft adapter directory,
which loads its base model too), encodes
prompts (chat template, remembered encodings), decodes tokens, left-pads rows and runs one
forward pass. It holds no per-call state, so prefill, the decode loop and the server's extras
all run on one runtime.

Importing this module is light; torch, transformers and peft are imported when a runtime is built.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from openberry.formats.chat import ChatPrompt, chat_messages
from openberry.models.base import ModelError

__all__ = ["ENCODED_PROMPTS", "HFRuntime", "adapter_base", "tune_cpu_malloc"]

ENCODED_PROMPTS = 4096
"""Prompt encodings `HFRuntime.encode_prompts` remembers."""

logger = logging.getLogger(__name__)

_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
"""Model config keys that give the context length, in the order they are tried."""
_UNSET_MAX_LENGTH = 10**9
"""transformers sets ``model_max_length`` to a huge number (1e30) when the tokenizer has none."""


class HFRuntime:
    """A transformers causal LM with its tokenizer, ready to run (see `HFPolicy` for the args).

    Attributes:
        model: the causal LM (a peft ``PeftModel`` while an unmerged adapter is loaded).
        tokenizer: its tokenizer.
        device: the device of the model's parameters.
        name: the policy name.
        adapter: the directory of the loaded adapter, or None.
        eos_token_ids: token ids that end a generation.
        pad_token_id: the id used for left padding.
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
        name: str | None = None,
        cpu_decode_attention: bool = True,
        gguf_file: str | None = None,
    ) -> None:
        import torch

        self.torch = torch
        torch_dtype = _resolve_dtype(torch, dtype)
        if model is None:
            model, tokenizer, adapter = _load_pretrained(
                name_or_path, adapter, torch_dtype, tokenizer, gguf_file
            )
        elif gguf_file is not None:
            raise ModelError("HFPolicy(model=...) takes no gguf_file")
        elif tokenizer is None:
            raise ModelError("HFPolicy(model=...) also needs a tokenizer")
        if torch_dtype is not None and torch_dtype != "auto":
            model = model.to(dtype=torch_dtype)
        if device is not None:
            model = model.to(device)
        self.model = model
        self.adapter: str | None = None
        self._merged = False
        if adapter is not None:
            self.load_adapter(adapter, merge=merge_adapter)
        model = self.model
        model.eval()
        if cpu_decode_attention and next(model.parameters()).device.type == "cpu":
            try:
                from openberry.models.cpu_attention import use_decode_attention
            except ImportError:  # a transformers without pluggable attention
                pass
            else:
                use_decode_attention(model)
        self.tokenizer = tokenizer
        self.use_chat_template = use_chat_template
        self.name = name or str(name_or_path or getattr(model, "name_or_path", "") or "hf")
        self.device = next(model.parameters()).device
        self.eos_token_ids = _eos_ids(model, tokenizer)
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = min(self.eos_token_ids) if self.eos_token_ids else 0
        self.pad_token_id = int(pad)
        self._cache_kwarg = _cache_kwarg(model)
        self._encoded: OrderedDict[tuple, tuple[int, ...]] = OrderedDict()
        self._token_texts: dict[int, str] = {}

    # ----------------------------------------------------------------------------- adapters

    def load_adapter(self, path: str, *, merge: bool = False) -> None:
        """Put the peft (LoRA) adapter saved in `path` on the base weights, in place of the
        adapter loaded before (if any).

        The first adapter wraps the model (``PeftModel.from_pretrained``); a later one is
        loaded next to it (``PeftModel.load_adapter``), made active and the old one deleted,
        so the base weights are never copied. With `merge` the adapter is merged into the
        weights (faster inference), after which no other adapter can be loaded. Keys and
        values computed under the old weights are stale: `HFPolicy.load_adapter` also empties
        the prefix store.

        Raises:
            ModelError: the adapter cannot be read, or an adapter was merged before.
        """
        if self._merged:
            raise ModelError(
                f"adapter {self.adapter!r} was merged into the weights; load the base model "
                f"again to use adapter {path!r}"
            )
        try:
            from peft import PeftModel

            if isinstance(self.model, PeftModel):
                old = self.model.active_adapter
                new = _fresh_adapter_name(self.model.peft_config)
                self.model.load_adapter(str(path), adapter_name=new)
                self.model.set_adapter(new)
                self.model.delete_adapter(old)
            else:
                self.model = PeftModel.from_pretrained(self.model, str(path))
        except (OSError, ValueError) as exc:
            raise ModelError(f"could not load adapter {path!r}: {exc}") from exc
        if merge:
            self.model = self.model.merge_and_unload()
            self._merged = True
        self.model.eval()
        self.adapter = str(path)
        self._cache_kwarg = _cache_kwarg(self.model)

    # ----------------------------------------------------------------------------- context

    @property
    def max_context(self) -> int | None:
        """Most tokens (prompt and generated together) the model was built to read: its
        config's ``max_position_embeddings`` (or ``n_positions``, ``max_sequence_length``,
        ``seq_length``), else the tokenizer's ``model_max_length`` when one is set; None when
        neither says. Read-only: generation does not enforce it."""
        config = getattr(self.model, "config", None)
        for key in _CONTEXT_KEYS:
            value = getattr(config, key, None)
            if isinstance(value, int) and value > 0:
                return value
        value = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(value, int) and 0 < value < _UNSET_MAX_LENGTH:
            return value
        return None

    # ----------------------------------------------------------------------------- encoding

    @property
    def chat(self) -> bool:
        """True when prompts are wrapped in the tokenizer's chat template."""
        return bool(self.use_chat_template and self.has_template)

    @property
    def has_template(self) -> bool:
        """True when the tokenizer has a chat template."""
        return bool(getattr(self.tokenizer, "chat_template", None))

    def templated(self, prompt: str) -> bool:
        """True when `prompt` is read through the chat template: any prompt when `chat`, and a
        `ChatPrompt` (a chat profile's role prompt) whenever the tokenizer has a template."""
        return self.chat or (isinstance(prompt, ChatPrompt) and self.has_template)

    def _template(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )

    def format(self, prompt: str) -> str:
        """`prompt` as the model reads it: a `ChatPrompt` through the chat template (its reply
        starting the assistant turn) when the tokenizer has one, else as plain text; another
        prompt as one user message when `chat`, else as it is."""
        if isinstance(prompt, ChatPrompt):
            if self.has_template:
                return prompt.render(self._template)
            if not getattr(self, "_plain_chat_warned", False):
                self._plain_chat_warned = True
                logger.warning(
                    "%s has no chat template: chat prompts are read as plain text", self.name
                )
        if self.chat:
            return self._template(chat_messages(prompt))
        return str(prompt)

    def _key(self, prompt: str) -> tuple:
        """What a prompt's encoding is remembered by (a chat prompt by its messages)."""
        if isinstance(prompt, ChatPrompt) and self.has_template:
            return ("chat", prompt.messages, prompt.reply)
        return (self.chat, str(prompt))

    def encode_prompts(self, prompts: Sequence[str]) -> list[list[int]]:
        """Token ids the model sees for each prompt; the ones not seen lately are encoded in
        one batch (the fast tokenizer spreads a batch over threads).

        The last `ENCODED_PROMPTS` encodings are remembered: search sends a prompt to
        `count_tokens` and to `generate` or `next_token_probs`.
        """
        keys = [self._key(p) for p in prompts]
        todo = {k: p for k, p in zip(keys, prompts, strict=True) if k not in self._encoded}
        for templated in (True, False):
            part = [(k, p) for k, p in todo.items() if self.templated(p) == templated]
            if not part:
                continue
            texts = [self.format(p) for _, p in part]
            if templated:
                encoded = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
            else:
                encoded = self.tokenizer(texts)["input_ids"]
            for (key, _), ids in zip(part, encoded, strict=True):
                self._encoded[key] = tuple(ids)
        out = []
        for key in keys:
            self._encoded.move_to_end(key)
            out.append(list(self._encoded[key]))
        while len(self._encoded) > max(ENCODED_PROMPTS, len(prompts)):
            self._encoded.popitem(last=False)
        return out

    def encode_completion(self, prompt: str, prompt_ids: list[int], completion: str) -> list[int]:
        """Tokens of `completion` after `prompt` (boundary rule: `openberry.models.hf`)."""
        if not completion:
            return []
        if self.templated(prompt):
            joint = list(
                self.tokenizer.encode(self.format(prompt) + completion, add_special_tokens=False)
            )
        else:
            joint = list(self.tokenizer.encode(str(prompt) + completion))
        n = len(prompt_ids)
        if joint[:n] == prompt_ids and len(joint) > n:
            return joint[n:]
        logger.debug(
            "prompt tokens are not a prefix of prompt+completion; encoding completion alone"
        )
        return list(self.tokenizer.encode(completion, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids`, special tokens included, spaces as the tokens have them."""
        return self.tokenizer.decode(
            list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False
        )

    def token_text(self, token: int) -> str:
        """One token decoded alone (remembered: there are at most as many as the vocabulary)."""
        text = self._token_texts.get(token)
        if text is None:
            text = self._token_texts[token] = self.decode([token])
        return text

    # ----------------------------------------------------------------------------- running

    def left_pad(self, rows: Sequence[Sequence[int]]) -> tuple[Any, Any, Any]:
        """input_ids, attention_mask and position_ids of left-padded rows."""
        torch = self.torch
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            if r:
                ids[i, width - len(r) :] = torch.tensor(list(r), dtype=torch.long)
                mask[i, width - len(r) :] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        return ids.to(self.device), mask.to(self.device), pos.to(self.device)

    def forward(self, ids: Any, mask: Any, pos: Any, cache: Any = None, keep: int = 0) -> Any:
        """Logits of one forward pass (the last `keep` positions; 0: all), writing into
        `cache` when given. Runs under whatever grad mode the caller set."""
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

    def new_cache(self, layers: Any = None) -> Any:
        """A cache over the given `GrowingLayer`s, else transformers' `DynamicCache` for the
        model."""
        if layers is not None:
            from openberry.models.kv_cache import growing_cache

            return growing_cache(layers)
        from transformers import DynamicCache

        try:
            return DynamicCache(config=self.model.config)
        except TypeError:
            return DynamicCache()


def adapter_base(path: str) -> str | None:
    """The base model an adapter directory names (``base_model_name_or_path`` of its
    ``adapter_config.json``: a directory, hub id or built-in name), or None when `path` is not
    an adapter directory.

    Raises:
        ModelError: the adapter config cannot be read or names no base model.
    """
    config = Path(path) / "adapter_config.json"
    if not config.is_file():
        return None
    try:
        base = json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelError(f"could not read {config}: {exc}") from exc
    if not base:
        raise ModelError(f"{config} names no base_model_name_or_path")
    return str(base)


def _load_pretrained(
    name_or_path: str | None,
    adapter: str | None,
    torch_dtype: Any,
    tokenizer: Any,
    gguf_file: str | None = None,
) -> tuple[Any, Any, str | None]:
    """Model, tokenizer and adapter to load for `name_or_path`. For an adapter directory: the
    model of its base, the directory's own tokenizer when it saved one (else the base's), and
    the directory as the adapter. A GGUF (a ``.gguf`` path, a named GGUF model, or a directory
    or hub id with `gguf_file`) loads through `openberry.models.gguf`."""
    from openberry.models.builtin import resolve_model
    from openberry.models.gguf import load_causal_lm, load_tokenizer

    if name_or_path is None:
        raise ModelError("HFPolicy needs a model or a name_or_path")
    resolved = resolve_model(str(name_or_path))  # a built-in name may be an adapter
    base = adapter_base(resolved)
    source = tokenizer_source = resolve_model(str(base or resolved))
    if base is not None:
        if gguf_file is not None:
            raise ModelError(
                f"{name_or_path} is an adapter directory: its base model ({base}) says which "
                f"model to load, not --gguf-file {gguf_file}"
            )
        if adapter is not None:
            raise ModelError(
                f"{name_or_path} is an adapter directory; to load adapter {adapter!r} "
                f"instead, name its base model ({base})"
            )
        adapter = resolved
        if (Path(resolved) / "tokenizer_config.json").is_file():
            tokenizer_source = resolved
    try:
        kwargs = {} if torch_dtype is None else {"dtype": torch_dtype}
        label = None if gguf_file is not None else str(base or name_or_path)
        model = load_causal_lm(source, gguf_file, label=label, **kwargs)
        if tokenizer is None:
            same = tokenizer_source == source
            tokenizer = load_tokenizer(tokenizer_source, gguf_file if same else None)
    except (OSError, ValueError) as exc:
        raise ModelError(f"could not load model {name_or_path!r}: {exc}") from exc
    return model, tokenizer, adapter


def _fresh_adapter_name(taken: Any) -> str:
    """An adapter name not among `taken` (``adapter1``, ``adapter2``...)."""
    k = 1
    while f"adapter{k}" in taken:
        k += 1
    return f"adapter{k}"


_MALLOC_TUNED = False


def tune_cpu_malloc() -> bool:
    """Keep freed memory in this process instead of handing it back to the OS (glibc only).

    A CPU forward pass allocates and frees multi-MB tensors at every step. glibc serves those
    with fresh ``mmap`` pages (or trims the heap after them), so each step would page-fault its
    buffers in again. Raising glibc's mmap and trim thresholds keeps the pages (the same effect
    as PyTorch's advice to preload jemalloc or tcmalloc); the cost is that the process keeps its
    peak memory. `ModelSpec.build` (every ``berry`` command that loads a model) calls this for
    the hf backend on a CPU; library users may call it once at start. Returns True when the
    settings were applied (False off glibc).
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


def _cache_kwarg(model: Any) -> str:
    """Name of the KV-cache argument: ``cache`` (transformers >= 5.x) or ``past_key_values``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = inspect.signature(base.forward).parameters
    return "cache" if "cache" in params else "past_key_values"

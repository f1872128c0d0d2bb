"""Test helpers: a tiny Llama with a character-level tokenizer, and a live in-process server.

Everything is built in-process (no downloads); the server binds a free loopback port.
"""

from __future__ import annotations

import socket
import string
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SPECIALS = ["<positive_rating>", "<negative_rating>", "Yes", "No"]


def tiny_tokenizer() -> Any:
    """A character-level fast tokenizer with ``<pad>``, ``</s>``, ``<unk>`` and `SPECIALS`."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(["<pad>", "</s>", "<unk>", *string.printable])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    fast.add_tokens(SPECIALS)
    return fast


def tiny_llama_config(vocab_size: int, **extra: Any) -> Any:
    """The `LlamaConfig` of the tiny 2-layer Llama (`extra`: more config fields)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        initializer_range=0.2,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=None,
        **extra,
    )


def tiny_llama(vocab_size: int) -> Any:
    """A randomly initialised 2-layer Llama (seeded, so always the same weights)."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(tiny_llama_config(vocab_size)).eval()


def save_tiny_model(path: Any) -> Any:
    """Save the tiny Llama and its tokenizer to `path` (a model directory); return `path`."""
    tokenizer = tiny_tokenizer()
    tiny_llama(len(tokenizer)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def tiny_hf_policy(name: str = "tiny") -> Any:
    """An `HFPolicy` over the tiny Llama."""
    from openberry.models.hf import HFPolicy

    tokenizer = tiny_tokenizer()
    return HFPolicy(tiny_llama(len(tokenizer)), tokenizer, name=name)


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(app: Any, timeout: float = 20.0) -> Iterator[str]:
    """Run `app` with uvicorn in a background thread; yield its base URL (``http://...:port``)."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)


def spy_cache_shrinks(monkeypatch: Any) -> list[int]:
    """Record the batch size of every KV-cache reorder `HFPolicy` does (rows dropped when
    finished): returns the list the sizes are appended to."""
    from openberry.models.hf.runtime import HFRuntime

    shrinks: list[int] = []
    real_new_cache = HFRuntime.new_cache

    def spying_cache(runtime: Any, *args: Any) -> Any:
        cache = real_new_cache(runtime, *args)
        real = cache.reorder_cache

        def reorder(index: Any) -> Any:
            shrinks.append(len(index))
            return real(index)

        cache.reorder_cache = reorder
        return cache

    monkeypatch.setattr(HFRuntime, "new_cache", spying_cache)
    try:
        from openberry.models import kv_cache
    except ImportError:
        return shrinks
    real_select = kv_cache.select_rows

    def select_rows(cache: Any, rows: Any) -> None:
        shrinks.append(len(rows))
        real_select(cache, rows)

    monkeypatch.setattr(kv_cache, "select_rows", select_rows)
    return shrinks

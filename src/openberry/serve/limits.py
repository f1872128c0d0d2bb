"""What one request may ask of the server: body size, prompt length, tokens, search settings.

Every limit is checked before the request reaches the model, and a request past one gets a 400
(413 for the body) naming the field at fault:

- the request body: at most `ServeLimits.max_body_bytes` (413), counted as it arrives, so an
  oversized body is refused without being read whole;
- prompts: a prompt that fills the model's context (``max_position_embeddings`` of a local
  model) is a 400. A prompt far longer than the context in characters is refused before it
  is tokenized (`CHARS_PER_TOKEN` characters per token is more than any tokenizer averages);
- completions: ``max_tokens`` larger than the room the prompt leaves in the context is cut to
  that room (the choice then ends with ``finish_reason: "length"``), as llama.cpp and
  Hugging Face pipelines do; vLLM answers 400 instead;
- tokens per request: a plain request may ask for at most `ServeLimits.request_tokens` tokens
  (prompts x ``n`` x ``max_tokens``, the latter cut to the context), a search may generate at
  most that many before it is stopped with a 400;
- search settings (``search_config``): every value in its range
  (`openberry.search.methods.check_ranges`); token settings at most the context, counts at most
  `MAX_SEARCH_COUNT`.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from openberry.serve.schema import MAX_TOKENS, APIError, error_response

__all__ = [
    "CHARS_PER_TOKEN",
    "MAX_SEARCH_COUNT",
    "BodyLimit",
    "CatchAll",
    "ServeLimits",
    "check_search_config",
    "context_length",
]

logger = logging.getLogger(__name__)

CHARS_PER_TOKEN = 16
"""A prompt longer than this many characters per token of context is refused untokenized."""
MAX_SEARCH_COUNT = 64
"""Largest count setting (samples, simulations, width...) a served search may set."""


@dataclass(frozen=True)
class ServeLimits:
    """Per-request limits of a server (module docstring)."""

    max_body_bytes: int = 4 * 1024 * 1024
    """Largest request body in bytes (413 beyond)."""
    request_tokens: int = 65536
    """Most tokens one request may generate (plain: prompts x n x max_tokens; a search: what it
    generates in all)."""
    context: int | None = None
    """The model's context in tokens (None: unknown, prompts are not checked)."""

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1024 or self.request_tokens < 1:
            raise ValueError("max_body_bytes must be >= 1024 and request_tokens >= 1")

    @property
    def max_tokens(self) -> int:
        """The largest completion a request can get."""
        return min(MAX_TOKENS, self.context or MAX_TOKENS)

    def check_chars(self, texts: list[str], param: str) -> None:
        """A 400 for a text far longer than the context, before any tokenization."""
        if self.context is None:
            return
        longest = max((len(t) for t in texts), default=0)
        if longest > self.context * CHARS_PER_TOKEN:
            raise APIError(
                400,
                f"{param} is {longest} characters, far beyond this model's context of "
                f"{self.context} tokens",
                param=param,
                code="context_length_exceeded",
            )

    def check_request_tokens(self, prompts: int, n: int, max_tokens: int, param: str) -> None:
        """A 400 when ``prompts x n x max_tokens`` (cut to the context) is over the budget."""
        total = prompts * n * min(max_tokens, self.max_tokens)
        if total > self.request_tokens:
            raise APIError(
                400,
                f"this request may generate {total} tokens ({prompts} prompt(s) x n={n} x "
                f"max_tokens={min(max_tokens, self.max_tokens)}); this server allows "
                f"{self.request_tokens} per request",
                param=param,
                code="request_too_large",
            )

    def room(self, prompt_tokens: list[int], max_new_tokens: int, param: str) -> int:
        """`max_new_tokens` cut to the room the longest prompt leaves in the context; a 400 when
        a prompt fills the context."""
        if self.context is None or not prompt_tokens:
            return max_new_tokens
        longest = max(prompt_tokens)
        if longest >= self.context:
            raise APIError(
                400,
                f"{param} is {longest} tokens; this model's context is {self.context} tokens",
                param=param,
                code="context_length_exceeded",
            )
        return min(max_new_tokens, self.context - longest)


def context_length(policy: Any) -> int | None:
    """The policy's context in tokens, from its model config (None when it has none)."""
    for attr in ("context_length", "max_context"):
        value = getattr(policy, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    config = getattr(getattr(policy, "model", None), "config", None)
    for attr in ("max_position_embeddings", "n_positions", "max_seq_len"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_search_config(config: Any, limits: ServeLimits, prefix: str = "") -> None:
    """A 400 naming ``search_config.<field>`` for a token setting over the context or a count
    over `MAX_SEARCH_COUNT` (the ranges themselves are checked when the config is made)."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        name = prefix + f.name
        if dataclasses.is_dataclass(value):
            check_search_config(value, limits, name + ".")
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            continue
        cap = limits.max_tokens if "tokens" in f.name else MAX_SEARCH_COUNT
        if value > cap:
            raise APIError(
                400,
                f"search_config.{name} must be at most {cap} on this server, got {value}",
                param=f"search_config.{name}",
                code="invalid_search_config",
            )


class BodyLimit:
    """ASGI middleware: a 413 for a request body over `limit` bytes, by its ``Content-Length``
    or, without one, as the chunks arrive (the rest is never read)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await _too_large(send, self.limit)
            return
        # Without a length, read the body here (at most `limit` bytes) and replay it.
        chunks, seen, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            more = message.get("more_body", False)
            if seen > self.limit:
                await _too_large(send, self.limit)
                return
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _too_large_message(limit: int) -> str:
    return f"request body is larger than this server's limit of {limit} bytes"


async def _too_large(send: Any, limit: int) -> None:
    response = error_response(
        413, _too_large_message(limit), "invalid_request_error", None, "request_too_large"
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [*response.raw_headers, (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": response.body})


class CatchAll:
    """ASGI middleware: an unexpected exception becomes a logged 500 with an OpenAI-style body,
    sent as a normal response, so the connection stays usable (Starlette's own handler re-raises
    after answering, and the server then drops the kept-alive connection)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            logger.exception("unexpected error serving %s", scope.get("path"))
            if started:  # a stream broke mid-way: nothing more can be said on it
                return
            response = error_response(
                500, f"internal server error: {type(exc).__name__}", "server_error"
            )
            await response(scope, receive, send)

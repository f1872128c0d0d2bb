"""Response bodies of the OpenAI-compatible API (`openberry.serve.app`): choices, logprobs, usage,
the search-model response and the server-sent event streams.

Pure functions of the generations (no model calls); the layout of each body, key order
included, is the API's (module docstring of `openberry.serve.app`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from openberry.models.base import SamplingParams
from openberry.records import Generation
from openberry.serve.schema import APIError

__all__ = [
    "FINISH",
    "STREAM_PIECE_CHARS",
    "chat_events",
    "chat_logprobs",
    "choice",
    "completion_events",
    "completion_logprobs",
    "new_id",
    "require_logprobs",
    "search_response",
    "stop_reason",
    "token_strings",
    "usage",
]

STREAM_PIECE_CHARS = 16
"""Characters of text per streamed chunk."""
FINISH = {"eos": "stop", "stop": "stop", "length": "length"}
"""A generation's finish reason -> the API's ``finish_reason``."""

EchoedToken = tuple[str, int, float | None, dict[str, float] | None]
"""A prompt token as ``prompt_logprobs`` gives it: (text, offset, log p, top logprobs)."""


def new_id(prefix: str) -> str:
    """A fresh response id: `prefix` (``cmpl-``, ``chatcmpl-``) and 32 hex digits."""
    return f"{prefix}{uuid.uuid4().hex}"


def choice(
    index: int,
    text: str,
    logprobs: dict[str, Any] | None,
    finish_reason: str,
    stop_reason: str | None,
    *,
    chat: bool,
) -> dict[str, Any]:
    """One choice: ``text`` for a completion, an assistant ``message`` for a chat completion."""
    content = {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
    return {
        "index": index,
        **content,
        "logprobs": logprobs,
        "finish_reason": finish_reason,
        "stop_reason": stop_reason,
    }


def search_response(
    model: str, text: str, summary: dict[str, Any], usage: dict[str, int], *, chat: bool
) -> dict[str, Any]:
    """The answer of a search model: one finished choice with the search's `text`, and the
    search's `summary` as the top-level ``openberry`` field.

    Args:
        model: the search model's name, as requested.
        text: the completion text of the search.
        summary: `openberry.serve.search_models.search_summary` of the search.
        usage: the search's token counts.
        chat: a chat completion (else a text completion).
    """
    return {
        "id": new_id("chatcmpl-" if chat else "cmpl-"),
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice(0, text, None, "stop", None, chat=chat)],
        "usage": usage,
        "openberry": summary,
    }


def usage(gens: list[list[Generation]]) -> dict[str, int]:
    """Token counts: each prompt's tokens once, plus every generated token (EOS included)."""
    prompt = sum(row[0].prompt_tokens for row in gens if row)
    completion = sum(g.num_tokens for row in gens for g in row)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def stop_reason(gen: Generation, params: SamplingParams) -> str | None:
    """vLLM's ``stop_reason``: the stop string when one was given, ``"stop"`` when several were
    (the policy does not say which matched), None after EOS or at the length limit."""
    if gen.finish_reason != "stop":
        return None
    return params.stop[0] if len(params.stop) == 1 else "stop"


# ---------------------------------------------------------------------------------- logprobs


def require_logprobs(gen: Generation) -> tuple[float, ...]:
    """The generation's token log p, or a 400 when the model does not return them."""
    if gen.logprobs is None:
        raise APIError(
            400, "this model does not return logprobs", param="logprobs", code="unsupported"
        )
    return gen.logprobs


def token_strings(policy: Any, gen: Generation) -> list[str]:
    """Text of each generated token (special tokens spelled out); empty strings when unknown."""
    n = len(gen.logprobs or ())
    if not gen.token_ids:
        return [""] * n
    tok = getattr(policy, "tokenizer", None)
    if tok is not None and hasattr(tok, "decode"):
        return [
            tok.decode([t], skip_special_tokens=False, clean_up_tokenization_spaces=False)
            for t in gen.token_ids
        ]
    token_text = getattr(policy, "token_text", None)
    if callable(token_text):
        return [str(token_text(t)) for t in gen.token_ids]
    return [""] * len(gen.token_ids)


def _offsets(start: int, tokens: Sequence[str]) -> list[int]:
    offsets, at = [], start
    for t in tokens:
        offsets.append(at)
        at += len(t)
    return offsets


def completion_logprobs(
    policy: Any,
    gen: Generation,
    echoed: list[EchoedToken],
    prompt_chars: int,
    top: list[dict[str, float]] | None,
) -> dict[str, Any]:
    """A completion choice's ``logprobs``: the `echoed` prompt tokens, then the generated ones.

    Args:
        policy: the served policy (it spells the tokens).
        gen: the generation.
        echoed: the prompt's tokens when the prompt is echoed, else empty.
        prompt_chars: the prompt's length (offsets of generated tokens start there).
        top: the top logprobs of the generated tokens, or None for ``logprobs=0``.
    """
    values = require_logprobs(gen)
    tokens = token_strings(policy, gen)
    lp: dict[str, Any] = {
        "tokens": [e[0] for e in echoed] + tokens,
        "token_logprobs": [e[2] for e in echoed] + list(values),
        "top_logprobs": None,
        "text_offset": [e[1] for e in echoed] + _offsets(prompt_chars, tokens),
    }
    if top is not None:
        lp["top_logprobs"] = [e[3] for e in echoed] + top
    return lp


def chat_logprobs(
    tokens: list[str], values: Sequence[float], tops: list[dict[str, float]]
) -> dict[str, Any]:
    """A chat choice's ``logprobs``: ``{"content": [{token, logprob, bytes, top_logprobs}]}``."""
    return {
        "content": [
            {
                "token": t,
                "logprob": v,
                "bytes": list(t.encode("utf-8")),
                "top_logprobs": [
                    {"token": a, "logprob": b, "bytes": list(a.encode("utf-8"))}
                    for a, b in top.items()
                ],
            }
            for t, v, top in zip(tokens, values, tops, strict=True)
        ]
    }


# ---------------------------------------------------------------------------------- streams


def _pieces(text: str) -> list[str]:
    return [text[i : i + STREAM_PIECE_CHARS] for i in range(0, len(text), STREAM_PIECE_CHARS)]


def _sse(obj: Any) -> str:
    return f"data: {json.dumps(obj)}\n\n"


def completion_events(
    head: dict[str, Any],
    choices: list[dict[str, Any]],
    usage: dict[str, int],
    include_usage: bool,
) -> Iterator[str]:
    """The server-sent events of a streamed completion: each choice's text in pieces (at least
    one), the last piece carrying its logprobs and finish reason; then the usage when asked;
    then ``[DONE]``. Every chunk starts with `head` (id, object, created, model)."""
    for c in choices:
        pieces = _pieces(c["text"]) or [""]
        for k, piece in enumerate(pieces):
            last = k == len(pieces) - 1
            chunk = {
                "index": c["index"],
                "text": piece,
                "logprobs": c["logprobs"] if last else None,
                "finish_reason": c["finish_reason"] if last else None,
            }
            yield _sse({**head, "choices": [chunk]})
    if include_usage:
        yield _sse({**head, "choices": [], "usage": usage})
    yield "data: [DONE]\n\n"


def chat_events(
    head: dict[str, Any],
    choices: list[dict[str, Any]],
    usage: dict[str, int],
    include_usage: bool,
) -> Iterator[str]:
    """The server-sent events of a streamed chat completion: per choice a role delta, the content
    in pieces, then an empty delta with the logprobs and finish reason; then the usage when
    asked; then ``[DONE]``. Every chunk starts with `head` (id, created, model, object)."""
    for c in choices:
        first = {"index": c["index"], "delta": {"role": "assistant", "content": ""}}
        yield _sse({**head, "choices": [{**first, "logprobs": None, "finish_reason": None}]})
        for piece in _pieces(c["message"]["content"]):
            delta = {"index": c["index"], "delta": {"content": piece}}
            yield _sse({**head, "choices": [{**delta, "logprobs": None, "finish_reason": None}]})
        end = {
            "index": c["index"],
            "delta": {},
            "logprobs": c["logprobs"],
            "finish_reason": c["finish_reason"],
        }
        yield _sse({**head, "choices": [end]})
    if include_usage:
        yield _sse({**head, "choices": [], "usage": usage})
    yield "data: [DONE]\n\n"

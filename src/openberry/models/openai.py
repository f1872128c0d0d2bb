"""`OpenAIPolicy`: a `Policy` over an OpenAI-compatible HTTP server (ours, vLLM, OpenAI...).

Uses httpx directly (no ``openai`` package). Importing this module is light; httpx is imported when
a policy is built.

- `OpenAIPolicy.generate` sends one request per prompt (``n`` inside the request) from a thread
  pool of `max_concurrency` workers sharing one ``httpx.Client``. It always asks for logprobs
  (``logprobs=1`` on ``/v1/completions``, ``logprobs: true`` on chat) and raises `ModelError` when
  the server does not return them. Servers do not return token ids, so ``token_ids=()`` and
  ``num_tokens`` is the number of returned logprobs.
- ``SamplingParams.token_stats``: servers do not return whole distributions, so the request asks
  for the top `stats_top_k` logprobs of each generated position (``logprobs=k`` on completions,
  ``top_logprobs: k`` on chat), and the entropies/varentropies are those of the top-k
  distribution renormalised. This is an approximation: it ignores the tail mass beyond the top
  k (usually underestimating entropy), and servers that merge tokens with the same text (ours)
  merge their probabilities too. A server that returns no top logprobs, or refuses the request
  for them (HTTP 400/422; retried without, and later calls stop asking), leaves the fields None,
  with one warning logged per policy. OpenAI's own ``/v1/completions`` allows at most 5.
- Finish reasons: ``length`` stays ``length``; ``stop`` becomes ``stop`` when the server's
  vLLM-style ``stop_reason`` is a string (a stop string matched), ``eos`` when ``stop_reason`` is
  null or when no stop strings were asked for, and ``stop`` otherwise (unknown).
- Timeouts and retries: a request that gets no answer within `timeout` seconds (default 600: long
  generations take minutes; connecting gets at most 30 s of it) has failed. 429, 5xx, timeouts
  and connection errors are retried up to `max_retries` times (default 2) with exponential backoff
  and full jitter (``Retry-After`` is honoured, capped at `max_backoff`); with `max_retry_time`,
  a request gives up once that many seconds have passed since its first attempt (an attempt is
  cut to the time left). Other 4xx answers raise `ModelError` at once with the server's message.
  The API key is sent only in the ``Authorization`` header and never logged.
- `OpenAIPolicy.score` uses ``/v1/completions`` with ``echo=true, max_tokens=1, logprobs=0`` and
  keeps the tokens whose ``text_offset`` falls inside the completion. Servers that reject ``echo``
  (openberry's own server does) make it raise ``ModelError("... does not support scoring ...")``.
  Not available in chat mode.
- `OpenAIPolicy.next_token_probs` asks for one token at temperature 0 with the top
  ``max(5, len(candidates))`` (at most 20) logprobs, and reads the candidates there. A candidate
  outside the returned top list is scored exactly with `score` (``echo``); when the server cannot
  echo (or in chat mode) it gets probability 0.0, with a warning logged once. Servers without top
  logprobs make it raise `ModelError`. openberry's own server (`berry serve`) supports both.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from openberry.formats.chat import ChatPrompt, chat_messages
from openberry.models.base import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_REQUEST_TIMEOUT,
    ModelError,
    SamplingParams,
    entropy_varentropy,
    not_one_token,
)
from openberry.records import FinishReason, Generation

__all__ = ["OpenAIPolicy", "RetryConfig"]

logger = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
_MAX_CONNECT_TIMEOUT = 30.0
"""Longest wait for a connection; a server that does not accept one in this time is down."""


class _RejectedError(ModelError):
    """The server refused a request with a non-retryable HTTP status (a 4xx)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RetryConfig:
    """Retry policy for transient failures."""

    max_retries: int = DEFAULT_MAX_RETRIES
    """Retries after the first attempt (so at most ``max_retries + 1`` attempts)."""
    backoff: float = 0.5
    """Base delay in seconds; attempt k waits uniform(0, backoff * 2**k) (full jitter)."""
    max_backoff: float = 20.0
    """Longest single wait in seconds (also caps ``Retry-After``)."""
    max_time: float | None = None
    """Most seconds one request may take from its first attempt, waits included (None: no
    bound but the attempts' timeouts and `max_retries`)."""

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt` (0-based)."""
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_backoff)
        return random.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))


class OpenAIPolicy:
    """A `Policy` backed by an OpenAI-compatible server.

    Args:
        base_url: server URL, with or without the ``/v1`` suffix (e.g. ``http://127.0.0.1:8000``).
        model: model name to request.
        api_key: bearer token (default: ``$OPENAI_API_KEY``, else ``$BERRY_API_KEY``, else none).
        max_concurrency: most requests in flight at once.
        timeout: seconds to wait for the answer to one request (connecting: at most 30 of them).
        max_retries: retries of a failed request (429, 5xx, timeouts, connection errors).
        max_retry_time: most seconds one request may take in all, retries and waits included
            (None: no bound but `timeout` and `max_retries`).
        chat: use ``/v1/chat/completions`` with each prompt as one user message.
        backoff: base backoff in seconds (see `RetryConfig`).
        transport: an ``httpx`` transport (tests: ``httpx.MockTransport``).
        name: policy name (default: `model`).
        stats_top_k: top logprobs asked per generated token for ``token_stats`` (module
            docstring).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        max_concurrency: int = 8,
        timeout: float = DEFAULT_REQUEST_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_retry_time: float | None = None,
        chat: bool = False,
        backoff: float = 0.5,
        transport: Any = None,
        name: str | None = None,
        stats_top_k: int = 20,
    ) -> None:
        import httpx

        if max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if not timeout > 0 or (max_retry_time is not None and not max_retry_time > 0):
            raise ValueError("timeout and max_retry_time must be > 0")
        if stats_top_k < 1:
            raise ValueError("stats_top_k must be >= 1")
        self.stats_top_k = stats_top_k
        self._stats_warned = False  # set once token_stats turned out unavailable (logged once)
        self._stats_rejected = False  # set once the server refused a request for top logprobs
        self._stats_lock = threading.Lock()
        self._httpx = httpx
        base = base_url.rstrip("/")
        self.base_url = base if base.endswith("/v1") else base + "/v1"
        self.model = model
        self.name = name or model
        self.chat = chat
        self.max_concurrency = max_concurrency
        self.timeout = float(timeout)
        self.retry = RetryConfig(max_retries=max_retries, backoff=backoff, max_time=max_retry_time)
        self._echo_failed = False  # set once the server refused echo scoring
        self._echo_lock = threading.Lock()
        key = api_key or os.environ.get("OPENAI_API_KEY") or os.environ.get("BERRY_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=self._timeout(self.timeout),
            transport=transport,
            limits=httpx.Limits(max_connections=max_concurrency),
        )

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIPolicy(base_url={self.base_url!r}, model={self.model!r}, chat={self.chat})"

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def __enter__(self) -> OpenAIPolicy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------- HTTP

    def _timeout(self, seconds: float) -> Any:
        return self._httpx.Timeout(seconds, connect=min(seconds, _MAX_CONNECT_TIMEOUT))

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST with retries (module docstring); returns the JSON answer or raises
        `ModelError`."""
        attempt = 0
        start = time.monotonic()
        while True:
            timeout = self.timeout
            if self.retry.max_time is not None:
                timeout = max(0.001, min(timeout, self.retry.max_time - time.monotonic() + start))
            data, problem, retry_after = self._attempt(path, body, timeout)
            if data is not None:
                return data
            elapsed = time.monotonic() - start
            tried = f"{attempt + 1} attempt{'s' if attempt else ''} in {elapsed:.1f} s"
            if attempt >= self.retry.max_retries:
                raise ModelError(
                    f"{self.base_url}{path} failed after {tried}: {problem} "
                    "(see --timeout, --max-retries)"
                )
            wait = self.retry.delay(attempt, retry_after)
            if self.retry.max_time is not None and elapsed + wait >= self.retry.max_time:
                raise ModelError(
                    f"{self.base_url}{path} failed after {tried}, out of its "
                    f"{self.retry.max_time:g} s (--max-retry-time): {problem}"
                )
            logger.warning(
                "%s%s: %s; retry %d/%d in %.2fs",
                self.base_url,
                path,
                problem,
                attempt + 1,
                self.retry.max_retries,
                wait,
            )
            time.sleep(wait)
            attempt += 1

    def _attempt(
        self, path: str, body: dict[str, Any], timeout: float
    ) -> tuple[dict[str, Any] | None, str, float | None]:
        """One POST: ``(answer, "", None)``, or ``(None, problem, Retry-After)`` for a failure
        worth retrying; raises `ModelError` for one that is not."""
        httpx = self._httpx
        try:
            resp = self._client.post(path, json=body, timeout=self._timeout(timeout))
        except httpx.ConnectTimeout:
            return None, f"no connection within {min(timeout, _MAX_CONNECT_TIMEOUT):g} s", None
        except httpx.TimeoutException as exc:
            return None, f"no answer within {timeout:g} s ({type(exc).__name__})", None
        except httpx.TransportError as exc:
            return None, f"{type(exc).__name__}: {exc}", None
        if resp.status_code < 400:
            try:
                data = resp.json()
            except ValueError as exc:
                raise ModelError(f"{path}: server answered non-JSON: {exc}") from exc
            if not isinstance(data, dict):
                raise ModelError(f"{path}: server answered {type(data).__name__}")
            return data, "", None
        message = _error_message(resp)
        if resp.status_code not in _RETRY_STATUS:
            hint = ""
            if "support" in message.lower():
                hint = " (the server does not support this feature)"
            raise _RejectedError(
                f"{path}: HTTP {resp.status_code}: {message}{hint}", resp.status_code
            )
        return None, f"HTTP {resp.status_code}: {message}", _retry_after(resp)

    def _map(self, fn: Any, items: Sequence[Any]) -> list[Any]:
        if len(items) <= 1 or self.max_concurrency == 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(items))) as pool:
            return list(pool.map(fn, items))

    # ----------------------------------------------------------------------------- Policy API

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Generation]]:
        """Sample `params.n` continuations per prompt, one request per prompt (module docstring)."""
        return self._map(lambda p: self._generate_one(p, params), list(prompts))

    def _request_body(
        self, prompt: str, params: SamplingParams, top: bool = False
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "n": params.n,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if self.chat:
            body |= _chat_fields(prompt)
            body["logprobs"] = True
            if top:
                body["top_logprobs"] = self.stats_top_k
        else:
            body["prompt"] = prompt
            body["logprobs"] = self.stats_top_k if top else 1
        return body

    def _generate_one(self, prompt: str, params: SamplingParams) -> list[Generation]:
        path = "/chat/completions" if self.chat else "/completions"
        top = params.token_stats and not self._stats_rejected
        try:
            data = self._post(path, self._request_body(prompt, params, top=top))
        except _RejectedError as exc:
            if not top or exc.status not in (400, 422):
                raise
            # The server refused top logprobs: generate without them (stats left None), and
            # stop asking for them.
            self._stats_rejected = True
            self._warn_no_stats(str(exc))
            data = self._post(path, self._request_body(prompt, params))
        choices = sorted(_choices(data, path), key=lambda c: c.get("index", 0))
        if len(choices) != params.n:
            raise ModelError(f"{path}: asked for n={params.n} choices, got {len(choices)}")
        usage = data.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        out = []
        for c in choices:
            tops: list[Any] | None = None
            if self.chat:
                text = str((c.get("message") or {}).get("content") or "")
                content = (c.get("logprobs") or {}).get("content")
                lps = None if content is None else [e.get("logprob") for e in content]
                if content is not None:
                    tops = [_chat_top(e.get("top_logprobs")) for e in content]
            else:
                text = str(c.get("text") or "")
                lps = (c.get("logprobs") or {}).get("token_logprobs")
                tops = (c.get("logprobs") or {}).get("top_logprobs")
            if lps is None or any(not isinstance(v, (int, float)) for v in lps):
                raise ModelError(
                    f"{path}: the server returned no per-token logprobs (asked for them); "
                    "it does not support logprobs"
                )
            stats = self._top_stats(tops, len(lps)) if top else None
            out.append(
                Generation(
                    text=text,
                    logprobs=tuple(float(v) for v in lps),
                    finish_reason=_finish(c, params),
                    num_tokens=len(lps),
                    prompt_tokens=prompt_tokens,
                    entropies=None if stats is None else tuple(h for h, _ in stats),
                    varentropies=None if stats is None else tuple(v for _, v in stats),
                )
            )
        return out

    def _top_stats(self, tops: Any, n: int) -> list[tuple[float, float]] | None:
        """Entropy and varentropy of each position's renormalised top-k logprobs, or None.

        `tops` has one entry per generated token: a ``{token: logprob}`` dict (as
        ``/v1/completions`` returns them) or a list of logprobs. None (with one warning per
        policy) when they are missing or incomplete.
        """
        stats: list[tuple[float, float]] = []
        if isinstance(tops, list) and len(tops) == n:
            for top in tops:
                values = top.values() if isinstance(top, dict) else top or ()
                finite = [float(v) for v in values if isinstance(v, (int, float))]
                finite = [v for v in finite if math.isfinite(v)]
                if not finite:
                    break
                stats.append(entropy_varentropy(finite))
            else:
                return stats
        self._warn_no_stats("no top logprobs in the answer")
        return None

    def _warn_no_stats(self, why: str) -> None:
        """Log once per policy that token_stats are unavailable."""
        with self._stats_lock:
            warn, self._stats_warned = not self._stats_warned, True
        if warn:
            logger.warning(
                "server at %s gives no top logprobs for generated tokens (%s); "
                "token_stats (entropies, varentropies) are left None",
                self.base_url,
                why,
            )

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> list[tuple[float, ...]]:
        """Per-token log p of each completion via ``echo`` + ``logprobs`` (module docstring).

        Raises:
            ModelError: chat mode, or the server does not support echo with logprobs.
        """
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        if self.chat:
            raise ModelError("OpenAIPolicy(chat=True) does not support scoring (no echo in chat)")
        return self._map(self._score_one, list(zip(prompts, completions, strict=True)))

    def _score_one(self, pair: tuple[str, str]) -> tuple[float, ...]:
        prompt, completion = pair
        if not completion:
            return ()
        body = {
            "model": self.model,
            "prompt": prompt + completion,
            "max_tokens": 1,
            "temperature": 0,
            "echo": True,
            "logprobs": 0,
        }
        try:
            data = self._post("/completions", body)
        except ModelError as exc:
            raise ModelError(
                f"server at {self.base_url} does not support scoring (echo with logprobs): {exc}"
            ) from exc
        (choice,) = _choices(data, "/completions")[:1]
        lp = choice.get("logprobs") or {}
        values, offsets = lp.get("token_logprobs"), lp.get("text_offset")
        if values is None or offsets is None:
            raise ModelError(
                f"server at {self.base_url} does not support scoring: no echoed logprobs"
            )
        start, end = len(prompt), len(prompt) + len(completion)
        picked = [
            float(v)
            for v, o in zip(values, offsets, strict=False)
            if start <= o < end and isinstance(v, (int, float))
        ]
        return tuple(picked)

    def next_token_probs(
        self, prompts: Sequence[str], candidates: Sequence[str]
    ) -> list[dict[str, float]]:
        """p(candidate | prompt) from the server's top logprobs of one generated token.

        Raises:
            ModelError: the server returns no top logprobs.
        """
        k = min(20, max(5, len(candidates)))
        return self._map(lambda p: self._next_one(p, list(candidates), k), list(prompts))

    def _next_one(self, prompt: str, candidates: list[str], k: int) -> dict[str, float]:
        body: dict[str, Any] = {"model": self.model, "max_tokens": 1, "temperature": 0}
        top: dict[str, float] | None = None
        if self.chat:
            body |= {**_chat_fields(prompt), "logprobs": True}
            body["top_logprobs"] = k
            data = self._post("/chat/completions", body)
            content = (_choices(data, "/chat/completions")[0].get("logprobs") or {}).get("content")
            if content and content[0].get("top_logprobs"):
                top = {e["token"]: float(e["logprob"]) for e in content[0]["top_logprobs"]}
        else:
            body |= {"prompt": prompt, "logprobs": k}
            data = self._post("/completions", body)
            tops = (_choices(data, "/completions")[0].get("logprobs") or {}).get("top_logprobs")
            if tops and isinstance(tops[0], dict):
                top = {str(t): float(v) for t, v in tops[0].items()}
        if top is None:
            raise ModelError(
                f"server at {self.base_url} returned no top logprobs; it does not support "
                "next_token_probs"
            )
        probs = {c: math.exp(top[c]) for c in candidates if c in top}
        for c in candidates:
            if c not in probs:
                probs[c] = self._tail_prob(prompt, c)
        return {c: probs[c] for c in candidates}

    def _tail_prob(self, prompt: str, candidate: str) -> float:
        """p(candidate | prompt) for a candidate outside the top list: echo-score it, else 0."""
        if not self.chat and not self._echo_failed:
            try:
                values = self._score_one((prompt, candidate))
            except ModelError as exc:
                # Requests run in threads: several may find echo refused at once; warn once.
                with self._echo_lock:
                    first = not self._echo_failed
                    self._echo_failed = True
                if first:
                    logger.warning(
                        "candidates outside the server's top logprobs get probability 0: %s", exc
                    )
            else:
                if len(values) != 1:
                    raise not_one_token(candidate, len(values))
                return math.exp(values[0])
        return 0.0


def _choices(data: dict[str, Any], path: str) -> list[dict[str, Any]]:
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ModelError(f"{path}: the server's answer has no choices")
    return choices


def _chat_top(entries: Any) -> list[Any] | None:
    """The logprobs of a chat logprobs entry's ``top_logprobs`` list (None when absent)."""
    if not isinstance(entries, list):
        return None
    return [e.get("logprob") for e in entries if isinstance(e, dict)]


def _finish(choice: dict[str, Any], params: SamplingParams) -> FinishReason:
    reason = choice.get("finish_reason")
    if reason == "length":
        return "length"
    if not params.stop:
        return "eos"
    if "stop_reason" in choice:
        return "stop" if isinstance(choice["stop_reason"], str) else "eos"
    return "stop"


def _error_message(resp: Any) -> str:
    try:
        err = resp.json().get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
    except (ValueError, AttributeError):
        pass
    return (resp.text or "")[:300]


def _retry_after(resp: Any) -> float | None:
    value = resp.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _chat_fields(prompt: str) -> dict[str, Any]:
    """The chat request fields of `prompt`: its messages (a plain prompt is one user message);
    a `ChatPrompt` whose reply has begun sends the reply as a final assistant message to be
    continued (vLLM's ``continue_final_message``)."""
    fields: dict[str, Any] = {"messages": chat_messages(prompt)}
    if isinstance(prompt, ChatPrompt) and prompt.reply:
        fields["messages"].append({"role": "assistant", "content": prompt.reply})
        fields |= {"continue_final_message": True, "add_generation_prompt": False}
    return fields

"""OpenAI-compatible HTTP API over a `Policy`: ``/v1/models``, ``/v1/completions``, ``/v1/chat/completions``.

`create_app` wraps any `openberry.models.Policy` (usually an `openberry.models.hf.HFPolicy`) in a
FastAPI app that speaks the subset of the OpenAI API that search and evaluation clients use.

Behaviour and departures from the OpenAI API:

- Requests are validated with pydantic. Every invalid request gets a 4xx answer with an
  OpenAI-style body ``{"error": {"message", "type", "param", "code"}}``: 400 for bad fields or
  JSON, 401 for a missing or wrong API key, 404 for an unknown model or path. Unknown fields are
  ignored. Unexpected server faults are 500 with the same body shape (and logged).
- ``best_of`` is ignored, prompts must be text (not token ids).
- ``/v1/completions`` ``logprobs`` (an int): each choice gets ``{tokens, token_logprobs,
  top_logprobs, text_offset}``, one entry per generated token *including* a final EOS token
  (whose text is not in ``text``). ``token_logprobs`` are the model's own log p at temperature 1
  (the `Policy.generate` convention); ``text_offset`` counts characters from the start of the
  prompt, as OpenAI does. ``top_logprobs`` is null for ``logprobs=0``; for ``logprobs=k > 0`` it
  lists, per token, the k most likely tokens at that position (token text -> log p), computed
  after generation by one forward pass over the prompt and the generated token ids.
- ``echo: true`` (completions) puts the prompt in front of each choice's text and, with
  ``logprobs``, the prompt's tokens in front of the generated ones: each with its log p given the
  tokens before it (null for the first), its offset in the prompt, and top logprobs when
  ``logprobs > 0``. This is how `OpenAIPolicy.score` scores text, as on vLLM.
- ``echo`` and ``logprobs > 0`` / ``top_logprobs > 0`` need a policy with the extra methods
  ``prompt_logprobs`` / ``top_logprobs`` (`HFPolicy` has both); otherwise they get a 400 with code
  ``unsupported_parameter``.
- ``/v1/chat/completions`` ``logprobs: true`` gives ``{"content": [{token, logprob, bytes,
  top_logprobs}]}``; ``top_logprobs: k`` fills each entry's list with the k most likely tokens.
  Messages are rendered with the policy tokenizer's chat template (``policy.tokenizer``) when it
  has one, with the generation prompt added and a leading BOS text removed when the tokenizer adds
  BOS itself; otherwise with the documented fallback `render_chat`: one ``"{role}: {content}\\n"``
  line per message, then ``"assistant:"``. Serve an `HFPolicy` with ``use_chat_template=False``
  (the default): with ``True`` it would wrap the rendered chat a second time.
- ``finish_reason``: ``eos`` and a matched stop string both become ``"stop"``, ``length`` stays
  ``"length"``. Each choice also has the vLLM-style ``stop_reason``: null after EOS, the stop
  string when one was given, or ``"stop"`` when several were given (the policy does not say which
  one matched), null for ``length``.
- Usage: ``prompt_tokens`` sums the prompt tokens of each prompt once, ``completion_tokens`` sums
  the generated tokens (EOS included) of all choices.
- Streaming (``stream: true``): the whole completion is generated first, then sent as
  server-sent events ``data: {...}\\n\\n`` (text in pieces of `STREAM_PIECE_CHARS` characters; the
  last chunk of a choice carries its ``finish_reason`` and, when asked, its logprobs), then
  ``data: [DONE]``. With ``stream_options.include_usage`` a last chunk carries the usage.
- Generation runs in the thread pool (the event loop stays free) and one lock serialises access
  to the model: requests are answered one generate call at a time.
- The API key is compared in constant time and never logged.

Search methods as models: unless ``search_methods=False``, every method of
`openberry.search.METHODS` is also served as the model ``berry-<method>`` (``berry-greedy``,
``berry-mctsr``, ``berry-sr-mcts``, ``berry-meta-mcts``...), listed by ``/v1/models`` after the
plain model. A request naming one runs that search over the served policy instead of sampling:

- the question is the prompt (``/v1/completions``, one prompt per request) or the text of the last
  ``user`` message (``/v1/chat/completions``; the other messages are not used);
- the answer text is `openberry.serve.search_models.completion_text`: the chosen solution for
  whole-answer methods, the chosen steps joined with newlines for ``beam`` and ``meta-mcts``;
- extra request fields (``extra_body`` in the OpenAI client): ``rollouts`` (int, 1 to
  `MAX_SEARCH_ROLLOUTS`, default the server's ``search_rollouts``; its meaning per method is in
  `openberry.search.methods`) and ``search_config`` (an object of config overrides, values
  strings, numbers or booleans; an unknown setting is a 400 with ``param: "search_config"``).
  ``seed`` seeds the search (default 0); ``max_tokens``, ``temperature``, ``top_p`` and ``stop``
  are ignored (the method's config sets its sampling; change it with ``search_config``);
- ``n > 1``, ``stream: true``, ``logprobs``/``top_logprobs`` and ``echo`` are a 400 with code
  ``unsupported_parameter``;
- the response is a normal (chat) completion with one choice (``finish_reason: "stop"``) plus a
  top-level ``openberry`` object: ``method``, ``answer`` (null when none was found), ``chosen``
  (node ids of the chosen path), ``nodes`` (tree size), ``stats`` (calls, prompt and generated
  tokens, rounds, wall time), ``config`` (the method's whole config), ``rollouts`` and ``seed``.
  ``usage`` counts the search's prompt tokens and generated tokens.
- the search runs in the thread pool under the same model lock as generation, so it holds the
  model for its whole duration.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal, TypeVar

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from openberry.models.base import ModelError, Policy, SamplingParams
from openberry.records import Generation, Problem
from openberry.search import METHODS, SearchError, make_search, run_search
from openberry.serve.search_models import (
    MAX_SEARCH_ROLLOUTS,
    PROBLEM_ID,
    completion_text,
    search_model_names,
    search_summary,
)

__all__ = [
    "MAX_SEARCH_ROLLOUTS",
    "STREAM_PIECE_CHARS",
    "APIError",
    "create_app",
    "render_chat",
]

logger = logging.getLogger(__name__)

MAX_N = 128
"""Most samples per prompt in one request."""
MAX_TOKENS = 32768
"""Largest accepted ``max_tokens``."""
MAX_STOP = 4
"""Most stop strings per request (as in the OpenAI API)."""
STREAM_PIECE_CHARS = 16
"""Characters of text per streamed chunk."""
COMPLETION_DEFAULT_MAX_TOKENS = 16
"""``max_tokens`` default of ``/v1/completions`` (the OpenAI default)."""
CHAT_DEFAULT_MAX_TOKENS = 512
"""``max_tokens`` default of ``/v1/chat/completions``."""

_FINISH = {"eos": "stop", "stop": "stop", "length": "length"}
T = TypeVar("T")


class APIError(Exception):
    """An error answered with an OpenAI-style body.

    Args:
        status: HTTP status code.
        message: human-readable message.
        type: OpenAI error type (``invalid_request_error``, ``authentication_error``...).
        param: the request field at fault, if any.
        code: a short machine-readable code, if any.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def response(self) -> JSONResponse:
        """The JSON response for this error."""
        return _error_response(self.status, self.message, self.type, self.param, self.code)


def _error_response(
    status: int, message: str, type: str, param: str | None = None, code: str | None = None
) -> JSONResponse:
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return JSONResponse(status_code=status, content=body)


# ---------------------------------------------------------------------------------- requests


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    n: int | None = Field(default=None, ge=1, le=MAX_N)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    rollouts: Any = None
    """Search models only: the search budget (checked when a search model is named)."""
    search_config: Any = None
    """Search models only: config overrides (checked when a search model is named)."""

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop strings are allowed")
        if any(not s for s in stops):
            raise ValueError("stop strings must be non-empty")
        return value

    def sampling(self, default_max_tokens: int, max_tokens: int | None = None) -> SamplingParams:
        stop = [self.stop] if isinstance(self.stop, str) else self.stop or []
        try:
            return SamplingParams(
                n=1 if self.n is None else self.n,
                max_new_tokens=max_tokens or self.max_tokens or default_max_tokens,
                temperature=1.0 if self.temperature is None else self.temperature,
                top_p=1.0 if self.top_p is None else self.top_p,
                stop=tuple(stop),
                seed=self.seed,
            )
        except ValueError as exc:
            raise APIError(400, str(exc)) from exc

    @property
    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))


class CompletionRequest(_Request):
    """Body of ``POST /v1/completions``."""

    prompt: str | list[str]
    logprobs: int | None = Field(default=None, ge=0, le=20)
    echo: bool = False

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("prompt list must not be empty")
        return value


class TextPart(BaseModel):
    """One text part of a chat message's content."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """One chat message."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ChatRequest(_Request):
    """Body of ``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)


# ---------------------------------------------------------------------------------- helpers


def render_chat(policy: Any, messages: Sequence[dict[str, str]]) -> str:
    """Render chat messages into one prompt string for `policy`.

    Uses ``policy.tokenizer``'s chat template when it has one (generation prompt added; a leading
    BOS text is removed when the tokenizer adds BOS by itself, to avoid a double BOS). Otherwise
    the fallback: one ``"{role}: {content}\\n"`` line per message, then ``"assistant:"``.

    Args:
        policy: the served policy.
        messages: ``{"role", "content"}`` dicts.

    Returns:
        The prompt text.
    """
    tok = getattr(policy, "tokenizer", None)
    if tok is not None and getattr(tok, "chat_template", None):
        text = tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        bos = getattr(tok, "bos_token", None)
        bos_id = getattr(tok, "bos_token_id", None)
        if bos and bos_id is not None and text.startswith(bos) and bos_id in tok.encode(""):
            text = text[len(bos) :]
        return str(text)
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"


def _token_strings(policy: Any, gen: Generation) -> list[str]:
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


def _stop_reason(gen: Generation, params: SamplingParams) -> str | None:
    if gen.finish_reason != "stop":
        return None
    return params.stop[0] if len(params.stop) == 1 else "stop"


def _require_logprobs(gen: Generation) -> tuple[float, ...]:
    if gen.logprobs is None:
        raise APIError(
            400, "this model does not return logprobs", param="logprobs", code="unsupported"
        )
    return gen.logprobs


def _extra(policy: Any, method: str, param: str) -> Callable[..., Any]:
    """A policy's optional method (``prompt_logprobs``, ``top_logprobs``), or a 400."""
    fn = getattr(policy, method, None)
    if not callable(fn):
        raise APIError(
            400,
            f"{param} is not supported for this model (its policy has no {method})",
            param=param,
            code="unsupported_parameter",
        )
    return fn


def _offsets(start: int, tokens: Sequence[str]) -> list[int]:
    offsets, at = [], start
    for t in tokens:
        offsets.append(at)
        at += len(t)
    return offsets


def _pieces(text: str) -> list[str]:
    return [text[i : i + STREAM_PIECE_CHARS] for i in range(0, len(text), STREAM_PIECE_CHARS)]


def _usage(gens: list[list[Generation]]) -> dict[str, int]:
    prompt = sum(row[0].prompt_tokens for row in gens if row)
    completion = sum(g.num_tokens for row in gens for g in row)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _sse(obj: Any) -> str:
    return f"data: {json.dumps(obj)}\n\n"


def _unsupported(param: str, message: str) -> APIError:
    return APIError(400, message, param=param, code="unsupported_parameter")


def _search_rollouts(value: Any, default: int) -> int:
    """The ``rollouts`` field of a search-model request, checked."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise APIError(400, "rollouts must be an integer", param="rollouts")
    if not 1 <= value <= MAX_SEARCH_ROLLOUTS:
        raise APIError(400, f"rollouts must be in 1..{MAX_SEARCH_ROLLOUTS}", param="rollouts")
    return value


def _search_overrides(value: Any) -> dict[str, str]:
    """The ``search_config`` field as string overrides (so `make_search` converts and checks
    each value against its field's type)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise APIError(400, "search_config must be an object", param="search_config")
    out = {}
    for key, v in value.items():
        if isinstance(v, bool):
            out[key] = "true" if v else "false"
        elif isinstance(v, (str, int, float)):
            out[key] = str(v)
        else:
            raise APIError(
                400,
                f"search_config.{key} must be a string, number or boolean",
                param="search_config",
                code="invalid_search_config",
            )
    return out


# ---------------------------------------------------------------------------------- app


def create_app(
    policy: Policy,
    *,
    model_name: str,
    api_key: str | None = None,
    search_methods: bool | Iterable[str] = True,
    search_rollouts: int = 4,
) -> FastAPI:
    """Build the OpenAI-compatible app serving `policy` (behaviour: module docstring).

    Args:
        policy: the model to serve.
        model_name: the name clients must pass as ``model`` (listed by ``/v1/models``).
        api_key: when set, every ``/v1`` request needs ``Authorization: Bearer <api_key>``.
        search_methods: serve the search methods as models ``berry-<method>``: True for all of
            `openberry.search.METHODS`, False for none, or the method names to serve.
        search_rollouts: the search budget of a request that names no ``rollouts``.

    Returns:
        The FastAPI app (run it with uvicorn).

    Raises:
        ValueError: an unknown method in `search_methods`, or `search_rollouts` out of range.
    """
    if search_methods is True:
        methods = list(METHODS)
    elif search_methods is False or search_methods is None:
        methods = []
    else:
        methods = list(search_methods)
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown search method(s) {unknown}; choose from {list(METHODS)}")
    if not 1 <= search_rollouts <= MAX_SEARCH_ROLLOUTS:
        raise ValueError(f"search_rollouts must be in 1..{MAX_SEARCH_ROLLOUTS}")
    search_models = search_model_names(methods)
    if search_models.pop(model_name, None) is not None:
        logger.warning("search model %r is shadowed by the served model of that name", model_name)

    app = FastAPI(title="openberry", docs_url=None, redoc_url=None, openapi_url=None)
    lock = threading.Lock()
    created = int(time.time())
    expected = f"Bearer {api_key}".encode() if api_key else None
    if getattr(policy, "use_chat_template", False):
        logger.warning(
            "the served policy applies its own chat template to every prompt; "
            "/v1/chat/completions will wrap an already rendered chat"
        )

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = [str(x) for x in first.get("loc", ()) if x != "body"]
        param = loc[0] if loc else None
        msg = str(first.get("msg", "invalid request"))
        if first.get("type") == "json_invalid":
            message = f"request body is not valid JSON: {msg}"
            param = None
        elif first.get("type") == "missing":
            message = f"missing required field {param!r}"
        else:
            message = f"invalid value for {param!r}: {msg}" if param else msg
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more error(s))"
        return _error_response(400, message, "invalid_request_error", param, None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else None
        return _error_response(
            exc.status_code, str(exc.detail), "invalid_request_error", None, code
        )

    @app.exception_handler(Exception)
    async def _server_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error serving %s", request.url.path)
        return _error_response(500, f"internal server error: {type(exc).__name__}", "server_error")

    @app.middleware("http")
    async def _auth(request: Request, call_next: Callable[[Request], Any]) -> Any:
        if expected is not None and request.url.path.startswith("/v1"):
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return _error_response(
                    401,
                    "missing or invalid API key (send 'Authorization: Bearer <key>')",
                    "authentication_error",
                    None,
                    "invalid_api_key",
                )
        return await call_next(request)

    def _check_model(name: str) -> None:
        if name != model_name:
            served = ", ".join(repr(n) for n in [model_name, *search_models])
            raise APIError(
                404,
                f"model {name!r} does not exist; this server serves {served}",
                param="model",
                code="model_not_found",
            )

    def _card(name: str) -> dict[str, Any]:
        card = {"id": name, "object": "model", "created": created, "owned_by": "openberry"}
        if name in search_models:
            card["parent"] = model_name
        return card

    def _locked(fn: Callable[..., T], *args: Any) -> T:
        with lock:
            return fn(*args)

    async def _generate(prompts: list[str], params: SamplingParams) -> list[list[Generation]]:
        try:
            return await run_in_threadpool(_locked, policy.generate, prompts, params)
        except (ModelError, ValueError) as exc:
            raise APIError(400, f"generation failed: {exc}") from exc

    async def _top(
        pairs: list[tuple[str, Generation]], k: int, param: str = "logprobs"
    ) -> list[list[dict[str, float]]]:
        """The k most likely tokens at each generated token's position, per generation."""
        if not k or not pairs:
            return [[] for _ in pairs]
        fn = _extra(policy, "top_logprobs", param)
        if any(g.num_tokens and not g.token_ids for _, g in pairs):
            raise APIError(
                400,
                f"{param} > 0 needs token ids, which this model does not return",
                param=param,
                code="unsupported_parameter",
            )
        prompts = [p for p, _ in pairs]
        return await run_in_threadpool(_locked, fn, prompts, [g.token_ids for _, g in pairs], k)

    async def _search(
        req: CompletionRequest | ChatRequest, method: str, question: str
    ) -> tuple[dict[str, Any], str, dict[str, int]]:
        """Run `method` on `question` for a search-model request: (openberry field, text, usage)."""
        if req.n is not None and req.n != 1:
            raise _unsupported("n", "search models return one choice (n must be 1)")
        if req.stream:
            raise _unsupported("stream", "search models do not stream")
        if isinstance(req, CompletionRequest):
            if req.logprobs is not None:
                raise _unsupported("logprobs", "search models do not return logprobs")
            if req.echo:
                raise _unsupported("echo", "search models do not echo the prompt")
        elif req.logprobs or req.top_logprobs:
            param = "logprobs" if req.logprobs else "top_logprobs"
            raise _unsupported(param, "search models do not return logprobs")
        rollouts = _search_rollouts(req.rollouts, search_rollouts)
        overrides = _search_overrides(req.search_config)
        try:
            search = make_search(method, rollouts, overrides)
        except SearchError as exc:
            raise APIError(
                400, str(exc), param="search_config", code="invalid_search_config"
            ) from exc
        seed = 0 if req.seed is None else req.seed
        problem = Problem(id=PROBLEM_ID, question=question, source="api")

        def work() -> Any:
            with lock:
                return run_search(search, [problem], policy, seed=seed)[0]

        try:
            result = await run_in_threadpool(work)
        except (ModelError, ValueError) as exc:
            raise APIError(400, f"search failed: {exc}") from exc
        except SearchError as exc:
            logger.exception("search %s failed", method)
            raise APIError(500, f"search failed: {exc}", type="server_error") from exc
        s = result.stats
        logger.info(
            "search %s: %d rollouts, %d nodes, %d generated tokens, %.2f s",
            method,
            rollouts,
            len(result.tree),
            s.generated_tokens,
            s.wall_time,
        )
        summary = search_summary(
            result.tree,
            result.answer,
            method,
            search.config,  # type: ignore[attr-defined]
            rollouts=rollouts,
            seed=seed,
        )
        usage = {
            "prompt_tokens": s.prompt_tokens,
            "completion_tokens": s.generated_tokens,
            "total_tokens": s.prompt_tokens + s.generated_tokens,
        }
        return summary, completion_text(result.tree, method), usage

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [_card(n) for n in [model_name, *search_models]]}

    @app.get("/v1/models/{name:path}")
    async def get_model(name: str) -> dict[str, Any]:
        if name not in search_models:
            _check_model(name)
        return _card(name)

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest) -> Any:
        if req.model in search_models:
            if isinstance(req.prompt, list) and len(req.prompt) != 1:
                raise _unsupported("prompt", "search models take one prompt per request")
            question = req.prompt if isinstance(req.prompt, str) else req.prompt[0]
            summary, text, usage = await _search(req, search_models[req.model], question)
            choice = {
                "index": 0,
                "text": text,
                "logprobs": None,
                "finish_reason": "stop",
                "stop_reason": None,
            }
            return {
                "id": f"cmpl-{uuid.uuid4().hex}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": req.model,
                "choices": [choice],
                "usage": usage,
                "openberry": summary,
            }
        _check_model(req.model)
        prompts = [req.prompt] if isinstance(req.prompt, str) else list(req.prompt)
        params = req.sampling(COMPLETION_DEFAULT_MAX_TOKENS)
        gens = await _generate(prompts, params)
        rid, now = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        k = req.logprobs or 0
        echoed: list[list[tuple[str, int, float | None, dict[str, float] | None]]]
        echoed = [[] for _ in prompts]
        if req.echo and req.logprobs is not None:
            fn = _extra(policy, "prompt_logprobs", "echo")
            echoed = await run_in_threadpool(_locked, fn, prompts, k)
        tops = await _top([(p, g) for p, row in zip(prompts, gens, strict=True) for g in row], k)
        choices = []
        for p, (prompt, row) in enumerate(zip(prompts, gens, strict=True)):
            for j, g in enumerate(row):
                lp = None
                if req.logprobs is not None:
                    values = _require_logprobs(g)
                    tokens = _token_strings(policy, g)
                    lp = {
                        "tokens": [e[0] for e in echoed[p]] + tokens,
                        "token_logprobs": [e[2] for e in echoed[p]] + list(values),
                        "top_logprobs": None,
                        "text_offset": [e[1] for e in echoed[p]] + _offsets(len(prompt), tokens),
                    }
                    if k:
                        lp["top_logprobs"] = [e[3] for e in echoed[p]] + tops[p * params.n + j]
                choices.append(
                    {
                        "index": p * params.n + j,
                        "text": (prompt if req.echo else "") + g.text,
                        "logprobs": lp,
                        "finish_reason": _FINISH[g.finish_reason],
                        "stop_reason": _stop_reason(g, params),
                    }
                )
        usage = _usage(gens)
        head = {"id": rid, "object": "text_completion", "created": now, "model": model_name}
        if not req.stream:
            return {**head, "choices": choices, "usage": usage}

        def events() -> Iterator[str]:
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
            if req.include_usage:
                yield _sse({**head, "choices": [], "usage": usage})
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatRequest) -> Any:
        if req.model in search_models:
            users = [m for m in req.messages if m.role == "user"]
            if not users:
                raise APIError(
                    400, "search models need a user message (the problem)", param="messages"
                )
            summary, text, usage = await _search(req, search_models[req.model], users[-1].text())
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": "stop",
                "stop_reason": None,
            }
            return {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": req.model,
                "choices": [choice],
                "usage": usage,
                "openberry": summary,
            }
        _check_model(req.model)
        messages = [{"role": m.role, "content": m.text()} for m in req.messages]
        prompt = render_chat(policy, messages)
        params = req.sampling(CHAT_DEFAULT_MAX_TOKENS, req.max_completion_tokens)
        gens = await _generate([prompt], params)
        rid, now = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        choices = []
        for j, g in enumerate(gens[0]):
            lp = None
            if req.logprobs:
                values = _require_logprobs(g)
                tokens = _token_strings(policy, g)
                tops = [{} for _ in tokens]
                if req.top_logprobs:
                    (tops,) = await _top([(prompt, g)], req.top_logprobs, "top_logprobs")
                lp = {
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
            choices.append(
                {
                    "index": j,
                    "message": {"role": "assistant", "content": g.text},
                    "logprobs": lp,
                    "finish_reason": _FINISH[g.finish_reason],
                    "stop_reason": _stop_reason(g, params),
                }
            )
        usage = _usage(gens)
        head = {"id": rid, "created": now, "model": model_name}
        if not req.stream:
            return {**head, "object": "chat.completion", "choices": choices, "usage": usage}
        head = {**head, "object": "chat.completion.chunk"}

        def events() -> Iterator[str]:
            for c in choices:
                first = {"index": c["index"], "delta": {"role": "assistant", "content": ""}}
                yield _sse(
                    {**head, "choices": [{**first, "logprobs": None, "finish_reason": None}]}
                )
                for piece in _pieces(c["message"]["content"]):
                    delta = {"index": c["index"], "delta": {"content": piece}}
                    yield _sse(
                        {**head, "choices": [{**delta, "logprobs": None, "finish_reason": None}]}
                    )
                end = {
                    "index": c["index"],
                    "delta": {},
                    "logprobs": c["logprobs"],
                    "finish_reason": c["finish_reason"],
                }
                yield _sse({**head, "choices": [end]})
            if req.include_usage:
                yield _sse({**head, "choices": [], "usage": usage})
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app

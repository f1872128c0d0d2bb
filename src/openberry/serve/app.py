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
- Concurrency: every use of the model is a job of one scheduler thread
  (`openberry.serve.scheduler`), which steps all requests in flight together: requests that
  can share a backend call share it, and a new request joins at the next backend call instead
  of waiting for a whole search (plain requests first, then the longest-waiting call). At most
  ``max_active`` requests are stepped together (1: one at a time), at most ``max_queue`` are in
  flight or waiting; past that a request gets 503 with ``Retry-After``. A request whose client
  disconnects is cancelled (no further model call is made for it). At temperature 0 answers
  are the same as serving one request at a time; sampled answers depend on what shared their
  call, except for a plain request with its own ``seed``, which runs alone.
- Limits (`openberry.serve.limits`): body size (413), prompt length against the model's
  context (400 ``context_length_exceeded``; ``max_tokens`` is cut to the room the prompt leaves),
  tokens per request (400 ``request_too_large``), every ``search_config`` value range-checked
  (400 naming ``search_config.<field>``), empty prompts (400). An unexpected fault is a logged
  500 sent as a normal response: the kept-alive connection stays usable.
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
- the search is a job of the scheduler: its model calls share batches with the other requests
  in flight, it may generate at most the server's per-request token budget (past it, a 400),
  and it stops when its client goes away.

Code: `create_app` builds a `openberry.serve.state.ServerState` (policy, scheduler, limits,
served names, API key), keeps it on ``app.state.server`` and includes `openberry.serve.routes.router`, whose
handlers read it; request bodies and `APIError` are in `openberry.serve.schema`, response bodies
and streams in `openberry.serve.responses`, search-model requests in
`openberry.serve.search_requests`.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from openberry.formats.profiles import AUTO, PromptChoice
from openberry.models.base import Policy
from openberry.search.registry import DEFAULT_ROLLOUTS
from openberry.serve.limits import BodyLimit, CatchAll, ServeLimits
from openberry.serve.responses import STREAM_PIECE_CHARS
from openberry.serve.routes import render_chat, router
from openberry.serve.schema import APIError, error_response
from openberry.serve.search_models import MAX_SEARCH_ROLLOUTS
from openberry.serve.state import ClientGone, ServerState

__all__ = [
    "MAX_SEARCH_ROLLOUTS",
    "STREAM_PIECE_CHARS",
    "APIError",
    "create_app",
    "render_chat",
]

logger = logging.getLogger(__name__)


def create_app(
    policy: Policy,
    *,
    model_name: str,
    api_key: str | None = None,
    search_methods: bool | Iterable[str] = True,
    search_rollouts: int = DEFAULT_ROLLOUTS,
    roles: Mapping[str, Policy] | None = None,
    max_active: int = 64,
    max_queue: int = 256,
    limits: ServeLimits | None = None,
    prompts: PromptChoice = AUTO,
) -> FastAPI:
    """Build the OpenAI-compatible app serving `policy` (behaviour: module docstring).

    Args:
        policy: the model to serve.
        model_name: the name clients must pass as ``model`` (listed by ``/v1/models``).
        api_key: when set, every ``/v1`` request needs ``Authorization: Bearer <api_key>``.
        search_methods: serve the search methods as models ``berry-<method>``: True for all of
            `openberry.search.METHODS`, False for none, or the method names to serve.
        search_rollouts: the search budget of a request that names no ``rollouts``.
        roles: separate models for the ``judge`` and ``value`` roles of served searches
            (default: the served policy plays them).
        max_active: most requests stepped together by the scheduler (1: one at a time).
        max_queue: most requests in flight or waiting; more get a 503 with ``Retry-After``.
        limits: per-request limits (`openberry.serve.limits.ServeLimits`; the context is read
            from the policy's model config when not given).
        prompts: the role prompts of served searches (`openberry.formats.profiles`): ``auto``
            (``paper`` when the policy wraps prompts in its chat template, else ``tiny``), a
            built-in name, or a profile.

    Returns:
        The FastAPI app (run it with uvicorn).

    Raises:
        ValueError: an unknown method in `search_methods`, or `search_rollouts` out of range.
    """
    state = ServerState.build(
        policy,
        model_name=model_name,
        api_key=api_key,
        search_methods=search_methods,
        search_rollouts=search_rollouts,
        roles=roles,
        max_active=max_active,
        max_queue=max_queue,
        limits=limits,
        prompts=prompts,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(
        title="openberry", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.server = state
    if getattr(policy, "use_chat_template", False):
        logger.warning(
            "the served policy applies its own chat template to every prompt; "
            "/v1/chat/completions will wrap an already rendered chat"
        )
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientGone, _client_gone)
    app.add_middleware(BodyLimit, limit=state.limits.max_body_bytes)
    app.add_middleware(_Auth, expected=state.auth_header)
    app.add_middleware(CatchAll)
    app.include_router(router)
    return app


async def _client_gone(request: Request, exc: ClientGone) -> Response:
    """Nobody is listening: an empty 499 (nginx's "client closed request"), never sent."""
    return Response(status_code=499)


async def _api_error(request: Request, exc: APIError) -> JSONResponse:
    return exc.response()


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A 400 naming the first invalid field (and how many more there are)."""
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
    return error_response(400, message, "invalid_request_error", param, None)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = "not_found" if exc.status_code == 404 else None
    return error_response(exc.status_code, str(exc.detail), "invalid_request_error", None, code)


class _Auth:
    """ASGI middleware: a 401 for a ``/v1`` request without the server's API key (compared in
    constant time; the key is never logged). Plain ASGI, so the handler still sees its client
    disconnect (``BaseHTTPMiddleware`` hides it)."""

    def __init__(self, app: Any, expected: bytes | None) -> None:
        self.app = app
        self.expected = expected

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self._denied(scope):
            response = error_response(
                401,
                "missing or invalid API key (send 'Authorization: Bearer <key>')",
                "authentication_error",
                None,
                "invalid_api_key",
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _denied(self, scope: dict) -> bool:
        if self.expected is None or scope["type"] != "http" or not scope["path"].startswith("/v1"):
            return False
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        return not hmac.compare_digest(given, self.expected)

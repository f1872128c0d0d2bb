"""Requests to the search models (``berry-<method>``): check the request, run the search as a job
of the server's scheduler, answer with `openberry.serve.responses.search_response`.

The behaviour (which fields count, which are refused) is in the module docstring of
`openberry.serve.app`; the served names and the answer text are `openberry.serve.search_models`.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request

from openberry.records import Problem
from openberry.search import SearchError, make_search
from openberry.serve.limits import check_search_config
from openberry.serve.responses import search_response
from openberry.serve.schema import APIError, ChatRequest, CompletionRequest, unsupported
from openberry.serve.search_models import (
    MAX_SEARCH_ROLLOUTS,
    PROBLEM_ID,
    completion_text,
    search_summary,
)
from openberry.serve.state import ServerState

__all__ = ["answer_with_search"]

logger = logging.getLogger(__name__)


async def answer_with_search(
    state: ServerState, req: CompletionRequest | ChatRequest, request: Request | None = None
) -> dict[str, Any]:
    """The response to a request naming a search model: run its method on the request's
    question (the prompt, or the last user message) and answer with the search's text."""
    question = _question(req)
    method = state.search_models[req.model]
    _check_fields(req)
    rollouts = _rollouts(req.rollouts, state.search_rollouts)
    overrides = _overrides(req.search_config)
    try:
        search = make_search(method, rollouts, overrides, state.prompts)
    except SearchError as exc:
        raise APIError(400, str(exc), param="search_config", code="invalid_search_config") from exc
    check_search_config(search.config, state.limits)
    seed = 0 if req.seed is None else req.seed
    problem = Problem(id=PROBLEM_ID, question=question, source="api")
    result = await state.search(search, problem, seed, request)
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
        result.tree, result.answer, method, result.tree.info["config"], rollouts=rollouts, seed=seed
    )
    usage = {
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.generated_tokens,
        "total_tokens": s.prompt_tokens + s.generated_tokens,
    }
    text = completion_text(result.tree, method)
    return search_response(req.model, text, summary, usage, chat=isinstance(req, ChatRequest))


def _question(req: CompletionRequest | ChatRequest) -> str:
    """The problem: the one prompt of a completion, the last user message of a chat."""
    if isinstance(req, CompletionRequest):
        if isinstance(req.prompt, list) and len(req.prompt) != 1:
            raise unsupported("prompt", "search models take one prompt per request")
        return req.prompt if isinstance(req.prompt, str) else req.prompt[0]
    users = [m for m in req.messages if m.role == "user"]
    if not users:
        raise APIError(400, "search models need a user message (the problem)", param="messages")
    return users[-1].text()


def _check_fields(req: CompletionRequest | ChatRequest) -> None:
    """Refuse the fields a search cannot honour: ``n > 1``, streaming, logprobs, echo."""
    if req.n is not None and req.n != 1:
        raise unsupported("n", "search models return one choice (n must be 1)")
    if req.stream:
        raise unsupported("stream", "search models do not stream")
    if isinstance(req, CompletionRequest):
        if req.logprobs is not None:
            raise unsupported("logprobs", "search models do not return logprobs")
        if req.echo:
            raise unsupported("echo", "search models do not echo the prompt")
    elif req.logprobs or req.top_logprobs:
        param = "logprobs" if req.logprobs else "top_logprobs"
        raise unsupported(param, "search models do not return logprobs")


def _rollouts(value: Any, default: int) -> int:
    """The ``rollouts`` field of a search-model request, checked."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise APIError(400, "rollouts must be an integer", param="rollouts")
    if not 1 <= value <= MAX_SEARCH_ROLLOUTS:
        raise APIError(400, f"rollouts must be in 1..{MAX_SEARCH_ROLLOUTS}", param="rollouts")
    return value


def _overrides(value: Any) -> dict[str, str]:
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

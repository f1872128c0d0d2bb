"""The routes of the OpenAI-compatible API: ``/v1/models``, ``/v1/completions`` and
``/v1/chat/completions`` (behaviour: module docstring of `openberry.serve.app`).

Handlers are module-level functions on `router`; each reads the app's `ServerState` (kept on
``app.state.server`` by `openberry.serve.app.create_app`) through the `State` dependency. A
request naming a search model goes to `openberry.serve.search_requests.answer_with_search`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from openberry.models.base import SamplingParams
from openberry.records import Generation
from openberry.serve.responses import (
    FINISH,
    EchoedToken,
    chat_events,
    chat_logprobs,
    choice,
    completion_events,
    completion_logprobs,
    new_id,
    require_logprobs,
    stop_reason,
    token_strings,
    usage,
)
from openberry.serve.schema import (
    CHAT_DEFAULT_MAX_TOKENS,
    COMPLETION_DEFAULT_MAX_TOKENS,
    ChatRequest,
    CompletionRequest,
)
from openberry.serve.search_requests import answer_with_search
from openberry.serve.state import ServerState

__all__ = ["State", "render_chat", "router", "server_state"]

router = APIRouter()


async def server_state(request: Request) -> ServerState:
    """The `ServerState` of the app serving `request`."""
    return request.app.state.server


State = Annotated[ServerState, Depends(server_state)]
"""A handler parameter of this type receives the app's `ServerState`."""


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


@router.get("/v1/models")
async def list_models(state: State) -> dict[str, Any]:
    """``GET /v1/models``: the plain model, then the search models."""
    return {"object": "list", "data": state.cards()}


@router.get("/v1/models/{name:path}")
async def get_model(name: str, state: State) -> dict[str, Any]:
    """``GET /v1/models/{name}``: one model card, or a 404."""
    if name not in state.search_models:
        state.check_model(name)
    return state.card(name)


@router.post("/v1/completions")
async def completions(req: CompletionRequest, state: State, request: Request) -> Any:
    """``POST /v1/completions``: sample the plain model, or run a search model."""
    if req.model in state.search_models:
        return await answer_with_search(state, req, request)
    state.check_model(req.model)
    prompts = [req.prompt] if isinstance(req.prompt, str) else list(req.prompt)
    params = req.sampling(COMPLETION_DEFAULT_MAX_TOKENS)
    gens = await state.generate(prompts, params, request)
    head = {
        "id": new_id("cmpl-"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": state.model_name,
    }
    choices = await _completion_choices(state, req, prompts, gens, params, request)
    counts = usage(gens)
    if not req.stream:
        return {**head, "choices": choices, "usage": counts}
    events = completion_events(head, choices, counts, req.include_usage)
    return StreamingResponse(events, media_type="text/event-stream")


async def _completion_choices(
    state: ServerState,
    req: CompletionRequest,
    prompts: list[str],
    gens: list[list[Generation]],
    params: SamplingParams,
    request: Request,
) -> list[dict[str, Any]]:
    """The choices of a completion: ``n`` per prompt, prompt by prompt."""
    k = req.logprobs or 0
    echoed: list[list[EchoedToken]] = [[] for _ in prompts]
    if req.echo and req.logprobs is not None:
        echoed = await state.prompt_logprobs(prompts, k, request)
    pairs = [(p, g) for p, row in zip(prompts, gens, strict=True) for g in row]
    tops = await state.top_logprobs(pairs, k, request=request)
    choices = []
    for p, (prompt, row) in enumerate(zip(prompts, gens, strict=True)):
        for j, g in enumerate(row):
            index = p * params.n + j
            lp = None
            if req.logprobs is not None:
                top = tops[index] if k else None
                lp = completion_logprobs(state.policy, g, echoed[p], len(prompt), top)
            text = (prompt if req.echo else "") + g.text
            reasons = FINISH[g.finish_reason], stop_reason(g, params)
            choices.append(choice(index, text, lp, *reasons, chat=False))
    return choices


@router.post("/v1/chat/completions")
async def chat_completions(req: ChatRequest, state: State, request: Request) -> Any:
    """``POST /v1/chat/completions``: sample the plain model on the rendered chat, or run a
    search model on the last user message."""
    if req.model in state.search_models:
        return await answer_with_search(state, req, request)
    state.check_model(req.model)
    messages = [{"role": m.role, "content": m.text()} for m in req.messages]
    state.limits.check_chars([m["content"] for m in messages], "messages")
    prompt = render_chat(state.policy, messages)
    params = req.sampling(CHAT_DEFAULT_MAX_TOKENS, req.max_completion_tokens)
    gens = await state.generate([prompt], params, request, param="messages")
    head = {"id": new_id("chatcmpl-"), "created": int(time.time()), "model": state.model_name}
    choices = []
    for j, g in enumerate(gens[0]):
        lp = await _chat_logprobs(state, req, prompt, g, request) if req.logprobs else None
        reasons = FINISH[g.finish_reason], stop_reason(g, params)
        choices.append(choice(j, g.text, lp, *reasons, chat=True))
    counts = usage(gens)
    if not req.stream:
        return {**head, "object": "chat.completion", "choices": choices, "usage": counts}
    head = {**head, "object": "chat.completion.chunk"}
    events = chat_events(head, choices, counts, req.include_usage)
    return StreamingResponse(events, media_type="text/event-stream")


async def _chat_logprobs(
    state: ServerState, req: ChatRequest, prompt: str, gen: Generation, request: Request
) -> dict[str, Any]:
    """A chat choice's logprobs, with the top ``top_logprobs`` tokens at each position."""
    values = require_logprobs(gen)
    tokens = token_strings(state.policy, gen)
    tops: list[dict[str, float]] = [{} for _ in tokens]
    if req.top_logprobs:
        (tops,) = await state.top_logprobs(
            [(prompt, gen)], req.top_logprobs, "top_logprobs", request
        )
    return chat_logprobs(tokens, values, tops)

"""What one served app shares between its requests: the policy, the scheduler, the limits and
the served names.

`ServerState` is built once by `openberry.serve.app.create_app` and kept on ``app.state.server``;
the routes (`openberry.serve.routes`) read it from there. Every use of the model (generation, the
extra logprob passes, whole searches) is a job of the `openberry.serve.scheduler.Scheduler`, whose
one thread steps all requests in flight together; a handler awaits its job's future and cancels
the job when its client goes away.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.requests import Request

from openberry.formats.profiles import (
    AUTO,
    TINY,
    PromptChoice,
    PromptProfile,
    choose_profile,
    has_chat_template,
    renders_chat,
)
from openberry.models.base import ModelError, Policy, SamplingParams
from openberry.records import Generation, Problem
from openberry.search import METHODS
from openberry.search.engine import Generate, SearchError, SearchResult, problem_rng, search_result
from openberry.serve.limits import ServeLimits, context_length
from openberry.serve.scheduler import (
    Busy,
    Call,
    Cancelled,
    CountTokens,
    Job,
    Scheduler,
    TokenBudgetExceeded,
)
from openberry.serve.schema import APIError
from openberry.serve.search_models import MAX_SEARCH_ROLLOUTS, search_model_names

__all__ = ["ClientGone", "ServerState", "policy_method"]

logger = logging.getLogger(__name__)

DISCONNECT_POLL_S = 0.25
"""How often a waiting handler checks whether its client went away."""
RETRY_AFTER_S = 1
"""The ``Retry-After`` of a 503 answered when the queue is full."""


class ClientGone(Exception):
    """The client closed its connection before its answer was ready (nothing is sent)."""


@dataclass(frozen=True)
class ServerState:
    """The served policy and what every request needs besides its body."""

    policy: Policy
    """The model answering every request."""
    model_name: str
    """The name clients pass as ``model`` for plain sampling."""
    search_models: Mapping[str, str]
    """Served search-model name -> search method (``{"berry-mctsr": "mctsr"}``)."""
    search_rollouts: int
    """The search budget of a request that names no ``rollouts``."""
    auth_header: bytes | None = field(repr=False)
    """The exact ``Authorization`` header every ``/v1`` request must send, or None for no key
    (left out of the repr: the key is never logged)."""
    created: int = field(default_factory=lambda: int(time.time()))
    """The ``created`` time of every model card."""
    roles: Mapping[str, Policy] = field(default_factory=dict)
    """Separate models for the ``judge`` and ``value`` roles of searches (the policy plays the
    roles left out)."""
    scheduler: Scheduler | None = field(default=None, repr=False, compare=False)
    """Steps every request's model calls (built by `build`)."""
    limits: ServeLimits = field(default_factory=ServeLimits)
    """What one request may ask (`openberry.serve.limits`)."""
    prompts: PromptProfile = TINY
    """The role prompts of served searches (``--prompts``, `openberry.formats.profiles`)."""

    @classmethod
    def build(
        cls,
        policy: Policy,
        *,
        model_name: str,
        api_key: str | None,
        search_methods: bool | Iterable[str],
        search_rollouts: int,
        roles: Mapping[str, Policy] | None = None,
        max_active: int = 64,
        max_queue: int = 256,
        limits: ServeLimits | None = None,
        prompts: PromptChoice = AUTO,
    ) -> ServerState:
        """The state for `openberry.serve.app.create_app`'s arguments (see there).

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
            logger.warning(
                "search model %r is shadowed by the served model of that name", model_name
            )
        unknown = set(roles or {}) - {"judge", "value"}
        if unknown:
            raise ValueError(f"unknown model role(s) {sorted(unknown)}; roles: judge, value")
        limits = limits or ServeLimits()
        if limits.context is None:
            limits = replace(limits, context=context_length(policy))
        models = {"policy": policy, **(roles or {})}
        return cls(
            policy=policy,
            roles=dict(roles or {}),
            model_name=model_name,
            search_models=search_models,
            search_rollouts=search_rollouts,
            auth_header=f"Bearer {api_key}".encode() if api_key else None,
            scheduler=Scheduler(models, max_active=max_active, max_queue=max_queue),
            limits=limits,
            prompts=choose_profile(prompts, renders_chat(policy) or has_chat_template(policy)),
        )

    def search_models_table(self) -> dict[str, Policy]:
        """The models a served search runs with: the policy and the separate roles."""
        return {"policy": self.policy, **self.roles}

    # ------------------------------------------------------------------ served names

    def check_model(self, name: str) -> None:
        """Raise a 404 unless `name` is the plain served model."""
        if name != self.model_name:
            served = ", ".join(repr(n) for n in [self.model_name, *self.search_models])
            raise APIError(
                404,
                f"model {name!r} does not exist; this server serves {served}",
                param="model",
                code="model_not_found",
            )

    def cards(self) -> list[dict[str, Any]]:
        """The model cards of ``/v1/models``: the plain model, then the search models."""
        return [self.card(n) for n in [self.model_name, *self.search_models]]

    def card(self, name: str) -> dict[str, Any]:
        """The model card of `name` (search models name the plain model as ``parent``)."""
        card = {"id": name, "object": "model", "created": self.created, "owned_by": "openberry"}
        if name in self.search_models:
            card["parent"] = self.model_name
        return card

    # ------------------------------------------------------------------ model calls

    def close(self) -> None:
        """Stop the scheduler (requests still in flight fail)."""
        if self.scheduler is not None:
            self.scheduler.close()

    async def generate(
        self,
        prompts: list[str],
        params: SamplingParams,
        request: Request | None = None,
        param: str = "prompt",
    ) -> list[list[Generation]]:
        """Sample the policy: checked against the limits, batched with the other requests in
        flight; a model error is a 400."""
        self.limits.check_chars(prompts, param)
        self.limits.check_request_tokens(
            len(prompts), params.n, params.max_new_tokens, "max_tokens"
        )
        job = self._submit(_plain_job(self.policy, prompts, params, self.limits, param), True)
        try:
            return await self._wait(job, request)
        except (ModelError, ValueError) as exc:
            raise APIError(400, f"generation failed: {exc}") from exc

    async def search(
        self, search: Any, problem: Problem, seed: int, request: Request | None = None
    ) -> SearchResult:
        """Run a search (from `openberry.search.make_search`) on one problem, batched with the
        other requests in flight, within the request's token budget. A model error or a search
        over its budget is a 400, a failure of the search itself a 500."""
        self.limits.check_chars([problem.question], "prompt")
        job = self._submit(
            search(problem, problem_rng(seed, problem)),
            False,
            token_budget=self.limits.request_tokens,
            seed=seed,
        )
        try:
            tree, stats = await self._wait(job, request, with_stats=True)
        except (ModelError, ValueError) as exc:
            raise APIError(400, f"search failed: {exc}") from exc
        except SearchError as exc:
            logger.exception("search failed")
            raise APIError(500, f"search failed: {exc}", type="server_error") from exc
        return search_result(
            problem, tree, stats, seed=seed, config=getattr(search, "config", None)
        )

    async def prompt_logprobs(
        self, prompts: list[str], k: int, request: Request | None = None
    ) -> list[list[tuple[str, int, float | None, dict[str, float] | None]]]:
        """Each prompt's tokens as ``(text, offset, log p, top k)`` (for ``echo``), or a 400 when
        the policy has no ``prompt_logprobs``."""
        fn = policy_method(self.policy, "prompt_logprobs", "echo")
        return await self._call(fn, (prompts, k), request)

    async def top_logprobs(
        self,
        pairs: list[tuple[str, Generation]],
        k: int,
        param: str = "logprobs",
        request: Request | None = None,
    ) -> list[list[dict[str, float]]]:
        """The k most likely tokens at each generated token's position, per (prompt, generation)
        pair; empty lists when ``k == 0``. A 400 (naming `param`) when the policy cannot."""
        if not k or not pairs:
            return [[] for _ in pairs]
        fn = policy_method(self.policy, "top_logprobs", param)
        if any(g.num_tokens and not g.token_ids for _, g in pairs):
            raise APIError(
                400,
                f"{param} > 0 needs token ids, which this model does not return",
                param=param,
                code="unsupported_parameter",
            )
        prompts = [p for p, _ in pairs]
        token_ids = [g.token_ids for _, g in pairs]
        return await self._call(fn, (prompts, token_ids, k), request)

    # ------------------------------------------------------------------ jobs

    async def _call(self, fn: Any, args: tuple, request: Request | None) -> Any:
        """``fn(*args)`` run alone on the scheduler thread."""
        return await self._wait(self._submit(_one_call(fn, args), True), request)

    def _submit(
        self,
        gen: Any,
        interactive: bool,
        token_budget: int | None = None,
        seed: int | None = None,
    ) -> Job:
        if self.scheduler is None:
            raise RuntimeError("ServerState has no scheduler (build it with ServerState.build)")
        try:
            return self.scheduler.submit(
                gen, interactive=interactive, token_budget=token_budget, seed=seed
            )
        except Busy as exc:
            raise APIError(
                503,
                f"server busy: {exc}; retry later",
                type="server_error",
                code="server_busy",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            ) from exc

    async def _wait(self, job: Job, request: Request | None, with_stats: bool = False) -> Any:
        """The job's result, checking every `DISCONNECT_POLL_S` whether the client went away
        (then the job is cancelled and `ClientGone` raised)."""
        future = asyncio.wrap_future(job.future)
        try:
            while not future.done():
                await asyncio.wait({future}, timeout=DISCONNECT_POLL_S)
                if not future.done() and request is not None and await request.is_disconnected():
                    job.cancel()
                    raise ClientGone
            result, stats = future.result()
        except asyncio.CancelledError:
            job.cancel()
            raise
        except Cancelled as exc:
            raise ClientGone from exc
        except TokenBudgetExceeded as exc:
            raise APIError(400, str(exc), code="request_too_large") from exc
        return (result, stats) if with_stats else result


def _plain_job(
    policy: Policy, prompts: list[str], params: SamplingParams, limits: ServeLimits, param: str
) -> Any:
    """A plain generation as a scheduler job: prompts counted and the completion cut to the
    context (when the policy counts tokens and the context is known), then one `Generate` that
    shares its call with others, or, for a sampled request with its own seed, a call alone."""
    counter = getattr(policy, "count_tokens", None)
    if callable(counter) and limits.context is not None:
        counts = yield CountTokens(tuple(prompts))
        room = limits.room(list(counts), params.max_new_tokens, param)
        params = replace(params, max_new_tokens=room)
    if params.seed is not None and not params.greedy:
        return (yield Call(policy.generate, (prompts, params)))
    return (yield Generate(tuple(prompts), replace(params, seed=None)))


def _one_call(fn: Any, args: tuple) -> Any:
    return (yield Call(fn, args))


def policy_method(policy: Any, method: str, param: str) -> Callable[..., Any]:
    """A policy's optional method (``prompt_logprobs``, ``top_logprobs``), or a 400 naming the
    request field `param` that needs it."""
    fn = getattr(policy, method, None)
    if not callable(fn):
        raise APIError(
            400,
            f"{param} is not supported for this model (its policy has no {method})",
            param=param,
            code="unsupported_parameter",
        )
    return fn

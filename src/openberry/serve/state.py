"""What one served app shares between its requests: the policy, its lock and the served names.

`ServerState` is built once by `openberry.serve.app.create_app` and kept on ``app.state.server``;
the routes (`openberry.serve.routes`) read it from there. One lock serialises every use of the
model (generation, the extra logprob passes and whole searches), and each runs in the thread pool
so the event loop stays free.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi.concurrency import run_in_threadpool

from openberry.models.base import ModelError, Policy, SamplingParams
from openberry.records import Generation
from openberry.search import METHODS
from openberry.serve.schema import APIError
from openberry.serve.search_models import MAX_SEARCH_ROLLOUTS, search_model_names

__all__ = ["ServerState", "policy_method"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


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
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    """Held for each use of the model: requests reach it one at a time."""

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
        return cls(
            policy=policy,
            roles=dict(roles or {}),
            model_name=model_name,
            search_models=search_models,
            search_rollouts=search_rollouts,
            auth_header=f"Bearer {api_key}".encode() if api_key else None,
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

    def locked(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` under the model lock (call it from the thread pool)."""
        with self.lock:
            return fn(*args, **kwargs)

    async def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Generation]]:
        """`Policy.generate`, locked, in the thread pool; a model error is a 400."""
        try:
            return await run_in_threadpool(self.locked, self.policy.generate, prompts, params)
        except (ModelError, ValueError) as exc:
            raise APIError(400, f"generation failed: {exc}") from exc

    async def prompt_logprobs(
        self, prompts: list[str], k: int
    ) -> list[list[tuple[str, int, float | None, dict[str, float] | None]]]:
        """Each prompt's tokens as ``(text, offset, log p, top k)`` (for ``echo``), or a 400 when
        the policy has no ``prompt_logprobs``."""
        fn = policy_method(self.policy, "prompt_logprobs", "echo")
        return await run_in_threadpool(self.locked, fn, prompts, k)

    async def top_logprobs(
        self, pairs: list[tuple[str, Generation]], k: int, param: str = "logprobs"
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
        return await run_in_threadpool(self.locked, fn, prompts, token_ids, k)


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

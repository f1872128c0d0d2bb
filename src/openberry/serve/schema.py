"""Request bodies, limits and the error type of the OpenAI-compatible API (`openberry.serve.app`).

Requests are pydantic models that ignore unknown fields; `APIError` is answered with an
OpenAI-style body ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from openberry.models.base import SamplingParams

__all__ = [
    "CHAT_DEFAULT_MAX_TOKENS",
    "COMPLETION_DEFAULT_MAX_TOKENS",
    "MAX_N",
    "MAX_STOP",
    "MAX_TOKENS",
    "APIError",
    "ChatMessage",
    "ChatRequest",
    "CompletionRequest",
    "TextPart",
    "error_response",
    "unsupported",
]

MAX_N = 128
"""Most samples per prompt in one request."""
MAX_TOKENS = 32768
"""Largest accepted ``max_tokens``."""
MAX_STOP = 4
"""Most stop strings per request (as in the OpenAI API)."""
COMPLETION_DEFAULT_MAX_TOKENS = 16
"""``max_tokens`` default of ``/v1/completions`` (the OpenAI default)."""
CHAT_DEFAULT_MAX_TOKENS = 512
"""``max_tokens`` default of ``/v1/chat/completions``."""


class APIError(Exception):
    """An error answered with an OpenAI-style body.

    Args:
        status: HTTP status code.
        message: human-readable message.
        type: OpenAI error type (``invalid_request_error``, ``authentication_error``...).
        param: the request field at fault, if any.
        code: a short machine-readable code, if any.
        headers: extra response headers (``Retry-After``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        """The JSON response for this error."""
        response = error_response(self.status, self.message, self.type, self.param, self.code)
        response.headers.update(self.headers)
        return response


def error_response(
    status: int, message: str, type: str, param: str | None = None, code: str | None = None
) -> JSONResponse:
    """An OpenAI-style error response: ``{"error": {"message", "type", "param", "code"}}``."""
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return JSONResponse(status_code=status, content=body)


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
        if any(not p for p in ([value] if isinstance(value, str) else value)):
            raise ValueError("prompts must not be empty")
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


def unsupported(param: str, message: str) -> APIError:
    """A 400 for a request field this model does not support."""
    return APIError(400, message, param=param, code="unsupported_parameter")

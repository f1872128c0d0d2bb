"""Frozen records that cross layers: problems, labelled examples and generations.

The one rule these records enforce by construction is the oracle boundary: a `Problem` is what
search and generation see, and it has no field for the reference answer. The reference lives in
`Example`, next to the problem, so grading and training can reach it while a search function that
is handed `example.problem` cannot (the search issue's leak test relies on this).

Every record converts to and from plain JSON-ready dicts (`to_dict` / `from_dict`); the tree record
and its versioned file schema are in `openberry.tree`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from openberry.errors import BerryError

__all__ = [
    "FINISH_REASONS",
    "Example",
    "FinishReason",
    "Generation",
    "Problem",
    "RecordError",
]

FinishReason = Literal["stop", "length", "eos"]
FINISH_REASONS: tuple[str, ...] = ("stop", "length", "eos")


class RecordError(BerryError, ValueError):
    """A dict could not be turned into a record: a field is missing or has the wrong type."""


def _require(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise RecordError(f"{where}: missing field {key!r}")
    value = data[key]
    kinds = _as_tuple(kind)
    # bool is an int subclass: only accept it where bool is asked for.
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise RecordError(
            f"{where}: field {key!r} must be {_kind_name(kind)}, got {type(value).__name__}"
        )
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return " or ".join("null" if k is type(None) else k.__name__ for k in _as_tuple(kind))


@dataclass(frozen=True)
class Problem:
    """A maths problem as search and generation see it. It never carries the reference answer."""

    id: str
    """Stable identifier, unique within its dataset (e.g. ``math500/test/precalculus/807.json``)."""
    question: str
    """The problem statement given to the model."""
    source: str = ""
    """Dataset name the problem came from (``gsm8k``, ``math500``, ``arithmetic``, a file path...)."""
    meta: Mapping[str, Any] = field(default_factory=dict)
    """Answer-free metadata (level, subject, answer type, unit). Never the solution or answer."""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise RecordError(f"Problem.id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.question, str):
            raise RecordError(f"Problem {self.id}: question must be a string")
        object.__setattr__(self, "meta", dict(self.meta))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "source": self.source,
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Problem:
        where = "problem"
        return cls(
            id=_require(data, "id", str, where),
            question=_require(data, "question", str, where),
            source=data.get("source", "") or "",
            meta=dict(data.get("meta") or {}),
        )


@dataclass(frozen=True)
class Example:
    """A problem paired with its reference. Graders and trainers take this; search takes `.problem`."""

    problem: Problem
    """What the model sees."""
    answer: str | None
    """Reference final answer (a string as the dataset gives it), or None when unlabelled."""
    solution: str | None = None
    """Reference worked solution, when the dataset has one."""

    @property
    def id(self) -> str:
        return self.problem.id

    def to_dict(self) -> dict[str, Any]:
        return {"problem": self.problem.to_dict(), "answer": self.answer, "solution": self.solution}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Example:
        problem = _require(data, "problem", dict, "example")
        return cls(
            problem=Problem.from_dict(problem),
            answer=_require(data, "answer", (str, type(None)), "example"),
            solution=data.get("solution"),
        )


@dataclass(frozen=True)
class Generation:
    """One sampled continuation of a prompt.

    `token_ids`, `logprobs`, `entropies` and `varentropies` are aligned: ``logprobs[i]`` is
    log p(token_ids[i] | prompt, token_ids[:i]), and ``entropies[i]`` / ``varentropies[i]``
    describe the whole next-token distribution that token i was drawn from (at temperature 1).
    A backend that cannot return ids (some servers) leaves them empty and still fills
    `num_tokens`.
    """

    text: str
    """Decoded generated text, without the prompt and without a matched stop string."""
    token_ids: tuple[int, ...] = ()
    """Generated token ids, in order."""
    logprobs: tuple[float, ...] | None = None
    """Per-token log-probabilities of `token_ids`, or None when the backend did not return them."""
    finish_reason: FinishReason = "stop"
    """``stop`` (a stop string matched), ``length`` (max new tokens reached) or ``eos``."""
    num_tokens: int = -1
    """Number of generated tokens; defaults to ``len(token_ids)``."""
    prompt_tokens: int = 0
    """Number of prompt tokens the backend processed for this generation (0 when unknown)."""
    entropies: tuple[float, ...] | None = None
    """Per-token entropy H = -sum_v p(v) log p(v) (nats) of the model's next-token distribution
    at temperature 1 at each generated position, or None when not asked for
    (`SamplingParams.token_stats`) or not available. Servers give an approximation (top-k)."""
    varentropies: tuple[float, ...] | None = None
    """Per-token varentropy sum_v p(v) (log p(v) + H)^2 (the variance of -log p, nats squared)
    of the same distributions as `entropies`, or None."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "token_ids", tuple(int(t) for t in self.token_ids))
        for name in ("logprobs", "entropies", "varentropies"):
            values = getattr(self, name)
            if values is not None:
                object.__setattr__(self, name, tuple(float(x) for x in values))
        if self.num_tokens < 0:
            object.__setattr__(self, "num_tokens", len(self.token_ids))
        if self.finish_reason not in FINISH_REASONS:
            raise RecordError(
                f"Generation.finish_reason must be one of {FINISH_REASONS}, got {self.finish_reason!r}"
            )
        if self.token_ids and self.num_tokens != len(self.token_ids):
            raise RecordError(
                f"Generation.num_tokens={self.num_tokens} but {len(self.token_ids)} token ids given"
            )
        for name in ("logprobs", "entropies", "varentropies"):
            values = getattr(self, name)
            if values is not None and self.token_ids and len(values) != len(self.token_ids):
                raise RecordError(
                    f"Generation has {len(self.token_ids)} token ids but {len(values)} {name}"
                )

    @property
    def sum_logprob(self) -> float:
        """Total log-probability of the generated tokens (NaN when logprobs are unknown)."""
        return math.fsum(self.logprobs) if self.logprobs is not None else math.nan

    @property
    def mean_entropy(self) -> float:
        """Mean of `entropies` over the generated tokens (NaN when unknown or empty)."""
        return _mean(self.entropies)

    @property
    def mean_varentropy(self) -> float:
        """Mean of `varentropies` over the generated tokens (NaN when unknown or empty)."""
        return _mean(self.varentropies)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "token_ids": list(self.token_ids),
            "logprobs": None if self.logprobs is None else list(self.logprobs),
            "finish_reason": self.finish_reason,
            "num_tokens": self.num_tokens,
            "prompt_tokens": self.prompt_tokens,
            "entropies": None if self.entropies is None else list(self.entropies),
            "varentropies": None if self.varentropies is None else list(self.varentropies),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Generation:
        where = "generation"
        return cls(
            text=_require(data, "text", str, where),
            token_ids=tuple(data.get("token_ids") or ()),
            logprobs=_optional_floats(data, "logprobs", where),
            finish_reason=data.get("finish_reason", "stop"),
            num_tokens=int(data.get("num_tokens", -1)),
            prompt_tokens=int(data.get("prompt_tokens", 0)),
            entropies=_optional_floats(data, "entropies", where),
            varentropies=_optional_floats(data, "varentropies", where),
        )


def _optional_floats(data: Mapping[str, Any], key: str, where: str) -> tuple[float, ...] | None:
    """An optional list-of-numbers field (absent or null gives None)."""
    values = data.get(key)
    if values is None:
        return None
    if not isinstance(values, Sequence) or isinstance(values, (str, bytes)):
        raise RecordError(f"{where}: field {key!r} must be a list or null")
    return tuple(values)


def _mean(values: Sequence[float] | None) -> float:
    return math.fsum(values) / len(values) if values else math.nan

"""The policy interface: the only way search, rewards and training talk to a language model.

Every backend (the deterministic fake for tests, Hugging Face transformers, OpenAI-compatible
servers) implements `Policy`. All methods are batched: search sends the pending requests of many
tree nodes and many problems in one call, and a backend is free to run them together.

Three operations cover what the seed systems ask of a model:

- `Policy.generate`: sample continuations (text, token ids, per-token logprobs, finish reason,
  and on request per-token entropy and varentropy of the model's distribution);
- `Policy.score`: per-token log-probabilities of given completions (PPO ratios, priors);
- `Policy.next_token_probs`: probabilities of candidate next tokens (rating tokens for the
  LLaMA-O1 value head, "Yes"/"No" for LLaMA-Berry's pairwise preference reward model).

This module imports only the standard library and openberry records: search may import it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from openberry.errors import BerryError
from openberry.formats.openlongcot import RATING_TOKENS
from openberry.records import Generation

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_PREFIX_CACHE_MB",
    "DEFAULT_REQUEST_TIMEOUT",
    "ModelError",
    "Policy",
    "RewardModel",
    "SamplingParams",
    "entropy_varentropy",
]

DEFAULT_PREFIX_CACHE_MB = 1024.0
"""MiB of keys and values of earlier prompts a local backend keeps for re-use across calls (the
default of `ModelSpec.prefix_cache_mb`, ``--prefix-cache-mb`` and `HFPolicy`)."""

DEFAULT_REQUEST_TIMEOUT = 600.0
"""Seconds a remote backend waits for the answer to one request (long generations take minutes):
the default of `ModelSpec.timeout`, ``--timeout`` and `OpenAIPolicy`."""
DEFAULT_MAX_RETRIES = 2
"""Retries of a failed request (timeouts, connection errors, 429, 5xx) after the first attempt:
the default of `ModelSpec.max_retries`, ``--max-retries`` and `OpenAIPolicy`."""


class ModelError(BerryError, RuntimeError):
    """A model or server could not do what was asked (missing feature, bad settings, no weights)."""


def not_one_token(candidate: str, count: int) -> ModelError:
    """The error for a next-token candidate that encodes to `count` tokens; for the OpenLongCoT
    rating tokens it says which searches need them and what to use instead."""
    msg = f"candidate {candidate!r} is {count} tokens of this model's vocabulary, not one"
    if candidate in RATING_TOKENS.values():
        msg += (
            ": the value head (the `value` scorer, `step_scorer=value` in beam and step-mcts, "
            "meta-mcts) reads the OpenLongCoT rating tokens, which only a model trained on them "
            "(berry-tiny, `berry train value`) has as single tokens. Give such a model as "
            "--value-model, ask the step-value question of a prompt profile that has one "
            "(--prompts paper: P(Yes) of 'Is the next step correct?'; not meta-mcts), "
            "or rank another way: --set scorer=logprob (best-of-n), "
            "--set step_scorer=logprob (beam), or a process reward model "
            "(--value-model M --set step_scorer=prm; docs/search.md)"
        )
    return ModelError(msg)


@dataclass(frozen=True)
class SamplingParams:
    """Settings of one batched generation call."""

    n: int = 1
    """Samples per prompt."""
    max_new_tokens: int = 256
    """Most tokens generated per sample; a sample cut here has finish reason ``length``."""
    temperature: float = 1.0
    """Softmax temperature; 0 means greedy (argmax) decoding."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p."""
    stop: tuple[str, ...] = ()
    """Stop strings: generation of a sample ends when its text contains one; the returned text
    excludes the stop string and the finish reason is ``stop``."""
    seed: int | None = None
    """Seed for sampling; the same seed, prompts and settings give the same samples."""
    token_stats: bool = False
    """Also return per-token entropy and varentropy of the model's distribution (temperature 1)
    at each generated position (`Generation.entropies` / `Generation.varentropies`). Exact on
    local backends; OpenAI-compatible servers give a top-k approximation."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "stop", tuple(self.stop))
        if self.n < 1:
            raise ValueError(f"SamplingParams.n must be >= 1, got {self.n}")
        if self.max_new_tokens < 1:
            raise ValueError(
                f"SamplingParams.max_new_tokens must be >= 1, got {self.max_new_tokens}"
            )
        if self.temperature < 0:
            raise ValueError(f"SamplingParams.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingParams.top_p must be in (0, 1], got {self.top_p}")
        if any(not s for s in self.stop):
            raise ValueError("SamplingParams.stop strings must be non-empty")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def entropy_varentropy(logits: Sequence[float]) -> tuple[float, float]:
    """Entropy and varentropy (nats) of the distribution softmax(`logits`).

    `logits` may be unnormalised log-weights (e.g. a top-k slice of log-probabilities, which this
    renormalises); ``-inf`` entries are tokens of probability 0. With p = softmax(logits):
    H = -sum p log p and varentropy = sum p (log p + H)^2, the variance of -log p under p.

    Raises:
        ValueError: no finite entry.
    """
    finite = [x for x in logits if x != -math.inf]
    if not finite or any(math.isnan(x) or x == math.inf for x in finite):
        raise ValueError("entropy_varentropy needs finite logits (at least one)")
    top = max(finite)
    log_z = top + math.log(math.fsum(math.exp(x - top) for x in finite))
    logp = [x - log_z for x in finite]
    probs = [math.exp(x) for x in logp]
    entropy = -math.fsum(p * x for p, x in zip(probs, logp, strict=True))
    varentropy = math.fsum(p * (x + entropy) ** 2 for p, x in zip(probs, logp, strict=True))
    return max(entropy, 0.0), varentropy


@runtime_checkable
class Policy(Protocol):
    """A language model that search and training can call. All methods are batched."""

    name: str
    """Model name (a path, hub id, server model name, or ``fake``)."""

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Generation]]:
        """Sample `params.n` continuations of each prompt.

        Args:
            prompts: [P] prompt texts.
            params: sampling settings shared by the whole batch.

        Returns:
            [P][n] generations, in prompt order; each has text, token ids, per-token logprobs
            (under the sampling distribution at temperature 1, i.e. the model's own log p),
            finish reason and token counts; with `params.token_stats`, also per-token entropies
            and varentropies of that distribution (None where the backend cannot give them).
        """
        ...

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> list[tuple[float, ...]]:
        """Per-token log p(completion | prompt) for aligned pairs.

        Args:
            prompts: [B] prompts.
            completions: [B] completions, one per prompt.

        Returns:
            [B] tuples of per-token log-probabilities of each completion's tokens.
        """
        ...

    def next_token_probs(
        self, prompts: Sequence[str], candidates: Sequence[str]
    ) -> list[dict[str, float]]:
        """Probability of each candidate string as the next token after each prompt.

        Args:
            prompts: [B] prompts.
            candidates: [C] strings that must each be a single token of the model's vocabulary
                (e.g. ``<positive_rating>``, ``Yes``).

        Returns:
            [B] dicts candidate -> p(candidate | prompt) under the full softmax (they need not
            sum to 1; renormalise over the candidates if you want a choice among them).

        Raises:
            ModelError: a candidate is not a single token.
        """
        ...


@runtime_checkable
class RewardModel(Protocol):
    """A process reward model with a classification head (`openberry.models.hf.reward`): it
    reads a reward at given places of a text and generates nothing. Search asks it through
    `openberry.search.engine.StepRewards` requests."""

    name: str

    def step_rewards(
        self, prompts: Sequence[str], ends: Sequence[Sequence[int]], label: int = 1
    ) -> list[tuple[float, ...]]:
        """The probability of class `label` at each of the character offsets `ends` of each
        prompt.

        Args:
            prompts: [B] texts (question and steps, each step followed by its tag).
            ends: [B] offsets into each text, one per step to reward: the end of the step's
                tag. The reward is read at the token holding the character before the offset.
            label: index of the good class (a one-logit head gives ``sigmoid(logit)``).

        Returns:
            [B] tuples, one reward in [0, 1] per offset.
        """
        ...

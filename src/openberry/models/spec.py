"""`ModelSpec`: how to build a backend, the settings behind the ``berry`` model options.

A spec is a frozen, picklable record, so every Ray worker of ``berry eval`` can build its own
model from it. `ModelSpec.build` does everything a command needs to get a `Policy`: it imports
and loads the backend (`openberry.models.hf` or `openberry.models.openai`), loads a LoRA
adapter on the hf backend, and on a CPU tunes the allocator (`tune_cpu_malloc`).

This module sits above the backends (it imports them when building); the backends import
`openberry.models.base`, never this module. Importing it is light.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openberry.models.base import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_PREFIX_CACHE_MB,
    DEFAULT_REQUEST_TIMEOUT,
    ModelError,
    Policy,
)

__all__ = ["DEFAULT_MAX_RETRIES", "DEFAULT_PREFIX_CACHE_MB", "DEFAULT_REQUEST_TIMEOUT", "ModelSpec"]


@dataclass(frozen=True)
class ModelSpec:
    """How to build a backend (the ``berry`` model options)."""

    model: str
    """Model directory, hub id, built-in name, ``.gguf`` file or named GGUF model
    (``smollm2-135m-instruct``), peft adapter directory (hf: loads its base model too), or the
    served model name (openai backend)."""
    backend: str = "hf"
    """``hf`` (transformers, in process) or ``openai`` (any OpenAI-compatible server)."""
    base_url: str | None = None
    """Server URL for the openai backend."""
    device: str | None = None
    """hf: cpu, cuda, cuda:1 ..."""
    dtype: str | None = None
    """hf: float32, bfloat16, auto ..."""
    chat_template: bool = False
    """hf: wrap prompts in the model's chat template."""
    prefix_cache_mb: float = DEFAULT_PREFIX_CACHE_MB
    """hf: MiB of keys and values of earlier prompts kept for re-use across calls (0: off)."""
    adapter: str | None = None
    """hf: a peft (LoRA) adapter directory loaded on top of the model."""
    timeout: float = DEFAULT_REQUEST_TIMEOUT
    """openai: seconds to wait for the answer to one request before it counts as failed."""
    max_retries: int = DEFAULT_MAX_RETRIES
    """openai: retries of a failed request (timeout, connection error, 429, 5xx), with
    exponential backoff."""
    max_retry_time: float | None = None
    """openai: most seconds one request may take in all, its retries and backoff waits included
    (None: no bound but timeout and retries)."""
    gguf_file: str | None = None
    """hf: the ``.gguf`` file inside the directory or hub repository `model` to load
    (dequantized to float32; needs ``pip install 'openberry[gguf]'``)."""
    trust_remote_code: bool = False
    """hf: let a reward-head model (a process reward model whose head only its repository's
    code defines) run that code; off, loading such a model stops with an error."""

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ModelError(f"--timeout must be > 0 seconds, got {self.timeout}")
        if self.max_retries < 0:
            raise ModelError(f"--max-retries must be >= 0, got {self.max_retries}")
        if self.max_retry_time is not None and not self.max_retry_time > 0:
            raise ModelError(f"--max-retry-time must be > 0 seconds, got {self.max_retry_time}")

    def build(self) -> Policy:
        """Load the backend (imports torch for hf; tunes the allocator on a CPU). A checkpoint
        whose config names a classification head loads as a process reward model
        (`openberry.models.hf.reward.HFRewardModel`, for the ``prm-head`` scorer), not a policy.

        Raises:
            ModelError: unknown backend, openai without a URL or with an adapter or GGUF file,
                or a model or adapter that cannot be loaded.
        """
        if self.backend == "openai":
            if self.gguf_file is not None:
                raise ModelError(
                    "--gguf-file needs --backend hf: an OpenAI-compatible server loads the model "
                    "itself; pass the served model's name as --model"
                )
            if self.adapter is not None:
                raise ModelError(
                    "--adapter needs --backend hf: an OpenAI-compatible server loads adapters "
                    "itself (e.g. vLLM's --lora-modules); pass the served adapter's name as "
                    "--model"
                )
            if not self.base_url:
                raise ModelError("--backend openai needs --base-url")
            from openberry.models.openai import OpenAIPolicy

            return OpenAIPolicy(
                self.base_url,
                self.model,
                timeout=self.timeout,
                max_retries=self.max_retries,
                max_retry_time=self.max_retry_time,
            )
        if self.backend != "hf":
            raise ModelError(f"unknown backend {self.backend!r} (hf or openai)")
        from openberry.models.hf import HFPolicy, tune_cpu_malloc

        if self.device in (None, "cpu"):
            tune_cpu_malloc()
        reward = self._reward_model()
        if reward is not None:
            return reward
        return HFPolicy.from_pretrained(
            self.model,
            device=self.device,
            dtype=self.dtype,
            adapter=self.adapter,
            use_chat_template=self.chat_template,
            prefix_cache_mb=self.prefix_cache_mb,
            gguf_file=self.gguf_file,
        )

    def _reward_model(self) -> Any:
        """An `HFRewardModel` when `model` is a reward-head checkpoint (its config names a
        token or sequence classification head: `openberry.models.hf.reward`), else None."""
        if self.gguf_file is not None:
            return None
        from openberry.models.hf.reward import HFRewardModel, reward_head

        if reward_head(self.model, self.trust_remote_code) is None:
            return None
        if self.adapter is not None:
            raise ModelError(f"--adapter applies to causal LMs; {self.model} is a reward model")
        return HFRewardModel.from_pretrained(
            self.model,
            device=self.device,
            dtype=self.dtype,
            trust_remote_code=self.trust_remote_code,
        )

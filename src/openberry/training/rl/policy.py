"""The policy a self-play run trains: the base model with a fresh, seeded LoRA adapter, and the
`HFPolicy` that samples with the same weights (the learner and the search share one model)."""

from __future__ import annotations

import json
from typing import Any

from openberry.search.engine import derive_seed
from openberry.training.rl.config import RLConfig, RLError

__all__ = ["load_policy", "parse_setting", "player_search"]


def load_policy(config: RLConfig) -> tuple[Any, Any]:
    """The base model with a fresh LoRA adapter (seeded), and the `HFPolicy` that samples with
    it."""
    import torch
    from peft import get_peft_model

    from openberry.models.builtin import resolve_model
    from openberry.models.gguf import load_causal_lm, load_tokenizer
    from openberry.models.hf import HFPolicy
    from openberry.models.hf.runtime import adapter_base
    from openberry.training.sft import _lora_config

    path = resolve_model(config.model)
    if adapter_base(path) is not None:
        raise RLError(
            f"{config.model} is a LoRA adapter: berry train rl puts its own adapter on a full "
            "model; name the base model, or merge the adapter into it first"
        )
    tokenizer = load_tokenizer(path)
    kwargs = {"dtype": getattr(torch, config.dtype)} if config.dtype else {}
    base = load_causal_lm(path, label=config.model, **kwargs)
    if config.device:
        base = base.to(config.device)
    lora = _lora_config(config)  # RLConfig has SFTConfig's lora_* fields
    torch.manual_seed(derive_seed(config.seed, "lora"))
    model = get_peft_model(base, lora)
    model.peft_config["default"].base_model_name_or_path = config.model
    policy = HFPolicy(model=model, tokenizer=tokenizer, name=config.model)
    return model, policy


def parse_setting(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` of ``--set``: the value read as JSON when it parses, else as text."""
    key, sep, value = text.partition("=")
    if not sep:
        raise RLError(f"search setting {text!r} is not KEY=VALUE")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def player_search(config: RLConfig) -> Any:
    """The search that plays the training problems: ``method`` at ``rollouts`` with the
    ``search_set`` overrides (the same in this process and on every Ray actor)."""
    from openberry.search import make_search

    overrides = dict(parse_setting(s) for s in config.search_set)
    return make_search(config.method, config.rollouts, overrides)

"""The policy a self-play run trains: the base model with a fresh, seeded LoRA adapter, and the
`HFPolicy` that samples with the same weights (the learner and the search share one model)."""

from __future__ import annotations

import json
from typing import Any

from openberry.search.engine import derive_seed
from openberry.training.rl.config import RLConfig, RLError

__all__ = ["load_policy", "parse_setting"]


def load_policy(config: RLConfig) -> tuple[Any, Any]:
    """The base model with a fresh LoRA adapter (seeded), and the `HFPolicy` that samples with
    it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from openberry.models.builtin import resolve_model
    from openberry.models.hf import HFPolicy
    from openberry.models.hf.runtime import adapter_base

    path = resolve_model(config.model)
    if adapter_base(path) is not None:
        raise RLError(
            f"{config.model} is a LoRA adapter: berry train rl puts its own adapter on a full "
            "model; name the base model, or merge the adapter into it first"
        )
    tokenizer = AutoTokenizer.from_pretrained(path)
    kwargs = {"dtype": getattr(torch, config.dtype)} if config.dtype else {}
    base = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if config.device:
        base = base.to(config.device)
    lora = LoraConfig(
        task_type="CAUSAL_LM",
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_target_modules),
    )
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

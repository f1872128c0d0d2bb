"""`berry-tiny-rl`: the built-in adapter loads by name, on top of berry-tiny, offline."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from openberry.models.builtin import BUILTIN_MODELS, resolve_model
from openberry.models.hf import HFPolicy
from openberry.models.hf.runtime import adapter_base


def test_berry_tiny_rl_is_an_adapter_on_berry_tiny() -> None:
    assert "berry-tiny-rl" in BUILTIN_MODELS
    assert adapter_base(resolve_model("berry-tiny-rl")) == "berry-tiny"


def test_berry_tiny_rl_loads_and_differs_from_berry_tiny() -> None:
    rl = HFPolicy.from_pretrained("berry-tiny-rl")
    base = HFPolicy.from_pretrained("berry-tiny")
    assert rl.runtime.adapter is not None and base.runtime.adapter is None
    prompt, completion = ["Question: Compute 29 + 25 + 15.\nSolution:\n"], ["29 + 25 = 54\n"]
    assert rl.score(prompt, completion)[0] != base.score(prompt, completion)[0]

"""Built-in model names: resolution, the error when weights are missing, and berry-tiny itself."""

from __future__ import annotations

import pytest

from openberry.models import builtin
from openberry.models.base import ModelError


def test_other_names_pass_through() -> None:
    assert builtin.resolve_model("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"
    assert builtin.resolve_model("./runs/x/final") == "./runs/x/final"
    assert builtin.DEFAULT_MODEL in builtin.BUILTIN_MODELS


def test_missing_weights_are_a_clear_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(builtin, "builtin_dir", lambda name: tmp_path / "none")
    with pytest.raises(ModelError, match="berry train sft --recipe tiny"):
        builtin.resolve_model("berry-tiny")

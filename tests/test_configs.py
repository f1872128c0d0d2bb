"""Config dataclasses as data: field docstrings and text converted to a field's type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from openberry.configs import ConfigError, convert, field_docs, field_kind, source_defaults


@dataclass(frozen=True)
class _Demo:
    flag: bool = False
    """A switch."""
    count: int = 3
    """How many, over
    two lines."""
    rate: float = 0.5
    mode: Literal["a", "b"] = "a"
    """Which mode."""
    names: tuple[str, ...] = ("x",)
    limit: int | None = None


def test_field_docs_from_source() -> None:
    assert field_docs(_Demo) == {
        "flag": "A switch.",
        "count": "How many, over two lines.",
        "mode": "Which mode.",
    }
    path = "openberry.evaluation.runner:EvalConfig"
    assert "Independent searches" in field_docs(path)["samples"]
    assert source_defaults(path)["batch_size"] == 64
    assert field_docs("openberry.nope:Nothing") == {}


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("flag", "yes", True),
        ("flag", "off", False),
        ("count", "7", 7),
        ("rate", "0.25", 0.25),
        ("mode", "b", "b"),
        ("names", "p, q", ("p", "q")),
        ("limit", "none", None),
        ("limit", "5", 5),
    ],
)
def test_convert_text(name: str, text: str, value: object) -> None:
    assert convert(text, field_kind(_Demo, name), name) == value


def test_convert_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="count: cannot read 'x' as int"):
        convert("x", field_kind(_Demo, "count"), "count")
    with pytest.raises(ConfigError, match="mode must be one of a, b"):
        convert("c", field_kind(_Demo, "mode"), "mode")
    assert convert(["p"], field_kind(_Demo, "names"), "names") == ("p",)

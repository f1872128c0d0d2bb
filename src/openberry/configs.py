"""Config dataclasses as data: their fields' help text, and text converted to a field's type.

A config field's docstring (the string literal right under the field) is its help text;
`field_docs` reads those from the class source once per class. `convert` turns the text of a
``--set KEY=VALUE`` (or of a command-line flag) into the value of a field's type hint, so every
place that sets a config from text converts it the same way. `field_kind` is the normalised type
hint the command line builds its options from (`openberry.cli._config`).

Standard library only: the command line imports this module to build ``--help``.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import importlib.util
import inspect
import itertools
import textwrap
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openberry.errors import BerryError

__all__ = [
    "ConfigError",
    "FieldKind",
    "convert",
    "field_docs",
    "field_kind",
    "field_kinds",
    "source_defaults",
]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class ConfigError(BerryError, ValueError):
    """A config value or file that cannot be read (a bad value, an unknown key)."""


@dataclass(frozen=True)
class FieldKind:
    """A field's type hint, reduced to what text conversion needs."""

    base: Any
    """``bool``, ``int``, ``float``, ``str``, a dataclass, or another type left as text."""
    choices: tuple[Any, ...] | None = None
    """The allowed values of a ``Literal`` hint."""
    optional: bool = False
    """``X | None``."""
    sequence: bool = False
    """``tuple[X, ...]``: a list of ``base`` values."""

    @property
    def name(self) -> str:
        """The hint as a short readable name (``int``, ``one of a, b``, ``list of str``)."""
        if self.choices is not None:
            text = "one of " + ", ".join(map(str, self.choices))
        else:
            text = getattr(self.base, "__name__", str(self.base))
        return f"list of {text}" if self.sequence else text


def _kind_of(hint: Any) -> FieldKind:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        inner = _kind_of(rest[0]) if len(rest) == 1 else FieldKind(str)
        return dataclasses.replace(inner, optional=True)
    if origin is typing.Literal:
        return FieldKind(type(args[0]) if args else str, choices=args)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return dataclasses.replace(_kind_of(args[0]), sequence=True)
    return FieldKind(hint if isinstance(hint, type) else str)


@functools.cache
def field_kinds(cls: type) -> dict[str, FieldKind]:
    """Field name -> `FieldKind` of dataclass `cls` (from its resolved type hints)."""
    hints = typing.get_type_hints(cls)
    return {f.name: _kind_of(hints.get(f.name, str)) for f in dataclasses.fields(cls)}


def field_kind(cls: type, name: str) -> FieldKind:
    """The `FieldKind` of field `name` of dataclass `cls`."""
    return field_kinds(cls)[name]


def _module_body(filename: str) -> list[ast.stmt]:
    return ast.parse(Path(filename).read_text(encoding="utf-8")).body


@functools.cache
def _class_node(cls: type | str) -> ast.ClassDef | None:
    """The class definition of `cls`, or of the class at ``"module:Class"`` (whose module is
    found but not imported)."""
    try:
        if isinstance(cls, str):
            module, _, name = cls.partition(":")
            spec = importlib.util.find_spec(module)
            body = _module_body(spec.origin if spec and spec.origin else "")
        elif "." not in cls.__qualname__ and inspect.getsourcefile(cls):
            name = cls.__name__
            body = _module_body(inspect.getsourcefile(cls) or "")
        else:  # a class defined inside a function
            name = cls.__name__
            body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body
    except (OSError, TypeError, SyntaxError, ValueError, ImportError):
        return None
    found = [n for n in body if isinstance(n, ast.ClassDef) and n.name == name]
    return found[0] if found else None


@functools.cache
def field_docs(cls: type | str) -> dict[str, str]:
    """Field name -> docstring (whitespace folded to one line) of dataclass `cls` (a class or
    its ``"module:Class"`` path), read from its source; fields without one are left out, and an
    unreadable source gives ``{}``."""
    node = _class_node(cls)
    docs: dict[str, str] = {}
    for stmt, nxt in itertools.pairwise(node.body if node else []):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs


@functools.cache
def source_defaults(path: str) -> dict[str, Any]:
    """Field name -> default of the dataclass at ``"module:Class"``, read from its source
    without importing it; a field without a default, or whose default is not a literal, reads
    as ``dataclasses.MISSING``."""
    node = _class_node(path)
    out: dict[str, Any] = {}
    for stmt in node.body if node else []:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            out[stmt.target.id] = dataclasses.MISSING
            if stmt.value is not None:
                with contextlib.suppress(ValueError, TypeError, SyntaxError):
                    out[stmt.target.id] = ast.literal_eval(stmt.value)
    return out


def _scalar(text: str, kind: FieldKind, name: str) -> Any:
    base = kind.base
    try:
        if base is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError(text)
        if base is int:
            return int(text)
        if base is float:
            return float(text)
    except ValueError:
        raise ConfigError(f"{name}: cannot read {text!r} as {base.__name__}") from None
    return text


def convert(value: Any, kind: FieldKind, name: str) -> Any:
    """`value` as a value of `kind`; text is converted (``"0.5"`` -> 0.5, ``"yes"`` -> True,
    ``"a,b"`` -> ``("a", "b")`` for a tuple, ``"none"`` -> None for an optional field), other
    values are checked against a ``Literal``'s choices only.

    Raises:
        ConfigError: text that does not read as the type, or a value outside the choices.
    """
    if not isinstance(value, str):
        if kind.sequence and isinstance(value, list):
            value = tuple(value)
        if kind.choices is not None and not kind.sequence and value not in kind.choices:
            raise ConfigError(_choices_message(kind, name, value))
        return value
    if kind.optional and value.lower() in ("none", "null"):
        return None
    if kind.sequence:
        parts = [p.strip() for p in value.split(",") if p.strip()]
        return tuple(convert(p, dataclasses.replace(kind, sequence=False), name) for p in parts)
    if kind.choices is not None:
        for choice in kind.choices:
            if value == str(choice):
                return choice
        raise ConfigError(_choices_message(kind, name, value))
    return _scalar(value, kind, name)


def _choices_message(kind: FieldKind, name: str, value: Any) -> str:
    return f"{name} must be one of {', '.join(map(str, kind.choices or ()))}, got {value!r}"

"""Config dataclasses on the command line: options built from fields, and ``--config FILE``.

`add_field_options` adds one option per field of a config dataclass: its help is the field's
docstring (`openberry.configs.field_docs`) with the default appended, its type, ``nargs``,
``choices`` or flag action follow the field's type hint, and explicit argparse settings win. A
class may be named by its ``"module:Class"`` path instead: then its source is read but not
imported (so ``berry --help`` stays fast), and the caller gives the option types.

``--config FILE`` (`add_config_file_option`) reads a TOML (``tomllib``) or YAML (PyYAML's
``safe_load``) mapping whose keys are the command's flags without the dashes (``batch-size`` or
``batch_size``). `expand_config_files` turns it into the flags it stands for before the command
line is parsed, leaving out every flag also given on the command line, so flags given there win
and each value goes through the same checks as a typed flag. Standard library only, except
PyYAML, which is imported for a ``.yaml`` file.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from openberry.configs import ConfigError, field_docs, field_kinds, source_defaults

__all__ = [
    "add_config_file_option",
    "add_field_options",
    "expand_config_files",
    "load_config_file",
    "method_settings",
    "settings_help",
]

FieldOption = tuple[str, str, Mapping[str, Any]]
"""``(flag, field, argparse settings)``; the settings may also hold ``note``, the text put in
parentheses after the help instead of ``default: ...`` or ``required`` (None: nothing)."""


# -- options from fields ---------------------------------------------------------------------


def _source_fields(path: str) -> dict[str, tuple[str, Any]]:
    docs = field_docs(path)
    return {name: (docs.get(name, ""), d) for name, d in source_defaults(path).items()}


def _class_fields(cls: type) -> dict[str, tuple[str, Any]]:
    docs: dict[str, str] = {}
    for base in reversed(cls.__mro__):  # a subclass's fields keep their base's docstrings
        if dataclasses.is_dataclass(base):
            docs.update(field_docs(base))
    out = {}
    for f in dataclasses.fields(cls):
        default = f.default
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        out[f.name] = (docs.get(f.name, ""), default)
    return out


def _typed(cls: type, name: str, settings: dict[str, Any], default: Any) -> None:
    """Fill in ``type``/``nargs``/``choices``/``action`` from the field's type hint."""
    if "action" in settings or "type" in settings:
        return
    kind = field_kinds(cls)[name]
    if kind.base is bool and not kind.sequence:
        settings["action"] = "store_false" if default is True else "store_true"
        return
    if kind.sequence:
        settings.setdefault("nargs", "+")
    if kind.choices is not None:
        settings.setdefault("choices", kind.choices)
    elif kind.base in (int, float):
        settings["type"] = kind.base


def _shown(default: Any) -> str | None:
    if default is None or default == () or default is dataclasses.MISSING:
        return None
    return " ".join(map(str, default)) if isinstance(default, tuple) else str(default)


def add_field_options(
    parser: Any, cls: type | str, options: Iterable[FieldOption], *, suppress: bool = True
) -> None:
    """Add an option per ``(flag, field, settings)`` of config dataclass `cls` (a class, or its
    ``"module:Class"`` path, read from source without importing it).

    Args:
        parser: a parser or argument group.
        cls: the config dataclass.
        options: the options; `settings` are argparse's, and win over what the field implies.
        suppress: leave an option not given out of the namespace (``argparse.SUPPRESS``), so
            the dataclass's own default applies; else the field's default is the option's.
    """
    fields = _source_fields(cls) if isinstance(cls, str) else _class_fields(cls)
    for flag, name, given in options:
        settings = dict(given)
        doc, default = fields[name]
        if not isinstance(cls, str):
            _typed(cls, name, settings, default)
        text = settings.pop("help", None) or doc
        if "note" in settings:
            note = settings.pop("note")
        elif settings.get("action") in ("store_true", "store_false"):
            note = None
        elif default is dataclasses.MISSING:
            note = "required"
        else:
            shown = _shown(default)
            note = f"default: {shown}" if shown is not None else None
        if note:
            text += f" ({note})"
        settings["default"] = argparse.SUPPRESS if suppress else default
        parser.add_argument(flag, dest=name, help=text.replace("%", "%%"), **settings)


def settings_help(cls: type) -> str:
    """The fields of config dataclass `cls` (nested ones as ``group.field``), one per line with
    type, default and docstring: what ``--set KEY=VALUE`` can set. A field another option sets
    (``metadata["option"]``, e.g. ``prompts`` by ``--prompts``) is one line naming it."""
    lines: list[str] = []

    def walk(c: type, prefix: str) -> None:
        docs, kinds = field_docs(c), field_kinds(c)
        for f in dataclasses.fields(c):
            if f.metadata.get("option"):
                default = getattr(f.default, "name", f.default)
                lines.append(
                    f"  {prefix}{f.name} (set with {f.metadata['option']}, default {default})"
                )
                continue
            if dataclasses.is_dataclass(kinds[f.name].base):
                walk(kinds[f.name].base, f"{prefix}{f.name}.")
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            lines.append(f"  {prefix}{f.name} ({kinds[f.name].name}, default {default!r})")
            if docs.get(f.name):
                lines.append(f"      {docs[f.name]}")

    walk(cls, "")
    return "\n".join(lines)


def method_settings(methods: Iterable[str]) -> str:
    """What ``--set`` can set for each search method named (imports their config classes)."""
    from openberry.search.registry import REGISTRY

    parts = []
    for name in methods:
        parts.append(f"{name} settings (--set KEY=VALUE):")
        parts.append(settings_help(REGISTRY[name].config_class()))
    return "\n".join(parts)


# -- --config FILE -----------------------------------------------------------------------------


def add_config_file_option(parser: Any) -> None:
    """Add ``--config FILE`` (read by `expand_config_files` before parsing)."""
    parser.add_argument(
        "--config",
        dest="config_file",
        metavar="FILE",
        help="read options from a TOML or YAML file whose keys are this command's flags "
        "(dashes or underscores); flags given on the command line win",
    )


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a ``.toml`` or ``.yaml``/``.yml`` file.

    Raises:
        ConfigError: another extension, an unreadable file, or no mapping at its top.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise ConfigError(f"{path}: a config file must end in .toml, .yaml or .yml")
    try:
        text = path.read_text(encoding="utf-8")
        if suffix == ".toml":
            import tomllib

            data: Any = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:  # tomllib.TOMLDecodeError
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except Exception as exc:  # yaml.YAMLError
        if type(exc).__module__.startswith("yaml"):
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        raise
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option names to values")
    return data


def _subcommand(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[Any, int]:
    """The innermost subcommand parser named in `argv`, and where its own arguments start."""
    pos = 0
    while True:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            return parser, pos
        names = subs[0].choices
        while pos < len(argv) and argv[pos] not in names:
            pos += 1
        if pos == len(argv):
            return parser, pos
        parser, pos = names[argv[pos]], pos + 1


def _config_path(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """The ``--config`` value in `argv`, and `argv` without it."""
    rest: list[str] = []
    path = None
    it = iter(argv)
    for token in it:
        if token == "--":
            rest += [token, *it]
            break
        if token == "--config":
            path = next(it, None)
            if path is None:
                raise ConfigError("--config needs a FILE")
        elif token.startswith("--config="):
            path = token.partition("=")[2]
        else:
            rest.append(token)
    return path, rest


def _flag_tokens(action: argparse.Action, flag: str, value: Any) -> list[str]:
    if isinstance(action, argparse.BooleanOptionalAction):
        return [flag if value else f"--no-{flag[2:]}"]
    if action.nargs == 0:  # store_true / store_false / store_const
        if not isinstance(value, bool):
            raise ConfigError(f"{flag[2:]}: expected true or false, got {value!r}")
        return [flag] if value else []
    if isinstance(action, argparse._AppendAction):
        items = value.items() if isinstance(value, Mapping) else None
        values = [f"{k}={v}" for k, v in items] if items is not None else _as_list(value)
        return [f"{flag}={_text(v)}" for v in values]
    if action.nargs in ("+", "*"):
        return [flag, *(_text(v) for v in _as_list(value))]
    if isinstance(value, (list, tuple)):
        value = ",".join(_text(v) for v in value)
    return [f"{flag}={_text(value)}"]


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _given_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The option strings `argv` names, with a unique prefix of a long option resolved to it as
    argparse resolves it (``--dat`` is ``--data`` when no other option starts so)."""
    known = [s for a in parser._actions for s in a.option_strings]
    given = set()
    for token in argv:
        if not token.startswith("-"):
            continue
        name = token.split("=", 1)[0] if token.startswith("--") else token
        if name in known:
            given.add(name)
        elif parser.allow_abbrev and name.startswith("--"):
            matches = [s for s in known if s.startswith(name)]
            if len(matches) == 1:
                given.add(matches[0])
    return given


def expand_config_files(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """`argv` with its ``--config FILE`` replaced by the flags the file stands for.

    File values come before the command's own arguments (lists of ``nargs="+"`` options after
    them); a flag given on the command line, or one excluded by a flag given there, is dropped
    from the file's, so the command line wins.

    Raises:
        ConfigError: an unreadable file, or a key that is not one of the command's flags (the
            message lists the valid ones).
    """
    path, rest = _config_path(argv)
    if path is None:
        return list(argv)
    sub, start = _subcommand(parser, rest)
    actions = {
        s[2:]: (a, s)
        for a in sub._actions
        for s in a.option_strings
        if s.startswith("--") and a.dest not in ("help", "config_file")
    }
    given = _given_options(sub, rest[start:])
    blocked = {id(a) for a in sub._actions if given.intersection(a.option_strings)}
    for group in sub._mutually_exclusive_groups:
        if any(id(a) in blocked for a in group._group_actions):
            blocked |= {id(a) for a in group._group_actions}
    front: list[str] = []
    back: list[str] = []
    for key, value in load_config_file(path).items():
        name = str(key).replace("_", "-")
        if name not in actions:
            raise ConfigError(
                f"{path}: unknown key {key!r}; valid keys: {', '.join(sorted(actions))}"
            )
        action, flag = actions[name]
        if id(action) in blocked:
            continue
        tokens = _flag_tokens(action, flag, value)
        (back if action.nargs in ("+", "*") else front).extend(tokens)
    return [*rest[:start], *front, *rest[start:], *back]

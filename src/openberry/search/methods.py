"""The search methods by name, their configs, and one budget knob shared by all of them.

``make_search(name, rollouts=N, overrides={...})`` gives a `SearchFn` for `run_search`. The
methods, their configs and what ``rollouts = N`` sets for each are listed once, in
`openberry.search.registry` (``berry solve --help`` prints the table). Compare methods at equal
*generated tokens* (the engine counts them), not at equal N.

``overrides`` set any config field by name (``{"c": "1.0", "scorer": "pprm"}``), nested
settings with a dot (``{"scorer_config.ebc_alpha": "0.8"}``); values given as strings are
converted to the field's type (`openberry.configs.convert`). `run_search` records the whole
config of a search made here in each tree's ``info["config"]``.
"""

from __future__ import annotations

import dataclasses
import functools
import random
from collections.abc import Mapping
from typing import Any

from openberry.configs import ConfigError, convert, field_kinds
from openberry.records import Problem
from openberry.search.engine import SearchError, SearchFn, SearchGen
from openberry.search.registry import REGISTRY

__all__ = ["METHODS", "apply_overrides", "make_config", "make_search"]

METHODS: dict[str, tuple[type, Any]] = {
    name: (m.config_class(), m.search_function()) for name, m in REGISTRY.items()
}
"""Method name -> (config class, search function), from `openberry.search.registry`."""


def _budget(name: str, rollouts: int) -> dict[str, Any]:
    if rollouts < 1:
        raise SearchError(f"rollouts must be >= 1, got {rollouts}")
    return REGISTRY[name].budget_fields(rollouts)


def apply_overrides(config: Any, overrides: Mapping[str, Any]) -> Any:
    """A copy of `config` with fields set by name; unknown names raise with the valid ones."""
    if not overrides:
        return config
    kinds = field_kinds(type(config))
    fields = set(kinds)
    changes: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        name = key.replace("-", "_")
        head, dot, rest = name.partition(".")
        if dot and head in fields and dataclasses.is_dataclass(getattr(config, head)):
            nested.setdefault(head, {})[rest] = value
            continue
        if name in fields and dataclasses.is_dataclass(getattr(config, name)):
            raise SearchError(
                f"{name} is a group of settings; set its fields as {name}.FIELD=VALUE"
            )
        if name not in fields:
            raise SearchError(
                f"{type(config).__name__} has no setting {key!r}; settings: {', '.join(sorted(fields))}"
            )
        try:
            changes[name] = convert(value, kinds[name], name)
        except ConfigError as exc:
            raise SearchError(str(exc)) from None
    for head, sub in nested.items():
        changes[head] = apply_overrides(getattr(config, head), sub)
    return dataclasses.replace(config, **changes)


def make_config(
    name: str, rollouts: int | None = None, overrides: Mapping[str, Any] | None = None
) -> Any:
    """The config of method `name` with the budget and overrides applied."""
    if name not in METHODS:
        raise SearchError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    cls, _fn = METHODS[name]
    config = cls()
    if rollouts is not None:
        config = dataclasses.replace(config, **_budget(name, rollouts))
    return apply_overrides(config, overrides or {})


def make_search(
    name: str, rollouts: int | None = None, overrides: Mapping[str, Any] | None = None
) -> SearchFn:
    """A `SearchFn` for `run_search`: method `name` bound to its config."""
    config = make_config(name, rollouts, overrides)
    _cls, fn = METHODS[name]

    def search(problem: Problem, rng: random.Random) -> SearchGen:
        return fn(problem, rng, config)

    # run_search records these in every tree's info.
    search.config = config  # type: ignore[attr-defined]
    search.method = name  # type: ignore[attr-defined]
    return functools.update_wrapper(search, fn, assigned=("__doc__",))

"""The search methods by name, their configs, and one budget knob shared by all of them.

``make_search(name, rollouts=N, overrides={...})`` gives a `SearchFn` for `run_search`. The
methods, their configs and what ``rollouts = N`` sets for each are listed once, in
`openberry.search.registry` (``berry solve --help`` prints the table). Compare methods at equal
*generated tokens* (the engine counts them), not at equal N.

``overrides`` set any config field by name (``{"c": "1.0", "scorer": "pprm"}``), nested
settings with a dot (``{"scorer_config.ebc_alpha": "0.8"}``); values given as strings are
converted to the field's type (`openberry.configs.convert`). ``prompts=`` sets the role prompts
(`openberry.formats.profiles`; berry-tiny's ``tiny`` by default) of every method that prompts a
model for a role (meta-mcts speaks OpenLongCoT only). `run_search` records the whole config of a
search made here, its prompt profile included, in each tree's ``info["config"]``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import random
from collections.abc import Mapping
from typing import Any

from openberry.configs import ConfigError, convert, field_docs, field_kinds
from openberry.formats.profiles import PromptProfile
from openberry.records import Problem
from openberry.search.engine import SearchError, SearchFn, SearchGen
from openberry.search.registry import REGISTRY

__all__ = ["METHODS", "apply_overrides", "check_ranges", "make_config", "make_search"]

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
        option = _set_by(config, head)
        if option:
            raise SearchError(f"{head} is set with {option}, not as a config setting")
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


def _set_by(config: Any, name: str) -> str | None:
    """The command-line option that sets field `name` of `config` instead of ``--set`` (its
    ``metadata["option"]``), if any."""
    for f in dataclasses.fields(config):
        if f.name == name:
            return f.metadata.get("option")
    return None


_ZERO_OK = frozenset({"reward_retries"})
"""Integer settings for which 0 is meaningful besides those whose help says ``(0: ...)``;
every other count must be >= 1."""
_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "self_eval_temperature": (0.0, 2.0),
    "alpha": (0.0, 1.0),
    "gamma": (0.0, 1.0),
    "ebc_alpha": (0.0, 1.0),
    "full_score_threshold": (-100.0, 100.0),
    "full_score_replacement": (-100.0, 100.0),
}
"""Closed ranges of float settings by name; any other float must be finite and >= 0."""


def check_ranges(config: Any, prefix: str = "") -> None:
    """Raise `SearchError` naming the first setting of `config` (nested groups included) out
    of its range: counts >= 1 (0 allowed where it means "none"), weights and constants >= 0,
    temperatures in [0, 2], ``top_p`` in (0, 1], mixing weights in [0, 1]."""
    docs = field_docs(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        name = prefix + f.name
        if dataclasses.is_dataclass(value):
            check_ranges(value, name + ".")
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        elif isinstance(value, int):
            least = 0 if f.name in _ZERO_OK or "(0: " in docs.get(f.name, "") else 1
            if value < least:
                raise SearchError(f"{name} must be >= {least}, got {value}")
        else:
            _check_float(name, f.name, value)


def _check_float(name: str, field_name: str, value: float) -> None:
    if field_name == "top_p":
        ok, what = 0 < value <= 1, "in (0, 1]"
    elif field_name in _RANGES:
        lo, hi = _RANGES[field_name]
        ok, what = lo <= value <= hi, f"in [{lo:g}, {hi:g}]"
    else:
        ok, what = value >= 0 and math.isfinite(value), "a finite number >= 0"
    if not ok:
        raise SearchError(f"{name} must be {what}, got {value}")


def make_config(
    name: str,
    rollouts: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    prompts: PromptProfile | None = None,
) -> Any:
    """The config of method `name` with the budget, the prompt profile (for a method with
    role prompts) and the overrides applied."""
    if name not in METHODS:
        raise SearchError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    cls, _fn = METHODS[name]
    config = cls()
    if rollouts is not None:
        config = dataclasses.replace(config, **_budget(name, rollouts))
    if prompts is not None and hasattr(config, "prompts"):
        config = dataclasses.replace(config, prompts=prompts)
    config = apply_overrides(config, overrides or {})
    check_ranges(config)
    return config


def make_search(
    name: str,
    rollouts: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    prompts: PromptProfile | None = None,
) -> SearchFn:
    """A `SearchFn` for `run_search`: method `name` bound to its config (`make_config`)."""
    config = make_config(name, rollouts, overrides, prompts)
    _cls, fn = METHODS[name]

    def search(problem: Problem, rng: random.Random) -> SearchGen:
        return fn(problem, rng, config)

    # run_search records these in every tree's info.
    search.config = config  # type: ignore[attr-defined]
    search.method = name  # type: ignore[attr-defined]
    return functools.update_wrapper(search, fn, assigned=("__doc__",))

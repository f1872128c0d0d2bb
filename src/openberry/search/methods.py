"""The search methods by name, their configs, and one budget knob shared by all of them.

``make_search(name, rollouts=N, overrides={...})`` gives a `SearchFn` for `run_search`. The budget
``rollouts`` means, per method:

==================  ============================================================================
method              what ``rollouts = N`` sets
==================  ============================================================================
greedy              nothing (one solution)
self-consistency    N sampled solutions
best-of-n           N sampled solutions
beam                N candidates per step: width N/2 (at least 1) times 2 samples per beam
mctsr               N rollouts (critique + rewrite + reward)
sr-mcts             N rollouts (critique + rewrite + PPRM evaluation)
meta-mcts           4N simulations (a simulation writes two short thoughts; a whole solution is
                    about four thoughts on the arithmetic task)
==================  ============================================================================

Compare methods at equal *generated tokens* (the engine counts them), not at equal N.
``overrides`` set any config field by name (``{"c": "1.0", "scorer": "pprm"}``), nested
settings with a dot (``{"scorer_config.ebc_alpha": "0.8"}``); values given as strings are
converted to the field's type.
"""

from __future__ import annotations

import dataclasses
import functools
import random
import typing
from collections.abc import Mapping
from typing import Any

from openberry.records import Problem
from openberry.search.baselines import (
    BeamConfig,
    BestOfNConfig,
    GreedyConfig,
    SelfConsistencyConfig,
    beam,
    best_of_n,
    greedy,
    self_consistency,
)
from openberry.search.engine import SearchError, SearchFn, SearchGen
from openberry.search.mctsr import MCTSrConfig, mctsr
from openberry.search.meta_mcts import MetaMCTSConfig, meta_mcts
from openberry.search.sr_mcts import SRMCTSConfig, sr_mcts

__all__ = ["METHODS", "apply_overrides", "make_config", "make_search"]

METHODS: dict[str, tuple[type, Any]] = {
    "greedy": (GreedyConfig, greedy),
    "self-consistency": (SelfConsistencyConfig, self_consistency),
    "best-of-n": (BestOfNConfig, best_of_n),
    "beam": (BeamConfig, beam),
    "mctsr": (MCTSrConfig, mctsr),
    "sr-mcts": (SRMCTSConfig, sr_mcts),
    "meta-mcts": (MetaMCTSConfig, meta_mcts),
}
"""Method name -> (config class, search function)."""


def _budget(name: str, rollouts: int) -> dict[str, Any]:
    if rollouts < 1:
        raise SearchError(f"rollouts must be >= 1, got {rollouts}")
    return {
        "greedy": {},
        "self-consistency": {"samples": rollouts},
        "best-of-n": {"samples": rollouts},
        "beam": {"width": max(1, rollouts // 2), "branch": 2},
        "mctsr": {"rollouts": rollouts},
        "sr-mcts": {"rollouts": rollouts},
        "meta-mcts": {"simulations": 4 * rollouts},
    }[name]


def _convert(value: Any, kind: Any, name: str) -> Any:
    if not isinstance(value, str):
        return value
    origin = typing.get_origin(kind)
    if origin is typing.Literal:
        choices = typing.get_args(kind)
        if value not in choices:
            raise SearchError(
                f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}"
            )
        return value
    try:
        if kind is bool or kind == "bool":
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind in (int, "int"):
            return int(value)
        if kind in (float, "float"):
            return float(value)
    except ValueError:
        raise SearchError(
            f"{name}: cannot read {value!r} as {getattr(kind, '__name__', kind)}"
        ) from None
    return value


def apply_overrides(config: Any, overrides: Mapping[str, Any]) -> Any:
    """A copy of `config` with fields set by name; unknown names raise with the valid ones."""
    if not overrides:
        return config
    hints = typing.get_type_hints(type(config))
    fields = {f.name for f in dataclasses.fields(config)}
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
        changes[name] = _convert(value, hints.get(name, str), name)
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

    search.config = config  # type: ignore[attr-defined]
    search.method = name  # type: ignore[attr-defined]
    return functools.update_wrapper(search, fn, assigned=("__doc__",))

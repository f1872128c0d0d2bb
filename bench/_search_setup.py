"""What `search_speed.py` and `search_profile.py` share, so that both measure the same searches:
their common options, the problems, and each method as benchmarked (meta-action MCTS with
``meta_policy=model``, the variant that solves problems on berry-tiny; BENCHMARKS.md, "Search").

Run either script from the repository root (``python bench/search_speed.py``): Python puts
``bench/`` on the path, so ``import _search_setup`` finds this module.
"""

from __future__ import annotations

import argparse

from openberry.data.arithmetic import load_split
from openberry.records import Problem
from openberry.search import make_search


def add_search_args(ap: argparse.ArgumentParser) -> None:
    """The options both scripts take: model, methods, problems, rollouts, threads, settings."""
    ap.add_argument("--model", default="berry-tiny")
    ap.add_argument("--methods", default="mctsr,sr-mcts,meta-mcts")
    ap.add_argument("--problems", type=int, default=64)
    ap.add_argument("--rollouts", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config field of every method benchmarked, as `berry eval --set` takes it "
        "(repeatable), e.g. --set in_flight=4",
    )


def settings(pairs: list[str]) -> dict[str, str]:
    """``--set KEY=VALUE`` pairs as config overrides for `bench_search`."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def bench_problems(limit: int) -> list[Problem]:
    """The first `limit` problems of the arithmetic test split, without their answers."""
    return [e.problem for e in load_split("test", limit=limit)]


def bench_search(method: str, rollouts: int, **overrides: str):
    """`method` as the benchmarks run it, with extra config `overrides`."""
    if method == "meta-mcts":
        overrides.setdefault("meta_policy", "model")
    return make_search(method, rollouts=rollouts, overrides=overrides)

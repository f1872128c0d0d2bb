"""Search methods served as model names (``berry-mctsr``...) and the text a finished search answers.

Light module (no FastAPI, no torch): `openberry.serve.app` serves the names and ``berry solve``
(`openberry.cli.solve`) prints the same completion text. The methods are those of
`openberry.search.registry`.

What a search "completes" with: for whole-answer methods (greedy, self-consistency, best-of-n,
mctsr, sr-mcts) the text of the last node of the chosen path, which is the chosen solution; for
step methods (`Method.steps`: beam, meta-mcts, step-mcts), whose chosen path is a chain of
steps, the texts of the chosen nodes after the root joined with newlines.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from openberry.search.registry import REGISTRY
from openberry.tree import Tree

__all__ = [
    "MAX_SEARCH_ROLLOUTS",
    "PROBLEM_ID",
    "SEARCH_MODEL_PREFIX",
    "STEP_METHODS",
    "completion_text",
    "search_model_names",
    "search_summary",
]

SEARCH_MODEL_PREFIX = "berry-"
"""A search method ``M`` is served under the model name ``berry-M``."""
PROBLEM_ID = "cli"
"""Id of the one problem of ``berry solve`` and of a served search. Search seeds derive from the
problem id, so sharing it makes ``berry solve Q --method M --rollouts N --seed S`` and a request
to ``berry-M`` with the same question, ``rollouts`` and ``seed`` (same model) give the same
result."""
MAX_SEARCH_ROLLOUTS = 64
"""Largest ``rollouts`` a served search-model request (or ``berry serve --search-rollouts``) may
ask for."""
STEP_METHODS = frozenset(name for name, m in REGISTRY.items() if m.steps)
"""Methods whose chosen path is a chain of steps (the others choose one whole solution)."""


def search_model_names(methods: Iterable[str] = REGISTRY) -> dict[str, str]:
    """Served model name -> method name, e.g. ``{"berry-mctsr": "mctsr"}`` (default: every
    registered method)."""
    return {f"{SEARCH_MODEL_PREFIX}{m}": m for m in methods}


def completion_text(tree: Tree, method: str | None = None) -> str:
    """The text a search answers with (see the module docstring); ``""`` when nothing was chosen.

    Args:
        tree: the finished search tree.
        method: the method name (default: ``tree.method``).
    """
    path = list(tree.chosen[1:])
    if not path:
        return ""
    if (method or tree.method) in STEP_METHODS:
        return "\n".join(tree.nodes[i].text for i in path)
    return tree.nodes[path[-1]].text


def search_summary(
    tree: Tree, answer: str | None, method: str, config: Any, **extra: Any
) -> dict[str, Any]:
    """The JSON summary of one search (the ``openberry`` field of a served completion).

    Args:
        tree: the finished tree (its ``info["stats"]`` is set by `run_search`).
        answer: the answer the method chose, or None.
        method: the method name.
        config: the method's config dataclass (or its dict, as recorded in ``tree.info``).
        extra: more fields to add (``rollouts``, ``seed``...).
    """
    return {
        "method": method,
        "answer": answer,
        "chosen": list(tree.chosen),
        "nodes": len(tree),
        "stats": dict(tree.info.get("stats") or {}),
        "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config,
        **extra,
    }

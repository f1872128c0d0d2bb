"""Search at inference: baselines, MCTSr, LLaMA-Berry SR-MCTS with PPRM + EBC, LLaMA-O1 meta-action
MCTS, all run by one batched engine (`openberry.search.engine`). No module here imports torch.

The methods are listed in `openberry.search.registry`. The names below are imported on first use,
so that importing the registry (``berry --help``) or the engine does not import every search
implementation.
"""

import importlib
from typing import Any

__all__ = [
    "METHODS",
    "SearchError",
    "SearchResult",
    "SearchStats",
    "make_config",
    "make_search",
    "run_search",
]

_HOME = {
    "METHODS": "openberry.search.methods",
    "make_config": "openberry.search.methods",
    "make_search": "openberry.search.methods",
    "SearchError": "openberry.search.engine",
    "SearchResult": "openberry.search.engine",
    "SearchStats": "openberry.search.engine",
    "run_search": "openberry.search.engine",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME])

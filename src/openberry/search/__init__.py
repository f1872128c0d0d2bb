"""Search at inference: baselines, MCTSr, LLaMA-Berry SR-MCTS with PPRM + EBC, LLaMA-O1 meta-action
MCTS, all run by one batched engine (`openberry.search.engine`). No module here imports torch.
"""

from openberry.search.engine import SearchError, SearchResult, SearchStats, run_search
from openberry.search.methods import METHODS, make_config, make_search

__all__ = [
    "METHODS",
    "SearchError",
    "SearchResult",
    "SearchStats",
    "make_config",
    "make_search",
    "run_search",
]

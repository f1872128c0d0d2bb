"""The search methods, each written once: name, config, search function, budget rule, help.

The command line (``berry solve``, ``berry eval``), the server's ``berry-<method>`` models and
`openberry.search.methods` all read `REGISTRY`. The config class and the search function are
named by ``"module:attribute"`` paths and imported on first use, so this module imports only the
standard library and ``berry --help`` stays fast.

One budget knob, ``rollouts = N``, is shared by all methods; `Method.budget` says which config
fields it sets and how (`Method.budget_help` says it in words). Compare methods at equal
*generated tokens* (the engine counts them), not at equal N.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_ROLLOUTS", "REGISTRY", "Method", "Scaled"]

DEFAULT_ROLLOUTS = 4
"""The search budget ``rollouts`` when none is given (``berry solve``, ``berry eval``, and
``berry serve`` requests that name none)."""


@dataclass(frozen=True)
class Scaled:
    """A budget rule: the field is set to ``max(at_least, N * times // per)``."""

    times: int = 1
    per: int = 1
    at_least: int = 1

    def __call__(self, rollouts: int) -> int:
        return max(self.at_least, rollouts * self.times // self.per)


@dataclass(frozen=True)
class Method:
    """One search method."""

    name: str
    """The method's name (``--method``, the served model ``berry-<name>``)."""
    summary: str
    """What the method does, in one line."""
    config: str
    """``"module:Class"`` of the method's frozen config dataclass."""
    search: str
    """``"module:function"`` of the search generator ``fn(problem, rng, config)``."""
    budget: tuple[tuple[str, Scaled | int], ...]
    """What ``rollouts = N`` sets: ``(field, rule)`` pairs; a rule is `Scaled` or a constant."""
    budget_help: str
    """`budget` in words."""
    steps: bool = False
    """Its chosen path is a chain of steps (its answer text joins them); else the last node of
    the path is one whole solution."""

    def config_class(self) -> type:
        """The config dataclass (imported on first use)."""
        return _load(self.config)

    def search_function(self) -> Any:
        """The search generator function (imported on first use)."""
        return _load(self.search)

    def budget_fields(self, rollouts: int) -> dict[str, int]:
        """The config fields that ``rollouts = N`` sets, with their values."""
        return {
            field: rule(rollouts) if isinstance(rule, Scaled) else rule
            for field, rule in self.budget
        }


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


_B = "openberry.search.baselines"

REGISTRY: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "greedy",
            "one solution at temperature 0",
            f"{_B}:GreedyConfig",
            f"{_B}:greedy",
            budget=(),
            budget_help="nothing (one solution)",
        ),
        Method(
            "self-consistency",
            "majority vote over sampled solutions",
            f"{_B}:SelfConsistencyConfig",
            f"{_B}:self_consistency",
            budget=(("samples", Scaled()),),
            budget_help="N sampled solutions",
        ),
        Method(
            "best-of-n",
            "the best-scored of N sampled solutions",
            f"{_B}:BestOfNConfig",
            f"{_B}:best_of_n",
            budget=(("samples", Scaled()),),
            budget_help="N sampled solutions",
        ),
        Method(
            "beam",
            "step-level beam search scored per step",
            f"{_B}:BeamConfig",
            f"{_B}:beam",
            budget=(("width", Scaled(per=2)), ("branch", 2)),
            budget_help="N candidates per step: width N/2 (at least 1) x 2 samples per beam",
            steps=True,
        ),
        Method(
            "mctsr",
            "MCTS over whole answers: critique, rewrite, self-reward",
            "openberry.search.mctsr:MCTSrConfig",
            "openberry.search.mctsr:mctsr",
            budget=(("rollouts", Scaled()),),
            budget_help="N rollouts (critique + rewrite + reward)",
        ),
        Method(
            "sr-mcts",
            "LLaMA-Berry SR-MCTS: self-refine, PPRM pairwise judge, EBC ranking",
            "openberry.search.sr_mcts:SRMCTSConfig",
            "openberry.search.sr_mcts:sr_mcts",
            budget=(("rollouts", Scaled()),),
            budget_help="N rollouts (critique + rewrite + PPRM evaluation)",
        ),
        Method(
            "meta-mcts",
            "LLaMA-O1 MCTS over meta-action thoughts (expansion, critic, refine, conclusion)",
            "openberry.search.meta_mcts:MetaMCTSConfig",
            "openberry.search.meta_mcts:meta_mcts",
            budget=(("simulations", Scaled(times=4)),),
            budget_help="4N simulations (a simulation writes two short thoughts)",
            steps=True,
        ),
        Method(
            "step-mcts",
            "PUCT tree search over solution lines: policy prior, value-head value, widening",
            "openberry.search.step_mcts:StepMCTSConfig",
            "openberry.search.step_mcts:step_mcts",
            budget=(("simulations", Scaled()),),
            budget_help="N simulations (each samples the children of one line in one call)",
            steps=True,
        ),
    )
}
"""Method name -> `Method`, in the order the command line lists them."""

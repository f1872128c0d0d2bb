"""Self-play on Ray actors: each actor holds its own copy of the policy and searches a shard of
the round's problems with the learner's current adapter weights.

The driver sends the actors the adapter's tensors (as numpy arrays, through Ray's object store)
and the problems alone; the reference answers stay with the driver, which verifies the trees the
actors return. A shard is searched under a seed derived from the round's seed and its index, so
a run with the same number of workers is reproducible; the trees differ from a one-process run
only as any change of batch composition changes sampled text.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from openberry.errors import BerryError
from openberry.records import Problem
from openberry.search.engine import derive_seed
from openberry.training.rl.config import RLConfig
from openberry.tree import Tree

__all__ = ["RayPlayers"]

logger = logging.getLogger(__name__)


class _Player:
    """A Ray actor: the policy with a LoRA adapter, searching with the weights it is sent."""

    def __init__(self, config: RLConfig) -> None:
        import torch

        from openberry.training.rl.policy import load_policy

        torch.set_num_threads(max(1, config.threads or 1))
        self.config = config
        self.model, self.policy = load_policy(config)

    def play(self, adapter: dict[str, Any], problems: list[dict], seed: int) -> list[dict]:
        import torch
        from peft import set_peft_model_state_dict

        from openberry.search.engine import run_search
        from openberry.training.rl.policy import player_search

        set_peft_model_state_dict(self.model, {k: torch.from_numpy(v) for k, v in adapter.items()})
        self.policy.reset_prefix_cache()
        search = player_search(self.config)
        found = [Problem.from_dict(p) for p in problems]
        results = run_search(
            search, found, self.policy, seed=seed, max_batch=self.config.batch_size
        )
        return [r.tree.to_dict() for r in results]


class RayPlayers:
    """A pool of `_Player` actors on a local or remote Ray cluster."""

    def __init__(self, config: RLConfig) -> None:
        try:
            import ray
        except ImportError as exc:
            raise BerryError(
                "--workers/--ray-address need Ray: pip install 'openberry[ray]'"
            ) from exc
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            if config.ray_address:
                ray.init(address=config.ray_address, log_to_driver=False)
            else:
                ray.init(num_cpus=config.workers, include_dashboard=False, log_to_driver=False)
            self.started = True
        actor = ray.remote(num_cpus=1)(_Player)
        self.pool = [actor.remote(config) for _ in range(config.workers)]
        self.config = config
        logger.info("self-play on %d Ray worker(s)", len(self.pool))

    def play(self, model: Any, problems: Sequence[Problem], round_: int) -> list[Tree]:
        """Search `problems` on the actors with `model`'s current adapter; trees in order."""
        from peft import get_peft_model_state_dict

        adapter = {k: v.detach().cpu().numpy() for k, v in get_peft_model_state_dict(model).items()}
        ref = self.ray.put(adapter)
        n = len(self.pool)
        shards = [list(problems[i::n]) for i in range(n)]
        calls = [
            player.play.remote(
                ref, [p.to_dict() for p in shard], derive_seed(self.config.seed, "play", round_, i)
            )
            for i, (player, shard) in enumerate(zip(self.pool, shards, strict=True))
            if shard
        ]
        out: list[Tree | None] = [None] * len(problems)
        for i, trees in enumerate(self.ray.get(calls)):
            for k, tree in enumerate(trees):
                out[i + k * n] = Tree.from_dict(tree)
        return [t for t in out if t is not None]

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()

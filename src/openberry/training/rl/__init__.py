"""Self-play reinforcement learning (`berry train rl`): search plays training problems, the
verifier grades the answers, the trees become experience in a prioritized replay, and PPO, GRPO
or expert iteration update a LoRA adapter. See `openberry.training.rl.loop` and
docs/training.md.

Importing this package is light: torch, transformers and peft load when a run starts.
"""

from openberry.training.rl.config import ALGOS, RL_RECIPES, RLConfig, RLError

__all__ = ["ALGOS", "RL_RECIPES", "RLConfig", "RLError", "train_rl"]


def train_rl(config: RLConfig, **kwargs: object) -> dict:
    """Run (or resume) self-play RL (`openberry.training.rl.loop.train_rl`)."""
    from openberry.training.rl.loop import train_rl as run

    return run(config, **kwargs)  # type: ignore[arg-type]

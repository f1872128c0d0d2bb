"""`RLConfig`: every setting of `berry train rl`. A field's docstring is its ``--help`` text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from openberry.errors import BerryError

__all__ = ["ALGOS", "COLLECTORS", "RL_RECIPES", "RLConfig", "RLError"]

ALGOS = ("ppo", "grpo", "expert-iteration")
"""The update rules of `berry train rl`."""
COLLECTORS = ("step-mcts", "beam", "self-consistency", "best-of-n", "greedy")
"""Search methods whose trees are policy steps: a node is one line written after its parent's
lines, or one whole solution written after the question."""


class RLError(BerryError, ValueError):
    """A bad RL setting or a run that cannot continue."""


@dataclass(frozen=True)
class RLConfig:
    """Self-play RL: search -> verified trees -> prioritized replay -> update of a LoRA adapter."""

    output_dir: str = ""
    """Run directory: checkpoints/, metrics.jsonl, final/ (the adapter), rl_config.json."""
    model: str = "berry-tiny"
    """Policy to train: a built-in name, a local directory or a hub id (a LoRA adapter is
    added on it; its weights stay frozen)."""
    device: str | None = None
    """Device of the model (``cpu``, ``cuda``, ``cuda:1``; None: the CPU)."""
    dtype: str | None = None
    """Weights dtype (``float32``, ``bfloat16``, ...; None: the checkpoint's)."""
    algo: Literal["ppo", "grpo", "expert-iteration"] = "grpo"
    """Update rule: grpo (group-relative outcome advantage, no value; the best measured on the
    validation split), ppo (clipped surrogate with GAE along root-to-leaf paths, value loss on
    the rating-token value, KL to the reference) or expert-iteration (fit the verified-correct
    paths)."""
    method: str = "self-consistency"
    """Search that plays the training problems: self-consistency or best-of-n (independent
    samples, GRPO's group), greedy, or a step method (step-mcts, beam)."""
    rollouts: int = 8
    """Search budget (the method's rollouts / samples)."""
    search_set: tuple[str, ...] = ()
    """KEY=VALUE overrides of the search config (as berry eval --set)."""
    dataset: str = "arithmetic"
    """Training problems: arithmetic (with the operand curriculum) or a dataset name / file
    with reference answers (one level)."""
    split: str = "train"
    """Split the self-play problems come from."""
    eval_split: str = "validation"
    """Split of the periodic greedy evaluation."""
    levels: tuple[int, ...] = (3, 4, 5, 6)
    """Curriculum levels of the arithmetic task: the operand count of each level's problems."""
    advance_at: float = 0.6
    """Move to the next level when the search's accuracy on the current level's problems in a
    round reaches this."""
    review_share: float = 0.25
    """Share of each round's problems drawn from earlier levels (keeps what was learnt)."""
    level_size: int = 5000
    """Problems per curriculum level (drawn from the split)."""
    rounds: int = 20
    """Self-play rounds (each: search a batch, add its experience, update)."""
    problems_per_round: int = 16
    """Problems searched per round."""
    epochs: float = 1.0
    """Updates per round = epochs * new samples / minibatch_size (rounded up)."""
    minibatch_size: int = 64
    """Samples per gradient step, drawn from the replay."""
    lr: float = 5e-4
    """Learning rate of AdamW on the adapter."""
    warmup_steps: int = 10
    """Linear learning-rate warm-up, in gradient steps."""
    clip_coef: float = 0.2
    """PPO's clipping epsilon (ppo and grpo)."""
    vf_coef: float = 0.5
    """Weight of the value loss (ppo)."""
    kl_coef: float = 0.02
    """Weight of the KL to the reference policy (the adapter disabled)."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    max_grad_norm: float = 1.0
    """Gradient clipping by global norm."""
    gamma: float = 1.0
    """Discount of GAE."""
    gae_lambda: float = 0.95
    """GAE's lambda."""
    norm_adv: bool = True
    """Normalise the advantages of each minibatch to mean 0, std 1."""
    replay_capacity: int = 20000
    """Prioritized replay capacity (samples)."""
    replay_rounds: int | None = None
    """Rounds of experience the replay keeps: 1 learns from the latest round alone
    (on-policy), 0 from every round up to replay_capacity; unset: the algorithm's choice, 1 for
    grpo (chosen on the validation split), 0 for ppo and expert-iteration."""
    alpha: float = 0.6
    """Prioritization exponent (0: uniform)."""
    beta_start: float = 0.4
    """Initial importance-sampling exponent of the replay, annealed linearly to 1."""
    beta_steps: int = 500
    """Gradient steps over which the importance-sampling exponent reaches 1."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA alpha."""
    lora_dropout: float = 0.0
    """LoRA dropout (0 keeps the ratio at 1 before the first step)."""
    lora_target_modules: tuple[str, ...] = (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )
    """Modules that get LoRA adapters."""
    max_length: int = 512
    """Most tokens of a training row (prompts are cut on the left)."""
    eval_every: int = 5
    """Evaluate greedy accuracy every this many rounds (and at the start and the end)."""
    eval_limit: int = 200
    """Problems per evaluation."""
    eval_levels: tuple[int, ...] = (0, 5, 6)
    """Operand counts evaluated (arithmetic; 0: the split's default problems)."""
    batch_size: int = 256
    """Most rows per model call in search and evaluation."""
    seed: int = 0
    """Run seed: problems, sampling and update order derive from it."""
    workers: int = 1
    """Ray actors that play the problems (1: in this process). Each holds a copy of the
    policy and gets the adapter's weights every round."""
    ray_address: str | None = None
    """Join this Ray cluster for the self-play actors instead of starting a local one."""
    threads: int | None = None
    """torch threads (None: torch's default)."""
    checkpoints_kept: int = 2
    """Checkpoints kept (older ones are removed)."""
    tensorboard: bool = False
    """Also write TensorBoard events to OUT/tb (needs the tensorboard extra)."""
    resume: bool = False
    """Continue the run in OUT from its last checkpoint (same settings; --rounds may grow)."""

    @property
    def kept_rounds(self) -> int:
        """`replay_rounds` with the algorithm's choice filled in (0: every round)."""
        if self.replay_rounds is not None:
            return self.replay_rounds
        return 1 if self.algo == "grpo" else 0

    def __post_init__(self) -> None:
        if self.method not in COLLECTORS:
            raise RLError(
                f"method {self.method!r} cannot play: its nodes are not steps written after their "
                f"parents (critiques, rewrites, OpenLongCoT thoughts); choose one of "
                f"{', '.join(COLLECTORS)}"
            )
        if self.algo not in ALGOS:
            raise RLError(f"algo must be one of {', '.join(ALGOS)}, got {self.algo!r}")
        positive = ("rollouts", "rounds", "problems_per_round", "minibatch_size", "max_length")
        for name in (
            *positive,
            "eval_every",
            "eval_limit",
            "level_size",
            "replay_capacity",
            "beta_steps",
        ):
            if getattr(self, name) < 1:
                raise RLError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.replay_rounds is not None and self.replay_rounds < 0:
            raise RLError(f"replay_rounds must be >= 0, got {self.replay_rounds}")
        if self.workers < 1:
            raise RLError(f"workers must be >= 1, got {self.workers}")
        if not 0.0 <= self.advance_at <= 1.0:
            raise RLError(f"advance_at must be in [0, 1], got {self.advance_at}")
        if not 0.0 <= self.review_share < 1.0:
            raise RLError(f"review_share must be in [0, 1), got {self.review_share}")
        if self.epochs <= 0 or self.lr <= 0:
            raise RLError("epochs and lr must be > 0")
        if not self.levels:
            raise RLError("levels must name at least one operand count")


RL_RECIPES: dict[str, dict[str, object]] = {
    "tiny-rl": {
        "model": "berry-tiny",
        "algo": "grpo",
        "method": "self-consistency",
        "rollouts": 8,
        "levels": (0,),
        "problems_per_round": 16,
        "epochs": 1.0,
        "rounds": 50,
        "eval_every": 10,
        "eval_levels": (0, 5),
        "threads": 2,
        "seed": 0,
        "replay_rounds": 0,
    },
}
"""Named settings for `berry train rl --recipe NAME` (explicit options win). ``tiny-rl`` is the
run that made the built-in ``berry-tiny-rl`` adapter: GRPO with 8 samples per problem on the
arithmetic task's own distribution, 50 rounds of 16 problems (about three minutes on two CPU
cores), its replay keeping every round (the adapter was made before grpo's default became one)."""

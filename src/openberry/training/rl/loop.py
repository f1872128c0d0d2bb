"""`train_rl`: the self-play loop of `berry train rl`.

Each round (LLaMA-O1's online trainer, seed-spec section 3.5, with its bugs removed):

1. **play** (`self_play`): the current policy searches a batch of training problems drawn by the
   curriculum (`openberry.training.rl.curriculum`); the training-time verifier grades every
   candidate answer in each finished tree (`openberry.evaluation.verify`);
2. **experience** (`experience_rows`): every step of every tree becomes a row with its advantage
   (`openberry.training.rl.experience`: GAE along root-to-leaf paths for ppo, the group baseline
   for grpo, verified paths for expert iteration), the old and reference log-probabilities of
   its tokens and, for ppo, the value prompt and target;
3. **replay** (`openberry.training.rl.replay`): rows enter the prioritized replay at the highest
   priority; ``epochs * new rows / minibatch_size`` minibatches are drawn from it with importance
   weights, each one gradient step (`openberry.training.rl.update.Learner`), and the rows'
   priorities are set from their new errors;
4. **curriculum, evaluation, checkpoint**: the level moves up when the search solves enough of
   it; greedy accuracy on the evaluation split every ``eval_every`` rounds; a checkpoint after
   every round (`openberry.training.rl.checkpoint`), from which ``resume`` continues exactly.

Where we depart from LLaMA-O1: the old log-probabilities are the sampling policy's (not the base
model's), advantages run root-to-leaf, the replay is a sum tree saved as JSON, a KL term to the
reference, an entropy bonus, gradient clipping and a learning-rate warm-up are added, and the
defaults are GRPO on independent samples, which beat PPO on search trees on the validation split
(docs/rl.md says why).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from openberry.evaluation.verify import VERIFIED, verify_tree
from openberry.fileio import write_text_atomic
from openberry.grading import is_equivalent
from openberry.records import Example
from openberry.search import make_search
from openberry.search.engine import derive_seed, run_search
from openberry.training.rl.config import RLConfig, RLError
from openberry.training.rl.curriculum import CurriculumState, advance, draw_round
from openberry.training.rl.experience import (
    expert_targets,
    grpo_targets,
    ppo_targets,
    tree_samples,
)
from openberry.training.rl.policy import load_policy, player_search
from openberry.training.rl.replay import PrioritizedReplay, ReplayConfig
from openberry.tree import Tree

__all__ = ["evaluate_greedy", "experience_rows", "self_play", "train_rl"]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------- problems


def levels_of(config: RLConfig) -> list[list[Example]]:
    """The curriculum's levels: for arithmetic, the split's problems with each level's operand
    count (ids tagged with it); for another dataset, its examples as one level."""
    if config.dataset != "arithmetic":
        from openberry.data.datasets import load_examples

        examples = load_examples(config.dataset, split=config.split, limit=config.level_size)
        labelled = [e for e in examples.examples if e.answer is not None]
        if not labelled:
            raise RLError(f"{config.dataset}: no example with a reference answer")
        return [labelled]
    return [_arithmetic(config.split, k, config.level_size, config.seed) for k in config.levels]


def _arithmetic(split: str, operands: int, limit: int, seed: int) -> list[Example]:
    from openberry.data.arithmetic import ArithmeticConfig, load_split

    if operands == 0:
        return load_split(split, limit=limit, seed=seed)
    task = ArithmeticConfig(min_operands=operands, max_operands=operands)
    out = []
    for e in load_split(split, limit=limit, config=task, seed=seed):
        problem = dataclasses.replace(e.problem, id=f"{e.problem.id}@{operands}")
        out.append(dataclasses.replace(e, problem=problem))
    return out


# --------------------------------------------------------------------------------- self-play


def self_play(
    policy: Any, examples: Sequence[Example], config: RLConfig, round_: int, players: Any = None
) -> list[tuple[Tree, bool]]:
    """Search `examples` with the current policy (on Ray `players` when given); each verified
    tree and whether its chosen answer is right. The search sees the problems only; the
    verifier runs after it, here."""
    problems = [e.problem for e in examples]
    if players is not None:
        trees = players.play(policy.model, problems, round_)
    else:
        seed = derive_seed(config.seed, "play", round_)
        results = run_search(
            player_search(config), problems, policy, seed=seed, max_batch=config.batch_size
        )
        trees = [r.tree for r in results]
    out = []
    for example, tree in zip(examples, trees, strict=True):
        verified = verify_tree(tree, lambda a, gold=example.answer: is_equivalent(a, gold))
        out.append((verified, _chosen_is_right(verified)))
    return out


def _chosen_is_right(tree: Tree) -> bool:
    """The verifier's verdict on the tree's chosen answer (its last chosen node is a verified
    candidate; no answer, or no chosen path, is wrong)."""
    return bool(tree.chosen) and tree.nodes[tree.chosen[-1]].info.get(VERIFIED) is True


def experience_rows(learner: Any, trees: Sequence[Tree], config: RLConfig) -> tuple[list, dict]:
    """Training rows of the round's trees (see the module docstring) and their statistics."""
    from openberry.training.rl.update import explained_variance

    per_tree = [tree_samples(tree) for tree in trees]
    values_seen, targets_seen = [], []
    if config.algo == "ppo":
        values = learner.tree_values(per_tree)  # every tree's value prompts in shared batches
        per_tree = [
            ppo_targets(samples, v, config.gamma, config.gae_lambda)
            for samples, v in zip(per_tree, values, strict=True)
        ]
        for samples, v in zip(per_tree, values, strict=True):
            for s in samples:
                if s.value_target is not None and s.node in v:
                    values_seen.append(v[s.node])
                    targets_seen.append(s.value_target)
    elif config.algo == "grpo":
        per_tree = [[s for s in grpo_targets(x) if s.advantage != 0.0] for x in per_tree]
    else:
        per_tree = [expert_targets(x) for x in per_tree]
    flat = [s for samples in per_tree for s in samples]
    rows = learner.encode(flat) if flat else []
    stats = {"rows": len(rows), "explained_variance": explained_variance(values_seen, targets_seen)}
    return learner.annotate(rows) if rows else rows, stats


# --------------------------------------------------------------------------------- evaluation


def evaluate_greedy(policy: Any, sets: dict[str, list[Example]], config: RLConfig) -> dict:
    """Greedy accuracy of the policy on each evaluation set (``eval_<name>``)."""
    out = {}
    search = make_search("greedy")
    for name, examples in sets.items():
        results = run_search(
            search, [e.problem for e in examples], policy, seed=config.seed, max_batch=512
        )
        right = sum(
            is_equivalent(r.answer, e.answer) for r, e in zip(results, examples, strict=True)
        )
        out[f"eval_{name}"] = right / len(examples) if examples else None
    return out


def eval_sets(config: RLConfig) -> dict[str, list[Example]]:
    """The evaluation sets: ``default`` and ``ops<k>`` for arithmetic, else the dataset's
    evaluation split."""
    if config.dataset != "arithmetic":
        from openberry.data.datasets import load_examples

        found = load_examples(config.dataset, split=config.eval_split, limit=config.eval_limit)
        return {"default": list(found.examples)}
    return {
        ("default" if k == 0 else f"ops{k}"): _arithmetic(
            config.eval_split, k, config.eval_limit, 0
        )
        for k in config.eval_levels
    }


# --------------------------------------------------------------------------------- the run


class _Metrics:
    """``metrics.jsonl`` (one object per round) and, when asked, TensorBoard."""

    def __init__(self, out: Path, keep_rounds: int | None, tensorboard: bool) -> None:
        self.path = out / "metrics.jsonl"
        rows = []
        if keep_rounds is not None and self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if line.strip() and json.loads(line).get("round", 0) <= keep_rounds:
                    rows.append(line)
        # Replaced atomically: a kill mid-rewrite must not lose the rounds before the checkpoint.
        write_text_atomic(self.path, "".join(r + "\n" for r in rows))
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise RLError("--tensorboard needs: pip install 'openberry[tensorboard]'") from exc
            self.writer = SummaryWriter(str(out / "tb"))

    def log(self, row: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
        if self.writer is not None:
            for key, value in row.items():
                if isinstance(value, int | float) and key != "round":
                    self.writer.add_scalar(key, value, row["round"])
            self.writer.flush()


def _update(learner: Any, replay: PrioritizedReplay, n_new: int, config: RLConfig, r: int) -> dict:
    """The round's gradient steps on minibatches drawn from the replay; mean statistics."""
    import numpy as np
    import torch

    steps = math.ceil(config.epochs * n_new / config.minibatch_size) if n_new else 0
    rng = np.random.default_rng(derive_seed(config.seed, "replay", r))
    torch.manual_seed(derive_seed(config.seed, "update", r))
    sums: dict[str, float] = {}
    for _ in range(steps):
        idx, items, weights = replay.sample(min(config.minibatch_size, len(replay)), rng)
        errors, stats = learner.step(items, weights)
        replay.update_priorities(idx, errors)
        replay.step()
        for k, v in stats.items():
            sums[k] = sums.get(k, 0.0) + v
    return {"updates": steps, **{k: v / steps for k, v in sums.items()}} if steps else {}


def _play_stats(played: Sequence[tuple[int, Tree, bool]], level: int) -> dict[str, Any]:
    at = [(t, ok) for k, t, ok in played if k == level]
    correct = [any(n.info.get(VERIFIED) is True for n in t.nodes) for t, _ in at]
    tokens = [t.info.get("stats", {}).get("generated_tokens", 0) for _, t, _ in played]
    return {
        "play_accuracy": sum(ok for _, ok in at) / len(at) if at else None,
        "play_oracle": sum(correct) / len(correct) if correct else None,
        "play_all_accuracy": sum(ok for _, _, ok in played) / len(played) if played else None,
        "play_tokens": sum(tokens) / len(tokens) if tokens else 0,
    }


def _run_round(ctx: dict[str, Any], r: int) -> dict[str, Any]:
    """Play, learn from it and move the curriculum: round `r`'s metrics."""
    config, learner, replay = ctx["config"], ctx["learner"], ctx["replay"]
    state: CurriculumState = ctx["curriculum"]
    rng = random.Random(derive_seed(config.seed, "draw", r))
    picks = draw_round(ctx["levels"], state, config.problems_per_round, config.review_share, rng)
    trees = self_play(ctx["policy"], [e for _, e in picks], config, r, ctx.get("players"))
    played = [(k, t, ok) for (k, _), (t, ok) in zip(picks, trees, strict=True)]
    rows, exp_stats = experience_rows(learner, [t for t, _ in trees], config)
    for row in rows:
        replay.add({**row, "round": r})
    if config.kept_rounds:
        replay.keep(lambda item: item["round"] > r - config.kept_rounds)
    update_stats = _update(learner, replay, len(rows), config, r)
    ctx["policy"].reset_prefix_cache()
    play = _play_stats(played, state.level)
    ctx["curriculum"] = advance(state, play["play_accuracy"], config.advance_at, len(ctx["levels"]))
    level_name = config.levels[state.level] if config.dataset == "arithmetic" else 0
    return {"level": state.level, "operands": level_name, **play, **exp_stats, **update_stats}


def _state(ctx: dict[str, Any], round_: int) -> dict[str, Any]:
    c = ctx["curriculum"]
    return {
        "round": round_,
        "level": c.level,
        "rounds_at_level": c.rounds_at_level,
        "updates": ctx["learner"].steps,
        "elapsed_s": ctx["elapsed"],
    }


def train_rl(
    config: RLConfig,
    *,
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> dict:
    """Run (or resume) self-play RL; returns the result written to ``OUT/result.json``.

    Args:
        config: the run's settings.
        progress: called with 1 after each round.
        on_start: called once with the number of rounds already done (a resumed run).
    """
    ctx, start = _prepare(config)
    if on_start is not None:
        on_start(start)
    metrics = ctx["metrics"]
    if start == 0:
        metrics.log(
            {"round": 0, "elapsed_s": 0.0, **evaluate_greedy(ctx["policy"], ctx["evals"], config)}
        )
    for r in range(start, config.rounds):
        t0 = time.perf_counter()
        row = _run_round(ctx, r)
        ctx["elapsed"] += time.perf_counter() - t0
        row = {"round": r + 1, "elapsed_s": round(ctx["elapsed"], 2), **row}
        if (r + 1) % config.eval_every == 0 or r + 1 == config.rounds:
            row.update(evaluate_greedy(ctx["policy"], ctx["evals"], config))
        metrics.log(row)
        _save(ctx, r + 1)
        if progress is not None:
            progress(1)
    if ctx["players"] is not None:
        ctx["players"].close()
    return _finish(ctx)


def _prepare(config: RLConfig) -> tuple[dict[str, Any], int]:
    import torch

    from openberry.training.rl.checkpoint import checkpoints, load_checkpoint
    from openberry.training.rl.update import Learner

    if not config.output_dir:
        raise RLError("output_dir is required")
    out = Path(config.output_dir)
    if config.threads:
        torch.set_num_threads(config.threads)
    found = checkpoints(out)
    if found and not config.resume:
        raise RLError(f"{out} holds a run: pass --resume to continue it, or choose a new --out")
    if config.resume and not found:
        logger.warning("%s has no checkpoint to resume from: starting a new run", out)
    model, policy = load_policy(config)
    learner = Learner(model, policy.tokenizer, policy.runtime, config)
    ctx: dict[str, Any] = {
        "config": config,
        "out": out,
        "model": model,
        "policy": policy,
        "learner": learner,
        "levels": levels_of(config),
        "evals": eval_sets(config),
        "curriculum": CurriculumState(),
        "elapsed": 0.0,
        "replay": PrioritizedReplay(_replay_config(config)),
        "players": None,
    }
    if config.workers > 1 or config.ray_address:
        from openberry.training.rl.players import RayPlayers

        ctx["players"] = RayPlayers(config)
    start = 0
    if found:
        _check_same_config(out, config)
        replay, state = load_checkpoint(found[-1][1], model, learner.optimizer, PrioritizedReplay)
        ctx["replay"], start, ctx["elapsed"] = replay, state["round"], state["elapsed_s"]
        ctx["curriculum"] = CurriculumState(state["level"], state["rounds_at_level"])
        learner.steps = state["updates"]
        policy.reset_prefix_cache()
        logger.info("resuming %s after round %d", out, start)
    else:
        out.mkdir(parents=True, exist_ok=True)
        (out / "rl_config.json").write_text(
            json.dumps(dataclasses.asdict(config), indent=1) + "\n", encoding="utf-8"
        )
    ctx["metrics"] = _Metrics(out, start if found else None, config.tensorboard)
    return ctx, start


def _replay_config(config: RLConfig) -> ReplayConfig:
    return ReplayConfig(
        capacity=config.replay_capacity,
        alpha=config.alpha,
        beta_start=config.beta_start,
        beta_steps=config.beta_steps,
    )


def _check_same_config(out: Path, config: RLConfig) -> None:
    saved = json.loads((out / "rl_config.json").read_text(encoding="utf-8"))
    now = json.loads(json.dumps(dataclasses.asdict(config)))
    ignore = {
        "rounds",
        "threads",
        "tensorboard",
        "output_dir",
        "resume",
        "eval_every",
        "ray_address",
    }
    changed = sorted(k for k in now if k not in ignore and saved.get(k) != now[k])
    if changed:
        raise RLError(
            f"{out} was started with other settings ({', '.join(changed)}); use a new --out"
        )


def _save(ctx: dict[str, Any], round_: int) -> None:
    from openberry.training.rl.checkpoint import save_checkpoint

    save_checkpoint(
        ctx["out"],
        round_,
        ctx["model"],
        ctx["learner"].optimizer,
        ctx["replay"],
        _state(ctx, round_),
        ctx["config"].checkpoints_kept,
    )


def _finish(ctx: dict[str, Any]) -> dict:
    out, model, policy = ctx["out"], ctx["model"], ctx["policy"]
    final = out / "final"
    model.save_pretrained(str(final))
    policy.tokenizer.save_pretrained(str(final))
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x.strip()]
    evals = [r for r in rows if any(k.startswith("eval_") for k in r)]
    result = {
        "rounds": ctx["config"].rounds,
        "updates": ctx["learner"].steps,
        "elapsed_s": round(ctx["elapsed"], 2),
        "level": ctx["curriculum"].level,
        "initial_eval": {k: v for k, v in evals[0].items() if k.startswith("eval_")}
        if evals
        else {},
        "final_eval": {k: v for k, v in evals[-1].items() if k.startswith("eval_")}
        if evals
        else {},
        "final_dir": str(final),
    }
    (out / "result.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result

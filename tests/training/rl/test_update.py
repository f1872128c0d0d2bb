"""The learner on berry-tiny with a LoRA adapter: log-probabilities line up with their tokens,
the reference is the adapter disabled, a step moves only LoRA weights and the ratio."""

from __future__ import annotations

import dataclasses

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from extracttrees import step_tree  # noqa: E402
from openberry.models.hf import HFPolicy  # noqa: E402
from openberry.training.rl.config import RLConfig  # noqa: E402
from openberry.training.rl.experience import ppo_targets, tree_samples  # noqa: E402
from openberry.training.rl.policy import load_policy  # noqa: E402
from openberry.training.rl.update import Learner, explained_variance  # noqa: E402


@pytest.fixture()
def learner():
    torch.manual_seed(0)
    config = RLConfig(output_dir="unused", algo="ppo", lr=1e-2, warmup_steps=1, minibatch_size=8)
    model, policy = load_policy(config)
    return Learner(model, policy.tokenizer, policy.runtime, config), policy


def _rows(learner):
    samples = tree_samples(step_tree())
    samples = ppo_targets(samples, learner.values(samples), 1.0, 0.95)
    return learner.annotate(learner.encode(samples))


def test_old_logprobs_are_the_policy_scores_of_the_action_tokens(learner) -> None:
    lrn, policy = learner
    rows = _rows(lrn)
    samples = {s.node: s for s in tree_samples(step_tree())}
    for row in rows:
        s = samples[row["node"]]
        want = policy.score([s.prompt], [s.action])[0]
        assert len(row["old_logp"]) == len(row["action_ids"]) == len(want)
        assert row["old_logp"] == pytest.approx(list(want), abs=1e-4)


def test_the_reference_is_the_base_model(learner) -> None:
    lrn, _ = learner
    rows = _rows(lrn)
    lrn.step(rows[:4], [1.0] * 4)  # the adapter moves away from zero
    rows = lrn.annotate([dict(r) for r in rows])
    base = HFPolicy.from_pretrained("berry-tiny")
    samples = {s.node: s for s in tree_samples(step_tree())}
    for row in rows:
        s = samples[row["node"]]
        want = base.score([s.prompt], [s.action])[0]
        assert row["ref_logp"] == pytest.approx(list(want), abs=1e-4)
    assert any(
        max(abs(a - b) for a, b in zip(r["old_logp"], r["ref_logp"], strict=True)) > 1e-3
        for r in rows
    )


def test_a_step_moves_only_lora_weights_and_the_ratio(learner) -> None:
    lrn, _ = learner
    rows = _rows(lrn)
    before = {n: p.detach().clone() for n, p in lrn.model.named_parameters()}
    errors, stats = lrn.step(rows, [1.0] * len(rows))
    assert len(errors) == len(rows) and all(e >= 0 for e in errors)
    for key in ("loss", "policy_loss", "value_loss", "kl_ref", "clip_fraction", "grad_norm"):
        assert key in stats and stats[key] == stats[key]  # present and not NaN
    changed = {n for n, p in lrn.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("lora_" in n for n in changed)
    fresh = lrn.annotate([dict(r) for r in rows])
    moved = [
        max(abs(a - b) for a, b in zip(r["old_logp"], f["old_logp"], strict=True))
        for r, f in zip(rows, fresh, strict=True)
    ]
    assert max(moved) > 1e-4  # the ratio is not identically 1 after an update


@pytest.mark.parametrize("algo", ["grpo", "expert-iteration"])
def test_other_algorithms_take_a_finite_step(learner, algo) -> None:
    lrn, _ = learner
    lrn.config = dataclasses.replace(lrn.config, algo=algo)
    rows = _rows(lrn)
    _, stats = lrn.step(rows, [1.0] * len(rows))
    assert stats["loss"] == stats["loss"]
    assert ("nll" in stats) == (algo == "expert-iteration")


def test_explained_variance() -> None:
    assert explained_variance([0.0, 1.0], [0.0, 1.0]) == pytest.approx(1.0)
    assert explained_variance([0.5, 0.5], [0.0, 1.0]) == pytest.approx(0.0)
    assert explained_variance([0.1], [1.0]) is None

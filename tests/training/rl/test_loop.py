"""`train_rl` end to end on berry-tiny, kept tiny: two rounds with finite losses and moved
weights; a run stopped after a round and resumed equals an uninterrupted one."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from safetensors.torch import load_file

from openberry.training.rl import RLConfig, RLError, train_rl

TINY = dict(
    method="step-mcts",
    rollouts=2,
    problems_per_round=3,
    level_size=12,
    levels=(3, 4),
    eval_levels=(0,),
    eval_limit=4,
    eval_every=1,
    minibatch_size=8,
    epochs=1.0,
    threads=1,
    search_set=("max_depth=6",),
)


def _metrics(out):
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if x]


def _adapter(out):
    return load_file(str(out / "final" / "adapter_model.safetensors"))


@pytest.mark.parametrize("algo", ["ppo", "grpo", "expert-iteration"])
def test_two_rounds_train_the_adapter(tmp_path, algo) -> None:
    out = tmp_path / algo
    result = train_rl(RLConfig(output_dir=str(out), algo=algo, rounds=2, **TINY))
    rows = _metrics(out)
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert all("eval_default" in r for r in rows)
    losses = [r["loss"] for r in rows[1:] if "loss" in r]
    assert all(x == x and abs(x) < 1e6 for x in losses)
    adapter = _adapter(out)
    lora_b = [t for k, t in adapter.items() if "lora_B" in k]
    if any(r.get("updates") for r in rows[1:]):
        assert any(float(t.abs().max()) > 0 for t in lora_b)  # B starts at zero
    assert result["final_dir"].endswith("final")
    assert (out / "final" / "adapter_config.json").is_file()
    config = json.loads((out / "final" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "berry-tiny"
    assert len(list((out / "checkpoints").iterdir())) == 2


@pytest.mark.parametrize(("algo", "replay_rounds", "oldest"), [("grpo", None, 1), ("ppo", None, 0)])
def test_the_replay_keeps_the_rounds_the_algorithm_learns_from(
    tmp_path, algo, replay_rounds, oldest
) -> None:
    out = tmp_path / algo
    settings = {**TINY, "method": "self-consistency", "rollouts": 4, "search_set": ()}
    config = RLConfig(
        output_dir=str(out), algo=algo, rounds=2, replay_rounds=replay_rounds, **settings
    )
    assert config.kept_rounds == (1 if algo == "grpo" else 0)
    train_rl(config)
    last = sorted((out / "checkpoints").iterdir())[-1]
    items = json.loads((last / "replay.json").read_text())["items"]
    assert items and min(item["round"] for item in items) == oldest


def test_resume_equals_an_uninterrupted_run(tmp_path) -> None:
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    ppo = {**TINY, "algo": "ppo"}
    train_rl(RLConfig(output_dir=str(whole), rounds=2, **ppo))
    train_rl(RLConfig(output_dir=str(parts), rounds=1, **ppo))
    with pytest.raises(RLError, match="--resume"):
        train_rl(RLConfig(output_dir=str(parts), rounds=2, **ppo))
    train_rl(RLConfig(output_dir=str(parts), rounds=2, resume=True, **ppo))

    def strip(rows):
        return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rows]

    assert strip(_metrics(parts)) == strip(_metrics(whole))
    a, b = _adapter(whole), _adapter(parts)
    assert a.keys() == b.keys()
    assert all(bool((a[k] == b[k]).all()) for k in a)


def test_resume_refuses_other_settings(tmp_path) -> None:
    out = tmp_path / "run"
    train_rl(RLConfig(output_dir=str(out), rounds=1, **TINY))
    with pytest.raises(RLError, match="lr"):
        train_rl(RLConfig(output_dir=str(out), rounds=2, resume=True, lr=1.0, **TINY))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(RLError):
        RLConfig(output_dir="x", algo="dqn")
    with pytest.raises(RLError):
        RLConfig(output_dir="x", rounds=0)
    with pytest.raises(RLError, match="cannot play"):
        RLConfig(output_dir="x", method="mctsr")
    with pytest.raises(RLError):
        train_rl(RLConfig())  # no output dir


def test_self_play_on_two_ray_workers(tmp_path) -> None:
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    settings = {**TINY, "problems_per_round": 4, "algo": "ppo"}
    train_rl(RLConfig(output_dir=str(out), rounds=1, workers=2, **settings))
    row = _metrics(out)[1]
    assert row["rows"] > 0 and row["updates"] >= 1
    assert row["play_all_accuracy"] is not None

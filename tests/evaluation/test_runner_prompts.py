"""The prompt profile of an evaluation: resolved per policy, recorded in every tree, part of the
run's identity (but left out where it is the tiny profile every older run used)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openberry.data.arithmetic import load_split
from openberry.evaluation.runner import EvalConfig, EvalError, ModelSpec, evaluate
from openberry.formats.profiles import PAPER, profile_from_dict
from search.chat_policies import ChatExpert

EXAMPLES = load_split("test", limit=6)


def write_dataset(path: Path) -> Path:
    rows = [
        {"id": f"q{i}", "question": e.problem.question, "answer": e.answer}
        for i, e in enumerate(EXAMPLES)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _config(tmp_path: Path, **kw) -> EvalConfig:
    base = {
        "dataset": str(write_dataset(tmp_path / "data.jsonl")),
        "out": str(tmp_path / "out"),
        "methods": ("mctsr",),
        "budgets": (1,),
        "batch_size": 6,
    }
    return EvalConfig(**{**base, **kw})


def test_identity_leaves_out_the_tiny_profile_of_older_runs(tmp_path) -> None:
    plain = ModelSpec("berry-tiny")
    chat = ModelSpec("some-instruct", chat_template=True)
    assert "prompts" not in _config(tmp_path, policy=plain).identity()
    assert "prompts" not in _config(tmp_path, policy=chat, prompts="tiny").identity()
    assert _config(tmp_path, policy=chat).identity()["prompts"] == "auto"
    assert _config(tmp_path, policy=plain, prompts="paper").identity()["prompts"] == "paper"
    mine = profile_from_dict({"base": "paper", "name": "mine"})
    assert _config(tmp_path, prompts=mine).identity()["prompts"] == {"name": "mine", "sha256": ""}


class _ChatPolicy(ChatExpert):
    chat = True
    """Renders prompts through its chat template: ``auto`` picks ``paper``."""


def _trees(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "mctsr@1" / "trees").glob("*.json"))]


def test_auto_resolves_per_policy_and_every_tree_records_the_profile(tmp_path) -> None:
    cfg = _config(tmp_path)
    evaluate(cfg, models={"policy": _ChatPolicy()})
    trees = _trees(Path(cfg.out))
    assert trees and all(t["info"]["config"]["prompts"]["name"] == "paper" for t in trees)
    assert trees[0]["info"]["config"]["prompts"]["critique"]["user"] == PAPER.critique.user


def test_resume_refuses_another_profile(tmp_path) -> None:
    cfg = _config(tmp_path, prompts="paper")
    evaluate(cfg, models={"policy": ChatExpert()})
    assert json.loads((Path(cfg.out) / "run.json").read_text())["identity"]["prompts"] == "paper"
    with pytest.raises(EvalError, match="prompts: was 'paper', now None"):
        evaluate(_config(tmp_path, prompts="tiny"), resume=True, models={"policy": ChatExpert()})
    again = evaluate(cfg, resume=True, models={"policy": ChatExpert()})
    assert again.written == 0 and again.skipped == 6

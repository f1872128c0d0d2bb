"""`collect`: verified trees and a manifest through the evaluation runner; the answer hint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evaluation.test_runner import EXAMPLES, trees, write_dataset
from openberry.evaluation.runner import EvalConfig
from openberry.training.collect import MANIFEST, collect
from openberry.tree import Tree
from search.policies import ArithmeticExpert


def config(tmp_path: Path, data: Path, **kw) -> EvalConfig:
    base = {
        "dataset": str(data),
        "out": str(tmp_path / "out"),
        "methods": ("self-consistency",),
        "budgets": (3,),
        "batch_size": 4,
    }
    return EvalConfig(**{**base, **kw})


def test_trees_carry_verdicts_and_the_manifest_counts_them(tmp_path) -> None:
    canary = "ORACLE-CANARY-4417"
    answers = [canary if i == 0 else e.answer for i, e in enumerate(EXAMPLES)]
    data = write_dataset(tmp_path / "d.jsonl", answers)
    policy = ArithmeticExpert()
    summary, manifest = collect(config(tmp_path, data), models={"policy": policy})
    assert not any(canary in p for p in policy.prompts)
    run_dir = Path(summary.out) / "self-consistency@3"
    verdicts = []
    for p in sorted((run_dir / "trees").glob("*.json")):
        assert canary not in p.read_text()
        tree = Tree.load(p)
        assert tree.info["verification"]["grader"] == "openberry"
        verdicts += [n.info["verified"] for n in tree.nodes[1:]]
    assert len(verdicts) == 3 * len(EXAMPLES) and any(verdicts) and not all(verdicts)
    on_disk = json.loads((Path(summary.out) / MANIFEST).read_text())
    assert on_disk == manifest and manifest["hint_answer"] is False
    run = manifest["runs"]["self-consistency@3"]
    assert run["problems"] == run["trees"] == len(EXAMPLES)
    assert run["config"]["samples"] == 3 and manifest["seed"] == 0
    assert 0 < run["oracle_coverage"] <= 1 and run["accuracy"] <= run["oracle_coverage"]
    assert run["correct_answers"] == sum(
        1
        for r in map(json.loads, (run_dir / "records.jsonl").read_text().splitlines())
        for c in r["samples"][0]["candidates"]
        if c["correct"]
    )


def test_hint_answer_reaches_the_search_and_is_recorded(tmp_path) -> None:
    data = write_dataset(tmp_path / "d.jsonl")
    policy = ArithmeticExpert()
    cfg = config(tmp_path, data, hint_answer=True)
    _, manifest = collect(cfg, models={"policy": policy})
    assert manifest["hint_answer"] is True
    assert any(f"(The answer is {EXAMPLES[0].answer}.)" in p for p in policy.prompts)
    run_json = json.loads((Path(cfg.out) / "run.json").read_text())
    assert run_json["identity"]["hint_answer"] is True and "HINT" in run_json["oracle"]
    for p in (Path(cfg.out) / "self-consistency@3" / "trees").glob("*.json"):
        tree = Tree.load(p)
        assert tree.info["hint_answer"] is True
        assert "(The answer is" not in tree.problem.question + tree.nodes[0].text


def test_collect_command_defaults_to_the_train_split(tmp_path, capsys) -> None:
    from openberry.cli.main import main

    out = tmp_path / "col"
    rc = main(
        [
            "collect",
            "--dataset",
            "arithmetic",
            "--limit",
            "2",
            "--method",
            "greedy",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["split"] == "train" and manifest["runs"]["greedy@1"]["problems"] == 2
    assert "oracle coverage" in capsys.readouterr().out
    tree = Tree.load(next((out / "greedy@1" / "trees").glob("*.json")))
    assert tree.problem.id.startswith("arithmetic/train/")


@pytest.mark.slow
def test_collect_resumed_after_kill_9_writes_the_trees_of_an_uninterrupted_run(tmp_path) -> None:
    data = write_dataset(tmp_path / "data.jsonl")
    cmd = [sys.executable, "-m", "openberry.cli.main", "collect", "--dataset", str(data)]
    cmd += ["--method", "step-mcts", "--rollouts", "3", "--batch-size", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [*cmd, "--out", str(tmp_path / "full")], check=True, env=env, capture_output=True
    )
    killed = tmp_path / "killed"
    rec = killed / "step-mcts@3" / "records.jsonl"
    proc = subprocess.Popen([*cmd, "--out", str(killed)], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if rec.is_file() and rec.read_text().count("\n") >= 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    assert proc.wait() == -signal.SIGKILL, "the collection finished before it could be killed"
    assert not (killed / MANIFEST).exists()
    subprocess.run(
        [*cmd, "--out", str(killed), "--resume"], check=True, env=env, capture_output=True
    )
    assert trees(killed, "step-mcts@3") == trees(tmp_path / "full", "step-mcts@3")
    for name in ("full", "killed"):
        manifest = json.loads((tmp_path / name / MANIFEST).read_text())
        assert manifest["runs"]["step-mcts@3"]["problems"] == len(EXAMPLES)

"""The learning data path end to end, as a user runs it: collect -> extract -> train pprm, train
value and train sft -> the trained models serve as ``--judge`` (Yes/No, or a policy in the
likelihood frame) and ``--value-model``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from evaluation.test_runner import write_dataset
from openberry.cli.main import main
from openberry.evaluation.runner import EvalConfig
from openberry.training.collect import collect
from search.policies import ArithmeticExpert


@pytest.mark.slow
def test_collect_extract_train_pprm_and_value_then_search_with_them(tmp_path, capsys) -> None:
    data = write_dataset(tmp_path / "d.jsonl")
    cfg = EvalConfig(
        dataset=str(data), out=str(tmp_path / "col"), methods=("self-consistency",), budgets=(4,)
    )
    collect(cfg, models={"policy": ArithmeticExpert()})  # its 2nd sample of a prompt slips
    pairs, values = tmp_path / "pairs.jsonl", tmp_path / "values.jsonl"
    assert main(["-q", "extract", "pairs", cfg.out, "--out", str(pairs)]) == 0
    assert main(["-q", "extract", "values", cfg.out, "--out", str(values)]) == 0
    rows = [json.loads(line) for line in pairs.read_text().splitlines()]
    assert rows and {r["label"] for r in rows} == {0, 1}
    common = ["--model", "berry-tiny", "--max-steps", "4", "--eval-fraction", "0.3"]
    common += ["--eval-steps", "2", "--save-steps", "4", "--batch-size", "4", "--threads", "1"]
    for stage, rows_file in (("pprm", pairs), ("value", values)):
        out = tmp_path / stage
        assert (
            main(["-q", "train", stage, "--data", str(rows_file), "--out", str(out), *common]) == 0
        )
        logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        losses = [m[k] for m in logged for k in ("loss", "eval_loss") if k in m]
        assert losses and all(math.isfinite(x) for x in losses)
        assert (out / "final" / "config.json").is_file()
    capsys.readouterr()
    argv = ["solve", "Compute 21 + 12 + 3.", "--rollouts", "2", "--out", str(tmp_path / "s")]
    assert main([*argv, "--method", "sr-mcts", "--judge", str(tmp_path / "pprm" / "final")]) == 0
    argv[-1] = str(tmp_path / "s2")
    value_model = str(tmp_path / "value" / "final")
    assert main([*argv, "--method", "step-mcts", "--value-model", value_model]) == 0
    assert Path(tmp_path / "s2" / "tree.json").is_file()
    shortcut, sft = tmp_path / "shortcut.jsonl", tmp_path / "sft"
    assert main(["-q", "extract", "shortcut", cfg.out, "--out", str(shortcut)]) == 0
    assert main(["-q", "train", "sft", "--data", str(shortcut), "--out", str(sft), *common]) == 0
    argv[-1] = str(tmp_path / "s3")
    judge = ["--judge", str(sft / "final"), "--set", "scorer_config.judge_frame=likelihood"]
    assert main([*argv, "--method", "best-of-n", "--set", "scorer=pprm", *judge]) == 0
    tree = json.loads((tmp_path / "s3" / "tree.json").read_text())
    assert len(tree["nodes"]) == 3 and tree["chosen"]

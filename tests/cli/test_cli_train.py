"""`berry train sft` on a tiny Llama saved to a temporary directory (no downloads)."""

from __future__ import annotations

import json

import pytest

import openberry.cli.main as cli_main
from importcheck import imported_roots
from models.tiny import save_tiny_model


@pytest.fixture(autouse=True)
def _train_command_only(monkeypatch):
    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", ("openberry.cli.train",))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    pytest.importorskip("torch")
    return save_tiny_model(tmp_path_factory.mktemp("tiny"))


def test_help_has_examples(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli_main.main(["train", "sft", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    for flag in ("--from-scratch", "--lora", "--resume", "--no-packing", "--recipe"):
        assert flag in out
    assert "Peak learning rate" in out  # help text from the SFTConfig field docstring
    assert cli_main.main(["train"]) == 2  # no stage: help, failure


def test_short_run_writes_final_and_metrics(model_dir, tmp_path, capsys) -> None:
    rows = [{"text": f"Compute {a} + 3.\n{a} + 3 = {a + 3}"} for a in range(12)]
    rows += [{"prompt": f"Q: {a}+1=?\nA: ", "completion": str(a + 1)} for a in range(12)]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    argv = ["train", "sft", "--model", str(model_dir), "--data", str(data), "--out", str(out)]
    argv += ["--max-steps", "4", "--batch-size", "4", "--max-length", "24", "--eval-steps", "2"]
    argv += ["--save-steps", "2", "--logging-steps", "1", "--warmup-steps", "0", "--threads", "1"]
    argv += ["--eval-fraction", "0.1", "--save-dtype", "bfloat16"]
    assert cli_main.main(argv) == 0
    stdout = capsys.readouterr().out
    assert "trained to step 4" in stdout and f"final model: {out / 'final'}" in stdout
    assert (out / "final" / "model.safetensors").is_file()
    assert (out / "final" / "tokenizer.json").is_file()
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "loss" in r] == [1, 2, 3, 4]
    assert json.loads((out / "sft_config.json").read_text())["save_dtype"] == "bfloat16"
    # Same dir again without --resume: refused with one line.
    assert cli_main.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("berry train: error: output dir") and "--resume" in err[-1]


def test_errors_are_one_line_exit_2(tmp_path, capsys) -> None:
    argv = ["train", "sft", "--model", "m", "--data", str(tmp_path / "missing.jsonl")]
    assert cli_main.main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.jsonl: no such file" in err[0]
    assert not (tmp_path / "o").exists()
    assert cli_main.main(argv) == 2
    assert capsys.readouterr().err.strip() == "berry train: error: missing --out"
    with pytest.raises(SystemExit) as exc:
        cli_main.main([*argv, "--out", "o", "--recipe", "nope"])
    assert exc.value.code == 2


def test_module_imports_are_light() -> None:
    code = (
        "import argparse; from openberry.cli import train; "
        "train.register(argparse.ArgumentParser().add_subparsers()); import openberry.training"
    )
    assert imported_roots(code, ("torch", "transformers", "tokenizers", "peft", "numpy")) == []


def test_tiny_recipe_runs_a_few_steps(tmp_path, capsys) -> None:
    """CI runs the berry-tiny recipe end to end for a few steps on a small slice of its corpus."""
    out = tmp_path / "tiny"
    argv = ["train", "sft", "--recipe", "tiny", "--out", str(out), "--threads", "1"]
    argv += ["--data", "arithmetic:pretrain:400", "--max-steps", "3", "--eval-steps", "3"]
    argv += ["--save-steps", "3", "--logging-steps", "1", "--batch-size", "4"]
    assert cli_main.main(argv) == 0
    config = json.loads((out / "sft_config.json").read_text())
    assert config["from_scratch"].endswith("berry_tiny.json")
    assert config["learning_rate"] == 3e-3 and config["max_steps"] == 3
    from transformers import AutoConfig, AutoTokenizer

    model_config = AutoConfig.from_pretrained(out / "final")
    assert (model_config.hidden_size, model_config.num_hidden_layers) == (128, 4)
    tok = AutoTokenizer.from_pretrained(out / "final")
    assert len(tok.encode("<positive_rating>", add_special_tokens=False)) == 1
    assert len(tok.encode("Yes", add_special_tokens=False)) == 1


def test_berry_tiny_is_a_model_name_for_sft(tmp_path) -> None:
    """The built-in name resolves for training as it does for generation (offline)."""
    data = tmp_path / "d.jsonl"
    data.write_text(
        "\n".join(json.dumps({"text": f"Question: Compute {i} + 1."}) for i in range(40))
    )
    out = tmp_path / "ft"
    argv = ["train", "sft", "--model", "berry-tiny", "--data", str(data), "--out", str(out)]
    argv += ["--max-steps", "2", "--max-length", "16", "--batch-size", "4", "--threads", "1"]
    argv += ["--eval-steps", "2", "--save-steps", "2"]
    assert cli_main.main(argv) == 0
    assert (out / "final" / "model.safetensors").is_file()


def test_head_stages_help(capsys) -> None:
    for stage, words in (
        ("pprm", ("--loss", "--eval-file", "--adapter-only", "pair_accuracy", "--judge")),
        ("value", ("--value-field", "auc", "rating")),
    ):
        with pytest.raises(SystemExit) as exc:
            cli_main.main(["train", stage, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert "examples:" in out and "--resume" in out
        assert "Rows per micro-batch" in out  # help from the shared HeadConfig docstrings
        for word in words:
            assert word in out, (stage, word)


def test_pprm_short_run(model_dir, tmp_path, capsys) -> None:
    from openberry.formats.prompts import judge_prompt

    rows = []
    for k in range(12):
        a, b = f"right {k}", f"wrong {k}"
        rows.append({"id": f"q{k}", "pair": f"q{k}", "label": 1, "prompt": judge_prompt("Q", a, b)})
        rows.append({"id": f"q{k}", "pair": f"q{k}", "label": 0, "prompt": judge_prompt("Q", b, a)})
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "judge"
    argv = ["train", "pprm", "--model", str(model_dir), "--data", str(data), "--out", str(out)]
    argv += ["--max-steps", "2", "--batch-size", "4", "--eval-steps", "2", "--save-steps", "2"]
    argv += ["--logging-steps", "1", "--threads", "1", "--eval-fraction", "0.25"]
    assert cli_main.main(argv) == 0
    stdout = capsys.readouterr().out
    assert "trained to step 2" in stdout and "pair_accuracy" in stdout
    assert f"final model: {out / 'final'}" in stdout
    result = json.loads((out / "result.json").read_text())
    assert result["final_eval"]["pairs"] == 3 and result["initial_eval"]["pairs"] == 3
    assert cli_main.main(argv[:2]) == 2
    assert capsys.readouterr().err.strip().endswith("missing --data and --out")


def test_rl_help_and_errors(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli_main.main(["train", "rl", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "--resume" in out and "--algo" in out
    assert "GAE's lambda" in out  # help text from the RLConfig field docstring
    assert cli_main.main(["train", "rl"]) == 2
    assert capsys.readouterr().err.strip() == "berry train: error: missing --out"
    assert cli_main.main(["train", "rl", "--out", str(tmp_path), "--advance-at", "2"]) == 2
    assert "advance_at" in capsys.readouterr().err
    for bad in (["--rounds", "0"], ["--algo", "dqn"]):
        with pytest.raises(SystemExit):
            cli_main.main(["train", "rl", "--out", "o", *bad])


def test_rl_one_round(tmp_path, capsys) -> None:
    pytest.importorskip("peft")
    out = tmp_path / "rl"
    argv = ["train", "rl", "--out", str(out), "--rounds", "1", "--rollouts", "2"]
    argv += ["--problems-per-round", "2", "--level-size", "8", "--eval-levels", "0"]
    argv += ["--eval-limit", "4", "--threads", "1", "--algo", "grpo"]
    assert cli_main.main(argv) == 0
    printed = capsys.readouterr().out
    assert "greedy accuracy (before -> after): default" in printed
    assert (out / "final" / "adapter_model.safetensors").is_file()
    assert json.loads((out / "result.json").read_text())["rounds"] == 1


def test_rl_recipe_supplies_defaults_and_options_win(tmp_path, capsys) -> None:
    pytest.importorskip("peft")
    out = tmp_path / "recipe"
    argv = ["train", "rl", "--recipe", "tiny-rl", "--out", str(out), "--rounds", "1"]
    argv += [
        "--problems-per-round",
        "2",
        "--eval-limit",
        "4",
        "--eval-levels",
        "0",
        "--threads",
        "1",
    ]
    assert cli_main.main(argv) == 0
    config = json.loads((out / "rl_config.json").read_text())
    assert config["levels"] == [0] and config["eval_every"] == 10  # the recipe's
    assert config["rounds"] == 1 and config["problems_per_round"] == 2  # the command line's

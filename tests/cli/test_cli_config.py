"""``--config FILE`` (TOML and YAML) for solve, eval and train sft, and help from field docs."""

from __future__ import annotations

import dataclasses
import json

import pytest

import openberry.cli.main as cli_main
from openberry.cli._config import expand_config_files


def _parse(argv: list[str]):
    parser = cli_main.build_parser()
    return parser.parse_args(expand_config_files(parser, argv))


def _write(tmp_path, suffix: str, toml: str, yaml: str):
    path = tmp_path / f"c{suffix}"
    path.write_text(toml if suffix == ".toml" else yaml)
    return str(path)


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_solve_config_file_and_flag_override(tmp_path, suffix) -> None:
    path = _write(
        tmp_path,
        suffix,
        'method = "sr-mcts"\nrollouts = 8\nseed = 3\njson = true\nset = {c = 1.0, gamma = 0.2}\n',
        "method: sr-mcts\nrollouts: 8\nseed: 3\njson: true\nset: {c: 1.0, gamma: 0.2}\n",
    )
    args = _parse(["solve", "Q?", "--config", path, "--rollouts", "2"])
    assert (args.problem, args.method, args.rollouts, args.seed, args.json) == (
        "Q?", "sr-mcts", 2, 3, True
    )  # fmt: skip
    assert dict(args.overrides) == {"c": "1.0", "gamma": "0.2"}
    args = _parse(["solve", "Q?", "--set", "c=2", f"--config={path}"])
    assert args.overrides == [("c", "2")] and args.rollouts == 8  # a flag wins, whole


@pytest.mark.parametrize("suffix", [".toml", ".yml"])
def test_eval_config_file_and_flag_override(tmp_path, suffix) -> None:
    path = _write(
        tmp_path,
        suffix,
        'dataset = "arithmetic"\nout = "runs/x"\nmethod = "greedy,mctsr"\n'
        "budget_sweep = [1, 2]\nbatch-size = 8\nset = ['mctsr:c=1.0']\nprogress = false\n",
        "dataset: arithmetic\nout: runs/x\nmethod: greedy,mctsr\nbudget_sweep: [1, 2]\n"
        "batch-size: 8\nset: ['mctsr:c=1.0']\nprogress: false\n",
    )
    args = _parse(["eval", "--config", path, "--batch-size", "4"])
    assert (args.dataset, args.out, args.methods) == ("arithmetic", "runs/x", ("greedy", "mctsr"))
    assert args.budgets == (1, 2) and args.batch_size == 4 and args.progress is False
    assert args.overrides == [("mctsr", "c", "1.0")]
    # --rollouts on the command line excludes the file's --budget-sweep instead of clashing.
    args = _parse(["eval", "--config", path, "--rollouts", "3"])
    assert args.rollouts == 3 and not hasattr(args, "budgets")
    from openberry.cli.eval import eval_config

    config = eval_config(args)
    assert config.budgets == (3,) and config.batch_size == 8 and config.samples == 1


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_train_sft_config_file_and_flag_override(tmp_path, suffix) -> None:
    path = _write(
        tmp_path,
        suffix,
        'model = "m"\ndata = ["a.jsonl", "b.jsonl"]\nout = "o"\nlr = 1e-4\nlora = true\n'
        "no-packing = true\nmax_steps = 9\n",
        "model: m\ndata: [a.jsonl, b.jsonl]\nout: o\nlr: 1.0e-4\nlora: true\n"
        "no-packing: true\nmax_steps: 9\n",
    )
    args = _parse(["train", "sft", "--config", path, "--max-steps", "5"])
    assert (args.model, args.data, args.output_dir) == ("m", ["a.jsonl", "b.jsonl"], "o")
    assert args.learning_rate == 1e-4 and args.lora is True and args.packing is False
    assert args.max_steps == 5


def test_an_abbreviated_flag_on_the_command_line_wins_over_the_file(tmp_path) -> None:
    """Regression: ``--dat`` (argparse's abbreviation of ``--data``) was not seen as given, so
    the file's list was appended after it and won."""
    path = tmp_path / "c.toml"
    path.write_text('model = "m"\ndata = ["from_file.jsonl"]\nout = "o"\n')
    args = _parse(["train", "sft", "--config", str(path), "--dat", "cli.jsonl", "--max-st", "3"])
    assert args.data == ["cli.jsonl"] and args.max_steps == 3


def test_unknown_key_is_an_error_naming_the_valid_ones(tmp_path, capsys) -> None:
    path = tmp_path / "c.toml"
    path.write_text('dataset = "arithmetic"\nbatchsize = 4\n')
    assert cli_main.main(["eval", "--config", str(path), "--out", "o"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'batchsize'" in err and "batch-size" in err and "dataset" in err
    for bad, message in ((tmp_path / "c.json", "must end in .toml"), (tmp_path / "n.toml", "")):
        assert cli_main.main(["solve", "Q", "--config", str(bad)]) == 2
        assert message in capsys.readouterr().err
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    assert cli_main.main(["solve", "Q", "--config", str(tmp_path / "list.yaml")]) == 2
    assert "mapping" in capsys.readouterr().err


def test_help_comes_from_field_docstrings(capsys) -> None:
    with pytest.raises(SystemExit):
        cli_main.main(["eval", "--help"])
    out = capsys.readouterr().out
    assert "Independent searches per problem" in out  # EvalConfig.samples
    assert "fixed for the life of an evaluation" in out and "(default: 64)" in out
    assert "--config FILE" in out


def test_set_help_lists_a_methods_settings(capsys) -> None:
    assert cli_main.main(["solve", "Q", "--method", "mctsr", "--set", "help"]) == 0
    out = capsys.readouterr().out
    assert "temperature (float, default 0.95)" in out and "scorer_config.ebc_alpha" in out


def test_eval_trees_record_the_whole_config(tmp_path) -> None:
    pytest.importorskip("torch")
    from openberry.search import make_config
    from openberry.tree import Tree

    out = tmp_path / "ev"
    argv = ["-q", "eval", "--dataset", "arithmetic", "--split", "test", "--limit", "1"]
    argv += ["--method", "mctsr", "--rollouts", "1", "--set", "temperature=0.7"]
    argv += ["--out", str(out), "--no-report"]
    assert cli_main.main(argv) == 0
    record = json.loads((out / "mctsr@1" / "records.jsonl").read_text().splitlines()[0])
    tree = Tree.load(out / "mctsr@1" / record["samples"][0]["tree"])
    want = dataclasses.asdict(make_config("mctsr", 1, {"temperature": "0.7"}))
    assert tree.info["config"] == want and want["temperature"] == 0.7


@pytest.mark.parametrize("command", ["eval", "collect"])
def test_judge_and_value_model_options_become_role_specs(command) -> None:
    from openberry.cli.eval import eval_config

    base = [command, "--dataset", "arithmetic", "--out", "o"]
    config = eval_config(
        _parse([*base, "--judge", "j", "--value-model", "v", "--dtype", "bfloat16"])
    )
    assert (config.judge.model, config.value.model) == ("j", "v")
    assert config.value.dtype == "bfloat16" and config.value.adapter is None
    assert "value" in config.identity()
    config = eval_config(_parse(base))
    assert config.judge is None and config.value is None and "value" not in config.identity()

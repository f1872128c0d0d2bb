"""``--prompts`` on `berry solve` and `berry eval`: built-in names, profile files, clear errors
for a bad file, and the profile recorded in the tree and in run.json."""

from __future__ import annotations

import json

import pytest

import openberry.cli.main as cli_main

QUESTION = "Compute 21 + 12 + 3."


@pytest.fixture(autouse=True)
def _commands(monkeypatch):
    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", ("openberry.cli.solve", "openberry.cli.eval"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def berry(*argv: str) -> int:
    return cli_main.main(["-q", *argv])


def test_help_names_the_profiles(capsys) -> None:
    for command in ("solve", "eval"):
        with pytest.raises(SystemExit):
            berry(command, "--help")
        out = capsys.readouterr().out
        assert "--prompts NAME|FILE" in out and "paper" in out and "--chat-template" in out


@pytest.mark.parametrize("command", ["solve", "eval"])
def test_a_bad_profile_file_is_a_usage_error_naming_what_is_wrong(tmp_path, capsys, command):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"solve": "{question}", "critique": "{question} {answer}"}))
    argv = [QUESTION] if command == "solve" else ["--dataset", "arithmetic", "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exc:
        berry(command, *argv, "--prompts", str(bad))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown placeholder {answer}" in err and "bad.json" in err
    with pytest.raises(SystemExit):
        berry(command, *argv, "--prompts", "papers")
    assert "unknown prompt profile 'papers'" in capsys.readouterr().err


def test_solve_with_paper_and_file_profiles_records_them(tmp_path, capsys) -> None:
    pytest.importorskip("torch")
    argv = ["solve", QUESTION, "--method", "greedy", "--set", "max_new_tokens=16", "--json"]
    assert berry(*argv, "--prompts", "paper") == 0
    config = json.loads(capsys.readouterr().out)["config"]
    assert config["prompts"]["name"] == "paper" and config["prompts"]["chat"] is True
    assert "Please reason step by step" in config["prompts"]["solve"]["user"]
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"base": "tiny", "name": "mine"}))
    assert berry(*argv, "--prompts", str(mine)) == 0
    config = json.loads(capsys.readouterr().out)["config"]
    assert config["prompts"]["name"] == "mine" and len(config["prompts"]["sha256"]) == 64
    assert berry(*argv) == 0  # auto on berry-tiny (no chat template): tiny
    assert json.loads(capsys.readouterr().out)["config"]["prompts"]["name"] == "tiny"


def test_eval_records_the_profile_in_run_json_and_resume_keeps_it(tmp_path, capsys) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "ev"
    argv = ["eval", "--dataset", "arithmetic", "--split", "test", "--limit", "1"]
    argv += ["--method", "greedy", "--out", str(out), "--no-report"]
    argv += ["--set", "max_new_tokens=16"]
    assert berry(*argv, "--prompts", "paper") == 0
    meta = json.loads((out / "run.json").read_text())
    assert meta["identity"]["prompts"] == "paper"
    tree = json.loads(next((out / "greedy@1" / "trees").glob("*.json")).read_text())
    assert tree["info"]["config"]["prompts"]["name"] == "paper"
    assert berry(*argv, "--resume") == 2
    assert "prompts: was 'paper', now None" in capsys.readouterr().err
    assert berry(*argv, "--resume", "--prompts", "paper") == 0

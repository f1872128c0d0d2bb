"""`berry eval` through `openberry.cli.main.main`: options, errors, and a run on berry-tiny."""

from __future__ import annotations

import json

import pytest

import openberry.cli.main as cli_main
from importcheck import imported_roots


@pytest.fixture(autouse=True)
def _eval_command_only(monkeypatch):
    monkeypatch.setattr(
        cli_main, "_COMMAND_MODULES", ("openberry.cli.eval", "openberry.cli.report")
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def berry(*argv: str) -> int:
    return cli_main.main(["-q", *argv])


def test_help_explains_the_options(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        berry("eval", "--help")
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--dataset",
        "--path",
        "--method",
        "--rollouts",
        "--budget-sweep",
        "--samples",
        "--resume",
        "--workers",
        "--ray-address",
        "--batch-size",
        "kill -9",
    ):
        assert flag in out


def test_help_imports_no_torch() -> None:
    code = "from openberry.cli.main import main\ntry:\n main(['eval','--help'])\nexcept SystemExit: pass"
    assert imported_roots(code, {"torch", "transformers", "ray", "matplotlib"}) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--method", "mcts"], "unknown method mcts"),
        (["--set", "novalue"], "expected [METHOD:]KEY=VALUE"),
        (["--budget-sweep", "1,x"], "comma-separated integers"),
        (["--budget-sweep", "0,2"], ">= 1"),
        (["--rollouts", "2", "--budget-sweep", "1,2"], "not allowed with argument"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path, capsys, argv, message) -> None:
    with pytest.raises(SystemExit) as exc:
        berry("eval", "--dataset", "arithmetic", "--out", str(tmp_path / "o"), *argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_config_key_fails_before_any_model_loads(tmp_path, capsys) -> None:
    code = berry(
        "eval", "--dataset", "arithmetic", "--method", "mctsr", "--set", "nope=1",
        "--out", str(tmp_path / "o"), "--model", str(tmp_path / "no-such-model"),
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "mctsr@4" in err and "nope" in err


def test_greedy_on_berry_tiny_writes_records_and_refuses_to_overwrite(tmp_path, capsys) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "ev"
    argv = ["eval", "--dataset", "arithmetic", "--split", "test", "--limit", "3"]
    argv += ["--method", "greedy", "--out", str(out), "--no-report"]
    assert berry(*argv) == 0
    rows = [json.loads(x) for x in (out / "greedy@1" / "records.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2]
    assert all(r["reference"] and r["samples"][0]["generated_tokens"] > 0 for r in rows)
    assert "greedy@1" in capsys.readouterr().out
    assert berry(*argv) == 2
    assert "--resume" in capsys.readouterr().err
    assert berry(*argv, "--resume") == 0
    assert len((out / "greedy@1" / "records.jsonl").read_text().splitlines()) == 3


def test_question_longer_than_the_context_is_one_error_line(tmp_path, capsys) -> None:
    """Regression: a 5 MB question ran for 102 s and ended in a traceback."""
    pytest.importorskip("torch")
    data = tmp_path / "long.jsonl"
    rows = [{"id": "ok", "question": "Compute 1 + 2.", "answer": "3"}]
    rows.append({"id": "p7", "question": "1 + " * 1_250_000 + "1", "answer": "3"})
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = ["eval", "--dataset", str(data), "--method", "greedy", "--out", str(tmp_path / "o")]
    assert berry(*argv) == 2
    err = capsys.readouterr().err
    assert "berry eval: error: 1 problem(s) have a question longer than the model's context" in err
    assert "p7 (5,000,001 characters)" in err and "1,024 tokens" in err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_resume_with_a_corrected_base_url_and_field_options(tmp_path, capsys) -> None:
    """Regression: the base URL (and timeouts, retries) were part of the run's identity, so a
    mistyped --base-url could not be corrected on --resume. hf ignores them: this checks the
    options' plumbing and the identity; tests/evaluation/test_runner.py checks the logging."""
    pytest.importorskip("torch")
    data = tmp_path / "qwq.jsonl"
    data.write_text(json.dumps({"prompt": "Compute 1 + 2.", "gold": "3"}) + "\n")
    out = tmp_path / "ev"
    argv = ["eval", "--dataset", str(data), "--method", "greedy", "--out", str(out)]
    argv += ["--question-field", "prompt", "--answer-field", "gold", "--no-report"]
    assert berry(*argv, "--base-url", "http://localhots:8000", "--timeout", "5") == 0
    again = [*argv, "--resume", "--base-url", "http://localhost:8000", "--max-retries", "0"]
    assert berry(*again, "--max-retry-time", "60") == 0
    settings = json.loads((out / "run.json").read_text())["settings"]["policy"]
    assert settings["base_url"] == "http://localhost:8000"
    assert (settings["timeout"], settings["max_retries"], settings["max_retry_time"]) == (
        600.0,
        0,
        60.0,
    )
    capsys.readouterr()
    assert berry(*argv[:-5], "--no-report", "--resume") == 2  # without --question-field
    assert "question_field: was 'prompt', now None" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [("--timeout", "0", "must be a number > 0"), ("--max-retries", "-1", "must be >= 0")],
)
def test_bad_request_options_are_usage_errors(tmp_path, capsys, flag, value, message) -> None:
    with pytest.raises(SystemExit):
        berry("eval", "--dataset", "arithmetic", "--out", str(tmp_path / "o"), flag, value)
    assert message in capsys.readouterr().err

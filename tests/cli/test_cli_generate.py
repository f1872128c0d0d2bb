"""`berry generate` on a tiny Llama saved to a temporary directory (no downloads)."""

from __future__ import annotations

import pytest

import openberry.cli.main as cli_main
from importcheck import imported_roots
from models.tiny import save_tiny_model


@pytest.fixture(autouse=True)
def _generate_command_only(monkeypatch):
    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", ("openberry.cli.generate",))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    pytest.importorskip("torch")
    return save_tiny_model(tmp_path_factory.mktemp("tiny"))


def test_greedy_samples_and_logprobs(model_dir, capsys) -> None:
    argv = ["generate", "--model", str(model_dir), "Q: 1+1=?\\nA:", "--n", "2"]
    argv += ["--temperature", "0", "--max-new-tokens", "5", "--logprobs"]
    assert cli_main.main(argv) == 0
    out = capsys.readouterr().out
    assert "sample 1/2" in out and "sample 2/2" in out
    assert "token logprobs" in out
    blocks = out.split("=== sample 2/2")
    assert blocks[0].split("\n", 1)[1] == blocks[1].split("\n", 1)[1]  # greedy: same twice


def test_two_prompts_seeded(model_dir, capsys) -> None:
    argv = ["generate", "--model", str(model_dir), "abc", "xyz", "--seed", "3"]
    argv += ["--max-new-tokens", "4", "--top-p", "0.9", "--stop", "\\n"]
    assert cli_main.main(argv) == 0
    first = capsys.readouterr().out
    assert "prompt 2 sample 1/1" in first
    assert cli_main.main(argv) == 0
    assert capsys.readouterr().out == first


def test_bad_settings(model_dir, capsys) -> None:
    argv = ["generate", "--model", str(model_dir), "x", "--top-p", "2"]
    assert cli_main.main(argv) == 2
    assert "top_p" in capsys.readouterr().err
    assert cli_main.main(["generate", "--backend", "openai", "--model", "m", "x"]) == 2
    assert cli_main.main(["generate", "--model", str(model_dir / "missing"), "x"]) == 2


def test_module_imports_are_light() -> None:
    code = (
        "import argparse; from openberry.cli import generate; "
        "generate.register(argparse.ArgumentParser().add_subparsers())"
    )
    assert imported_roots(code, ("torch", "transformers", "tokenizers")) == []


def test_timeout_against_a_server_that_never_answers(capsys) -> None:
    """Regression: `--backend openai` against a server that accepted connections and never
    answered retried for over 250 s, with no option to bound it."""
    import socket
    import time

    with socket.create_server(("127.0.0.1", 0)) as listener:  # accepts (backlog), never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        argv = ["generate", "--backend", "openai", "--base-url", url, "--model", "m", "hi"]
        start = time.monotonic()
        assert cli_main.main([*argv, "--timeout", "0.5", "--max-retries", "1"]) == 2
        assert time.monotonic() - start < 4
    err = capsys.readouterr().err
    assert "berry generate: error:" in err and "failed after 2 attempts" in err
    assert "no answer within 0.5 s" in err and "Traceback" not in err

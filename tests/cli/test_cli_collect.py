"""`berry collect` through `openberry.cli.main.main`: resume machinery shared with `berry eval`.

Collection itself is tested in tests/training; these tests cover the command's options.
"""

from __future__ import annotations

import json

import pytest

import openberry.cli.main as cli_main


@pytest.fixture(autouse=True)
def _collect_command_only(monkeypatch):
    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", ("openberry.cli.collect",))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def berry(*argv: str) -> int:
    return cli_main.main(["-q", *argv])


def test_resume_accepts_a_corrected_base_url_like_eval(tmp_path) -> None:
    """Regression (as `berry eval`): the base URL, timeouts and retries do not change results,
    so --resume accepts new values and records them; the model may not change."""
    pytest.importorskip("torch")
    out = tmp_path / "col"
    argv = ["collect", "--dataset", "arithmetic", "--limit", "2", "--method", "greedy"]
    argv += ["--out", str(out)]
    assert berry(*argv, "--base-url", "http://localhots:8000", "--timeout", "5") == 0
    assert berry(*argv, "--resume", "--base-url", "http://localhost:8000") == 0
    meta = json.loads((out / "run.json").read_text())
    assert meta["settings"]["policy"]["base_url"] == "http://localhost:8000"
    assert meta["settings"]["policy"]["timeout"] == 600.0
    assert berry(*argv, "--resume", "--model", "berry-tiny-rl") == 2

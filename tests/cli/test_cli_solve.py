"""`berry solve` on the built-in berry-tiny, run in-process through `openberry.cli.main.main`."""

from __future__ import annotations

import dataclasses
import json

import pytest

import openberry.cli.main as cli_main
from importcheck import imported_roots
from openberry.search import METHODS, make_config
from openberry.search.registry import REGISTRY
from openberry.tree import Tree

QUESTION = "Compute 21 + 12 + 3."


@pytest.fixture(autouse=True)
def _solve_command_only(monkeypatch):
    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", ("openberry.cli.solve",))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def _torch():
    """Skip without torch; decode on one thread (the tiny model gains nothing from more, and on a
    busy 2-core machine a second spinning thread makes each step wait for the scheduler)."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def berry(*argv: str) -> int:
    return cli_main.main(["-q", *argv])


def test_method_table_matches_the_search_methods() -> None:
    assert list(REGISTRY) == list(METHODS)


def test_help_explains_methods_and_rollouts(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        berry("solve", "--help")
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for method in METHODS:
        assert f"  {method} " in out
    assert "4N simulations" in out and "--rollouts" in out


def test_solve_prints_answer_path_and_stats(_torch, capsys, tmp_path) -> None:
    out_dir = tmp_path / "run"
    argv = ["--method", "mctsr", "--rollouts", "1", "--set", "temperature=0.7"]
    code = berry("solve", QUESTION, *argv, "--out", str(out_dir))
    assert code == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("Answer: ")
    assert lines[1].startswith("Chosen path (mctsr")
    assert any(line.startswith("[") and "] answer" in line for line in lines)
    assert any(line.startswith("Stats: ") and "generated tokens" in line for line in lines)
    tree = Tree.load(out_dir / "tree.json")
    assert tree.method == "mctsr" and tree.problem.question == QUESTION
    want = dataclasses.asdict(make_config("mctsr", 1, {"temperature": "0.7"}))
    assert tree.info["config"] == want and want["temperature"] == 0.7 and "stats" in tree.info
    assert f"Tree: {out_dir / 'tree.json'}" in out and f"Viewer: {out_dir / 'tree.html'}" in out
    assert 'id="tree-data"' in (out_dir / "tree.html").read_text(encoding="utf-8")


def test_solve_json_step_method(_torch, capsys) -> None:
    argv = ["solve", QUESTION, "--method", "beam", "--rollouts", "2", "--seed", "1", "--json"]
    assert berry(*argv, "--set", "max_steps=6") == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["method"] == "beam" and obj["seed"] == 1 and obj["problem"] == QUESTION
    assert obj["config"]["max_steps"] == 6 and obj["config"]["width"] == 1
    assert obj["text"] == "\n".join(c["text"] for c in obj["chosen"])
    assert obj["stats"]["nodes"] >= len(obj["chosen"]) + 1
    assert obj["stats"]["calls"] >= 1 and obj["stats"]["generated_tokens"] > 0
    assert "files" not in obj


def test_unknown_setting_is_an_error_before_loading(monkeypatch, capsys) -> None:
    from openberry.models.spec import ModelSpec

    def no_load(*_a, **_k):
        raise AssertionError("the model must not be loaded for a bad --set")

    monkeypatch.setattr(ModelSpec, "build", no_load)
    assert berry("solve", QUESTION, "--set", "no_such_knob=1") == 2
    err = capsys.readouterr().err
    assert "berry solve: error:" in err and "no_such_knob" in err and "rollouts" in err
    assert berry("solve", QUESTION, "--method", "sr-mcts", "--set", "c=abc") == 2
    assert "cannot read 'abc'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["solve", QUESTION, "--method", "nope"],
        ["solve", QUESTION, "--set", "missing-equals"],
        ["solve", QUESTION, "--rollouts", "0"],
    ],
)
def test_bad_arguments_exit_2(argv, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        berry(*argv)
    assert exc.value.code == 2


def test_module_imports_are_light() -> None:
    code = (
        "import argparse; from openberry.cli import solve; "
        "solve.register(argparse.ArgumentParser().add_subparsers())"
    )
    heavy = ("torch", "transformers", "tokenizers", "fastapi", "sympy", "math_verify")
    assert imported_roots(code, heavy) == []

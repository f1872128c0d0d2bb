"""`berry report`, run in-process through `openberry.cli.main.main`."""

from __future__ import annotations

import json

import pytest

import openberry.cli.main as cli_main
from evaldirs import make_eval_dir
from importcheck import imported_roots
from openberry.cli.main import main

ALL_COMMAND_MODULES = cli_main._COMMAND_MODULES  # before the fixture below replaces them


@pytest.fixture(autouse=True)
def _report_command_only(monkeypatch):
    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", ("openberry.cli.report",))


def berry(*argv: str) -> int:
    return main(["-q", *argv])


def test_report_is_registered_after_solve():
    modules = list(ALL_COMMAND_MODULES)
    assert modules.index("openberry.cli.solve") < modules.index("openberry.cli.report")


def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        berry("report", "--help")
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--max-wrong-trees" in out and "--out" in out and "examples:" in out
    assert "oracle" in out


def test_one_dir_writes_the_report_and_prints_the_tables(tmp_path, capsys):
    out = make_eval_dir(tmp_path / "ev")
    assert berry("report", str(out), "--max-wrong-trees", "1") == 0
    printed = capsys.readouterr().out
    assert "| greedy | 1 | 50.0 | 50.0 | 100 |" in printed
    assert "Coverage and oracle metrics (use the reference answer; not accuracy)" in printed
    assert f"report: {out / 'report.md'}" in printed
    assert f"plot:   {out / 'plots' / 'accuracy_vs_tokens.png'}" in printed
    assert "1 tree page(s) of wrong answers" in printed
    summary = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert summary["runs"]["mctsr@4"]["accuracy"] == pytest.approx(7 / 8)
    assert (out / "greedy@1" / "wrong" / "000001-s0.html").is_file()


def test_two_dirs_compare(tmp_path, capsys):
    a = make_eval_dir(tmp_path / "a")
    b = make_eval_dir(tmp_path / "b")
    assert berry("report", str(a), str(b)) == 0
    printed = capsys.readouterr().out
    assert "| Dir | Method |" in printed
    assert "| a | greedy | 1 | 50.0 |" in printed and "| b | mctsr | 4 | 87.5 |" in printed
    assert not (a / "report.md").exists()

    cmp = tmp_path / "cmp"
    assert berry("report", str(a), str(b), "--out", str(cmp)) == 0
    assert f"report: {cmp / 'report.md'}" in capsys.readouterr().out
    assert (cmp / "report.json").is_file() and (cmp / "plots" / "accuracy_vs_budget.png").is_file()


def _fails(capsys, *argv: str) -> str:
    assert berry("report", *argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("berry report: error: ") and "Traceback" not in err
    return err


def test_missing_dir(tmp_path, capsys):
    assert f"{tmp_path / 'nope'}: no such directory" in _fails(capsys, str(tmp_path / "nope"))


def test_dir_without_records(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert "no records found" in _fails(capsys, str(tmp_path / "empty"))


def test_out_with_one_dir_is_refused(tmp_path, capsys):
    out = make_eval_dir(tmp_path / "ev")
    assert "--out is for comparing" in _fails(capsys, str(out), "--out", str(tmp_path / "x"))


def test_negative_max_wrong_trees_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        berry("report", str(tmp_path), "--max-wrong-trees", "-1")
    assert exc.value.code == 2
    assert "must be >= 0" in capsys.readouterr().err


def test_registering_the_command_imports_nothing_heavy():
    code = (
        "import argparse; from openberry.cli import report; "
        "report.register(argparse.ArgumentParser().add_subparsers())"
    )
    heavy = ("torch", "transformers", "matplotlib", "numpy", "sympy", "math_verify")
    assert imported_roots(code, heavy) == []


def test_newer_run_json_is_refused_naming_both_versions(tmp_path, capsys):
    """Regression: `berry report` read a run.json of a newer format version silently."""
    out = make_eval_dir(tmp_path / "ev")
    config = json.loads((out / "run.json").read_text(encoding="utf-8"))
    (out / "run.json").write_text(json.dumps({**config, "version": 3}), encoding="utf-8")
    assert berry("report", str(out)) == 2
    err = capsys.readouterr().err
    assert "run.json version 3 is newer than this openberry reads (version 1)" in err
    assert not (out / "report.md").exists()

"""`berry extract`, run in-process through `openberry.cli.main.main`, on trees in a tmp dir laid
out as a `berry eval` directory."""

from __future__ import annotations

import json

import pytest

from extracttrees import PROBLEM, RIGHT, make_tree, sc_tree, step_tree
from openberry.cli.main import main
from openberry.formats.prompts import solve_prompt
from openberry.training.sft import load_rows


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def evaldir(tmp_path):
    d = tmp_path / "ev"
    sc_tree().save(d / "self-consistency@4" / "trees" / "000000-s0.json")
    step_tree().save(d / "step-mcts@4" / "trees" / "000000-s0.json")
    unverified = make_tree("greedy", [(0, RIGHT, None, None)])
    unverified.save(d / "greedy@1" / "trees" / "000000-s0.json")
    (d / "manifest.json").write_text("{}", encoding="utf-8")
    return d


def test_best_paths_round_trip(evaldir, tmp_path, capsys):
    out = tmp_path / "sft.jsonl"
    assert main(["extract", "best-paths", str(evaldir), "--out", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert line == (f"best-paths: 3 trees read, 1 unverified skipped, 1 problems, 1 rows -> {out}")
    assert _rows(out) == [{
        "id": PROBLEM.id, "kind": "best-paths", "prompt": solve_prompt(PROBLEM.question),
        "completion": RIGHT + "\n",
    }]  # fmt: skip
    assert [r.completion for r in load_rows([str(out)])] == [RIGHT + "\n"]


def test_pairs_summary_counts_outcome_and_step_pairs(evaldir, tmp_path, capsys):
    out = tmp_path / "pairs.jsonl"
    assert main(["extract", "pairs", str(evaldir), "--out", str(out), "--seed", "1"]) == 0
    assert "12 rows (3 outcome pairs, 3 step pairs)" in capsys.readouterr().out
    rows = _rows(out)
    assert [r["label"] for r in rows] == [1, 0] * 6
    assert main(
        ["extract", "pairs", str(evaldir), "--out", str(out), "--pair-kinds", "step",
         "--value-gap", "0.9"]
    ) == 0  # fmt: skip
    assert "2 rows (1 step pairs)" in capsys.readouterr().out


def test_tree_files_and_trees_dir_as_sources(evaldir, tmp_path, capsys):
    out = tmp_path / "v.jsonl"
    files = [str(evaldir / "self-consistency@4" / "trees" / "000000-s0.json")]
    assert main(["extract", "values", *files, "--out", str(out)]) == 0
    assert "1 trees read" in capsys.readouterr().out
    assert main(["extract", "values", str(evaldir / "step-mcts@4"), "--out", str(out)]) == 0
    assert "1 trees read" in capsys.readouterr().out
    assert (
        main(["extract", "values", str(evaldir / "step-mcts@4" / "trees"), "--out", str(out)]) == 0
    )
    assert {r["kind"] for r in _rows(out)} == {"value"}


def test_journey_shortcut_and_openlongcot(evaldir, tmp_path, capsys):
    j, s, o = tmp_path / "j.jsonl", tmp_path / "s.jsonl", tmp_path / "o.jsonl"
    every = ["--detour-rate", "1"]
    assert main(["extract", "journey", str(evaldir), "--out", str(j), *every]) == 0
    assert "1 rows (1 detours, 0 critique reflections)" in capsys.readouterr().out
    (row,) = _rows(j)
    (a, b), *more = row["ignore_spans"]  # masked by default
    assert not more and row["completion"][a:b] not in RIGHT
    plain = tmp_path / "plain.jsonl"
    assert main(["extract", "journey", str(evaldir), "--out", str(plain), *every,
                 "--no-mask-wrong-steps"]) == 0  # fmt: skip
    assert "ignore_spans" not in _rows(plain)[0]
    assert main(["extract", "shortcut", str(evaldir), "--out", str(s), "--journey-k", "1"]) == 0
    assert _rows(s)[0]["completion"] == RIGHT + "\n"
    assert len(_rows(j)[0]["completion"]) > len(RIGHT)
    assert (
        main(["extract", "journey", str(evaldir), "--out", str(o), "--format", "openlongcot"]) == 0
    )
    assert _rows(o)[0]["text"].startswith("<start_of_father_id>-1")
    assert all(r.text for r in load_rows([str(o)]))


def test_only_unverified_trees_is_a_clear_error(tmp_path, capsys):
    make_tree("greedy", [(0, RIGHT, None, None)]).save(tmp_path / "g@1" / "trees" / "a.json")
    assert main(["extract", "pairs", str(tmp_path), "--out", str(tmp_path / "x.jsonl")]) == 2
    assert "has a verified node" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()


def test_bad_options_are_refused(evaldir, tmp_path, capsys):
    out = str(tmp_path / "x.jsonl")
    assert main(["extract", "pairs", str(evaldir), "--out", out, "--pair-kinds", "nope"]) == 2
    assert "pair kinds" in capsys.readouterr().err
    assert main(["extract", "journey", str(evaldir), "--out", out, "--detour-rate", "0"]) == 2
    assert "detour_rate" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["extract", "pairs", str(evaldir), "--out", out, "--journey-k", "0"])


def test_help_explains_every_kind(capsys):
    with pytest.raises(SystemExit):
        main(["extract", "--help"])
    text = capsys.readouterr().out
    for kind in ("best-paths", "pairs", "values", "journey", "shortcut", "openlongcot"):
        assert f"\n  {kind}" in text
    assert '"label"' in text and '"value"' in text

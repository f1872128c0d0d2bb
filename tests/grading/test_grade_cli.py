"""`berry grade`, run in-process through `openberry.cli.main.main`."""

from __future__ import annotations

import json

import pytest

from importcheck import imported_roots
from openberry.cli.main import main


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_single_true(capsys):
    assert main(["grade", r"\frac{1}{2}", "0.5"]) == 0
    assert capsys.readouterr().out == "true\n"


def test_single_false_exits_zero(capsys):
    assert main(["grade", "0.4", "0.5"]) == 0
    assert capsys.readouterr().out == "false\n"


def test_single_verbose_shows_reason(capsys):
    assert main(["grade", "-v", r"so the answer is $\boxed{(1,2)}$", "(2, 1)"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "false"
    assert "reason: not equivalent" in out
    assert "extracted: (1,2)" in out


def test_single_negative_answer_after_double_dash(capsys):
    assert main(["grade", "--", r"-\frac12", "-0.5"]) == 0
    assert capsys.readouterr().out == "true\n"


def test_single_slow_path(capsys):
    assert main(["grade", "x+x", "2x", "--timeout", "10"]) == 0
    assert capsys.readouterr().out == "true\n"


def test_file_mode_writes_verdicts_in_input_order(tmp_path, capsys):
    rows = [
        {"id": 1, "output": r"so $\boxed{\frac12}$", "answer": "0.5"},
        {"id": 2, "output": "x + x", "answer": "2x"},  # slow path
        {"id": 3, "output": "The answer is 41.", "answer": 42},  # numbers are read as text
        {"id": 4, "output": "nothing useful here at all", "answer": "7"},
        {"id": 5, "output": "#### 1,000", "answer": "1000", "correct": "stale"},
        {"id": 6, "output": "3 and 5", "answer": ["5", "3"]},  # list gold, unordered
    ]
    src = tmp_path / "preds.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "verdicts.jsonl"
    args = ["grade", "--file", str(src), "--pred-field", "output", "--gold-field", "answer"]
    assert main([*args, "--out", str(out), "--workers", "2"]) == 0
    assert capsys.readouterr().out == "accuracy: 0.6667 (4/6)\n"
    got = _rows(out)
    assert [r["id"] for r in got] == [1, 2, 3, 4, 5, 6]
    assert [r["correct"] for r in got] == [True, True, False, False, True, True]
    assert got[0] == {**rows[0], "correct": True, "extracted": r"\frac12"}
    assert "reason" not in got[0]
    assert got[2]["reason"] == "not equivalent"
    assert got[2]["extracted"] == "41"
    assert got[3]["reason"] == "no answer found"
    assert got[3]["extracted"] is None
    assert got[4]["correct"] is True  # an input "correct" field is replaced


def test_file_mode_missing_field_names_the_line(tmp_path, capsys):
    src = tmp_path / "preds.jsonl"
    src.write_text('{"output": "1", "answer": "1"}\n\n{"output": "2"}\n', encoding="utf-8")
    out = tmp_path / "v.jsonl"
    args = ["grade", "--file", str(src), "--pred-field", "output", "--gold-field", "answer"]
    code = main([*args, "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{src}:3: missing field 'answer'" in err
    assert not out.exists()


def test_file_mode_null_field_is_an_error(tmp_path, capsys):
    src = tmp_path / "preds.jsonl"
    src.write_text('{"output": null, "answer": "1"}\n', encoding="utf-8")
    assert main(["grade", "--file", str(src), "--pred-field", "output", "--gold-field", "x"]) == 2
    src.write_text('{"output": null, "x": "1"}\n', encoding="utf-8")
    assert main(["grade", "--file", str(src), "--pred-field", "output", "--gold-field", "x"]) == 2
    assert "field 'output' is null" in capsys.readouterr().err


def test_file_mode_bad_json_names_the_line(tmp_path, capsys):
    src = tmp_path / "preds.jsonl"
    src.write_text('{"output": "1", "answer": "1"}\n{oops\n', encoding="utf-8")
    assert (
        main(["grade", "--file", str(src), "--pred-field", "output", "--gold-field", "answer"]) == 2
    )
    assert ":2:" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["grade"],
        ["grade", "1"],
        ["grade", "1", "1", "--out", "x.jsonl"],
        ["grade", "--file", "f.jsonl"],
        ["grade", "1", "1", "--timeout", "0"],
    ],
)
def test_usage_errors(argv, capsys):
    assert main(argv) == 2
    assert "berry grade: error:" in capsys.readouterr().err


def test_help_text(capsys):
    with pytest.raises(SystemExit):
        main(["grade", "--help"])
    out = capsys.readouterr().out
    for word in ("--file", "--pred-field", "--gold-field", "--out", "--timeout", "--workers"):
        assert word in out
    assert "input order" in out


def test_single_answer_does_not_import_sympy():
    """`berry grade '\\frac{1}{2}' '0.5'` is answered by the fast path: no sympy, no pool."""
    code = "from openberry.cli.main import main; main(['grade', r'\\frac{1}{2}', '0.5'])"
    assert imported_roots(code, ("sympy", "math_verify", "pebble", "torch")) == []

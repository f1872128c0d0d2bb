"""`berry grade --file` input errors, run in-process through `openberry.cli.main.main`.

The grading behaviour itself is tested in tests/grading/test_grade_cli.py.
"""

from __future__ import annotations

import openberry.cli.main as cli_main


def test_grade_file_non_utf8_names_the_line(tmp_path, monkeypatch, capsys):
    """Regression: a non-UTF-8 byte in --file printed a UnicodeDecodeError traceback."""
    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", ("openberry.cli.grade",))
    src = tmp_path / "preds.jsonl"
    src.write_bytes(b'{"output": "1", "answer": "1"}\n{"output": "caf\xe9", "answer": "1"}\n')
    argv = ["grade", "--file", str(src), "--pred-field", "output", "--gold-field", "answer"]
    assert cli_main.main(argv) == 2
    err = capsys.readouterr().err
    assert f"berry grade: error: {src}:2: not valid UTF-8" in err
    assert "Traceback" not in err

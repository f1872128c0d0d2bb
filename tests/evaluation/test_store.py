"""Append-only record files: durable appends, torn last lines, damage, duplicates."""

from __future__ import annotations

import json

import pytest

from openberry.evaluation.store import RecordFile, RecordFileError


def _lines(path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_append_then_load_round_trips(tmp_path) -> None:
    f = RecordFile(tmp_path / "r.jsonl")
    assert not f.exists() and f.load() == ([], f.load()[1])
    rows = [{"id": f"p{i}", "x": i, "text": "ünïcode"} for i in range(3)]
    for r in rows:
        f.append(r)
    got, report = f.load()
    assert got == rows and report.torn_line is None and not report.duplicates
    assert all(line.endswith("}") for line in _lines(f.path))


def test_torn_last_line_is_reported_not_counted_and_left_alone_without_repair(tmp_path) -> None:
    f = RecordFile(tmp_path / "r.jsonl")
    f.append({"id": "a"})
    f.append({"id": "b"})
    with f.path.open("a") as h:
        h.write('{"id": "c", "answ')  # kill -9 in the middle of a write
    before = f.path.read_bytes()
    rows, report = f.load(repair=False)
    assert [r["id"] for r in rows] == ["a", "b"]
    assert report.torn_line == 3 and not report.repaired
    assert f.path.read_bytes() == before


def test_repair_moves_the_torn_line_aside_and_appends_continue_cleanly(tmp_path) -> None:
    f = RecordFile(tmp_path / "r.jsonl")
    f.append({"id": "a"})
    with f.path.open("a") as h:
        h.write('{"id": "b", "ans')
    rows, report = f.load(repair=True)
    assert [r["id"] for r in rows] == ["a"] and report.repaired
    assert report.torn_file is not None and '{"id": "b", "ans' in report.torn_file.read_text()
    f.append({"id": "b", "answer": 1})
    rows, report = f.load()
    assert [r["id"] for r in rows] == ["a", "b"] and report.torn_line is None


def test_whole_record_without_its_newline_is_kept_and_the_line_ended(tmp_path) -> None:
    f = RecordFile(tmp_path / "r.jsonl")
    f.path.write_text('{"id": "a"}\n{"id": "b"}')
    rows, report = f.load(repair=True)
    assert [r["id"] for r in rows] == ["a", "b"] and report.torn_line is None
    f.append({"id": "c"})
    assert [json.loads(x)["id"] for x in _lines(f.path)] == ["a", "b", "c"]


def test_damage_before_the_last_line_raises_naming_the_line(tmp_path) -> None:
    f = RecordFile(tmp_path / "r.jsonl")
    f.path.write_text('{"id": "a"}\nnot json\n{"id": "c"}\n')
    with pytest.raises(RecordFileError, match=r"r\.jsonl:2"):
        f.load(repair=True)
    f.path.write_text('{"id": "a"}\n[1, 2]\n{"id": "c"}\n')
    with pytest.raises(RecordFileError, match=r":2: not a JSON object"):
        f.load()


def test_duplicate_ids_keep_the_first_and_are_reported(tmp_path) -> None:
    f = RecordFile(tmp_path / "r.jsonl")
    for r in ({"id": "a", "v": 1}, {"id": "b"}, {"id": "a", "v": 2}):
        f.append(r)
    rows, report = f.load()
    assert rows == [{"id": "a", "v": 1}, {"id": "b"}] and report.duplicates == ["a"]


def test_blank_lines_are_ignored(tmp_path) -> None:
    f = RecordFile(tmp_path / "r.jsonl")
    f.path.write_text('{"id": "a"}\n\n{"id": "b"}\n')
    assert [r["id"] for r in f.load()[0]] == ["a", "b"]

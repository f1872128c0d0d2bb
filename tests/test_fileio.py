"""Atomic file replacement."""

from __future__ import annotations

import pytest

from openberry.fileio import replace_atomically, write_text_atomic


def test_write_text_atomic_creates_parents_and_replaces(tmp_path) -> None:
    path = tmp_path / "a" / "b.txt"
    assert write_text_atomic(path, "one") == path and path.read_text() == "one"
    write_text_atomic(path, "twö", durable=True)
    assert path.read_text(encoding="utf-8") == "twö"
    assert sorted(p.name for p in path.parent.iterdir()) == ["b.txt"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("old")

    def half_then_crash(tmp) -> None:
        tmp.write_text("half")
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError, match="crash"):
        replace_atomically(path, half_then_crash)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]

"""Append-only record files that survive ``kill -9``.

`berry eval` writes one JSON line per finished problem. A line is appended with a single
``os.write`` on a file opened with ``O_APPEND`` and made durable with ``fsync`` before the next
problem is counted as done, so a crash loses at most the problem being written. What a crash can
leave behind is a *torn last line* (no newline, or JSON cut short). `RecordFile.load` detects it:
with ``repair=True`` (what ``--resume`` does) the torn bytes are moved to a ``.torn`` side file and
the file is truncated to its last whole line, so the problem is simply run again; with
``repair=False`` (what reports do) the torn line is reported and left alone. A bad line anywhere
*before* the last one is never a crash artefact: it raises `RecordFileError` naming the line,
because silently dropping a finished record would bias every metric computed from the file.

Duplicate ids (two writers on one file, or a hand-merged file) are reported and the first record
wins; the count is returned so callers can surface it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openberry.errors import BerryError

__all__ = ["LoadReport", "RecordFile", "RecordFileError"]

logger = logging.getLogger(__name__)


class RecordFileError(BerryError, ValueError):
    """A record file is damaged in a way that cannot be a crash artefact; names file and line."""


@dataclass
class LoadReport:
    """What `RecordFile.load` found besides the records."""

    torn_line: int | None = None
    """Line number of a torn last line (None when the file ended cleanly)."""
    repaired: bool = False
    """True when the torn line was moved aside and the file truncated."""
    torn_file: Path | None = None
    """Where the torn bytes were saved."""
    duplicates: list[str] = field(default_factory=list)
    """Ids seen more than once (the first record of each was kept)."""


class RecordFile:
    """One JSONL file of records keyed by ``key`` (default ``"id"``)."""

    def __init__(self, path: str | os.PathLike[str], key: str = "id") -> None:
        self.path = Path(path)
        self.key = key

    def exists(self) -> bool:
        return self.path.is_file() and self.path.stat().st_size > 0

    def load(self, *, repair: bool = False) -> tuple[list[dict[str, Any]], LoadReport]:
        """Read every record; see the module docstring for torn and bad lines.

        Args:
            repair: Move a torn last line aside and truncate the file to its last whole line.

        Raises:
            RecordFileError: A line other than the last is not a JSON object.
        """
        report = LoadReport()
        if not self.path.is_file():
            return [], report
        data = self.path.read_bytes()
        rows, good_end = _scan(data, self.path, self.key, report)
        if report.torn_line is None and data and not data.endswith(b"\n") and repair:
            _end_last_line(self.path)
        if report.torn_line is not None:
            if repair:
                _move_torn_line(self.path, data, good_end, report)
            else:
                logger.warning(
                    "%s:%d: torn last line (an interrupted write) ignored; 'berry eval --resume' "
                    "repairs it and runs that problem again",
                    self.path,
                    report.torn_line,
                )
        if report.duplicates:
            logger.warning(
                "%s: %d duplicate id(s) (first record kept): %s",
                self.path,
                len(report.duplicates),
                ", ".join(report.duplicates[:5]),
            )
        return rows, report

    def append(self, row: Mapping[str, Any]) -> None:
        """Append one record durably: one ``write`` of the whole line, then ``fsync``."""
        line = (json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(line)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        row = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return row if isinstance(row, dict) else None


def _scan(
    data: bytes, path: Path, key: str, report: LoadReport
) -> tuple[list[dict[str, Any]], int]:
    """The records of a file's bytes (first of each `key`) and the offset after the last whole
    line; sets the report's torn last line and duplicates.

    Raises:
        RecordFileError: A line other than the last is not a JSON object.
    """
    rows: list[dict[str, Any]] = []
    seen: set[Any] = set()
    pos = 0
    lineno = 0
    good_end = 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        end = len(data) if nl < 0 else nl + 1
        raw = data[pos:end]
        lineno += 1
        last = end >= len(data)
        row = _parse(raw) if raw.strip() else {}
        if raw.strip() and row is None:
            if not last:
                raise RecordFileError(
                    f"{path}:{lineno}: not a JSON object; the file is damaged before "
                    "its last line (not a crash artefact): fix or remove that line"
                )
            report.torn_line = lineno
            break
        if raw.strip():
            k = row.get(key)
            if k in seen:
                report.duplicates.append(str(k))
            else:
                seen.add(k)
                rows.append(row)
        good_end = end
        pos = end
    return rows, good_end


def _end_last_line(path: Path) -> None:
    """End a file whose last record lacks its newline (a whole record cut just before it), so
    the next append starts a line of its own."""
    with path.open("ab") as f:
        f.write(b"\n")
        f.flush()
        os.fsync(f.fileno())


def _move_torn_line(path: Path, data: bytes, good_end: int, report: LoadReport) -> None:
    """Append the bytes after `good_end` to ``<path>.torn``, truncate the file to `good_end`
    durably, and record the repair in `report`."""
    torn = data[good_end:]
    side = path.with_name(path.name + ".torn")
    with side.open("ab") as f:
        f.write(torn + (b"" if torn.endswith(b"\n") else b"\n"))
    with path.open("r+b") as f:
        f.truncate(good_end)
        f.flush()
        os.fsync(f.fileno())
    report.repaired, report.torn_file = True, side
    logger.warning(
        "%s:%d: torn last line (an interrupted write) moved to %s; that problem will run again",
        path,
        report.torn_line,
        side,
    )

"""JSON Lines reading and writing with errors that name the file and line.

Reading never drops a row silently: a malformed line raises `JSONLError` naming it, unless the
caller asks to skip bad rows, in which case the skipped line numbers are returned so they can be
counted and reported.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from openberry.errors import BerryError
from openberry.fileio import replace_atomically

__all__ = ["JSONLError", "iter_jsonl", "write_jsonl"]


class JSONLError(BerryError, ValueError):
    """A JSONL file could not be read; the message names the file and the line."""


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, row)`` for each non-blank line (1-based line numbers).

    A UTF-8 byte-order mark at the start of the file is ignored.

    Raises:
        JSONLError: the file is missing, a line is not UTF-8 or not valid JSON, or a line is not
            an object.
    """
    path = Path(path)
    if not path.is_file():
        raise JSONLError(f"{path}: no such file")
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if lineno == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise JSONLError(
                    f"{path}:{lineno}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte "
                    f"{exc.start + 1} of the line)"
                ) from exc
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise JSONLError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise JSONLError(
                    f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}"
                )
            yield lineno, row


def write_jsonl(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> int:
    """Write rows atomically (to a temporary file renamed into place); returns the row count."""
    count = 0

    def write(tmp: Path) -> None:
        nonlocal count
        with tmp.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
            f.flush()
            os.fsync(f.fileno())

    replace_atomically(path, write)
    return count

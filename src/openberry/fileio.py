"""Atomic file replacement: a crash never leaves half a file behind.

Every writer of a whole file (trees, viewer pages, reports, plots, JSONL rewrites, run metadata)
writes a sibling ``NAME.tmp`` and renames it over ``NAME``; the rename is atomic on POSIX, so a
reader sees the old file or the new one, never a mix. Appends of single records are a different
mechanism (`openberry.evaluation.store`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["replace_atomically", "write_text_atomic"]


def replace_atomically(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` to fill a temporary sibling of `path`, then rename it to `path`.

    Parent directories are created. The temporary file is removed if ``write`` fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(path: str | os.PathLike[str], text: str, *, durable: bool = False) -> Path:
    """Replace `path` with `text` (UTF-8) atomically; ``durable`` also fsyncs before the rename."""

    def write(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())

    return replace_atomically(path, write)

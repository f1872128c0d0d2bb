"""The project's error base class.

`BerryError` marks errors caused by the user's input, files or environment (a malformed tree file,
an unknown dataset, a missing benchmark file). The CLI prints them as one clear line without a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["BerryError"]


class BerryError(Exception):
    """An error the user can fix; its message says what is wrong and what to do."""

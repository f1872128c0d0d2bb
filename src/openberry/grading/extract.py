"""Final-answer extraction from model or reference text."""

from __future__ import annotations

import re

__all__ = ["last_boxed"]

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*")


def last_boxed(text: str) -> str | None:
    r"""Content of the last ``\boxed{...}`` or ``\fbox{...}`` (brace-matched), else None.

    ``\boxed 5`` (no braces) gives ``5``. Unbalanced braces give None rather than a partial answer.
    """
    matches = list(_BOX_RE.finditer(text))
    for m in reversed(matches):
        i = m.end()
        if i < len(text) and text[i] == "{":
            depth = 0
            for j in range(i, len(text)):
                c = text[j]
                if c == "{" and (j == 0 or text[j - 1] != "\\"):
                    depth += 1
                elif c == "}" and text[j - 1] != "\\":
                    depth -= 1
                    if depth == 0:
                        return text[i + 1 : j].strip()
            continue  # unbalanced: try an earlier box
        token = re.match(r"[^\s$]+", text[i:])
        if token:
            return token.group(0).rstrip(".")
    return None

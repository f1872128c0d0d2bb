"""Which top-level modules does a snippet import? Run in a fresh interpreter, so the answer is
not polluted by what the test session already imported."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable


def imported_roots(code: str, roots: Iterable[str]) -> list[str]:
    """Run `code` in a new Python process; return the loaded modules whose root is in `roots`.

    The snippet's own stdout is ignored; the answer is read from the last line.
    """
    probe = (
        f"{code}\nimport json as _j, sys as _s\n"
        f"print(_j.dumps(sorted(m for m in _s.modules if m.split('.')[0] in {sorted(roots)!r})))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])

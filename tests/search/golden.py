"""Golden trees: a search on a scripted policy must reproduce the stored tree exactly.

Regenerate after an intended change with ``UPDATE_GOLDEN=1 pytest tests/search`` and review the
diff of ``tests/search/golden/*.json`` like code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from openberry.tree import Tree

GOLDEN = Path(__file__).parent / "golden"


def comparable(tree: Tree) -> dict:
    """The tree as a dict without wall-clock figures."""
    data = tree.to_dict()
    stats = dict(data["info"].get("stats", {}))
    stats.pop("wall_time", None)
    data["info"] = {**data["info"], "stats": stats}
    return data


def check_golden(name: str, tree: Tree) -> None:
    path = GOLDEN / f"{name}.json"
    got = comparable(tree)
    if os.environ.get("UPDATE_GOLDEN") or not path.exists():
        if not os.environ.get("UPDATE_GOLDEN"):
            raise AssertionError(
                f"no golden tree {path.name}; run with UPDATE_GOLDEN=1 to create it"
            )
        path.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
    assert got == json.loads(path.read_text()), f"tree differs from {path}"

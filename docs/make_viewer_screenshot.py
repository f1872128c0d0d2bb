"""Make ``docs/images/tree-viewer.png``, the screenshot of ``berry view`` in ``docs/viewer.md``.

The tree is a real search result: LLaMA-O1 meta-action MCTS (model-chosen meta actions, 8
simulations) by the built-in berry-tiny on problem 6 of the arithmetic test split, seed 0, its
answers then verified against the reference by the grader, as ``berry eval`` does (so the answers
are coloured by their verdicts). The details panel shows the node with the highest value off the
chosen path.

Usage (from the repository root; needs a ``chromium`` or ``chromium-browser`` binary):

    .venv/bin/python docs/make_viewer_screenshot.py [--html KEEP.html] [--out PNG]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from openberry.data.arithmetic import load_split
from openberry.evaluation.verify import verify_tree
from openberry.grading import Grader
from openberry.models.hf import HFPolicy
from openberry.search import make_search, run_search
from openberry.tree import Tree
from openberry.viewer import write_tree_html

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "images" / "tree-viewer.png"
PROBLEM_INDEX = 6  # arithmetic/test/6: "Compute 18 * 5 * 7 + 22." (three steps)


def example_tree() -> Tree:
    """A real search: meta-action MCTS by berry-tiny on arithmetic/test/6 (seed 0, CPU), its
    candidate answers verified by the grader (`verify_tree`, as ``berry eval`` writes trees)."""
    example = load_split("test", limit=PROBLEM_INDEX + 1)[PROBLEM_INDEX]
    search = make_search("meta-mcts", rollouts=2, overrides={"meta_policy": "model"})
    policy = HFPolicy.from_pretrained("berry-tiny")
    (result,) = run_search(search, [example.problem], policy, seed=0)
    with Grader() as grader:
        return verify_tree(result.tree, lambda a: grader.grade(a, example.answer).correct)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="PNG to write")
    parser.add_argument("--html", type=Path, help="also keep the rendered HTML page here")
    parser.add_argument("--size", default="1400,900", help="browser window size W,H")
    args = parser.parse_args()

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("error: no chromium binary on PATH (apt-get install chromium)", file=sys.stderr)
        return 2
    tree = example_tree()
    off_path = [n for n in tree.nodes[1:] if n.id not in tree.chosen] or list(tree.nodes)
    critic = max(off_path, key=lambda n: (n.value or 0.0, -n.id)).id
    with tempfile.TemporaryDirectory() as tmp:
        page = args.html or Path(tmp) / "tree.html"
        write_tree_html(tree, page, title="meta-mcts · berry-tiny · arithmetic/test/6")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            chromium,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--hide-scrollbars",
            "--virtual-time-budget=5000",
            f"--window-size={args.size}",
            f"--screenshot={args.out.resolve()}",
            f"{page.resolve().as_uri()}#node-{critic}",
        ]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

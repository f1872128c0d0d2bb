"""Make ``docs/images/tree-viewer.png``, the screenshot of ``berry view`` in ``docs/viewer.md``.

The tree is an illustration, not a search result: an arithmetic `branching_tree` (the chosen,
correct chain with sibling alternatives) with a `critique_tree` grafted under the same root, and
made-up but consistent statistics (visits summed up the tree, values near 0.8 on positive and 0.2 on
negative nodes, priors normalised among siblings, token counts). Everything is seeded, so the page
is the same on every run; the PNG differs only with the Chromium version and fonts.

Usage (from the repository root; needs a ``chromium`` or ``chromium-browser`` binary):

    .venv/bin/python docs/make_viewer_screenshot.py [--html KEEP.html] [--out PNG]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from openberry.data.arithmetic import expression_of, load_split, write_slipped_solution
from openberry.data.arithmetic.trees import branching_tree, critique_tree
from openberry.tree import Node, Tree
from openberry.viewer import write_tree_html

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "images" / "tree-viewer.png"
PROBLEM_INDEX = 6  # arithmetic/test/6: "Compute 18 * 5 * 7 + 22." (three steps)


def graft(base: Tree, other: Tree) -> Tree:
    """`base` with `other`'s non-root nodes added under `base`'s root (ids shifted)."""
    offset = len(base) - 1
    nodes = list(base.nodes)
    for node in other.nodes[1:]:
        parent = 0 if node.parent == 0 else node.parent + offset  # type: ignore[operator]
        nodes.append(
            dataclasses.replace(
                node,
                id=node.id + offset,
                parent=parent,
                children=tuple(c + offset for c in node.children),
            )
        )
    root = nodes[0]
    extra = tuple(c + offset for c in other.root.children)
    nodes[0] = dataclasses.replace(root, children=root.children + extra)
    return base.with_nodes(nodes)


def fill_statistics(tree: Tree, rng: random.Random) -> Tree:
    """Plausible search statistics on every node (see the module docstring)."""
    chosen = set(tree.chosen)
    nodes = list(tree.nodes)
    visits = [0] * len(nodes)
    for node in reversed(nodes):  # children have larger ids, so they are done first
        own = rng.randint(6, 10) if node.id in chosen else rng.randint(1, 4)
        visits[node.id] = (0 if node.children else own) + sum(visits[c] for c in node.children)
    for node in nodes:
        positive = node.rating == "positive"
        value = rng.uniform(0.66, 0.93) if positive else rng.uniform(0.06, 0.34)
        rewards = tuple(
            round(min(1.0, max(0.0, value + rng.uniform(-0.1, 0.1))), 3)
            for _ in range(min(3, visits[node.id]))
        )
        depth = tree.depth(node.id)
        nodes[node.id] = dataclasses.replace(
            node,
            visits=visits[node.id],
            value=round(value, 3),
            rewards=rewards,
            rating=None if node.meta_action == "expansion" else node.rating,
            prompt_tokens=0 if node.parent is None else 48 + 14 * depth,
            generated_tokens=0 if node.parent is None else 4 + len(node.text) // 3,
        )
    for node in nodes:  # priors normalised among siblings
        if node.children:
            weights = [rng.uniform(0.2, 1.0) for _ in node.children]
            total = sum(weights)
            for child, w in zip(node.children, weights, strict=True):
                nodes[child] = dataclasses.replace(nodes[child], prior=round(w / total, 3))
    return tree.with_nodes(nodes)


def example_tree() -> Tree:
    """The illustration tree shown in the screenshot."""
    problem = load_split("test", limit=PROBLEM_INDEX + 1)[PROBLEM_INDEX].problem
    rng = random.Random(7)
    base = branching_tree(problem, rng, branch_prob=1.0)
    slipped = write_slipped_solution(expression_of(problem), 1, rng)
    tree = graft(base, critique_tree(problem, slipped))
    tree = fill_statistics(tree, rng)
    nodes: list[Node] = list(tree.nodes)
    total_p = sum(n.prompt_tokens for n in nodes)
    total_g = sum(n.generated_tokens for n in nodes)
    info = {
        "note": "illustration for docs/viewer.md: arithmetic trees with made-up statistics",
        "config": {"c_puct": 1.25, "simulations": nodes[0].visits, "max_depth": 8, "seed": 7},
        "stats": {
            "simulations": nodes[0].visits,
            "model_calls": len(nodes) - 1,
            "prompt_tokens": total_p,
            "generated_tokens": total_g,
            "wall_time_s": 3.42,
        },
    }
    return dataclasses.replace(tree, method="meta-mcts", info=info)


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
    critic = next(n.id for n in tree.nodes if n.meta_action == "critic")
    with tempfile.TemporaryDirectory() as tmp:
        page = args.html or Path(tmp) / "tree.html"
        write_tree_html(tree, page, title="meta-mcts · arithmetic/test/6 (illustration)")
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

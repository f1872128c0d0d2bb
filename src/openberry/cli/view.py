"""`berry view`: turn a saved search tree (JSON) into one self-contained HTML page.

Only the standard library is imported at module level; `openberry.tree` and `openberry.viewer`
(both light) are imported when the command runs.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

__all__ = ["register"]

logger = logging.getLogger(__name__)

_DESCRIPTION = """\
Write a search tree saved by openberry (an 'openberry.tree' JSON file) as one HTML page that
works offline: no network, no external scripts or fonts; the tree is embedded in the page.

The page shows the problem, the method and the run statistics, and the tree as a nested,
collapsible list. Each node shows its id, meta action, a preview of its text, visits, value (a
bar and the number), prior, prompt/generated tokens, rating and, for terminal nodes, the answer. Nodes on the chosen path are highlighted. Click a node for its full text and every field
(rewards and info as JSON); 'Expand all', 'Collapse all' and 'Show chosen path' act on the whole
tree. See docs/viewer.md."""

_EPILOG = """\
The output path is printed on stdout. Open the page with any browser (file://); the hash
#node-ID (e.g. tree.html#node-12) selects and reveals node ID.

examples:
  berry view tree.json                              # writes tree.html next to it
  berry view tree.json -o /tmp/tree.html --open     # and opens it in the default browser
"""


def register(subparsers: Any) -> None:
    """Add the ``view`` subcommand.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """
    p = subparsers.add_parser(
        "view",
        help="write a search tree as a self-contained HTML page",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("tree", metavar="TREE.json", help="tree file written by openberry (Tree.save)")
    p.add_argument(
        "-o",
        "--out",
        metavar="OUT.html",
        help="where to write the page (default: TREE.html next to the input)",
    )
    p.add_argument("--title", help="page title (default: '<method> · <problem id>')")
    p.add_argument(
        "--open",
        dest="open_browser",
        action="store_true",
        help="open the page in the default web browser after writing it",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``berry view`` (see ``berry view --help``).

    Args:
        args: Parsed arguments.

    Returns:
        The exit status (0).

    Raises:
        BerryError: The tree file is missing or is not a valid tree, or the page cannot be written.
    """
    from openberry.errors import BerryError
    from openberry.tree import Tree
    from openberry.viewer import write_tree_html

    src = Path(args.tree)
    if not src.exists():
        raise BerryError(f"{src}: no such file")
    if not src.is_file():
        raise BerryError(f"{src}: not a file")
    try:
        tree = Tree.load(src)  # a malformed file raises TreeFormatError, a BerryError
    except UnicodeDecodeError as exc:
        raise BerryError(f"{src}: not a tree file (not UTF-8 text: {exc.reason})") from exc
    except OSError as exc:
        raise BerryError(f"{src}: cannot read: {exc.strerror or exc}") from exc

    out = Path(args.out) if args.out else src.with_suffix(".html")
    if out.resolve() == src.resolve():
        raise BerryError(f"the output {out} would overwrite the input tree file")
    try:
        write_tree_html(tree, out, title=args.title)
    except OSError as exc:
        raise BerryError(f"{out}: cannot write: {exc.strerror or exc}") from exc
    logger.info("tree of %d node(s) (%s) written to %s", len(tree), tree.method or "-", out)
    print(out)

    if args.open_browser:
        import webbrowser

        if not webbrowser.open(out.resolve().as_uri()):
            logger.warning("no web browser found; open %s yourself", out)
    return 0

"""Render a search `Tree` as one self-contained, offline HTML page (what ``berry view`` writes).

The page has no external resources at all: the CSS and the vanilla JavaScript in
``openberry/viewer/assets`` are inlined, and the tree is embedded as JSON in a
``<script type="application/json" id="tree-data">`` element that the script reads with
``JSON.parse``. Node text is model output and therefore untrusted, so two rules hold:

- in the embedded JSON every ``<``, ``>`` and ``&`` is written as a ``\\u00XX`` escape, so no text can
  close the script element (``</script>``) or open a comment (``<!--``) that would change how the
  HTML parser finds its end; ``JSON.parse`` (and `json.loads`) read the escapes back unchanged;
- the script inserts every string with ``textContent`` (never ``innerHTML``).

The page shows the problem, the chosen answer (`chosen_answer`: written into the page here, with
the grader's verdict when the tree records one), the method, run-level statistics
(``tree.info["stats"]`` when it is a dict, and all of ``tree.info`` as JSON behind a disclosure),
and the tree as a nested collapsible list with a details panel; see ``docs/viewer.md``. An answer
is coloured green or red only where a verdict is recorded (``node.info["verified"]``, written by
``berry eval`` and ``berry collect``); the search alone cannot know whether an answer is right.
"""

from __future__ import annotations

import html
import logging
from functools import cache
from importlib import resources
from pathlib import Path

from openberry.fileio import write_text_atomic
from openberry.tree import Tree

__all__ = ["chosen_answer", "render_tree_html", "tree_json_for_html", "write_tree_html"]

logger = logging.getLogger(__name__)

_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


@cache
def _asset(name: str) -> str:
    text = resources.files("openberry.viewer").joinpath("assets", name).read_text(encoding="utf-8")
    # The assets are inlined into <style>/<script>; they must not be able to end those elements.
    lowered = text.lower()
    if any(s in lowered for s in ("<script", "</script", "</style", "<!--")):
        raise RuntimeError(f"viewer asset {name} contains a sequence that breaks inlining")
    return text


def tree_json_for_html(tree: Tree) -> str:
    """The tree as JSON that is safe to place inside a ``<script>`` element.

    Args:
        tree: The tree.

    Returns:
        ``tree.to_json()`` with ``<``, ``>``, ``&``, U+2028 and U+2029 written as ``\\uXXXX`` escapes
        (still valid JSON that decodes to the same value).
    """
    text = tree.to_json()
    for char, escape in _JSON_ESCAPES.items():
        text = text.replace(char, escape)
    return text


def chosen_answer(tree: Tree) -> tuple[str | None, bool | None]:
    """The answer of the chosen path's last node and the grader's verdict on it.

    Returns:
        ``(answer, verdict)``: the answer is None when nothing was chosen or the chosen path ends
        without one; the verdict is ``node.info["verified"]`` when it is a bool (a tree written
        by ``berry eval`` or ``berry collect``), else None (not verified).
    """
    if not tree.chosen:
        return None, None
    node = tree.nodes[tree.chosen[-1]]
    verdict = node.info.get("verified")
    return node.answer, verdict if isinstance(verdict, bool) else None


def _chosen_answer_html(tree: Tree) -> str:
    answer, verdict = chosen_answer(tree)
    if answer is None:
        why = "nothing was chosen" if not tree.chosen else "the chosen path ends without one"
        return (
            '<p class="chosen-answer" id="chosen-answer">chosen answer: <b>none</b> '
            f'<span class="verdict unverified">({why})</span></p>\n'
        )
    cls, text = {
        True: ("correct", "\u2713 correct (verified)"),
        False: ("wrong", "\u2717 wrong (verified)"),
        None: ("unverified", "not verified"),
    }[verdict]
    return (
        '<p class="chosen-answer" id="chosen-answer">chosen answer: '
        f'<code>{html.escape(answer)}</code> <span class="verdict {cls}">{text}</span></p>\n'
    )


def _default_title(tree: Tree) -> str:
    method = tree.method or "tree"
    return f"{method} \u00b7 {tree.problem.id}"


def render_tree_html(tree: Tree, *, title: str | None = None) -> str:
    """Render `tree` as one self-contained HTML page (inline CSS and JavaScript, no network).

    Args:
        tree: The search tree to show.
        title: Page title and heading; defaults to ``"<method> · <problem id>"``.

    Returns:
        The whole HTML document. Every node is an ``<li class="node" data-node-id="ID">``; nodes
        on ``tree.chosen`` also carry the class ``chosen``; a terminal node's answer is a
        ``<span class="answer">`` with the class ``correct`` or ``wrong`` only when its verdict
        is recorded. The header's ``<p id="chosen-answer">`` states the chosen answer
        (`chosen_answer`).

    Raises:
        TreeFormatError: The tree is not JSON-serialisable (e.g. a non-JSON value in ``info``).
    """
    page_title = html.escape(title if title is not None else _default_title(tree))
    parts = [
        "<!DOCTYPE html>\n",
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n',
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        '<meta name="generator" content="openberry berry view">\n',
        f"<title>{page_title}</title>\n",
        "<style>\n",
        _asset("viewer.css"),
        "</style>\n</head>\n<body>\n",
        "<header>\n",
        f"<h1>{page_title}</h1>\n",
        '<div class="summary">\n',
        '<section class="problem"><h2>Problem</h2><pre id="problem-text"></pre>',
        '<div class="problem-meta" id="problem-meta"></div></section>\n',
        '<section class="run"><h2>Run</h2>',
        _chosen_answer_html(tree),
        '<div class="chips" id="chips"></div>',
        '<table class="stats" id="stats"></table>',
        '<details class="run-info" id="run-info" hidden><summary>run info (JSON)</summary>',
        '<pre id="run-info-json"></pre></details></section>\n',
        "</div>\n",
        '<div class="toolbar">',
        '<button type="button" id="btn-expand">Expand all</button>',
        '<button type="button" id="btn-collapse">Collapse all</button>',
        '<button type="button" id="btn-chosen">Show chosen path</button>',
        '<span class="legend"><span class="swatch"></span>chosen path \u00b7 ',
        "answer: green/red when verified correct/wrong, else grey-blue \u00b7 ",
        "rating +/\u2212 (italic: derived from value) \u00b7 click a node for details</span>",
        "</div>\n</header>\n",
        "<main>\n",
        '<div id="tree" role="tree"></div>\n',
        '<aside id="details"><h2>Details</h2><div id="details-body">',
        '<div class="empty">Click a node to see its text and fields.</div></div></aside>\n',
        "</main>\n",
        '<script type="application/json" id="tree-data">',
        tree_json_for_html(tree),
        "</script>\n<script>\n",
        _asset("viewer.js"),
        "</script>\n</body>\n</html>\n",
    ]
    return "".join(parts)


def write_tree_html(tree: Tree, path: str | Path, *, title: str | None = None) -> Path:
    """Render `tree` (see `render_tree_html`) and write it to `path` atomically.

    The page is written to ``<path>.tmp`` and then moved over `path`, so a crash never leaves half
    a file. Parent directories are created.

    Args:
        tree: The search tree.
        path: Where to write the HTML file.
        title: Page title; see `render_tree_html`.

    Returns:
        `path` as a `Path`.
    """
    path = write_text_atomic(path, render_tree_html(tree, title=title))
    logger.debug("wrote tree viewer page for %d node(s) to %s", len(tree), path)
    return path

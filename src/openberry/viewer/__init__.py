"""Viewers for search trees: `render_tree_html` turns a `Tree` into one offline HTML page.

``berry view TREE.json`` (`openberry.cli.view`) is the command-line front end; see
``docs/viewer.md``.
"""

from openberry.viewer.html import (
    chosen_answer,
    render_tree_html,
    tree_json_for_html,
    write_tree_html,
)

__all__ = ["chosen_answer", "render_tree_html", "tree_json_for_html", "write_tree_html"]

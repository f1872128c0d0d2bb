"""LLaMA-O1's OpenLongCoT tree language: read and write it exactly.

The format (reconstructed from the LLaMA-O1 code; docs/formats.md) writes one tree node per
line, lines joined with ``\\n``::

    <start_of_father_id>P<end_of_father_id><start_of_local_id>I<end_of_local_id><start_of_thought>META TEXT<end_of_thought><start_of_rating>RATING<end_of_rating>

(without the space between META and TEXT), where ``P`` is the parent id (``-1`` for the root),
``I`` the node id (root ``0``), ``META`` one of ``<problem> <expansion> <critic> <refine>
<conclusion>`` (the root is ``<problem>`` + the problem text) and ``RATING`` one of
``<positive_rating> <negative_rating> <unknow_rating>`` (sic). Two serialisations exist: the whole
tree in depth-first pre-order (`tree_to_string`) and the root-to-node path used as model context
(`path_to_string`). Both parse back with `string_to_tree`.

Where we depart from the original code:

- A thought's text may contain newlines (a "line" is then several physical lines); the parser
  scans tags, not lines, and reports errors with the physical line and column.
- Node ids must be unique and every parent must be written before its children; the original's
  duplicate-id bug (B3 in docs/search.md) is rejected with the offending line. Ids that are not our
  creation order (a path string skips ids) are renumbered, and the written id is kept in
  ``Node.info["local_id"]`` so that writing the tree back gives the same text.
- Ratings come from ``Node.rating`` when set, else from the node's value as a probability
  (``>= 0.5`` positive, ``< 0.5`` negative, unknown if none). The original thresholded
  ``exp(v)`` of a log-probability value at 0.5: the same rule on our probability scale.
- Text that contains one of the format's tags cannot be written losslessly, so writing it raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from openberry.errors import BerryError
from openberry.records import Problem
from openberry.tree import META_ACTIONS, Node, Tree

__all__ = [
    "META_TAGS",
    "RATING_START",
    "RATING_TOKENS",
    "SPECIAL_TOKENS",
    "THOUGHT_END",
    "OpenLongCoTError",
    "ParsedNode",
    "node_header",
    "node_line",
    "parse_nodes",
    "path_to_string",
    "policy_prompt",
    "rating_prompt",
    "string_to_tree",
    "tree_to_string",
    "value_prompt",
]

FATHER_START, FATHER_END = "<start_of_father_id>", "<end_of_father_id>"
LOCAL_START, LOCAL_END = "<start_of_local_id>", "<end_of_local_id>"
THOUGHT_START, THOUGHT_END = "<start_of_thought>", "<end_of_thought>"
RATING_START, RATING_END = "<start_of_rating>", "<end_of_rating>"
HINT_START, HINT_END = "<hint>", "</hint>"

META_TAGS: dict[str, str] = {m: f"<{m}>" for m in META_ACTIONS}
"""Meta action name -> tag, e.g. ``"critic" -> "<critic>"``."""
RATING_TOKENS: dict[str, str] = {
    "positive": "<positive_rating>",
    "negative": "<negative_rating>",
    "unknown": "<unknow_rating>",  # sic: the original token is spelled "unknow"
}
"""Rating label -> token."""

_STRUCTURE = (
    FATHER_START,
    FATHER_END,
    LOCAL_START,
    LOCAL_END,
    THOUGHT_START,
    THOUGHT_END,
    RATING_START,
    RATING_END,
)
SPECIAL_TOKENS: tuple[str, ...] = (
    *_STRUCTURE,
    *META_TAGS.values(),
    *RATING_TOKENS.values(),
    HINT_START,
    HINT_END,
)
"""Every tag of the format, to add to a tokenizer as single tokens."""

_TAG_TO_META = {tag: meta for meta, tag in META_TAGS.items()}
_TOKEN_TO_RATING = {tok: rating for rating, tok in RATING_TOKENS.items()}


class OpenLongCoTError(BerryError, ValueError):
    """Text is not valid OpenLongCoT, or a tree cannot be written in it."""


@dataclass(frozen=True)
class ParsedNode:
    """One node line as written, before it is checked against the rest of the tree."""

    father_id: int
    local_id: int
    meta_action: str
    text: str
    rating: str
    line: int
    """1-based physical line where the node starts."""


# -- writing ----------------------------------------------------------------------------------


def node_header(father_id: int, local_id: int, meta_action: str | None = None) -> str:
    """The start of a node line up to (and including) its meta tag: the policy head's prompt end.

    Args:
        father_id: parent node id (-1 for the root).
        local_id: this node's id.
        meta_action: meta action whose tag ends the header, or None to stop after
            ``<start_of_thought>`` (the model then chooses the meta action).
    """
    header = (
        f"{FATHER_START}{father_id}{FATHER_END}{LOCAL_START}{local_id}{LOCAL_END}{THOUGHT_START}"
    )
    if meta_action is not None:
        header += _meta_tag(meta_action)
    return header


def node_line(father_id: int, local_id: int, meta_action: str, text: str, rating: str) -> str:
    """One complete node line.

    Raises:
        OpenLongCoTError: unknown meta action or rating, or `text` contains a tag of the format.
    """
    _check_text(text, local_id)
    if rating not in RATING_TOKENS:
        raise OpenLongCoTError(f"node {local_id}: unknown rating {rating!r}")
    return (
        f"{node_header(father_id, local_id, meta_action)}{text}{THOUGHT_END}"
        f"{RATING_START}{RATING_TOKENS[rating]}{RATING_END}"
    )


def _meta_tag(meta_action: str) -> str:
    try:
        return META_TAGS[meta_action]
    except KeyError:
        raise OpenLongCoTError(
            f"unknown meta action {meta_action!r}; expected one of {', '.join(META_ACTIONS)}"
        ) from None


def _check_text(text: str, node_id: int) -> None:
    for tag in SPECIAL_TOKENS:
        if tag in text:
            raise OpenLongCoTError(
                f"node {node_id}: its text contains the tag {tag}, which OpenLongCoT cannot "
                "escape; remove it before writing"
            )


def _local_id(node: Node) -> int:
    """The id written for a node: its index, or the id it was read with (see `nodes_to_tree`)."""
    return int(node.info.get("local_id", node.id))


def _line_of(tree: Tree, node: Node) -> str:
    if node.parent is None:
        meta, father = "problem", -1
    else:
        meta = node.meta_action or "expansion"  # whole-answer methods have no meta action
        father = _local_id(tree.nodes[node.parent])
    return node_line(father, _local_id(node), meta, node.text, node.effective_rating())


def tree_to_string(tree: Tree) -> str:
    """The whole tree, one node per line, in depth-first pre-order (LLaMA-O1 `tree_to_string`)."""
    return "\n".join(_line_of(tree, tree.nodes[i]) for i in tree.preorder())


def path_to_string(tree: Tree, node_id: int) -> str:
    """The lines of the nodes on the root-to-`node_id` path, root first (the model's context)."""
    return "\n".join(_line_of(tree, tree.nodes[i]) for i in tree.path(node_id))


def policy_prompt(
    tree: Tree,
    parent_id: int,
    meta_action: str | None,
    *,
    new_id: int | None = None,
    hint: str | None = None,
) -> str:
    """Context for writing a new child of `parent_id`: the path, an optional hint, the header.

    The model continues with the thought text and should stop at ``<end_of_thought>``.

    Args:
        tree: the current tree.
        parent_id: node to extend.
        meta_action: meta action of the new node (its tag ends the prompt), or None.
        new_id: id of the new node; defaults to ``len(tree)`` (the next id).
        hint: optional ``<hint>...</hint>`` text placed before the header. Never put the
            reference answer here at inference (B15 in docs/search.md).
    """
    new_id = len(tree) if new_id is None else new_id
    parts = [path_to_string(tree, parent_id), "\n"]
    if hint is not None:
        _check_text(hint, new_id)
        parts.append(f"{HINT_START}{hint}{HINT_END}\n")
    parts.append(node_header(parent_id, new_id, meta_action))
    return "".join(parts)


def value_prompt(tree: Tree, parent_id: int, meta_action: str, text: str, new_id: int) -> str:
    """Context for the value head: the parent's path plus the candidate line up to its rating.

    The next token the model predicts is the rating token; the value is read from
    ``<positive_rating>`` vs ``<negative_rating>`` there (fixing the original's B9 offset, docs/search.md).
    """
    return rating_prompt(path_to_string(tree, parent_id), parent_id, new_id, meta_action, text)


def rating_prompt(context: str, father_id: int, local_id: int, meta_action: str, text: str) -> str:
    """`value_prompt` from an already written context (the parent's path string): the context, a
    newline, and the candidate line up to and including ``<start_of_rating>``.

    Raises:
        OpenLongCoTError: `text` contains a tag of the format.
    """
    _check_text(text, local_id)
    return (
        f"{context}\n{node_header(father_id, local_id, meta_action)}"
        f"{text}{THOUGHT_END}{RATING_START}"
    )


# -- reading ----------------------------------------------------------------------------------


class _Scanner:
    """Walks the text tag by tag and reports errors with physical line and column."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def where(self, pos: int | None = None) -> str:
        pos = self.pos if pos is None else pos
        line = self.text.count("\n", 0, pos) + 1
        col = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        return f"line {line}, column {col}"

    def line(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1

    def found(self) -> str:
        rest = self.text[self.pos : self.pos + 30]
        if not rest:
            return "end of text"
        return repr(rest + ("..." if len(self.text) - self.pos > 30 else ""))

    def expect(self, tag: str) -> None:
        if not self.text.startswith(tag, self.pos):
            raise OpenLongCoTError(f"{self.where()}: expected {tag}, found {self.found()}")
        self.pos += len(tag)

    def until(self, tag: str, what: str) -> str:
        end = self.text.find(tag, self.pos)
        limit = len(self.text) if end < 0 else end
        hits = [
            (k, other)
            for other in _STRUCTURE
            if other != tag and (k := self.text.find(other, self.pos, limit)) >= 0
        ]
        if hits:
            k, other = min(hits)
            raise OpenLongCoTError(
                f"{self.where(k)}: expected {tag} to close {what}, found {other}"
            )
        if end < 0:
            raise OpenLongCoTError(
                f"{self.where()}: {what} is not closed: expected {tag} before the end of text"
            )
        value = self.text[self.pos : end]
        self.pos = end + len(tag)
        return value

    def integer(self, end_tag: str, what: str) -> int:
        start = self.pos
        raw = self.until(end_tag, what)
        try:
            if raw.strip() != raw or not raw:
                raise ValueError
            return int(raw)
        except ValueError:
            raise OpenLongCoTError(
                f"{self.where(start)}: expected an integer {what}, found {raw!r}"
            ) from None

    def one_of(self, options: dict[str, str], what: str) -> str:
        for tag, value in options.items():
            if self.text.startswith(tag, self.pos):
                self.pos += len(tag)
                return value
        raise OpenLongCoTError(
            f"{self.where()}: expected a {what} ({' '.join(options)}), found {self.found()}"
        )


def parse_nodes(text: str) -> list[ParsedNode]:
    """Parse OpenLongCoT text into node lines, checking the grammar only.

    Raises:
        OpenLongCoTError: naming the line and column and what was expected there.
    """
    s = _Scanner(text)
    nodes: list[ParsedNode] = []
    while True:
        while s.pos < len(s.text) and s.text[s.pos].isspace():
            s.pos += 1
        if s.pos >= len(s.text):
            break
        start = s.pos
        s.expect(FATHER_START)
        father = s.integer(FATHER_END, "father id")
        s.expect(LOCAL_START)
        local = s.integer(LOCAL_END, "local id")
        s.expect(THOUGHT_START)
        meta = s.one_of(_TAG_TO_META, "meta tag")
        thought = s.until(THOUGHT_END, "the thought")
        s.expect(RATING_START)
        rating = s.one_of(_TOKEN_TO_RATING, "rating token")
        s.expect(RATING_END)
        nodes.append(ParsedNode(father, local, meta, thought, rating, s.line(start)))
        if s.pos < len(s.text) and not s.text[s.pos].isspace():
            raise OpenLongCoTError(
                f"{s.where()}: expected a newline before the next node, found {s.found()}"
            )
    if not nodes:
        raise OpenLongCoTError("line 1, column 1: expected a node line, found no nodes")
    return nodes


def string_to_tree(
    text: str, *, problem_id: str = "openlongcot", source: str = "openlongcot"
) -> Tree:
    """Read a whole-tree or path string into a `Tree` (ratings are kept as `Node.rating`).

    Args:
        text: OpenLongCoT text.
        problem_id: id given to the tree's problem (the format carries none).
        source: source name recorded on the problem.

    Raises:
        OpenLongCoTError: malformed text, or ids that do not form a tree (naming the line).
    """
    parsed = parse_nodes(text)
    return nodes_to_tree(parsed, problem_id=problem_id, source=source)


def nodes_to_tree(
    parsed: Sequence[ParsedNode], *, problem_id: str = "openlongcot", source: str = "openlongcot"
) -> Tree:
    """Check parsed node lines form a tree (see module docstring) and build it."""
    root = parsed[0]
    if root.father_id != -1 or root.local_id != 0:
        raise OpenLongCoTError(
            f"line {root.line}: the first node must be the root (father id -1, local id 0), "
            f"found father {root.father_id}, local {root.local_id}"
        )
    if root.meta_action != "problem":
        raise OpenLongCoTError(
            f"line {root.line}: the root's thought must start with <problem>, "
            f"found <{root.meta_action}>"
        )
    index: dict[int, int] = {}  # local id -> position in `parsed`
    for k, p in enumerate(parsed):
        if p.local_id in index:
            raise OpenLongCoTError(
                f"line {p.line}: duplicate local id {p.local_id} "
                f"(first used on line {parsed[index[p.local_id]].line})"
            )
        if k and p.father_id not in index:
            raise OpenLongCoTError(
                f"line {p.line}: father id {p.father_id} of node {p.local_id} is not a node "
                "written before it"
            )
        index[p.local_id] = k
    # Ids that already satisfy our invariant (0..N-1, father < child) are kept; otherwise (a path
    # string, or ids out of order) nodes are renumbered in order of appearance and the written id
    # is kept in info["local_id"] so writing the tree back reproduces the text.
    keep = sorted(index) == list(range(len(parsed))) and all(
        p.father_id < p.local_id for p in parsed[1:]
    )
    new_id = {p.local_id: (p.local_id if keep else k) for k, p in enumerate(parsed)}
    children: dict[int, list[int]] = {new_id[p.local_id]: [] for p in parsed}
    for p in parsed[1:]:
        children[new_id[p.father_id]].append(new_id[p.local_id])
    nodes = sorted(
        (
            Node(
                id=new_id[p.local_id],
                parent=None if p is root else new_id[p.father_id],
                children=tuple(children[new_id[p.local_id]]),
                text=p.text,
                meta_action=p.meta_action,  # type: ignore[arg-type]
                rating=p.rating,  # type: ignore[arg-type]
                info={} if keep else {"local_id": p.local_id},
            )
            for p in parsed
        ),
        key=lambda n: n.id,
    )
    problem = Problem(id=problem_id, question=root.text, source=source)
    return Tree(problem=problem, nodes=tuple(nodes), method="openlongcot")

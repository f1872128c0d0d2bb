"""The search tree as a frozen, versioned record.

Every search algorithm in openberry returns its whole tree (mctx's `PolicyOutput.search_tree` idea),
so a tree is a value you can save, diff, golden-test, view (`berry view`) and mine for training data.

Conventions, fixed once for the whole project:

- Nodes are addressed by index and numbered in creation order: ``tree.nodes[i].id == i``, node 0
  is the root, and a parent is always created before its children (``parent < id``). This is the
  per-tree counter that fixes LLaMA-O1's duplicate-id bugs (B2/B3 in docs/search.md).
- ``text`` is the step written at the node (for whole-answer methods such as MCTSr, the whole
  answer); the root's text is the problem statement.
- ``value`` is the node's current estimate of the probability that its path leads to a correct
  answer, in [0, 1] (LLaMA-O1 used log-probabilities; we convert at the edges). ``rewards`` keeps
  every raw reward sample the node received (MCTSr samples its self-evaluation several times).
- ``rating`` is the OpenLongCoT rating label when one was read or assigned explicitly; otherwise
  it is derived from ``value`` when the tree is written in that format.

File format: one JSON object ``{"schema": "openberry.tree", "version": N, ...}``. Readers accept
every version up to `SCHEMA_VERSION` and refuse newer files with a message saying so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from openberry.fileio import write_text_atomic
from openberry.records import Problem, RecordError

__all__ = [
    "META_ACTIONS",
    "RATINGS",
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "MetaAction",
    "Node",
    "Rating",
    "Tree",
    "TreeFormatError",
]

SCHEMA_NAME = "openberry.tree"
SCHEMA_VERSION = 1

MetaAction = Literal["problem", "expansion", "critic", "refine", "conclusion"]
META_ACTIONS: tuple[str, ...] = ("problem", "expansion", "critic", "refine", "conclusion")
Rating = Literal["positive", "negative", "unknown"]
RATINGS: tuple[str, ...] = ("positive", "negative", "unknown")


class TreeFormatError(RecordError):
    """A tree file or dict is malformed, inconsistent, or written by a newer schema version."""


def _finite_or_none(x: float | None, what: str) -> float | None:
    if x is None:
        return None
    x = float(x)
    if math.isnan(x):
        return None  # NaN means "unknown": stored as null so the JSON stays standard.
    if math.isinf(x):
        raise TreeFormatError(f"{what} must be finite, got {x}")
    return x


@dataclass(frozen=True)
class Node:
    """One node of a search tree. See the module docstring for the meaning of each field."""

    id: int
    """Index of the node in `Tree.nodes` (creation order; root is 0)."""
    parent: int | None
    """Index of the parent node, None for the root."""
    children: tuple[int, ...] = ()
    """Indices of the children, in creation order."""
    text: str = ""
    """The step (or whole answer) written at this node; the problem statement at the root."""
    meta_action: MetaAction | None = None
    """LLaMA-O1 meta action of the node, when the method uses them."""
    prior: float | None = None
    """Prior probability of choosing this node among its siblings (PUCT's P(s, a))."""
    visits: int = 0
    """Number of simulations that passed through the node (N)."""
    value: float | None = None
    """Estimated probability of success in [0, 1] (Q), None when never evaluated."""
    rewards: tuple[float, ...] = ()
    """Every raw reward sample the node received, in order."""
    rating: Rating | None = None
    """Explicit OpenLongCoT rating label, if any (see module docstring)."""
    prompt_tokens: int = 0
    """Prompt tokens processed to write this node."""
    generated_tokens: int = 0
    """Tokens generated to write this node."""
    terminal: bool = False
    """True when the node ends a solution (a final answer was written)."""
    answer: str | None = None
    """Final answer extracted from the node's text, for terminal nodes."""
    info: Mapping[str, Any] = field(default_factory=dict)
    """Method-specific extras (JSON-serialisable): logprob statistics, critiques, scores..."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "children", tuple(int(c) for c in self.children))
        object.__setattr__(self, "rewards", tuple(float(r) for r in self.rewards))
        object.__setattr__(self, "prior", _finite_or_none(self.prior, f"node {self.id} prior"))
        object.__setattr__(self, "value", _finite_or_none(self.value, f"node {self.id} value"))
        object.__setattr__(self, "info", dict(self.info))
        if self.meta_action is not None and self.meta_action not in META_ACTIONS:
            raise TreeFormatError(
                f"node {self.id}: meta_action must be one of {META_ACTIONS}, got {self.meta_action!r}"
            )
        if self.rating is not None and self.rating not in RATINGS:
            raise TreeFormatError(
                f"node {self.id}: rating must be one of {RATINGS}, got {self.rating!r}"
            )
        if self.visits < 0 or self.prompt_tokens < 0 or self.generated_tokens < 0:
            raise TreeFormatError(f"node {self.id}: visits and token counts must be >= 0")

    @property
    def is_root(self) -> bool:
        return self.parent is None

    def effective_rating(self) -> Rating:
        """The explicit rating, else one derived from value (>= 0.5 positive), else unknown."""
        if self.rating is not None:
            return self.rating
        if self.value is None:
            return "unknown"
        return "positive" if self.value >= 0.5 else "negative"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "parent": self.parent,
            "children": list(self.children),
            "text": self.text,
            "meta_action": self.meta_action,
            "prior": self.prior,
            "visits": self.visits,
            "value": self.value,
            "rewards": list(self.rewards),
            "rating": self.rating,
            "prompt_tokens": self.prompt_tokens,
            "generated_tokens": self.generated_tokens,
            "terminal": self.terminal,
            "answer": self.answer,
            "info": dict(self.info),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], index: int) -> Node:
        where = f"node at index {index}"
        if not isinstance(data, Mapping):
            raise TreeFormatError(f"{where}: expected an object, got {type(data).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise TreeFormatError(f"{where}: unknown field(s) {sorted(unknown)}")
        for key in ("id", "parent"):
            if key not in data:
                raise TreeFormatError(f"{where}: missing field {key!r}")
        for key, kinds in _NODE_FIELD_TYPES.items():
            if key in data and not _is_instance(data[key], kinds):
                names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
                raise TreeFormatError(
                    f"{where}: field {key!r} must be {names}, got {type(data[key]).__name__}"
                )
        return cls(**dict(data))


def _is_instance(value: Any, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in kinds:
        return False  # bool is an int subclass; only accept it where asked for
    return isinstance(value, kinds)


_NODE_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "id": (int,),
    "parent": (int, type(None)),
    "children": (list, tuple),
    "text": (str,),
    "meta_action": (str, type(None)),
    "prior": (int, float, type(None)),
    "visits": (int,),
    "value": (int, float, type(None)),
    "rewards": (list, tuple),
    "rating": (str, type(None)),
    "prompt_tokens": (int,),
    "generated_tokens": (int,),
    "terminal": (bool,),
    "answer": (str, type(None)),
    "info": (dict,),
}


@dataclass(frozen=True)
class Tree:
    """A whole search tree: the problem (without its answer), the nodes, and what was chosen."""

    problem: Problem
    """The problem searched; never carries the reference answer."""
    nodes: tuple[Node, ...]
    """All nodes; ``nodes[i].id == i`` and node 0 is the root."""
    method: str = ""
    """Name of the algorithm that built the tree (``mctsr``, ``sr-mcts``, ``meta-mcts``, ...)."""
    chosen: tuple[int, ...] = ()
    """Node ids of the chosen root-to-answer path (empty when nothing was chosen)."""
    info: Mapping[str, Any] = field(default_factory=dict)
    """Run-level extras: config, statistics (calls, tokens, wall time), seed."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "chosen", tuple(int(c) for c in self.chosen))
        object.__setattr__(self, "info", dict(self.info))
        self._validate()

    def _validate(self) -> None:
        if not self.nodes:
            raise TreeFormatError("a tree needs at least its root node")
        for i, node in enumerate(self.nodes):
            if node.id != i:
                raise TreeFormatError(f"node at index {i} has id {node.id}; ids must equal indices")
            if i == 0:
                if node.parent is not None:
                    raise TreeFormatError("node 0 is the root and must have parent null")
            elif node.parent is None or not 0 <= node.parent < i:
                raise TreeFormatError(
                    f"node {i}: parent must be an earlier node id (0..{i - 1}), got {node.parent}"
                )
        expected: list[list[int]] = [[] for _ in self.nodes]
        for node in self.nodes[1:]:
            expected[node.parent].append(node.id)  # type: ignore[index]
        for node in self.nodes:
            if sorted(node.children) != expected[node.id]:
                raise TreeFormatError(
                    f"node {node.id}: children {list(node.children)} do not match the nodes that "
                    f"name it as parent {expected[node.id]}"
                )
        if self.chosen:
            for a, b in zip(self.chosen, self.chosen[1:], strict=False):
                if not 0 <= b < len(self.nodes) or self.nodes[b].parent != a:
                    raise TreeFormatError(
                        f"chosen path {list(self.chosen)} is not a path: {a}->{b}"
                    )
            if self.chosen[0] != 0:
                raise TreeFormatError("chosen path must start at the root (0)")

    # -- navigation -------------------------------------------------------------------------

    @property
    def root(self) -> Node:
        return self.nodes[0]

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def path(self, node_id: int) -> list[int]:
        """Node ids from the root to `node_id`, both included."""
        ids = [node_id]
        while (parent := self.nodes[ids[-1]].parent) is not None:
            ids.append(parent)
        return ids[::-1]

    def depth(self, node_id: int) -> int:
        return len(self.path(node_id)) - 1

    def leaves(self) -> list[int]:
        return [n.id for n in self.nodes if not n.children]

    def preorder(self) -> list[int]:
        """Depth-first pre-order (node, then each child's subtree in child order)."""
        order: list[int] = []
        stack = [0]
        while stack:
            i = stack.pop()
            order.append(i)
            stack.extend(reversed(self.nodes[i].children))
        return order

    def with_nodes(self, nodes: Sequence[Node]) -> Tree:
        return replace(self, nodes=tuple(nodes))

    # -- serialisation ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_NAME,
            "version": SCHEMA_VERSION,
            "problem": self.problem.to_dict(),
            "method": self.method,
            "chosen": list(self.chosen),
            "info": dict(self.info),
            "nodes": [n.to_dict() for n in self.nodes],
        }

    def to_json(self, *, indent: int | None = None) -> str:
        try:
            return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TreeFormatError(f"tree is not JSON-serialisable: {exc}") from exc

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tree:
        if not isinstance(data, Mapping):
            raise TreeFormatError(f"a tree file holds a JSON object, got {type(data).__name__}")
        schema = data.get("schema")
        if schema != SCHEMA_NAME:
            raise TreeFormatError(
                f"not an openberry tree: 'schema' is {schema!r}, expected {SCHEMA_NAME!r}"
            )
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise TreeFormatError(f"tree 'version' must be a positive integer, got {version!r}")
        if version > SCHEMA_VERSION:
            raise TreeFormatError(
                f"tree file has schema version {version}, newer than this openberry reads "
                f"(up to {SCHEMA_VERSION}); upgrade openberry to read it"
            )
        nodes = data.get("nodes")
        if not isinstance(nodes, list):
            raise TreeFormatError("tree 'nodes' must be a list")
        problem = data.get("problem")
        if not isinstance(problem, Mapping):
            raise TreeFormatError("tree 'problem' must be an object")
        try:
            parsed_problem = Problem.from_dict(problem)
        except RecordError as exc:
            raise TreeFormatError(str(exc)) from exc
        return cls(
            problem=parsed_problem,
            nodes=tuple(Node.from_dict(n, i) for i, n in enumerate(nodes)),
            method=str(data.get("method", "")),
            chosen=tuple(data.get("chosen") or ()),
            info=dict(data.get("info") or {}),
        )

    @classmethod
    def from_json(cls, text: str) -> Tree:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TreeFormatError(f"tree file is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        """Write the tree as JSON atomically (a crash never leaves half a file)."""
        return write_text_atomic(path, self.to_json(indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Tree:
        path = Path(path)
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except TreeFormatError as exc:
            raise TreeFormatError(f"{path}: {exc}") from exc

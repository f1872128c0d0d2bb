"""The package's shape: layers point one way, no import circle, search without torch, short
functions. Read statically from the source (every import, also those inside functions), so a lazy
import that runs upward or closes a circle is caught before any code path reaches it."""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import openberry

SRC = Path(openberry.__file__).parent

LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"openberry", "errors", "fileio", "records", "jsonl", "tree", "configs"}),
    frozenset({"formats", "grading", "viewer"}),
    frozenset({"data"}),
    frozenset({"models"}),
    frozenset({"search"}),
    frozenset({"training", "evaluation"}),
    frozenset({"serve"}),
    frozenset({"cli"}),
)
"""Records and formats -> models -> search -> training and evaluation -> server -> CLI."""

MAX_FUNCTION_LINES = 100


def _module_name(path: Path) -> str:
    parts = ("openberry", *path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[str]:
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield from (f"{module}.{alias.name}" for alias in node.names)


@functools.cache
def _graph() -> dict[str, set[str]]:
    """Module -> the openberry modules it imports (``from P import N`` counts as module ``P.N``
    where one exists, else as ``P``)."""
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for target in _imports(path):
            if target == "openberry" or target.startswith("openberry."):
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def _layer(module: str) -> int:
    parts = module.split(".")
    room = parts[1] if len(parts) > 1 else "openberry"
    for rank, rooms in enumerate(LAYERS):
        if room in rooms:
            return rank
    raise AssertionError(f"{module}: its room {room!r} is in no layer of tests/test_structure.py")


def _upward(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} -> {b}" for a, bs in graph.items() for b in bs if _layer(b) > _layer(a))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The circles a depth-first walk meets (at least one whenever the graph has any)."""
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    return cycles


def test_every_import_points_down_the_layers() -> None:
    assert _upward(_graph()) == []


def test_no_import_circle() -> None:
    cycles = _cycles(_graph())
    assert cycles == [], " ; ".join(" -> ".join(c) for c in cycles)


def test_the_checks_find_a_planted_circle_and_upward_import() -> None:
    graph = {
        "openberry.models.base": {"openberry.models.hf"},
        "openberry.models.hf": {"openberry.models.base", "openberry.search.engine"},
        "openberry.search.engine": {"openberry.records"},
    }
    assert _cycles(graph) == [
        ["openberry.models.base", "openberry.models.hf", "openberry.models.base"]
    ]
    assert _upward(graph) == ["openberry.models.hf -> openberry.search.engine"]


def test_relative_and_lazy_imports_are_read() -> None:
    graph = _graph()
    assert "openberry.records" in graph["openberry.tree"]
    assert "openberry.errors" in graph["openberry.records"]


def test_search_imports_no_torch() -> None:
    heavy = {"torch", "transformers", "peft", "accelerate"}
    found = [
        f"{_module_name(p)} imports {t}"
        for p in (SRC / "search").rglob("*.py")
        for t in _imports(p)
        if t.split(".")[0] in heavy
    ]
    assert found == []


def test_no_function_is_over_a_hundred_lines() -> None:
    long = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{_module_name(path)}.{node.name}: {lines} lines")
    assert long == []

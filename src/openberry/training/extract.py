"""Training data from verified search trees: SFT paths, preference pairs, value targets, journeys.

Input: search trees (`openberry.tree`) whose candidate solutions carry the grader's verdict in
``node.info["verified"]`` (written by ``berry collect`` and ``berry eval``). Output: JSONL rows in
the formats of docs/training-data.md, read by ``berry train``.

One representation serves every search method: the *solution trie* of a problem. Every verified
solution of the problem, from all its trees (whole-answer methods: the node's text; step methods:
the path's texts joined with newlines), is split into steps with
`openberry.search.scorers.solution_steps` (one step per non-empty line; a line stating the final
answer is a ``conclusion``) and merged into a prefix trie. A trie node counts the verified
solutions through it and how many of them are correct; their ratio is the node's Monte-Carlo
return, the share of correct completions of that prefix (Math-Shepherd's "completion" estimate;
LLaMA-O1's rectified true value, docs/search.md, without the discount). A solution sampled twice
counts twice. The tree's own critiques (MCTSr / SR-MCTS ``info["critique"]`` of a rewrite, which
critiques its parent; meta-action MCTS ``critic`` thoughts, which critique their path) are kept
with the solution they critique.

Kinds (`KINDS`):

- ``best-paths``: distinct verified-correct solutions as SFT rows.
- ``pairs``: *outcome* pairs (a correct vs a wrong solution, LLaMA-Berry's PPRM data from
  outcome-labelled samples, section 2.3 of the paper) and *step* pairs (two sibling steps after the
  same prefix whose returns differ by at least ``value_gap``), each in both orders.
- ``values``: one value-head row per trie step: its prompt and its return.
- ``journey``: O1-Journey's long thoughts (Part 1, section 6.6 of the report): a correct path with
  detours into wrong branches, each ended by a reflection and a return to the correct branch.
  Departures: the draft is not rewritten by an LLM; the reflection is the tree's own critique
  where one fits, else a template line built from the verifier's verdict and the returns (the
  detour's solutions were all verified wrong); a detour follows one random child for at most
  ``detour_steps`` steps and never writes an answer line; each correct-path node gets at most one
  detour and a journey at most ``journey_k``; with ``detour_rate`` below 1 each chosen place
  keeps its detour with that chance, so some journeys have none. With ``mask_wrong_steps`` the
  row marks each detour's wrong steps as ``ignore_spans`` (`openberry.training.sft`): the model
  is trained on the reflection and the return, not on writing the wrong step (a departure from
  the report, which trains on the whole journey).
- ``shortcut``: the same correct path alone, for exactly the problems ``journey`` writes (its
  control in the report).
- ``openlongcot``: each problem's trie as one OpenLongCoT document (LLaMA-O1's continued
  pretraining data), ratings from the returns.

Everything is deterministic at a seed: each problem draws from its own generator seeded by
``(seed, kind, problem id)``; ``shortcut`` uses ``journey``'s.
"""

from __future__ import annotations

import logging
import random
import re
import string
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from openberry.errors import BerryError
from openberry.formats.openlongcot import path_to_string, tree_to_string
from openberry.formats.prompts import JUDGE_NO, JUDGE_YES, REVIEW_OK, solve_prompt
from openberry.records import Problem
from openberry.search.common import answer_of_text, strip_tags
from openberry.search.registry import REGISTRY
from openberry.search.scorers import JUDGE_FRAMES, solution_steps, step_value_prompts
from openberry.training.sft import IGNORE_SPANS_FIELD
from openberry.tree import Node, Tree, TreeFormatError

__all__ = [
    "DEFAULT_REFLECTION",
    "KINDS",
    "Detour",
    "ExtractConfig",
    "ExtractError",
    "ExtractResult",
    "Journey",
    "LoadResult",
    "ProblemSolutions",
    "Solution",
    "TrieNode",
    "build_trie",
    "counts_line",
    "extract",
    "find_tree_files",
    "journey_document",
    "load_problems",
    "plan_journey",
    "step_pairs",
    "tree_critiques",
    "tree_solutions",
    "trie_tree",
]

logger = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("best-paths", "pairs", "values", "journey", "shortcut", "openlongcot")
PAIR_KINDS: tuple[str, ...] = ("outcome", "step")
DEFAULT_REFLECTION = "Step {step} is wrong."
"""The reflection line after a detour when the tree has no fitting critique. ``{step}`` is the
1-based position of the detour's first step in the attempt (the step whose solutions were all
verified wrong), ``{line}`` that step's text. It is worded as a review line ("Step 2 is wrong: ...")
and uses only characters that berry-tiny's corpus tokenizer has (it has no "W", so "Wait" would
train on an unknown token)."""
_STEP_RE = re.compile(r"\bstep\s+(\d+)\b", re.IGNORECASE)

Step = tuple[str, str]
"""(meta action, line) as `solution_steps` writes it."""


class ExtractError(BerryError):
    """No usable trees, or settings that cannot work."""


@dataclass(frozen=True)
class ExtractConfig:
    """Settings of `extract` (the ``berry extract`` options)."""

    seed: int = 0
    """Seed of every random choice."""
    max_per_problem: int = 4
    """``best-paths``: most distinct correct solutions per problem."""
    max_pairs_per_problem: int = 4
    """``pairs``: most outcome pairs and most step pairs per problem (each pair is two rows)."""
    pair_kinds: tuple[str, ...] = PAIR_KINDS
    """``pairs``: which pairs to write, ``outcome`` and/or ``step``."""
    value_gap: float = 0.5
    """``pairs``: least return difference between the two steps of a step pair."""
    judge_frame: str = "plain"
    """``pairs``: the judge prompt frame of the rows' ``prompt`` (``plain`` or ``step``,
    `openberry.search.scorers.JUDGE_FRAMES`); search must then judge in the same frame
    (``--set scorer_config.judge_frame=...``)."""
    min_count: int = 1
    """Least number of verified solutions through a step for it to enter a step pair or a value
    row."""
    journey_k: int = 1
    """``journey``: most detours per journey."""
    detour_steps: int = 1
    """``journey``: most steps written in one detour."""
    detour_rate: float = 0.25
    """``journey``: chance that each of the (up to ``journey_k``) chosen detour places gets its
    detour; below 1 some journeys are the correct path alone, so a model trained on them does
    not learn that every solution holds a reflection."""
    reflection: str = DEFAULT_REFLECTION
    """``journey``: template of the reflection line (see `DEFAULT_REFLECTION`)."""
    use_critiques: bool = True
    """``journey``: use the tree's own critique of a detour as its reflection where one fits."""
    format: Literal["text", "openlongcot"] = "text"
    """``journey``: plain prompt/completion rows, or OpenLongCoT ``text`` documents."""
    mask_wrong_steps: bool = True
    """``journey`` text rows: mark the detours' wrong steps as ``ignore_spans``, so SFT learns
    the reflection and the return but not to write the wrong step (OpenLongCoT documents carry
    no spans)."""

    def __post_init__(self) -> None:
        for name in ("max_per_problem", "max_pairs_per_problem", "min_count"):
            if getattr(self, name) < 1:
                raise ExtractError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.journey_k < 1 or self.detour_steps < 1:
            raise ExtractError("journey_k and detour_steps must be at least 1")
        if not 0.0 < self.detour_rate <= 1.0:
            raise ExtractError(f"detour_rate must be in (0, 1], got {self.detour_rate}")
        if not 0.0 <= self.value_gap <= 1.0:
            raise ExtractError(f"value_gap must be in [0, 1], got {self.value_gap}")
        unknown = set(self.pair_kinds) - set(PAIR_KINDS)
        if unknown or not self.pair_kinds:
            raise ExtractError(f"pair kinds must be among {', '.join(PAIR_KINDS)}")
        if self.judge_frame not in JUDGE_FRAMES:
            raise ExtractError(f"judge_frame must be one of {', '.join(JUDGE_FRAMES)}")
        if self.format not in ("text", "openlongcot"):
            raise ExtractError(f"format must be text or openlongcot, got {self.format!r}")
        _check_reflection(self.reflection)


def _check_reflection(template: str) -> None:
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    if not fields <= {"step", "line"}:
        raise ExtractError(
            f"reflection template {template!r}: unknown field(s) {sorted(fields - {'step', 'line'})}"
            "; use {step} and {line}"
        )
    line = template.format(step=1, line="")
    if "\n" in line or not line.strip() or answer_of_text(line) is not None:
        raise ExtractError(
            f"reflection template {template!r} must give one non-empty line that states no answer"
        )


# -- loading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Solution:
    """One verified solution, as steps."""

    steps: tuple[Step, ...]
    correct: bool

    @property
    def lines(self) -> tuple[str, ...]:
        return tuple(line for _, line in self.steps)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class TrieNode:
    """A step prefix shared by verified solutions (the root: the empty prefix)."""

    step: Step | None
    depth: int
    children: dict[str, TrieNode] = field(default_factory=dict)
    count: int = 0
    """Verified solutions through this prefix."""
    correct: int = 0
    """How many of them are correct."""

    @property
    def value(self) -> float:
        """Monte-Carlo return: share of correct solutions through this prefix."""
        return self.correct / self.count if self.count else 0.0

    @property
    def is_conclusion(self) -> bool:
        return self.step is not None and self.step[0] == "conclusion"

    def child_list(self) -> list[TrieNode]:
        """Children in a fixed order (by line), whatever order the trees came in."""
        return [self.children[k] for k in sorted(self.children)]


def build_trie(solutions: Iterable[Solution]) -> TrieNode:
    """Merge solutions into a prefix trie of steps with counts (module docstring)."""
    root = TrieNode(None, 0)
    for sol in solutions:
        node = root
        node.count += 1
        node.correct += sol.correct
        for step in sol.steps:
            nxt = node.children.get(step[1])
            if nxt is None:
                nxt = node.children[step[1]] = TrieNode(step, node.depth + 1)
            node = nxt
            node.count += 1
            node.correct += sol.correct
    return root


@dataclass(frozen=True)
class ProblemSolutions:
    """Everything extracted about one problem: its verified solutions, trie and critiques."""

    problem: Problem
    solutions: tuple[Solution, ...]
    critiques: tuple[tuple[tuple[str, ...], str], ...]
    """(lines of the critiqued solution or partial path, critique line)."""
    trees: int
    trie: TrieNode

    @property
    def id(self) -> str:
        return self.problem.id

    def distinct(self, correct: bool) -> list[Solution]:
        """Distinct solutions with this verdict, ordered by text."""
        seen = {s.text: s for s in self.solutions if s.correct == correct and s.steps}
        return [seen[t] for t in sorted(seen)]


def _is_step_method(tree: Tree) -> bool:
    method = REGISTRY.get(tree.method)
    return bool(method and method.steps)


def _path_text(tree: Tree, node_id: int) -> str:
    return "\n".join(tree.nodes[i].text for i in tree.path(node_id)[1:])


def tree_solutions(tree: Tree) -> list[Solution]:
    """The verified solutions of a tree, in node order (MCTSr's dummy answers left out)."""
    steps_method = _is_step_method(tree)
    out = []
    for node in tree.nodes[1:]:
        verdict = node.info.get("verified")
        if not isinstance(verdict, bool) or node.info.get("dummy"):
            continue
        text = _path_text(tree, node.id) if steps_method else node.text
        out.append(Solution(tuple(solution_steps(text)), verdict))
    return out


def _lines(text: str) -> tuple[str, ...]:
    return tuple(line for _, line in solution_steps(text))


def tree_critiques(tree: Tree) -> list[tuple[tuple[str, ...], str]]:
    """The tree's own critiques as (lines critiqued, critique): a rewrite's ``info["critique"]``
    critiques its parent's solution; a ``critic`` thought of a step method critiques its path."""
    steps_method = _is_step_method(tree)
    out = []
    for node in tree.nodes[1:]:
        parent = tree.nodes[node.parent]  # type: ignore[index]
        critique = node.info.get("critique")
        if isinstance(critique, str) and not parent.is_root:
            text = _path_text(tree, parent.id) if steps_method else parent.text
            out.append((_lines(text), critique.strip()))
        if steps_method and node.meta_action == "critic" and not parent.is_root:
            out.append((_lines(_path_text(tree, parent.id)), node.text.strip()))
    return [(lines, strip_tags(c).strip()) for lines, c in out if lines and strip_tags(c).strip()]


def find_tree_files(sources: Sequence[str | Path]) -> list[Path]:
    """Tree files named by `sources`: a collection or eval directory (``*/trees/*.json``), one
    run's directory (``trees/*.json``), a trees directory (``*.json``), or tree files."""
    files: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_file():
            files.append(path)
            continue
        if not path.is_dir():
            raise ExtractError(f"{path}: no such file or directory")
        for pattern in ("*/trees/*.json", "trees/*.json", "*.json"):
            found = sorted(path.glob(pattern))
            if found:
                files.extend(found)
                break
        else:
            raise ExtractError(f"{path}: no tree files (*/trees/*.json, trees/*.json or *.json)")
    return files


@dataclass(frozen=True)
class LoadResult:
    """Problems read from trees, in order of first appearance, and what was skipped."""

    problems: tuple[ProblemSolutions, ...]
    trees: int
    """Trees read."""
    skipped: int
    """Trees without any verified node."""


def load_problems(sources: Sequence[str | Path]) -> LoadResult:
    """Read the trees of `sources` (see `find_tree_files`) and group them by problem id.

    Raises:
        ExtractError: no tree file, an unreadable tree, or no verified tree at all.
    """
    files = find_tree_files(sources)
    if not files:
        raise ExtractError("no tree files given")
    groups: dict[str, list[Tree]] = {}
    skipped = 0
    for path in files:
        try:
            tree = Tree.load(path)
        except (OSError, TreeFormatError) as exc:
            raise ExtractError(f"cannot read tree {path}: {exc}") from exc
        if not any(isinstance(n.info.get("verified"), bool) for n in tree.nodes):
            skipped += 1
            continue
        groups.setdefault(tree.problem.id, []).append(tree)
    if not groups:
        raise ExtractError(
            f"none of the {len(files)} tree(s) has a verified node (node.info['verified']): "
            "write trees with `berry collect` or a `berry eval` that verifies its trees"
        )
    problems = tuple(_problem_of(trees) for trees in groups.values())
    logger.info(
        "read %d trees (%d unverified, skipped) of %d problems", len(files), skipped, len(problems)
    )
    return LoadResult(problems, len(files), skipped)


def _problem_of(trees: Sequence[Tree]) -> ProblemSolutions:
    solutions = tuple(s for t in trees for s in tree_solutions(t))
    critiques = tuple(c for t in trees for c in tree_critiques(t))
    return ProblemSolutions(
        trees[0].problem, solutions, critiques, len(trees), build_trie(solutions)
    )


# -- rows -------------------------------------------------------------------------------------


@dataclass
class ExtractResult:
    """Rows of one kind and what was counted on the way."""

    kind: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n


def _rng(seed: int, kind: str, problem_id: str) -> random.Random:
    return random.Random(f"{seed}:{kind}:{problem_id}")


def _sample(rng: random.Random, items: Sequence[Any], k: int) -> list[Any]:
    """Up to `k` items without replacement, in their original order."""
    if len(items) <= k:
        return list(items)
    return [items[i] for i in sorted(rng.sample(range(len(items)), k))]


def _sft(p: ProblemSolutions, kind: str, lines: Sequence[str], **extra: Any) -> dict[str, Any]:
    return {
        "id": p.id,
        "kind": kind,
        "prompt": solve_prompt(p.problem.question),
        "completion": "\n".join(lines) + "\n",
        **extra,
    }


def best_paths(p: ProblemSolutions, config: ExtractConfig, out: ExtractResult) -> None:
    """Distinct correct solutions of `p`, sampled up to ``max_per_problem``."""
    rng = _rng(config.seed, "best-paths", p.id)
    for sol in _sample(rng, p.distinct(True), config.max_per_problem):
        out.rows.append(_sft(p, "best-paths", sol.lines))


def _pair_rows(
    p: ProblemSolutions,
    pair: str,
    kind: str,
    better: str,
    worse: str,
    values: tuple[float, float] | None = None,
    frame: str = "plain",
) -> list[dict[str, Any]]:
    """The pair in both orders: A better (label 1, ``Yes``), then A worse (label 0, ``No``);
    step pairs also carry the returns of A and B."""
    q = p.problem.question
    rows = []
    for a, b, label in ((better, worse, 1), (worse, better, 0)):
        chosen, rejected = (JUDGE_YES, JUDGE_NO) if label else (JUDGE_NO, JUDGE_YES)
        row = {
            "id": p.id, "pair": pair, "kind": kind, "question": q,
            "solution_a": a, "solution_b": b, "label": label,
            "prompt": JUDGE_FRAMES[frame](q, a, b), "frame": frame,
            "chosen": chosen, "rejected": rejected, "completion": chosen,
        }  # fmt: skip
        if values is not None:
            row["value_a"], row["value_b"] = values if label else values[::-1]
        rows.append(row)
    return rows


def step_pairs(trie: TrieNode, config: ExtractConfig) -> list[tuple[list[str], TrieNode, TrieNode]]:
    """(prefix lines, better step, worse step) for sibling steps whose returns differ by at
    least ``value_gap``, each with at least ``min_count`` solutions, in pre-order."""
    out = []
    stack: list[tuple[TrieNode, list[str]]] = [(trie, [])]
    while stack:
        node, prefix = stack.pop()
        kids = [c for c in node.child_list() if c.count >= config.min_count]
        for a in kids:
            for b in kids:
                if a is not b and a.value - b.value >= config.value_gap - 1e-12:
                    out.append((prefix, a, b))
        for child in reversed(node.child_list()):
            stack.append((child, [*prefix, child.step[1]]))  # type: ignore[index]
    return out


def pairs(p: ProblemSolutions, config: ExtractConfig, out: ExtractResult) -> None:
    """Outcome and step pairs of `p`, both orders each (module docstring)."""
    rng = _rng(config.seed, "pairs", p.id)
    k = 0
    if "outcome" in config.pair_kinds:
        combos = [(c, w) for c in p.distinct(True) for w in p.distinct(False)]
        for good, bad in _sample(rng, combos, config.max_pairs_per_problem):
            out.rows.extend(
                _pair_rows(
                    p, f"{p.id}:{k}", "outcome", good.text, bad.text, None, config.judge_frame
                )
            )
            out.add("outcome pairs")
            k += 1
    if "step" in config.pair_kinds:
        found = step_pairs(p.trie, config)
        for prefix, good, bad in _sample(rng, found, config.max_pairs_per_problem):
            out.rows.extend(_pair_rows(
                p, f"{p.id}:{k}", "step",
                "\n".join([*prefix, good.step[1]]), "\n".join([*prefix, bad.step[1]]),  # type: ignore[index]
                (good.value, bad.value), config.judge_frame,
            ))  # fmt: skip
            out.add("step pairs")
            k += 1


def values(p: ProblemSolutions, config: ExtractConfig, out: ExtractResult) -> None:
    """One value-head row per trie step with at least ``min_count`` solutions, in pre-order."""
    stack: list[tuple[TrieNode, list[Step]]] = [
        (c, [c.step])
        for c in reversed(p.trie.child_list())  # type: ignore[list-item]
    ]
    while stack:
        node, steps = stack.pop()
        if node.count >= config.min_count:
            prompt = step_value_prompts(p.problem.question, steps)[-1]
            out.rows.append({
                "id": p.id, "kind": "value", "prompt": prompt,
                "value": node.value, "count": node.count,
            })  # fmt: skip
        for child in reversed(node.child_list()):
            stack.append((child, [*steps, child.step]))  # type: ignore[list-item]


# -- journey ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Detour:
    """A wrong branch entered after ``at`` correct steps, and the reflection that ends it."""

    at: int
    steps: tuple[Step, ...]
    reflection: str
    critique: bool
    """Whether the reflection is the tree's own critique (else the template)."""


@dataclass(frozen=True)
class Journey:
    """A correct path and its detours (ordered by position)."""

    path: tuple[Step, ...]
    detours: tuple[Detour, ...]

    def steps(self) -> Iterator[tuple[str, Step]]:
        """(role, step) in writing order; role is ``correct``, ``wrong`` or ``reflection``
        (a reflection's step is ``("critic", line)``); the correct step after a reflection has
        role ``return``."""
        by_at = {d.at: d for d in self.detours}
        for i, step in enumerate(self.path):
            if i in by_at:
                for s in by_at[i].steps:
                    yield "wrong", s
                yield "reflection", ("critic", by_at[i].reflection)
            yield ("return" if i in by_at else "correct"), step

    def lines(self) -> list[str]:
        return [s[1] for _, s in self.steps()]

    def wrong_spans(self) -> list[tuple[int, int]]:
        """Character spans of the wrong steps (each with its newline) in ``"\\n".join(lines)``
        followed by a newline, the completion `_sft` writes."""
        spans, at = [], 0
        for role, (_, line) in self.steps():
            if role == "wrong":
                spans.append((at, at + len(line) + 1))
            at += len(line) + 1
        return spans


def _trie_path(trie: TrieNode, lines: Sequence[str]) -> list[TrieNode]:
    nodes = [trie]
    for line in lines:
        nodes.append(nodes[-1].children[line])
    return nodes


def _detour_starts(node: TrieNode, on_path: TrieNode) -> list[TrieNode]:
    """Siblings of the path's next step that every verified solution got wrong and that are
    not an answer line."""
    return [
        c for c in node.child_list()
        if c is not on_path and c.correct == 0 and not c.is_conclusion
    ]  # fmt: skip


def _follow(start: TrieNode, rng: random.Random, max_steps: int) -> list[TrieNode]:
    """`start`, then one random non-answer child at a time, at most `max_steps` nodes."""
    nodes = [start]
    while len(nodes) < max_steps:
        kids = [c for c in nodes[-1].child_list() if not c.is_conclusion]
        if not kids:
            break
        nodes.append(rng.choice(kids))
    return nodes


def _critique_for(
    p: ProblemSolutions, prefix: Sequence[str], written: Sequence[str], rng: random.Random
) -> str | None:
    """A critique of a solution or partial path that goes through the written detour (or stops
    inside it), names no step but the detour's first (where the verdicts say it went wrong) and
    states no answer."""
    n = len(prefix)
    fits = set()
    for lines, critique in p.critiques:
        line = critique.splitlines()[0].strip() if critique.strip() else ""
        if not line or line == REVIEW_OK or answer_of_text(line) is not None:
            continue
        if len(lines) <= n or tuple(lines[: len(written)]) != tuple(written[: len(lines)]):
            continue
        if all(int(k) == n + 1 for k in _STEP_RE.findall(line)):
            fits.add(line)
    return rng.choice(sorted(fits)) if fits else None


def plan_journey(p: ProblemSolutions, config: ExtractConfig) -> Journey | None:
    """The journey of `p` at ``config.seed``, or None when `p` has no correct solution or no
    correct path with a place to detour (module docstring)."""
    rng = _rng(config.seed, "journey", p.id)
    options = []
    for sol in p.distinct(True):
        nodes = _trie_path(p.trie, sol.lines)
        spots = [i for i in range(len(sol.lines)) if _detour_starts(nodes[i], nodes[i + 1])]
        if spots:
            options.append((sol, nodes, spots))
    if not options:
        return None
    sol, nodes, spots = rng.choice(options)
    detours = []
    places = _sample(rng, spots, config.journey_k)
    if config.detour_rate < 1.0:
        places = [i for i in places if rng.random() < config.detour_rate]
    for i in places:
        start = rng.choice(_detour_starts(nodes[i], nodes[i + 1]))
        taken = _follow(start, rng, config.detour_steps)
        steps = tuple(t.step for t in taken)  # type: ignore[misc]
        written = [*sol.lines[:i], *(s[1] for s in steps)]
        critique = _critique_for(p, sol.lines[:i], written, rng) if config.use_critiques else None
        reflection = critique or config.reflection.format(step=i + 1, line=steps[0][1])
        detours.append(Detour(i, steps, reflection, critique is not None))
    return Journey(sol.steps, tuple(detours))


_RATING = {"correct": "positive", "return": "positive", "wrong": "negative",
           "reflection": "positive"}  # fmt: skip


def journey_document(problem: Problem, journey: Journey) -> str:
    """The journey as an OpenLongCoT path string: correct steps ``expansion`` (the answer line
    ``conclusion``) rated positive, detour steps rated negative, each reflection a ``critic``, and
    the step after it a ``refine`` (unless it is the answer line)."""
    chain = [("problem", problem.question, "positive")]
    for role, (meta, line) in journey.steps():
        if role == "return" and meta != "conclusion":
            meta = "refine"
        chain.append((meta, line, _RATING[role]))
    last = len(chain) - 1
    nodes = tuple(
        Node(k, k - 1 if k else None, (k + 1,) if k < last else (), text=text,
             meta_action=meta, rating=rating)  # type: ignore[arg-type]
        for k, (meta, text, rating) in enumerate(chain)
    )  # fmt: skip
    return path_to_string(Tree(problem=problem, nodes=nodes, method="journey"), last)


def journey(p: ProblemSolutions, config: ExtractConfig, out: ExtractResult) -> None:
    """The journey of `p` as an SFT row (or an OpenLongCoT document with ``format``)."""
    plan = plan_journey(p, config)
    if plan is None:
        out.add("problems without a journey")
        return
    out.add("detours", len(plan.detours))
    out.add("critique reflections", sum(d.critique for d in plan.detours))
    if not plan.detours:
        out.add("journeys without a detour")
    extra: dict[str, Any] = {"detours": len(plan.detours)}
    if config.format == "openlongcot":
        doc = journey_document(p.problem, plan)
        out.rows.append({"id": p.id, "kind": "journey", "text": doc, **extra})
    else:
        if config.mask_wrong_steps and (spans := plan.wrong_spans()):
            extra[IGNORE_SPANS_FIELD] = [list(span) for span in spans]
        out.rows.append(_sft(p, "journey", plan.lines(), **extra))


def shortcut(p: ProblemSolutions, config: ExtractConfig, out: ExtractResult) -> None:
    """The correct path of `p`'s journey alone (nothing when `journey` writes nothing)."""
    plan = plan_journey(p, config)
    if plan is None:
        out.add("problems without a journey")
        return
    out.rows.append(_sft(p, "shortcut", [s[1] for s in plan.path]))


# -- OpenLongCoT ------------------------------------------------------------------------------


def trie_tree(p: ProblemSolutions) -> Tree:
    """`p`'s trie as a `Tree`: root = the question, one node per step (meta action from
    `solution_steps`), value = the return, count = visits, ratings from the returns."""
    nodes: list[dict[str, Any]] = [
        {"id": 0, "parent": None, "children": [], "text": p.problem.question,
         "meta_action": "problem", "visits": p.trie.count, "value": p.trie.value}
    ]  # fmt: skip
    stack: list[tuple[TrieNode, int]] = [(c, 0) for c in reversed(p.trie.child_list())]
    while stack:
        node, parent = stack.pop()
        k = len(nodes)
        nodes[parent]["children"].append(k)
        nodes.append({
            "id": k, "parent": parent, "children": [], "text": node.step[1],  # type: ignore[index]
            "meta_action": node.step[0], "visits": node.count, "value": node.value,  # type: ignore[index]
            "terminal": node.is_conclusion,
        })  # fmt: skip
        stack.extend((c, k) for c in reversed(node.child_list()))
    return Tree(problem=p.problem, nodes=tuple(Node(**n) for n in nodes), method="trie")


def openlongcot(p: ProblemSolutions, config: ExtractConfig, out: ExtractResult) -> None:
    """`p`'s trie as one OpenLongCoT document (depth-first pre-order)."""
    out.rows.append({"id": p.id, "kind": "openlongcot", "text": tree_to_string(trie_tree(p))})


_KIND_FUNCS = {
    "best-paths": best_paths,
    "pairs": pairs,
    "values": values,
    "journey": journey,
    "shortcut": shortcut,
    "openlongcot": openlongcot,
}


def extract(
    kind: str, problems: Iterable[ProblemSolutions], config: ExtractConfig | None = None
) -> ExtractResult:
    """The rows of `kind` for `problems`, in problem order.

    Raises:
        ExtractError: unknown kind.
    """
    if kind not in _KIND_FUNCS:
        raise ExtractError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    config = config or ExtractConfig()
    out = ExtractResult(kind)
    for p in problems:
        out.add("problems")
        _KIND_FUNCS[kind](p, config, out)
    return out


_COUNT_ORDER = (
    "outcome pairs",
    "step pairs",
    "detours",
    "critique reflections",
    "journeys without a detour",
    "problems without a journey",
)


def counts_line(result: ExtractResult, load: LoadResult | None = None) -> str:
    """One line summing up `result` (and the trees read), for the command line."""
    parts = [f"{result.kind}:"]
    if load is not None:
        parts.append(f"{load.trees} trees read, {load.skipped} unverified skipped,")
    c = dict(result.counts)
    parts.append(f"{c.pop('problems', 0)} problems, {len(result.rows)} rows")
    order = [k for k in _COUNT_ORDER if k in c] + sorted(set(c) - set(_COUNT_ORDER))
    extra = ", ".join(f"{c[k]} {k}" for k in order)
    return " ".join(parts) + (f" ({extra})" if extra else "")

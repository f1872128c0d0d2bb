"""``berry collect`` killed with SIGKILL at seeded points and resumed with ``--resume`` writes the
tree files, records and manifest of an uninterrupted collection, and a kill loses at most the
problems in flight: every record on disk at the kill is kept as it is, and the resume searches
only what is missing (tests/crashkit.py).

The long form: 8 arithmetic problems searched by self-consistency and by step-mcts (3 rollouts,
berry-tiny, batches of 2), one run directory each; the short form: 4 problems, step-mcts only.
Progress is the number of records written (all runs), so kills land in searches, tree writes,
record appends and the manifest write; some points of the long form kill the first resume too,
and its last point comes after the collection has finished.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crashkit import (
    berry,
    crash_and_resume,
    files_under,
    jsonl,
    kill_points,
    line_count,
    run_to_end,
    without,
)
from openberry.data.arithmetic import load_split
from openberry.training.collect import MANIFEST
from openberry.tree import Tree

pytestmark = [pytest.mark.slow, pytest.mark.crash]


class Collection:
    """A collection's command and its uninterrupted run (``root/straight``)."""

    def __init__(self, root: Path, problems: int, methods: tuple[str, ...]) -> None:
        self.runs = [f"{m}@3" for m in methods]
        self.problems = problems
        self.data = root / "data.jsonl"
        rows = [
            {"id": f"q{i}", "question": e.problem.question, "answer": e.answer}
            for i, e in enumerate(load_split("test", limit=problems))
        ]
        self.data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        self.settings = ("--method", ",".join(methods), "--rollouts", 3, "--batch-size", 2)
        self.straight = root / "straight"
        run_to_end(self.cmd(self.straight), root / "straight.log")

    def cmd(self, out: Path, *extra: str) -> list[str]:
        return berry("collect", "--dataset", self.data, *self.settings, "--out", out, *extra)

    def progress(self, out: Path) -> int:
        return sum(line_count(out / run / "records.jsonl") for run in self.runs)

    def state(self, out: Path) -> str:
        """Records per run (+ a torn last line), leftover temporary files, the manifest."""
        said = []
        for run in self.runs:
            path = out / run / "records.jsonl"
            data = path.read_bytes() if path.is_file() else b""
            torn = " + a torn line" if data and not data.endswith(b"\n") else ""
            said.append(f"{run} {line_count(path)} records{torn}")
        tmp = [p.name for p in out.rglob("*.tmp")] if out.is_dir() else []
        if tmp:
            said.append(f"temporary files {', '.join(tmp)}")
        said.append("manifest" if (out / MANIFEST).is_file() else "no manifest")
        return "; ".join(said)

    def check(self, point, tmp_path: Path):
        out = tmp_path / "killed"
        at_kill: dict[str, list[bytes]] = {}

        def snapshot() -> None:
            for run in self.runs:
                path = out / run / "records.jsonl"
                data = path.read_bytes() if path.is_file() else b""
                at_kill[run] = [x for x in data.splitlines(keepends=True) if x.endswith(b"\n")]

        crash = crash_and_resume(
            self.cmd(out),
            self.cmd(out, "--resume"),
            lambda: self.progress(out),
            point,
            tmp_path / "logs",
            on_kill=snapshot,
            describe=lambda: self.state(out),
        )
        for run in self.runs:
            lines = (out / run / "records.jsonl").read_bytes().splitlines(keepends=True)
            kept = at_kill[run]
            assert lines[: len(kept)] == kept, f"{crash}: {run}: a record on disk was changed"
            assert _records(out, run) == _records(self.straight, run), f"{crash}: {run} records"
            names = files_under(out / run / "trees")
            assert names == files_under(self.straight / run / "trees"), f"{crash}: {run} files"
            assert _trees(out, run) == _trees(self.straight, run), f"{crash}: {run} trees"
        if len(crash.killed) == 1:  # the resume searched exactly what the kill left to do
            done = sum(len(kept) for kept in at_kill.values())
            total = len(self.runs) * self.problems
            said = f"{total - done} problem(s) collected, {done} already there"
            log = (tmp_path / "logs" / "resume.log").read_text()
            assert said in log, f"{crash}: the resume did not say {said!r}:\n{log[-2000:]}"
        assert _manifest(out) == _manifest(self.straight), f"{crash}: manifest.json differs"
        return crash


def _records(out: Path, run: str) -> list[dict]:
    return [without(r) for r in jsonl(out / run / "records.jsonl")]


def _trees(out: Path, run: str) -> dict[str, dict]:
    found = {}
    for p in sorted((out / run / "trees").glob("*.json")):
        d = Tree.load(p).to_dict()
        d["info"] = {k: v for k, v in d["info"].items() if k != "stats"}  # wall-clock times
        found[p.name] = d
    return found


def _manifest(out: Path) -> dict:
    return without(json.loads((out / MANIFEST).read_text()))


@pytest.fixture(scope="module")
def collection_short(tmp_path_factory) -> Collection:
    return Collection(tmp_path_factory.mktemp("collect-short"), 4, ("step-mcts",))


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Collection:
    return Collection(tmp_path_factory.mktemp("collect"), 8, ("self-consistency", "step-mcts"))


@pytest.mark.parametrize(
    "point",
    kill_points("collect-short", 1, after=(1, 1), delay=(0.0, 0.0)),
    ids=lambda p: f"seed{p.seed}",
)
def test_collect_killed_mid_run_resumes_exactly(collection_short, point, tmp_path) -> None:
    crash = collection_short.check(point, tmp_path)
    assert crash.killed == [True], f"{crash}: meant to land mid-run"


@pytest.mark.long
@pytest.mark.parametrize(
    "point",
    kill_points(
        "collect",
        12,
        after=(0, 16),
        delay=(0.0, 0.4),
        resume_after=(1, 4),
        resume_share=0.3,
        after_end=True,
    ),
    ids=lambda p: f"seed{p.seed}",
)
def test_collect_killed_at_seeded_points_resumes_exactly(collection, point, tmp_path) -> None:
    collection.check(point, tmp_path)

"""Small hand-built `berry eval` output directories for the report tests (see docs/eval.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from openberry.records import Problem
from openberry.tree import Node, Tree


def sample(
    answer: str | None,
    correct: bool,
    *,
    i: int = 0,
    tree: str | None = None,
    candidates: list[tuple[str, bool, float | None]] | None = None,
    tokens: int = 100,
    calls: int = 2,
    wall: float = 0.5,
) -> dict[str, Any]:
    return {
        "sample": i,
        "answer": answer,
        "correct": correct,
        "verdict": "exact" if correct else "wrong",
        "generated_tokens": tokens,
        "prompt_tokens": 3 * tokens,
        "scored_tokens": 10,
        "calls": calls,
        "rounds": calls,
        "wall_time": wall,
        "nodes": 3,
        "tree": tree,
        "candidates": [
            {"answer": a, "correct": c, "count": 1, "score": s} for a, c, s in candidates or []
        ],
    }


def record(run: str, index: int, reference: str, samples: list[dict[str, Any]]) -> dict[str, Any]:
    method, _, budget = run.rpartition("@")
    for i, s in enumerate(samples):
        s["sample"] = i
    first = samples[0]
    return {
        "schema": "openberry.eval-record",
        "version": 1,
        "run": run,
        "method": method,
        "budget": int(budget),
        "seed": 0,
        "index": index,
        "chunk": 0,
        "id": f"arithmetic/test/{index}",
        "question": f"Question {index}?",
        "reference": reference,
        "answer": first["answer"],
        "correct": first["correct"],
        "verdict": first["verdict"],
        "samples": samples,
    }


def small_tree(index: int, answer: str) -> Tree:
    nodes = (
        Node(0, None, (1,), f"Question {index}?", "problem", visits=1),
        Node(1, 0, (), f"\\boxed{{{answer}}}", "conclusion", terminal=True, answer=answer),
    )
    return Tree(Problem(f"arithmetic/test/{index}", f"Question {index}?"), nodes, method="test")


def write_records(path: Path, rows: list[dict[str, Any]], tail: bytes = b"") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in rows)
    path.write_bytes(text.encode("utf-8") + tail)


def greedy_records() -> list[dict[str, Any]]:
    """4 problems x 2 samples: accuracy 0.5, maj@2 0.5, pass@2 0.75, oracle any node 0.75,
    best-scored node 0.5 on 2 problems, one problem without an answer; sample 0 wrong on 1, 2, 3."""
    run = "greedy@1"
    return [
        record(
            run, 0, "36", [sample("36", True, candidates=[("36", True, None)]), sample("36", True)]
        ),
        record(
            run,
            1,
            "7",
            [
                sample(
                    "5",
                    False,
                    tree="trees/000001-s0.json",
                    candidates=[("5", False, 0.9), ("7", True, 0.2)],
                ),
                sample("7", True),
            ],
        ),
        record(run, 2, "3", [sample(None, False, tree="trees/000002-s0.json"), sample("3", True)]),
        record(
            run,
            3,
            "9",
            [
                sample("8", False, candidates=[("8", False, 0.5), ("9", True, 0.7)]),
                sample(" 8 ", False),
            ],
        ),
    ]


def mctsr_records(tokens: int = 400) -> list[dict[str, Any]]:
    """4 problems x 2 samples, sample 0 always right, one sample 1 wrong: accuracy 7/8."""
    run = "mctsr@4"
    rows = []
    for i in range(4):
        second = (
            sample("0", False, tokens=tokens) if i == 0 else sample(str(i), True, tokens=tokens)
        )
        rows.append(
            record(run, i, str(i), [sample(str(i), True, tokens=tokens, calls=8, wall=2.0), second])
        )
    return rows


def make_eval_dir(
    out: Path, *, torn: bool = False, duplicate: bool = False, extra_run: bool = False
) -> Path:
    """run.json + greedy@1 and mctsr@4 (+ an unlisted best-of-n@2) and one tree file."""
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "dataset": "arithmetic",
        "model": "berry-tiny",
        "runs": ["greedy@1", "mctsr@4"],
        "samples": 2,
        "seed": 0,
    }
    (out / "run.json").write_text(json.dumps(config), encoding="utf-8")
    write_records(
        out / "greedy@1" / "records.jsonl",
        greedy_records(),
        tail=b'{"schema": "openberry.eval-record", "id": "arithmetic/te' if torn else b"",
    )
    mctsr = mctsr_records()
    write_records(out / "mctsr@4" / "records.jsonl", mctsr + ([mctsr[1]] if duplicate else []))
    small_tree(1, "5").save(out / "greedy@1" / "trees" / "000001-s0.json")
    if extra_run:
        rows = [record("best-of-n@2", 0, "1", [sample("1", True, tokens=200)])]
        write_records(out / "best-of-n@2" / "records.jsonl", rows)
    return out

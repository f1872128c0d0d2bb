"""Self-play tree collection (``berry collect``): search a training split, keep every tree with the
verifier's verdicts, and describe the collection in a manifest.

This is LLaMA-O1's offline collector (its ``offline_collect.py``: one JSON tree per problem) run
through the evaluation runner (`openberry.evaluation.runner.evaluate`), so collection inherits its
batching, Ray workers, durable records and exact resume: after ``kill -9``, ``--resume`` searches
the cut-short batch again with its seed and writes the same trees. What collection adds:

- the training split by default, since the trees become training data;
- the training-time verifier: every candidate solution in a tree carries the grader's verdict
  (`openberry.evaluation.verify`); the reference answer never enters a prompt unless
  ``hint_answer`` is set (off by default, LLaMA-O1's ground-truth hint, recorded in the manifest);
- ``OUT/manifest.json`` (`write_manifest`): method, search config, model, seed, counts, accuracy
  and oracle coverage per run, rewritten at the end of every (resumed) collection.

Where we depart from LLaMA-O1: its collector always put the answer in the prompt and kept trees in
memory until the end; here the hint is opt-in and each problem's trees are on disk as it finishes.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from openberry.evaluation.runner import EvalConfig, EvalSummary, evaluate, plan_runs
from openberry.evaluation.store import RecordFile
from openberry.fileio import write_text_atomic

__all__ = ["MANIFEST", "MANIFEST_SCHEMA", "collect", "run_stats", "write_manifest"]

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = "openberry.collect-manifest"


def collect(config: EvalConfig, **kwargs: Any) -> tuple[EvalSummary, dict[str, Any]]:
    """Search ``config``'s problems, write verified trees and records (as `evaluate`), then the
    manifest. Keyword arguments go to `evaluate` (``resume``, ``workers``, ``ray_address``,
    ``models``, ``progress``). Returns the evaluation summary and the manifest."""
    summary = evaluate(config, **kwargs)
    return summary, write_manifest(config, summary.wall_time)


def run_stats(run_dir: Path) -> dict[str, Any]:
    """Counts of one run directory, read back from its records."""
    rows, _ = RecordFile(run_dir / "records.jsonl").load()
    samples = [s for r in rows for s in r.get("samples", [])]
    cands = [c for s in samples for c in s.get("candidates", [])]
    n = len(rows)
    return {
        "problems": n,
        "trees": len(samples),
        "nodes": sum(s.get("nodes", 0) for s in samples),
        "distinct_answers": len(cands),
        "correct_answers": sum(bool(c.get("correct")) for c in cands),
        "accuracy": sum(bool(r.get("correct")) for r in rows) / n if n else None,
        "oracle_coverage": (
            sum(any(c.get("correct") for s in r["samples"] for c in s["candidates"]) for r in rows)
            / n
            if n
            else None
        ),
        "generated_tokens": sum(s.get("generated_tokens", 0) for s in samples),
    }


def write_manifest(config: EvalConfig, wall_time: float | None = None) -> dict[str, Any]:
    """Write ``OUT/manifest.json`` for the collection in ``config.out`` and return it."""
    from openberry.formats.profiles import choice_identity, choose_profile
    from openberry.search import make_config

    out = Path(config.out)
    # auto as the policy's options say (--chat-template); each tree records the profile it used.
    prompts = choose_profile(config.prompts, config.policy.chat_template)
    runs = {}
    for run in plan_runs(config):
        search_config = make_config(run.method, run.budget, dict(run.overrides), prompts)
        runs[run.name] = {
            "method": run.method,
            "budget": run.budget,
            "config": dataclasses.asdict(search_config),
            **run_stats(out / run.name),
        }
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "version": 1,
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "dataset": config.dataset,
        "path": config.path,
        "split": config.split,
        "limit": config.limit,
        "model": config.policy.model,
        "backend": config.policy.backend,
        "judge": config.judge.model if config.judge else None,
        "value_model": config.value.model if config.value else None,
        "seed": config.seed,
        "samples": config.samples,
        "hint_answer": config.hint_answer,
        "prompts": choice_identity(config.prompts),
        "verifier": "openberry grader: every candidate answer checked after its search; "
        "verdicts in node.info['verified']",
        "wall_time_s": round(wall_time, 2) if wall_time is not None else None,
        "runs": runs,
    }
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1) + "\n", durable=True)
    return manifest

"""Our grader against ProcessBench's final_answer_correct, compared with math-verify alone.

Reads ../shared/data (or $BERRY_DATA_DIR); skipped when the files are absent. The comparison logic
lives in bench/grader_processbench.py; this test pins its result: our agreement is at least
math-verify's, and the rows where we disagree with the label are exactly the reviewed list in
tests/grading/data/processbench_disagreements.jsonl.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LISTED = Path(__file__).resolve().parent / "data" / "processbench_disagreements.jsonl"


def _bench_module():
    name = "grader_processbench"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # the worker processes find math_verify_alone by this name
    spec.loader.exec_module(module)
    return module


def test_disagreement_list_is_reviewed():
    rows = [json.loads(line) for line in LISTED.read_text(encoding="utf-8").splitlines()]
    assert rows, "empty disagreement list"
    for row in rows:
        assert set(row) == {"id", "ours", "label", "extracted", "gold", "reason"}
        assert row["ours"] != row["label"]
        assert row["reason"] and not row["reason"].startswith("TODO")


@pytest.mark.data
@pytest.mark.slow
def test_processbench_agreement(shared_data_dir):
    bench = _bench_module()
    if not (shared_data_dir / bench.PROCESSBENCH_FILE).is_file():
        pytest.skip(f"{bench.PROCESSBENCH_FILE} not found in {shared_data_dir}")
    rows, total = bench.load_rows(shared_data_dir)
    assert total == 1000
    assert len(rows) == 992

    mv = bench.run_math_verify_alone(rows, workers=2)
    ours = bench.run_ours(rows, workers=2, timeout=5.0)
    mv_agree = sum(v == r.label for v, r in zip(mv, rows, strict=True))
    our_agree = sum(v.correct == r.label for v, r in zip(ours, rows, strict=True))
    assert our_agree >= mv_agree, (our_agree, mv_agree)

    listed = {row["id"]: row for row in map(json.loads, LISTED.read_text().splitlines())}
    found = {r.id: v for v, r in zip(ours, rows, strict=True) if v.correct != r.label}
    assert set(found) == set(listed), {
        "new disagreements": sorted(set(found) - set(listed)),
        "no longer disagreeing": sorted(set(listed) - set(found)),
    }
    for row_id, verdict in found.items():
        assert verdict.correct == listed[row_id]["ours"]
        assert verdict.pred == listed[row_id]["extracted"]

"""Dataset registry and loader: field mapping for every known dataset, sources, bad rows."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from importcheck import imported_roots
from openberry.data import (
    DATASETS,
    DatasetError,
    DatasetSpec,
    count_rows,
    gsm8k_final_answer,
    load_examples,
)
from openberry.data.datasets import _LEAKY_FIELDS
from openberry.errors import BerryError

LOCAL = {
    # name: (file, rows, first id, question start, first answer)
    "gsm8k": ("gsm8k_test.jsonl", 1319, "gsm8k/0", "Janet’s ducks lay 16 eggs", "18"),
    "math500": (
        "math500_test.jsonl",
        500,
        "math500/test/precalculus/807.json",
        "Convert the point $(0,3)$",
        r"\left( 3, \frac{\pi}{2} \right)",
    ),
    "math": ("math_test_full5000.jsonl", 5000, "math/0", "How many vertical asymptotes", "2"),
    "olympiadbench": (
        "olympiadbench_test.jsonl",
        675,
        "olympiadbench/1606",
        "Xenia and Sergey play the following game.",
        "2",
    ),
    "minerva": (
        "minerva_math_test.jsonl",
        272,
        "minerva/0",
        "Each of the two Magellan telescopes",
        "1.6",
    ),
}


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
    """No data dir and no hub unless a test asks: nothing here may touch the network."""
    monkeypatch.delenv("BERRY_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _assert_answer_free(examples) -> None:
    for ex in examples:
        meta = ex.problem.meta
        assert not set(meta) & _LEAKY_FIELDS, meta
        if ex.solution:
            assert ex.solution not in [str(v) for v in meta.values()]
        assert ex.answer is None or (isinstance(ex.answer, str) and ex.answer)


# ---------------------------------------------------------------------------------------------
# Registry


def test_registry_names_and_specs():
    assert set(DATASETS) == {
        "gsm8k",
        "math500",
        "math",
        "olympiadbench",
        "minerva",
        "aime24",
        "aime25",
        "amc23",
        "arithmetic",
    }
    for name, spec in DATASETS.items():
        assert spec.name == name and spec.description
        assert spec.builtin == (name == "arithmetic")
        assert spec.builtin or spec.local_file
    assert DATASETS["gsm8k"].hub_id == "openai/gsm8k" and DATASETS["gsm8k"].hub_config == "main"
    assert DATASETS["math500"].hub_id == "HuggingFaceH4/MATH-500"
    assert DATASETS["aime24"].hub_id == "HuggingFaceH4/aime_2024"
    assert DATASETS["aime24"].hub_split == "train"
    assert DATASETS["aime25"].hub_id == "math-ai/aime25"
    assert DATASETS["amc23"].hub_id == "math-ai/amc23"
    for name, (file, rows, *_) in LOCAL.items():
        assert DATASETS[name].local_file == file
        assert DATASETS[name].num_rows == rows


def test_spec_rejects_leaky_meta():
    with pytest.raises(ValueError, match="meta_fields"):
        DatasetSpec(name="x", description="x", meta_fields=("level", "solution"))


def test_gsm8k_final_answer():
    assert gsm8k_final_answer("a #### 1 b\n#### 70,000") == "70000"
    assert gsm8k_final_answer("#### 1,234,567.5 ") == "1234567.5"
    assert gsm8k_final_answer("#### -3") == "-3"
    assert gsm8k_final_answer("no marker 5") is None


# ---------------------------------------------------------------------------------------------
# The shared benchmark files


@pytest.mark.data
@pytest.mark.parametrize("name", list(LOCAL))
def test_local_benchmark_mapping(name, shared_data_dir, monkeypatch):
    file, rows, first_id, question_start, answer = LOCAL[name]
    if not (shared_data_dir / file).is_file():
        pytest.skip(f"{file} not in {shared_data_dir}")
    monkeypatch.setenv("BERRY_DATA_DIR", str(shared_data_dir))
    result = load_examples(name)
    assert result.origin == str(shared_data_dir / file)
    assert len(result.examples) == rows == count_rows(shared_data_dir / file)
    assert result.skipped == []
    first = result.examples[0]
    assert first.id == first_id
    assert first.problem.question.startswith(question_start)
    assert first.answer == answer
    assert first.solution
    assert {ex.problem.source for ex in result.examples} == {name}
    assert len({ex.id for ex in result.examples}) == rows
    _assert_answer_free(result.examples)


@pytest.mark.data
def test_local_benchmark_details(shared_data_dir, monkeypatch):
    monkeypatch.setenv("BERRY_DATA_DIR", str(shared_data_dir))
    gsm8k = load_examples("gsm8k").examples
    assert gsm8k[0].solution.endswith("#### 18")
    assert all("," not in ex.answer for ex in gsm8k)  # '#### 70,000' style answers are cleaned
    math500 = load_examples("math500", limit=1).examples[0]
    assert math500.problem.meta == {"subject": "Precalculus", "level": 2}
    math = load_examples("math", limit=1).examples[0]
    assert math.problem.meta == {"level": "Level 3", "type": "Algebra"}
    olympiad = load_examples("olympiadbench", limit=1).examples[0]
    assert olympiad.problem.meta["answer_type"] == "Numerical"
    assert "final_answer" not in olympiad.problem.meta
    assert olympiad.solution.startswith("Sergey can determine")
    minerva = load_examples("minerva", limit=1).examples[0]
    assert minerva.problem.meta["type"].startswith("Introduction to Astronomy")


@pytest.mark.data
def test_math_boxed_answers_agree_with_math500(shared_data_dir):
    """MATH-500 is a subset of MATH: the boxed gold of the full file matches its answer field."""
    full = load_examples("math", path=shared_data_dir / "math_test_full5000.jsonl").examples
    by_question = {ex.problem.question: ex.answer for ex in full}
    subset = load_examples("math500", path=shared_data_dir / "math500_test.jsonl").examples
    assert all(by_question[ex.problem.question] == ex.answer for ex in subset)


# ---------------------------------------------------------------------------------------------
# Datasets without local files: fixtures with the upstream field names


def test_aime24_fields(tmp_path):
    path = _write_jsonl(
        tmp_path / "aime24.jsonl",
        [
            {
                "id": 60,
                "problem": "Find $x$.",
                "solution": "So $x=\\boxed{204}$.",
                "answer": "204",
                "url": "https://artofproblemsolving.com/wiki/2024_AIME_I_Problems/Problem_1",
                "year": "2024",
            }
        ],
    )
    [ex] = load_examples("aime24", path=path).examples
    assert ex.id == "aime24/60"
    assert (ex.problem.question, ex.answer, ex.problem.source) == ("Find $x$.", "204", "aime24")
    assert ex.solution == "So $x=\\boxed{204}$."
    assert ex.problem.meta == {"year": "2024"}  # the url points at the solution: not kept


def test_aime25_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {"problem": ["P1", "P2", "P3"], "answer": ["70", "588", "16"], "id": ["0", "1", "2"]}
    )
    path = tmp_path / "aime25.parquet"
    pq.write_table(table, path)
    result = load_examples("aime25", path=path, limit=2)
    assert [(e.id, e.problem.question, e.answer) for e in result.examples] == [
        ("aime25/0", "P1", "70"),
        ("aime25/1", "P2", "588"),
    ]
    assert result.examples[0].solution is None


def test_published_copies_field_aliases(tmp_path):
    """Regression: QwQ's aime25.jsonl (``prompt``, ``answer``) was refused; known datasets take
    the usual aliases, and an alias holds the answer itself (no '#### ' or \\boxed derivation)."""
    qwq = _write_jsonl(tmp_path / "aime25.jsonl", [{"prompt": "P1", "answer": "70"}])
    [ex] = load_examples("aime25", path=qwq).examples
    assert (ex.id, ex.problem.question, ex.answer) == ("aime25/0", "P1", "70")
    gsm = _write_jsonl(tmp_path / "g.jsonl", [{"problem": "q", "expected_answer": "1,000"}])
    assert load_examples("gsm8k", path=gsm).examples[0].answer == "1,000"
    math = _write_jsonl(
        tmp_path / "m.jsonl", [{"question": "q", "gold": "7", "expected_answer": "7", "idx": 3}]
    )
    [ex] = load_examples("math", path=math).examples
    assert (ex.id, ex.answer, ex.problem.meta) == ("math/3", "7", {})
    # The dataset's own field wins over an alias, and keeps its derivation.
    both = _write_jsonl(tmp_path / "b.jsonl", [{"question": "q", "answer": "w #### 5", "gold": 1}])
    assert load_examples("gsm8k", path=both).examples[0].answer == "5"
    custom = _write_jsonl(tmp_path / "c.jsonl", [{"prompt": "q", "expected_answer": 3}])
    assert load_examples(str(custom)).examples[0].answer == "3"


def test_missing_field_lists_row_keys_and_options(tmp_path):
    path = _write_jsonl(tmp_path / "a.jsonl", [{"text": "P1", "solution_value": "70"}])
    with pytest.raises(DatasetError) as err:
        load_examples("aime25", path=path)
    assert str(err.value).startswith(
        f"{path}:1: missing field 'problem' (also tried 'question', 'prompt'); the row has "
        "'text', 'solution_value'; name the field with --question-field/--answer-field"
    )
    ex = load_examples(
        "aime25", path=path, question_field="text", answer_field="solution_value"
    ).examples[0]
    assert (ex.problem.question, ex.answer) == ("P1", "70")
    with pytest.raises(DatasetError, match=r"the row has 'text', 'solution_value'; .*--id-field"):
        load_examples(
            "aime25", path=path, question_field="text", answer_field="solution_value", id_field="u"
        )


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_amc23_numeric_answers(tmp_path, fmt, monkeypatch):
    rows = [
        {"id": 0, "question": "Q0", "answer": 12.0, "url": "u0"},
        {"id": 1, "question": "Q1", "answer": 0.5, "url": "u1"},
        {"id": 2, "question": "Q2", "answer": -3.0, "url": "u2"},
    ]
    if fmt == "jsonl":
        path = _write_jsonl(tmp_path / "amc23.jsonl", rows)
    else:
        pa = pytest.importorskip("pyarrow")
        pq = pytest.importorskip("pyarrow.parquet")
        path = tmp_path / "amc23.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
    examples = load_examples("amc23", path=path).examples
    assert [e.answer for e in examples] == ["12", "0.5", "-3"]
    assert [e.id for e in examples] == ["amc23/0", "amc23/1", "amc23/2"]
    assert all(e.problem.meta == {} for e in examples)
    # The same file found through BERRY_DATA_DIR under the default name.
    if fmt == "jsonl":
        monkeypatch.setenv("BERRY_DATA_DIR", str(tmp_path))
        assert load_examples("amc23").examples == examples


def test_olympiadbench_list_fields(tmp_path):
    row = {
        "id": 7,
        "question": "Q",
        "final_answer": ["$(1,2)$", "$(3,4)$"],
        "solution": ["step one", "step two"],
        "unit": None,
        "answer_type": "Tuple",
        "is_multiple_answer": True,
        "subfield": "Algebra",
        "context": None,
        "error": None,
    }
    [ex] = load_examples("olympiadbench", path=_write_jsonl(tmp_path / "o.jsonl", [row])).examples
    assert ex.answer == "$(1,2)$, $(3,4)$"
    assert ex.solution == "step one\n\nstep two"
    assert ex.problem.meta == {
        "subfield": "Algebra",
        "answer_type": "Tuple",
        "is_multiple_answer": True,
    }


def test_json_array_and_split_ids(tmp_path):
    path = tmp_path / "g.json"
    path.write_text(json.dumps([{"question": "q", "answer": "work\n#### 1,000"}]))
    [ex] = load_examples("gsm8k", path=path, split="train").examples
    assert (ex.id, ex.answer, ex.solution) == ("gsm8k/train/0", "1000", "work\n#### 1,000")


# ---------------------------------------------------------------------------------------------
# Sources and errors


def test_offline_without_file_explains_how_to_pass_one(tmp_path, monkeypatch):
    with pytest.raises(DatasetError) as exc:
        load_examples("gsm8k")
    msg = str(exc.value)
    for part in ("--path FILE", "BERRY_DATA_DIR=DIR", "gsm8k_test.jsonl", "'question'", "####"):
        assert part in msg, msg
    assert "offline" in msg
    assert isinstance(exc.value, BerryError)

    monkeypatch.setenv("BERRY_DATA_DIR", str(tmp_path))
    with pytest.raises(
        DatasetError, match=re.escape(f"BERRY_DATA_DIR={tmp_path} has no aime24.jsonl")
    ):
        load_examples("aime24")
    with pytest.raises(DatasetError, match=r"no hub source.*math_test_full5000\.jsonl"):
        load_examples("math")
    with pytest.raises(DatasetError, match="split 'train'"):
        load_examples("math500", split="train")


def test_unknown_name_and_missing_path(tmp_path):
    with pytest.raises(DatasetError, match=r"unknown dataset 'nope'.*gsm8k"):
        load_examples("nope")
    with pytest.raises(DatasetError, match="no such file"):
        load_examples("gsm8k", path=tmp_path / "absent.jsonl")
    with pytest.raises(DatasetError, match="limit"):
        load_examples("gsm8k", limit=-1)


def _bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "bad.jsonl"
    lines = [
        json.dumps({"problem": "ok 1", "answer": "1", "unique_id": "a"}),
        "",
        json.dumps({"answer": "2", "unique_id": "b"}),
        "{not json",
        json.dumps({"problem": 5, "answer": "3", "unique_id": "c"}),
        json.dumps({"problem": "no answer", "unique_id": "d"}),
        json.dumps({"problem": "ok 2", "answer": 4, "unique_id": "e"}),
        json.dumps({"problem": "dup", "answer": "5", "unique_id": "a"}),
        "[1, 2]",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_row_error_names_the_line(tmp_path):
    path = _bad_file(tmp_path)
    with pytest.raises(DatasetError, match=rf"^{path}:3: missing field 'problem'"):
        load_examples("math500", path=path)
    # Rows before the first bad one load fine with a limit.
    assert len(load_examples("math500", path=path, limit=1).examples) == 1


def test_skip_bad_records_every_skipped_row(tmp_path):
    result = load_examples("math500", path=_bad_file(tmp_path), skip_bad=True)
    assert [e.id for e in result.examples] == ["math500/a", "math500/e"]
    assert result.examples[1].answer == "4"
    assert [line for line, _ in result.skipped] == [3, 4, 5, 6, 8, 9]
    reasons = dict(result.skipped)
    assert reasons[3] == (
        "missing field 'problem' (also tried 'question', 'prompt'); the row has 'answer', "
        "'unique_id'; name the field with --question-field/--answer-field"
    )
    assert "not valid JSON" in reasons[4]
    assert "must be a string" in reasons[5]
    assert reasons[6].startswith("missing field 'answer' (also tried 'expected_answer', ")
    assert "duplicate id 'math500/a'" in reasons[8]
    assert "got list" in reasons[9]


def test_boxed_and_gsm8k_answers_missing_are_bad_rows(tmp_path):
    math = _write_jsonl(tmp_path / "m.jsonl", [{"problem": "p", "solution": "no box", "idx": 0}])
    with pytest.raises(DatasetError, match=r"m.jsonl:1: field 'solution' has no \\boxed"):
        load_examples("math", path=math)
    gsm = _write_jsonl(tmp_path / "g.jsonl", [{"question": "q", "answer": "42"}])
    result = load_examples("gsm8k", path=gsm, skip_bad=True)
    assert result.examples == [] and result.skipped == [
        (1, "field 'answer' has no '#### ' final answer")
    ]


def test_custom_local_file_with_field_options(tmp_path):
    path = _write_jsonl(
        tmp_path / "mine.jsonl",
        [
            {"prompt": "1+1?", "gold": 2, "level": 1, "solution": "s"},
            {"prompt": "2+2?", "gold": "4", "meta": {"topic": "add", "answer": "4"}},
        ],
    )
    result = load_examples(str(path), question_field="prompt", answer_field="gold")
    assert [(e.id, e.problem.question, e.answer) for e in result.examples] == [
        ("mine/0", "1+1?", "2"),
        ("mine/1", "2+2?", "4"),
    ]
    assert result.examples[0].problem.meta == {"level": 1}
    assert result.examples[0].solution == "s"
    assert result.examples[1].problem.meta == {"topic": "add"}
    assert result.examples[0].problem.source == str(path)
    # Explicitly named fields are required.
    with pytest.raises(DatasetError, match=r"mine.jsonl:1: missing field 'text'"):
        load_examples(str(path), question_field="text")
    with pytest.raises(DatasetError, match=r"mine.jsonl:1: missing field 'answer'"):
        load_examples(str(path), question_field="prompt", answer_field="answer")


def test_custom_file_default_fields_answer_optional_and_ids_kept(tmp_path):
    path = _write_jsonl(
        tmp_path / "plain.jsonl",
        [{"id": "x/1", "problem": "p"}, {"question": "q", "final_answer": ["a", "b"]}],
    )
    examples = load_examples(str(path)).examples
    assert [(e.id, e.answer) for e in examples] == [("x/1", None), ("plain/1", "a, b")]


def test_answer_field_override_on_known_dataset(tmp_path):
    path = _write_jsonl(
        tmp_path / "g.jsonl", [{"question": "q", "answer": "w #### 7", "gold": "7"}]
    )
    assert load_examples("gsm8k", path=path, answer_field="answer").examples[0].answer == "7"
    assert load_examples("gsm8k", path=path, answer_field="gold").examples[0].answer == "7"
    with pytest.raises(DatasetError, match="missing field 'key'"):
        load_examples("gsm8k", path=path, id_field="key")


def test_limit_zero_reads_nothing(tmp_path):
    path = _write_jsonl(tmp_path / "a.jsonl", [{"problem": "p", "answer": "1"}])
    assert load_examples("aime25", path=path, limit=0).examples == []


# ---------------------------------------------------------------------------------------------
# arithmetic and import weight


def test_arithmetic_is_a_dataset():
    result = load_examples("arithmetic", limit=2)
    assert len(result.examples) == 2 and result.skipped == []
    assert all(ex.answer is not None for ex in result.examples)
    assert len(load_examples("arithmetic", split="train", limit=3).examples) == 3
    with pytest.raises(DatasetError, match="no split 'dev'"):
        load_examples("arithmetic", split="dev")


def test_importing_data_is_light():
    heavy = ("torch", "transformers", "datasets", "pyarrow", "pandas")
    assert imported_roots("import openberry.data, openberry.data.datasets", heavy) == []


class _FakeDatasets:
    """Stands in for the `datasets` package: records load_dataset calls, returns given rows."""

    def __init__(self, rows=None, error=None):
        self.rows, self.error, self.calls = rows, error, []

    def load_dataset(self, hub_id, config=None, *, split):
        self.calls.append((hub_id, config, split))
        if self.error is not None:
            raise self.error
        return list(self.rows)


def test_hub_source_when_online(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    fake = _FakeDatasets(
        rows=[{"id": 60, "problem": "P", "answer": "204", "url": "u", "year": "2024"}]
    )
    monkeypatch.setitem(sys.modules, "datasets", fake)
    result = load_examples("aime24")
    assert fake.calls == [("HuggingFaceH4/aime_2024", None, "train")]
    assert result.origin == "hub:HuggingFaceH4/aime_2024[train]"
    assert [(e.id, e.answer) for e in result.examples] == [("aime24/60", "204")]
    load_examples("gsm8k", split="train", skip_bad=True)
    assert fake.calls[-1] == ("openai/gsm8k", "main", "train")


def test_hub_unreachable_gives_local_file_advice(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    fake = _FakeDatasets(error=ConnectionError("Couldn't reach 'openai/gsm8k' on the Hub"))
    monkeypatch.setitem(sys.modules, "datasets", fake)
    with pytest.raises(DatasetError, match=r"unreachable.*--path FILE.*gsm8k_test\.jsonl"):
        load_examples("gsm8k")

"""`berry data list|show|corpus`, run in-process through `openberry.cli.main.main`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import openberry.cli.main as cli_main
import openberry.data


@pytest.fixture(autouse=True)
def _data_command_only(monkeypatch):
    """Only the data command is registered (other commands are tested elsewhere), and nothing
    here may reach the network or pick up the caller's data directory."""
    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", ("openberry.cli.data",))
    monkeypatch.delenv("BERRY_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def berry(*argv: str) -> int:
    return cli_main.main(list(argv))


def _require_arithmetic(*attrs: str):
    from openberry.data import arithmetic

    assert all(hasattr(arithmetic, a) for a in attrs), attrs
    return arithmetic


def test_data_list_without_data_dir(capsys):
    assert berry("data", "list") == 0
    out = capsys.readouterr().out
    for name in ("gsm8k", "math500", "olympiadbench", "aime24", "amc23", "arithmetic"):
        assert name in out
    assert "openai/gsm8k" in out and "built-in" in out
    assert "BERRY_DATA_DIR is not set" in out


@pytest.mark.data
def test_data_list_counts_local_files(shared_data_dir, monkeypatch, capsys):
    monkeypatch.setenv("BERRY_DATA_DIR", str(shared_data_dir))
    assert berry("data", "list") == 0
    lines = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line}
    assert lines["gsm8k"][1:3] == ["1319", "yes"]
    assert lines["math"][1:3] == ["5000", "yes"]
    assert lines["aime24"][1:3] == ["-", "-"]


@pytest.mark.data
def test_data_show_gsm8k(shared_data_dir, monkeypatch, capsys):
    monkeypatch.setenv("BERRY_DATA_DIR", str(shared_data_dir))
    assert berry("data", "show", "gsm8k", "--limit", "2") == 0
    captured = capsys.readouterr()
    assert "== gsm8k/0" in captured.out and "== gsm8k/1" in captured.out
    assert "answer:   18" in captured.out
    assert "gsm8k/2" not in captured.out
    assert "2 problems from" in captured.err


@pytest.mark.data
def test_data_show_json_with_path(shared_data_dir, capsys):
    path = str(shared_data_dir / "math500_test.jsonl")
    assert berry("data", "show", "math500", "--path", path, "--limit", "2", "--json") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in rows] == [
        "math500/test/precalculus/807.json",
        "math500/test/intermediate_algebra/1994.json",
    ]
    assert rows[0]["answer"] == r"\left( 3, \frac{\pi}{2} \right)"
    assert rows[0]["meta"] == {"subject": "Precalculus", "level": 2}
    assert set(rows[0]) == {"id", "question", "answer", "solution", "source", "meta"}


def test_data_show_arithmetic(capsys):
    _require_arithmetic("load_split")
    assert berry("data", "show", "arithmetic", "--limit", "2") == 0
    out = capsys.readouterr().out
    assert out.count("== ") == 2 and "answer:" in out
    assert berry("data", "show", "arithmetic", "--split", "train", "--limit", "2", "--json") == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and all(r["answer"] for r in rows)


def test_data_show_custom_file_skip_bad(tmp_path, capsys):
    path = tmp_path / "mine.jsonl"
    rows = [
        {"prompt": "1+1?", "gold": "2"},
        {"gold": "3"},
        {"prompt": "3+3?"},
        {"prompt": "x", "gold": 4},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = ["data", "show", str(path), "--question-field", "prompt", "--answer-field", "gold"]

    assert berry(*argv) == 2
    err = capsys.readouterr().err
    assert f"{path}:2: missing field 'prompt'" in err

    assert berry(*argv, "--skip-bad", "--json") == 0
    captured = capsys.readouterr()
    out_rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [(r["id"], r["answer"]) for r in out_rows] == [("mine/0", "2"), ("mine/3", "4")]
    assert "skipped 2 bad rows" in captured.err
    assert "line 2: missing field 'prompt'" in captured.err
    assert "line 3: missing field 'gold'" in captured.err


def test_data_show_aime25_published_copy(tmp_path, capsys):
    """Regression: `berry data show aime25 --path` on QwQ's copy (prompt, answer) failed."""
    path = tmp_path / "aime25.jsonl"
    path.write_text(json.dumps({"prompt": "Find $x$.", "answer": "70"}) + "\n")
    assert berry("data", "show", "aime25", "--path", str(path)) == 0
    out = capsys.readouterr().out
    assert "== aime25/0" in out and "question: Find $x$." in out and "answer:   70" in out


def test_data_show_missing_field_suggests_options(tmp_path, capsys):
    path = tmp_path / "odd.jsonl"
    path.write_text(json.dumps({"text": "Find $x$.", "sol": "70"}) + "\n")
    assert berry("data", "show", "aime25", "--path", str(path)) == 2
    err = capsys.readouterr().err
    assert "the row has 'text', 'sol'" in err and "--question-field" in err
    assert berry("data", "show", "aime25", "--path", str(path), "--question-field", "text") == 2
    assert "missing field 'answer'" in capsys.readouterr().err
    argv = ["data", "show", "aime25", "--path", str(path), "--question-field", "text"]
    assert berry(*argv, "--answer-field", "sol") == 0


def test_data_show_offline_error_is_one_line(capsys):
    assert berry("data", "show", "aime24") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("berry data: error: cannot load dataset 'aime24'")
    assert "--path FILE" in err and "BERRY_DATA_DIR=DIR" in err
    assert "\n" not in err


def test_data_show_unknown_dataset(capsys):
    assert berry("data", "show", "no-such-dataset") == 2
    assert "unknown dataset 'no-such-dataset'" in capsys.readouterr().err


def test_data_without_subcommand_prints_help(capsys):
    assert berry("data") == 2
    assert "SUBCOMMAND" in capsys.readouterr().out


@pytest.mark.parametrize("sub", ["show", "corpus", "list"])
def test_help_has_examples(sub, capsys):
    with pytest.raises(SystemExit) as exc:
        berry("data", sub, "--help")
    assert exc.value.code == 0
    assert "berry data" in capsys.readouterr().out.split("example", 1)[1]


def test_data_corpus_writes_jsonl(tmp_path, capsys):
    arithmetic = _require_arithmetic("corpus_rows", "CORPUS_KINDS")
    kind = arithmetic.CORPUS_KINDS[0]
    out = tmp_path / "sub" / "corpus.jsonl"
    assert (
        berry("data", "corpus", "arithmetic", "--kind", kind, "--limit", "5", "--out", str(out))
        == 0
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert 0 < len(rows) <= 5
    assert f"wrote {len(rows)} {kind} rows to {out}" in capsys.readouterr().out


def test_data_corpus_rejects_bad_options(tmp_path, capsys):
    _require_arithmetic("corpus_rows", "CORPUS_KINDS")
    out = str(tmp_path / "c.jsonl")
    assert berry("data", "corpus", "arithmetic", "--kind", "nope", "--out", out) == 2
    assert "corpus kind 'nope'" in capsys.readouterr().err
    assert (
        berry("data", "corpus", "arithmetic", "--kind", "pairs", "--split", "dev", "--out", out)
        == 2
    )
    assert "split 'dev'" in capsys.readouterr().err
    assert not (tmp_path / "c.jsonl").exists()
    with pytest.raises(SystemExit):
        berry(
            "data", "corpus", "arithmetic", "--kind", "solutions", "--slip-rate", "2", "--out", out
        )


def test_data_list_imports_no_heavy_dependency():
    """`berry data list` (and importing the data CLI) must not import torch, datasets, etc."""
    code = (
        "import argparse, sys\n"
        "import openberry.cli.data as data\n"
        "parser = argparse.ArgumentParser()\n"
        "data.register(parser.add_subparsers())\n"
        "args = parser.parse_args(['data', 'list'])\n"
        "args.func(args)\n"
        "heavy = ('torch', 'transformers', 'datasets', 'pyarrow', 'pandas')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


class _StubArithmetic:
    """Stands in for openberry.data.arithmetic to check what the CLI passes to it."""

    CORPUS_KINDS = ("solutions", "pairs")

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def corpus_rows(self, kind, split="train", **kwargs):
        self.calls.append((kind, split, kwargs))
        n = kwargs["limit"] if kwargs["limit"] is not None else 3
        return ({"kind": kind, "i": i} for i in range(n))

    def load_split(self, split="test", *, limit=None, **kwargs):
        from openberry.records import Example, Problem

        n = 4 if limit is None else limit
        return [
            Example(Problem(f"arithmetic/{split}/{i}", f"{i}+1?", "arithmetic"), str(i + 1))
            for i in range(n)
        ]


def test_corpus_and_show_delegate_to_the_generator(tmp_path, monkeypatch, capsys):
    stub = _StubArithmetic()
    monkeypatch.setitem(sys.modules, "openberry.data.arithmetic", stub)
    monkeypatch.setattr(openberry.data, "arithmetic", stub)
    out = tmp_path / "c.jsonl"
    argv = ["data", "corpus", "arithmetic", "--kind", "pairs", "--seed", "3", "--out", str(out)]
    assert berry(*argv) == 0
    assert berry(*argv, "--split", "validation", "--limit", "2", "--slip-rate", "0.25") == 0
    assert stub.calls == [
        ("pairs", "train", {"limit": None, "seed": 3}),
        ("pairs", "validation", {"limit": 2, "seed": 3, "slip_rate": 0.25}),
    ]
    assert [json.loads(line)["i"] for line in out.read_text().splitlines()] == [0, 1]
    assert "wrote 2 pairs rows" in capsys.readouterr().out

    assert berry("data", "show", "arithmetic", "--split", "validation", "--limit", "1") == 0
    assert "== arithmetic/validation/0\nquestion: 0+1?\nanswer:   1" in capsys.readouterr().out

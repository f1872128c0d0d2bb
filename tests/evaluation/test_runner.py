"""`evaluate`: durable per-problem records, the oracle boundary, resume, and Ray workers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from openberry.data.arithmetic import load_split
from openberry.evaluation.runner import EvalConfig, EvalError, ModelSpec, evaluate, plan_runs
from openberry.tree import Tree
from search.policies import ArithmeticExpert, RecordingPolicy

EXAMPLES = load_split("test", limit=6)


def write_dataset(path: Path, answers: list[str] | None = None) -> Path:
    with path.open("w") as f:
        for i, e in enumerate(EXAMPLES):
            answer = answers[i] if answers else e.answer
            f.write(json.dumps({"id": f"q{i}", "question": e.problem.question, "answer": answer}))
            f.write("\n")
    return path


def records(out: Path, run: str) -> dict[str, dict]:
    """A run's records by id, without wall-clock times (which differ between runs)."""
    rows = {}
    for line in (out / run / "records.jsonl").read_text().splitlines():
        r = json.loads(line)
        for s in r["samples"]:
            s.pop("wall_time")
        rows[r["id"]] = r
    return rows


def trees(out: Path, run: str) -> dict[str, dict]:
    found = {}
    for p in sorted((out / run / "trees").glob("*.json")):
        d = Tree.load(p).to_dict()
        d["info"] = {k: v for k, v in d["info"].items() if k != "stats"}
        found[p.name] = d
    return found


def config(tmp_path: Path, **kw) -> EvalConfig:
    base = {
        "dataset": str(write_dataset(tmp_path / "data.jsonl")),
        "out": str(tmp_path / "out"),
        "methods": ("greedy", "self-consistency"),
        "budgets": (3,),
        "batch_size": 4,
    }
    return EvalConfig(**{**base, **kw})


def test_one_record_per_problem_with_verdict_cost_and_tree(tmp_path) -> None:
    cfg = config(tmp_path)
    summary = evaluate(cfg, models={"policy": ArithmeticExpert()})
    out = Path(cfg.out)
    assert summary.runs == ["greedy@1", "self-consistency@3"] and summary.written == 12
    meta = json.loads((out / "run.json").read_text())
    assert meta["runs"] == summary.runs and meta["oracle"].startswith("none")
    by_id = {f"q{i}": e for i, e in enumerate(EXAMPLES)}
    for run in summary.runs:
        rows = records(out, run)
        assert sorted(rows) == sorted(by_id)
        for rid, r in rows.items():
            (s,) = r["samples"]
            assert r["reference"] == by_id[rid].answer and r["run"] == run
            assert r["correct"] == (r["answer"] == r["reference"]) == s["correct"]
            assert s["generated_tokens"] > 0 and s["calls"] >= 1 and s["nodes"] >= 2
            assert r["chunk"] == r["index"] // 4
            tree = Tree.load(out / run / s["tree"])
            assert tree.problem.question == by_id[rid].problem.question
            answers = {n.answer for n in tree.nodes if n.answer is not None}
            assert {c["answer"] for c in s["candidates"]} == answers
            for c in s["candidates"]:
                assert c["correct"] == (c["answer"] == r["reference"])
    # The expert slips on the even-numbered samples of each prompt (counted per policy): greedy
    # gets sample 0 (wrong); self-consistency then gets samples 1-3 (two right) and votes right.
    assert not any(r["correct"] for r in records(out, "greedy@1").values())
    assert all(r["correct"] for r in records(out, "self-consistency@3").values())


def test_search_never_sees_the_reference(tmp_path) -> None:
    canary = "ORACLE-CANARY-9931"
    data = write_dataset(tmp_path / "canary.jsonl", [canary] * len(EXAMPLES))
    policy = ArithmeticExpert()
    cfg = config(tmp_path, dataset=str(data), methods=("mctsr", "sr-mcts"), budgets=(2,))
    evaluate(cfg, models={"policy": policy})
    assert policy.prompts and not any(canary in p for p in policy.prompts)
    out = Path(cfg.out)
    for run in ("mctsr@2", "sr-mcts@2"):
        assert all(r["reference"] == canary for r in records(out, run).values())
        for p in (out / run / "trees").glob("*.json"):
            assert canary not in p.read_text()


def test_existing_out_needs_resume_and_resume_needs_the_same_settings(tmp_path) -> None:
    cfg = config(tmp_path, methods=("greedy",))
    evaluate(cfg, models={"policy": ArithmeticExpert()})
    with pytest.raises(EvalError, match="--resume"):
        evaluate(cfg, models={"policy": ArithmeticExpert()})
    other = config(tmp_path, methods=("greedy",), seed=1)
    with pytest.raises(EvalError, match="seed: was 0, now 1"):
        evaluate(other, resume=True, models={"policy": ArithmeticExpert()})
    # Nothing left to do: resume writes nothing and keeps every record.
    again = evaluate(cfg, resume=True, models={"policy": ArithmeticExpert()})
    assert again.written == 0 and again.skipped == 6
    # A resume may add runs; the old ones are kept, the new one is recorded in run.json.
    more = config(tmp_path, methods=("greedy", "beam"), budgets=(2,))
    added = evaluate(more, resume=True, models={"policy": ArithmeticExpert()})
    assert added.written == 6
    assert json.loads((Path(cfg.out) / "run.json").read_text())["runs"] == ["greedy@1", "beam@2"]


def test_plan_checks_methods_and_overrides_before_loading_anything(tmp_path) -> None:
    with pytest.raises(EvalError, match="unknown method"):
        plan_runs(config(tmp_path, methods=("mcts",)))
    with pytest.raises(EvalError, match="mctsr@3"):
        plan_runs(config(tmp_path, methods=("mctsr",), overrides=(("", "no_such_key", "1"),)))
    with pytest.raises(EvalError, match="unknown scorer 'bogus'"):
        plan_runs(config(tmp_path, methods=("best-of-n",), overrides=(("", "scorer", "bogus"),)))
    with pytest.raises(EvalError, match="not one of the methods"):
        plan_runs(config(tmp_path, methods=("mctsr",), overrides=(("beam", "width", "1"),)))
    runs = plan_runs(
        config(
            tmp_path, methods=("greedy", "mctsr"), budgets=(1, 4), overrides=(("mctsr", "c", "2"),)
        )
    )
    assert [r.name for r in runs] == ["greedy@1", "mctsr@1", "mctsr@4"]
    assert runs[1].overrides == (("c", "2"),) and runs[0].overrides == ()


def test_samples_are_independent_searches_with_their_own_trees(tmp_path) -> None:
    cfg = config(tmp_path, methods=("self-consistency",), budgets=(1,), samples=4)
    evaluate(cfg, models={"policy": ArithmeticExpert(slips=lambda i: i % 3 == 1)})
    rows = records(Path(cfg.out), "self-consistency@1")
    for r in rows.values():
        assert [s["sample"] for s in r["samples"]] == [0, 1, 2, 3]
        assert len({s["tree"] for s in r["samples"]}) == 4
        assert r["answer"] == r["samples"][0]["answer"]
    # The expert's 2nd sample of a prompt slips: the samples do differ.
    assert any(len({s["answer"] for s in r["samples"]}) > 1 for r in rows.values())
    # Each sample searched under its own id; its tree is written with the dataset's problem.
    for r in rows.values():
        for s in r["samples"]:
            assert Tree.load(Path(cfg.out) / "self-consistency@1" / s["tree"]).problem.id == r["id"]


class _Flaky(RecordingPolicy):
    """Answers like the expert, but raises on the n-th generate call (a crash mid-run)."""

    def __init__(self, fail_on: int) -> None:
        super().__init__()
        self.inner = ArithmeticExpert()
        self.fail_on = fail_on

    def generate(self, prompts, params):
        self.calls["generate"] += 1
        if self.calls["generate"] == self.fail_on:
            raise RuntimeError("backend died")
        return self.inner.generate(prompts, params)


def test_a_crash_keeps_every_finished_record(tmp_path) -> None:
    cfg = config(tmp_path, methods=("greedy",), batch_size=2)
    with pytest.raises(RuntimeError, match="backend died"):
        evaluate(cfg, models={"policy": _Flaky(fail_on=3)})
    assert len(records(Path(cfg.out), "greedy@1")) == 4  # two batches of 2 finished
    done = evaluate(cfg, resume=True, models={"policy": ArithmeticExpert()})
    assert done.written == 2 and done.skipped == 4


def _tiny_models():
    from openberry.models.hf import HFPolicy

    return {"policy": HFPolicy.from_pretrained("berry-tiny")}


@pytest.mark.slow
def test_torn_line_is_repaired_and_resume_rewrites_the_same_records(tmp_path) -> None:
    """Sampling on berry-tiny: a cut-short batch is searched again whole, with its seed."""
    cfg = config(tmp_path, methods=("self-consistency", "mctsr"), budgets=(2,), batch_size=4)
    models = _tiny_models()
    evaluate(cfg, models=models)
    out = Path(cfg.out)
    full = {run: records(out, run) for run in ("self-consistency@2", "mctsr@2")}
    full_trees = trees(out, "mctsr@2")
    # Keep the first 4 records of mctsr (batch 0 and part of batch 1 ... here: 3 whole + a torn 4th)
    path = out / "mctsr@2" / "records.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:3]) + lines[3][: len(lines[3]) // 2])
    shutil.rmtree(out / "mctsr@2" / "trees")
    resumed = evaluate(cfg, resume=True, models=models)
    assert resumed.written == 3 and resumed.skipped == 6 + 3
    assert (out / "mctsr@2" / "records.jsonl.torn").is_file()
    assert records(out, "mctsr@2") == full["mctsr@2"]
    assert records(out, "self-consistency@2") == full["self-consistency@2"]
    assert set(trees(out, "mctsr@2")) <= set(full_trees)
    for name, tree in trees(out, "mctsr@2").items():
        assert tree == full_trees[name]


@pytest.mark.slow
def test_resume_after_kill_9_gives_the_records_of_an_uninterrupted_run(tmp_path) -> None:
    data = write_dataset(tmp_path / "data.jsonl")
    cmd = [sys.executable, "-m", "openberry.cli.main", "eval", "--dataset", str(data)]
    cmd += ["--method", "mctsr", "--rollouts", "2", "--batch-size", "2", "--no-report"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [*cmd, "--out", str(tmp_path / "full")], check=True, env=env, capture_output=True
    )
    killed = tmp_path / "killed"
    rec = killed / "mctsr@2" / "records.jsonl"
    proc = subprocess.Popen([*cmd, "--out", str(killed)], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if rec.is_file() and rec.read_text().count("\n") >= 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert 3 <= rec.read_text().count("\n") < len(EXAMPLES)
    subprocess.run(
        [*cmd, "--out", str(killed), "--resume"], check=True, env=env, capture_output=True
    )
    assert records(killed, "mctsr@2") == records(tmp_path / "full", "mctsr@2")
    assert trees(killed, "mctsr@2") == trees(tmp_path / "full", "mctsr@2")


@pytest.mark.slow
def test_two_ray_workers_write_the_records_of_one_process(tmp_path) -> None:
    pytest.importorskip("ray")
    data = str(write_dataset(tmp_path / "data.jsonl"))
    runs = ("self-consistency@2", "mctsr@2")
    got = {}
    for workers in (1, 2):
        cfg = EvalConfig(
            dataset=data,
            out=str(tmp_path / f"w{workers}"),
            methods=("self-consistency", "mctsr"),
            budgets=(2,),
            batch_size=2,
            policy=ModelSpec("berry-tiny"),
        )
        evaluate(cfg, workers=workers)
        got[workers] = [(records(Path(cfg.out), r), trees(Path(cfg.out), r)) for r in runs]
    assert got[1] == got[2]


class _BoxedAnswerer(RecordingPolicy):
    """Writes a boxed answer per question (the test's own table; search never sees it)."""

    def __init__(self, table: dict[str, str]) -> None:
        super().__init__()
        self.table = table

    def respond(self, prompt, index, params) -> str:
        for question, answer in self.table.items():
            if question in prompt:
                return f"We work it out.\nThe answer is $\\boxed{{{answer}}}$."
        return "I do not know."


@pytest.mark.data
@pytest.mark.parametrize(
    ("name", "file"), [("math500", "math500_test.jsonl"), ("gsm8k", "gsm8k_test.jsonl")]
)
def test_shared_benchmark_file_evaluates_and_grades_latex_answers(
    tmp_path, shared_data_dir, name, file
) -> None:
    from openberry.data.datasets import load_examples

    examples = load_examples(name, path=shared_data_dir / file, limit=8).examples
    table = {e.problem.question: e.answer for e in examples[:6]}
    table[examples[6].problem.question] = "123456789"  # a wrong answer
    cfg = EvalConfig(
        dataset=name, path=str(shared_data_dir / file), limit=8, out=str(tmp_path / "o")
    )
    evaluate(cfg, models={"policy": _BoxedAnswerer(table)})
    rows = sorted(records(Path(cfg.out), "greedy@1").values(), key=lambda r: r["index"])
    assert [r["correct"] for r in rows] == [True] * 6 + [False, False]
    assert rows[7]["answer"] is None and rows[7]["verdict"] == "no answer"


@pytest.fixture
def ray_cluster(tmp_path):
    """A separate local Ray cluster (head node with 2 CPUs), as `ray start` makes one."""
    pytest.importorskip("ray")
    from models.tiny import free_port

    ray_bin = Path(sys.executable).with_name("ray")
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    start = [str(ray_bin), "start", "--head", f"--port={port}", "--num-cpus=2"]
    start += ["--include-dashboard=false", "--disable-usage-stats"]
    subprocess.run(start, check=True, env=env, capture_output=True, timeout=120)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(ray_bin), "stop", "--force"], env=env, capture_output=True, timeout=120)


@pytest.mark.slow
def test_ray_address_joins_an_existing_cluster(tmp_path, ray_cluster) -> None:
    data = str(write_dataset(tmp_path / "data.jsonl"))
    got = []
    for name, kw in (("local", {}), ("cluster", {"ray_address": ray_cluster, "workers": 2})):
        cfg = EvalConfig(
            dataset=data,
            out=str(tmp_path / name),
            methods=("self-consistency",),
            budgets=(2,),
            batch_size=3,
            policy=ModelSpec("berry-tiny"),
        )
        evaluate(cfg, **kw)
        got.append(
            (
                records(Path(cfg.out), "self-consistency@2"),
                trees(Path(cfg.out), "self-consistency@2"),
            )
        )
    assert got[0] == got[1]


def test_progress_bar_shows_running_accuracy(tmp_path, capsys) -> None:
    cfg = config(tmp_path, methods=("self-consistency",))
    evaluate(cfg, models={"policy": ArithmeticExpert(slips=lambda i: False)}, progress=True)
    err = capsys.readouterr().err
    assert "eval" in err and "6/6" in err and "self-consistency@3 acc 100.0%" in err


@pytest.mark.slow
def test_openai_backend_and_ray_workers_sharing_one_server(tmp_path) -> None:
    """Any backend: berry-tiny behind `berry serve`'s app, reached by one process and by two Ray
    workers sharing the server, answers as berry-tiny in process (greedy decoding)."""
    pytest.importorskip("fastapi")
    from models.tiny import live_server
    from openberry.models.hf import HFPolicy
    from openberry.serve.app import create_app

    data = str(write_dataset(tmp_path / "data.jsonl"))
    local = EvalConfig(dataset=data, out=str(tmp_path / "hf"), methods=("greedy",), batch_size=3)
    evaluate(local, models=_tiny_models())
    want = {k: (r["answer"], r["correct"]) for k, r in records(Path(local.out), "greedy@1").items()}
    policy = HFPolicy.from_pretrained("berry-tiny")
    with live_server(create_app(policy, model_name="berry-tiny")) as url:
        for name, workers in (("served", 1), ("served-ray", 2)):
            if workers > 1:
                pytest.importorskip("ray")
            cfg = EvalConfig(
                dataset=data,
                out=str(tmp_path / name),
                methods=("greedy",),
                batch_size=3,
                policy=ModelSpec("berry-tiny", backend="openai", base_url=url),
            )
            evaluate(cfg, workers=workers)
            got = records(Path(cfg.out), "greedy@1")
            assert {k: (r["answer"], r["correct"]) for k, r in got.items()} == want, name


def test_prefix_cache_budget_is_not_part_of_a_runs_identity(tmp_path: Path) -> None:
    """The prefix cache changes float rounding only: `--resume` accepts another budget."""
    a = config(tmp_path, policy=ModelSpec("berry-tiny", prefix_cache_mb=0))
    b = config(tmp_path, policy=ModelSpec("berry-tiny"), judge=ModelSpec("x", prefix_cache_mb=5))
    c = config(tmp_path, policy=ModelSpec("berry-tiny", dtype="bfloat16"))
    assert a.identity() == {**b.identity(), "judge": None}
    assert "prefix_cache_mb" not in b.identity()["judge"]
    assert a.identity() != c.identity()


def test_unset_adapter_keeps_the_identity_of_runs_written_before_adapters(tmp_path: Path) -> None:
    """A run recorded before models had an ``adapter`` field resumes; a set adapter is part of
    the identity."""
    plain = config(tmp_path, policy=ModelSpec("berry-tiny")).identity()
    adapted = config(tmp_path, policy=ModelSpec("berry-tiny", adapter="lora")).identity()
    assert "adapter" not in plain["policy"]
    assert adapted["policy"]["adapter"] == "lora"
    assert adapted != plain


def test_question_longer_than_the_context_is_refused_up_front(tmp_path: Path) -> None:
    """Regression: a 5 MB question ran for 102 s and ended in a traceback. A question that does
    not fit the model's context is refused before anything is searched or written, naming the
    problem and the limit; a huge one on its length alone (no slow tokenizing)."""
    data = tmp_path / "data.jsonl"
    rows = [
        {"id": "fits", "question": "Compute 1 + 2.", "answer": "3"},
        {"id": "huge", "question": "1 + " * 1_250_000 + "1", "answer": "3"},
        {"id": "long", "question": "1 + " * 400 + "1", "answer": "3"},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = EvalConfig(dataset=str(data), out=str(tmp_path / "out"), methods=("greedy",))
    models = _tiny_models()
    assert models["policy"].max_context == 1024
    start = time.perf_counter()
    with pytest.raises(EvalError) as err:
        evaluate(cfg, models=models)
    assert time.perf_counter() - start < 5
    assert str(err.value).startswith(
        "2 problem(s) have a question longer than the model's context of 1,024 tokens: "
        "huge (5,000,001 characters), long (1,201 tokens);"
    )
    assert not Path(cfg.out).exists()


def test_policy_without_a_context_length_is_not_checked(tmp_path: Path) -> None:
    from openberry.evaluation.runner import too_long
    from openberry.records import Problem

    problems = [Problem(id="a", question="x" * 10_000)]
    assert too_long(problems, ArithmeticExpert()) is None


def test_resume_accepts_a_new_base_url_and_timeouts_and_records_them(tmp_path, caplog) -> None:
    """Regression: a mistyped --base-url made the output directory impossible to resume with the
    corrected URL. Settings that do not change results may change on resume (recorded, logged);
    the model may not."""
    typo = ModelSpec("served", backend="openai", base_url="http://localhots:8000")
    cfg = config(tmp_path, methods=("greedy",), policy=typo)
    evaluate(cfg, models={"policy": ArithmeticExpert()})
    written = Path(cfg.out) / "greedy@1" / "records.jsonl"
    written.write_text("".join(written.read_text().splitlines(keepends=True)[:3]))  # cut short
    fixed = ModelSpec(
        "served", backend="openai", base_url="http://localhost:8000", timeout=30, max_retries=5
    )
    resumed = config(tmp_path, methods=("greedy",), policy=fixed)
    with caplog.at_level("INFO", logger="openberry.evaluation.runner"):
        summary = evaluate(resumed, resume=True, models={"policy": ArithmeticExpert()})
    assert (summary.written, summary.skipped) == (3, 3)
    meta = json.loads((Path(cfg.out) / "run.json").read_text())
    assert meta["settings"]["policy"]["base_url"] == "http://localhost:8000"
    assert meta["settings"]["policy"]["timeout"] == 30
    assert "base_url" not in meta["identity"]["policy"]
    assert "policy base_url changed from 'http://localhots:8000' to 'http://localhost:8000'" in (
        caplog.text
    )
    other_model = config(tmp_path, methods=("greedy",), policy=ModelSpec("other"))
    with pytest.raises(EvalError, match="policy: was"):
        evaluate(other_model, resume=True, models={"policy": ArithmeticExpert()})


def test_resume_of_a_run_json_that_held_the_base_url_in_its_identity(tmp_path) -> None:
    """run.json files written before the base URL left the identity still resume, with another
    URL."""
    cfg = config(tmp_path, methods=("greedy",), policy=ModelSpec("m", "openai", "http://a"))
    evaluate(cfg, models={"policy": ArithmeticExpert()})
    path = Path(cfg.out) / "run.json"
    meta = json.loads(path.read_text())
    meta["identity"]["policy"] |= {"base_url": "http://a", "prefix_cache_mb": 1024.0}
    del meta["settings"]
    path.write_text(json.dumps(meta))
    again = config(tmp_path, methods=("greedy",), policy=ModelSpec("m", "openai", "http://b"))
    assert evaluate(again, resume=True, models={"policy": ArithmeticExpert()}).skipped == 6
    assert json.loads(path.read_text())["settings"]["policy"]["base_url"] == "http://b"


def test_resume_refuses_a_dropped_identity_key(tmp_path) -> None:
    """A key recorded by the original run (here --question-field) that the resumed one lacks is
    a difference too."""
    cfg = config(tmp_path, methods=("greedy",), question_field="question")
    evaluate(cfg, models={"policy": ArithmeticExpert()})
    with pytest.raises(EvalError, match="question_field: was 'question', now None"):
        evaluate(config(tmp_path, methods=("greedy",)), resume=True, models={})


def test_resume_refuses_a_newer_run_json(tmp_path) -> None:
    cfg = config(tmp_path, methods=("greedy",))
    evaluate(cfg, models={"policy": ArithmeticExpert()})
    path = Path(cfg.out) / "run.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "version": 2}))
    with pytest.raises(EvalError, match=r"run.json version 2 is newer .* \(version 1\)"):
        evaluate(cfg, resume=True, models={"policy": ArithmeticExpert()})

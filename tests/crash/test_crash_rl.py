"""``berry train rl`` killed with SIGKILL at seeded points (mid-round included) and resumed with
``--resume`` ends with the adapter, metrics, result and last checkpoint of an uninterrupted run,
bit for bit (tests/crashkit.py; tests/training/rl/test_loop.py resumes after a clean stop).

The run: PPO on berry-tiny, step-mcts with 2 rollouts on 3 problems a round (the settings of
test_loop.py's TINY), 4 rounds in the long form, 3 in the short one. Progress is the line count
of ``metrics.jsonl`` (the initial evaluation, then one line per round) and a round takes about
0.6 s, so a delay of up to 0.8 s spreads the kills over self-play, the update, the evaluation,
the metrics line, the checkpoint swap and the final save; some points of the long form kill the
first resume too, and its last point comes after the run has finished.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from crashkit import (
    berry,
    cli_env,
    crash_and_resume,
    files_under,
    jsonl,
    kill_points,
    line_count,
    run_to_end,
    tensor_diffs,
    without,
)

pytestmark = [pytest.mark.slow, pytest.mark.crash]


class RLRun:
    """``berry train rl`` for `rounds` rounds and its uninterrupted run (``root/straight``)."""

    def __init__(self, root: Path, rounds: int) -> None:
        pytest.importorskip("peft")
        self.rounds = rounds
        self.settings = (
            *("--algo", "ppo", "--method", "step-mcts", "--rollouts", 2, "--set", "max_depth=6"),
            *("--problems-per-round", 3, "--level-size", 12, "--levels", 3, 4),
            *("--eval-levels", 0, "--eval-limit", 4, "--eval-every", 1),
            *("--minibatch-size", 8, "--epochs", 1, "--threads", 1, "--rounds", rounds),
        )
        self.straight = root / "straight"
        run_to_end(self.cmd(self.straight), root / "straight.log")

    def cmd(self, out: Path, *extra: str) -> list[str]:
        return berry("train", "rl", "--out", out, *self.settings, *extra)

    def check(self, point, tmp_path: Path):
        out = tmp_path / "killed"
        crash = crash_and_resume(
            self.cmd(out),
            self.cmd(out, "--resume"),
            lambda: line_count(out / "metrics.jsonl"),
            point,
            tmp_path / "logs",
            describe=lambda: _state(out),
        )
        adapter = Path("final") / "adapter_model.safetensors"
        diff = tensor_diffs(out / adapter, self.straight / adapter)
        assert diff == [], f"{crash}: {len(diff)} adapter tensors differ, e.g. {diff[:3]}"
        got, want = _metrics(out), _metrics(self.straight)
        assert [r["round"] for r in got] == list(range(self.rounds + 1)), f"{crash}: {got}"
        assert got == want, f"{crash}: metrics.jsonl differs"
        assert _result(out) == _result(self.straight), f"{crash}: result.json differs"
        ckpts = out / "checkpoints"
        assert files_under(ckpts) == files_under(self.straight / "checkpoints"), str(crash)
        last = Path("checkpoints") / f"round-{self.rounds:06d}"
        for name in ("optimizer.safetensors", "adapter/adapter_model.safetensors"):
            diff = tensor_diffs(out / last / name, self.straight / last / name)
            assert diff == [], (
                f"{crash}: {last / name}: {len(diff)} tensors differ, e.g. {diff[:3]}"
            )
        for name in ("replay.json", "optimizer.json", "state.json"):
            a, b = (json.loads((d / last / name).read_text()) for d in (out, self.straight))
            assert without(a) == without(b), f"{crash}: {last / name} differs"
        return crash


def _state(out: Path) -> str:
    """The rounds logged, the checkpoints (a hidden .tmp one is a swap cut short), final/."""
    rounds = [r["round"] for r in jsonl(out / "metrics.jsonl")] if out.is_dir() else []
    root = out / "checkpoints"
    ckpts = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    said = f"rounds logged {rounds}; checkpoints: {', '.join(ckpts) or 'none'}"
    if (out / "final").exists():
        said += "; final/" + ("" if (out / "result.json").is_file() else " without result.json")
    return said


def _metrics(out: Path) -> list[dict]:
    return [without(r) for r in jsonl(out / "metrics.jsonl")]


def _result(out: Path) -> dict:
    return without(json.loads((out / "result.json").read_text()), ("elapsed_s", "final_dir"))


@pytest.fixture(scope="module")
def rl_short(tmp_path_factory) -> RLRun:
    return RLRun(tmp_path_factory.mktemp("rl-short"), 3)


@pytest.fixture(scope="module")
def rl(tmp_path_factory) -> RLRun:
    return RLRun(tmp_path_factory.mktemp("rl"), 4)


@pytest.mark.parametrize(
    "point",
    kill_points("rl-short", 1, after=(2, 2), delay=(0.1, 0.4)),
    ids=lambda p: f"seed{p.seed}",
)
def test_rl_killed_mid_round_resumes_exactly(rl_short, point, tmp_path) -> None:
    crash = rl_short.check(point, tmp_path)
    assert crash.killed == [True], f"{crash}: meant to land mid-run"


@pytest.mark.long
@pytest.mark.parametrize(
    "point",
    kill_points(
        "rl",
        12,
        after=(0, 5),
        delay=(0.0, 0.8),
        resume_after=(1, 2),
        resume_share=0.3,
        after_end=True,
    ),
    ids=lambda p: f"seed{p.seed}",
)
def test_rl_killed_at_seeded_points_resumes_exactly(rl, point, tmp_path) -> None:
    rl.check(point, tmp_path)


# ------------------------------------------------------------------ metrics.jsonl on resume

_DIE_IN_METRICS_REWRITE = """
import os, pathlib, signal, sys
from openberry.cli.main import main

real_open = pathlib.Path.open

def open_then_die(self, mode="r", *args, **kwargs):
    f = real_open(self, mode, *args, **kwargs)
    if "w" in mode and self.name.startswith("metrics.jsonl"):  # opened (truncated), not written
        os.kill(os.getpid(), signal.SIGKILL)
    return f

pathlib.Path.open = open_then_die
sys.exit(main(sys.argv[1:]))
"""


def test_kill_while_resume_rewrites_the_metrics_keeps_them(tmp_path, monkeypatch) -> None:
    """Regression: a resume cuts metrics.jsonl to the rounds of its checkpoint by rewriting it
    in place, so a kill between the truncation and the write lost the lines of every round
    before (and result.json's initial_eval with them) for good. It is now replaced atomically.
    Here the rewrite stops where such a kill lands: the file opened for writing, nothing written.
    """
    from openberry.training.rl.loop import _Metrics

    out = tmp_path / "run"
    out.mkdir()
    rows = [{"round": r, "elapsed_s": float(r)} for r in range(4)]
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    class Killed(BaseException):
        pass

    real_open = Path.open

    def open_then_die(self, mode="r", *args, **kwargs):
        f = real_open(self, mode, *args, **kwargs)
        if "w" in mode and self.name.startswith("metrics.jsonl"):
            f.close()
            raise Killed
        return f

    with monkeypatch.context() as patch:
        patch.setattr(Path, "open", open_then_die)
        with pytest.raises(Killed):
            _Metrics(out, 2, tensorboard=False)
    assert jsonl(out / "metrics.jsonl") == rows
    _Metrics(out, 2, tensorboard=False)
    assert jsonl(out / "metrics.jsonl") == rows[:3]


@pytest.mark.long
def test_kill_inside_the_resume_metrics_rewrite_resumes_exactly(rl_short, tmp_path) -> None:
    """The same regression with a real SIGKILL of ``berry train rl --resume``, sent from inside
    its rewrite of metrics.jsonl, then a second resume against the uninterrupted run."""
    out = tmp_path / "killed"
    run_to_end(rl_short.cmd(out, "--rounds", "1"), tmp_path / "first.log")  # the last wins
    resume = rl_short.cmd(out, "--resume")
    proc = subprocess.run(
        [sys.executable, "-c", _DIE_IN_METRICS_REWRITE, *resume[3:]],
        env=cli_env(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    run_to_end(resume, tmp_path / "resume.log")
    got, want = _metrics(out), _metrics(rl_short.straight)
    assert [r["round"] for r in got] == list(range(rl_short.rounds + 1)), got
    assert got == want
    assert _result(out) == _result(rl_short.straight)
    adapter = Path("final") / "adapter_model.safetensors"
    assert tensor_diffs(out / adapter, rl_short.straight / adapter) == []

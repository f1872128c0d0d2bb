"""kill -9 crash tests of the long commands (tests/crash/): run a ``berry`` command in a subprocess,
SIGKILL it at a seeded kill point, ``--resume`` it, and compare with an uninterrupted run.

A kill point (`KillPoint`) is drawn from a seeded RNG: wait until the command's progress (a count
read from its output directory, e.g. lines of ``metrics.jsonl`` or ``records.jsonl``) reaches
``after``, then sleep ``delay`` seconds more and send SIGKILL. The delay spreads the kills over
whatever the command does between two progress marks (training steps, checkpoint and final writes,
searches, record appends). Some points also kill the first resume, once its progress has gone
past where the first kill left it. A kill can land after the command has finished: the run then
counts as uninterrupted and the resume must be a no-op (each long form ends with such a point).

Every point prints as ``seed=S (...)``; the whole series of a test comes from ``BERRY_CRASH_SEED``
(default `DEFAULT_SEED`), so ``BERRY_CRASH_SEED=S pytest ... -k <test>`` draws the same points
again. The ``after`` threshold is exact; the delay is wall-clock time, so a rerun kills at the
same progress mark and at nearly, not exactly, the same instruction.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_SEED = 20261207
"""Base seed of every crash test's kill points (override with ``BERRY_CRASH_SEED``)."""

AFTER_END = 120.0
"""The delay of a kill meant to come after the command has finished (it ends far sooner)."""

TIMEOUT_S = 300.0
"""Longest a single launch of a command may take before the test fails."""


def base_seed() -> int:
    return int(os.environ.get("BERRY_CRASH_SEED", DEFAULT_SEED))


def berry(*args: Any) -> list[str]:
    """The command line of ``berry ARGS`` run by this interpreter (as the other CLI tests do)."""
    return [sys.executable, "-m", "openberry.cli.main", *map(str, args)]


def cli_env() -> dict[str, str]:
    """The environment of every launch: one thread, no hub, no tokenizer threads."""
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


# ---------------------------------------------------------------------------------- kill points


@dataclass(frozen=True)
class KillPoint:
    """Where to kill: ``delay`` s after the progress reaches ``after``; optionally the first
    resume too, ``resume_delay`` s after its progress has gone ``resume_after`` marks past
    where the first kill left it (a resume may first cut the progress back to its checkpoint)."""

    seed: int
    after: int
    delay: float
    resume_after: int | None = None
    resume_delay: float = 0.0

    def __str__(self) -> str:
        text = f"seed={self.seed} (kill {self.delay:.3f} s after progress >= {self.after}"
        if self.resume_after is not None:
            text += (
                f"; kill the resume {self.resume_delay:.3f} s after its progress >= "
                f"that at the kill + {self.resume_after}"
            )
        return text + f"; BERRY_CRASH_SEED={base_seed()})"


def kill_points(
    name: str,
    count: int,
    *,
    after: tuple[int, int],
    delay: tuple[float, float],
    resume_after: tuple[int, int] | None = None,
    resume_share: float = 0.0,
    after_end: bool = False,
) -> list[KillPoint]:
    """`count` kill points of the test `name`: ``after`` drawn uniformly from the inclusive
    range, ``delay`` from the interval; with probability `resume_share` a point also kills the
    first resume (``resume_after`` from its range, ``resume_delay`` from `delay`). Point i has
    seed ``base + i`` and depends only on (`name`, that seed). With `after_end` the last
    point is not drawn: it waits for the last progress mark and `AFTER_END` seconds, so the
    command has finished and the resume has nothing left to do."""
    points = []
    for i in range(count - after_end):
        seed = base_seed() + i
        rng = random.Random(f"{name}:{seed}")
        point = KillPoint(seed, rng.randint(*after), round(rng.uniform(*delay), 3))
        if resume_after is not None and rng.random() < resume_share:
            again, wait = rng.randint(*resume_after), round(rng.uniform(*delay), 3)
            point = dataclasses.replace(point, resume_after=again, resume_delay=wait)
        points.append(point)
    if after_end:
        points.append(KillPoint(base_seed() + count - 1, after[1], AFTER_END))
    return points


# ---------------------------------------------------------------------------------- launching


def line_count(path: Path) -> int:
    """Lines in a file (0 when it does not exist yet): the progress of most commands."""
    try:
        with path.open("rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return 0


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError:
        return ""


def run_to_end(cmd: Sequence[str], log: Path, context: str = "") -> None:
    """Run `cmd` to its end (output to `log`); fail the test on a non-zero exit."""
    with log.open("w") as err:
        proc = subprocess.run(
            cmd, env=cli_env(), stdout=err, stderr=subprocess.STDOUT, timeout=TIMEOUT_S
        )
    if proc.returncode != 0:
        said = f"{context}: " if context else ""
        raise AssertionError(f"{said}{' '.join(cmd)} exited {proc.returncode}:\n{_tail(log)}")


def run_and_kill(
    cmd: Sequence[str],
    progress: Callable[[], int],
    after: int,
    delay: float,
    log: Path,
    context: str = "",
) -> bool:
    """Launch `cmd`, SIGKILL it `delay` s after ``progress() >= after``. True when it was killed,
    False when it finished first (cleanly: a failure fails the test)."""
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, env=cli_env(), stdout=err, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while proc.poll() is None and progress() < after:
            if time.monotonic() > deadline:
                raise AssertionError(f"{context}: no progress to {after} in {TIMEOUT_S} s")
            time.sleep(0.002)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:  # killed above and not yet reaped, or the wait failed the test
            proc.kill()
            proc.wait(timeout=60)
    if proc.returncode == -signal.SIGKILL:
        return True
    if proc.returncode != 0:
        raise AssertionError(
            f"{context}: {' '.join(cmd)} exited {proc.returncode} before the kill:\n{_tail(log)}"
        )
    return False


@dataclass
class Crash:
    """What happened to one kill point: which launches were killed, and what each left."""

    point: KillPoint
    killed: list[bool] = field(default_factory=list)
    left: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        said = ", ".join(
            f"killed ({left})" if k else "finished first"
            for k, left in zip(self.killed, self.left, strict=True)
        )
        return f"kill point {self.point}: {said}; then resumed to the end"


def crash_and_resume(
    cmd: Sequence[str],
    resume_cmd: Sequence[str],
    progress: Callable[[], int],
    point: KillPoint,
    logs: Path,
    on_kill: Callable[[], None] | None = None,
    describe: Callable[[], str] | None = None,
) -> Crash:
    """Run `cmd` killed at `point`, (kill the first resume where the point says so) and
    `resume_cmd` to the end. `on_kill` runs after the first launch ends (e.g. to snapshot
    records); `describe` says what the output directory holds after each launch killed (shown
    in failures, and printed: ``pytest -rP`` lists it for passing tests)."""
    logs.mkdir(parents=True, exist_ok=True)
    crash = Crash(point)
    launches = [(cmd, point.after, point.delay, "run.log")]
    if point.resume_after is not None:
        launches.append((resume_cmd, point.resume_after, point.resume_delay, "killed-resume.log"))
    reached = 0
    for i, (command, after, delay, log) in enumerate(launches):
        after = after if i == 0 else reached + after
        killed = run_and_kill(command, progress, after, delay, logs / log, str(point))
        reached = progress()
        crash.killed.append(killed)
        crash.left.append(f"progress {reached}" + (f"; {describe()}" if describe else ""))
        if i == 0 and on_kill is not None:
            on_kill()
    run_to_end(resume_cmd, logs / "resume.log", str(crash))
    print(crash)
    return crash


# ---------------------------------------------------------------------------------- comparing


def tensors(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(path))


def tensor_diffs(a: Path, b: Path) -> list[str]:
    """Names of the tensors that differ (exactly: same dtype, shape and every bit of value)
    between two safetensors files; missing or extra names count as differing."""
    import torch

    x, y = tensors(a), tensors(b)
    names = sorted(set(x) | set(y))
    return [n for n in names if n not in x or n not in y or not torch.equal(x[n], y[n])]


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


TIMING_KEYS = (
    "elapsed_s",
    "wall_time",
    "wall_seconds",
    "wall_time_s",
    "runtime",
    "written",
    "started",
)
"""Keys whose values are wall-clock times or dates (never compared)."""


def without(row: Any, keys: Iterable[str] = TIMING_KEYS) -> Any:
    """`row` (nested dicts and lists) without `keys` and without ``*_runtime`` /
    ``*_per_second`` values (Trainer's timings)."""
    drop = set(keys)
    if isinstance(row, dict):
        return {
            k: without(v, drop)
            for k, v in row.items()
            if k not in drop and not k.endswith(("_runtime", "_per_second"))
        }
    if isinstance(row, list):
        return [without(v, drop) for v in row]
    return row


def files_under(root: Path) -> list[str]:
    """Relative paths of every file under `root`, sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _dirs(root: Path, pattern: str) -> list[Path]:
    def number(p: Path) -> int:
        digits = "".join(c for c in p.name if c.isdigit())
        return int(digits) if digits else -1

    return sorted(root.glob(pattern), key=number) if root.is_dir() else []


def trainer_dir_state(out: Path) -> str:
    """What a Trainer run directory (sft, pprm) holds: its checkpoints (those without
    ``trainer_state.json``, written last, marked incomplete) and its final output."""
    names = [
        d.name + ("" if (d / "trainer_state.json").is_file() else " (incomplete)")
        for d in _dirs(out, "checkpoint-*")
    ]
    said = f"checkpoints: {', '.join(names) or 'none'}"
    if (out / "final").exists():
        said += "; final/" + ("" if (out / "result.json").is_file() else " without result.json")
    return said


class TrainerCommand:
    """``berry train STAGE`` for a Trainer stage (sft, pprm) on a model directory and a data
    file, with its uninterrupted run made once in ``root/straight``. `check` kills a copy at a
    point, resumes it and compares: final weights exactly, result.json and every metrics line
    but times and the keys in `ignore` (the end-of-call summary line describes one call, not the
    run, and is left out)."""

    def __init__(
        self,
        root: Path,
        stage: str,
        model: Path,
        data: Path,
        settings: Sequence[Any],
        ignore: Sequence[str] = (),
    ) -> None:
        self.stage, self.model, self.data, self.settings = stage, model, data, tuple(settings)
        self.ignore = (*TIMING_KEYS, "output_dir", "final_dir", *ignore)
        self.straight = root / "straight"
        run_to_end(self.cmd(self.straight), root / "straight.log")

    def cmd(self, out: Path, *extra: str) -> list[str]:
        return berry(
            *("train", self.stage, "--model", self.model, "--data", self.data, "--out", out),
            *self.settings,
            *extra,
        )

    def check(self, point: KillPoint, tmp_path: Path) -> Crash:
        out = tmp_path / "killed"
        crash = crash_and_resume(
            self.cmd(out),
            self.cmd(out, "--resume"),
            lambda: line_count(out / "metrics.jsonl"),
            point,
            tmp_path / "logs",
            describe=lambda: trainer_dir_state(out),
        )
        final = Path("final") / "model.safetensors"
        diff = tensor_diffs(out / final, self.straight / final)
        assert diff == [], f"{crash}: {len(diff)} tensors of final/ differ, e.g. {diff[:3]}"
        got, want = self.result(out), self.result(self.straight)
        assert got == want, f"{crash}: result.json differs: {got} != {want}"
        got, want = self.metrics(out), self.metrics(self.straight)
        steps = [r["step"] for r in got if "loss" in r]
        assert steps == list(range(1, len(steps) + 1)), f"{crash}: steps logged {steps}"
        assert got == want, f"{crash}: metrics.jsonl differs"
        return crash

    def result(self, out: Path) -> dict[str, Any]:
        return without(json.loads((out / "result.json").read_text()), self.ignore)

    def metrics(self, out: Path) -> list[dict[str, Any]]:
        rows = jsonl(out / "metrics.jsonl")
        return [without(r, self.ignore) for r in rows if "train_runtime" not in r]

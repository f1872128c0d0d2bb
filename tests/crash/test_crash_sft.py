"""``berry train sft`` killed with SIGKILL at seeded points and resumed with ``--resume`` ends
with the weights, results and metrics of an uninterrupted run, bit for bit (tests/crashkit.py).

The run: the tiny 2-layer Llama of tests/models/tiny.py saved to a directory, mixed text and
prompt/completion rows (10 batches an epoch), a checkpoint every 3 steps (2 kept), an evaluation
every 5 and a metrics line every step: 32 steps in the long form, 12 in the short one (neither a
whole number of epochs, so resuming a finished run meets Trainer's extra step: see the last
regression test). Progress is the line count of ``metrics.jsonl``, so kills land in steps,
evaluations, checkpoint writes, checkpoint rotation and the final save; some points of the long
form kill the first resume too, and its last point comes after the run has finished.

A from-scratch run also trains and saves a tokenizer before its first step: two regression tests
kill it inside that save.
"""

from __future__ import annotations

import dataclasses
import json
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from crashkit import (
    TrainerCommand,
    berry,
    cli_env,
    jsonl,
    kill_points,
    run_to_end,
    tensor_diffs,
)
from models.tiny import save_tiny_model

pytestmark = [pytest.mark.slow, pytest.mark.crash]


def _settings(steps: int) -> tuple:
    return (
        *("--max-steps", steps, "--batch-size", 8, "--max-length", 32, "--eval-steps", 5),
        *("--save-steps", 3, "--logging-steps", 1, "--warmup-steps", 2, "--lr", 3e-3),
        *("--eval-fraction", 0.1, "--threads", 1),
    )


def _lines(steps: int) -> int:
    """metrics.jsonl at the end: the eval at 0, a line per step, the evals, the summary."""
    return 1 + steps + steps // 5 + 1


def _rows(n: int) -> list[dict]:
    rng = random.Random(0)
    rows = []
    for _ in range(n):
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        rows.append({"text": f"Compute {a} + {b}.\n{a} + {b} = {a + b}"})
        rows.append({"prompt": f"Q: {a}+{b}=?\nA: ", "completion": f"{a + b}"})
    return rows


def _sft(root: Path, steps: int) -> TrainerCommand:
    pytest.importorskip("torch")
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _rows(48)))
    return TrainerCommand(root, "sft", save_tiny_model(root / "tiny"), data, _settings(steps))


@pytest.fixture(scope="module")
def sft_short(tmp_path_factory) -> TrainerCommand:
    return _sft(tmp_path_factory.mktemp("sft-short"), 12)


@pytest.fixture(scope="module")
def sft(tmp_path_factory) -> TrainerCommand:
    return _sft(tmp_path_factory.mktemp("sft"), 32)


@pytest.mark.parametrize(
    "point",
    kill_points("sft-short", 1, after=(5, 9), delay=(0.0, 0.0)),
    ids=lambda p: f"seed{p.seed}",
)
def test_sft_killed_mid_run_resumes_exactly(sft_short, point, tmp_path) -> None:
    crash = sft_short.check(point, tmp_path)
    assert crash.killed == [True], f"{crash}: meant to land mid-run"


@pytest.mark.long
@pytest.mark.parametrize(
    "point",
    kill_points(
        "sft",
        12,
        after=(0, _lines(32)),
        delay=(0.0, 0.05),
        resume_after=(1, 4),
        resume_share=0.3,
        after_end=True,
    ),
    ids=lambda p: f"seed{p.seed}",
)
def test_sft_killed_at_seeded_points_resumes_exactly(sft, point, tmp_path) -> None:
    sft.check(point, tmp_path)


# ------------------------------------------------------------------ the tokenizer of --from-scratch


def test_resume_retrains_a_tokenizer_whose_save_was_cut_short(tmp_path, monkeypatch) -> None:
    """Regression: a from-scratch run killed while saving the tokenizer it had just trained
    left OUT/tokenizer/ with tokenizer_config.json alone, and --resume, which reuses that
    directory, died on it ("Couldn't instantiate the backend tokenizer", or a JSONDecodeError
    when tokenizer_config.json itself was cut). The save now goes to a sibling directory that
    is renamed into place. Here the save stops where the kill landed: after
    tokenizer_config.json, before tokenizer.json."""
    from transformers import PreTrainedTokenizerFast

    from openberry.training.sft import SFTConfig, _load_tokenizer, load_rows

    class Killed(BaseException):
        pass

    def die(self, *args, **kwargs):
        raise Killed

    rows = load_rows(["arithmetic:pretrain:100"])
    model_config = tmp_path / "llama.json"
    model_config.write_text(json.dumps({"model_type": "llama", "max_position_embeddings": 64}))
    out = tmp_path / "out"
    config = SFTConfig(
        model="scratch",
        data=("unused.jsonl",),
        output_dir=str(out),
        from_scratch=str(model_config),
        vocab_size=128,
        max_length=32,
    )
    with monkeypatch.context() as patch:
        patch.setattr(PreTrainedTokenizerFast, "_save_pretrained", die)
        with pytest.raises(Killed):
            _load_tokenizer(config, rows, out)
    assert not (out / "tokenizer" / "tokenizer.json").exists()
    resumed = _load_tokenizer(dataclasses.replace(config, resume=True), rows, out)
    fresh = _load_tokenizer(config, rows, tmp_path / "fresh")
    assert resumed.get_vocab() == fresh.get_vocab()
    assert (out / "tokenizer" / "tokenizer.json").is_file()
    again = _load_tokenizer(dataclasses.replace(config, resume=True), rows, out)  # reused now
    assert again.get_vocab() == fresh.get_vocab()


_DIE_IN_TOKENIZER_SAVE = """
import os, signal, sys
from transformers import PreTrainedTokenizerFast
from openberry.cli.main import main

def die(self, *args, **kwargs):  # tokenizer_config.json is written, tokenizer.json is not yet
    os.kill(os.getpid(), signal.SIGKILL)

PreTrainedTokenizerFast._save_pretrained = die
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.long
def test_kill_inside_the_tokenizer_save_resumes_like_an_uninterrupted_run(tmp_path) -> None:
    """The same regression with a real SIGKILL of ``berry train sft --recipe tiny``, sent from
    inside the tokenizer save so it always lands there (a kill polled onto
    tokenizer_config.json found it, in about one try in three), then the weights of the
    resumed run against an uninterrupted one."""
    pytest.importorskip("torch")
    args = ["train", "sft", "--recipe", "tiny", "--data", "arithmetic:pretrain:200"]
    args += ["--max-steps", "2", "--eval-steps", "2", "--save-steps", "2", "--batch-size", "4"]
    args += ["--logging-steps", "1", "--threads", "1"]
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    proc = subprocess.run(
        [sys.executable, "-c", _DIE_IN_TOKENIZER_SAVE, *args, "--out", str(killed)],
        env=cli_env(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert not (killed / "tokenizer" / "tokenizer.json").exists()
    run_to_end(berry(*args, "--out", killed, "--resume"), tmp_path / "resume.log")
    run_to_end(berry(*args, "--out", straight), tmp_path / "straight.log")
    final = Path("final")
    diff = tensor_diffs(
        killed / final / "model.safetensors", straight / final / "model.safetensors"
    )
    assert diff == [], f"{len(diff)} tensors of final/ differ, e.g. {diff[:3]}"
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (killed / final / name).read_text() == (straight / final / name).read_text(), name


# ------------------------------------------------------------------ resuming a finished run


def test_resume_of_a_finished_run_trains_no_step_past_max_steps(tmp_path) -> None:
    """Regression: Trainer checks max_steps only after a step, so a run resumed from its
    checkpoint at max_steps (killed while it saved final/ or result.json, or resumed once
    finished) trained step max_steps + 1 whenever max_steps was not a multiple of the steps per
    epoch: result.json said step 13 of 12, metrics.jsonl and checkpoint-13 gained a step, and
    under a schedule that does not end at 0 (cosine_with_min_lr here) the weights moved."""
    from models.tiny import tiny_llama, tiny_tokenizer
    from openberry.training.sft import SFTConfig, train_sft

    pytest.importorskip("torch")
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _rows(48)))
    config = SFTConfig(
        model="tiny",
        data=(str(data),),
        output_dir=str(tmp_path / "run"),
        max_length=32,
        batch_size=8,
        max_steps=12,  # 10 batches an epoch
        save_steps=3,
        eval_steps=5,
        logging_steps=1,
        warmup_steps=2,
        learning_rate=3e-3,
        lr_scheduler="cosine_with_min_lr",
        eval_fraction=0.1,
        threads=1,
    )
    tok = tiny_tokenizer()
    done = train_sft(config, model=tiny_llama(len(tok)), tokenizer=tok)
    final = Path(done.final_dir) / "model.safetensors"
    before = final.read_bytes()
    again = train_sft(
        dataclasses.replace(config, resume=True), model=tiny_llama(len(tok)), tokenizer=tok
    )
    assert (done.step, again.step) == (12, 12)
    assert again.tokens_seen == done.tokens_seen and again.train_loss == done.train_loss
    assert not (tmp_path / "run" / "checkpoint-13").exists()
    steps = [r["step"] for r in jsonl(tmp_path / "run" / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, 13))
    assert final.read_bytes() == before

"""``berry train pprm`` killed with SIGKILL at seeded points and resumed with ``--resume`` ends
with the judge, held-out metrics and metrics.jsonl of an uninterrupted run, bit for bit
(tests/crashkit.py).

The run: the tiny Llama of tests/models/tiny.py on the toy pair task of
tests/training/test_pprm.py (64 training rows: 8 batches an epoch), a checkpoint every 3 steps
(2 kept), held-out pair metrics every 6 and a metrics line every step: 26 steps of the classify
loss in the long form, 12 in the short one (neither a whole number of epochs, so the resume of a
finished run meets Trainer's extra step: see the regression test at the end). Progress is the
line count of ``metrics.jsonl``.

``--loss dpo`` (TRL's DPOTrainer, long form only, 12 steps) resumes with the same weights and
losses too, though pprm.py only promises that for classify; the one exception is TRL's
``num_tokens`` (and ``eval_num_tokens``), a count kept outside the checkpoint that restarts at 0
in each call, so after a resume it counts the tokens since the resume: it is not compared.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from crashkit import TrainerCommand, kill_points
from models.tiny import save_tiny_model
from training.test_pprm import _pairs

pytestmark = [pytest.mark.slow, pytest.mark.crash]


def _settings(steps: int) -> tuple:
    return (
        *("--max-steps", steps, "--batch-size", 8, "--eval-steps", 6, "--save-steps", 3),
        *("--logging-steps", 1, "--warmup-steps", 2, "--lr", 3e-3, "--eval-fraction", 0.2),
        *("--threads", 1),
    )


def _lines(steps: int) -> int:
    """metrics.jsonl at the end: the eval at 0, a line per step, the evals, the summary."""
    return 1 + steps + steps // 6 + 1


def _pprm(root: Path, steps: int, *extra: str, ignore: tuple[str, ...] = ()) -> TrainerCommand:
    pytest.importorskip("torch")
    data = root / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _pairs(40)))
    model = save_tiny_model(root / "tiny")
    return TrainerCommand(root, "pprm", model, data, (*_settings(steps), *extra), ignore)


@pytest.fixture(scope="module")
def pprm_short(tmp_path_factory) -> TrainerCommand:
    return _pprm(tmp_path_factory.mktemp("pprm-short"), 12)


@pytest.fixture(scope="module")
def pprm(tmp_path_factory) -> TrainerCommand:
    return _pprm(tmp_path_factory.mktemp("pprm"), 26)


@pytest.fixture(scope="module")
def dpo(tmp_path_factory) -> TrainerCommand:
    root = tmp_path_factory.mktemp("dpo")
    return _pprm(root, 12, "--loss", "dpo", ignore=("num_tokens", "eval_num_tokens"))


@pytest.mark.parametrize(
    "point",
    kill_points("pprm-short", 1, after=(5, 9), delay=(0.0, 0.0)),
    ids=lambda p: f"seed{p.seed}",
)
def test_pprm_killed_mid_run_resumes_exactly(pprm_short, point, tmp_path) -> None:
    crash = pprm_short.check(point, tmp_path)
    assert crash.killed == [True], f"{crash}: meant to land mid-run"


@pytest.mark.long
@pytest.mark.parametrize(
    "point",
    kill_points(
        "pprm",
        12,
        after=(0, _lines(26)),
        delay=(0.0, 0.05),
        resume_after=(1, 4),
        resume_share=0.3,
        after_end=True,
    ),
    ids=lambda p: f"seed{p.seed}",
)
def test_pprm_killed_at_seeded_points_resumes_exactly(pprm, point, tmp_path) -> None:
    pprm.check(point, tmp_path)


@pytest.mark.long
@pytest.mark.parametrize(
    "point",
    kill_points(
        "dpo",
        10,
        after=(0, _lines(12)),
        delay=(0.0, 0.05),
        resume_after=(1, 4),
        resume_share=0.3,
        after_end=True,
    ),
    ids=lambda p: f"seed{p.seed}",
)
def test_dpo_killed_at_seeded_points_resumes_exactly(dpo, point, tmp_path) -> None:
    dpo.check(point, tmp_path)


@pytest.mark.parametrize("loss", ["classify", "dpo"])
def test_resume_of_a_finished_run_trains_no_step_past_max_steps(tmp_path, loss) -> None:
    """Regression (tests/crash/test_crash_sft.py has the story): resumed once finished, a
    12-step run (8 batches an epoch) trained step 13, here with both losses."""
    from models.tiny import tiny_llama, tiny_tokenizer
    from openberry.training.pprm import PPRMConfig, train_pprm

    pytest.importorskip("torch")
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _pairs(40)))
    config = PPRMConfig(
        data=(str(data),),
        output_dir=str(tmp_path / "run"),
        loss=loss,
        max_steps=12,
        save_steps=3,
        eval_steps=6,
        logging_steps=1,
        batch_size=8,
        eval_fraction=0.2,
        threads=1,
    )
    tok = tiny_tokenizer()
    done = train_pprm(config, model=tiny_llama(len(tok)), tokenizer=tok)
    again = train_pprm(
        dataclasses.replace(config, resume=True), model=tiny_llama(len(tok)), tokenizer=tok
    )
    assert (done.step, again.step) == (12, 12)
    assert again.final_eval == done.final_eval and again.train_loss == done.train_loss
    assert not (tmp_path / "run" / "checkpoint-13").exists()

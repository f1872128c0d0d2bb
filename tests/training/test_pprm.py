"""`train_pprm` on the tiny Llama: pair accuracy in closed form, the classify loss learns a toy
pair task and its final/ judges through the scorer, DPO runs, and a stopped run resumes exactly."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from models.tiny import tiny_llama, tiny_tokenizer
from openberry.formats.prompts import JUDGE_NO, JUDGE_YES, judge_prompt
from openberry.training.pprm import (
    PPRMConfig,
    judge_accuracy,
    load_pair_rows,
    pair_metrics,
    pair_row,
    train_pprm,
)
from openberry.training.sft import SFTError
from openberry.training.token_head import HeadRow

torch = pytest.importorskip("torch")


def _pairs(n: int, seed: int = 0) -> list[dict]:
    """Both orders of n pairs: the better solution says `right`, the worse `wrong`."""
    rng = random.Random(seed)
    rows = []
    for k in range(n):
        question = f"Compute {rng.randint(1, 9)} + {rng.randint(1, 9)}."
        good, bad = f"right {rng.randint(10, 99)}", f"wrong {rng.randint(10, 99)}"
        for a, b, label in ((good, bad, 1), (bad, good, 0)):
            rows.append(
                {
                    "id": f"q{k}",
                    "pair": f"q{k}:0",
                    "kind": "outcome",
                    "question": question,
                    "solution_a": a,
                    "solution_b": b,
                    "label": label,
                    "prompt": judge_prompt(question, a, b),
                    "chosen": JUDGE_YES if label else JUDGE_NO,
                    "rejected": JUDGE_NO if label else JUDGE_YES,
                    "completion": JUDGE_YES if label else JUDGE_NO,
                }
            )
    return rows


def _write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _config(tmp_path: Path, data: str, out: str = "run", **overrides) -> PPRMConfig:
    values = {
        "data": (data,),
        "output_dir": str(tmp_path / out),
        "max_steps": 30,
        "learning_rate": 3e-3,
        "warmup_steps": 2,
        "eval_steps": 15,
        "save_steps": 15,
        "logging_steps": 5,
        "batch_size": 16,
        "eval_fraction": 0.2,
        "threads": 1,
    }
    values.update(overrides)
    return PPRMConfig(**values)


def test_pair_metrics_average_both_orders() -> None:
    rows = [
        HeadRow("a", 1.0, "g", pair="p1", label=1),
        HeadRow("b", 0.0, "g", pair="p1", label=0),
        HeadRow("c", 1.0, "h", pair="p2", label=1),
        HeadRow("d", 0.0, "h", pair="p2", label=0),
    ]
    # p1: P(A>B) = (0.6 + 1 - 0.7) / 2 = 0.45 -> wrong, though its first order is right;
    # p2: (0.9 + 1 - 0.2) / 2 = 0.85 -> right.
    m = pair_metrics(rows, [0.6, 0.7, 0.9, 0.2])
    assert m == {"order_accuracy": 0.75, "pair_accuracy": 0.5, "pairs": 2}
    assert pair_metrics(rows[:2], [0.5, 0.5])["pair_accuracy"] == 0.0  # a tie is not right
    assert pair_metrics([], [])["pair_accuracy"] is None


def test_rows_are_checked_and_fall_back_to_the_solutions(tmp_path) -> None:
    raw = _pairs(1)[0]
    no_prompt = {k: v for k, v in raw.items() if k != "prompt"}
    [row] = load_pair_rows([_write(tmp_path / "p.jsonl", [no_prompt])])
    assert row.prompt == raw["prompt"] and row.label == 1 and row.group == "q0"
    with pytest.raises(SFTError, match=r"bad\.jsonl:1: a pair row needs"):
        load_pair_rows([_write(tmp_path / "bad.jsonl", [{"prompt": "x", "label": 2}])])
    with pytest.raises(SFTError, match="loss must be one of"):
        PPRMConfig(data=("d",), output_dir="o", loss="nope")


def test_classify_training_raises_pair_accuracy_and_judges(tmp_path) -> None:
    from openberry.models.spec import ModelSpec
    from openberry.records import Problem
    from openberry.search.scorers import judge_preferences

    data = _write(tmp_path / "pairs.jsonl", _pairs(120))
    held = _pairs(20, seed=99)
    tok = tiny_tokenizer()
    result = train_pprm(
        _config(tmp_path, data, eval_file=_write(tmp_path / "held.jsonl", held)),
        model=tiny_llama(len(tok)),
        tokenizer=tok,
    )
    before, after = result.initial_eval, result.final_eval
    assert before is not None and after is not None and after["pairs"] == 20
    assert after["pair_accuracy"] > before["pair_accuracy"]
    assert after["pair_accuracy"] >= 0.9 and after["order_accuracy"] >= 0.9
    assert after["loss"] < before["loss"]
    out = Path(result.output_dir)
    assert json.loads((out / "pprm_config.json").read_text())["loss"] == "classify"
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "eval_pair_accuracy" in r] == [0, 15, 30]

    judge = ModelSpec(result.final_dir).build()  # final/ is a plain model directory
    measured = judge_accuracy(judge, held)
    assert measured["pair_accuracy"] == pytest.approx(after["pair_accuracy"])
    assert measured["rows"] == 40
    # The scorer's request, answered by the trained judge as the engine answers model="judge".
    gen = judge_preferences(Problem(id="t", question="Compute 4 + 5."), ["wrong 11", "right 42"])
    request = next(gen)
    assert request.model == "judge"
    with pytest.raises(StopIteration) as stop:
        gen.send(judge.next_token_probs(request.prompts, request.candidates))
    prefs = stop.value.value
    assert prefs[(1, 0)] > 0.5 > prefs[(0, 1)]


def test_dpo_short_run_is_finite_and_saves_a_judge(tmp_path) -> None:
    data = _write(tmp_path / "pairs.jsonl", _pairs(24))
    tok = tiny_tokenizer()
    config = _config(
        tmp_path, data, loss="dpo", max_steps=4, eval_steps=4, save_steps=4, logging_steps=1
    )
    result = train_pprm(config, model=tiny_llama(len(tok)), tokenizer=tok)
    assert result.step == 4 and result.train_loss is not None
    assert result.final_eval is not None and "pair_accuracy" in result.final_eval
    lines = [
        json.loads(x) for x in (Path(result.output_dir) / "metrics.jsonl").read_text().splitlines()
    ]
    losses = [r["loss"] for r in lines if "loss" in r]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    assert (Path(result.final_dir) / "model.safetensors").is_file()


def test_lora_adapter_is_merged_into_final(tmp_path) -> None:
    data = _write(tmp_path / "pairs.jsonl", _pairs(16))
    tok = tiny_tokenizer()
    config = _config(tmp_path, data, lora=True, lora_r=4, max_steps=3, eval_steps=3, save_steps=3)
    result = train_pprm(config, model=tiny_llama(len(tok)), tokenizer=tok)
    final = Path(result.final_dir)
    assert (final / "model.safetensors").is_file() and not (final / "adapter_config.json").exists()


def test_stopped_run_resumes_exactly(tmp_path) -> None:
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 6:
                control.should_training_stop = True

    data = _write(tmp_path / "pairs.jsonl", _pairs(24))
    settings = {"max_steps": 10, "save_steps": 3, "eval_steps": 5, "logging_steps": 1}
    tok = tiny_tokenizer()
    train_pprm(
        _config(tmp_path, data, "stopped", **settings),
        model=tiny_llama(len(tok)),
        tokenizer=tok,
        callbacks=[StopAt()],
    )
    with pytest.raises(SFTError, match="has checkpoints; pass --resume"):
        train_pprm(_config(tmp_path, data, "stopped", **settings), model=object(), tokenizer=tok)
    resumed = train_pprm(
        _config(tmp_path, data, "stopped", resume=True, **settings),
        model=tiny_llama(len(tok)),
        tokenizer=tok,
    )
    straight = train_pprm(
        _config(tmp_path, data, "straight", **settings), model=tiny_llama(len(tok)), tokenizer=tok
    )
    a = load_file(Path(resumed.final_dir) / "model.safetensors")
    b = load_file(Path(straight.final_dir) / "model.safetensors")
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert resumed.final_eval == straight.final_eval
    assert resumed.initial_eval == straight.initial_eval  # step 0 kept from the first call


def test_judge_accuracy_in_the_likelihood_frame_compares_the_parting_lines() -> None:
    class Judge:
        def __init__(self, sign: float) -> None:
            self.sign, self.seen = sign, []

        def next_token_probs(self, prompts, candidates):  # pragma: no cover - not asked
            raise AssertionError("the likelihood frame reads no Yes/No")

        def score(self, prompts, completions):
            self.seen += list(zip(prompts, completions, strict=True))
            return [(self.sign * (1.0 if c.startswith("right") else -1.0),) for c in completions]

    rows = _pairs(10)
    good, bad = Judge(1.0), Judge(-1.0)
    measured = judge_accuracy(good, rows, batch_size=3, frame="likelihood")
    assert measured["pair_accuracy"] == 1.0 and measured["pairs"] == 10
    assert judge_accuracy(bad, rows, frame="likelihood")["pair_accuracy"] == 0.0
    assert len(good.seen) == len(set(good.seen)) == 20  # each parting line once, both orders
    with pytest.raises(SFTError, match="likelihood frame needs"):
        judge_accuracy(good, [pair_row(r) for r in rows], frame="likelihood")
    with pytest.raises(SFTError, match="unknown judge frame"):
        judge_accuracy(good, rows, frame="stepwise")

"""`train_sft` on the tiny 2-layer Llama: loss goes down, masks and packing are right, LoRA trains
only the adapter, a killed run resumes bit for bit, and bad inputs fail clearly."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models.tiny import tiny_llama, tiny_tokenizer
from openberry.training.sft import (
    SFTCollator,
    SFTConfig,
    SFTError,
    build_dataset,
    last_checkpoint,
    load_rows,
    train_sft,
)

torch = pytest.importorskip("torch")

TESTS_DIR = Path(__file__).resolve().parents[1]


def _rows(n: int, seed: int = 0) -> list[dict]:
    """n text rows and n prompt/completion rows of small sums."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        rows.append({"text": f"Compute {a} + {b}.\n{a} + {b} = {a + b}"})
        rows.append({"prompt": f"Q: {a}+{b}=?\nA: ", "completion": f"{a + b}"})
    return rows


def _write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _config(tmp_path: Path, data: str, out: str = "out", **overrides) -> SFTConfig:
    values = {
        "model": "tiny",
        "data": (data,),
        "output_dir": str(tmp_path / out),
        "max_length": 32,
        "batch_size": 8,
        "max_steps": 20,
        "eval_steps": 10,
        "save_steps": 10,
        "logging_steps": 5,
        "warmup_steps": 2,
        "learning_rate": 3e-3,
        "eval_fraction": 0.1,
        "threads": 1,
    }
    values.update(overrides)
    return SFTConfig(**values)


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_training_lowers_the_eval_loss(tmp_path) -> None:
    data = _write(tmp_path / "data.jsonl", _rows(64))
    tok = tiny_tokenizer()
    result = train_sft(
        _config(tmp_path, data, max_steps=30), model=tiny_llama(len(tok)), tokenizer=tok
    )
    assert result.step == 30
    assert result.initial_eval_loss is not None and result.eval_loss is not None
    assert result.eval_loss < result.initial_eval_loss - 1.0
    assert result.train_loss is not None and result.tokens_seen > 0
    out = Path(result.output_dir)
    assert (out / "final" / "model.safetensors").is_file()
    assert json.loads((out / "result.json").read_text())["step"] == 30
    assert json.loads((out / "sft_config.json").read_text())["max_steps"] == 30
    lines = _metrics(out)
    assert lines[0]["step"] == 0 and "eval_loss" in lines[0]
    assert [r["step"] for r in lines if "loss" in r] == [5, 10, 15, 20, 25, 30]
    assert all({"tokens_seen", "elapsed_s", "epoch"} <= set(r) for r in lines)


def test_collator_masks_prompt_and_padding(tmp_path) -> None:
    tok = tiny_tokenizer()
    pairs = [("Q: 1+2=?\nA: ", "3"), ("Q: 10+12=?\nA: ", "22"), ("Say hi: ", "hello there")]
    path = _write(tmp_path / "p.jsonl", [{"prompt": p, "completion": c} for p, c in pairs])
    ds = build_dataset(load_rows([path]), tok, max_length=64, packing=True, keep_remainder=False)
    assert ds.grouped and len(ds) == 3
    batch = SFTCollator(tok.pad_token_id)([ds[i] for i in range(3)])
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    for i, (prompt, completion) in enumerate(pairs):
        p = tok.encode(prompt)
        c = tok.encode(completion, add_special_tokens=False)
        n = len(p) + len(c) + 1
        assert ids[i, :n].tolist() == [*p, *c, tok.eos_token_id]
        assert (labels[i, : len(p)] == -100).all()  # prompt: no loss
        assert labels[i, len(p) : n].tolist() == [*c, tok.eos_token_id]  # completion + EOS
        assert (labels[i, n:] == -100).all() and (ids[i, n:] == tok.pad_token_id).all()
        assert mask[i].tolist() == [1] * n + [0] * (ids.shape[1] - n)
        assert int((labels[i] != -100).sum()) == len(completion) + 1  # char tokenizer


def test_ignore_spans_take_their_tokens_out_of_the_loss(tmp_path) -> None:
    tok = tiny_tokenizer()
    prompt, completion = "Q: 1+2=?\n", "1+2=4\nWrong.\n1+2=3\n"
    rows = [{"prompt": prompt, "completion": completion, "ignore_spans": [[0, 6]]}]
    ds = build_dataset(
        load_rows([_write(tmp_path / "s.jsonl", rows)]), tok, max_length=64, packing=True,
        keep_remainder=False,
    )  # fmt: skip
    assert ds.loss_tokens == len(completion) + 1 - 6  # char tokenizer: one token a character
    batch = SFTCollator(tok.pad_token_id)([ds[0]])
    p = len(tok.encode(prompt))
    kept = [int(t) for t in batch["labels"][0, p:] if t != -100]
    assert tok.decode(kept[:-1]) == "Wrong.\n1+2=3\n" and kept[-1] == tok.eos_token_id
    assert (batch["labels"][0, p : p + 6] == -100).all()


@pytest.mark.parametrize("spans", [[[0, 99]], [[3, 3]], [[0]], "0-6", [[0.5, 2]], [[True, 2]]])
def test_bad_ignore_spans_are_refused(tmp_path, spans) -> None:
    row = {"prompt": "Q: ", "completion": "abcdef", "ignore_spans": spans}
    with pytest.raises(SFTError, match="ignore_spans"):
        load_rows([_write(tmp_path / "b.jsonl", [row])])


def test_packing_fills_blocks_exactly(tmp_path) -> None:
    tok = tiny_tokenizer()
    texts = [f"doc {i}: " + "ab" * (i % 7) for i in range(40)]
    path = _write(tmp_path / "t.jsonl", [{"text": t} for t in texts])
    rows = load_rows([path])
    stream = [t for text in texts for t in [*tok.encode(text), tok.eos_token_id]]
    train = build_dataset(rows, tok, max_length=16, packing=True, keep_remainder=False)
    assert not train.grouped
    assert len(train) == len(stream) // 16
    assert all(len(s) == 16 for s in train.sequences)
    assert [int(t) for s in train.sequences for t in s] == stream[: len(train) * 16]
    batch = SFTCollator(tok.pad_token_id)([train[i] for i in range(len(train))])
    assert bool(batch["attention_mask"].all())  # no padding
    assert torch.equal(batch["labels"], batch["input_ids"])  # full loss
    held = build_dataset(rows, tok, max_length=16, packing=True, keep_remainder=True)
    assert [int(t) for s in held.sequences for t in s] == stream  # nothing dropped
    unpacked = build_dataset(rows, tok, max_length=8, packing=False, keep_remainder=False)
    assert unpacked.grouped and len(unpacked) == 40 and max(unpacked.lengths) == 8


def test_lora_trains_only_the_adapter(tmp_path) -> None:
    data = _write(tmp_path / "data.jsonl", _rows(16))
    tok = tiny_tokenizer()
    model = tiny_llama(len(tok))
    before = [(name, p, p.detach().clone()) for name, p in model.named_parameters()]
    result = train_sft(
        _config(tmp_path, data, max_steps=5, lora=True, lora_r=4), model=model, tokenizer=tok
    )
    for name, param, initial in before:
        assert torch.equal(param, initial), name
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(bool(p.abs().sum() > 0) for p in lora_b)  # lora_B starts at zero
    final = Path(result.final_dir)
    assert (final / "adapter_model.safetensors").is_file()
    assert (final / "adapter_config.json").is_file()
    assert not (final / "model.safetensors").exists()


_KILLED_RUN = """
import json, sys, time
sys.path.insert(0, {tests!r})
import torch
from transformers import TrainerCallback
from models.tiny import tiny_llama, tiny_tokenizer
from openberry.training.sft import SFTConfig, train_sft

class Block(TrainerCallback):
    def on_step_end(self, args, state, control, **kw):
        if state.global_step == {block_at}:
            open({marker!r}, "w").close()
            time.sleep(600)

tok = tiny_tokenizer()
config = SFTConfig(**json.loads({config!r}))
train_sft(config, model=tiny_llama(len(tok)), tokenizer=tok, callbacks=[Block()])
"""


def test_killed_run_resumes_exactly(tmp_path) -> None:
    data = _write(tmp_path / "data.jsonl", _rows(24))
    settings = {"save_steps": 5, "eval_steps": 5, "logging_steps": 1, "max_steps": 20}
    config = _config(tmp_path, data, "killed", **settings)
    marker = tmp_path / "blocked"
    script = _KILLED_RUN.format(
        tests=str(TESTS_DIR),
        block_at=12,
        marker=str(marker),
        config=json.dumps({k: v for k, v in config.__dict__.items()}),
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the training subprocess did not reach step 12"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL  # killed mid-run (step 12 of 20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = Path(config.output_dir)
    assert (out / "checkpoint-10" / "trainer_state.json").is_file()
    assert not (out / "final").exists()
    assert max(r["step"] for r in _metrics(out)) == 11  # logged after the last checkpoint
    (out / "checkpoint-15").mkdir()  # an incomplete checkpoint (no trainer_state.json): ignored
    (out / "checkpoint-15" / "model.safetensors").write_bytes(b"partial")
    assert last_checkpoint(out) == out / "checkpoint-10"

    tok = tiny_tokenizer()
    resumed = train_sft(
        _config(tmp_path, data, "killed", resume=True, **settings),
        model=tiny_llama(len(tok)),
        tokenizer=tok,
    )
    straight = train_sft(
        _config(tmp_path, data, "straight", **settings), model=tiny_llama(len(tok)), tokenizer=tok
    )
    from safetensors.torch import load_file

    a = load_file(Path(resumed.final_dir) / "model.safetensors")
    b = load_file(Path(straight.final_dir) / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert resumed.step == 20 and resumed.eval_loss == straight.eval_loss
    assert resumed.tokens_seen == straight.tokens_seen

    lines = _metrics(out)
    train_steps = [r["step"] for r in lines if "loss" in r]
    assert train_steps == list(range(1, 21))  # every logged step exactly once
    eval_steps = [r["step"] for r in lines if "eval_loss" in r]
    assert eval_steps == [0, 5, 10, 15, 20]
    straight_lines = _metrics(Path(straight.output_dir))
    assert [r["loss"] for r in lines if "loss" in r] == [
        r["loss"] for r in straight_lines if "loss" in r
    ]


def test_refuses_an_output_dir_with_checkpoints(tmp_path) -> None:
    data = _write(tmp_path / "data.jsonl", _rows(4))
    (tmp_path / "out" / "checkpoint-5").mkdir(parents=True)
    with pytest.raises(SFTError, match="has checkpoints; pass --resume"):
        train_sft(_config(tmp_path, data), model=object(), tokenizer=object())


def test_bad_rows_and_files_are_named(tmp_path) -> None:
    bad = _write(tmp_path / "bad.jsonl", [{"text": "fine"}, {"question": "1+1?", "answer": "2"}])
    with pytest.raises(SFTError, match=r"bad\.jsonl:2: the row has neither a 'text' field"):
        load_rows([bad])
    with pytest.raises(SFTError, match=r"bad\.jsonl:1: 'text' must be a string"):
        load_rows([_write(tmp_path / "bad.jsonl", [{"text": 3}])])
    with pytest.raises(SFTError, match=r"missing\.jsonl: no such file"):
        load_rows([str(tmp_path / "missing.jsonl")])
    with pytest.raises(SFTError, match="max_length"):
        SFTConfig(model="m", data=("d",), output_dir="o", max_length=1)


def test_hub_id_offline_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SFTError, match="offline"):
        load_rows(["someone/some-dataset"])


def test_tensorboard_needs_the_extra(tmp_path) -> None:
    import importlib.util

    if importlib.util.find_spec("tensorboard") is not None:
        pytest.skip("tensorboard is installed")
    data = _write(tmp_path / "data.jsonl", _rows(8))
    tok = tiny_tokenizer()
    with pytest.raises(SFTError, match=r"openberry\[tensorboard\]"):
        train_sft(
            _config(tmp_path, data, tensorboard=True), model=tiny_llama(len(tok)), tokenizer=tok
        )


def test_from_scratch_trains_and_loads(tmp_path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from openberry.formats.openlongcot import SPECIAL_TOKENS
    from openberry.models.base import SamplingParams
    from openberry.models.hf import HFPolicy

    data = _write(tmp_path / "data.jsonl", [r for r in _rows(32) if "text" in r])
    model_config = {
        "model_type": "llama",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "max_position_embeddings": 64,
    }
    config_path = tmp_path / "llama.json"
    config_path.write_text(json.dumps(model_config))
    config = _config(
        tmp_path,
        data,
        model="scratch",
        from_scratch=str(config_path),
        vocab_size=128,
        max_steps=6,
        save_steps=3,
        eval_steps=3,
        save_dtype="bfloat16",
    )
    result = train_sft(config)
    assert result.eval_loss is not None and result.eval_loss < result.initial_eval_loss
    final = Path(result.final_dir)
    model = AutoModelForCausalLM.from_pretrained(final)
    tok = AutoTokenizer.from_pretrained(final)
    assert model.config.num_hidden_layers == 2 and model.dtype == torch.bfloat16
    assert model.config.vocab_size == len(tok) <= 128
    assert model.config.eos_token_id == tok.eos_token_id
    assert len(tok.encode(SPECIAL_TOKENS[0], add_special_tokens=False)) == 1
    policy = HFPolicy.from_pretrained(final, dtype="float32")
    [[gen]] = policy.generate(["Compute 3 + 4.\n"], SamplingParams(max_new_tokens=5, temperature=0))
    assert gen.num_tokens >= 1

    with pytest.raises(SFTError, match="model_type"):
        config_path.write_text(json.dumps({"hidden_size": 32}))
        train_sft(_config(tmp_path, data, "bad", from_scratch=str(config_path)))


def test_recipes_supply_defaults_that_settings_override(monkeypatch) -> None:
    from openberry.training import sft

    monkeypatch.setitem(sft.RECIPES, "tiny", {"max_steps": 7, "batch_size": 2, "lora": True})
    config = SFTConfig.from_recipe("tiny", model="m", data=("d",), output_dir="o", batch_size=4)
    assert (config.max_steps, config.batch_size, config.lora) == (7, 4, True)
    with pytest.raises(SFTError, match="unknown recipe"):
        SFTConfig.from_recipe("nope", model="m", data=("d",), output_dir="o")
    with pytest.raises(SFTError, match="missing setting"):
        SFTConfig.from_recipe("tiny", model="m")


def test_generated_arithmetic_source() -> None:
    rows = load_rows(["arithmetic:pretrain:30:1"])
    assert len(rows) == 30
    assert all(r.text and r.prompt is None for r in rows)
    assert [r.text for r in rows] == [r.text for r in load_rows(["arithmetic:pretrain:30:1"])]
    pairs = load_rows(["arithmetic:solutions:5"])
    assert all(r.prompt and r.completion for r in pairs)
    for bad in ("arithmetic:nope", "arithmetic:pretrain:x", "arithmetic:pretrain:1:2:3"):
        with pytest.raises(SFTError, match="arithmetic:KIND"):
            load_rows([bad])


def test_trained_tokenizer_keeps_judge_answers_whole(tmp_path) -> None:
    from openberry.formats.prompts import JUDGE_NO, JUDGE_YES, judge_prompt
    from openberry.training.sft import _load_tokenizer

    rows = load_rows(["arithmetic:pretrain:200"])
    model_config = tmp_path / "cfg.json"
    model_config.write_text(json.dumps({"model_type": "llama", "max_position_embeddings": 64}))
    config = _config(
        tmp_path, "unused.jsonl", "scratch", from_scratch=str(model_config), vocab_size=128
    )
    tok = _load_tokenizer(config, rows, tmp_path)
    prompt = judge_prompt("Compute 1 + 2.", "a", "b")
    ids = tok.encode(prompt, add_special_tokens=False)
    for answer in (JUDGE_YES, JUDGE_NO):
        (one,) = tok.encode(answer, add_special_tokens=False)
        assert tok.encode(prompt + answer, add_special_tokens=False) == [*ids, one]


def test_text_the_tokenizer_cannot_write_is_named_in_a_warning(caplog) -> None:
    """Regression: journey rows whose reflection began with a letter berry-tiny's corpus
    tokenizer lacks trained the model to write ``<unk>`` without a word of warning."""
    from openberry.training.sft import _encode

    tok = tiny_tokenizer()  # printable ASCII only
    with caplog.at_level("WARNING", logger="openberry.training.sft"):
        _encode(tok, ["fine text", "caf\u00e9 \u2713", "ok"], "rows")
    (record,) = [r for r in caplog.records if "cannot represent" in r.getMessage()]
    assert "1 of 3 texts" in record.getMessage() and "\u00e9\u2713" in record.getMessage()
    caplog.clear()
    with caplog.at_level("WARNING", logger="openberry.training.sft"):
        _encode(tok, ["all fine"], "rows")
    assert not caplog.records

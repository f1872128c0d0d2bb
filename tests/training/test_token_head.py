"""The two-token head: its loss in closed form, left padding that reads each row's last real
token, the group split, and the value trainer (AUC up on a toy task)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from models.tiny import tiny_llama, tiny_tokenizer
from openberry.training.token_head import (
    HeadRow,
    LeftPadCollator,
    split_by_group,
    two_token_logits,
    two_token_loss,
)
from openberry.training.value import ValueConfig, auc, train_value, value_metrics

torch = pytest.importorskip("torch")


def test_two_token_loss_matches_a_hand_computation() -> None:
    logits = torch.tensor([[2.0, 0.5], [-1.0, 1.0], [0.3, 0.3]])
    target = torch.tensor([1.0, 0.25, 0.0])
    expected = 0.0
    for (lp, ln), p in zip(logits.tolist(), target.tolist(), strict=True):
        q = math.exp(lp) / (math.exp(lp) + math.exp(ln))  # softmax over the two tokens
        expected -= p * math.log(q) + (1 - p) * math.log(1 - q)
    expected /= 3
    assert float(two_token_loss(logits, target)) == pytest.approx(expected, rel=1e-6)
    # only the margin matters: shifting both logits changes nothing
    assert float(two_token_loss(logits + 7.0, target)) == pytest.approx(expected, rel=1e-6)


def test_padded_batch_reads_each_rows_last_real_token() -> None:
    """Regression: a padded batch must give every row the logits of its own last token, the
    same as the row run alone (right padding would read a pad position)."""
    tok = tiny_tokenizer()
    model = tiny_llama(len(tok))
    prompts = ["Is A better? ", "Question: 12 + 30\nIs solution A better than B? ", "x"]
    ids = [tok.encode(p) for p in prompts]
    yes_no = (tok.convert_tokens_to_ids("Yes"), tok.convert_tokens_to_ids("No"))
    collate = LeftPadCollator(tok.pad_token_id)
    with torch.no_grad():
        batch = two_token_logits(
            model, collate([{"input_ids": i, "target": 1.0} for i in ids]), yes_no
        )
        for row, i in enumerate(ids):
            alone = two_token_logits(model, collate([{"input_ids": i, "target": 1.0}]), yes_no)
            assert torch.allclose(batch[row], alone[0], atol=1e-5), prompts[row]
            full = model(torch.tensor([i])).logits[0, -1, list(yes_no)]
            assert torch.allclose(alone[0], full, atol=1e-5)


def test_split_keeps_groups_whole() -> None:
    rows = [HeadRow(f"p{i}", 1.0, group=f"g{i // 3}") for i in range(30)]
    train, held = split_by_group(rows, 0.2, seed=1)
    assert len({r.group for r in held}) == 2 and len(held) == 6
    assert not {r.group for r in train} & {r.group for r in held}
    assert split_by_group(rows, 0.2, seed=1) == (train, held)
    assert split_by_group(rows, 0.0, seed=1) == (rows, [])


def test_auc_and_value_metrics_in_closed_form() -> None:
    assert auc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert auc([0.1, 0.9], [True, False]) == 0.0
    assert auc([0.5, 0.5, 0.5], [True, False, True]) == 0.5  # ties count one half
    assert auc([0.3, 0.6, 0.6, 0.1], [True, True, False, False]) == pytest.approx(0.625)
    assert auc([0.3], [True]) is None
    rows = [HeadRow("a", 0.75, "g"), HeadRow("b", 0.0, "g")]
    m = value_metrics(rows, [0.5, 0.5])
    assert m["mse"] == pytest.approx((0.25**2 + 0.5**2) / 2)
    assert m["brier"] == pytest.approx(0.25) and m["auc"] == 0.5


def _value_rows(n: int, seed: int = 0) -> list[dict]:
    """Prompts whose last step says `good` (value near 1) or `bad` (near 0)."""
    rng = random.Random(seed)
    rows = []
    for k in range(n):
        good = rng.random() < 0.5
        word = "good" if good else "bad"
        value = rng.choice([0.75, 1.0]) if good else rng.choice([0.0, 0.25])
        prompt = f"Compute {rng.randint(1, 99)} + {rng.randint(1, 9)}.\nstep: {word} {k % 7}\n"
        rows.append({"id": f"q{k}", "kind": "value", "prompt": prompt, "value": value})
    return rows


def test_value_training_raises_auc(tmp_path) -> None:
    data = tmp_path / "values.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _value_rows(160)))
    tok = tiny_tokenizer()
    config = ValueConfig(
        data=(str(data),),
        output_dir=str(tmp_path / "run"),
        max_steps=40,
        learning_rate=3e-3,
        warmup_steps=2,
        eval_steps=20,
        save_steps=40,
        batch_size=16,
        eval_fraction=0.25,
        threads=1,
    )
    result = train_value(config, model=tiny_llama(len(tok)), tokenizer=tok)
    before, after = result.initial_eval, result.final_eval
    assert before is not None and after is not None
    assert after["auc"] > before["auc"] + 0.2 and after["auc"] > 0.9
    assert after["mse"] < before["mse"]
    out = Path(result.output_dir)
    saved = json.loads((out / "result.json").read_text())
    assert saved["final_eval"]["auc"] == after["auc"]
    assert (out / "value_config.json").is_file() and (out / "final" / "config.json").is_file()
    evals = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in evals if "eval_auc" in r] == [0, 20, 40]

"""HFPolicy decode-loop details: finished rows leave the batch; stop checks on the tail."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny import spy_cache_shrinks, tiny_hf_policy

from openberry.models import SamplingParams

PROMPTS = [f"Problem {i}: {'x' * i} + {i * 7} =" for i in range(12)]


@pytest.fixture(scope="module")
def policy():
    return tiny_hf_policy()


def _first_char_stops(policy) -> list[str]:
    """Stop strings that end rows at different steps: characters the model writes early on."""
    outs = policy.generate(PROMPTS, SamplingParams(max_new_tokens=24, temperature=0))
    chars = [g.text[k] for (g,) in outs for k in (3, 9, 15) if len(g.text) > k]
    return sorted(set(chars))[:3]


def test_finished_rows_dropped_give_same_outputs(policy, monkeypatch) -> None:
    stops = _first_char_stops(policy)
    params = SamplingParams(max_new_tokens=24, temperature=0, stop=tuple(stops))
    shrinks = spy_cache_shrinks(monkeypatch)
    batched = policy.generate(PROMPTS, params)
    assert any(k < len(PROMPTS) for k in shrinks), "no finished row was ever dropped"
    finish = {g.finish_reason for (g,) in batched}
    assert "stop" in finish
    for prompt, (g,) in zip(PROMPTS, batched, strict=True):
        (alone,) = policy.generate([prompt], params)[0]
        assert g.token_ids == alone.token_ids
        assert g.text == alone.text
        assert g.finish_reason == alone.finish_reason
        assert g.logprobs == pytest.approx(alone.logprobs, abs=1e-4)


def test_stop_found_after_long_generation(policy) -> None:
    """The tail-window stop check finds a stop string far past the window length."""
    free = policy.generate([PROMPTS[0]], SamplingParams(max_new_tokens=80, temperature=0))[0][0]
    text = free.text
    stop = text[60:62]
    first = text.find(stop)
    params = SamplingParams(max_new_tokens=80, temperature=0, stop=(stop,))
    g = policy.generate([PROMPTS[0]], params)[0][0]
    assert g.finish_reason == "stop"
    assert g.text == text[:first]


def test_prefill_calls_sort_rows_and_return_them_in_order() -> None:
    """score / next_token_probs over more rows than one prefill pass, of mixed lengths, equal
    each row alone (rows are sorted by length internally and put back)."""
    from openberry.models.hf import PREFILL_ROWS

    policy = tiny_hf_policy()
    prompts = [("ab " * (1 + (7 * i) % 23)).strip() for i in range(PREFILL_ROWS + 9)]
    completions = [" c" * (1 + i % 4) for i in range(len(prompts))]
    together = policy.score(prompts, completions)
    probs = policy.next_token_probs(prompts, ["a", "b"])
    for i in (0, 5, PREFILL_ROWS, len(prompts) - 1):
        (alone,) = policy.score([prompts[i]], [completions[i]])
        assert together[i] == pytest.approx(alone, abs=1e-5)
        (p,) = policy.next_token_probs([prompts[i]], ["a", "b"])
        assert probs[i] == pytest.approx(p, abs=1e-6)


def _scripted_choose(policy, monkeypatch, script: dict[int, list[str]], filler: str) -> None:
    """Make `Decoder._choose` emit, at step s, ``script[s]`` (one token per row) or `filler`
    for every row (the model still runs; only the chosen tokens are scripted)."""
    tok = policy.tokenizer
    ids = {t: tok.convert_tokens_to_ids(t) for s in script.values() for t in s} | {
        filler: tok.convert_tokens_to_ids(filler)
    }
    step = {"n": 0}

    def choose(self, logits, params, gen):
        row = script.get(step["n"])
        step["n"] += 1
        import torch

        chosen = [ids[t] for t in row] if row else [ids[filler]] * logits.shape[0]
        return torch.tensor(chosen[: logits.shape[0]], dtype=torch.long)

    from openberry.models.hf.decode import Decoder

    monkeypatch.setattr(Decoder, "_choose", choose)


def test_regression_finished_row_kept_in_batch_is_not_revived(policy, monkeypatch) -> None:
    """Regression: a row that finished while fewer than a quarter of the batch had (so it stays
    in the batch) went on receiving tokens. A later EOS overwrote its result with the tokens
    after its first EOS, and a stop string that had left the checked tail revived it, ending
    with finish reason "length" and the stop string inside its text."""
    eos = policy.tokenizer.eos_token
    _scripted_choose(policy, monkeypatch, {0: [eos, "y", "y", "y", "y"], 2: [eos] * 5}, "y")
    out = policy.generate(["p"] * 5, SamplingParams(temperature=0, max_new_tokens=6))
    assert out[0][0].finish_reason == "eos" and out[0][0].text == ""
    assert len(out[0][0].token_ids) == 1
    assert [o[0].finish_reason for o in out[1:]] == ["eos"] * 4  # they stop at step 2

    script = {0: ["a", "y", "y", "y", "y"], 1: ["b", "y", "y", "y", "y"]} | {
        s: ["b"] * 5 for s in range(20, 40)
    }
    _scripted_choose(policy, monkeypatch, script, "y")
    out = policy.generate(["p"] * 5, SamplingParams(temperature=0, max_new_tokens=40, stop=("ab",)))
    assert out[0][0].finish_reason == "stop" and out[0][0].text == ""
    assert [o[0].finish_reason for o in out[1:]] == ["length"] * 4

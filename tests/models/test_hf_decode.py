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

"""Contract tests that every `Policy` backend must pass.

Backends: fake, Hugging Face on a tiny Llama, and the OpenAI-compatible client talking to
`berry serve`'s app over that same Llama (a real server on a loopback port).

The tiny Llama and its character-level tokenizer are built in-process (no downloads).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from importcheck import imported_roots
from models.tiny import live_server, tiny_llama, tiny_tokenizer
from openberry.models import FakePolicy, ModelError, Policy, SamplingParams
from openberry.records import Generation

PROMPTS = ["Q: 12+7=?\nA:", "x", "Solve 3*x = 9 for x.\n"]


@pytest.fixture(scope="module")
def tiny_hf():
    pytest.importorskip("torch")
    tokenizer = tiny_tokenizer()
    return tiny_llama(len(tokenizer)), tokenizer


@pytest.fixture(scope="module", params=["fake", "hf", "openai"])
def policy(request) -> Iterator[Policy]:
    if request.param == "fake":
        yield FakePolicy(seed=3)
        return
    from openberry.models.hf import HFPolicy

    model, tokenizer = request.getfixturevalue("tiny_hf")
    hf = HFPolicy(model, tokenizer, name="tiny")
    if request.param == "hf":
        yield hf
        return
    # The OpenAI-compatible backend against our own server over the same tiny model.
    pytest.importorskip("fastapi")
    from openberry.models.openai import OpenAIPolicy
    from openberry.serve.app import create_app

    with live_server(create_app(hf, model_name="tiny")) as url:
        remote = OpenAIPolicy(url, "tiny", max_concurrency=4, timeout=30, max_retries=0)
        yield remote
        remote.close()


def _flat(rows: list[tuple[float, ...]]) -> list[float]:
    return [x for row in rows for x in row]


def _text_token_count(policy, gen: Generation) -> int:
    return gen.num_tokens - (1 if gen.finish_reason == "eos" else 0)


def test_is_policy(policy) -> None:
    assert isinstance(policy, Policy)
    assert policy.name


def test_greedy_is_deterministic(policy) -> None:
    params = SamplingParams(n=3, temperature=0, max_new_tokens=12)
    a = policy.generate(PROMPTS, params)
    b = policy.generate(PROMPTS, params)
    assert [[g.token_ids for g in row] for row in a] == [[g.token_ids for g in row] for row in b]
    for row in a:
        assert len({g.text for g in row}) == 1


def test_seed_reproducible_and_varies(policy) -> None:
    def run(seed: int) -> list[str]:
        out = policy.generate(PROMPTS, SamplingParams(n=4, max_new_tokens=16, seed=seed))
        return [g.text for row in out for g in row]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_n_and_max_new_tokens(policy) -> None:
    out = policy.generate(PROMPTS, SamplingParams(n=5, max_new_tokens=7, seed=0))
    assert len(out) == len(PROMPTS)
    for row in out:
        assert len(row) == 5
        for g in row:
            assert 1 <= g.num_tokens <= 7
            assert len(g.logprobs) == g.num_tokens
            assert g.prompt_tokens > 0
            if g.finish_reason == "length":
                assert g.num_tokens == 7
            assert g.finish_reason in ("length", "eos")
    assert any(g.finish_reason == "length" for row in out for g in row)


def test_stop_strings(policy) -> None:
    base = SamplingParams(temperature=0, max_new_tokens=24)
    for prompt in [*PROMPTS, "abc", "1+1", "hello"]:
        (full,) = policy.generate([prompt], base)[0]
        if len(full.text) >= 4:
            break
    else:
        pytest.fail("no greedy generation long enough to test stop strings")
    stop = full.text[2:4]
    cut = full.text.index(stop)
    (g,) = policy.generate(
        [prompt], SamplingParams(temperature=0, max_new_tokens=24, stop=(stop,))
    )[0]
    assert g.finish_reason == "stop"
    assert stop not in g.text
    assert g.text == full.text[:cut]
    assert g.token_ids == full.token_ids[: len(g.token_ids)]
    assert len(g.logprobs) == g.num_tokens
    assert g.logprobs == pytest.approx(full.logprobs[: g.num_tokens], abs=1e-5)
    if full.token_ids:  # OpenAI-compatible servers do not return token ids
        assert len(g.token_ids) == g.num_tokens


def test_generate_logprobs_match_score(policy) -> None:
    out = policy.generate(PROMPTS, SamplingParams(n=3, max_new_tokens=16, seed=5, top_p=0.9))
    prompts = [p for p, row in zip(PROMPTS, out, strict=True) for _ in row]
    gens = [g for row in out for g in row]
    scores = policy.score(prompts, [g.text for g in gens])
    for g, s in zip(gens, scores, strict=True):
        assert len(s) == _text_token_count(policy, g)
        assert s == pytest.approx(g.logprobs[: len(s)], abs=1e-4)
        assert all(lp <= 0 for lp in g.logprobs)


def test_score_batch_equals_single(policy) -> None:
    completions = ["7 = 19", "", " abc\nYes"]
    batched = policy.score(PROMPTS, completions)
    assert batched[1] == ()
    for p, c, b in zip(PROMPTS, completions, batched, strict=True):
        assert policy.score([p], [c])[0] == pytest.approx(b, abs=1e-5)


def test_next_token_probs_match_score(policy) -> None:
    cands = ["Yes", "No", "<positive_rating>", "a"]
    probs = policy.next_token_probs(PROMPTS, cands)
    assert len(probs) == len(PROMPTS)
    for p, row in zip(PROMPTS, probs, strict=True):
        assert set(row) == set(cands)
        assert 0 < sum(row.values()) <= 1 + 1e-6
        for c in cands:
            (lp,) = policy.score([p], [c])[0]
            assert row[c] == pytest.approx(math.exp(lp), rel=1e-4, abs=1e-7)


def test_next_token_probs_rejects_multi_token(policy) -> None:
    with pytest.raises(ModelError):
        policy.next_token_probs(["x"], ["Yes", "abc"])


def test_batch_equals_single_greedy(policy) -> None:
    params = SamplingParams(n=2, temperature=0, max_new_tokens=10)
    batched = policy.generate(PROMPTS, params)
    for p, row in zip(PROMPTS, batched, strict=True):
        (single,) = policy.generate([p], params)
        for a, b in zip(row, single, strict=True):
            assert a.token_ids == b.token_ids
            assert a.text == b.text
            assert a.finish_reason == b.finish_reason
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)


def test_token_stats(policy) -> None:
    params = SamplingParams(n=2, max_new_tokens=8, seed=2, stop=("\n",))
    for row in policy.generate(PROMPTS, params):
        assert all(g.entropies is None and g.varentropies is None for g in row)
    with_stats = SamplingParams(n=2, max_new_tokens=8, seed=2, stop=("\n",), token_stats=True)
    out = policy.generate(PROMPTS, with_stats)
    for row in out:
        for g in row:
            assert len(g.entropies) == len(g.varentropies) == g.num_tokens
            assert all(math.isfinite(h) and h >= 0 for h in g.entropies)
            assert all(math.isfinite(v) and v >= 0 for v in g.varentropies)
            if g.num_tokens:
                assert g.mean_entropy >= 0 and g.mean_varentropy >= 0
    # Asking for stats does not change the samples.
    again = policy.generate(PROMPTS, params)
    assert [[g.text for g in r] for r in out] == [[g.text for g in r] for r in again]


# ------------------------------------------------------------------------------ fake only


def test_fake_script_and_specials() -> None:
    fake = FakePolicy(script={"Rate:": ["Yes", "No"], "step": "1+1=2\n3"})
    out = fake.generate(["Please Rate:", "next step"], SamplingParams(n=3, stop=("\n",)))
    assert [g.text for g in out[0]] == ["Yes", "No", "Yes"]
    assert out[0][0].num_tokens == 2  # "Yes" is one token, then EOS
    assert out[0][0].finish_reason == "eos"
    assert out[1][0].text == "1+1=2"
    assert out[1][0].finish_reason == "stop"
    assert fake.score(["next step"], ["1+1=2"])[0] == out[1][0].logprobs
    with pytest.raises(ValueError):
        FakePolicy(alphabet="Yes", special_tokens=["Yes"])


def test_models_package_is_light() -> None:
    loaded = imported_roots(
        "import openberry.models, openberry.models.hf", ["torch", "transformers", "peft"]
    )
    assert loaded == []


# ------------------------------------------------------------------------------ HF only


def test_hf_from_pretrained_directory(tiny_hf, tmp_path) -> None:
    from openberry.models.hf import HFPolicy

    model, tokenizer = tiny_hf
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = HFPolicy.from_pretrained(tmp_path, dtype="float32", device="cpu")
    direct = HFPolicy(model, tokenizer)
    params = SamplingParams(temperature=0, max_new_tokens=8)
    assert [g.token_ids for g in loaded.generate(PROMPTS, params)[0]] == [
        g.token_ids for g in direct.generate(PROMPTS, params)[0]
    ]
    assert _flat(loaded.score(PROMPTS, ["abc"] * 3)) == pytest.approx(
        _flat(direct.score(PROMPTS, ["abc"] * 3)), abs=1e-5
    )
    with pytest.raises(ModelError):
        HFPolicy.from_pretrained(tmp_path / "missing")


def test_hf_lora_adapter(tiny_hf, tmp_path) -> None:
    peft = pytest.importorskip("peft")
    import torch

    from openberry.models.hf import HFPolicy

    model, tokenizer = tiny_hf
    base_dir = tmp_path / "base"
    model.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    fresh = tiny_llama(len(tokenizer))
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    lora = peft.get_peft_model(fresh, config)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    lora.save_pretrained(tmp_path / "adapter")
    lora.eval()

    plain = HFPolicy.from_pretrained(base_dir)
    adapted = HFPolicy.from_pretrained(base_dir, adapter=str(tmp_path / "adapter"))
    merged = HFPolicy.from_pretrained(
        base_dir, adapter=str(tmp_path / "adapter"), merge_adapter=True
    )
    wrapped = HFPolicy(lora, tokenizer)
    s_plain = _flat(plain.score(PROMPTS, ["abc"] * 3))
    s_adapted = _flat(adapted.score(PROMPTS, ["abc"] * 3))
    assert s_adapted == pytest.approx(_flat(wrapped.score(PROMPTS, ["abc"] * 3)), abs=1e-5)
    assert s_adapted == pytest.approx(_flat(merged.score(PROMPTS, ["abc"] * 3)), abs=1e-4)
    assert s_adapted != pytest.approx(s_plain, abs=1e-3)
    out = adapted.generate(PROMPTS[:1], SamplingParams(n=2, max_new_tokens=6, seed=0))
    assert len(out[0]) == 2


def test_hf_batch_size_chunks_match(tiny_hf) -> None:
    from openberry.models.hf import HFPolicy

    model, tokenizer = tiny_hf
    whole = HFPolicy(model, tokenizer)
    chunked = HFPolicy(model, tokenizer, batch_size=2)
    params = SamplingParams(n=2, temperature=0, max_new_tokens=6)
    assert [[g.token_ids for g in row] for row in chunked.generate(PROMPTS, params)] == [
        [g.token_ids for g in row] for row in whole.generate(PROMPTS, params)
    ]
    comps = ["ab", "", "Yes!"]
    assert _flat(chunked.score(PROMPTS, comps)) == pytest.approx(
        _flat(whole.score(PROMPTS, comps)), abs=1e-5
    )
    assert chunked.next_token_probs(PROMPTS, ["a"]) == [
        pytest.approx(row, rel=1e-5) for row in whole.next_token_probs(PROMPTS, ["a"])
    ]


def test_score_cut_into_passes_by_logit_memory_gives_the_same(monkeypatch) -> None:
    """Regression: `score` held the logits and their log-softmax of 64 rows at once, gigabytes
    for a chat model's vocabulary (SmolLM2's best-of-N with the logprob scorer was killed for
    memory). A pass is now cut so its logits fit `SCORE_LOGITS_BYTES`; one row a pass gives the
    same log-probabilities."""
    from openberry.models.hf import HFPolicy, prefill

    policy = HFPolicy.from_pretrained("berry-tiny")
    completions = ["7 = 19", "", " abc\nYes"]
    whole = policy.score(PROMPTS, completions)
    passes = []
    real = prefill._score_pass
    monkeypatch.setattr(prefill, "SCORE_LOGITS_BYTES", 1)  # one row per pass
    monkeypatch.setattr(
        prefill, "_score_pass", lambda rt, part: passes.append(len(part)) or real(rt, part)
    )
    cut = policy.score(PROMPTS, completions)
    assert passes and max(passes) == 1
    assert cut[1] == () and all(
        a == pytest.approx(b, abs=1e-5) for a, b in zip(cut, whole, strict=True)
    )
    assert (
        prefill.logit_rows(512, 49152, 6 * 2**30) == 64
        and prefill.logit_rows(512, 49152, 512 * 2**20) == 5
    )

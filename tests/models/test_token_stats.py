"""Per-token entropy and varentropy (`SamplingParams.token_stats`) on every backend.

Entropy H = -sum p log p and varentropy sum p (log p + H)^2 of the temperature-1 next-token
distribution at each generated position. Fake and HF are exact (checked against closed forms
and against a full forward pass); the OpenAI-compatible client approximates them from top-k.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections import Counter

import pytest

from openberry.models import FakePolicy, SamplingParams
from openberry.models.base import entropy_varentropy
from openberry.records import Generation

# ------------------------------------------------------------------------------ the formula


@pytest.mark.parametrize("vocab", [1, 2, 7, 50_000])
def test_uniform_has_entropy_log_v_and_zero_varentropy(vocab) -> None:
    h, v = entropy_varentropy([-3.0] * vocab)  # unnormalised: renormalised inside
    assert h == pytest.approx(math.log(vocab), abs=1e-12)
    assert v == pytest.approx(0.0, abs=1e-12)


def test_two_point_closed_form_and_masked_tokens() -> None:
    p = 0.2
    h, v = entropy_varentropy([math.log(p), math.log(1 - p), -math.inf, -math.inf])
    assert h == pytest.approx(-p * math.log(p) - (1 - p) * math.log(1 - p), rel=1e-12)
    # -log p takes log(1/p) w.p. p and log(1/(1-p)) w.p. 1-p: variance p(1-p) log((1-p)/p)^2.
    assert v == pytest.approx(p * (1 - p) * math.log((1 - p) / p) ** 2, rel=1e-12)
    with pytest.raises(ValueError):
        entropy_varentropy([-math.inf])


def test_torch_helper_matches_formula() -> None:
    torch = pytest.importorskip("torch")
    from openberry.models.hf.decode import _entropy_varentropy

    torch.manual_seed(0)
    logits = torch.randn(5, 300) * 3
    logits[1] = 0.0  # uniform row
    logits[2, 10:] = -math.inf  # masked tokens
    h, v = _entropy_varentropy(torch.log_softmax(logits, -1))
    assert h[1].item() == pytest.approx(math.log(300), abs=1e-5)
    assert v[1].item() == pytest.approx(0.0, abs=1e-5)
    for row in range(5):
        want = entropy_varentropy(logits[row].double().tolist())
        assert (h[row].item(), v[row].item()) == pytest.approx(want, abs=1e-4)


# ------------------------------------------------------------------------------ records


def test_generation_round_trip_and_means() -> None:
    g = Generation(
        "ab",
        token_ids=(1, 2, 3),
        logprobs=(-0.1, -0.2, -0.3),
        finish_reason="eos",
        entropies=(1.0, 2.0, 3.0),
        varentropies=(0.5, 0.25, 0.0),
    )
    assert g.mean_entropy == pytest.approx(2.0)
    assert g.mean_varentropy == pytest.approx(0.25)
    d = json.loads(json.dumps(g.to_dict()))
    assert d["entropies"] == [1.0, 2.0, 3.0]
    assert Generation.from_dict(d) == g
    # Records written before these fields existed still load.
    old = {k: v for k, v in d.items() if k not in ("entropies", "varentropies")}
    assert Generation.from_dict(old).entropies is None
    plain = Generation("x", token_ids=(5,))
    assert plain.to_dict()["entropies"] is None and plain.to_dict()["varentropies"] is None
    assert math.isnan(plain.mean_entropy) and math.isnan(plain.mean_varentropy)
    assert math.isnan(Generation("", entropies=()).mean_entropy)
    # Servers give stats without token ids.
    assert Generation("ab", num_tokens=2, entropies=(1.0, 3.0)).mean_entropy == 2.0


@pytest.mark.parametrize("field", ["entropies", "varentropies"])
def test_generation_rejects_misaligned_stats(field) -> None:
    from openberry.records import RecordError

    with pytest.raises(RecordError, match=field):
        Generation("t", token_ids=(1, 2), **{field: (0.5,)})
    with pytest.raises(RecordError, match=field):
        Generation.from_dict({"text": "t", field: "oops"})


def test_sampling_params_default_off() -> None:
    assert SamplingParams().token_stats is False
    assert SamplingParams(token_stats=True).token_stats is True


# ------------------------------------------------------------------------------ fake


def test_fake_closed_form() -> None:
    """sharpness=0, eos_bias=0: every vocabulary logit is 0 and the unknown bucket's is -4."""
    fake = FakePolicy(seed=1, sharpness=0.0, eos_bias=0.0)
    vocab = len(fake.alphabet) + len(fake.special_tokens) + 1  # + EOS
    z = vocab + math.exp(-4.0)
    logp = [-math.log(z)] * vocab + [-4.0 - math.log(z)]
    want_h = -math.fsum(math.exp(x) * x for x in logp)
    want_v = math.fsum(math.exp(x) * (x + want_h) ** 2 for x in logp)
    assert want_h == pytest.approx(math.log(z) + 4 * math.exp(-4.0) / z)
    params = SamplingParams(n=3, max_new_tokens=20, seed=0, token_stats=True, stop=("=",))
    out = fake.generate(["1+1", "x"], params)
    for g in (g for row in out for g in row):
        assert len(g.entropies) == len(g.varentropies) == g.num_tokens
        assert g.entropies == pytest.approx([want_h] * g.num_tokens, abs=1e-12)
        assert g.varentropies == pytest.approx([want_v] * g.num_tokens, abs=1e-12)
    assert want_v > 0


def test_fake_stats_match_its_distribution_and_script() -> None:
    fake = FakePolicy(seed=3, script={"Rate:": "Yes"})
    params = SamplingParams(n=2, max_new_tokens=12, seed=4, token_stats=True, stop=("\n",))
    (row,) = fake.generate(["Q: 2+2=?"], params)
    for g in row:
        context = "Q: 2+2=?"
        for tid, h, v in zip(g.token_ids, g.entropies, g.varentropies, strict=True):
            assert (h, v) == fake.token_stats(context)
            assert (h, v) == entropy_varentropy(fake._log_probs(context))
            context += fake.token_text(tid)
    (scripted,) = fake.generate(["Rate:"], params)[0][:1]
    assert scripted.token_ids == (fake.tokenize("Yes")[0], fake.eos_token_id)
    assert scripted.entropies == (fake.token_stats("Rate:")[0], fake.token_stats("Rate:Yes")[0])
    (off,) = fake.generate(["Rate:", "x"], SamplingParams(max_new_tokens=4))[1]
    assert off.entropies is None and off.varentropies is None


# ------------------------------------------------------------------------------ HF


def _reference(policy, prompt: str, gen: Generation) -> tuple[list[float], list[float]]:
    """Entropy and varentropy at each generated position from one unpadded forward pass."""
    torch = pytest.importorskip("torch")
    prompt_ids = policy.encode_prompt(prompt)
    ids = prompt_ids + list(gen.token_ids)
    with torch.no_grad():
        logits = policy.model(torch.tensor([ids], device=policy.device)).logits[0]
    start = len(prompt_ids) - 1
    logp = torch.log_softmax(logits[start : start + len(gen.token_ids)].double(), -1)
    p = logp.exp()
    h = -(p * logp).sum(-1)
    v = (p * (logp + h[:, None]) ** 2).sum(-1)
    lp = logp.gather(-1, torch.tensor(gen.token_ids, device=logp.device)[:, None])[:, 0]
    assert lp.tolist() == pytest.approx(gen.logprobs, abs=1e-4)
    return h.tolist(), v.tolist()


def _check_against_reference(policy, prompts, out) -> None:
    n = 0
    for prompt, row in zip(prompts, out, strict=True):
        for g in row:
            assert g.entropies is not None and g.varentropies is not None
            assert len(g.entropies) == len(g.varentropies) == len(g.token_ids)
            h, v = _reference(policy, prompt, g)
            assert g.entropies == pytest.approx(h, abs=1e-4)
            assert g.varentropies == pytest.approx(v, abs=1e-4)
            n += len(g.token_ids)
    assert n > 0


@pytest.fixture(scope="module")
def tiny():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from models.tiny import tiny_llama, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    return tiny_llama(len(tokenizer)), tokenizer


def test_hf_stats_with_rows_dropped(tiny, monkeypatch) -> None:
    """Rows end at different steps (EOS and stop strings) and leave the batch and cache."""
    from models.tiny import spy_cache_shrinks
    from openberry.models import hf as hf_module

    model, tokenizer = tiny
    policy = hf_module.HFPolicy(model, tokenizer, share_prefixes=False)
    prompts = [f"Problem {i}: {'x' * i} + {i * 7} =" for i in range(10)]
    greedy = policy.generate(prompts, SamplingParams(max_new_tokens=20, temperature=0))
    # Tokens that many rows write early on: one becomes an extra EOS token, another (a single
    # character) a stop string, so rows end at different steps.
    common = Counter(t for (g,) in greedy for t in set(g.token_ids[:10])).most_common()
    eos_id = common[0][0]
    stop_char = next(
        c for c in (tokenizer.decode([t]) for t, _ in common[1:]) if len(c) == 1 and c.strip()
    )
    policy.eos_token_ids = {*policy.eos_token_ids, eos_id}
    shrinks = spy_cache_shrinks(monkeypatch)
    for params in (
        SamplingParams(max_new_tokens=20, temperature=0, stop=(stop_char,), token_stats=True),
        SamplingParams(n=2, max_new_tokens=20, seed=3, temperature=1.3, token_stats=True),
    ):
        shrinks.clear()
        out = policy.generate(prompts, params)
        assert any(k < len(prompts) * params.n for k in shrinks), "no row was dropped"
        finish = {g.finish_reason for row in out for g in row}
        assert "eos" in finish
        assert "stop" in finish or not params.stop
        _check_against_reference(policy, prompts, out)
        off = policy.generate(prompts, dataclasses.replace(params, token_stats=False))
        assert [[g.token_ids for g in r] for r in off] == [[g.token_ids for g in r] for r in out]
        assert all(g.entropies is None and g.varentropies is None for r in off for g in r)


def test_hf_stats_with_prefix_sharing_and_n(tiny) -> None:
    from openberry.models.hf import HFPolicy
    from openberry.models.hf.prefix import prefix_groups

    model, tokenizer = tiny
    policy = HFPolicy(model, tokenizer, min_shared_prefix=16)
    prefix = "Problem: find x such that 3*x + 5 = 20. Step 1: subtract 5 from both sides. "
    prompts = [prefix + "Step 2:", prefix + "So x", "unrelated", prefix + "Step 2: divide by 3"]
    assert (
        prefix_groups([policy.encode_prompt(p) for p in prompts], policy.min_shared_prefix)
        is not None
    )
    params = SamplingParams(n=3, max_new_tokens=16, seed=7, stop=("\n",), token_stats=True)
    out = policy.generate(prompts, params)
    _check_against_reference(policy, prompts, out)
    policy.batch_size = 3  # chunks of one prompt x 3 samples
    _check_against_reference(policy, prompts, policy.generate(prompts, params))


# ------------------------------------------------------------------------------ OpenAI client


def test_openai_stats_from_server_top_logprobs(tiny) -> None:
    pytest.importorskip("fastapi")
    from models.tiny import live_server
    from openberry.models.hf import HFPolicy
    from openberry.models.openai import OpenAIPolicy
    from openberry.serve.app import create_app

    model, tokenizer = tiny
    hf = HFPolicy(model, tokenizer, name="tiny")
    prompts = ["Q: 12+7=?\nA:", "x"]
    params = SamplingParams(n=2, max_new_tokens=8, temperature=0, token_stats=True)
    with live_server(create_app(hf, model_name="tiny")) as url:
        for chat in (False, True):
            remote = OpenAIPolicy(url, "tiny", chat=chat, stats_top_k=5, max_retries=0)
            out = remote.generate(prompts, params)
            remote.close()
            for prompt, row in zip(prompts, out, strict=True):
                full = f"user: {prompt}\nassistant:" if chat else prompt
                (direct,) = hf.generate([full], params)[0][:1]
                tops = hf.top_logprobs([full], [direct.token_ids], 5)[0]
                want = [entropy_varentropy(list(t.values())) for t in tops]
                for g in row:
                    assert len(g.entropies) == len(g.varentropies) == g.num_tokens
                    assert g.entropies == pytest.approx([h for h, _ in want], abs=1e-4)
                    assert g.varentropies == pytest.approx([v for _, v in want], abs=1e-4)
                    assert all(h <= math.log(5) + 1e-6 for h in g.entropies)


def _mock_policy(handler):
    httpx = pytest.importorskip("httpx")
    from openberry.models.openai import OpenAIPolicy

    return OpenAIPolicy("http://srv", "m", backoff=0.001, transport=httpx.MockTransport(handler))


def _answer(body: dict, tops: bool) -> dict:
    lp = {
        "tokens": ["a", "b"],
        "token_logprobs": [-0.5, -1.0],
        "top_logprobs": [{"a": -0.5, "c": -1.5}, {"b": -1.0, "d": -1.0}] if tops else None,
        "text_offset": [0, 1],
    }
    choice = {"index": 0, "text": "ab", "logprobs": lp, "finish_reason": "length"}
    return {"choices": [choice], "usage": {"prompt_tokens": 1}}


def test_openai_mock_top_k_request_and_renormalisation() -> None:
    httpx = pytest.importorskip("httpx")
    bodies = []

    def handler(request):
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=_answer(bodies[-1], tops=True))

    policy = _mock_policy(handler)
    (g,) = policy.generate(["p"], SamplingParams(max_new_tokens=2, token_stats=True))[0]
    assert bodies[-1]["logprobs"] == 20
    assert g.entropies[1] == pytest.approx(math.log(2))  # two equal top entries
    assert g.varentropies[1] == pytest.approx(0.0, abs=1e-12)
    assert (g.entropies[0], g.varentropies[0]) == entropy_varentropy([-0.5, -1.5])
    (plain,) = policy.generate(["p"], SamplingParams(max_new_tokens=2))[0]
    assert bodies[-1]["logprobs"] == 1
    assert plain.entropies is None


def test_openai_without_top_logprobs_warns_once(caplog) -> None:
    httpx = pytest.importorskip("httpx")

    def handler(request):
        return httpx.Response(200, json=_answer(json.loads(request.content), tops=False))

    policy = _mock_policy(handler)
    params = SamplingParams(max_new_tokens=2, token_stats=True)
    with caplog.at_level(logging.WARNING):
        out = policy.generate(["p", "q", "r"], params) + policy.generate(["s"], params)
    assert all(g.entropies is None and g.varentropies is None for row in out for g in row)
    assert all(g.logprobs == (-0.5, -1.0) for row in out for g in row)
    assert sum("token_stats" in r.message for r in caplog.records) == 1


def test_openai_server_refusing_top_logprobs_falls_back(caplog) -> None:
    httpx = pytest.importorskip("httpx")
    bodies = []

    def handler(request):
        body = json.loads(request.content)
        bodies.append(body)
        if body["logprobs"] > 5:
            return httpx.Response(400, json={"error": {"message": "logprobs must be <= 5"}})
        return httpx.Response(200, json=_answer(body, tops=False))

    policy = _mock_policy(handler)
    params = SamplingParams(max_new_tokens=2, token_stats=True)
    with caplog.at_level(logging.WARNING):
        (g,) = policy.generate(["p"], params)[0]
        (h,) = policy.generate(["q"], params)[0]
    assert g.text == "ab" and g.entropies is None and h.entropies is None
    assert [b["logprobs"] for b in bodies] == [20, 1, 1]  # refused once, then not asked again
    assert sum("token_stats" in r.message for r in caplog.records) == 1

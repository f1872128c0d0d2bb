"""`openberry.models.cpu_attention`: the CPU decode-step attention equals SDPA (padding masks,
grouped-query heads), hands other shapes to SDPA, and `HFPolicy` decodes the same with it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from models.tiny import tiny_llama, tiny_tokenizer
from openberry.models import SamplingParams

torch = pytest.importorskip("torch")
cpu_attention = pytest.importorskip("openberry.models.cpu_attention")


def _qkv(b: int, hq: int, hkv: int, q: int, length: int, seed: int) -> tuple:
    g = torch.Generator().manual_seed(seed)
    query = torch.randn(b, hq, q, 8, generator=g)
    key = torch.randn(b, hkv, length, 8, generator=g)
    value = torch.randn(b, hkv, length, 8, generator=g)
    return query, key, value


def _reference(query, key, value, mask, scaling):
    """SDPA over keys repeated to the query heads (transformers' repeat_kv), as [B, q, H, D]."""
    group = query.shape[1] // key.shape[1]
    key = key.repeat_interleave(group, dim=1)
    value = value.repeat_interleave(group, dim=1)
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=mask, scale=scaling
    )
    return out.transpose(1, 2)


@pytest.mark.parametrize("hq,hkv", [(4, 4), (4, 2), (6, 1)])
@pytest.mark.parametrize("kind", ["bool", "float", "none"])
def test_decode_attention_equals_sdpa(hq: int, hkv: int, kind: str) -> None:
    """One query position per row, left padding of a different width per row."""
    query, key, value = _qkv(5, hq, hkv, 1, 23, seed=hq * 10 + hkv)
    keep = torch.ones(5, 1, 1, 23, dtype=torch.bool)
    for row, pad in enumerate([0, 3, 7, 22, 11]):
        keep[row, ..., :pad] = False
    mask = {
        "bool": keep,
        "float": torch.zeros(keep.shape).masked_fill(~keep, float("-inf")),
        "none": None,
    }[kind]
    module = SimpleNamespace(num_key_value_groups=hq // hkv)
    out, weights = cpu_attention.decode_attention(module, query, key, value, mask, scaling=0.3)
    assert weights is None and out.shape == (5, 1, hq, 8)
    torch.testing.assert_close(out, _reference(query, key, value, mask, 0.3), atol=1e-5, rtol=1e-5)


def test_decode_attention_default_scale_and_strided_keys() -> None:
    """No scaling given: 1/sqrt(D); keys read as a view of a larger buffer (the growing cache)."""
    query, key, value = _qkv(3, 2, 2, 1, 40, seed=1)
    k, v = key[..., :17, :], value[..., :17, :]
    module = SimpleNamespace(num_key_value_groups=1)
    out, _ = cpu_attention.decode_attention(module, query, k, v, None)
    torch.testing.assert_close(out, _reference(query, k, v, None, 8**-0.5), atol=1e-5, rtol=1e-5)


def test_prefill_goes_to_transformers_sdpa(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several query positions: transformers' own SDPA function answers, untouched."""
    calls = []
    real = cpu_attention.sdpa_attention_forward

    def spy(*args, **kwargs):
        calls.append(args[1].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(cpu_attention, "sdpa_attention_forward", spy)
    query, key, value = _qkv(2, 2, 2, 6, 6, seed=2)
    module = SimpleNamespace(num_key_value_groups=1, is_causal=True)
    out, _ = cpu_attention.decode_attention(module, query, key, value, None, scaling=0.5)
    assert calls == [query.shape]
    want = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, is_causal=True, scale=0.5
    ).transpose(1, 2)
    torch.testing.assert_close(out, want)


def _policy(decode_attention: bool, kv_heads: int = 2):
    from openberry.models.hf import HFPolicy

    tokenizer = tiny_tokenizer()
    model = tiny_llama(len(tokenizer))
    if kv_heads != model.config.num_key_value_heads:
        from transformers import LlamaForCausalLM

        config = model.config
        config.num_attention_heads, config.num_key_value_heads = 4, kv_heads
        torch.manual_seed(0)
        model = LlamaForCausalLM(config).eval()
    return HFPolicy(model, tokenizer, prefix_cache_mb=0, cpu_decode_attention=decode_attention)


@pytest.mark.parametrize("kv_heads", [2, 1])
def test_hf_policy_decodes_the_same_with_it(kv_heads: int) -> None:
    """Greedy tokens and their log-probs over padded prompts of different lengths, sampled
    tokens from a seed: equal with and without the CPU decode attention."""
    ours, theirs = _policy(True, kv_heads), _policy(False, kv_heads)
    assert ours.model.config._attn_implementation == cpu_attention.IMPLEMENTATION
    assert theirs.model.config._attn_implementation == "sdpa"
    prompts = ["Q: 2+3=", "Question: what is seven times six? Answer:", "x"]
    for params in (
        SamplingParams(max_new_tokens=24, temperature=0.0),
        SamplingParams(n=3, max_new_tokens=16, temperature=1.0, seed=5),
    ):
        a, b = ours.generate(prompts, params), theirs.generate(prompts, params)
        for row_a, row_b in zip(a, b, strict=True):
            for ga, gb in zip(row_a, row_b, strict=True):
                assert ga.token_ids == gb.token_ids
                assert ga.logprobs == pytest.approx(gb.logprobs, abs=1e-4)


def test_only_sdpa_models_on_a_cpu_are_switched() -> None:
    tokenizer = tiny_tokenizer()
    model = tiny_llama(len(tokenizer))
    model.set_attn_implementation("eager")
    assert not cpu_attention.use_decode_attention(model)
    assert model.config._attn_implementation == "eager"
    model.set_attn_implementation("sdpa")
    assert cpu_attention.use_decode_attention(model)
    assert model.config._attn_implementation == cpu_attention.IMPLEMENTATION

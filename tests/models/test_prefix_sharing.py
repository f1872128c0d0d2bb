"""`HFPolicy` prefix sharing: results with shared prefixes equal those without (tiny Llama)."""

from __future__ import annotations

import pytest

from models.tiny import tiny_llama, tiny_tokenizer
from openberry.models import SamplingParams
from openberry.models.hf.prefix import PrefixCache, prefix_groups, token_passes

PREFIX = "Problem: find x such that 3*x + 5 = 20. Step 1: subtract 5 from both sides. "
SIBLINGS = [
    PREFIX + "<step>",
    PREFIX + "Step 2:",
    PREFIX + "So x",
    "unrelated short prompt",
    PREFIX + "Step 2: divide by 3",
    PREFIX[:40] + "different tail entirely here",
    "x",
]


@pytest.fixture(scope="module")
def policies():
    pytest.importorskip("torch")
    from openberry.models.hf import HFPolicy

    tokenizer = tiny_tokenizer()
    model = tiny_llama(len(tokenizer))
    shared = HFPolicy(model, tokenizer, name="tiny", min_shared_prefix=16)
    plain = HFPolicy(model, tokenizer, name="tiny", share_prefixes=False, prefix_cache_mb=0)
    return shared, plain


def _assert_same(a, b) -> None:
    for row_a, row_b in zip(a, b, strict=True):
        for ga, gb in zip(row_a, row_b, strict=True):
            assert ga.token_ids == gb.token_ids
            assert ga.text == gb.text
            assert ga.finish_reason == gb.finish_reason
            assert ga.prompt_tokens == gb.prompt_tokens
            assert ga.logprobs == pytest.approx(gb.logprobs, abs=1e-4)


@pytest.mark.parametrize("n", [1, 3])
def test_greedy_equal_with_and_without_sharing(policies, n) -> None:
    shared, plain = policies
    assert (
        prefix_groups([shared.encode_prompt(p) for p in SIBLINGS], shared.min_shared_prefix)
        is not None
    )
    params = SamplingParams(n=n, temperature=0, max_new_tokens=20)
    _assert_same(shared.generate(SIBLINGS, params), plain.generate(SIBLINGS, params))


def test_identical_prompts_and_chunks(policies) -> None:
    shared, plain = policies
    prompts = [PREFIX] * 4 + [PREFIX + "A", PREFIX + "B"]
    params = SamplingParams(temperature=0, max_new_tokens=10)
    _assert_same(shared.generate(prompts, params), plain.generate(prompts, params))
    shared.batch_size = 2
    try:
        _assert_same(shared.generate(prompts, params), plain.generate(prompts, params))
    finally:
        shared.batch_size = None


def test_sampled_with_seed_is_reproducible(policies) -> None:
    shared, _ = policies
    params = SamplingParams(n=2, max_new_tokens=12, seed=5)
    a = shared.generate(SIBLINGS, params)
    b = shared.generate(SIBLINGS, params)
    assert [[g.token_ids for g in r] for r in a] == [[g.token_ids for g in r] for r in b]


def test_groups(policies) -> None:
    shared, _ = policies
    rows = [[1] * 40 + [2], [5, 6], [1] * 40 + [3, 4], [7] * 20, [1] * 50]
    groups = prefix_groups(rows, shared.min_shared_prefix)
    assert groups is not None
    by_members = {tuple(sorted(m)): length for length, m in groups}
    assert by_members[(0, 2, 4)] == 40
    assert prefix_groups([[1, 2, 3], [4, 5]], shared.min_shared_prefix) is None


def test_next_token_probs_equal_with_and_without_sharing(policies, monkeypatch) -> None:
    """`next_token_probs` runs a shared prefix once too (judge prompts that show the same first
    solution, value prompts of siblings): the probabilities equal the unshared ones."""
    shared, plain = policies
    cands = [shared.tokenizer.decode([i]) for i in (5, 6, 7)]
    cands = [c for c in cands if len(shared.tokenizer.encode(c, add_special_tokens=False)) == 1]
    assert cands
    calls = []
    real = PrefixCache._store_shared_prefixes
    shared.reset_prefix_cache()
    monkeypatch.setattr(
        PrefixCache,
        "_store_shared_prefixes",
        lambda self, *a: calls.append(1) or real(self, *a),
    )
    got = shared.next_token_probs(SIBLINGS, cands)
    want = plain.next_token_probs(SIBLINGS, cands)
    assert calls, "the shared prefix path was not taken"
    for g, w in zip(got, want, strict=True):
        assert g.keys() == w.keys()
        for c in cands:
            assert g[c] == pytest.approx(w[c], abs=1e-5)


def test_token_passes_stay_within_the_budget() -> None:
    lengths = [5, 40, 10, 10, 30, 100]
    passes = token_passes(lengths, 60)
    assert sorted(i for p in passes for i in p) == list(range(len(lengths)))
    assert passes == [[0, 2, 3], [4], [1], [5]]  # 3 x 10, 1 x 30 (2 x 40 > 60), 1 x 40, 1 x 100
    assert all(len(p) == 1 or len(p) * max(lengths[i] for i in p) <= 60 for p in passes)
    assert token_passes([], 10) == []


def test_prefixes_stored_ahead_in_small_passes_give_the_same_probs(policies, monkeypatch) -> None:
    """A call with many shared prefixes (thousands of step-value prompts) stores them in passes
    of at most PASS_TOKENS padded tokens, not in one pass that holds them all at once: the
    probabilities do not change."""
    import openberry.models.hf.prefix as prefix_module

    shared, plain = policies
    cands = [shared.tokenizer.decode([i]) for i in (5, 6, 7)]
    cands = [c for c in cands if len(shared.tokenizer.encode(c, add_special_tokens=False)) == 1]
    passes = []
    real = PrefixCache._prefill_stored
    monkeypatch.setattr(prefix_module, "PASS_TOKENS", 40)
    monkeypatch.setattr(
        PrefixCache,
        "_prefill_stored",
        lambda self, rows, *a: passes.append(rows) or real(self, rows, *a),
    )
    shared.reset_prefix_cache()
    prompts = [f"case {k}: {PREFIX}" + "more words " * k + end for k in range(6) for end in "ab"]
    got = shared.next_token_probs(prompts, cands)
    ahead = passes[:-1]  # the last pass is the call's own rows
    want = plain.next_token_probs(prompts, cands)
    assert len(ahead) >= 2 and all(len(p) == 1 or len(p) * max(map(len, p)) <= 40 for p in ahead)
    for g, w in zip(got, want, strict=True):
        for c in cands:
            assert g[c] == pytest.approx(w[c], abs=1e-5)

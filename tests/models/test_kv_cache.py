"""`openberry.models.kv_cache`: the in-place growing cache layer, the cross-call prefix store,
and `HFPolicy` results with the store equal to those without it (tiny Llama)."""

from __future__ import annotations

import pytest

from models.tiny import tiny_llama, tiny_tokenizer
from openberry.models import SamplingParams

torch = pytest.importorskip("torch")
kv_cache = pytest.importorskip("openberry.models.kv_cache")

PATH = "Problem: find x such that 3*x + 5 = 20.\nStep 1: subtract 5 from both sides, 3*x = 15.\n"


# ------------------------------------------------------------------------ GrowingLayer


def _pair(b: int, t: int, seed: int) -> tuple:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 2, t, 4, generator=g), torch.randn(b, 2, t, 4, generator=g)


def test_growing_layer_equals_dynamic_layer() -> None:
    """Prefill, decode past the capacity (so it grows), drop rows, reorder, repeat and crop:
    the growing layer's keys and values equal transformers' DynamicLayer's at every step."""
    from transformers.cache_utils import DynamicLayer

    grow, dyn = kv_cache.GrowingLayer(), DynamicLayer()
    for step, t in enumerate([50, 1, 1, 20, 1]):
        k, v = _pair(6, t, step)
        a, b = grow.update(k, v), dyn.update(k, v)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert grow.capacity >= 73 and grow.get_seq_length() == dyn.get_seq_length() == 73
    for index in ([0, 2, 3, 5], [3, 0, 1]):  # finished rows dropped, then any order
        grow.reorder_cache(torch.tensor(index))
        dyn.reorder_cache(torch.tensor(index))
        assert torch.equal(grow.keys, dyn.keys) and torch.equal(grow.values, dyn.values)
    grow.batch_repeat_interleave(2)
    dyn.batch_repeat_interleave(2)
    k, v = _pair(6, 1, 9)
    a, b = grow.update(k, v), dyn.update(k, v)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    grow.crop(-4)
    dyn.crop(-4)
    assert torch.equal(grow.keys, dyn.keys) and grow.get_seq_length() == 70


def test_growing_layer_adopts_a_filled_buffer() -> None:
    keys, values = torch.zeros(2, 2, 10, 4), torch.ones(2, 2, 10, 4)
    layer = kv_cache.GrowingLayer.adopt(keys, values, 3)
    assert layer.get_seq_length() == 3 and layer.capacity == 10
    k, v = _pair(2, 2, 0)
    out_k, _ = layer.update(k, v)
    assert out_k.shape[-2] == 5 and torch.equal(keys[..., 3:5, :], k)  # written in place


def _arena_cache(rows: int = 5, length: int = 7, capacity: int = 12, layers: int = 3):
    """A cache laid out as `HFPolicy` lays it: one buffer [layers, 2, B, H, C, D]."""
    buf = torch.randn(layers, 2, rows, 2, capacity, 4, generator=torch.Generator().manual_seed(0))
    cache = kv_cache.growing_cache(
        [kv_cache.GrowingLayer.adopt(buf[i, 0], buf[i, 1], length) for i in range(layers)]
    )
    return buf, cache


def test_arena_is_a_view_of_every_layer_while_they_share_one_buffer() -> None:
    buf, cache = _arena_cache()
    whole = kv_cache.arena(cache)
    assert whole is not None and whole.shape == (3, 2, 5, 2, 7, 4)
    assert torch.equal(whole, buf[..., :7, :])
    whole[1, 0, 2, 0, 3, 0] = 42.0  # a view, not a copy
    assert cache.layers[1].keys[2, 0, 3, 0] == 42.0
    cache.layers[2].update(*_pair(5, 6, 1))  # past the capacity: this layer grows on its own
    assert kv_cache.arena(cache) is None


def test_select_and_repeat_rows_equal_the_per_layer_operations() -> None:
    """Compacting and repeating rows through the shared buffer give what each layer's own
    batch_select_indices / batch_repeat_interleave give, and keep the layers in one buffer."""
    _, cache = _arena_cache()
    _, ref = _arena_cache()
    kv_cache.select_rows(cache, [0, 2, 4])
    ref.reorder_cache(torch.tensor([0, 2, 4]))
    kv_cache.repeat_rows(cache, 2)
    ref.batch_repeat_interleave(2)
    assert kv_cache.arena(cache) is not None
    for a, b in zip(cache.layers, ref.layers, strict=True):
        assert torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values)
    k, v = _pair(6, 1, 3)
    for a, b in zip(cache.layers, ref.layers, strict=True):
        out_a, out_b = a.update(k, v), b.update(k, v)
        assert torch.equal(out_a[0], out_b[0]) and torch.equal(out_a[1], out_b[1])
    kv_cache.select_rows(cache, [3, 1])  # not increasing: the per-layer gather
    ref.reorder_cache(torch.tensor([3, 1]))
    for a, b in zip(cache.layers, ref.layers, strict=True):
        assert torch.equal(a.keys, b.keys)


def test_supports_growing_cache() -> None:
    from transformers import MistralConfig, MistralForCausalLM

    tokenizer = tiny_tokenizer()
    assert kv_cache.supports_growing_cache(tiny_llama(len(tokenizer)))
    config = MistralConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        sliding_window=8,
    )
    assert not kv_cache.supports_growing_cache(MistralForCausalLM(config))


# ------------------------------------------------------------------------ PrefixStore


def _kv(n: int, fill: float = 0.0) -> torch.Tensor:
    """kv [layers=1, 2, H=1, n, D=2] whose position i holds i + fill."""
    pos = torch.arange(n, dtype=torch.float32) + fill
    return pos[None, None, None, :, None].expand(1, 2, 1, n, 2).clone()


def _joined(pieces: list) -> torch.Tensor:
    return torch.cat(pieces, dim=-2)


def test_lookup_finds_the_longest_prefix() -> None:
    store = kv_cache.PrefixStore(None)
    tokens = list(range(10))
    store.add(tokens, _kv(10))
    pieces, n = store.lookup([*range(7), 99, 98], limit=9)
    assert n == 7 and torch.equal(_joined(pieces), _kv(7))
    assert store.lookup(tokens, limit=9)[1] == 9  # the limit caps the match
    assert store.lookup([5, *tokens], limit=11) == ([], 0)
    assert store.lookup([0, 1, 2], limit=3)[1] == 3
    assert store.hit_tokens == 19 and store.lookups == 4


def test_an_extension_stores_only_its_new_tokens() -> None:
    store = kv_cache.PrefixStore(None)
    store.add(list(range(8)), _kv(8))
    store.add(list(range(12)), _kv(12))  # extends a leaf: one longer segment
    assert len(store) == 1 and store.nbytes == _kv(12).numel() * 4
    store.add(list(range(6)), _kv(6))  # already inside the stored sequence: nothing stored
    assert len(store) == 1
    store.add([*range(8), 50, 51], _kv(10, fill=0.5))  # a sibling: the segment is split
    assert len(store) == 3 and store.nbytes == (_kv(12).numel() + _kv(2).numel()) * 4
    pieces, n = store.lookup([*range(8), 50, 51, 52], limit=11)
    assert n == 10 and [p.shape[-2] for p in pieces] == [8, 2]
    assert torch.equal(_joined(pieces), torch.cat([_kv(8), _kv(10, fill=0.5)[..., 8:, :]], -2))
    pieces, n = store.lookup(list(range(12)), limit=12)
    assert n == 12 and torch.equal(_joined(pieces), _kv(12))


def test_add_copies_only_what_is_new() -> None:
    """With ``kv(start)``, the store asks only for the positions past what it holds."""
    store = kv_cache.PrefixStore(None)
    store.add(list(range(8)), _kv(8))
    asked: list[int] = []
    store.add(list(range(11)), lambda start: asked.append(start) or _kv(11)[..., start:, :])
    assert asked == [8]
    assert torch.equal(_joined(store.lookup(list(range(11)), 11)[0]), _kv(11))
    store.add(list(range(5)), lambda start: pytest.fail("nothing is new"))


def test_least_recently_used_segments_leave_first() -> None:
    one = _kv(8).numel() * 4
    store = kv_cache.PrefixStore(2 * one)
    a, b, c = ([k] * 8 for k in (1, 2, 3))
    store.add(a, _kv(8))
    store.add(b, _kv(8))
    store.lookup(a, 8)  # a is now more recent than b
    store.add(c, _kv(8))
    assert store.matched(a, 8) == 8 and store.matched(c, 8) == 8 and store.matched(b, 8) == 0
    assert store.nbytes == 2 * one
    store.add([4] * 40, _kv(40))  # larger than the whole budget: not stored, nothing evicted
    assert len(store) == 2
    store.clear()
    assert len(store) == 0 and store.nbytes == 0 and store.hit_tokens == 0


def test_a_shared_prefix_outlives_its_evicted_branches() -> None:
    """Eviction takes leaves, least recently used first: a prefix that a newer branch runs
    through stays while an older branch goes."""
    seg = _kv(4).numel() * 4
    store = kv_cache.PrefixStore(4 * seg)
    trunk = [7] * 8
    store.add([*trunk, 1, 1, 1, 1], _kv(12))
    store.add([*trunk, 2, 2, 2, 2], _kv(12, fill=0.25))  # split: trunk (2 seg) + two leaves
    assert len(store) == 3 and store.nbytes == 4 * seg
    store.lookup([*trunk, 1, 1, 1, 1], 12)  # branch 1 used last
    store.add([*trunk, 3, 3, 3, 3], _kv(12, fill=0.5))  # over budget: branch 2 leaves
    assert store.matched([*trunk, 2, 2, 2, 2], 12) == 8
    assert store.matched([*trunk, 1, 1, 1, 1], 12) == 12
    assert store.matched([*trunk, 3, 3, 3, 3], 12) == 12
    assert store.nbytes == 4 * seg


def test_add_checks_the_shapes() -> None:
    with pytest.raises(ValueError, match="positions"):
        kv_cache.PrefixStore(None).add(list(range(20)), _kv(19))
    store = kv_cache.PrefixStore(None)
    store.add(list(range(4)), _kv(4))
    with pytest.raises(ValueError, match="new tokens"):
        store.add(list(range(8)), lambda start: _kv(8))


# ------------------------------------------------------------------------ HFPolicy with the store


@pytest.fixture(scope="module")
def pair():
    from openberry.models.hf import HFPolicy

    tokenizer = tiny_tokenizer()
    model = tiny_llama(len(tokenizer))
    stored = HFPolicy(model, tokenizer, name="tiny", min_shared_prefix=8)
    plain = HFPolicy(model, tokenizer, name="tiny", share_prefixes=False, prefix_cache_mb=0)
    assert stored.prefix_store is not None and plain.prefix_store is None
    return stored, plain


def _same(a, b) -> None:
    for row_a, row_b in zip(a, b, strict=True):
        for ga, gb in zip(row_a, row_b, strict=True):
            assert (ga.token_ids, ga.text, ga.finish_reason) == (
                gb.token_ids,
                gb.text,
                gb.finish_reason,
            )
            assert ga.prompt_tokens == gb.prompt_tokens
            assert ga.logprobs == pytest.approx(gb.logprobs, abs=1e-4)


def test_later_calls_reuse_earlier_prompts_and_match_the_plain_path(pair) -> None:
    """A tree-search pattern: read a path, then extend it in later calls (children of a node,
    a value prompt of a new thought, a new prompt mixed with known ones). Greedy outputs and
    rating probabilities equal the policy without any prefix re-use."""
    stored, plain = pair
    stored.reset_prefix_cache()
    params = SamplingParams(temperature=0, max_new_tokens=12, stop=("\n",))
    first = [PATH + "Step 2:", "What is 2 + 2?\n"]
    _same(stored.generate(first, params), plain.generate(first, params))
    assert stored.prefix_store.hit_tokens == 0
    children = [PATH + "Step 2: divide", PATH + "Step 2: so x", "unrelated new prompt, long enough"]
    _same(stored.generate(children, params), plain.generate(children, params))
    assert stored.prefix_store.hit_tokens >= 2 * len(stored.encode_prompt(PATH))
    values = [p + " x = 5.<" for p in children]
    got = stored.next_token_probs(values, ["<positive_rating>", "<negative_rating>"])
    want = plain.next_token_probs(values, ["<positive_rating>", "<negative_rating>"])
    for g, w in zip(got, want, strict=True):
        assert g == pytest.approx(w, abs=1e-5)
    sampled = SamplingParams(n=3, max_new_tokens=8, seed=3, temperature=0)
    _same(stored.generate(children, sampled), plain.generate(children, sampled))


@pytest.mark.parametrize("reserve", [128, 2])
def test_generated_tokens_are_stored_and_reused(pair, monkeypatch, reserve: int) -> None:
    """After `generate`, a prompt that continues a generation (a value prompt of a new thought)
    finds the generated tokens in the store, and its probabilities equal the plain path's.
    With a tiny reserve the layers outgrow their shared buffer and are gathered per layer."""
    from openberry.models.hf import decode

    monkeypatch.setattr(decode, "RESERVE_TOKENS", reserve)
    stored, plain = pair
    stored.reset_prefix_cache()
    prompts = [PATH + "Step 2:", PATH + "Step 2: so", "What is 2 + 2?\n"]
    params = SamplingParams(temperature=0, max_new_tokens=10)
    out = stored.generate(prompts, params)
    _same(out, plain.generate(prompts, params))
    for prompt, (g,) in zip(prompts, out, strict=True):
        ids = stored.encode_prompt(prompt + g.text + " then")
        # The prompt and every generated token but the last (never fed back) are stored.
        assert stored.prefix_store.matched(ids, len(ids)) >= len(stored.encode_prompt(prompt)) + (
            len(g.token_ids) - 1
        )
    follow = [p + g.text + " then" for p, ((g,)) in zip(prompts, out, strict=True)]
    cands = ["<positive_rating>", "<negative_rating>"]
    for a, b in zip(
        stored.next_token_probs(follow, cands), plain.next_token_probs(follow, cands), strict=True
    ):
        assert a == pytest.approx(b, abs=1e-5)


def test_reset_prefix_cache_empties_the_store(pair) -> None:
    stored, _ = pair
    stored.generate([PATH], SamplingParams(temperature=0, max_new_tokens=2))
    assert len(stored.prefix_store) > 0
    stored.reset_prefix_cache()
    assert len(stored.prefix_store) == 0


def test_models_without_full_attention_keep_transformers_cache(monkeypatch) -> None:
    """A sliding-window model gets no growing cache and no store, and still generates."""
    from openberry.models import hf as hf_module

    tokenizer = tiny_tokenizer()
    model = tiny_llama(len(tokenizer))
    monkeypatch.setattr(kv_cache, "supports_growing_cache", lambda model: False)
    policy = hf_module.HFPolicy(model, tokenizer, name="tiny")
    assert policy.prefix_store is None and policy.prefix_cache.kv is None
    plain = hf_module.HFPolicy(model, tokenizer, share_prefixes=False, prefix_cache_mb=0)
    params = SamplingParams(n=2, temperature=0, max_new_tokens=6)
    _same(policy.generate([PATH, PATH + "A"], params), plain.generate([PATH, PATH + "A"], params))


def test_negative_budget_is_refused() -> None:
    from openberry.models.base import ModelError
    from openberry.models.hf import HFPolicy

    tokenizer = tiny_tokenizer()
    with pytest.raises(ModelError, match="prefix_cache_mb"):
        HFPolicy(tiny_llama(len(tokenizer)), tokenizer, prefix_cache_mb=-1)


def test_stop_prefilter_keeps_multi_token_stops(pair, monkeypatch) -> None:
    """Regression for the stop-string pre-check (`_may_stop`): a stop spread over several
    tokens, or ending in whitespace, still stops exactly where the full check stops."""
    from openberry.models.hf.decode import Decoder

    stored, _ = pair
    prompts = [PATH + "Step 2:", "abc", PATH]
    for stop in (("p ",), ("de", "x"), ("2:",), (" ",)):
        params = SamplingParams(temperature=0, max_new_tokens=16, stop=stop)
        fast = stored.generate(prompts, params)
        with monkeypatch.context() as m:
            m.setattr(Decoder, "_may_stop", lambda self, token, stops: True)
            full = stored.generate(prompts, params)
        _same(fast, full)


def test_a_stop_can_end_in_a_token_only_where_the_token_ends_it() -> None:
    from openberry.models.hf.decode import _may_end_in

    stop = "<end_of_thought>"
    assert not _may_end_in("<expansion>", stop)  # holds '>' but cannot end the stop
    assert _may_end_in("thought>", stop) and _may_end_in(">", stop) and _may_end_in(stop, stop)
    assert _may_end_in("x<end_of_thought>y", stop)
    assert not _may_end_in("thought", stop) and not _may_end_in("ab", "b c")
    assert _may_end_in("b", "a b") and _may_end_in("c ab", "ab")


def test_encodings_are_remembered_per_template_setting(pair) -> None:
    stored, _ = pair
    ids = stored.encode_prompt("hello")
    ids.append(999)  # callers get a copy
    assert stored.encode_prompt("hello") == list(stored.tokenizer.encode("hello"))


def test_tune_cpu_malloc_is_idempotent() -> None:
    from openberry.models.hf import tune_cpu_malloc

    first = tune_cpu_malloc()
    assert tune_cpu_malloc() is first


def test_a_long_unknown_rest_is_read_in_its_own_pass(pair, monkeypatch) -> None:
    """One new long prompt among rows that extend a stored path is read first, alone, so the
    other rows are not padded to its length; results are unchanged."""
    from openberry.models.hf.prefix import PrefixCache

    stored, plain = pair
    stored.reset_prefix_cache()
    stored.generate([PATH], SamplingParams(temperature=0, max_new_tokens=1))
    rows = [PATH + c for c in "abcdefghijkl"] + ["a new prompt " * 6]
    passes: list[int] = []
    real = PrefixCache._prefill_stored
    monkeypatch.setattr(
        PrefixCache,
        "_prefill_stored",
        lambda self, r, *a: passes.append(len(r)) or real(self, r, *a),
    )
    cands = ["<positive_rating>", "<negative_rating>"]
    got = stored.next_token_probs(rows, cands)
    assert passes == [1, len(rows)]
    for g, w in zip(got, plain.next_token_probs(rows, cands), strict=True):
        assert g == pytest.approx(w, abs=1e-5)


def test_encode_prompts_equals_one_at_a_time(pair) -> None:
    """Batch encoding (new prompts in one tokenizer call, repeats from memory) gives the ids
    the tokenizer gives each prompt alone, in order, duplicates included."""
    stored, _ = pair
    prompts = ["a b", PATH, "a b", "", "zz " * 40]
    want = [list(stored.tokenizer.encode(p)) for p in prompts]
    assert stored.encode_prompts(prompts) == want
    assert stored.encode_prompts(list(reversed(prompts))) == list(reversed(want))
    assert stored.count_tokens(prompts) == [len(w) for w in want]


def test_layers_with_different_key_shapes_fall_back_to_whole_prompts(monkeypatch) -> None:
    """One buffer holds every layer's keys, so a model whose layers differ (heads, head dim,
    dtype) reads prompts whole, without a store, instead of failing."""
    from openberry.models import hf as hf_module
    from openberry.models.hf import prefix

    same = [torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 5, 4)]
    assert prefix._uniform_kv_layout(same) == (2, 2, 4, torch.float32)
    assert prefix._uniform_kv_layout([*same, torch.zeros(1, 1, 3, 4)]) is None
    assert prefix._uniform_kv_layout([*same, torch.zeros(1, 2, 3, 8)]) is None
    assert prefix._uniform_kv_layout([]) is None

    tokenizer = tiny_tokenizer()
    model = tiny_llama(len(tokenizer))
    monkeypatch.setattr(prefix, "_uniform_kv_layout", lambda keys: None)
    policy = hf_module.HFPolicy(model, tokenizer, name="tiny")
    plain = hf_module.HFPolicy(model, tokenizer, share_prefixes=False, prefix_cache_mb=0)
    params = SamplingParams(n=2, temperature=0, max_new_tokens=6)
    _same(policy.generate([PATH, PATH + "A"], params), plain.generate([PATH, PATH + "A"], params))
    assert policy.prefix_store is None and policy.prefix_cache.kv is None


def test_check_stop_shortcut_equals_the_general_rule(pair) -> None:
    """`_check_stop` cuts a one-token stop without the general search; both give what the rule
    says: the text up to the first stop, and the longest token prefix that decodes into it."""
    stored, _ = pair
    (g,) = stored.generate([PATH], SamplingParams(temperature=0, max_new_tokens=24))[0]
    ids = list(g.token_ids)
    texts = [stored.runtime.decode([t]) for t in ids]

    def rule(prefix: list[int], stops: tuple[str, ...]) -> tuple | None:
        text = stored.runtime.decode(prefix)
        hits = [i for i in (text.find(s) for s in stops) if i >= 0]
        if not hits:
            return None
        cut = text[: min(hits)]
        keep = len(prefix)
        while keep > 0 and not cut.startswith(stored.runtime.decode(prefix[:keep])):
            keep -= 1
        return cut, tuple(prefix[:keep])

    stop_sets = [(texts[5],), (texts[9], texts[3]), (texts[4] + texts[5], texts[5])]
    for stops in stop_sets:
        for end in range(1, len(ids) + 1):
            prefix = ids[:end]
            got = stored.decoder._check_stop([1, 2], prefix, [0.0] * end, stops, window=8)
            want = rule(prefix, stops)
            assert (None if got is None else (got.text, got.token_ids)) == want, (stops, end)
            if want is not None:  # where the decode loop stops
                break
        assert want is not None

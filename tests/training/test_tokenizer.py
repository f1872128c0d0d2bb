"""`train_tokenizer`: exact round trips, one token per digit and per special token, <unk>."""

from __future__ import annotations

import pytest

from openberry.data.arithmetic.corpus import corpus_rows
from openberry.errors import BerryError
from openberry.formats.openlongcot import SPECIAL_TOKENS
from openberry.training.tokenizer import BASE_SPECIAL_TOKENS, train_tokenizer

EXTRA = [
    "Compute 12 + 7.\n12 + 7 = 19\nThe answer is \\boxed{19}.",
    "Let $x = \\frac{1}{2}$, so  2x = 1.\n\n\tTabs, (parens) and [brackets]: 3.14; 100%!",
    "Trailing spaces   \nand a final newline\n",
]


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    rows = corpus_rows("openlongcot", limit=60, seed=1)
    return [r["text"] for r in rows] + EXTRA


@pytest.fixture(scope="module")
def tok(corpus):
    pytest.importorskip("tokenizers")
    return train_tokenizer(corpus, vocab_size=300, special_tokens=SPECIAL_TOKENS)


def test_round_trip_is_exact(tok, corpus) -> None:
    for text in corpus:
        ids = tok.encode(text, add_special_tokens=False)
        assert tok.decode(ids) == text
    assert len(tok.encode(corpus[0], add_special_tokens=False)) < len(corpus[0]) / 2  # merges


def test_every_digit_is_one_token(tok) -> None:
    ids = tok.encode("x = 1234567890 + 99", add_special_tokens=False)
    pieces = tok.convert_ids_to_tokens(ids)
    digits = [p for p in pieces if any(c.isdigit() for c in p)]
    assert digits == list("123456789099")
    for d in "0123456789":
        assert len(tok.encode(d, add_special_tokens=False)) == 1


def test_special_tokens_are_single_and_kept(tok) -> None:
    assert [tok.pad_token, tok.bos_token, tok.eos_token, tok.unk_token] == list(BASE_SPECIAL_TOKENS)
    assert [tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id] == [0, 1, 2, 3]
    for t in SPECIAL_TOKENS:
        ids = tok.encode(t, add_special_tokens=False)
        assert len(ids) == 1, t
        glued = tok.encode(f"a{t}b", add_special_tokens=False)
        assert ids[0] in glued
        # Content tags survive skip_special_tokens (they are not control tokens).
        assert tok.decode(glued, skip_special_tokens=True) == f"a{t}b"


def test_no_automatic_bos_or_eos(tok) -> None:
    assert tok.encode("Compute 1 + 2.") == tok.encode("Compute 1 + 2.", add_special_tokens=False)


def test_unknown_characters_map_to_unk(tok) -> None:
    ids = tok.encode("é€ 5", add_special_tokens=False)
    assert ids.count(tok.unk_token_id) == 2
    assert tok.decode(ids).endswith(" 5")


def test_vocab_size_and_save_load(tok, tmp_path) -> None:
    from transformers import AutoTokenizer

    assert len(tok) <= 300
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = EXTRA[0] + SPECIAL_TOKENS[0]
    assert loaded.encode(text) == tok.encode(text)
    assert loaded.decode(loaded.encode(text)) == text
    assert loaded.eos_token_id == tok.eos_token_id


def test_too_small_vocab_is_refused() -> None:
    with pytest.raises(BerryError, match="vocab"):
        train_tokenizer(["abc"], vocab_size=10, special_tokens=SPECIAL_TOKENS)

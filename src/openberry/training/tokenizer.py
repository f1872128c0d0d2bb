"""Train a small BPE tokenizer on a corpus, for models trained from scratch (``berry train sft
--from-scratch``).

Importing this module is light; ``tokenizers`` and ``transformers`` are imported when a tokenizer is
trained.

What is implemented: a character-level BPE (``tokenizers.models.BPE``, no byte-level alphabet)
trained with ``BpeTrainer`` on the given texts, wrapped in a `PreTrainedTokenizerFast`.

- Pre-tokenization splits every digit into its own piece (``Digits(individual_digits=True)``),
  then splits the rest GPT-2 style into letter runs (with their leading space), punctuation runs
  (with their leading space) and whitespace runs. Merges never cross a piece boundary, so a digit
  is always exactly one token and numbers are read digit by digit.
- Pieces keep every character, and the decoder only concatenates tokens (``decoders.Fuse``), so
  decoding round-trips the text exactly: ``tok.decode(tok.encode(t, add_special_tokens=False))
  == t`` for any text made of characters seen in training (spaces, newlines, LaTeX backslashes,
  ``\\boxed{..}``).
- Characters never seen in training map to ``<unk>`` (they do not round-trip, but do not crash).
- Special tokens ``<pad> <s> </s> <unk>`` are the first ids (0-3) and are set as the tokenizer's
  pad/bos/eos/unk. The extra `special_tokens` (e.g. the OpenLongCoT tags) are added as ordinary
  *added* tokens: each is one token and is never split, and ``decode(...,
  skip_special_tokens=True)`` keeps them, because they are content the model writes (ratings,
  meta actions), not control tokens. They are cut out of the texts before BPE training so that no
  merges are spent on them.

Where this departs from common practice: ``encode`` adds no BOS or EOS (there is no
post-processor); `openberry.training.sft` appends EOS itself after each document and completion.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from openberry.errors import BerryError

__all__ = ["BASE_SPECIAL_TOKENS", "PRETOKENIZE_PATTERN", "train_tokenizer"]

logger = logging.getLogger(__name__)

BASE_SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<s>", "</s>", "<unk>")
"""Pad, BOS, EOS and unknown tokens, in this order: ids 0, 1, 2, 3."""

PRETOKENIZE_PATTERN = r" ?\p{L}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
"""Pieces after the digits are split off: letter runs and punctuation runs (each with an optional
leading space) and whitespace runs; every character lands in exactly one piece."""


def train_tokenizer(
    texts: Iterable[str],
    *,
    vocab_size: int = 512,
    special_tokens: Sequence[str] = (),
    model_max_length: int = 2048,
) -> Any:
    """Train a BPE tokenizer on `texts` and return it as a `PreTrainedTokenizerFast`.

    Args:
        texts: the training corpus (read once).
        vocab_size: total vocabulary size, special and added tokens included; fewer tokens result
            when the corpus has too few distinct merges.
        special_tokens: extra tokens kept whole (e.g. `openberry.formats.openlongcot.SPECIAL_TOKENS`),
            added after the BPE vocabulary.
        model_max_length: the tokenizer's ``model_max_length``.

    Returns:
        The fast tokenizer, with pad/bos/eos/unk set and right padding.

    Raises:
        BerryError: `vocab_size` leaves no room for the BPE vocabulary.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    extra = [t for t in dict.fromkeys(special_tokens) if t not in BASE_SPECIAL_TOKENS]
    bpe_size = vocab_size - len(extra)
    if bpe_size <= len(BASE_SPECIAL_TOKENS):
        raise BerryError(
            f"vocab_size {vocab_size} is too small for {len(BASE_SPECIAL_TOKENS) + len(extra)} "
            "special tokens and a BPE vocabulary; raise --vocab-size"
        )
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.Split(Regex(PRETOKENIZE_PATTERN), behavior="isolated"),
        ]
    )
    tok.decoder = decoders.Fuse()
    trainer = trainers.BpeTrainer(
        vocab_size=bpe_size, special_tokens=list(BASE_SPECIAL_TOKENS), show_progress=False
    )
    tok.train_from_iterator(_without(texts, extra), trainer=trainer)
    if extra:
        tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in extra])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=model_max_length,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    logger.info("trained a BPE tokenizer: %d tokens (%d added)", len(fast), len(extra))
    return fast


def _without(texts: Iterable[str], tokens: Sequence[str]) -> Iterator[str]:
    """The texts with `tokens` cut out (each piece between them yielded on its own)."""
    if not tokens:
        yield from texts
        return
    pattern = re.compile("|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True)))
    for text in texts:
        yield from (piece for piece in pattern.split(text) if piece)

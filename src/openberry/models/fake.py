"""A deterministic, pure-Python fake `Policy` for tests and golden runs (no torch).

`FakePolicy` is a seeded character-level "language model": the next-token distribution is a fixed
function of (seed, last `context_chars` characters of the context), drawn from a hash. Because
generation, `score` and `next_token_probs` all read that one function, they agree with each other:
the logprobs that `generate` reports for a sample are exactly what `score` returns for the same
prompt and text, and `next_token_probs` equals ``exp`` of `score` for a one-token completion.

Tokens are characters (token id = code point) plus configurable multi-character special tokens
(``<positive_rating>``, ``Yes``...) that tokenise as one token (greedy longest match) and get ids
above the Unicode range. The model's vocabulary (what it samples) is `alphabet` + the special tokens
+ an end-of-sequence token; any other character gets the probability of a shared "unknown" entry
(so `score` works on any text, though the result is not a normalised distribution over all of
Unicode). The alphabet may not spell a special token character by character, so a sampled text
always tokenises back to the tokens that produced it.

Departures from a real backend, on purpose:

- Scripted outputs: ``script={"prompt suffix": ["out 1", "out 2"]}`` makes `generate` return those
  texts (sample j gets output ``j % len``) for prompts ending with the key (longest key wins), run
  through the same stop / max_new_tokens / EOS handling and scored by the fake model. `score` and
  `next_token_probs` ignore the script.
- Sampling uses one `random.Random` per (seed, prompt, sample index), so a sample does not depend
  on the rest of the batch; ``seed=None`` draws fresh entropy.
- With ``SamplingParams.token_stats``, entropies and varentropies are exact, of the model's full
  distribution at temperature 1 (vocabulary and the "unknown" bucket: the distribution the
  reported logprobs come from; the bucket is never sampled).
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import string
from collections.abc import Mapping, Sequence

from openberry.models.base import SamplingParams, entropy_varentropy, not_one_token
from openberry.records import FinishReason, Generation

__all__ = ["DEFAULT_ALPHABET", "DEFAULT_SPECIAL_TOKENS", "EOS_TOKEN", "FakePolicy"]

logger = logging.getLogger(__name__)

DEFAULT_ALPHABET = string.digits + string.ascii_lowercase + " +-*/=().,:\n"
"""Characters the fake samples: enough for arithmetic-looking steps."""
DEFAULT_SPECIAL_TOKENS = ("<positive_rating>", "<negative_rating>", "Yes", "No")
"""Multi-character strings that are single tokens by default."""
EOS_TOKEN = "</s>"
"""Text of the fake's end-of-sequence token (never appears in generated text)."""
_SPECIAL_BASE = 0x110000  # first id above the Unicode range
_CACHE_LIMIT = 200_000


class FakePolicy:
    """Deterministic character-level fake model implementing `openberry.models.base.Policy`.

    Args:
        seed: seed of the model itself (which distribution each context gets).
        context_chars: how many trailing context characters determine the next distribution.
        special_tokens: multi-character strings tokenised as single tokens.
        alphabet: single characters the model samples.
        sharpness: standard deviation of the hashed logits (higher = peakier distributions).
        eos_bias: added to the EOS logit (negative = longer generations).
        script: optional prompt-suffix -> output text(s) for `generate` (see module docstring).
        name: the policy name.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        context_chars: int = 4,
        special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS,
        alphabet: str = DEFAULT_ALPHABET,
        sharpness: float = 2.0,
        eos_bias: float = -2.0,
        script: Mapping[str, str | Sequence[str]] | None = None,
        name: str = "fake",
    ) -> None:
        if context_chars < 1:
            raise ValueError("context_chars must be >= 1")
        self.name = name
        self.seed = seed
        self.context_chars = context_chars
        self.sharpness = sharpness
        self.eos_bias = eos_bias
        self.alphabet = "".join(dict.fromkeys(alphabet))
        specials = list(dict.fromkeys(s for s in special_tokens if len(s) > 1))
        for tok in specials:
            if all(c in self.alphabet for c in tok):
                raise ValueError(
                    f"special token {tok!r} can be spelled from the alphabet; remove its "
                    "characters from the alphabet so sampled text tokenises unambiguously"
                )
        self.special_tokens: tuple[str, ...] = tuple(specials)
        self._special_ids = {tok: _SPECIAL_BASE + i for i, tok in enumerate(self.special_tokens)}
        self.eos_token_id = _SPECIAL_BASE + len(self.special_tokens)
        self._by_length = sorted(self.special_tokens, key=len, reverse=True)
        # Model vocabulary: alphabet chars, special tokens, EOS, and an "unknown" bucket.
        self._vocab: list[int] = [ord(c) for c in self.alphabet]
        self._vocab += [self._special_ids[t] for t in self.special_tokens]
        self._vocab.append(self.eos_token_id)
        self._index = {tid: i for i, tid in enumerate(self._vocab)}
        self._unk_index = len(self._vocab)
        self._cache: dict[str, list[float]] = {}
        self.script: dict[str, tuple[str, ...]] = {}
        for key, outs in (script or {}).items():
            outs_t = (outs,) if isinstance(outs, str) else tuple(outs)
            if not outs_t:
                raise ValueError(f"script entry {key!r} has no outputs")
            self.script[key] = outs_t

    # ----------------------------------------------------------------------------- tokenizer

    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text`: special tokens by greedy longest match, else one id per character."""
        ids: list[int] = []
        i = 0
        while i < len(text):
            for tok in self._by_length:
                if text.startswith(tok, i):
                    ids.append(self._special_ids[tok])
                    i += len(tok)
                    break
            else:
                ids.append(ord(text[i]))
                i += 1
        return ids

    def token_text(self, token_id: int) -> str:
        """Text of one token id (empty for EOS)."""
        if token_id == self.eos_token_id:
            return ""
        if token_id >= _SPECIAL_BASE:
            return self.special_tokens[token_id - _SPECIAL_BASE]
        return chr(token_id)

    def decode(self, token_ids: Sequence[int]) -> str:
        """Text of a token sequence (EOS contributes nothing)."""
        return "".join(self.token_text(t) for t in token_ids)

    # ----------------------------------------------------------------------------- the model

    def _log_probs(self, context: str) -> list[float]:
        """Log-probabilities over the vocabulary + unknown bucket after `context`."""
        key = context[-self.context_chars :]
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        digest = hashlib.blake2b(f"{self.seed}\x00{key}".encode(), digest_size=8).digest()
        rng = random.Random(int.from_bytes(digest, "little"))
        logits = [rng.gauss(0.0, self.sharpness) for _ in range(len(self._vocab) + 1)]
        logits[self._index[self.eos_token_id]] += self.eos_bias
        logits[self._unk_index] -= 4.0  # unknown characters are rare
        top = max(logits)
        log_z = top + math.log(math.fsum(math.exp(x - top) for x in logits))
        out = [x - log_z for x in logits]
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = out
        return out

    def _token_logprob(self, context: str, token_id: int) -> float:
        return self._log_probs(context)[self._index.get(token_id, self._unk_index)]

    def token_stats(self, context: str) -> tuple[float, float]:
        """Entropy and varentropy of the next-token distribution after `context` (exact)."""
        return entropy_varentropy(self._log_probs(context))

    def _sample(self, context: str, params: SamplingParams, rng: random.Random) -> int:
        """Next token id: argmax at temperature 0, else tempered nucleus sampling."""
        logp = self._log_probs(context)[: self._unk_index]  # the unknown bucket is never sampled
        if params.greedy:
            return self._vocab[max(range(len(logp)), key=lambda i: (logp[i], -i))]
        scaled = [x / params.temperature for x in logp]
        top = max(scaled)
        weights = [math.exp(x - top) for x in scaled]
        total = math.fsum(weights)
        order = sorted(range(len(weights)), key=lambda i: (-weights[i], i))
        kept: list[int] = []
        mass = 0.0
        for i in order:
            kept.append(i)
            mass += weights[i] / total
            if mass >= params.top_p:
                break
        r = rng.random() * math.fsum(weights[i] for i in kept)
        for i in kept:
            r -= weights[i]
            if r <= 0:
                return self._vocab[i]
        return self._vocab[kept[-1]]

    # ----------------------------------------------------------------------------- Policy API

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Generation]]:
        """Sample `params.n` continuations per prompt (see `Policy.generate`).

        The EOS token, when generated, is the last entry of `token_ids` and `logprobs` (its text
        is empty); with a stop string, the text is cut before it and the tokens are cut to those
        whose text lies before it. ``params.token_stats`` fills exact entropies/varentropies.
        """
        out: list[list[Generation]] = []
        for prompt in prompts:
            scripted = self._script_for(prompt)
            gens: list[Generation] = []
            for j in range(params.n):
                if scripted is not None:
                    gens.append(self._replay(prompt, scripted[j % len(scripted)], params))
                else:
                    gens.append(self._generate_one(prompt, params, self._rng(prompt, j, params)))
            out.append(gens)
        return out

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> list[tuple[float, ...]]:
        """Per-token log p of each completion's tokens (the completion tokenised on its own)."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        result: list[tuple[float, ...]] = []
        for prompt, completion in zip(prompts, completions, strict=True):
            context = prompt
            lps: list[float] = []
            for tid in self.tokenize(completion):
                lps.append(self._token_logprob(context, tid))
                context += self.token_text(tid)
            result.append(tuple(lps))
        return result

    def next_token_probs(
        self, prompts: Sequence[str], candidates: Sequence[str]
    ) -> list[dict[str, float]]:
        """p(candidate | prompt) for single-token candidates; raises `ModelError` otherwise."""
        ids: dict[str, int] = {}
        for cand in candidates:
            toks = self.tokenize(cand)
            if len(toks) != 1:
                raise not_one_token(cand, len(toks))
            ids[cand] = toks[0]
        return [
            {c: math.exp(self._token_logprob(prompt, tid)) for c, tid in ids.items()}
            for prompt in prompts
        ]

    # ----------------------------------------------------------------------------- internals

    def _rng(self, prompt: str, index: int, params: SamplingParams) -> random.Random:
        if params.seed is None:
            return random.Random()
        digest = hashlib.blake2b(
            f"{params.seed}\x00{index}\x00{prompt}".encode(), digest_size=8
        ).digest()
        return random.Random(int.from_bytes(digest, "little"))

    def _script_for(self, prompt: str) -> tuple[str, ...] | None:
        best: str | None = None
        for key in self.script:
            if prompt.endswith(key) and (best is None or len(key) > len(best)):
                best = key
        return None if best is None else self.script[best]

    def _generate_one(self, prompt: str, params: SamplingParams, rng: random.Random) -> Generation:
        ids: list[int] = []
        lps: list[float] = []
        stats: list[tuple[float, float]] | None = [] if params.token_stats else None
        text = ""
        while True:
            tid = self._sample(prompt + text, params, rng)
            lps.append(self._token_logprob(prompt + text, tid))
            if stats is not None:
                stats.append(self.token_stats(prompt + text))
            ids.append(tid)
            if tid == self.eos_token_id:
                return self._make(prompt, text, ids, lps, "eos", stats)
            text += self.token_text(tid)
            done = self._finish(prompt, text, ids, lps, params, stats)
            if done is not None:
                return done

    def _replay(self, prompt: str, output: str, params: SamplingParams) -> Generation:
        """A scripted output, token by token, ending with EOS when it runs out."""
        ids: list[int] = []
        lps: list[float] = []
        stats: list[tuple[float, float]] | None = [] if params.token_stats else None
        text = ""
        for tid in [*self.tokenize(output), self.eos_token_id]:
            lps.append(self._token_logprob(prompt + text, tid))
            if stats is not None:
                stats.append(self.token_stats(prompt + text))
            ids.append(tid)
            if tid == self.eos_token_id:
                break
            text += self.token_text(tid)
            done = self._finish(prompt, text, ids, lps, params, stats)
            if done is not None:
                return done
        return self._make(prompt, text, ids, lps, "eos", stats)

    def _finish(
        self,
        prompt: str,
        text: str,
        ids: list[int],
        lps: list[float],
        params: SamplingParams,
        stats: list[tuple[float, float]] | None,
    ) -> Generation | None:
        """The finished generation if a stop string matched or the length ran out, else None."""
        cut = _first_stop(text, params.stop)
        if cut is not None:
            keep, length = 0, 0
            for tid in ids:
                length += len(self.token_text(tid))
                if length > cut:
                    break
                keep += 1
            cut_stats = None if stats is None else stats[:keep]
            return self._make(prompt, text[:cut], ids[:keep], lps[:keep], "stop", cut_stats)
        if len(ids) >= params.max_new_tokens:
            return self._make(prompt, text, ids, lps, "length", stats)
        return None

    def _make(
        self,
        prompt: str,
        text: str,
        ids: list[int],
        lps: list[float],
        reason: FinishReason,
        stats: list[tuple[float, float]] | None = None,
    ) -> Generation:
        return Generation(
            text=text,
            token_ids=tuple(ids),
            logprobs=tuple(lps),
            finish_reason=reason,
            prompt_tokens=len(self.tokenize(prompt)),
            entropies=None if stats is None else tuple(h for h, _ in stats),
            varentropies=None if stats is None else tuple(v for _, v in stats),
        )


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    """Index of the earliest occurrence of any stop string in `text`, or None."""
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(hits) if hits else None

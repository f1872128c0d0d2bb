r"""Reading a model's reply to a role prompt: a score, a Yes/No verdict, a critique.

berry-tiny answers a role prompt with exactly what its frame asks for (``85``, ``Yes``, one
review line); an instruct model wraps the same answer in prose and markdown ("I would rate this
85/100.", "**Score: 70**", "**Yes**, the first answer is better"). These readers accept both and
return None when a reply does not say what was asked, which each search method records on the
node and handles by its documented fallback.

`read_score` (MCTSr's reward, section 3.2 of arXiv 2406.07394), in order:

1. a reply that is a bare number (berry-tiny's, after ``Score:``) is that number;
2. the first number (or fraction) after the last "score" that is followed by one: ``Score: 70``,
   ``[Score] 7 out of 10``, ``score of 85/100``; emphasis, brackets, colons and ``\boxed{}``
   between the word and the number are skipped;
3. else the number after the last "rate"/"rating"/"grade"/"give it": ``I would rate this
   85/100``, ``I'd give it a 60``;
4. else the last ``N/100`` or ``N out of 100`` anywhere;

a fraction ``a/b`` or ``a out of b`` counts as ``100 * a / b``, an expression (``7 + 18 = 25``)
as its last number, as MCTSr's code reads it; the score is clamped to [-100, 100]. Departure from MCTSr's code (``parse_score`` in `openberry.search.scorers`, which
takes the *last* number after the last "Score" and falls back to the last number anywhere):
prose after the score ("Score: 70. It computes 12 + 3 = 15") and ratings out of 10 are read
right, and a reply that never states a score is unparsable rather than its last number.
"""

from __future__ import annotations

import re

__all__ = ["read_critique", "read_score", "read_yes_no"]

_NUM = r"[-+−]?\d+(?:\.\d+)?"
_VALUE = re.compile(
    rf"({_NUM})(?:\s*(?:/|out\s+of)\s*(\d+(?:\.\d+)?)|((?:\s*[-+*×=]\s*{_NUM})+))?",
    re.IGNORECASE,
)
"""A score: a number, a fraction (group 2: its denominator), or an expression (group 3: its
operators and terms after the first)."""
_BARE = re.compile(rf"^\s*({_NUM})\s*\.?\s*$")
_GAP = r"[\s:=*_\[\]()`'\"{}\\]*(?:(?:is|of|would\s+be|boxed)[\s:=*_\[\]()`'\"{}\\]*)*"
"""What may stand between a score word and its number: markup, brackets, "is", "of"."""
_SCORE = re.compile(rf"\bscore\b{_GAP}(?=[-+−]?\d)", re.IGNORECASE)
_RATE = re.compile(
    rf"\b(?:rate|rated|rating|grade|give\s+(?:it|this)(?:\s+an?)?)\b[^.\n\d-]{{0,40}}?{_GAP}"
    rf"(?=[-+−]?\d)",
    re.IGNORECASE,
)
_OUT_OF_100 = re.compile(rf"({_NUM})\s*(?:/|out\s+of)\s*100\b", re.IGNORECASE)
_MARKUP = re.compile(r"[*_`#>]+")


def _number(text: str) -> float:
    return float(text.replace("−", "-"))


def _value(m: re.Match[str]) -> float | None:
    if m[3] is not None:
        return _number(re.findall(_NUM, m[3])[-1])
    value = _number(m[1])
    if m[2] is None:
        return value
    den = float(m[2])
    return 100.0 * value / den if den > 0 else None


def _clamp(x: float) -> float:
    return max(-100.0, min(100.0, x))


def read_score(text: str) -> float | None:
    """The score a self-evaluation reply states, in [-100, 100]; None when it states none (see
    the module docstring for the rules)."""
    bare = _BARE.match(text)
    if bare:
        return _clamp(_number(bare[1]))
    for pattern in (_SCORE, _RATE):
        for m in reversed(list(pattern.finditer(text))):
            v = _VALUE.match(text, m.end())
            if v is not None and (value := _value(v)) is not None:
                return _clamp(value)
    hits = list(_OUT_OF_100.finditer(text))
    if hits:
        return _clamp(_number(hits[-1][1]))
    return None


_VERDICT = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_LEAD = re.compile(
    r"^[\s*_`#>\"'(\[]*(?:(?:answer|verdict|judg(?:e)?ment)\s*[:\-]\s*)?[\s*_`\"'(\[]*"
)


def read_yes_no(text: str) -> bool | None:
    """A judge's written verdict: True for Yes, False for No, None when neither is said.

    The first word of the reply, past markup and an ``Answer:`` label (``**Yes**``,
    ``Answer: No.``), decides; else the first Yes or No after the last "answer" label; else the
    reply's only one (a reply with both and no label is unparsable).
    """
    head = text[_LEAD.match(text).end() :]  # type: ignore[union-attr]
    first = re.match(r"(yes|no)\b", head, re.IGNORECASE)
    if first:
        return first[1].lower() == "yes"
    labelled = list(re.finditer(r"\banswer\b\s*(?:is)?\s*[:\-]?", text, re.IGNORECASE))
    for m in reversed(labelled):
        after = _VERDICT.match(_MARKUP.sub("", text[m.end() :]).lstrip(" \"'([")) if m else None
        if after:
            return after[1].lower() == "yes"
    found = {v.lower() for v in _VERDICT.findall(text)}
    if len(found) == 1:
        return found.pop() == "yes"
    return None


def read_critique(text: str) -> str | None:
    """A critique reply as the rewrite reads it: stripped, any length; None when empty."""
    critique = text.strip()
    return critique or None

r"""Final-answer extraction from model or reference text.

`extract_answer` pulls the final answer out of a solution. Its priority order follows what model
outputs and references in the common benchmarks use:

1. the last ``\boxed{...}`` / ``\fbox{...}`` (brace-matched; the MATH / PRM800K convention);
2. the last GSM8K-style ``#### X`` line;
3. the last "the answer is X" / "final answer is X" / "Final Answer: X" / "the solution is X"
   (case-insensitive);
4. a configurable fallback (the last number in the text by default).

Departures from the references: the PRM800K grader only reads ``\boxed{}``, and math-verify's own
extraction (`math_verify.parse`) takes the last LaTeX or plain expression it can parse anywhere in the
text. Here the explicit markers win, the answer-sentence rule cuts the answer at the end of its
sentence or math span, and the number fallback understands thousands separators and ``\frac{a}{b}``.
No text is ever evaluated; everything is regular expressions and brace matching.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["Fallback", "all_boxed", "extract_answer", "last_boxed", "looks_like_bare_answer"]

Fallback = Literal["last_number", "none", "whole", "auto"]
_FALLBACKS = ("last_number", "none", "whole", "auto")

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*")


def _brace_pairs(text: str) -> dict[int, int]:
    """Map each unescaped ``{`` to its matching ``}`` in one pass (unmatched ones are absent)."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for j, c in enumerate(text):
        if c == "{" and (j == 0 or text[j - 1] != "\\"):
            stack.append(j)
        elif c == "}" and j > 0 and text[j - 1] != "\\" and stack:
            pairs[stack.pop()] = j
    return pairs


def _box_contents(text: str) -> list[str]:
    """Contents of every balanced box in order; unbalanced boxes are skipped.

    Brace matching is one linear pass, so many unbalanced boxes cannot make this quadratic.
    """
    matches = list(_BOX_RE.finditer(text))
    if not matches:
        return []
    pairs = _brace_pairs(text)
    out: list[str] = []
    for m in matches:
        i = m.end()
        if i < len(text) and text[i] == "{":
            close = pairs.get(i)
            if close is not None:
                out.append(text[i + 1 : close].strip())
            continue
        token = re.match(r"[^\s$]+", text[i:])
        if token:
            out.append(token.group(0).rstrip("."))
    return out


def last_boxed(text: str) -> str | None:
    r"""Content of the last ``\boxed{...}`` or ``\fbox{...}`` (brace-matched), else None.

    ``\boxed 5`` (no braces) gives ``5``. Unbalanced braces give None rather than a partial answer
    (an earlier balanced box is used instead).

    Args:
        text: Any text.

    Returns:
        The stripped content of the last balanced box, or None when there is none.
    """
    boxes = _box_contents(text)
    return boxes[-1] if boxes else None


def all_boxed(text: str) -> list[str]:
    r"""Contents of every balanced ``\boxed{}`` / ``\fbox{}`` in the text, in order.

    Args:
        text: Any text.

    Returns:
        A list of stripped box contents (empty when there is no balanced box).
    """
    return _box_contents(text)


_GSM8K_RE = re.compile(r"####[ \t]*([^\n]*)")

_MARKER_RE = re.compile(
    r"(?:\bthe\s+(?:final\s+)?(?:answer|solution)\s*(?:is\b|:)|\bfinal\s+answer\s*(?:is\b|:))",
    re.IGNORECASE,
)

_MATH_SPANS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))

# A number as written in prose: optional sign, thousands separators (1,234 or 1{,}234), decimals,
# or a simple fraction a/b; \frac{a}{b} with integer parts is matched by its own alternative.
_NUMBER_RE = re.compile(
    r"""
    (?P<frac>-?\\[dt]?frac\{\s*-?\d+\s*\}\{\s*\d+\s*\})
    |
    (?<![\w.])
    (?P<num>-?(?:\d{1,3}(?:(?:,|\{,\})\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?![\d.]))?)
    """,
    re.VERBOSE,
)

_SENTENCE_END_RE = re.compile(r"\.(?=\s|$)")
_INLINE_MATH_RE = re.compile(r"\$[^$]+\$|\\\(.+?\\\)")
_JOINER_RE = re.compile(r"\s*(?:,|;|,?\s*and|,?\s*or)?\s*", re.IGNORECASE)
_CONTINUATION_RE = re.compile(r"[ \t]*(?:,|;|and\b|or\b)[ \t]*(?:\$|\\\()")


def _marker_answer(text: str) -> str | None:
    """The answer after the last answer marker, cut at its math span or sentence end."""
    last = None
    for m in _MARKER_RE.finditer(text):
        last = m
    if last is None:
        return None
    rest = text[last.end() :]
    rest = rest.lstrip(" \t:*")
    if not rest.split("\n", 1)[0].strip():
        # "The answer is:\n\n$$ 42 $$" -> use the next non-empty paragraph.
        rest = rest.lstrip()
        para = re.split(r"\n\s*\n", rest, maxsplit=1)[0]
        rest = para
    else:
        rest = rest.split("\n", 1)[0] if not rest.startswith(("$$", "\\[")) else rest
    answer = _first_span(rest)
    if answer is None:
        return None
    answer = answer.strip().strip("*").strip()
    answer = answer.rstrip(".").strip()
    for open_, close in _MATH_SPANS:
        inner = answer[len(open_) : len(answer) - len(close)]
        if answer.startswith(open_) and answer.endswith(close) and open_ not in inner:
            answer = inner.strip()
            break
    return answer or None


def _first_span(rest: str) -> str | None:
    """A leading math span's content, else the text up to the end of its first sentence."""
    rest = rest.strip()
    for open_, close in _MATH_SPANS:
        if rest.startswith(open_):
            end = rest.find(close, len(open_))
            if end == -1:
                return None
            tail = rest[end + len(close) :]
            inner = rest[len(open_) : end].strip()
            # "$x=5$ and $x=-2$": the answer continues into a second math span on the same line.
            if _CONTINUATION_RE.match(tail):
                line = rest.split("\n", 1)[0]
                cut = _SENTENCE_END_RE.search(line)
                return line[: cut.start()] if cut else line
            return inner
    line = rest.split("\n", 1)[0]
    cut = _SENTENCE_END_RE.search(line)
    sentence = line[: cut.start()] if cut else line
    # "The values of \(x\) are \(x = 5\) and \(x = -2\)": the answer is the final run of math
    # spans joined only by commas or "and"/"or", not the prose (or the math) before it.
    spans = list(_INLINE_MATH_RE.finditer(sentence))
    if not spans:
        return sentence
    first = len(spans) - 1
    while first > 0 and _JOINER_RE.fullmatch(
        sentence[spans[first - 1].end() : spans[first].start()]
    ):
        first -= 1
    return sentence[spans[first].start() : spans[-1].end()]


def _last_number(text: str) -> str | None:
    last = None
    for m in _NUMBER_RE.finditer(text):
        last = m
    if last is None:
        return None
    if last.group("frac"):
        return re.sub(r"\\[dt]frac", r"\\frac", re.sub(r"\s+", "", last.group("frac")))
    num = last.group("num")
    return re.sub(r"\s+", "", num.replace("{,}", "").replace(",", ""))


_PROSE_WORD_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")
_VERB_RE = re.compile(
    r"(?<![\\A-Za-z])(?:is|are|was|were|be|equals|so|thus|therefore|hence|we|the)(?![A-Za-z])",
    re.IGNORECASE,
)


def looks_like_bare_answer(text: str) -> bool:
    r"""Whether ``text`` reads as a bare answer (``0.5``, ``8\sqrt{3} cm``) rather than a solution.

    A bare answer is one line of at most 5,000 characters with at most two prose words and no
    sentence words such as "is" or "therefore" (the grader refuses over-long answers later, with a
    reason).

    Args:
        text: Any text.

    Returns:
        True when the whole text should be taken as the answer.
    """
    s = text.strip()
    if not s or "\n" in s or len(s) > 5_000:
        return False
    if _VERB_RE.search(s):
        return False
    return len(_PROSE_WORD_RE.findall(s)) <= 2


def extract_answer(text: str, *, fallback: Fallback = "last_number") -> str | None:
    r"""Extract the final answer from a solution or a reference.

    Priority order (the first rule that finds something wins):

    1. the last balanced ``\boxed{...}`` or ``\fbox{...}`` (see `last_boxed`);
    2. the last GSM8K ``#### X`` (rest of that line; thousands separators removed);
    3. the last "the answer is X", "final answer is X", "Final Answer: X" or "the solution is X"
       (case-insensitive): the leading math span (``$...$``, ``\(...\)``, ...) after the marker,
       else the rest of the sentence (reduced to its math spans when it has any, so "The values
       are \(x=5\) and \(x=-2\)" gives ``\(x=5\) and \(x=-2\)``); a trailing period and
       surrounding ``$`` are stripped;
    4. the fallback:

       - ``"last_number"``: the last number in the text (``-3``, ``1,000`` -> ``1000``, ``2.5``,
         ``3/4``, ``\frac{3}{4}``), None when there is none;
       - ``"none"``: None;
       - ``"whole"``: the whole stripped text (None if empty);
       - ``"auto"``: ``"whole"`` when `looks_like_bare_answer` says the text is a bare answer
         (what ``berry grade PRED GOLD`` receives), else ``"last_number"``.

    Args:
        text: The model output or reference text.
        fallback: What to return when no box or marker is found.

    Returns:
        The extracted answer (stripped), or None when nothing was found.

    Raises:
        ValueError: ``fallback`` is not one of the modes above.
    """
    if fallback not in _FALLBACKS:
        raise ValueError(f"fallback must be one of {', '.join(_FALLBACKS)}, got {fallback!r}")
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    gsm = None
    for m in _GSM8K_RE.finditer(text):
        gsm = m
    if gsm is not None:
        value = gsm.group(1).strip().rstrip(".").strip()
        if value:
            if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", value):
                value = value.replace(",", "")
            return value
    marked = _marker_answer(text)
    if marked is not None:
        return marked
    if fallback == "none":
        return None
    if fallback == "whole" or (fallback == "auto" and looks_like_bare_answer(text)):
        return text.strip() or None
    return _last_number(text)

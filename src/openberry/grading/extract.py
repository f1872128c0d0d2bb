r"""Final-answer extraction from model or reference text.

`extract_answer` pulls the final answer out of a solution. Its priority order follows what model
outputs and references in the common benchmarks use:

1. the last ``\boxed{...}`` / ``\fbox{...}`` (brace-matched; the MATH / PRM800K convention), unless
   an answer sentence (rule 3) stating a number comes after it;
2. the last GSM8K-style ``#### X`` line;
3. the last "the answer is X" / "final answer is X" / "Final Answer: X" / "the solution is X"
   (case-insensitive);
4. a configurable fallback (the last number in the text by default).

`final_boxes` gives the boxes that end a text as one answer (``\boxed{1} and \boxed{2}``), with
math-verify's rule for which neighbouring boxes belong together.

Departures from the references: the PRM800K grader only reads ``\boxed{}``, and math-verify's own
extraction (`math_verify.parse`) takes the last LaTeX or plain expression it can parse anywhere in
the text. Here the explicit markers win; an answer sentence after the last box wins over it
(math-verify's default extraction also prefers "final answer is X" to an earlier box); the
answer-sentence rule cuts the answer at the end of its sentence or math span, takes what follows the
sentence's last "is"/"are" when the sentence has a subject of its own ("The largest $n$ is 34"), and
reduces plain prose that states exactly one number to that number ("Jane started 3 hours ago";
math-verify finds such numbers with its expression extraction near the word "answer"); the number
fallback understands thousands separators and ``\frac{a}{b}``. `final_boxes` re-implements
math-verify's box-joining rule (from latex2sympy2_extended's ``extract_boxed_content``) because that
module imports sympy, which this one must not.
No text is ever evaluated; everything is regular expressions and brace matching.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Fallback",
    "all_boxed",
    "extract_answer",
    "final_boxes",
    "last_boxed",
    "looks_like_bare_answer",
]

Fallback = Literal["last_number", "none", "whole", "auto"]
_FALLBACKS = ("last_number", "none", "whole", "auto")

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*")


_BRACE_RE = re.compile(r"(?<!\\)[{}]")
_BARE_TOKEN_RE = re.compile(r"[^\s$]+")


def _brace_pairs(text: str, start: int = 0) -> dict[int, int]:
    """Map each unescaped ``{`` from ``start`` on to its matching ``}`` in one pass over the braces
    (unmatched ones are absent). Braces before ``start`` cannot change these pairs."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE_RE.finditer(text, start):
        j = m.start()
        if text[j] == "{":
            stack.append(j)
        elif stack:
            pairs[stack.pop()] = j
    return pairs


@dataclass(frozen=True)
class _Box:
    """One balanced box: where ``\\boxed`` starts, where the box ends, and its stripped content."""

    start: int
    end: int
    content: str


@functools.lru_cache(maxsize=4)
def _box_spans(text: str) -> tuple[_Box, ...]:
    """Every balanced box in order; unbalanced boxes are skipped.

    Brace matching is one linear pass, so many unbalanced boxes cannot make this quadratic. Cached:
    the grader asks for the boxes of one text several times (answer, box set, joined boxes).
    """
    matches = list(_BOX_RE.finditer(text))
    if not matches:
        return ()
    pairs = _brace_pairs(text, matches[0].start())
    out: list[_Box] = []
    for m in matches:
        i = m.end()
        if i < len(text) and text[i] == "{":
            close = pairs.get(i)
            if close is not None:
                out.append(_Box(m.start(), close + 1, text[i + 1 : close].strip()))
            continue
        token = _BARE_TOKEN_RE.match(text, i)
        if token:
            out.append(_Box(m.start(), token.end(), token.group(0).rstrip(".")))
    return tuple(out)


def _box_contents(text: str) -> list[str]:
    return [box.content for box in _box_spans(text)]


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


# Boxes joined into one answer: math-verify's rule (latex2sympy2_extended's
# ``extract_boxed_content``), written out here because that module imports sympy and this one
# must not.
_BOX_JOIN_NEAR = 10  # a shorter gap always joins ("\boxed{1}\boxed{2}", "\boxed{1}, \boxed{2}")
_BOX_JOIN_FAR = 70  # a shorter gap joins when it holds a separator and the contents differ
_BOX_SEPARATOR_RE = re.compile(r"\b(?:and|or)\b|,|;")


def final_boxes(text: str) -> list[str]:
    r"""The last box and the boxes that lead up to it as one answer, in order.

    Going left from the last balanced box, an earlier box belongs to the same answer when the text
    between the two is shorter than 10 characters, or shorter than 70 characters, holds "and", "or",
    a comma or a semicolon, and the two contents differ (math-verify's rule). Consecutive identical
    contents count once. ``\boxed{1} and \boxed{2}`` gives ``["1", "2"]``; ``\boxed{3}`` alone, or
    boxes far apart, give only the last one.

    Args:
        text: Any text.

    Returns:
        The contents (empty when there is no balanced box).
    """
    spans = _box_spans(text)
    if not spans:
        return []
    chosen = [spans[-1]]
    for prev in reversed(spans[:-1]):
        nxt = chosen[0]
        between = text[prev.end : nxt.start]
        near = len(between) < _BOX_JOIN_NEAR
        far = (
            len(between) < _BOX_JOIN_FAR
            and prev.content != nxt.content
            and _BOX_SEPARATOR_RE.search(between) is not None
        )
        if not (near or far):
            break
        chosen.insert(0, prev)
    contents: list[str] = []
    for box in chosen:
        if not contents or contents[-1] != box.content:
            contents.append(box.content)
    return contents


_GSM8K_RE = re.compile(r"####[ \t]*([^\n]*)")

_MARKER_RE = re.compile(
    r"(?:\bthe\s+(?:final\s+)?(?:answer|solution)\s*(?:is\b|:)|\bfinal\s+answer\s*(?:is\b|:))",
    re.IGNORECASE,
)

# "22 is the final answer.": an answer stated before its marker, a number or an inline math span.
# A number starts only where no digit precedes it, so a long run of digits is scanned once.
_STATED_BEFORE_RE = re.compile(
    r"(\$[^$\n]+\$|\\\([^\n]+?\\\)|(?<![\d,.])-?\d[\d,]*(?:\.\d+)?)\s+(?:is|was)\s+(?:the|our|my)\s+"
    r"(?:final\s+)?answer\b",
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


def _last_marker(text: str) -> re.Match[str] | None:
    last = None
    for m in _MARKER_RE.finditer(text):
        last = m
    return last


def _marker_answer(text: str, last: re.Match[str]) -> str | None:
    """The answer after an answer marker, cut at its math span or sentence end."""
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


def _stated_before(text: str) -> str | None:
    """The last answer stated before its marker ("22 is the final answer", "$x=5$ is the
    answer"), without its ``$``/``\\(`` delimiters."""
    last = None
    for m in _STATED_BEFORE_RE.finditer(text):
        last = m
    if last is None:
        return None
    value = last.group(1).strip()
    for open_, close in _MATH_SPANS:
        if value.startswith(open_) and value.endswith(close) and len(value) > len(open_ + close):
            return value[len(open_) : len(value) - len(close)].strip() or None
    return value.replace(",", "") if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+", value) else value


def _first_span(rest: str, *, after_verb: bool = True) -> str | None:
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
    spans = list(_INLINE_MATH_RE.finditer(sentence))
    # "The volume of $V$ is 120": a sentence with a subject of its own states the answer after
    # its last verb (outside maths).
    tail = _after_last_verb(sentence, spans) if after_verb else None
    if tail is not None:
        return _first_span(tail, after_verb=False)
    if not spans:
        return _only_number(sentence) or sentence
    # "The values of \(x\) are \(x = 5\) and \(x = -2\)": the answer is the final run of math
    # spans joined only by commas or "and"/"or", not the prose (or the math) before it.
    first = len(spans) - 1
    while first > 0 and _JOINER_RE.fullmatch(
        sentence[spans[first - 1].end() : spans[first].start()]
    ):
        first -= 1
    return sentence[spans[first].start() : spans[-1].end()]


_COPULA_RE = re.compile(r"\b(?:is|are|was|were|equals)\b", re.IGNORECASE)
_OPENS_WITH_WORD_RE = re.compile(r"[A-Za-z]{2,}\b")
# Prose that states one number and nothing mathematical ("Jane started 3 hours ago").
_NOT_PROSE_RE = re.compile(r"[=<>^_\\{}()\[\]|%]|\b[Pp]ercent|(?<![A-Za-z])[B-HJ-Zb-z](?![A-Za-z])")


def _after_last_verb(sentence: str, spans: list[re.Match[str]]) -> str | None:
    """What follows the last "is"/"are"/"was"/"equals" outside maths, when the sentence opens
    with a word ("The largest $n$ is 34" -> "34"); None otherwise."""
    if not _OPENS_WITH_WORD_RE.match(sentence):
        return None
    last = None
    i = 0  # spans and verbs are both in text order: one merged pass
    for m in _COPULA_RE.finditer(sentence):
        while i < len(spans) and spans[i].end() <= m.start():
            i += 1
        if i == len(spans) or m.start() < spans[i].start():
            last = m
    if last is None:
        return None
    return sentence[last.end() :].strip() or None


def _only_number(sentence: str) -> str | None:
    """The number of a prose sentence with at least two words and exactly one number, and no
    symbol or single-letter variable ("Jane started growing Sphere 3 hours ago" -> "3")."""
    if _NOT_PROSE_RE.search(sentence) or len(_PROSE_WORD_RE.findall(sentence)) < 2:
        return None
    numbers = list(_NUMBER_RE.finditer(sentence))
    return _number_text(numbers[0]) if len(numbers) == 1 else None


def _last_number(text: str) -> str | None:
    last = None
    for m in _NUMBER_RE.finditer(text):
        last = m
    return None if last is None else _number_text(last)


def _number_text(last: re.Match[str]) -> str:
    """A `_NUMBER_RE` match as an answer (``\\dfrac`` -> ``\\frac``; separators, spaces dropped)."""
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

    1. the last balanced ``\boxed{...}`` or ``\fbox{...}`` (see `last_boxed`), unless an answer
       sentence (rule 3) that states a number (holds a digit) starts after that box ends: then
       the boxes were steps and the sentence gives the answer;
    2. the last GSM8K ``#### X`` (rest of that line; thousands separators removed);
    3. the last "the answer is X", "final answer is X", "Final Answer: X" or "the solution is X"
       (case-insensitive): the leading math span (``$...$``, ``\(...\)``, ...) after the marker,
       else the rest of the sentence, where a sentence that opens with a word and has an "is",
       "are", "was", "were" or "equals" outside maths gives what follows the last of them ("The
       largest $n$ is 34" gives ``34``); the sentence is then reduced to its final run of math
       spans when it has any ("The values are \(x=5\) and \(x=-2\)" gives
       ``\(x=5\) and \(x=-2\)``), or, when it is prose of two words or more with exactly one
       number and no symbol, variable or percent, to that number ("Jane started growing Sphere 3
       hours ago" gives ``3``); a trailing period and surrounding ``$`` are stripped;
    3b. the last answer stated before its marker: a number or an inline math span followed by
       "is the (final) answer" ("Step 2: 22 is the final answer." gives ``22``);
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
    boxes = _box_spans(text)
    marker = _last_marker(text)
    if boxes:
        # "... \boxed{255} ... Final Answer: The final answer is $10,455$.": an answer sentence
        # after the last box, stating a number, is the final answer; the boxes were steps.
        if marker is not None and marker.start() >= boxes[-1].end:
            late = _marker_answer(text, marker)
            if late is not None and re.search(r"\d", late):
                return late
        return boxes[-1].content
    gsm = None
    for m in _GSM8K_RE.finditer(text):
        gsm = m
    if gsm is not None:
        value = gsm.group(1).strip().rstrip(".").strip()
        if value:
            if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", value):
                value = value.replace(",", "")
            return value
    marked = None if marker is None else _marker_answer(text, marker)
    if marked is not None:
        return marked
    stated = _stated_before(text)
    if stated is not None:
        return stated
    if fallback == "none":
        return None
    if fallback == "whole" or (fallback == "auto" and looks_like_bare_answer(text)):
        return text.strip() or None
    return _last_number(text)

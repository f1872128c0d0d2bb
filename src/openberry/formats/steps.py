"""Steps of a free-form solution: where one step ends and the next begins.

Step-level search and step scorers need solutions cut into steps. berry-tiny writes one step per
line; instruct models write blank-line paragraphs, ``Step k:`` / ``**Step k**`` / ``## Step k``
headers, numbered lists, or one long paragraph. A *step split* names the rule:

=============  ===================================================================================
split          a step is
=============  ===================================================================================
``line``       one non-empty line (berry-tiny's format; exactly the split search always used).
``paragraph``  a blank-line-separated paragraph.
``header``     a ``Step k`` header line (``Step 3:``, ``**Step 3**``, ``## Step 3.``) and what
               follows it up to the next header, blank lines included; numbered ``k.`` / ``k)``
               lines count as headers when the text has no ``Step k`` header. Text before the
               first header is a step of its own; text with no header is one step.
``auto``       ``header`` when the text has a ``Step k`` header; else ``paragraph`` when it has
               two paragraphs or more; else numbered ``k.`` lines when it has two or more; else
               ``line`` when it has two lines or more; else its sentences.
=============  ===================================================================================

In every split but ``line``, a LaTeX display block (``$$...$$``, ``\\[...\\]``) and a fenced code
block (a line starting with three backticks up to the next) is never cut inside, and the last
line of the last step becomes a step of its own when it states the final answer (``\\boxed{}``,
``####``, "the answer is") and the step has other lines: the answer line is then the
*conclusion* step, as in berry-tiny's solutions, and the work before it is rated as a step.

**Generation-time boundaries** (`step_stops`): a step-level search samples one step at a time
and stops it at the first stop string; the stop string is not part of the step, and what the
model wrote after it is dropped. ``line`` stops at ``"\\n"``; ``paragraph`` at ``"\\n\\n"``;
``header`` at a newline followed by the start of a ``Step`` header (``"\\nStep "``,
``"\\n**Step "``, ``"\\n## Step "``...); ``auto`` at both ``"\\n\\n"`` and the header starts. A header
stop begins with the newline on purpose: the header that *opens* the step being written is at the
very start of the generation, with no newline before it, so it never matches; only the *next*
step's header does, and the generation stops right before it. The next step's header is then
written again, from its start, by the next generation. Steps written back into a prompt are
each followed by `step_separator` (``"\\n"`` for ``line``, ``"\\n\\n"`` for the others): a blank
line after a step invites the next step, not a newline the model would write before its header
(which would match a header stop at once and give an empty step).

What generation cannot see: numbered ``k.`` headers (a numbered list inside a step looks the
same), display blocks with blank lines inside (LaTeX does not allow them; a code block might) and
sentence boundaries. Under ``auto`` a header written on a line of its own and followed by a blank
line becomes a step of its own; choose ``header`` for such a model.

Pure Python: formats sit below the models and search layers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Literal

from openberry.grading.extract import extract_answer

__all__ = [
    "STEP_SPLITS",
    "StepSplit",
    "join_steps",
    "split_sentences",
    "split_steps",
    "step_separator",
    "step_stops",
]

StepSplit = Literal["line", "paragraph", "header", "auto"]
"""How a solution is cut into steps (see the module docstring)."""
STEP_SPLITS: tuple[str, ...] = ("line", "paragraph", "header", "auto")

_STEP_HEADER_RE = re.compile(r"^ {0,3}(?:#{1,6}\s*)?(?:\*\*|__)?\s*step\s+\d+\b", re.IGNORECASE)
_NUMBERED_RE = re.compile(r"^(?:#{1,6}\s*)?(?:\*\*)?\d{1,3}[.)](?:\*\*)?\s+\S")
_MATH_TOKEN_RE = re.compile(r"\$\$|\\\[|\\\]")
_FENCE = "```"
_HEADER_STOPS = ("\nStep ", "\n**Step ", "\n## Step ", "\n### Step ", "\n#### Step ")
_STOPS: dict[str, tuple[str, ...]] = {
    "line": ("\n",),
    "paragraph": ("\n\n",),
    "header": _HEADER_STOPS,
    "auto": ("\n\n", *_HEADER_STOPS),
}
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\\$(\[])")
_INLINE_MATH_RE = re.compile(
    r"\$\$.*?\$\$|\$(?=\S)[^$]*?(?<=\S)\$(?!\d)|\\\(.*?\\\)|\\\[.*?\\\]", re.DOTALL
)
"""Math spans: ``$$...$$``, ``\\(...\\)``, ``\\[...\\]`` and ``$...$`` by pandoc's rule (no space
inside either dollar, no digit after the closing one), so ``$3.50 ... $7.00`` is money, not math."""
_ABBREVIATIONS = frozenset(
    {"e.g.", "i.e.", "etc.", "vs.", "cf.", "approx.", "eq.", "fig.", "no.", "dr.", "mr.", "ms."}
)


def _check(split: str) -> None:
    if split not in STEP_SPLITS:
        raise ValueError(f"unknown step split {split!r}; choose from {', '.join(STEP_SPLITS)}")


def step_stops(split: str) -> tuple[str, ...]:
    """The stop strings that end one generated step under `split` (see the module docstring)."""
    _check(split)
    return _STOPS[split]


def step_separator(split: str) -> str:
    """What follows each step when steps are written back into a prompt: ``"\\n"`` for
    ``line``, a blank line (``"\\n\\n"``) for the others."""
    _check(split)
    return "\n" if split == "line" else "\n\n"


def join_steps(steps: Sequence[str], split: str) -> str:
    """`steps` as prompt text: each step followed by `step_separator` (empty for no steps)."""
    sep = step_separator(split)
    return "".join(step + sep for step in steps)


def split_steps(text: str, split: str = "line") -> list[str]:
    """The steps of a whole solution under `split` (see the module docstring), each stripped of
    surrounding whitespace; empty steps are left out."""
    _check(split)
    if split == "line":
        return [line.strip() for line in text.splitlines() if line.strip()]
    lines = _scan(text)
    if split == "paragraph":
        steps = _paragraphs(lines)
    elif split == "header":
        steps = _by_headers(lines)
    else:
        steps = _auto(lines)
    return _answer_apart([s for s in steps if s])


# -- lines and the blocks that must not be cut ----------------------------------------------

_Line = tuple[str, bool]
"""A line and whether a step may begin at it (False inside a display or code block)."""


def _scan(text: str) -> list[_Line]:
    """Each line of `text` with whether it starts outside every display-math and code block."""
    out: list[_Line] = []
    inside: str | None = None  # the closing delimiter of the open block
    for line in text.splitlines():
        out.append((line, inside is None))
        inside = _after(line, inside)
    return out


def _after(line: str, inside: str | None) -> str | None:
    """The open block after `line`, given the one open before it."""
    fence = line.lstrip().startswith(_FENCE)
    if inside == _FENCE:
        return None if fence else _FENCE
    if fence:  # an opening fence, unless the block closes on the same line
        return None if line.count(_FENCE) >= 2 else _FENCE
    for token in _MATH_TOKEN_RE.findall(line):
        if inside is None and token == "$$":
            inside = "$$"
        elif inside is None and token == "\\[":
            inside = "\\]"
        elif token == inside:
            inside = None
    return inside


def _joined(lines: Sequence[_Line]) -> str:
    return "\n".join(line for line, _ in lines).strip()


def _cut_before(lines: Sequence[_Line], starts: Callable[[str], bool]) -> list[str]:
    """`lines` cut before every line that may begin a step and satisfies `starts`."""
    steps: list[list[_Line]] = [[]]
    for item in lines:
        line, free = item
        if free and starts(line) and steps[-1]:
            steps.append([])
        steps[-1].append(item)
    return [_joined(s) for s in steps]


def _paragraphs(lines: Sequence[_Line]) -> list[str]:
    """Blank-line-separated paragraphs (a blank line inside a block separates nothing)."""
    steps: list[list[_Line]] = [[]]
    for item in lines:
        line, free = item
        if free and not line.strip():
            if steps[-1]:
                steps.append([])
            continue
        steps[-1].append(item)
    return [_joined(s) for s in steps if s]


def _is_step_header(line: str) -> bool:
    return bool(_STEP_HEADER_RE.match(line))


def _is_numbered(line: str) -> bool:
    return bool(_NUMBERED_RE.match(line))


def _count(lines: Sequence[_Line], test: Callable[[str], bool]) -> int:
    return sum(1 for line, free in lines if free and test(line))


def _by_headers(lines: Sequence[_Line]) -> list[str]:
    """Cut at ``Step k`` headers, else at numbered lines; no header: one step."""
    test = _is_step_header if _count(lines, _is_step_header) else _is_numbered
    return _cut_before(lines, test)


def _auto(lines: Sequence[_Line]) -> list[str]:
    if _count(lines, _is_step_header):
        return _cut_before(lines, _is_step_header)
    paragraphs = _paragraphs(lines)
    if len(paragraphs) >= 2:
        return paragraphs
    if _count(lines, _is_numbered) >= 2:
        return _cut_before(lines, _is_numbered)
    units = _cut_before([x for x in lines if x[0].strip() or not x[1]], lambda _line: True)
    if len(units) >= 2:
        return units
    return split_sentences(units[0]) if units else []


def _states_answer(line: str) -> bool:
    return extract_answer(line, fallback="none") is not None


def _answer_apart(steps: list[str]) -> list[str]:
    """The last step's last line as a step of its own when it states the answer and is not
    the whole step (nor the end of a display or code block)."""
    if not steps:
        return steps
    lines = _scan(steps[-1])
    last, free = lines[-1]
    if len(lines) < 2 or not free or not _states_answer(last) or _after(last, None) is not None:
        return steps
    return [*steps[:-1], _joined(lines[:-1]), last.strip()]


# -- sentences -------------------------------------------------------------------------------


def split_sentences(text: str) -> list[str]:
    """`text` cut after each ``.``, ``!`` or ``?`` followed by space and a capital, a digit, a
    backslash, ``$`` or a bracket; never inside inline or display math, nor after a common
    abbreviation (``e.g.``, ``i.e.``...)."""
    math = [m.span() for m in _INLINE_MATH_RE.finditer(text)]
    out, start = [], 0
    for m in _SENTENCE_END_RE.finditer(text):
        cut = m.start()
        if any(lo < cut < hi for lo, hi in math):
            continue
        words = text[start:cut].split()
        if words and words[-1].lower() in _ABBREVIATIONS:
            continue
        out.append(text[start:cut].strip())
        start = m.end()
    out.append(text[start:].strip())
    return [s for s in out if s]

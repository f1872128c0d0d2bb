r"""Answer normalisation applied before comparison, and exact number parsing.

`normalize_answer` rewrites an extracted answer into a canonical string so that cosmetic
differences (delimiters, spacing commands, ``\text{}``, units, thousands separators, ``\dfrac``,
degree and percent signs, multiple-choice decorations, a leading ``x =``) do not decide a grade.
`parse_number` reads the canonical form of a plain number exactly, as a `fractions.Fraction`.
`split_structure` splits a canonical answer into sets, lists, tuples and intervals so that they can
be compared element-wise.

The rules follow the spirit of the PRM800K grader's ``normalize_answer`` (strip ``\text``, units,
``\dfrac``, ``^\circ``, ``\%``, ``\$``, thousands separators) and the Hendrycks MATH
``strip_string``, re-implemented here from their descriptions. Departures:

- thousands separators are removed only when the whole answer is one number with no space after
  its commas (``1,000,000``; ``32, 349`` is a list of two, as in math-verify) or written as
  ``1{,}000`` or ``32,\! 349``, so ``(1,2)`` and ``1,2`` stay tuples/lists;
- `decimal_comma` gives the decimal reading of a bare ``1,22`` / ``0,111`` / ``1000,99`` (a comma
  that cannot separate thousands), which the grader tries besides the list reading; math-verify
  reads such plain text the same way and ``$1,22$`` as a set, which we keep too;
- plain braces around the whole answer only group (``{1, 2, 3}`` -> ``1,2,3``, as math-verify
  reads ``${1,2,3}$``); the set ``\{1,2\}`` keeps its escaped braces;
- ``\\le`` (a doubled backslash before a relation, an escaping slip) reads as ``\le`` outside
  environments, as math-verify reads it;
- a leading single-variable assignment is dropped (``x = 5`` -> ``5``), and repeated assignments to
  the same variable become a list (``x = 5, x = -2`` -> ``5,-2``); a single-variable inequality
  becomes an interval (``k < -5`` -> ``(-\infty,-5)``);
- a number followed by a few plain nouns keeps only the number (``20 workers`` -> ``20``);
- multiple-choice decorations collapse to the letter (``(B)``, ``B)``, ``\text{(B)}`` -> ``B``);
- percent signs are dropped here; the grader separately remembers that a side had one
  (`has_percent`) and then accepts either reading (``50\%`` = ``50`` = ``0.5``).

Nothing is evaluated: every rule is a regular expression or a brace-matching scan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

__all__ = [
    "Structure",
    "decimal_comma",
    "has_percent",
    "normalize_answer",
    "parse_number",
    "split_structure",
    "split_top_level",
]

_TEXT_COMMANDS = (
    "text",
    "textbf",
    "textit",
    "textrm",
    "textnormal",
    "texttt",
    "mathrm",
    "mathbf",
    "mathit",
    "mathsf",
    "mathtt",
    "mbox",
    "hbox",
    "boxed",
    "fbox",
    "operatorname",
    "displaystyle",
)
_TEXT_CMD_RE = re.compile(r"\\(" + "|".join(_TEXT_COMMANDS) + r")\s*\{")

_GREEK = (
    "alpha|beta|gamma|delta|epsilon|varepsilon|zeta|eta|theta|vartheta|iota|kappa|lambda|mu|nu|xi|"
    "rho|sigma|tau|upsilon|phi|varphi|chi|psi|omega|Gamma|Delta|Theta|Lambda|Xi|Sigma|Phi|Psi|Omega"
)
# A simple variable name: a letter with an optional subscript, or a Greek letter.
_VAR = rf"(?:[A-Za-z](?:_\{{?[A-Za-z0-9]+\}}?)?|\\(?:{_GREEK})(?![A-Za-z]))"

_UNITS = (
    "square units|sq units|cubic units|units?|"
    "centimeters?|centimetres?|millimeters?|millimetres?|kilometers?|kilometres?|meters?|metres?|"
    "cm|mm|km|inches|inch|feet|foot|ft|yards?|yd|miles?|mph|kph|km/h|m/s|"
    "kilograms?|grams?|kg|mg|pounds?|lbs?|ounces?|oz|tons?|"
    "liters?|litres?|ml|gallons?|quarts?|pints?|cups?|"
    "seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?|"
    "dollars?|cents?|euros?|yuan|rupees?|"
    "degrees?|radians?|rad|percent|percentage points?"
)
_UNIT_SUFFIX_RE = re.compile(
    rf"^(?P<val>.*?\S)\s*(?:(?:square|sq\.?|cubic)\s*)?(?:{_UNITS})(?:\^\{{?[23]\}}?|²|³)?\.?$",
    re.IGNORECASE,
)
_SHORT_UNIT_RE = re.compile(r"^(?P<val>[-+]?\d+(?:\.\d+)?)\s+(?:m|s|h|g|l|in)(?:\^\{?[23]\}?)?$")

# A number followed by at most four plain words ("20 workers", "4 blue boxes").
_NUMBER_NOUNS_RE = re.compile(
    r"^(?P<num>[-+]?\d+(?:\.\d+)?(?:/\d+)?)\s+(?P<words>[A-Za-z][A-Za-z'\-]*(?:\s+[A-Za-z][A-Za-z'\-]*){0,3})\.?$"
)
_NOT_NOUNS = {
    "and",
    "or",
    "to",
    "by",
    "pi",
    "sqrt",
    "times",
    "over",
    "plus",
    "minus",
    "divided",
    "mod",
    "log",
    "ln",
    "sin",
    "cos",
    "tan",
    "not",
    "is",
    "are",
    "equals",
    "i",
    "e",
}

_CHOICE_RE = re.compile(r"^\(?\s*([A-J])\s*\)(?:\s*.*)?$|^([A-J])[.:]?$")

_NUMBER_RE = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)")
_FRAC_RE = re.compile(r"^([-+]?)\\frac\{([-+]?[\d.]+)\}\{([-+]?[\d.]+)\}$")

_INEQ = {
    "<": ("<", True),
    "\\lt": ("<", True),
    "\\le": ("<", False),
    "\\leq": ("<", False),
    "\\leqslant": ("<", False),
    "≤": ("<", False),
    ">": (">", True),
    "\\gt": (">", True),
    "\\ge": (">", False),
    "\\geq": (">", False),
    "\\geqslant": (">", False),
    "≥": (">", False),
}
_INEQ_OP = r"(?:\\leqslant|\\geqslant|\\leq|\\geq|\\le|\\ge|\\lt|\\gt|<|>|≤|≥)"


def _matching(text: str, i: int, open_: str = "{", close: str = "}") -> int | None:
    depth = 0
    for j in range(i, len(text)):
        c = text[j]
        if c == open_ and (j == 0 or text[j - 1] != "\\"):
            depth += 1
        elif c == close and (j == 0 or text[j - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return j
    return None


def _unwrap_commands(s: str) -> str:
    r"""Replace ``\text{...}`` and friends by their content (iteratively, no recursion)."""
    for _ in range(200):  # bounded: each pass removes one command
        m = _TEXT_CMD_RE.search(s)
        if m is None:
            break
        open_ = m.end() - 1
        close = _matching(s, open_)
        if close is None:
            s = s[: m.start()] + s[m.end() :]
            continue
        s = s[: m.start()] + s[open_ + 1 : close] + s[close + 1 :]
    return s


def has_percent(text: str) -> bool:
    r"""Whether an answer carries a percent sign (``50\%``, ``50%``, ``50 percent``).

    Args:
        text: An extracted answer.

    Returns:
        True when the answer is written as a percentage.
    """
    return "%" in text or re.search(r"\bpercent\b", text, re.IGNORECASE) is not None


def split_top_level(s: str, sep: str = ",") -> list[str]:
    r"""Split ``s`` at ``sep`` where it is not inside ``{}``, ``()`` or ``[]``.

    ``\{`` and ``\}`` count as brackets too; unbalanced closers are tolerated.

    Args:
        s: A (normalised) answer.
        sep: The separator, one or more characters.

    Returns:
        The parts, unstripped; ``[s]`` when there is no top-level separator.
    """
    parts: list[str] = []
    depth = 0
    start = 0
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\" and i + 1 < n and s[i + 1] in "{}":
            depth += 1 if s[i + 1] == "{" else -1
            i += 2
            continue
        if c in "{([":
            depth += 1
        elif c in "})]":
            depth = max(0, depth - 1)
        elif depth == 0 and s.startswith(sep, i):
            parts.append(s[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    parts.append(s[start:])
    return parts


def _strip_delimiters(s: str) -> str:
    s = s.replace("\\$", "")  # currency
    s = s.replace("$", "")
    s = re.sub(r"\\[()\[\]]", "", s)
    s = re.sub(r"\\(?:displaystyle|textstyle|scriptstyle)\b", "", s)
    s = re.sub(r"\\left\.|\\right\.", "", s)
    s = re.sub(r"\\(?:left|right|big|Big|bigg|Bigg)(?![A-Za-z])", "", s)
    return s


_UNICODE = {
    "−": "-",
    "–": "-",
    "∞": "\\infty",
    "π": "\\pi",
    "°": "^\\circ",
    "×": "\\times",
    "·": "\\cdot",
    "≤": "\\le",
    "≥": "\\ge",
    "≠": "\\neq",
    "√": "\\sqrt",
    "∪": "\\cup",
    "²": "^2",
    "³": "^3",
    "\u00a0": " ",
}


def _assignment_rhs(s: str) -> str:
    r"""``x = 5`` -> ``5``; ``x = 5, x = -2`` -> ``5,-2``; ``k < -5`` -> ``(-\infty,-5)``."""
    parts = [p.strip() for p in split_top_level(s)]
    pattern = re.compile(rf"^(?P<lhs>{_VAR})\s*=\s*(?P<rhs>[^=<>]+)$")
    matches = [pattern.match(p) for p in parts]
    if all(matches) and len({m.group("lhs") for m in matches if m}) == 1:
        return ",".join(m.group("rhs").strip() for m in matches if m)
    m = re.match(rf"^{_VAR}\s*\\in\s*(?P<rhs>.+)$", s)
    if m:
        return m.group("rhs").strip()
    return _inequality_interval(s) or s


def _inequality_interval(s: str) -> str | None:
    one = re.match(rf"^(?P<var>{_VAR})\s*(?P<op>{_INEQ_OP})\s*(?P<val>[^<>=]+)$", s)
    if one:
        direction, strict = _INEQ[one.group("op")]
        val = one.group("val").strip()
        if direction == "<":
            return f"(-\\infty,{val}{')' if strict else ']'}"
        return f"{'(' if strict else '['}{val},\\infty)"
    two = re.match(
        rf"^(?P<lo>[^<>=]+?)\s*(?P<op1>{_INEQ_OP})\s*{_VAR}\s*(?P<op2>{_INEQ_OP})\s*(?P<hi>[^<>=]+)$",
        s,
    )
    if two:
        d1, s1 = _INEQ[two.group("op1")]
        d2, s2 = _INEQ[two.group("op2")]
        if d1 == d2 == "<":
            lo, hi = two.group("lo").strip(), two.group("hi").strip()
            return f"{'(' if s1 else '['}{lo},{hi}{')' if s2 else ']'}"
    return None


def _rename_function_variable(s: str) -> str:
    """``f(y)=1`` -> ``f(x)=1``: a one-variable function definition's dummy variable becomes x.

    Only when the right-hand side uses no other single-letter variable, so ``f(y)=x+y`` is kept.
    """
    m = re.fullmatch(r"(?P<f>[A-Za-z])\((?P<v>[A-Za-z])\)=(?P<rhs>.+)", s)
    if m is None or m.group("v") == "x":
        return s
    var, rhs = m.group("v"), m.group("rhs")
    letters = set(re.findall(r"(?<![A-Za-z\\])[A-Za-z](?![A-Za-z])", rhs))
    if not letters <= {var, m.group("f")}:
        return s
    rhs = re.sub(rf"(?<![A-Za-z\\]){var}(?![A-Za-z])", "x", rhs)
    return f"{m.group('f')}(x)={rhs}"


def _strip_units(s: str) -> str:
    m = _NUMBER_NOUNS_RE.match(s)
    if m and not any(w.lower() in _NOT_NOUNS for w in m.group("words").split()):
        return m.group("num")
    m = _SHORT_UNIT_RE.match(s)
    if m:
        return m.group("val")
    m = _UNIT_SUFFIX_RE.match(s)
    if m:
        val = m.group("val").rstrip()
        # Only after something that ends a quantity: a digit, a brace, \pi, a closing bracket.
        if re.search(r"(?:\d|\}|\)|\\pi|\\sqrt\{[^}]*\}|[a-z])$", val) and re.search(
            r"\d|\\pi", val
        ):
            return val
    return s


# Spacing commands; a row break ``\\`` is matched first so that ``1 \\ 2`` keeps it.
_SPACING_RE = re.compile(r"\\\\|\\[!,;:> ]|\\q?quad\b|~")
_THOUSANDS_RE = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
# A comma that cannot separate thousands: not three digits after it, or a first group that no
# thousands grouping has (a leading zero, or more than three digits).
_DECIMAL_COMMA_RE = re.compile(r"([-+]?)(\d+),(\d+)")
_RELATION_CMDS = r"(?:leqslant|geqslant|leq|geq|le|ge|lt|gt|neq|ne|in)(?![A-Za-z])"


def _fix_doubled_backslash(s: str) -> str:
    r"""``-2 \\le x`` -> ``-2 \le x``: a doubled backslash before a relation is an escaping slip
    (math-verify reads it the same way); a real line break there means nothing. Kept inside
    environments (``\begin{pmatrix}``), where ``\\`` ends a row."""
    if "\\begin" in s:
        return s
    return re.sub(r"(?<!\\)\\\\(?=" + _RELATION_CMDS + ")", r"\\", s)


def _strip_group_braces(s: str) -> str:
    """``{1, 2, 3}`` -> ``1, 2, 3``: plain braces around the whole answer only group in LaTeX (the
    set ``\\{1, 2\\}`` keeps its escaped braces)."""
    for _ in range(10):  # bounded: each pass removes one pair
        t = s.strip()
        if not (t.startswith("{") and t.endswith("}")) or _matching(t, 0) != len(t) - 1:
            return s
        s = t[1:-1]
    return s


def decimal_comma(text: str) -> str | None:
    r"""The decimal-point reading of a plain ``1,22`` / ``0,111`` / ``1000,99``, else None.

    Only a bare number written outside maths with one comma qualifies, and only when that comma
    cannot separate thousands (``1,000`` stays one thousand) or list items (``1, 22`` with a
    space, ``(1,22)`` and ``$1,22$`` stay lists, as math-verify reads them in LaTeX).

    Args:
        text: An extracted answer, as written.

    Returns:
        ``"1.22"`` for ``"1,22"``; None when the comma is not a decimal comma.
    """
    m = _DECIMAL_COMMA_RE.fullmatch(text.strip())
    if m is None:
        return None
    sign, head, tail = m.groups()
    if len(tail) == 3 and not head.startswith("0") and len(head) <= 3:
        return None  # 1,234: a thousands separator
    return f"{sign}{head}.{tail}"


def normalize_answer(text: str) -> str:
    r"""Canonical string form of an extracted answer.

    Rules, in order: unicode maths symbols to LaTeX; math delimiters (``$``, ``\(``, ``\[``), sizing
    (``\left``, ``\right``, ``\big``) and ``\displaystyle`` dropped; ``\text{}``, ``\textbf{}``,
    ``\mathrm{}``, ``\mbox{}``, ``\boxed{}`` replaced by their content; plain braces around the
    whole answer dropped (``{1,2}`` -> ``1,2``); ``{,}`` and ``,\!`` thousands separators and
    ``\\le`` slips (-> ``\le``) fixed; ``\dfrac``/``\tfrac``/``\cfrac`` -> ``\frac``; spacing
    (``\!``, ``\,``, ``\;``, ``\:``, ``\quad``, ``~``) dropped; degree and percent signs dropped;
    "and"/"or" between answers -> comma; units and trailing nouns after a number dropped;
    multiple-choice decorations -> the letter; a single-variable assignment or inequality -> its
    value or interval; thousands separators removed when the whole answer is one number with no
    space after its commas; ``\frac12`` -> ``\frac{1}{2}``, ``\sqrt2`` -> ``\sqrt{2}``; ``\lbrace``
    -> ``\{``; ``inf``/``infinity`` -> ``\infty``; all whitespace and a trailing period removed.

    Args:
        text: An extracted answer (not a whole solution).

    Returns:
        The canonical form; an empty string when nothing is left.
    """
    s = text.strip()
    for k, v in _UNICODE.items():
        s = s.replace(k, v)
    s = _strip_delimiters(s)
    s = _unwrap_commands(s)
    s = _strip_group_braces(s)
    s = re.sub(r"\\[dtc]frac", r"\\frac", s)
    s = s.replace("\\lbrace", "\\{").replace("\\rbrace", "\\}")
    # 1{,}000, 14 {, }916 and 32,\! 349: always a thousands separator in LaTeX.
    s = re.sub(r"(?<!\\)\{\s*,\s*\}", "", s)
    s = re.sub(r",\s*\\!\s*(?=\d)", ",", s)
    s = _fix_doubled_backslash(s)
    s = _SPACING_RE.sub(lambda m: m.group(0) if m.group(0) == "\\\\" else " ", s)
    s = re.sub(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree", "", s)
    s = s.replace("\\%", "").replace("%", "")
    s = re.sub(r"\s+", " ", s).strip()
    s = s.rstrip(".").strip()
    s = re.sub(r"\s+(?:and|or)\s+", ",", s)
    s = _strip_units(s)
    m = _CHOICE_RE.match(s)
    if m:
        s = m.group(1) or m.group(2)
    s = _assignment_rhs(s)
    s = _strip_units(s)
    # "1,000,000" is one number; "32, 349" (a space after the comma) is a list of two.
    if _THOUSANDS_RE.fullmatch(s):
        s = s.replace(",", "")
    s = re.sub(r"\s+", "", s)
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac(\d)\{", r"\\frac{\1}{", s)
    s = re.sub(r"\\frac(\{[^{}]*\})(\d)", r"\\frac\1{\2}", s)
    s = re.sub(r"\\sqrt(\d+|\\pi|[a-zA-Z])", r"\\sqrt{\1}", s)
    s = re.sub(r"([\^_])\{(\w)\}", r"\1\2", s)
    s = re.sub(r"\\(?:leqslant|leq)(?![A-Za-z])", r"\\le", s)
    s = re.sub(r"\\(?:geqslant|geq)(?![A-Za-z])", r"\\ge", s)
    s = re.sub(r"\\ne(?:q)?(?![A-Za-z])", r"\\neq", s)
    s = re.sub(r"(?<![A-Za-z\\])(?:infinity|inf)(?![A-Za-z])", r"\\infty", s)
    s = re.sub(r"(?<![A-Za-z\\])pi(?![A-Za-z])", r"\\pi", s)
    s = s.replace("+\\infty", "\\infty")
    s = _rename_function_variable(s)
    if s.startswith("+"):
        s = s[1:]
    return s.rstrip(".")


def parse_number(text: str) -> Fraction | None:
    r"""Read a canonical plain number exactly: ``12``, ``-0.25``, ``3/4``, ``\frac{3}{4}``, ``-\frac{1}{2}``.

    Args:
        text: A normalised answer (see `normalize_answer`).

    Returns:
        The exact value, or None when the text is not a plain number (or is absurdly long).
    """
    s = text.strip()
    if not s or len(s) > 400:
        return None
    try:
        if re.fullmatch(r"[-+]?(?:\d+\.?\d*|\.\d+)", s):
            return Fraction(s)
        m = re.fullmatch(r"([-+]?(?:\d+\.?\d*|\.\d+))/([-+]?(?:\d+\.?\d*|\.\d+))", s)
        if m:
            den = Fraction(m.group(2))
            return Fraction(m.group(1)) / den if den else None
        m = _FRAC_RE.match(s)
        if m:
            den = Fraction(m.group(3))
            if not den:
                return None
            value = Fraction(m.group(2)) / den
            return -value if m.group(1) == "-" else value
    except (ValueError, ZeroDivisionError):
        return None
    return None


@dataclass(frozen=True)
class Structure:
    r"""A normalised answer split into parts for element-wise comparison.

    Attributes:
        kind: ``"atom"`` (one value), ``"list"`` (bare comma list or ``\{...\}`` set: unordered),
            ``"bracket"`` (tuple or interval: ordered, brackets must match) or ``"union"``
            (``\cup`` of parts, ordered).
        parts: The element strings (a single element for ``"atom"``).
        brackets: The opening and closing bracket for ``"bracket"``, else ``""``.
    """

    kind: str
    parts: tuple[str, ...]
    brackets: str = ""


def split_structure(s: str) -> Structure:
    r"""Split a normalised answer into an atom, an unordered list/set, a tuple/interval or a union.

    ``(1,2)`` and ``[1,2)`` are brackets (ordered, and the bracket characters must agree),
    ``\{1,2\}`` and ``1,2`` are unordered lists, ``A\cupB`` is a union.

    Args:
        s: A normalised answer.

    Returns:
        The `Structure`.
    """
    union = split_top_level(s, "\\cup")
    if len(union) > 1:
        return Structure("union", tuple(union))
    if s.startswith("\\{") and s.endswith("\\}"):
        inner = s[2:-2]
        if _balanced(inner):
            return Structure("list", tuple(split_top_level(inner)))
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]" and _outer_pair(s):
        parts = split_top_level(s[1:-1])
        if len(parts) > 1:
            return Structure("bracket", tuple(parts), s[0] + s[-1])
    parts = split_top_level(s)
    if len(parts) > 1:
        return Structure("list", tuple(parts))
    return Structure("atom", (s,))


def _balanced(s: str) -> bool:
    depth = 0
    for c in s:
        if c in "{([":
            depth += 1
        elif c in "})]":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _outer_pair(s: str) -> bool:
    """Whether the first bracket of ``s`` closes at its last character (any of ``()[]``)."""
    depth = 0
    for i, c in enumerate(s):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i == len(s) - 1
    return False

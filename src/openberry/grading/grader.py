r"""Answer equivalence: our extraction and normalisation, then math-verify under a hard time limit.

Pipeline for one (prediction, gold) pair:

1. **Extraction** (`openberry.grading.extract.extract_answer`): the prediction's last box, ``####``
   line or "the answer is" sentence; a bare answer such as ``0.5`` is taken whole; otherwise the
   last number (``GraderConfig.fallback``). The gold is extracted the same way but taken whole when
   it has no marker; a gold whose final boxes belong together (`final_boxes`: "\boxed{1} and
   \boxed{2}") is the set of them, though its last box alone is accepted too. The prediction's
   answer is its last box, but two more forms are tried: the prediction's own final boxes joined
   the same way, and, when the gold has k > 1 parts, the last boxes holding exactly k parts between
   them ("max \boxed{2} ... min \boxed{1}").
2. **Fast path, in-process** (no sympy): `normalize_answer` on both sides, then string equality or
   exact numeric comparison with `fractions.Fraction`, element-wise for tuples, intervals and
   (unordered) lists and sets. Integers and fractions compare exactly; when either side is written
   with a decimal point the relative tolerance is 1e-4 (``GraderConfig.rel_tol``). A side written
   with a percent sign matches either reading (``50\%`` equals ``50`` and ``0.5``), as in
   math-verify. A bare ``1,22`` is also read as ``1.22`` when its comma cannot separate thousands
   (`decimal_comma`). When both sides are plain numbers (or tuples/lists of them) the fast path's
   "not equal" is final, since math-verify would compare the same numbers; one number against
   several (``32349`` vs ``32, 349``) is "not equal" too.
3. **Input guards**: answers that are too long, too deeply nested or that denote numbers with more
   than ``max_power_digits`` digits (``9^{9^{9^{9}}}``, ``10^{10^{7}}``, ``(10^{8})!``) are refused
   at once with a reason instead of being handed to sympy.
4. **Slow path**: math-verify (``math_verify.parse`` + ``math_verify.verify``) on our normalised
   forms, then on the raw extracted forms, and, for a solution with no box or answer sentence, on
   the whole solution text (math-verify's own extraction, which finds a final LaTeX expression the
   last number misses). It runs in a `pebble.ProcessPool` worker with a hard wall-clock limit per
   pair. math-verify's own ``signal.alarm`` timeouts work inside the worker (pebble runs tasks in
   the worker's main thread) and are the first line of defence; when sympy is stuck in C code the
   pool kills the worker (SIGTERM is left at its default action in workers, so the kill is
   immediate) and starts a new one, and the pair gets ``Verdict(False, "timeout after T s")``.

A pair is correct when the fast path says equal, else when math-verify says equal on any candidate
form. Departures from the references: math-verify alone extracts from the whole solution with its
own rules and runs in the caller's thread (signals only, no hard limit); the PRM800K grader only
compares boxed answers with string normalisation and sympy simplification, with no time limit.
math-verify reads final boxes only as one set; we also accept the last box alone, on either side:
a prediction may box a step before its answer, and a reference solution may box one answer in two
forms ("\boxed{x+11} or \boxed{11+x}"), which math-verify would read as a set of two. A
single-variable inequality equals its interval in both directions (``-2 \le x \le 7`` and
``x \in [-2,7]``), where math-verify by default accepts the inequality only on the gold side
(``allow_set_relation_comp``).
Nothing here ever calls ``eval``/``exec`` on model text.

The pool is created on first need, reused, grown when a batch asks for more workers, and shut down
by `Grader.close` (also a context manager, and registered with `atexit`, which keeps a grader alive
until it is closed or the interpreter exits). Workers fork on Linux, so a calling script needs no
``if __name__ == "__main__"`` guard; elsewhere they spawn.
"""

from __future__ import annotations

import atexit
import logging
import math
import multiprocessing
import re
import signal
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

from openberry.grading.extract import (
    Fallback,
    all_boxed,
    extract_answer,
    final_boxes,
    looks_like_bare_answer,
)
from openberry.grading.normalize import (
    Structure,
    decimal_comma,
    has_percent,
    normalize_answer,
    parse_number,
    split_structure,
    split_top_level,
)

__all__ = ["Grader", "GraderConfig", "Verdict", "grade", "grade_many", "is_equivalent"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """The grade of one prediction against one gold answer.

    Attributes:
        correct: Whether the prediction's answer equals the gold answer.
        reason: Why it is not correct ("no answer found", "not equivalent", "timeout after 5.0 s",
            "gold unparseable", a guard's message...); None when correct.
        pred: The answer extracted from the prediction (None when nothing was found).
        gold: The gold answer as extracted.
    """

    correct: bool
    reason: str | None = None
    pred: str | None = None
    gold: str | None = None


@dataclass(frozen=True)
class GraderConfig:
    """Settings of a `Grader`.

    Attributes:
        timeout: Hard wall-clock limit in seconds for the slow (math-verify) path of one pair.
        fallback: Extraction fallback for predictions without a box or answer marker (see
            `extract_answer`); ``"auto"`` takes bare answers whole and else the last number.
        rel_tol: Relative tolerance of the numeric fast path when a side has a decimal point.
        workers: Worker processes for single calls; `grade_many` may ask for more.
        max_input_chars: Longer prediction or gold texts are refused before extraction.
        max_answer_chars: Longer extracted answers are refused before the slow path.
        max_nesting: Deeper bracket nesting in an answer is refused before the slow path.
        max_power_digits: Answers denoting integers with more digits are refused before the slow
            path; None disables this guard.
        mv_timeout: math-verify's own (signal, whole seconds) timeout inside the worker; None means
            ``max(1, int(timeout / 2))``.
        start_method: multiprocessing start method of the workers; None means "fork" on Linux
            (fast, and works from scripts without an ``if __name__ == "__main__"`` guard) and
            "spawn" elsewhere.
        max_tasks_per_worker: Recycle a worker after this many pairs (bounds sympy's caches).
    """

    timeout: float = 5.0
    fallback: Fallback = "auto"
    rel_tol: float = 1e-4
    workers: int = 1
    max_input_chars: int = 1_000_000
    max_answer_chars: int = 2_000
    max_nesting: int = 40
    max_power_digits: int | None = 100_000
    mv_timeout: int | None = None
    start_method: str | None = None
    max_tasks_per_worker: int = 5_000

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError(f"timeout must be > 0, got {self.timeout}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")


@dataclass(frozen=True)
class _Job:
    """A pair that needs math-verify: the forms to try, in order."""

    pred: str | None
    gold: str
    candidates: tuple[tuple[str, str, bool], ...] = field(default_factory=tuple)


# ----------------------------------------------------------------------------------------------
# fast path


def _num_close(a: Fraction, b: Fraction, approx: bool, rel_tol: float) -> bool:
    if a == b:
        return True
    if not approx:
        return False
    return abs(a - b) <= Fraction(rel_tol) * max(abs(a), abs(b))


def _compare_atoms(a: str, b: str, pct: tuple[bool, bool], rel_tol: float) -> bool | None:
    if a == b:
        return True
    va, vb = parse_number(a), parse_number(b)
    if va is None or vb is None:
        return None
    approx = "." in a or "." in b
    xs = [va, va / 100] if pct[0] else [va]
    ys = [vb, vb / 100] if pct[1] else [vb]
    return any(_num_close(x, y, approx, rel_tol) for x in xs for y in ys)


def _fast_compare(a: str, b: str, pct: tuple[bool, bool], rel_tol: float) -> bool | None:
    """True (equal), False (certainly different numbers) or None (ask math-verify)."""
    if a == b:
        return True
    if not a or not b:
        return None
    sa, sb = split_structure(a), split_structure(b)
    if sa.kind == "atom" and sb.kind == "atom":
        return _compare_atoms(a, b, pct, rel_tol)
    if sa.kind != sb.kind or len(sa.parts) != len(sb.parts):
        # One number against several ("32349" vs "32, 349"): certainly different.
        if "atom" in (sa.kind, sb.kind) and _all_numbers(sa) and _all_numbers(sb):
            return False
        return None
    if sa.kind == "bracket" and sa.brackets != sb.brackets:
        return None
    if sa.kind in ("bracket", "union"):
        results = [
            _fast_compare(x.strip(), y.strip(), pct, rel_tol)
            for x, y in zip(sa.parts, sb.parts, strict=True)
        ]
        if all(r is True for r in results):
            return True
        if all(r is not None for r in results):
            return False
        return None
    # unordered list or set: greedy matching (answers are short)
    remaining = [y.strip() for y in sb.parts]
    undecided = False
    for x in sa.parts:
        x = x.strip()
        hit = None
        for j, y in enumerate(remaining):
            r = _fast_compare(x, y, pct, rel_tol)
            if r is True:
                hit = j
                break
            if r is None:
                undecided = True
        if hit is None:
            return None if undecided else False
        remaining.pop(hit)
    return True


def _all_numbers(st: Structure) -> bool:
    return all(parse_number(part.strip()) is not None for part in st.parts)


# ----------------------------------------------------------------------------------------------
# guards


def _max_nesting(s: str) -> int:
    depth = best = 0
    for c in s:
        if c in "{([":
            depth += 1
            best = max(best, depth)
        elif c in "})]":
            depth = max(0, depth - 1)
    return best


_POWER_BASE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*\^\s*")
_FACTORIAL_RE = re.compile(r"(?:\(([^()]*)\)|\{([^{}]*)\}|(\d+))\s*!")


def _log10_value(expr: str, depth: int = 0) -> float | None:
    """log10 of a numeric literal or numeric power tower, None when not numeric (or too deep)."""
    expr = expr.strip()
    while expr.startswith("{") and expr.endswith("}") and _brace_end(expr, 0) == len(expr) - 1:
        expr = expr[1:-1].strip()
    m = re.fullmatch(r"(\d+)(?:\.\d+)?", expr)
    if m:
        digits = m.group(1).lstrip("0") or "0"
        if digits == "0":
            return float("-inf")
        head = float(digits[:15])
        return math.log10(head) + max(0, len(digits) - 15)
    if depth > 20:
        return None
    m = _POWER_BASE_RE.match(expr)
    if not m:
        return None
    exp_text = _exponent_text(expr, m.end())
    if exp_text is None or m.end() + len(exp_text) != len(expr):
        return None
    base = _log10_value(m.group(1), depth + 1)
    exp_log = _log10_value(exp_text, depth + 1)
    if base is None or exp_log is None:
        return None
    if exp_log > 300:
        return float("inf")
    return (10.0**exp_log) * max(base, 0.0)


def _brace_end(s: str, i: int) -> int | None:
    depth = 0
    for j in range(i, len(s)):
        if s[j] == "{":
            depth += 1
        elif s[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return None


def _exponent_text(s: str, i: int) -> str | None:
    if i >= len(s):
        return None
    if s[i] == "{":
        end = _brace_end(s, i)
        return None if end is None else s[i : end + 1]
    m = re.match(r"\d+", s[i:])
    return m.group(0) if m else None


def _estimated_digits(s: str) -> float:
    """A rough upper estimate of the digits of the largest integer literal, power or factorial."""
    best = 0.0
    for m in _POWER_BASE_RE.finditer(s):
        exp_text = _exponent_text(s, m.end())
        if exp_text is None:
            continue
        base = _log10_value(m.group(1))
        exp_log = _log10_value(exp_text)
        if base is None or exp_log is None or base <= 0:
            continue
        digits = float("inf") if exp_log > 300 else (10.0**exp_log) * base
        best = max(best, digits)
    for m in _FACTORIAL_RE.finditer(s):
        log_n = _log10_value(m.group(1) or m.group(2) or m.group(3))
        if log_n is None or log_n < 1:
            continue
        if log_n > 300:
            return float("inf")
        n = 10.0**log_n
        best = max(best, n * math.log10(n / math.e))  # Stirling: digits of n!
    return best


def _guard(answer: str, who: str, cfg: GraderConfig) -> str | None:
    if len(answer) > cfg.max_answer_chars:
        return f"{who} too long ({len(answer)} chars > {cfg.max_answer_chars})"
    depth = _max_nesting(answer)
    if depth > cfg.max_nesting:
        return f"{who} too deeply nested (depth {depth} > {cfg.max_nesting})"
    if cfg.max_power_digits is not None:
        digits = _estimated_digits(answer)
        if digits > cfg.max_power_digits:
            shown = "an astronomical number of" if math.isinf(digits) else f"about {digits:.3g}"
            return f"{who} too large to evaluate ({shown} digits > {cfg.max_power_digits})"
    return None


# ----------------------------------------------------------------------------------------------
# worker side (runs in the pool's processes)


def _worker_init() -> None:
    """Pool initializer: immediate SIGTERM, quiet math-verify logs, warm imports."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for name in ("math_verify", "latex2sympy2_extended"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        from math_verify import parse, verify

        verify(parse("$\\frac{1}{2}$"), parse("$0.5$"))
    except Exception:  # a warm-up failure shows up again on the real task
        logging.getLogger(__name__).debug("math-verify warm-up failed", exc_info=True)


def _wrap(latex: str) -> str:
    if "$" in latex or "\\boxed" in latex or "\\(" in latex or "\\[" in latex:
        return latex
    return f"${latex}$"


def _verify_candidates(
    candidates: Sequence[tuple[str, str, bool]], mv_timeout: int, budget: float
) -> tuple[bool, str | None, str | None]:
    """Run math-verify on each (gold, pred, pred_is_raw_text) form until one verifies (in a worker).

    A raw-text prediction is handed to math-verify unwrapped so that its own extraction applies.

    Returns:
        ``(True, None, answer)`` on a match, where ``answer`` is the text math-verify extracted
        from a raw-text prediction (else None); ``(False, reason, None)`` otherwise.
    """
    from math_verify import parse, verify

    start = time.monotonic()
    parsed: dict[str, list[Any]] = {}
    gold_parsed = False
    ran_out = False

    def cached(text: str, raw: bool = False) -> list[Any]:
        key = ("raw:" if raw else "tex:") + text
        if key not in parsed:
            parsed[key] = parse(text if raw else _wrap(text), parsing_timeout=mv_timeout)
        return parsed[key]

    for gold, pred, raw in candidates:
        if time.monotonic() - start > budget:
            ran_out = True
            break
        g = cached(gold)
        if not g:
            continue
        gold_parsed = True
        p = cached(pred, raw)
        if p and verify(g, p, timeout_seconds=mv_timeout):
            found = p[-1] if raw and isinstance(p[-1], str) else None
            return True, None, found
    if ran_out:
        return False, "not equivalent (math-verify budget used up)", None
    return False, "not equivalent" if gold_parsed else "gold unparseable", None


def _start_method(requested: str | None) -> str:
    if requested is not None:
        return requested
    return "fork" if sys.platform.startswith("linux") else "spawn"


# ----------------------------------------------------------------------------------------------
# preparation steps (in-process, before any worker is asked)


def _read_answers(
    pred: str | None, gold: str | None, cfg: GraderConfig
) -> Verdict | tuple[str, str | None, tuple[str, ...], bool]:
    """Extract both answers: (prediction text, its answer, the gold's readings with the reported
    one first, whether math-verify should also read the raw prediction text), or the verdict when
    one is missing or too long."""
    if gold is None or not str(gold).strip():
        return Verdict(False, "gold answer is empty", None, None)
    pred_text = "" if pred is None else str(pred)
    gold_text = str(gold)
    if len(gold_text) > cfg.max_input_chars:
        return Verdict(False, f"gold too long ({len(gold_text)} chars)", None, None)
    gold_ans = extract_answer(gold_text, fallback="whole")
    if gold_ans is None:
        return Verdict(False, "gold unparseable", None, None)
    # A gold given over several boxes ("\\boxed{1} and \\boxed{2}") is the set of them. Its last box
    # alone is still accepted: reference solutions also box one answer twice ("\\boxed{x+11} or
    # \\boxed{11+x}"), and before sets were read a gold was always its last box.
    box_set = _box_set(gold_text, gold_ans)
    golds = (gold_ans,) if box_set is None else (box_set, gold_ans)
    gold_ans = golds[0]
    if len(pred_text) > cfg.max_input_chars:
        reason = f"prediction too long ({len(pred_text)} chars > {cfg.max_input_chars})"
        return Verdict(False, reason, None, gold_ans)
    pred_ans = extract_answer(pred_text, fallback="none")
    marked = pred_ans is not None
    if pred_ans is None:
        pred_ans = extract_answer(pred_text, fallback=cfg.fallback)
    # An unmarked solution (no box or answer sentence) is also read by math-verify's own
    # extraction, which finds a final LaTeX expression that the last number misses.
    raw_text = not marked and cfg.fallback != "none" and not looks_like_bare_answer(pred_text)
    if pred_ans is None and not raw_text:
        return Verdict(False, "no answer found", None, gold_ans)
    return pred_text, pred_ans, golds, raw_text


def _too_long_verdict(pred_ans: str | None, gold_ans: str, cfg: GraderConfig) -> Verdict | None:
    """Over-long answers are compared by exact text equality only: no normalisation or sympy."""
    for answer, who in ((gold_ans, "gold"), (pred_ans, "answer")):
        if answer is not None and len(answer) > cfg.max_answer_chars:
            if pred_ans is not None and pred_ans.strip() == gold_ans.strip():
                return Verdict(True, None, pred_ans, gold_ans)
            reason = f"{who} too long ({len(answer)} chars > {cfg.max_answer_chars})"
            return Verdict(False, reason, pred_ans, gold_ans)
    return None


def _joined_boxes(pred_text: str, gold_norm: str, cfg: GraderConfig) -> str | None:
    """A k-part gold answer given over several boxes ("\\boxed{3} ... \\boxed{1}"): the last
    boxes whose parts add up to exactly k, joined; None when there are no such boxes."""
    k = len(split_top_level(gold_norm))
    if k <= 1:
        return None
    count, tail = 0, []
    for box in reversed(all_boxed(pred_text)):
        if len(box) > cfg.max_answer_chars:
            break
        count += len(split_top_level(normalize_answer(box)))
        tail.insert(0, box)
        if count >= k:
            break
    if count == k and len(tail) > 1:
        return ", ".join(tail)
    return None


def _readings(answer: str) -> list[str]:
    """The normalised form of an answer, and its decimal-comma reading when it has one
    (``1,22`` -> ``1.22``; see `decimal_comma`)."""
    decimal = decimal_comma(answer)
    normalized = normalize_answer(answer)
    return [normalized] if decimal is None else [normalized, decimal]


def _box_set(text: str, answer: str | None) -> str | None:
    """The boxes that end ``text`` as one answer ("\\boxed{1} and \\boxed{2}" -> "1, 2"), when
    there are several and ``answer`` is the last of them; else None (see `final_boxes`)."""
    boxes = final_boxes(text)
    if len(boxes) > 1 and answer == boxes[-1]:
        return ", ".join(boxes)
    return None


def _fast_verdict(
    preds: Sequence[str],
    pred_ans: str | None,
    golds: Sequence[str],
    raw_text: bool,
    cfg: GraderConfig,
) -> Verdict | None:
    """The fast path's verdict: correct when a form matches, wrong when every form is a
    certainly different number and the raw text need not be read; else None (math-verify)."""
    gold_ans = golds[0]
    gold_forms = [(form, has_percent(g)) for g in golds for form in _readings(g)]
    decided_false = True
    for p in preds:
        for p_form in _readings(p):
            for g_form, gold_pct in gold_forms:
                pct = (has_percent(p), gold_pct)
                result = _fast_compare(p_form, g_form, pct, cfg.rel_tol)
                if result is True:
                    return Verdict(True, None, pred_ans, gold_ans)
                if result is None:
                    decided_false = False
    if decided_false and not raw_text:
        return Verdict(False, "not equivalent", pred_ans, gold_ans)
    return None


def _guard_verdict(
    preds: Sequence[str], pred_ans: str | None, gold_ans: str, cfg: GraderConfig
) -> Verdict | None:
    """Wrong, with a logged warning, when the gold or the first answer form is unsafe to hand to
    sympy (`_guard`); else None."""
    for answer, who in ((gold_ans, "gold"), *((p, "answer") for p in preds[:1])):
        reason = _guard(answer, who, cfg)
        if reason is not None:
            logger.warning("graded false without evaluating: %s", reason)
            return Verdict(False, reason, pred_ans, gold_ans)
    return None


def _slow_candidates(
    preds: Sequence[str], golds: Sequence[str], cfg: GraderConfig
) -> list[tuple[str, str, bool]]:
    """(gold form, answer form, raw) pairs for math-verify: normalised, then as written, for
    each gold reading and each answer form that pass `_guard`; no empty or repeated pair."""
    candidates: list[tuple[str, str, bool]] = []
    for i, g in enumerate(golds):
        if i and _guard(g, "gold", cfg) is not None:  # the first was checked by `_guard_verdict`
            continue
        for p in preds:
            if _guard(p, "answer", cfg) is not None:
                continue
            for gold_form, pred_form in ((normalize_answer(g), normalize_answer(p)), (g, p)):
                cand = (gold_form, pred_form, False)
                if gold_form and pred_form and cand not in candidates:
                    candidates.append(cand)
    return candidates


# ----------------------------------------------------------------------------------------------
# the grader


class Grader:
    """Decides whether predictions match gold answers; safe to call from several threads.

    Example:
        >>> with Grader(GraderConfig(timeout=2.0)) as g:
        ...     g.grade("so the answer is $\\boxed{\\frac{1}{2}}$", "0.5").correct
        True
    """

    def __init__(self, config: GraderConfig | None = None, **overrides: Any) -> None:
        """Create a grader (no process is started until the slow path is needed).

        Args:
            config: Settings; defaults to `GraderConfig()`.
            **overrides: Field overrides applied on top of ``config`` (e.g. ``timeout=2``).
        """
        cfg = config or GraderConfig()
        self.config: GraderConfig = replace(cfg, **overrides) if overrides else cfg
        self._lock = threading.Lock()
        self._pool: Any = None
        self._pool_size = 0
        self._retired: list[Any] = []
        self._atexit_registered = False

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker processes (a later call starts new ones)."""
        with self._lock:
            pools = [*self._retired, self._pool]
            self._pool, self._pool_size, self._retired = None, 0, []
            if self._atexit_registered:
                atexit.unregister(self.close)
                self._atexit_registered = False
        for pool in pools:
            if pool is None:
                continue
            try:
                pool.stop()
                pool.join(timeout=10)
            except Exception:  # shutting down; nothing useful to do
                logger.debug("error while stopping the grader pool", exc_info=True)

    def _get_pool(self, workers: int) -> Any:
        with self._lock:
            if self._pool is not None and self._pool_size >= workers and self._pool.active:
                return self._pool
            from pebble import ProcessPool

            if self._pool is not None:
                self._pool.close()  # let running pairs finish; joined in close()
                self._retired.append(self._pool)
            self._pool = ProcessPool(
                max_workers=workers,
                max_tasks=self.config.max_tasks_per_worker,
                initializer=_worker_init,
                context=multiprocessing.get_context(_start_method(self.config.start_method)),
            )
            self._pool_size = workers
            if not self._atexit_registered:
                atexit.register(self.close)
                self._atexit_registered = True
            logger.debug("started a grader pool with %d worker(s)", workers)
            return self._pool

    # -- preparation (in-process) -----------------------------------------------------------

    def _prepare(self, pred: str | None, gold: str | None) -> Verdict | _Job:
        """A verdict decided in-process, or the `_Job` of forms math-verify must compare."""
        cfg = self.config
        read = _read_answers(pred, gold, cfg)
        if isinstance(read, Verdict):
            return read
        pred_text, pred_ans, golds, raw_text = read
        gold_ans = golds[0]
        verdict = _too_long_verdict(pred_ans, gold_ans, cfg)
        if verdict is not None:
            return verdict
        preds = [] if pred_ans is None else [pred_ans]
        gold_norm = normalize_answer(gold_ans)
        for extra in (_joined_boxes(pred_text, gold_norm, cfg), _box_set(pred_text, pred_ans)):
            if extra is not None and extra not in preds:
                preds.append(extra)
        verdict = _fast_verdict(preds, pred_ans, golds, raw_text, cfg)
        if verdict is None:
            verdict = _guard_verdict(preds, pred_ans, gold_ans, cfg)
        if verdict is not None:
            return verdict
        candidates = _slow_candidates(preds, golds, cfg)
        if raw_text:
            candidates.extend((g, pred_text, True) for g in golds)
        return _Job(pred_ans, gold_ans, tuple(candidates))

    def _mv_timeout(self, timeout: float) -> int:
        if self.config.mv_timeout is not None:
            return self.config.mv_timeout
        return max(1, int(timeout / 2))

    def _submit(self, pool: Any, job: _Job, timeout: float) -> Any:
        return pool.schedule(
            _verify_candidates,
            args=(job.candidates, self._mv_timeout(timeout), timeout * 0.8),
            timeout=timeout,
        )

    def _collect(self, job: _Job, future: Any, timeout: float, wait: float) -> Verdict:
        from concurrent.futures import CancelledError
        from concurrent.futures import TimeoutError as FutureTimeout

        try:
            ok, reason, found = future.result(timeout=wait)
        except (TimeoutError, FutureTimeout):
            future.cancel()
            logger.warning(
                "grading timed out after %.1f s (pred %.60r, gold %.60r)",
                timeout,
                job.pred,
                job.gold,
            )
            return Verdict(False, f"timeout after {timeout:.1f} s", job.pred, job.gold)
        except CancelledError:
            return Verdict(False, "grading cancelled", job.pred, job.gold)
        except Exception as exc:  # a crashed worker must not crash the caller
            logger.warning("grader worker failed: %s: %s", type(exc).__name__, exc)
            return Verdict(False, f"grader error: {type(exc).__name__}", job.pred, job.gold)
        if ok:
            # matched through math-verify's own extraction: report the answer it found
            return Verdict(True, None, found or job.pred, job.gold)
        if job.pred is None:
            reason = "no answer found"
        return Verdict(False, reason, job.pred, job.gold)

    # -- public API -------------------------------------------------------------------------

    def grade(self, pred: str | None, gold: str | None, *, timeout: float | None = None) -> Verdict:
        """Grade one prediction against one gold answer.

        Args:
            pred: Model output: a whole solution or a bare answer.
            gold: Reference answer (bare, or a solution with a box or ``####``).
            timeout: Hard limit in seconds for the slow path; defaults to ``config.timeout``.

        Returns:
            The `Verdict`. Never raises for bad model text and never waits much longer than
            ``timeout`` once a worker is up.
        """
        job = self._prepare(pred, gold)
        if isinstance(job, Verdict):
            return job
        t = self.config.timeout if timeout is None else float(timeout)
        pool = self._get_pool(self.config.workers)
        future = self._submit(pool, job, t)
        # pebble enforces t once the pair starts; the extra wait covers a worker (re)starting.
        return self._collect(job, future, t, wait=t + 60.0)

    def is_equivalent(self, pred: str | None, gold: str | None) -> bool:
        """Whether ``pred`` grades as equal to ``gold`` (see `grade`).

        Args:
            pred: Model output or bare answer.
            gold: Reference answer.

        Returns:
            ``grade(pred, gold).correct``.
        """
        return self.grade(pred, gold).correct

    def grade_many(
        self,
        pairs: Iterable[tuple[str | None, str | None]],
        *,
        workers: int | None = None,
        timeout: float | None = None,
        progress: Any = None,
    ) -> list[Verdict]:
        """Grade many pairs, running the slow path in parallel; results keep the input order.

        Args:
            pairs: ``(pred, gold)`` pairs.
            workers: Worker processes for this batch; defaults to ``config.workers``.
            timeout: Per-pair hard limit in seconds; defaults to ``config.timeout``.
            progress: Optional callable called with the number of pairs just finished (e.g. a
                tqdm bar's ``update``).

        Returns:
            One `Verdict` per pair, in input order.
        """
        t = self.config.timeout if timeout is None else float(timeout)
        n_workers = max(1, workers or self.config.workers)
        prepared = [self._prepare(p, g) for p, g in pairs]
        slow = [i for i, job in enumerate(prepared) if isinstance(job, _Job)]
        if progress is not None and len(prepared) > len(slow):
            progress(len(prepared) - len(slow))
        results: list[Verdict | None] = [
            job if isinstance(job, Verdict) else None for job in prepared
        ]
        if slow:
            pool = self._get_pool(n_workers)
            futures = {i: self._submit(pool, prepared[i], t) for i in slow}  # type: ignore[arg-type]
            # Each pair is bounded by pebble; the batch as a whole by this generous deadline.
            deadline = time.monotonic() + 60.0 + (len(slow) / n_workers + 1) * (t + 1.0)
            for i in slow:
                wait = max(t, deadline - time.monotonic())
                job = prepared[i]
                assert isinstance(job, _Job)
                results[i] = self._collect(job, futures[i], t, wait=wait)
                if progress is not None:
                    progress(1)
        return [r for r in results if r is not None]


# ----------------------------------------------------------------------------------------------
# module-level convenience API (one shared grader)

_default_grader: Grader | None = None
_default_lock = threading.Lock()


def _shared() -> Grader:
    global _default_grader
    with _default_lock:
        if _default_grader is None:
            _default_grader = Grader()
        return _default_grader


def grade(pred: str | None, gold: str | None, *, timeout: float = 5.0) -> Verdict:
    """Grade one prediction with the shared default `Grader`.

    Args:
        pred: Model output: a whole solution or a bare answer.
        gold: Reference answer.
        timeout: Hard limit in seconds for the slow path.

    Returns:
        The `Verdict`.
    """
    return _shared().grade(pred, gold, timeout=timeout)


def is_equivalent(pred: str | None, gold: str | None, *, timeout: float = 5.0) -> bool:
    """Whether ``pred`` equals ``gold`` according to the shared default `Grader`.

    Args:
        pred: Model output or bare answer.
        gold: Reference answer.
        timeout: Hard limit in seconds for the slow path.

    Returns:
        ``grade(pred, gold).correct``.
    """
    return grade(pred, gold, timeout=timeout).correct


def grade_many(
    pairs: Iterable[tuple[str | None, str | None]],
    *,
    workers: int = 2,
    timeout: float = 5.0,
) -> list[Verdict]:
    """Grade many pairs in parallel with the shared default `Grader`, keeping input order.

    Args:
        pairs: ``(pred, gold)`` pairs.
        workers: Worker processes for the slow path.
        timeout: Per-pair hard limit in seconds.

    Returns:
        One `Verdict` per pair, in input order.
    """
    return _shared().grade_many(pairs, workers=workers, timeout=timeout)

"""Answer grading: extraction, normalisation and equivalence with a hard time limit.

Importing this package is cheap: math-verify, sympy and pebble are imported only inside the worker
processes and when the slow path first needs a pool. See ``docs/grader.md``.
"""

from __future__ import annotations

from openberry.grading.extract import (
    all_boxed,
    extract_answer,
    final_boxes,
    last_boxed,
    looks_like_bare_answer,
)
from openberry.grading.grader import (
    Grader,
    GraderConfig,
    Verdict,
    grade,
    grade_many,
    is_equivalent,
)
from openberry.grading.normalize import decimal_comma, has_percent, normalize_answer, parse_number

__all__ = [
    "Grader",
    "GraderConfig",
    "Verdict",
    "all_boxed",
    "decimal_comma",
    "extract_answer",
    "final_boxes",
    "grade",
    "grade_many",
    "has_percent",
    "is_equivalent",
    "last_boxed",
    "looks_like_bare_answer",
    "normalize_answer",
    "parse_number",
]

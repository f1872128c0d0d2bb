"""The built-in arithmetic task: seeded multi-step integer problems, fixed splits, and writers of
solutions, slips, critiques, OpenLongCoT trees, rating labels and comparison pairs.

Why it exists: it is the benchmark every component runs offline, and the training corpus of the
tiny from-scratch model ``berry-tiny``: a small model trained on a CPU learns it yet still makes
mistakes that a step checker catches, so the task leaves room for search. `ArithmeticConfig`
holds the difficulty knobs.

Problems look like ``Compute 37 + 48 * 2 - 15.``; solutions like::

    48 * 2 = 96
    37 + 96 = 133
    133 - 15 = 118
    The answer is \\boxed{118}.

Expressions are parsed and evaluated by our own AST (parentheses first, then ``*``, then left to
right), never by `eval`. Splits are fixed by a hash of the canonical expression, so they never
overlap (see `generate`). Modules: `config` (knobs, error type), `expression` (AST, parser,
reduction), `generate` (drawing, splits, `load_split`), `solutions` (text writers, checker),
`trees` (OpenLongCoT trees), `corpus` (`corpus_rows` for ``berry data corpus``).
"""

from openberry.data.arithmetic.config import OPERATORS, ArithmeticConfig, ArithmeticTaskError
from openberry.data.arithmetic.corpus import CORPUS_KINDS, DEFAULT_SLIP_RATES, corpus_rows
from openberry.data.arithmetic.expression import (
    BinOp,
    Expr,
    Num,
    Step,
    evaluate,
    expression_of,
    parse_expression,
    parse_step,
    question_text,
    render,
)
from openberry.data.arithmetic.generate import (
    SOURCE,
    SPLIT_FRACTIONS,
    SPLIT_SIZES,
    SPLITS,
    draw_expression,
    iter_examples,
    load_split,
    make_example,
    split_of,
)
from openberry.data.arithmetic.solutions import (
    SLIP_KINDS,
    ComparisonPair,
    Critique,
    RatingLabel,
    Slip,
    Solution,
    SolutionCheck,
    answer_line,
    check_solution,
    random_slipped_solution,
    rating_labels,
    slip_result,
    write_critique,
    write_pair,
    write_slipped_solution,
    write_solution,
)
from openberry.data.arithmetic.trees import branching_tree, critique_tree, solution_tree

__all__ = [
    "CORPUS_KINDS",
    "DEFAULT_SLIP_RATES",
    "OPERATORS",
    "SLIP_KINDS",
    "SOURCE",
    "SPLITS",
    "SPLIT_FRACTIONS",
    "SPLIT_SIZES",
    "ArithmeticConfig",
    "ArithmeticTaskError",
    "BinOp",
    "ComparisonPair",
    "Critique",
    "Expr",
    "Num",
    "RatingLabel",
    "Slip",
    "Solution",
    "SolutionCheck",
    "Step",
    "answer_line",
    "branching_tree",
    "check_solution",
    "corpus_rows",
    "critique_tree",
    "draw_expression",
    "evaluate",
    "expression_of",
    "iter_examples",
    "load_split",
    "make_example",
    "parse_expression",
    "parse_step",
    "question_text",
    "random_slipped_solution",
    "rating_labels",
    "render",
    "slip_result",
    "solution_tree",
    "split_of",
    "write_critique",
    "write_pair",
    "write_slipped_solution",
    "write_solution",
]

"""The pretraining mixture of `berry-tiny`: one text document per problem, in every role it plays.

LLaMA-O1 continues pretraining on OpenLongCoT text so that the model reads and writes the tagged
tree language; search then asks one model to act as policy, value, critic, scorer and judge. For
a tiny model trained from scratch, each role is learnt from documents of its own shape (the
frames in `openberry.formats.prompts`), mixed in fixed shares:

``solve``
    ``Question: Q\\nSolution:\\n`` + a solution written by the *policy writer*. Like real
    pretraining text, the corpus is flawed at set rates, and the model learns to imitate it:
    the writer drops each carry or borrow with probability `MixtureConfig.habit_rate` (a
    systematic slip, `write_habitual_solution`: the same step always goes wrong the same way, so
    with a rate above 0.5 greedy decoding repeats it while sampling sometimes does not), and a
    share `slip_rate` of solutions has a random slip instead (`random_slipped_solution`).
``openlongcot``
    A tree in OpenLongCoT form (`tree_to_string`) around a policy-writer solution. A flawed one
    is written, half of the time, as a chain whose ratings turn negative at the slip (value
    targets), half as a critique tree (slip, conclusion, ``<critic>``, ``<refine>``, corrected
    conclusion); a correct one as a branching tree (the correct chain plus rated siblings).
``review``
    ``review_prompt`` + the review line + ``Corrected solution:`` + a whole correct solution: a
    flawed solution (share `review_slip_rate`; a dropped carry when the problem has one, else a
    random slip) gets ``Step k is wrong: ...``, a correct one `REVIEW_OK` (MCTSr's critique and
    rewrite). Corrected solutions are always right: the critic knows what the writer gets wrong.
``self_eval``
    ``self_eval_prompt`` + an integer score: drawn from `CORRECT_SCORES` for a correct solution,
    from `FLAWED_SCORES` for a flawed one (MCTSr's self-reward; the spread gives sampling
    something to average).
``judge``
    ``judge_prompt`` over one correct and one flawed solution (as for review) in random order +
    ``Yes``/``No`` (the PPRM's pairwise question).

Documents are deterministic per (split, index, seed); each row is ``{"id", "role", "text",
"correct"}`` (``correct``: the solution the document is about has no slip; None for judge rows).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from openberry.data.arithmetic.config import ArithmeticConfig, ArithmeticTaskError
from openberry.data.arithmetic.expression import expression_of
from openberry.data.arithmetic.generate import SPLIT_SIZES, derive_seed, iter_examples
from openberry.data.arithmetic.solutions import (
    Solution,
    random_slipped_solution,
    write_critique,
    write_habitual_solution,
    write_solution,
)
from openberry.data.arithmetic.trees import branching_tree, critique_tree, solution_tree
from openberry.formats.prompts import (
    JUDGE_NO,
    JUDGE_YES,
    judge_prompt,
    refine_prompt,
    self_eval_prompt,
    solve_prompt,
)
from openberry.records import Example

__all__ = ["CORRECT_SCORES", "FLAWED_SCORES", "ROLES", "MixtureConfig", "pretraining_docs"]

ROLES: tuple[str, ...] = ("solve", "openlongcot", "review", "self_eval", "judge")
CORRECT_SCORES: tuple[int, ...] = (60, 70, 80, 90, 95)
"""Scores a correct solution gets in ``self_eval`` documents (uniformly)."""
FLAWED_SCORES: tuple[int, ...] = (-90, -70, -50, -30, -10)
"""Scores a flawed solution gets in ``self_eval`` documents (uniformly)."""


@dataclass(frozen=True)
class MixtureConfig:
    """Shares of the document roles and rates of flawed solutions. Field docstrings are help."""

    solve: float = 0.35
    """Share of ``solve`` documents (question, then a step-by-step solution)."""
    openlongcot: float = 0.30
    """Share of OpenLongCoT tree documents (policy and rating-token value)."""
    review: float = 0.15
    """Share of review-and-correct documents (MCTSr's critique and rewrite)."""
    self_eval: float = 0.10
    """Share of self-evaluation documents (a score in [-100, 100])."""
    judge: float = 0.10
    """Share of pairwise-judge documents (is solution A better than B? Yes/No)."""
    habit_rate: float = 0.8
    """Probability that the policy writer (solve and OpenLongCoT documents) drops each carry or
    borrow: the systematic slip that greedy decoding inherits when it is above 0.5."""
    slip_rate: float = 0.1
    """Share of policy-writer solutions with a random slip instead (off by one, wrong product...)."""
    review_slip_rate: float = 0.5
    """Share of flawed solutions among those reviewed and scored."""

    def __post_init__(self) -> None:
        shares = [getattr(self, role) for role in ROLES]
        if any(s < 0 for s in shares) or sum(shares) <= 0:
            raise ArithmeticTaskError(f"role shares must be >= 0 with a positive sum: {shares}")
        for name in ("habit_rate", "slip_rate", "review_slip_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ArithmeticTaskError(f"{name} must lie in [0, 1], got {value}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _policy_solution(example: Example, rng: random.Random, mix: MixtureConfig) -> Solution:
    """A solution as the policy writer writes it: random slip, else carries dropped by habit."""
    expression = expression_of(example.problem)
    if rng.random() < mix.slip_rate:
        return random_slipped_solution(expression, rng)
    return write_habitual_solution(expression, rng, mix.habit_rate)


def _flawed_solution(example: Example, rng: random.Random) -> Solution:
    """A flawed solution to review or judge: the first carry dropped, else a random slip."""
    expression = expression_of(example.problem)
    habitual = write_habitual_solution(expression, rng, 1.0)
    return habitual if not habitual.is_correct else random_slipped_solution(expression, rng)


def _solve(example: Example, rng: random.Random, mix: MixtureConfig) -> tuple[str, bool]:
    solution = _policy_solution(example, rng, mix)
    return solve_prompt(example.problem.question) + solution.text, solution.is_correct


def _openlongcot(example: Example, rng: random.Random, mix: MixtureConfig) -> tuple[str, bool]:
    from openberry.formats.openlongcot import tree_to_string

    solution = _policy_solution(example, rng, mix)
    if solution.is_correct:
        return tree_to_string(branching_tree(example.problem, rng)), True
    if rng.random() < 0.5:
        return tree_to_string(solution_tree(example.problem, solution)), False
    return tree_to_string(critique_tree(example.problem, solution)), False


def _reviewed(example: Example, rng: random.Random, mix: MixtureConfig) -> Solution:
    if rng.random() < mix.review_slip_rate:
        return _flawed_solution(example, rng)
    return write_solution(expression_of(example.problem))


def _review(example: Example, rng: random.Random, mix: MixtureConfig) -> tuple[str, bool]:
    solution = _reviewed(example, rng, mix)
    review = write_critique(solution).text
    corrected = write_solution(solution.expression).text
    prompt = refine_prompt(example.problem.question, solution.text, review)
    return prompt + corrected, solution.is_correct


def _self_eval(example: Example, rng: random.Random, mix: MixtureConfig) -> tuple[str, bool]:
    solution = _reviewed(example, rng, mix)
    score = rng.choice(CORRECT_SCORES if solution.is_correct else FLAWED_SCORES)
    prompt = self_eval_prompt(example.problem.question, solution.text)
    return prompt + str(score), solution.is_correct


def _judge(example: Example, rng: random.Random, mix: MixtureConfig) -> tuple[str, None]:
    good = write_solution(expression_of(example.problem)).text
    bad = _flawed_solution(example, rng).text
    question = example.problem.question
    if rng.random() < 0.5:
        return judge_prompt(question, good, bad) + JUDGE_YES, None
    return judge_prompt(question, bad, good) + JUDGE_NO, None


_WRITERS = {
    "solve": _solve,
    "openlongcot": _openlongcot,
    "review": _review,
    "self_eval": _self_eval,
    "judge": _judge,
}


def pretraining_docs(
    split: str = "train",
    *,
    limit: int | None = None,
    seed: int = 0,
    config: ArithmeticConfig | None = None,
    mixture: MixtureConfig | None = None,
) -> Iterator[dict[str, Any]]:
    """Documents of the mixture, one per problem of `split` (schema: module docstring).

    Args:
        split: Which split's problems (``train`` for training).
        limit: Number of documents; None writes one per problem of the split's default size
            (`SPLIT_SIZES`), a larger limit draws further problems.
        seed: Selects the problems, the roles and the slips.
        config: Difficulty knobs; the defaults when None.
        mixture: Role shares and slip rates; the defaults when None.
    """
    if split not in SPLIT_SIZES:
        raise ArithmeticTaskError(f"unknown arithmetic split {split!r}")
    mix = mixture or MixtureConfig()
    weights = [getattr(mix, role) for role in ROLES]
    stop = SPLIT_SIZES[split] if limit is None else limit
    for index, example in enumerate(
        iter_examples(split, config=config or ArithmeticConfig(), seed=seed, stop=stop)
    ):
        rng = random.Random(derive_seed("arithmetic-pretrain", seed, split, index))
        role = rng.choices(ROLES, weights=weights)[0]
        text, correct = _WRITERS[role](example, rng, mix)
        yield {"id": example.id, "role": role, "text": text, "correct": correct}

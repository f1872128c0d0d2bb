"""Scorers: how good is a whole solution (or a partial one)? Usable by every search method.

A scorer is a generator function ``scorer(problem, solutions)`` that yields model requests to the
engine (`openberry.search.engine`) and returns one float per solution, higher is better, on a
[0, 1] scale. Scorers never see the reference answer.

=============  ===============================================================================
name           score
=============  ===============================================================================
``value``      LLaMA-O1's value head: the solution's lines become an OpenLongCoT chain (one
               ``<expansion>`` per line, ``<conclusion>`` for the answer line) and each step is
               rated ``p(<positive_rating>) / (p(<positive_rating>) + p(<negative_rating>))``
               after its line; the solution's score is the minimum (or last, or mean) rating
               of its steps before the answer line (see ``value_conclusion``).
``self-eval``  MCTSr's self-reward: sampled scores in [-100, 100] after ``Score:``, averaged,
               mapped to [0, 1]; scores >= 95 are replaced by 50 (the MCTSr code's full-score
               suppression).
``logprob``    the policy's mean per-token log-probability of the solution, exponentiated.
``pprm``       LLaMA-Berry's pairwise preference reward model: a judge reads "is solution A
               better than solution B?" in both orders, P(Yes) cancels position bias, and
               Enhanced Borda Count (`openberry.search.ebc`) turns the table into scores.
               The judge frame (``judge_frame``) says how the judge reads a pair: a prompt
               answered Yes/No (``plain``, ``step``), or the judge model's likelihood of the
               two solutions' first differing lines (``likelihood``, `likelihood_preference`).
``pprm-value`` the same EBC over a Bradley-Terry preference built from the ``value`` scores,
               ``P(i > j) = sigmoid(logit v_i - logit v_j)`` (the paper's own BT form), for
               models whose value head is better than their judge.
=============  ===============================================================================

Where a rating context is needed (``value``), earlier steps are written with a positive rating:
the first wrong step is then rated in the context the model was trained on (a correct prefix),
and the minimum over steps catches it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from openberry.formats.openlongcot import RATING_TOKENS, node_line, rating_prompt
from openberry.formats.prompts import (
    JUDGE_NO,
    JUDGE_YES,
    judge_prompt,
    self_eval_prompt,
    solve_prompt,
)
from openberry.models.base import SamplingParams
from openberry.records import Problem
from openberry.search.common import answer_of_text, strip_tags
from openberry.search.ebc import ebc_scores, symmetrize
from openberry.search.engine import Generate, NextTokenProbs, Score, SearchError

__all__ = [
    "JUDGE_FRAMES",
    "JUDGE_FRAME_NAMES",
    "LIKELIHOOD_FRAME",
    "SCORERS",
    "ScorerConfig",
    "aggregate_values",
    "judge_preferences",
    "likelihood_preference",
    "make_scorer",
    "parse_score",
    "parted_preference",
    "parting_items",
    "parting_lines",
    "path_value",
    "rating_value",
    "solution_steps",
    "step_judge_prompt",
    "step_value_prompts",
    "value_preferences",
]

ScoreGen = Generator[Any, Any, list[float]]
Scorer = Callable[[Problem, Sequence[str]], ScoreGen]
SCORERS: tuple[str, ...] = ("value", "self-eval", "logprob", "pprm", "pprm-value")

_NUMBER_RE = re.compile(r"-?\d+\.\d+|-?\d+")
_EPS = 1e-6
PROB_DECIMALS = 4
"""Judge probabilities and value-head ratings are rounded to this many decimals. A backend's float noise from batch
composition (padding, batch width: about 1e-7 on CPU) would otherwise make equal texts get unequal
probabilities and flip EBC's tie-breaks, so a problem searched alone and in a batch would grow
different trees at temperature 0."""


@dataclass(frozen=True)
class ScorerConfig:
    """Settings shared by the scorers."""

    value_aggregate: Literal["min", "last", "mean"] = "min"
    """How step ratings combine into a solution score for ``value``."""
    value_conclusion: bool = False
    """Count the answer line's rating in the aggregate. Off by default: the conclusion's rating
    can rank right solutions below wrong ones, while the other steps' ratings rank them better."""
    value_context: Literal["positive", "predicted"] = "positive"
    """Ratings written after earlier steps when rating a step: all ``positive`` (one round), or
    the model's own ``predicted`` ratings (one round per step)."""
    self_eval_samples: int = 3
    """Reward samples per solution for ``self-eval``."""
    self_eval_temperature: float = 0.95
    """Sampling temperature of self-evaluation (MCTSr: 0.95)."""
    full_score_threshold: float = 95.0
    """Self-eval scores at or above this are suppressed (MCTSr code: >= 95)."""
    full_score_replacement: float = 50.0
    """What a suppressed full score becomes (MCTSr code: 50)."""
    ebc_alpha: float = 0.9
    """EBC weight of the global quantile score against the local win rate."""
    judge_frame: Literal["plain", "step", "likelihood"] = "plain"
    """How the judge reads a pair: ``plain``, both whole solutions and the question
    (`judge_prompt`); ``step``, the step-aligned frame (`step_judge_prompt`) -- for these two use
    the frame the judge was trained on ('berry extract pairs --judge-frame') --; or
    ``likelihood``, the judge model's log-probability of each solution's first line that differs
    from the other's, after the question and the shared lines in the solve frame
    (`likelihood_preference`): any policy is such a judge, best one trained on verified
    solutions ('berry extract best-paths', 'berry train sft')."""


def parse_score(text: str) -> float | None:
    """The last number after the last "Score" in `text` (or in the whole text), clamped to
    [-100, 100]; None when there is no number (MCTSr's reward parser)."""
    cut = text.rfind("Score")
    tail = text[cut:] if cut >= 0 else text
    numbers = _NUMBER_RE.findall(tail)
    if not numbers:
        return None
    return max(-100.0, min(100.0, float(numbers[-1])))


def suppress_full_score(score: float, config: ScorerConfig) -> float:
    return config.full_score_replacement if score >= config.full_score_threshold else score


def solution_steps(text: str) -> list[tuple[str, str]]:
    """A plain-text solution as OpenLongCoT steps: (meta action, line) per non-empty line.

    A line that states the final answer is a ``conclusion``; every other line an ``expansion``.
    Tags of the OpenLongCoT language inside a line are removed (they cannot be written).
    """
    steps = []
    for raw in text.splitlines():
        line = strip_tags(raw).strip()
        if not line:
            continue
        meta = "conclusion" if answer_of_text(line) is not None else "expansion"
        steps.append((meta, line))
    return steps


def step_value_prompts(
    question: str,
    steps: Sequence[tuple[str, str]],
    ratings: Sequence[str] | None = None,
) -> list[str]:
    """One value-head prompt per step: the chain up to the step, ending at its rating slot.

    `ratings` are the labels written after the earlier steps (``positive``/``negative``); by
    default every earlier step is positive (see the module docstring).
    """
    question = strip_tags(question)
    lines = [node_line(-1, 0, "problem", question, "positive")]
    prompts = []
    for k, (meta, text) in enumerate(steps, start=1):
        prompts.append(rating_prompt("\n".join(lines), k - 1, k, meta, text))
        rating = ratings[k - 1] if ratings is not None and k - 1 < len(ratings) else "positive"
        lines.append(node_line(k - 1, k, meta, text, rating))
    return prompts


def rating_value(probs: dict[str, float]) -> float:
    """P(positive) renormalised over the two rating tokens, rounded (see `PROB_DECIMALS`)."""
    pos = probs.get(RATING_TOKENS["positive"], 0.0)
    neg = probs.get(RATING_TOKENS["negative"], 0.0)
    total = pos + neg
    return round(pos / total, PROB_DECIMALS) if total > 0 else 0.5


def aggregate_values(values: Sequence[float], how: str) -> float:
    """Step values combined by `how` (``ScorerConfig.value_aggregate``: min, last or mean);
    0 for no values."""
    if not values:
        return 0.0
    if how == "min":
        return min(values)
    if how == "last":
        return values[-1]
    if how == "mean":
        return sum(values) / len(values)
    raise SearchError(f"unknown value aggregate {how!r}")


def path_value(ratings: Sequence[float], conclusion: bool, config: ScorerConfig) -> float:
    """A path's value from its steps' ratings (root first): their ``value_aggregate``; the last
    rating is left out when the path ends in a `conclusion`, unless ``value_conclusion`` (a lone
    conclusion keeps its rating), as `value_scores` leaves out an answer line's."""
    kept = list(ratings)
    if conclusion and not config.value_conclusion and len(kept) > 1:
        kept = kept[:-1]
    return aggregate_values(kept, config.value_aggregate)


def value_scores(problem: Problem, solutions: Sequence[str], config: ScorerConfig) -> ScoreGen:
    if config.value_context == "predicted":
        return (yield from _sequential_value_scores(problem, solutions, config))
    steps = [solution_steps(s) for s in solutions]
    prompts: list[str] = []
    spans = []
    for st in steps:
        ps = step_value_prompts(problem.question, st)
        spans.append((len(prompts), len(prompts) + len(ps)))
        prompts.extend(ps)
    if not prompts:
        return [0.0] * len(solutions)
    cands = (RATING_TOKENS["positive"], RATING_TOKENS["negative"])
    probs = yield NextTokenProbs(tuple(prompts), cands, model="value")
    values = [rating_value(p) for p in probs]
    return [
        aggregate_values(_kept(values[lo:hi], st, config), config.value_aggregate)
        for (lo, hi), st in zip(spans, steps, strict=True)
    ]


def _kept(
    values: Sequence[float], steps: Sequence[tuple[str, str]], config: ScorerConfig
) -> list[float]:
    """The step values that enter the aggregate (see `ScorerConfig.value_conclusion`)."""
    kept = [
        v
        for v, (meta, _) in zip(values, steps, strict=True)
        if config.value_conclusion or meta != "conclusion"
    ]
    return kept or list(values)


def _sequential_value_scores(
    problem: Problem, solutions: Sequence[str], config: ScorerConfig
) -> ScoreGen:
    """Rate step k after writing the model's own ratings of steps 1..k-1 into the chain: one
    round per step, every solution's step k in the same request."""
    steps = [solution_steps(s) for s in solutions]
    values: list[list[float]] = [[] for _ in solutions]
    ratings: list[list[str]] = [[] for _ in solutions]
    cands = (RATING_TOKENS["positive"], RATING_TOKENS["negative"])
    for k in range(max((len(st) for st in steps), default=0)):
        todo = [i for i, st in enumerate(steps) if k < len(st)]
        prompts = tuple(
            step_value_prompts(problem.question, steps[i][: k + 1], ratings[i])[k] for i in todo
        )
        probs = yield NextTokenProbs(prompts, cands, model="value")
        for i, p in zip(todo, probs, strict=True):
            v = rating_value(p)
            values[i].append(v)
            ratings[i].append("positive" if v >= 0.5 else "negative")
    return [
        aggregate_values(_kept(v, st, config), config.value_aggregate)
        for v, st in zip(values, steps, strict=True)
    ]


def self_eval_scores(problem: Problem, solutions: Sequence[str], config: ScorerConfig) -> ScoreGen:
    if not solutions:
        return []
    params = SamplingParams(
        n=config.self_eval_samples,
        max_new_tokens=12,
        temperature=config.self_eval_temperature,
        stop=("\n",),
    )
    out = yield Generate(tuple(self_eval_prompt(problem.question, s) for s in solutions), params)
    scores = []
    for row in out:
        parsed = [parse_score(g.text) for g in row]
        vals = [suppress_full_score(v, config) for v in parsed if v is not None]
        mean = sum(vals) / len(vals) if vals else -100.0
        scores.append((mean + 100.0) / 200.0)
    return scores


def logprob_scores(problem: Problem, solutions: Sequence[str], config: ScorerConfig) -> ScoreGen:
    if not solutions:
        return []
    prompt = solve_prompt(problem.question)
    out = yield Score(tuple(prompt for _ in solutions), tuple(solutions))
    return [math.exp(sum(lp) / len(lp)) if lp else 0.0 for lp in out]


def step_judge_prompt(question: str, solution_a: str, solution_b: str) -> str:
    """The step-aligned judge frame: the OpenLongCoT value prompt (`step_value_prompts`) of A's
    first step that differs from B's, after the steps they share, ending at the rating slot,
    where the judge writes `JUDGE_YES` or `JUDGE_NO` instead of a rating.

    B's text is not shown: its side comes from the other order, (B, A), which the scorers always
    ask too. A judge reads the step where the two solutions part, in the frame where berry-tiny's
    value head is strongest, instead of two whole solutions (docs/training.md measures both).
    """
    steps_a, steps_b = solution_steps(solution_a), solution_steps(solution_b)
    k = 0
    while k < min(len(steps_a), len(steps_b)) and steps_a[k] == steps_b[k]:
        k += 1
    step = steps_a[k] if k < len(steps_a) else ("conclusion", "(end)")
    return step_value_prompts(question, [*steps_a[:k], step])[-1]


JUDGE_FRAMES: dict[str, Callable[[str, str, str], str]] = {
    "plain": judge_prompt,
    "step": step_judge_prompt,
}
"""Judge prompt frames by name (`ScorerConfig.judge_frame`)."""

LIKELIHOOD_FRAME = "likelihood"
"""The judge frame that reads no prompt: P(A > B) from the judge's likelihood of the lines where
A and B part (`likelihood_preference`)."""

JUDGE_FRAME_NAMES: tuple[str, ...] = (*JUDGE_FRAMES, LIKELIHOOD_FRAME)


def parting_lines(question: str, solution_a: str, solution_b: str) -> tuple[str, str, str] | None:
    """Where two solutions part: ``(context, line_a, line_b)``.

    The context is the solve prompt and the non-empty lines both share from the start; each
    line is that solution's next one, with its newline. None when one solution's lines are a
    prefix of the other's (no line to weigh against the other's).
    """
    a = [x.strip() for x in solution_a.splitlines() if x.strip()]
    b = [x.strip() for x in solution_b.splitlines() if x.strip()]
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    if k == len(a) or k == len(b):
        return None
    context = solve_prompt(question) + "".join(line + "\n" for line in a[:k])
    return context, a[k] + "\n", b[k] + "\n"


def likelihood_preference(logp_a: float, logp_b: float) -> float:
    """``P(A > B) = sigmoid(log p(line_a) - log p(line_b))``: a Bradley-Terry preference from the
    judge's summed log-probabilities of the two parting lines (`parting_lines`).

    A policy trained on verified solutions gives a wrong step a low likelihood where the right
    one has a high one; comparing the two lines after the same context cancels what they share.
    """
    z = max(-50.0, min(50.0, logp_a - logp_b))
    return round(1.0 / (1.0 + math.exp(-z)), PROB_DECIMALS)


Parting = tuple[str, str, str] | None
"""A `parting_lines` result: ``(context, line_a, line_b)``, or None."""


def parting_items(parts: Iterable[Parting]) -> list[tuple[str, str]]:
    """The distinct ``(context, line)`` items the judge must score for `parts`, sorted."""
    return sorted({(p[0], line) for p in parts if p for line in p[1:]})


def parted_preference(part: Parting, logps: Mapping[tuple[str, str], float]) -> float:
    """`likelihood_preference` of a `parting_lines` result, from the judge's summed
    log-probabilities by ``(context, line)``; 0.5 when the solutions do not part."""
    if part is None:
        return 0.5
    context, line_a, line_b = part
    return likelihood_preference(logps[(context, line_a)], logps[(context, line_b)])


def likelihood_preferences(
    problem: Problem, solutions: Sequence[str], pairs: Sequence[tuple[int, int]]
) -> Generator[Any, Any, dict[tuple[int, int], float]]:
    """`judge_preferences` in the ``likelihood`` frame: one `Score` request to the judge for the
    distinct (context, line) items of all pairs (`parting_items`)."""
    parts = {pair: parting_lines(problem.question, *(solutions[i] for i in pair)) for pair in pairs}
    items = parting_items(parts.values())
    logps: dict[tuple[str, str], float] = {}
    if items:
        scored = yield Score(tuple(c for c, _ in items), tuple(x for _, x in items), model="judge")
        logps = {item: sum(lp) for item, lp in zip(items, scored, strict=True)}
    return {pair: parted_preference(part, logps) for pair, part in parts.items()}


def judge_preferences(
    problem: Problem,
    solutions: Sequence[str],
    pairs: Sequence[tuple[int, int]] | None = None,
    frame: str = "plain",
) -> Generator[Any, Any, dict[tuple[int, int], float]]:
    """The judge's P(solution i better than solution j) for each ordered pair (i, j).

    Returns ``{(i, j): p}``; all ordered pairs by default. `frame` is a prompt of `JUDGE_FRAMES`
    (p is P(Yes) renormalised over {Yes, No}) or ``likelihood`` (`likelihood_preferences`).
    """
    n = len(solutions)
    if pairs is None:
        pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    if not pairs:
        return {}
    if frame == LIKELIHOOD_FRAME:
        return (yield from likelihood_preferences(problem, solutions, pairs))
    if frame not in JUDGE_FRAMES:
        names = ", ".join(JUDGE_FRAME_NAMES)
        raise SearchError(f"unknown judge frame {frame!r}; choose from {names}")
    prompt = JUDGE_FRAMES[frame]
    prompts = tuple(prompt(problem.question, solutions[i], solutions[j]) for i, j in pairs)
    probs = yield NextTokenProbs(prompts, (JUDGE_YES, JUDGE_NO), model="judge")
    out = {}
    for pair, pr in zip(pairs, probs, strict=True):
        yes, no = pr.get(JUDGE_YES, 0.0), pr.get(JUDGE_NO, 0.0)
        out[pair] = round(yes / (yes + no), PROB_DECIMALS) if yes + no > 0 else 0.5
    return out


def value_preferences(values: Sequence[float]) -> list[list[float]]:
    """Bradley-Terry preferences from pointwise values: ``sigmoid(logit v_i - logit v_j)``."""

    def logit(v: float) -> float:
        v = min(max(v, _EPS), 1 - _EPS)
        return math.log(v / (1 - v))

    z = [logit(v) for v in values]
    n = len(values)
    return [
        [0.5 if i == j else 1.0 / (1.0 + math.exp(z[j] - z[i])) for j in range(n)] for i in range(n)
    ]


def forward_table(n: int, prefs: dict[tuple[int, int], float]) -> list[list[float]]:
    """The n x n table of judge P(Yes) with solution i shown first (diagonal 0.5)."""
    return [[0.5 if i == j else prefs[(i, j)] for j in range(n)] for i in range(n)]


def pprm_scores(problem: Problem, solutions: Sequence[str], config: ScorerConfig) -> ScoreGen:
    prefs = yield from judge_preferences(problem, solutions, frame=config.judge_frame)
    p = symmetrize(forward_table(len(solutions), prefs))
    return ebc_scores(p, None, alpha=config.ebc_alpha)


def pprm_value_scores(problem: Problem, solutions: Sequence[str], config: ScorerConfig) -> ScoreGen:
    values = yield from value_scores(problem, solutions, config)
    return ebc_scores(value_preferences(values), None, alpha=config.ebc_alpha)


_FUNCS = {
    "value": value_scores,
    "self-eval": self_eval_scores,
    "logprob": logprob_scores,
    "pprm": pprm_scores,
    "pprm-value": pprm_value_scores,
}


def make_scorer(name: str, config: ScorerConfig | None = None) -> Scorer:
    """The scorer called `name` (one of `SCORERS`), bound to `config`."""
    if name not in _FUNCS:
        raise SearchError(f"unknown scorer {name!r}; choose from {', '.join(SCORERS)}")
    cfg = config or ScorerConfig()
    func = _FUNCS[name]

    def scorer(problem: Problem, solutions: Sequence[str]) -> ScoreGen:
        return func(problem, list(solutions), cfg)

    scorer.__name__ = f"{name}_scorer"
    return scorer

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
``prm``        a token-probability process reward model (Math-Shepherd, Wang et al. 2024,
               arXiv 2312.08935): a causal LM reads the question and the steps, each followed
               by a step tag (``prm_tag``: ``ки``); a step's reward is ``p(good) / (p(good) +
               p(bad))`` of the tokens ``prm_good``/``prm_bad`` (``+``/``-``) at its tag, one
               `NextTokenProbs` prompt per step, ending at the tag; the solution's score is the
               ``prm_aggregate`` of its steps' rewards (min, as Math-Shepherd; Lightman et al.
               2023 take the product).
``prm-head``   a process reward model with a classification head (token classification: the
               probability of class ``prm_label`` at each step's tag, as Qwen2.5-Math-PRM reads
               it; sequence classification: that of each prefix ending at a tag), in one
               `StepRewards` request; aggregated as ``prm``.
=============  ===============================================================================

Solutions are cut into steps by ``step_split`` (`openberry.formats.steps`: one a line, the
default and berry-tiny's format, or paragraphs, ``Step k`` headers, ``auto``); the judge frames
(``plain``, ``step``, ``likelihood``) stay line-based. The PRM scorers ask the ``value`` role's
model (``--value-model``): it is the model that rates steps, whichever kind it is. Where we
depart from Math-Shepherd: steps are written as the policy wrote them (its data numbers them
``Step k:``; the ``header`` split keeps such headers in the step) and each step's reward is one
next-token prompt ending at its tag rather than one pass reading every tag, the same numbers for
a causal model (the prefix store of the hf backend reads the shared prefix once).

Where a rating context is needed (``value``), earlier steps are written with a positive rating:
the first wrong step is then rated in the context the model was trained on (a correct prefix),
and the minimum over steps catches it.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from openberry.formats.openlongcot import RATING_TOKENS, node_line, rating_prompt
from openberry.formats.profiles import TINY, PromptProfile
from openberry.formats.prompts import JUDGE_NO, JUDGE_YES
from openberry.formats.replies import read_score, read_yes_no
from openberry.formats.steps import StepSplit, split_steps
from openberry.records import Problem
from openberry.search.common import answer_of_text, reply_params, strip_tags
from openberry.search.ebc import ebc_scores, symmetrize
from openberry.search.engine import Generate, NextTokenProbs, Score, SearchError, StepRewards

__all__ = [
    "JUDGE_FRAMES",
    "JUDGE_FRAME_NAMES",
    "LIKELIHOOD_FRAME",
    "SCORERS",
    "STEP_SCORERS",
    "ScorerConfig",
    "aggregate_values",
    "judge_preferences",
    "likelihood_preference",
    "make_scorer",
    "newest_step_rewards",
    "node_steps",
    "parse_score",
    "parted_preference",
    "parting_items",
    "parting_lines",
    "path_score",
    "path_value",
    "prm_reward",
    "prm_text",
    "rating_value",
    "solution_steps",
    "step_judge_prompt",
    "step_reward",
    "step_value_prompts",
    "value_preferences",
]

ScoreGen = Generator[Any, Any, list[float]]
Scorer = Callable[[Problem, Sequence[str]], ScoreGen]
SCORERS: tuple[str, ...] = (
    "value",
    "self-eval",
    "logprob",
    "pprm",
    "pprm-value",
    "prm",
    "prm-head",
)
STEP_SCORERS: tuple[str, ...] = ("value", "prm", "prm-head")
"""The scorers that rate one step in its partial solution (beam's and step-mcts' step scorers)."""

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
    the model's own ``predicted`` ratings (one round per step). The OpenLongCoT value head's
    only: a profile's step-value question shows the earlier steps without ratings."""
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
    step_split: StepSplit = "line"
    """How a whole solution is cut into steps for ``value``, ``prm`` and ``prm-head``: ``line``
    (one step a line), ``paragraph`` (blank-line paragraphs), ``header`` (``Step k`` headers)
    or ``auto`` (`openberry.formats.steps`)."""
    prm_prefix: str = "{question} "
    """PRM input before the first step, ``{question}`` replaced by the question (Math-Shepherd:
    the question and a space)."""
    prm_tag: str = " ки"
    """Written after each step of the PRM input; the step's reward is read at its last token
    (Math-Shepherd's step tag)."""
    prm_separator: str = "\n"
    """Written between a step's tag and the next step of the PRM input."""
    prm_good: str = "+"
    """``prm``: the token a correct step's tag is followed by (one token of the PRM)."""
    prm_bad: str = "-"
    """``prm``: the token an incorrect step's tag is followed by."""
    prm_label: int = 1
    """``prm-head``: the class of a correct step in the reward head (0: the first class; a head
    with one logit gives sigmoid(logit) whatever this is)."""
    prm_aggregate: Literal["min", "last", "mean", "product"] = "min"
    """How step rewards combine into a solution score for ``prm`` and ``prm-head``, and into a
    path value in beam and step-mcts: min (Math-Shepherd), last, mean or product (Lightman et
    al. 2023)."""

    def __post_init__(self) -> None:
        if not self.prm_good or not self.prm_bad or self.prm_good == self.prm_bad:
            raise SearchError("prm_good and prm_bad must be two different non-empty tokens")


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


def _as_step(text: str) -> tuple[str, str]:
    return ("conclusion" if answer_of_text(text) is not None else "expansion", text)


def solution_steps(text: str, split: str = "line") -> list[tuple[str, str]]:
    """A plain-text solution as OpenLongCoT steps: (meta action, step text) per step, cut by
    `split` (`openberry.formats.steps.split_steps`; ``line``: one step per non-empty line).

    A step that states the final answer is a ``conclusion``; every other step an
    ``expansion``. Tags of the OpenLongCoT language inside a step are removed (they cannot be
    written).
    """
    if split != "line":
        cleaned = (strip_tags(step).strip() for step in split_steps(text, split))
        return [_as_step(step) for step in cleaned if step]
    steps = []
    for raw in text.splitlines():
        line = strip_tags(raw).strip()
        if not line:
            continue
        meta = "conclusion" if answer_of_text(line) is not None else "expansion"
        steps.append((meta, line))
    return steps


def node_steps(texts: Sequence[str], split: str = "line") -> list[tuple[str, str]]:
    """The steps of a partial solution held one step per node (beam, step-mcts), as
    `solution_steps` writes them: for ``line`` the steps of the lines joined (what step search
    always rated); for the other splits each node's text is one step, as it was generated."""
    if split == "line":
        return solution_steps("\n".join(texts))
    cleaned = (strip_tags(text).strip() for text in texts)
    return [_as_step(text) for text in cleaned if text]


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


def step_reward(rating: float, mean_logprob: float | None, alpha: float) -> float:
    """A step's reward mixing its rating with the policy's confidence in it, as RAP does
    (Hao et al. 2023, section 3.2: a product of reward terms, each raised to its weight):
    ``rating ** alpha * exp(mean_logprob) ** (1 - alpha)``, where ``exp(mean_logprob)`` is the
    line's per-token probability. The rating alone when ``alpha`` is 1 or the line has no
    log-probabilities."""
    if alpha >= 1.0 or mean_logprob is None or not math.isfinite(mean_logprob):
        return rating
    return max(rating, 0.0) ** alpha * math.exp(min(mean_logprob, 0.0)) ** (1.0 - alpha)


def aggregate_values(values: Sequence[float], how: str) -> float:
    """Step values combined by `how` (``ScorerConfig.value_aggregate``: min, last or mean;
    ``prm_aggregate`` also product); 0 for no values."""
    if not values:
        return 0.0
    if how == "product":
        return math.prod(values)
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


def value_scores(
    problem: Problem, solutions: Sequence[str], config: ScorerConfig, prompts: PromptProfile = TINY
) -> ScoreGen:
    if prompts.step_value is not None:
        return (yield from _question_value_scores(problem, solutions, config, prompts))
    if config.value_context == "predicted":
        return (yield from _sequential_value_scores(problem, solutions, config))
    steps = [solution_steps(s, config.step_split) for s in solutions]
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


def _question_value_scores(
    problem: Problem, solutions: Sequence[str], config: ScorerConfig, prompts: PromptProfile
) -> ScoreGen:
    """`value_scores` with the profile's step-value question: every step of every solution
    rated after the steps before it (`newest_step_values`), one request for all."""
    steps = [solution_steps(s, config.step_split) for s in solutions]
    prefixes = [st[: k + 1] for st in steps for k in range(len(st))]
    if not prefixes:
        return [0.0] * len(solutions)
    values = iter((yield from newest_step_values(problem.question, prefixes, prompts)))
    return [
        aggregate_values(_kept([next(values) for _ in st], st, config), config.value_aggregate)
        for st in steps
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
    steps = [solution_steps(s, config.step_split) for s in solutions]
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


Notes = Sequence[dict[str, Any]] | None
"""Per-solution ``info`` dicts (a tree's nodes) where a scorer records the replies it could not
read (``unparsed_self_evals``, ``unparsed_judgements``, ``written_judgements``); None: none."""


def _note(notes: Notes, i: int, key: str, times: int = 1) -> None:
    if notes is not None and times:
        notes[i][key] = notes[i].get(key, 0) + times


def self_eval_scores(
    problem: Problem,
    solutions: Sequence[str],
    config: ScorerConfig,
    *,
    prompts: PromptProfile = TINY,
    notes: Notes = None,
) -> ScoreGen:
    """MCTSr's self-reward: ``self_eval_samples`` replies to the profile's self_eval prompt,
    read by `read_score` after the reply's start; an unreadable one is left out of the mean
    (counted in ``unparsed_self_evals``), and a solution with none readable scores the worst,
    -100 (0 after mapping)."""
    if not solutions:
        return []
    role = prompts.self_eval
    params = reply_params(role, 12, config.self_eval_temperature, n=config.self_eval_samples)
    out = yield Generate(
        tuple(prompts.self_eval_prompt(problem.question, s) for s in solutions), params
    )
    scores = []
    for i, row in enumerate(out):
        parsed = [read_score(role.reply + g.text) for g in row]
        vals = [suppress_full_score(v, config) for v in parsed if v is not None]
        _note(notes, i, "unparsed_self_evals", len(parsed) - len(vals))
        mean = sum(vals) / len(vals) if vals else -100.0
        scores.append((mean + 100.0) / 200.0)
    return scores


def logprob_scores(
    problem: Problem,
    solutions: Sequence[str],
    config: ScorerConfig,
    *,
    prompts: PromptProfile = TINY,
) -> ScoreGen:
    if not solutions:
        return []
    prompt = prompts.solve_prompt(problem.question)
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
    "plain": TINY.judge_prompt,
    "step": step_judge_prompt,
}
"""Judge prompt frames by name (`ScorerConfig.judge_frame`); ``plain`` is the judge prompt of
the search's profile (`PromptProfile.judge_prompt`; tiny's here)."""

JUDGE_MIN_MASS = 0.2
"""In a chat profile, a judge whose first reply token is Yes or No with less probability than
this (it opens with markup or prose) is asked to write its verdict, read by `read_yes_no`."""

LIKELIHOOD_FRAME = "likelihood"
"""The judge frame that reads no prompt: P(A > B) from the judge's likelihood of the lines where
A and B part (`likelihood_preference`)."""

JUDGE_FRAME_NAMES: tuple[str, ...] = (*JUDGE_FRAMES, LIKELIHOOD_FRAME)


def parting_lines(
    question: str, solution_a: str, solution_b: str, prompts: PromptProfile = TINY
) -> tuple[str, str, str] | None:
    """Where two solutions part: ``(context, line_a, line_b)``.

    The context is the solve prompt (of `prompts`) and the non-empty lines both share from the
    start, as the start of the reply; each
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
    context = prompts.solve_prompt(question) + "".join(line + "\n" for line in a[:k])
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
    problem: Problem,
    solutions: Sequence[str],
    pairs: Sequence[tuple[int, int]],
    prompts: PromptProfile = TINY,
) -> Generator[Any, Any, dict[tuple[int, int], float]]:
    """`judge_preferences` in the ``likelihood`` frame: one `Score` request to the judge for the
    distinct (context, line) items of all pairs (`parting_items`)."""
    q = problem.question
    parts = {pair: parting_lines(q, *(solutions[i] for i in pair), prompts) for pair in pairs}
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
    prompts: PromptProfile = TINY,
    notes: Notes = None,
) -> Generator[Any, Any, dict[tuple[int, int], float]]:
    """The judge's P(solution i better than solution j) for each ordered pair (i, j).

    Returns ``{(i, j): p}``; all ordered pairs by default. `frame` is ``plain`` (the profile's
    judge prompt) or ``step`` (`JUDGE_FRAMES`): p is P(Yes) renormalised over {Yes, No}; or
    ``likelihood`` (`likelihood_preferences`). A verdict that cannot be read falls back: in a
    chat profile, a judge that gives Yes and No less than `JUDGE_MIN_MASS` writes its verdict
    (greedy, `read_yes_no`: 1 for Yes, 0 for No; ``written_judgements`` in `notes`); one still
    unread (or, in tiny, with no mass on Yes or No) is a tie, 0.5, counted in both solutions'
    ``unparsed_judgements``.
    """
    n = len(solutions)
    if pairs is None:
        pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    if not pairs:
        return {}
    if frame == LIKELIHOOD_FRAME:
        return (yield from likelihood_preferences(problem, solutions, pairs, prompts))
    if frame not in JUDGE_FRAMES:
        names = ", ".join(JUDGE_FRAME_NAMES)
        raise SearchError(f"unknown judge frame {frame!r}; choose from {names}")
    prompt = prompts.judge_prompt if frame == "plain" else JUDGE_FRAMES[frame]
    texts = tuple(prompt(problem.question, solutions[i], solutions[j]) for i, j in pairs)
    probs = yield NextTokenProbs(texts, (JUDGE_YES, JUDGE_NO), model="judge")
    least = JUDGE_MIN_MASS if prompts.chat and frame == "plain" else 0.0
    out = {pair: _verdict(pr, least) for pair, pr in zip(pairs, probs, strict=True)}
    unread = [k for k, pair in enumerate(pairs) if out[pair] is None]
    if unread and least > 0:
        params = reply_params(prompts.judge, 16, 0.0)
        rows = yield Generate(tuple(texts[k] for k in unread), params, model="judge")
        for k, row in zip(unread, rows, strict=True):
            said = read_yes_no(prompts.judge.reply + row[0].text)
            if said is not None:
                out[pairs[k]] = 1.0 if said else 0.0
                for i in pairs[k]:
                    _note(notes, i, "written_judgements")
    for pair in pairs:
        if out[pair] is None:
            out[pair] = 0.5
            for i in pair:
                _note(notes, i, "unparsed_judgements")
    return out  # type: ignore[return-value]


def _verdict(probs: Mapping[str, float], least: float) -> float | None:
    """P(Yes) renormalised over {Yes, No}, rounded (`PROB_DECIMALS`); None when Yes and No
    together have no more than `least` probability (none at all, for ``least = 0``)."""
    yes, no = probs.get(JUDGE_YES, 0.0), probs.get(JUDGE_NO, 0.0)
    if yes + no <= least:
        return None
    return round(yes / (yes + no), PROB_DECIMALS)


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


def pprm_scores(
    problem: Problem,
    solutions: Sequence[str],
    config: ScorerConfig,
    *,
    prompts: PromptProfile = TINY,
    notes: Notes = None,
) -> ScoreGen:
    prefs = yield from judge_preferences(
        problem, solutions, frame=config.judge_frame, prompts=prompts, notes=notes
    )
    p = symmetrize(forward_table(len(solutions), prefs))
    return ebc_scores(p, None, alpha=config.ebc_alpha)


def pprm_value_scores(
    problem: Problem,
    solutions: Sequence[str],
    config: ScorerConfig,
    *,
    prompts: PromptProfile = TINY,
) -> ScoreGen:
    values = yield from value_scores(problem, solutions, config, prompts)
    return ebc_scores(value_preferences(values), None, alpha=config.ebc_alpha)


def prm_text(
    question: str, steps: Sequence[str], config: ScorerConfig
) -> tuple[str, tuple[int, ...]]:
    """A PRM's input for `steps` and the offset where each step's tag ends in it:
    ``prm_prefix`` with the question, then each step followed by ``prm_tag``, the steps joined
    by ``prm_separator`` (Math-Shepherd: ``"Q step 1 ки\\nstep 2 ки"``). The tag's text is
    removed from inside the steps, so the PRM sees a tag only where a reward is read."""
    text = config.prm_prefix.replace("{question}", question)
    mark = config.prm_tag.strip()
    ends = []
    for k, step in enumerate(steps):
        text += (config.prm_separator if k else "") + (step.replace(mark, "") if mark else step)
        text += config.prm_tag
        ends.append(len(text))
    return text, tuple(ends)


def prm_reward(probs: Mapping[str, float], config: ScorerConfig) -> float:
    """``p(good) / (p(good) + p(bad))`` at a step tag, rounded (see `PROB_DECIMALS`); 0.5
    when the PRM gives both no mass."""
    good, bad = probs.get(config.prm_good, 0.0), probs.get(config.prm_bad, 0.0)
    return round(good / (good + bad), PROB_DECIMALS) if good + bad > 0 else 0.5


def _prm_inputs(
    question: str, step_lists: Sequence[Sequence[tuple[str, str]]], config: ScorerConfig
) -> list[tuple[str, tuple[int, ...]]]:
    return [prm_text(question, [text for _, text in steps], config) for steps in step_lists]


def _step_rewards(
    inputs: Sequence[tuple[str, tuple[int, ...]]], scorer: str, config: ScorerConfig
) -> Generator[Any, Any, list[list[float]]]:
    """The PRM's reward at each tag end of each input, one request for all (`NextTokenProbs`
    ending at each tag for ``prm``, `StepRewards` for ``prm-head``)."""
    kept = [(text, ends) for text, ends in inputs if ends]
    flat: list[float] = []
    if kept and scorer == "prm":
        prompts = tuple(text[:end] for text, ends in kept for end in ends)
        cands = (config.prm_good, config.prm_bad)
        probs = yield NextTokenProbs(prompts, cands, model="value")
        flat = [prm_reward(p, config) for p in probs]
    elif kept:
        texts, ends = zip(*kept, strict=True)
        out = yield StepRewards(texts, ends, label=config.prm_label, model="value")
        flat = [round(float(r), PROB_DECIMALS) for row in out for r in row]
    rewards, pos = [], 0
    for _text, ends in inputs:
        rewards.append(flat[pos : pos + len(ends)])
        pos += len(ends)
    return rewards


def _prm_scorer(scorer: str) -> Callable[[Problem, Sequence[str], ScorerConfig], ScoreGen]:
    def scores(problem: Problem, solutions: Sequence[str], config: ScorerConfig) -> ScoreGen:
        steps = [solution_steps(s, config.step_split) for s in solutions]
        inputs = _prm_inputs(problem.question, steps, config)
        rewards = yield from _step_rewards(inputs, scorer, config)
        return [aggregate_values(r, config.prm_aggregate) for r in rewards]

    scores.__name__ = f"{scorer.replace('-', '_')}_scores"
    return scores


def newest_step_values(
    question: str, step_lists: Sequence[Sequence[tuple[str, str]]], prompts: PromptProfile = TINY
) -> Generator[Any, Any, list[float]]:
    """The value of the last step of each of `step_lists` (non-empty), one request for all:
    the rating tokens after the OpenLongCoT value prompt (`step_value_prompts`), or, when the
    `prompts` profile has a ``step_value`` role (chat models, which have no rating tokens),
    P(Yes) renormalised over Yes and No after that prompt (0.5 when neither has any mass)."""
    if prompts.step_value is None:
        texts = tuple(step_value_prompts(question, steps)[-1] for steps in step_lists)
        cands = (RATING_TOKENS["positive"], RATING_TOKENS["negative"])
        probs = yield NextTokenProbs(texts, cands, model="value")
        return [rating_value(p) for p in probs]
    texts = tuple(
        prompts.step_value_prompt(question, [t for _, t in steps[:-1]], steps[-1][1])
        for steps in step_lists
    )
    probs = yield NextTokenProbs(texts, (JUDGE_YES, JUDGE_NO), model="value")
    return [_yes_value(p) for p in probs]


def _yes_value(probs: Mapping[str, float]) -> float:
    verdict = _verdict(probs, 0.0)
    return 0.5 if verdict is None else verdict


def newest_step_rewards(
    question: str,
    step_lists: Sequence[Sequence[tuple[str, str]]],
    scorer: str,
    config: ScorerConfig,
    prompts: PromptProfile = TINY,
) -> Generator[Any, Any, list[float]]:
    """The rating of the last step of each of `step_lists` (``(meta, text)`` steps,
    `node_steps`) by step scorer `scorer` (one of `STEP_SCORERS`), one request for all:
    ``value``, `newest_step_values` (the value head's rating in the OpenLongCoT chain, or the
    `prompts` profile's step-value question); ``prm``
    and ``prm-head``, the PRM's reward at the last step's tag (`prm_text`). A causal PRM's
    reward of a step does not depend on the steps after it, so rating the newest step of each
    partial solution rates every step once. A list without steps is rated 0, unasked."""
    if scorer not in STEP_SCORERS:
        raise SearchError(f"unknown step scorer {scorer!r}; choose from {', '.join(STEP_SCORERS)}")
    rated = [steps for steps in step_lists if steps]
    if not rated:
        return [0.0] * len(step_lists)
    if scorer == "value":
        values = iter((yield from newest_step_values(question, rated, prompts)))
    else:
        inputs = [(text, ends[-1:]) for text, ends in _prm_inputs(question, rated, config)]
        values = iter([r[0] for r in (yield from _step_rewards(inputs, scorer, config))])
    return [next(values) if steps else 0.0 for steps in step_lists]


def path_score(
    ratings: Sequence[float], conclusion: bool, scorer: str, config: ScorerConfig
) -> float:
    """A path's value from its steps' ratings (root first) by step scorer `scorer`:
    `path_value` for ``value``; for a PRM the ``prm_aggregate`` of every rating (a PRM rates
    the answer step like any other)."""
    if scorer == "value":
        return path_value(ratings, conclusion, config)
    return aggregate_values(ratings, config.prm_aggregate)


_FUNCS = {
    "value": value_scores,
    "self-eval": self_eval_scores,
    "logprob": logprob_scores,
    "pprm": pprm_scores,
    "pprm-value": pprm_value_scores,
    "prm": _prm_scorer("prm"),
    "prm-head": _prm_scorer("prm-head"),
}


def make_scorer(
    name: str, config: ScorerConfig | None = None, prompts: PromptProfile = TINY
) -> Scorer:
    """The scorer called `name` (one of `SCORERS`), bound to `config` and, for the scorers that
    prompt (self-eval, logprob, pprm), to the `prompts` profile. The scorer is called as
    ``scorer(problem, solutions, notes=None)``: `notes`, the solutions' ``info`` dicts, get
    what could not be read (`Notes`)."""
    if name not in _FUNCS:
        raise SearchError(f"unknown scorer {name!r}; choose from {', '.join(SCORERS)}")
    cfg = config or ScorerConfig()
    func = _FUNCS[name]
    takes = inspect.signature(func).parameters
    extra: dict[str, Any] = {"prompts": prompts} if "prompts" in takes else {}

    def scorer(problem: Problem, solutions: Sequence[str], notes: Notes = None) -> ScoreGen:
        kwargs = {**extra, "notes": notes} if "notes" in takes else extra
        return func(problem, list(solutions), cfg, **kwargs)

    scorer.__name__ = f"{name}_scorer"
    return scorer

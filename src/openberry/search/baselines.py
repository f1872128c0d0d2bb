"""Baselines every tree search must beat at equal cost.

- `greedy`: one chain of thought at temperature 0.
- `self_consistency`: k sampled solutions, majority vote over their final answers
  (Wang et al. 2023).
- `best_of_n`: N sampled solutions ranked by any scorer (`openberry.search.scorers`).
- `beam`: step-level beam search: each beam is extended by `branch` sampled next steps, every
  candidate is rated by a step scorer (LLaMA-O1's value head on the partial chain, a process
  reward model at the new step's tag, or the mean log-probability), the best `width` survive; a
  beam ends when it states an answer. A step is a line by default; ``step_split`` makes it a
  paragraph or a ``Step k`` section (`openberry.formats.steps`: the stop strings that end a
  sampled step and the separator written after each step).

All take the problem only (no reference answer) and return their whole tree: node 0 is the
problem; for the sampling methods every solution is a child of the root; for beam search every
step is a node, so beams that share a prefix share nodes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from openberry.formats.profiles import TINY, PromptProfile
from openberry.formats.steps import StepSplit, join_steps, step_stops
from openberry.models.base import SamplingParams
from openberry.records import Generation, Problem
from openberry.search.common import (
    PROMPTS_METADATA,
    Answered,
    Step,
    TreeBuilder,
    answer_of_text,
    force_step_answer,
    generate_solutions,
    majority,
    mean_logprob,
)
from openberry.search.engine import Generate, SearchError, SearchGen
from openberry.search.scorers import (
    SCORERS,
    ScorerConfig,
    aggregate_values,
    make_scorer,
    newest_step_rewards,
    node_steps,
    step_reward,
)

__all__ = [
    "BeamConfig",
    "BestOfNConfig",
    "GreedyConfig",
    "SelfConsistencyConfig",
    "beam",
    "best_of_n",
    "greedy",
    "self_consistency",
]


@dataclass(frozen=True)
class GreedyConfig:
    """Greedy chain of thought."""

    max_new_tokens: int = 256
    """Most tokens of the solution."""
    prompts: PromptProfile = field(default=TINY, metadata=PROMPTS_METADATA)
    """Role prompts (``--prompts``): ``tiny``, berry-tiny's frames; ``paper``, the papers'
    instructions through the chat template; or a profile file (`openberry.formats.profiles`)."""


@dataclass(frozen=True)
class SelfConsistencyConfig:
    """Self-consistency: majority vote over sampled solutions."""

    samples: int = 8
    """Solutions sampled (k of maj@k)."""
    temperature: float = 1.0
    """Sampling temperature."""
    top_p: float = 1.0
    """Nucleus sampling threshold."""
    max_new_tokens: int = 256
    """Most tokens per solution."""
    prompts: PromptProfile = field(default=TINY, metadata=PROMPTS_METADATA)
    """Role prompts (``--prompts``): ``tiny``, berry-tiny's frames; ``paper``, the papers'
    instructions through the chat template; or a profile file (`openberry.formats.profiles`)."""


@dataclass(frozen=True)
class BestOfNConfig:
    """Best-of-N: sampled solutions ranked by a scorer."""

    samples: int = 8
    """Solutions sampled (N)."""
    scorer: str = "value"
    """Scorer that ranks them: value, self-eval, logprob, pprm, pprm-value, prm or prm-head."""
    temperature: float = 1.0
    """Sampling temperature."""
    top_p: float = 1.0
    """Nucleus sampling threshold."""
    max_new_tokens: int = 256
    """Most tokens per solution."""
    scorer_config: ScorerConfig = field(default_factory=ScorerConfig)
    """Settings of the scorer."""
    alpha: float = 0.05
    """RAP's reward mix (`openberry.search.scorers.step_reward`): a solution ranks by
    ``score ** alpha * p ** (1 - alpha)``, ``p`` its per-token probability; 1 is the score
    alone."""
    prompts: PromptProfile = field(default=TINY, metadata=PROMPTS_METADATA)
    """Role prompts (``--prompts``): ``tiny``, berry-tiny's frames; ``paper``, the papers'
    instructions through the chat template; or a profile file (`openberry.formats.profiles`)."""

    def __post_init__(self) -> None:
        if self.scorer not in SCORERS:  # fail when configured, not mid-search
            raise SearchError(f"unknown scorer {self.scorer!r}; choose from {', '.join(SCORERS)}")
        if not 0.0 <= self.alpha <= 1.0:
            raise SearchError(f"alpha must be in [0, 1], got {self.alpha}")


@dataclass(frozen=True)
class BeamConfig:
    """Step-level beam search over solution steps (lines by default)."""

    width: int = 4
    """Beams kept after each step."""
    branch: int = 2
    """Next steps sampled per beam and step."""
    step_scorer: Literal["value", "logprob", "prm", "prm-head"] = "value"
    """``value``: the value head's rating of the newest step (its partial chain), a beam's score
    the minimum over its steps; ``prm``/``prm-head``: a process reward model's reward of the
    newest step (`openberry.search.scorers`), a beam's score the ``prm_aggregate`` of its
    steps' rewards; ``logprob``: the beam's mean token log-probability."""
    alpha: float = 0.2
    """RAP's reward mix (`openberry.search.scorers.step_reward`) for the ``value`` and PRM step
    scorers: each step's rating is read as ``rating ** alpha * p ** (1 - alpha)``, ``p`` the
    step's per-token probability; 1 is the rating alone."""
    temperature: float = 1.0
    """Sampling temperature of each step."""
    max_steps: int = 12
    """Most steps per solution."""
    max_step_tokens: int = 64
    """Most tokens per step."""
    step_split: StepSplit = "line"
    """What one step is: ``line`` (stops at a newline), ``paragraph`` (at a blank line),
    ``header`` (before the next ``Step k`` header) or ``auto`` (either)."""
    scorer_config: ScorerConfig = field(default_factory=ScorerConfig)
    """PRM settings of the ``prm``/``prm-head`` step scorers (``prm_*``); the others are unused."""
    prompts: PromptProfile = field(default=TINY, metadata=PROMPTS_METADATA)
    """Role prompts (``--prompts``): ``tiny``, berry-tiny's frames; ``paper``, the papers'
    instructions through the chat template; or a profile file (`openberry.formats.profiles`)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise SearchError(f"alpha must be in [0, 1], got {self.alpha}")


def _solution_node(builder: TreeBuilder, parent: int, solution: Answered) -> int:
    gen, forced = solution
    return builder.add_solution(parent, gen, {"finish_reason": gen.finish_reason, **forced}).id


def greedy(problem: Problem, rng: random.Random, config: GreedyConfig) -> SearchGen:
    """One greedy solution."""
    params = SamplingParams(max_new_tokens=config.max_new_tokens, temperature=0.0)
    prompt = config.prompts.solve_prompt(problem.question)
    ((solution,),) = yield from generate_solutions([prompt], params, config.prompts)
    builder = TreeBuilder(problem, "greedy")
    nid = _solution_node(builder, 0, solution)
    return builder.freeze(chosen=(0, nid))


def _sample(problem: Problem, config: SelfConsistencyConfig | BestOfNConfig) -> SearchGen:
    """The config's ``samples`` solutions of `problem`, in one call, after answer forcing
    (`generate_solutions`)."""
    params = SamplingParams(
        n=config.samples,
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature,
        top_p=config.top_p,
    )
    (row,) = yield from generate_solutions(
        [config.prompts.solve_prompt(problem.question)], params, config.prompts
    )
    return row


def self_consistency(
    problem: Problem, rng: random.Random, config: SelfConsistencyConfig
) -> SearchGen:
    """k samples, majority vote; the chosen node is the first sample with the winning answer."""
    solutions = yield from _sample(problem, config)
    builder = TreeBuilder(problem, "self-consistency")
    ids = [_solution_node(builder, 0, s) for s in solutions]
    best, votes = majority([builder[i].answer for i in ids])
    chosen = (0, ids[best]) if best is not None else ()
    return builder.freeze(chosen=chosen, info={"votes": votes})


def best_of_n(problem: Problem, rng: random.Random, config: BestOfNConfig) -> SearchGen:
    """N samples ranked by the scorer; ties go to the earlier sample."""
    solutions = yield from _sample(problem, config)
    gens = [g for g, _ in solutions]
    builder = TreeBuilder(problem, "best-of-n")
    ids = [_solution_node(builder, 0, s) for s in solutions]
    scorer = make_scorer(config.scorer, config.scorer_config, config.prompts)
    raw = yield from scorer(problem, [g.text for g in gens], [builder[i].info for i in ids])
    scores = []
    for i, s, g in zip(ids, raw, gens, strict=True):
        builder[i].info["score"] = s
        if config.alpha < 1.0:
            s = builder[i].info["mixed_score"] = step_reward(s, mean_logprob(g), config.alpha)
        builder[i].value = min(1.0, max(0.0, s))
        scores.append(s)
    best = max(range(len(ids)), key=lambda k: (scores[k], -k))
    return builder.freeze(chosen=(0, ids[best]), info={"scorer": config.scorer})


@dataclass
class _Beam:
    node: int
    lines: list[str]
    logprob_sum: float = 0.0
    tokens: int = 0
    score: float = 0.0
    done: bool = False


def _rate_new_steps(
    problem: Problem, builder: TreeBuilder, candidates: list[_Beam], config: BeamConfig
) -> Step[None]:
    """Rate the newest step of each candidate not rated yet (one request for all) into its
    node's ``value``; nothing for the ``logprob`` step scorer."""
    new = [c for c in candidates if c.node != 0 and builder[c.node].value is None]
    if config.step_scorer == "logprob" or not new:
        return
    steps = [node_steps(c.lines, config.step_split) for c in new]
    rewards = yield from newest_step_rewards(
        problem.question, steps, config.step_scorer, config.scorer_config, config.prompts
    )
    for c, r in zip(new, rewards, strict=True):
        builder[c.node].value = r


def _beam_score(builder: TreeBuilder, c: _Beam, config: BeamConfig) -> float:
    """A candidate's score by the step scorer: the minimum of its steps' values (``value``),
    their ``prm_aggregate`` (a PRM) or its mean token log-probability (``logprob``)."""
    if config.step_scorer == "logprob":
        return c.logprob_sum / c.tokens if c.tokens else -math.inf
    nodes = [builder[n] for n in builder.path(c.node)[1:]]
    values = [step_reward(n.value or 0.0, n.info.get("mean_logprob"), config.alpha) for n in nodes]
    if config.step_scorer == "value":
        return min(values, default=0.0)
    return aggregate_values(values, config.scorer_config.prm_aggregate)


def _extend(builder: TreeBuilder, b: _Beam, g: Generation, config: BeamConfig) -> _Beam:
    """Beam `b` extended by sampled step `g` (a new node), or `b` complete as it is when the
    model ended the solution without a new step."""
    line = g.text.strip()
    answer = answer_of_text(line)
    ended = g.finish_reason == "eos" or answer is not None
    if not line and ended:
        return _Beam(b.node, b.lines, b.logprob_sum, b.tokens, b.score, True)
    node = builder.add(b.node, line, generation=g, meta_action="expansion")
    if config.alpha < 1.0:
        node.info["mean_logprob"] = mean_logprob(g)
    if answer is not None:
        node.meta_action, node.terminal, node.answer = "conclusion", True, answer
    lp = sum(g.logprobs) if g.logprobs else 0.0
    return _Beam(node.id, [*b.lines, line], b.logprob_sum + lp, b.tokens + g.num_tokens, done=ended)


def _keep_best(candidates: Sequence[_Beam], width: int) -> list[_Beam]:
    """The `width` best-scored candidates, identical partial solutions kept once."""
    seen: set[tuple[str, ...]] = set()
    kept: list[_Beam] = []
    for c in sorted(candidates, key=lambda c: (-c.score, c.node)):
        key = tuple(c.lines)
        if key in seen:
            continue
        seen.add(key)
        kept.append(c)
        if len(kept) == width:
            break
    return kept


def beam(problem: Problem, rng: random.Random, config: BeamConfig) -> SearchGen:
    """Step-level beam search (see the module docstring)."""
    builder = TreeBuilder(problem, "beam")
    base = config.prompts.solve_prompt(problem.question)
    beams = [_Beam(node=0, lines=[])]
    params = SamplingParams(
        n=config.branch,
        max_new_tokens=config.max_step_tokens,
        temperature=config.temperature,
        stop=step_stops(config.step_split),
    )
    for _step in range(config.max_steps):
        live = [b for b in beams if not b.done]
        if not live:
            break
        prompts = tuple(base + join_steps(b.lines, config.step_split) for b in live)
        out = yield Generate(prompts, params)
        candidates: list[_Beam] = [b for b in beams if b.done]
        for b, row in zip(live, out, strict=True):
            candidates += [_extend(builder, b, g, config) for g in row]
        yield from _rate_new_steps(problem, builder, candidates, config)
        for c in candidates:
            c.score = _beam_score(builder, c, config)
            builder[c.node].visits += 1
        beams = _keep_best(candidates, config.width)
    finished = [b for b in beams if b.done] or beams
    best = max(finished, key=lambda b: (b.score, -b.node))
    end = best.node
    if builder[best.node].answer is None:
        prompt = base + join_steps(best.lines, config.step_split)
        forced = yield from force_step_answer(builder, best.node, prompt, config.prompts)
        end = forced.id if forced is not None else end
    chosen = builder.path(end) if end != 0 else []
    return builder.freeze(chosen=chosen, info={"step_scorer": config.step_scorer})

"""MCTSr: Monte Carlo Tree Self-Refine (Zhang et al. 2024, arXiv 2406.07394; seed-spec section 1).

Nodes are whole answers. The search starts from the model's naive answer and a dummy "I don't
know" answer; each rollout picks one answer by a UCT variant, samples one more self-evaluation
reward for it, asks the model to critique it and to rewrite it from the critique, and samples a
reward for the rewrite, which becomes a new child:

- reward: a score in [-100, 100] written after ``Score:``; the last number is used; a score at
  or above 95 becomes 50 (full-score suppression, as in the code);
- ``Q(a) = (min R_a + mean R_a) / 2`` over the node's reward samples (`q_value`);
- candidates: a node is selectable while it has fewer than ``max_children`` (3) children or
  none of its children has a Q above its own ("not fully expanded", `is_candidate`);
- ``UCT(a) = V(a) + c * sqrt(ln(N(parent) + 1) / (N(a) + eps))`` with c = 1.4, eps = 1e-5,
  N = number of reward samples; root-level answers have N(parent) = 0, so their UCT is V
  (`uct`);
- backup: ``V(a) = (Q(a) + max_child V(child)) / 2`` (`backed_up_values`), the paper's rule,
  propagated to every ancestor (the original code reached only one level);
- final answer: the answer node with the highest Q (the dummy excluded). There is no
  ground-truth early stop: MCTSr's code stopped as soon as an answer matched the reference,
  which made its reported figures an oracle pass@k (seed-spec 1.8-1.9).

Departures: the prompts are our short role frames (`openberry.formats.prompts`) rather than long
chat instructions, and the rewrite sees the answer and its critique (the code sent only the
critique). Identical answers are separate nodes (the code keyed nodes by answer text, which
merged their histories and re-parented them). An unparsable reward is re-sampled up to
``reward_retries`` times, then counted as 0 (the code retried forever).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from openberry.formats.prompts import review_prompt, self_eval_prompt, solve_prompt
from openberry.models.base import SamplingParams
from openberry.records import Problem
from openberry.search.common import TreeBuilder, rewrite_child
from openberry.search.engine import Generate, SearchGen
from openberry.search.scorers import ScorerConfig, parse_score, suppress_full_score

__all__ = [
    "DUMMY_ANSWERS",
    "MCTSrConfig",
    "backed_up_values",
    "is_candidate",
    "mctsr",
    "q_value",
    "uct",
]

DUMMY_ANSWERS: tuple[str, ...] = (
    "I Don't Know",
    "I can't understand this question.",
    "I can't help with this question.",
    "I don't know how to solve this question.",
    "I don't know the answer to this question.",
    "I don't know the answer to this question, sorry.",
)
"""The "I don't know" answers one of which starts the search beside the naive answer."""


@dataclass(frozen=True)
class MCTSrConfig:
    """MCTSr settings; defaults are the paper's and its code's."""

    rollouts: int = 8
    """Rollouts (select, critique, rewrite, evaluate); the paper reports 4 and 8, the code ran 16."""
    c: float = 1.4
    """UCT exploration constant."""
    epsilon: float = 1e-5
    """Added to N(a) in the UCT denominator."""
    max_children: int = 3
    """Children after which a node counts as fully expanded (if a child beats it)."""
    temperature: float = 0.95
    """Sampling temperature of every call (answers, critiques, rewrites, rewards)."""
    max_new_tokens: int = 256
    """Most tokens of an answer."""
    critique_max_new_tokens: int = 64
    """Most tokens of a critique."""
    reward_retries: int = 3
    """Re-samples of a reward that has no number before it counts as 0."""
    backup: Literal["ancestors", "parent"] = "ancestors"
    """``ancestors``: the paper's backup through every ancestor; ``parent``: one level, as the
    code did."""
    scorer_config: ScorerConfig = field(default_factory=ScorerConfig)
    """Full-score suppression settings of the reward."""


def q_value(rewards: Sequence[float]) -> float:
    """MCTSr's Q: ``(min R + mean R) / 2``; -100 (the worst reward) for no samples."""
    if not rewards:
        return -100.0
    return 0.5 * (min(rewards) + sum(rewards) / len(rewards))


def uct(value: float, n_parent: int, n: int, c: float = 1.4, epsilon: float = 1e-5) -> float:
    """``value + c * sqrt(ln(n_parent + 1) / (n + epsilon))``."""
    return value + c * math.sqrt(math.log(n_parent + 1) / (n + epsilon))


def is_candidate(q: float, child_qs: Sequence[float], max_children: int) -> bool:
    """Not fully expanded: fewer than `max_children` children, or no child with Q above `q`."""
    return len(child_qs) < max_children or max(child_qs) < q


def backed_up_values(
    q: Sequence[float], children: Sequence[Sequence[int]], mode: str = "ancestors"
) -> list[float]:
    """V for every node: ``(Q + max_child V) / 2`` bottom-up (``ancestors``), or one level using
    the children's raw Q (``parent``). Leaves keep V = Q. Nodes must be in creation order."""
    v = list(q)
    for i in range(len(q) - 1, -1, -1):
        kids = children[i]
        if kids:
            best = max(v[k] if mode == "ancestors" else q[k] for k in kids)
            v[i] = 0.5 * (q[i] + best)
    return v


def _line_params(cfg: MCTSrConfig) -> SamplingParams:
    """One-line outputs (rewards and critiques) share these settings, so the engine sends a
    node's reward sample and its critique, and those of every problem, in one backend call."""
    return SamplingParams(
        max_new_tokens=cfg.critique_max_new_tokens, temperature=cfg.temperature, stop=("\n",)
    )


def _reward_requests(problem: Problem, texts: Sequence[str], cfg: MCTSrConfig) -> Generate:
    params = _line_params(cfg)
    return Generate(tuple(self_eval_prompt(problem.question, t) for t in texts), params)


def _parse_rewards(rows: list[list[Any]], cfg: MCTSrConfig) -> list[float | None]:
    out = []
    for row in rows:
        s = parse_score(row[0].text)
        out.append(None if s is None else suppress_full_score(s, cfg.scorer_config))
    return out


def mctsr(problem: Problem, rng: random.Random, config: MCTSrConfig) -> SearchGen:
    """Run MCTSr on one problem (see the module docstring)."""
    cfg = config
    b = TreeBuilder(problem, "mctsr")
    sample = SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature)
    critique_params = _line_params(cfg)
    answers: list[int] = []  # node ids of answers (everything but the problem root)
    dummy_id: int | None = None

    def add_rewards(ids: Sequence[int]) -> Any:
        """Sample one reward for each node, re-sampling unparsable ones."""
        todo = list(ids)
        for attempt in range(cfg.reward_retries + 1):
            if not todo:
                return
            rows = yield _reward_requests(problem, [b[i].text for i in todo], cfg)
            for i, row in zip(todo, rows, strict=True):
                b[i].generated_tokens += row[0].num_tokens
            parsed = _parse_rewards(rows, cfg)
            left = []
            for i, r in zip(todo, parsed, strict=True):
                if r is not None:
                    b[i].rewards.append(r)
                elif attempt == cfg.reward_retries:
                    b[i].rewards.append(0.0)
                    b[i].info["unparsed_rewards"] = b[i].info.get("unparsed_rewards", 0) + 1
                else:
                    left.append(i)
            todo = left

    # Initialisation: the naive answer and a dummy answer, one reward each.
    out = yield Generate((solve_prompt(problem.question),), sample)
    weak = out[0][0]
    first = b.add_solution(0, weak)
    dummy = b.add(0, rng.choice(DUMMY_ANSWERS), terminal=True, info={"dummy": True})
    dummy_id = dummy.id
    answers += [first.id, dummy.id]
    yield from add_rewards([first.id, dummy.id])

    def values() -> tuple[list[float], list[float]]:
        q = [q_value(n.rewards) if n.id else 0.0 for n in b.nodes]
        return q, backed_up_values(q, [n.children for n in b.nodes], cfg.backup)

    for rollout in range(cfg.rollouts):
        q, v = values()
        cands = [
            i
            for i in answers
            if is_candidate(q[i], [q[k] for k in b[i].children], cfg.max_children)
        ]
        if not cands:
            break

        def score(i: int, v: list[float] = v) -> float:
            parent = b[i].parent
            n_parent = len(b[parent].rewards) if parent else 0
            return uct(v[i], n_parent, len(b[i].rewards), cfg.c, cfg.epsilon)

        selected = max(cands, key=lambda i: (score(i), -i))
        b[selected].visits += 1
        # Repeated sampling on the parent, and its critique, in one round.
        rows = yield [
            _reward_requests(problem, [b[selected].text], cfg),
            Generate((review_prompt(problem.question, b[selected].text),), critique_params),
        ]
        reward_rows, critique_rows = rows
        b[selected].generated_tokens += reward_rows[0][0].num_tokens
        parsed = _parse_rewards(reward_rows, cfg)[0]
        if parsed is None:
            yield from add_rewards([selected])
        else:
            b[selected].rewards.append(parsed)
        child = yield from rewrite_child(
            b, problem, selected, critique_rows[0][0], sample, rollout + 1
        )
        answers.append(child.id)
        yield from add_rewards([child.id])

    q, v = values()
    for i in answers:
        node = b[i]
        node.visits = max(node.visits, len(node.rewards))
        node.value = (v[i] + 100.0) / 200.0
        node.info["q"] = q[i]
        node.info["backed_up"] = v[i]
    real = [i for i in answers if i != dummy_id]
    best = max(real, key=lambda i: (q[i], -i))
    b.root.visits = cfg.rollouts
    return b.freeze(
        chosen=b.path(best),
    )

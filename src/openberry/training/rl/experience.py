"""Experience from verified search trees: one sample per step the policy took.

A tree from any step method (step-mcts, beam: a node is one line) or whole-answer method
(self-consistency, best-of-n: a node is one whole solution) becomes one `StepSample` per
non-root node: the policy prompt it was written after (the solve frame and the lines above it),
its text as the action, the rating-token value prompt of the state it reaches, its reward and
whether it ends the episode. The reward is the training-time verifier's verdict at a candidate
answer (1 or 0; `openberry.evaluation.verify`), 0 at a line that ends without an answer, and 0
with a bootstrap from the value at a leaf the search left unfinished (LLaMA-O1 used the value
itself as the reward there; a bootstrap is the same estimate without counting it twice).

Three ways to weigh the samples, one per algorithm of `openberry.training.rl.loop`:

- `ppo_targets`: GAE along root-to-leaf paths (`tree_gae`) with the rating-token value as V,
  and the lambda-returns ``A + V`` as the value targets;
- `grpo_targets`: GRPO's group-relative outcome advantage over the tree's candidate answers
  (each counted as often as it was sampled), a step getting the mean of the answers below it;
- `expert_targets`: the steps on a verified-correct path (rejection sampling / expert
  iteration, ReST-EM and rStar-Math style), each with advantage 1.

The reference answer never enters a prompt: only the verdicts stored in the tree are read.
Pure Python, no torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from openberry.evaluation.verify import VERIFIED
from openberry.formats.prompts import solve_prompt
from openberry.search.scorers import solution_steps, step_value_prompts
from openberry.training.rl.advantages import group_advantages, tree_gae
from openberry.tree import Tree

__all__ = [
    "StepSample",
    "expert_targets",
    "grpo_targets",
    "ppo_targets",
    "root_value",
    "tree_samples",
]


@dataclass(frozen=True)
class StepSample:
    """One step of a search tree as training data."""

    problem_id: str
    """The problem's id."""
    node: int
    """The node's id in its tree."""
    parent: int
    """Its parent's id (0: the problem)."""
    prompt: str
    """The policy prompt the step was written after."""
    action: str
    """The step's text as the policy writes it (a line and its newline)."""
    value_prompt: str | None
    """The rating-token value prompt of the state the step reaches (None for an empty line)."""
    reward: float
    """Reward of the step: the verifier at an answer, else 0."""
    done: bool
    """The step ends the episode (an answer, an empty or a last line)."""
    correct: bool | None
    """The verifier's verdict where the step states an answer, else None."""
    weight: float
    """How many times the search sampled this step (merged identical lines count each)."""
    on_correct_path: bool = False
    """The step lies on a root-to-answer path that the verifier accepted."""
    advantage: float = 0.0
    """Filled by `ppo_targets`, `grpo_targets` or `expert_targets`."""
    value_target: float | None = None
    """Target of the rating-token value at the reached state (`ppo_targets`), else None."""


def _lines(tree: Tree, node_id: int) -> list[str]:
    return [tree.nodes[i].text for i in tree.path(node_id)[1:]]


def tree_samples(tree: Tree) -> list[StepSample]:
    """One `StepSample` per non-root node of a verified tree (see the module docstring)."""
    question = tree.problem.question
    correct_nodes = {n.id for n in tree.nodes if n.info.get(VERIFIED) is True}
    on_path = {i for n in correct_nodes for i in tree.path(n)}
    samples = []
    for node in tree.nodes[1:]:
        lines = _lines(tree, node.id)
        prompt = solve_prompt(question) + "".join(line + "\n" for line in lines[:-1])
        steps = solution_steps("\n".join(lines))
        verdict = node.info.get(VERIFIED)
        value_prompt = step_value_prompts(question, steps)[-1] if node.text.strip() else None
        samples.append(
            StepSample(
                problem_id=tree.problem.id,
                node=node.id,
                parent=int(node.parent or 0),
                prompt=prompt,
                action=node.text + "\n",
                value_prompt=value_prompt if steps else None,
                reward=1.0 if verdict is True else 0.0,
                done=bool(node.terminal) or verdict is not None,
                correct=None if verdict is None else bool(verdict),
                weight=float(node.info.get("samples", 1)),
                on_correct_path=node.id in on_path,
            )
        )
    return samples


def root_value(samples: Sequence[StepSample], values: Mapping[int, float]) -> float:
    """V of the problem alone: the sample-weighted mean value of the first steps (0.5 when
    there are none), so the first step's advantage compares it with its siblings."""
    first = [s for s in samples if s.parent == 0 and s.node in values]
    total = sum(s.weight for s in first)
    return sum(s.weight * values[s.node] for s in first) / total if total > 0 else 0.5


def ppo_targets(
    samples: Sequence[StepSample],
    values: Mapping[int, float],
    gamma: float,
    gae_lambda: float,
) -> list[StepSample]:
    """`samples` with GAE advantages (`tree_gae`) and lambda-return value targets.

    Args:
        samples: one tree's samples.
        values: V of each node's reached state (the rating-token value); a node without one
            (an empty line) counts as 0.
        gamma: discount.
        gae_lambda: the GAE lambda.
    """
    by_node = {s.node: s for s in samples}
    v = {s.node: float(values.get(s.node, 0.0)) for s in samples}
    v[0] = root_value(samples, values)
    adv = tree_gae(
        parents={s.node: s.parent for s in samples},
        rewards={s.node: s.reward for s in samples},
        values=v,
        dones={s.node: s.done for s in samples},
        weights={s.node: s.weight for s in samples},
        gamma=gamma,
        gae_lambda=gae_lambda,
    )
    out = []
    for node, s in by_node.items():
        # The reached state's target: its outcome where the step ends the episode, else the
        # lambda-return of the steps below it (the children's mean advantage plus V).
        kids = [c for c in samples if c.parent == node]
        total = sum(c.weight for c in kids)
        if s.done:
            target = s.reward
        elif total > 0:
            target = v[node] + sum(c.weight * adv[c.node] for c in kids) / total
        else:
            target = None
        out.append(dataclasses.replace(s, advantage=adv[node], value_target=_clip01(target)))
    return out


def _clip01(x: float | None) -> float | None:
    return None if x is None else min(1.0, max(0.0, x))


def grpo_targets(samples: Sequence[StepSample]) -> list[StepSample]:
    """`samples` with GRPO advantages: the group is the tree's candidate answers, each as many
    times as it was sampled; a step gets the weighted mean advantage of the answers below it
    (0 when none is below it)."""
    ends = [s for s in samples if s.done]
    group = group_advantages([s.reward for s in ends for _ in range(max(1, round(s.weight)))])
    adv_of, k = {}, 0
    for s in ends:
        adv_of[s.node] = group[k]
        k += max(1, round(s.weight))
    below: dict[int, list[tuple[float, float]]] = {}
    parents = {s.node: s.parent for s in samples}
    for s in ends:
        node = s.node
        while node != 0:
            below.setdefault(node, []).append((s.weight, adv_of[s.node]))
            node = parents[node]
    out = []
    for s in samples:
        pairs = below.get(s.node, [])
        total = sum(w for w, _ in pairs)
        adv = sum(w * a for w, a in pairs) / total if total > 0 else 0.0
        out.append(dataclasses.replace(s, advantage=adv))
    return out


def expert_targets(samples: Sequence[StepSample]) -> list[StepSample]:
    """The steps on verified-correct paths, each with advantage 1 (the rest dropped)."""
    return [dataclasses.replace(s, advantage=1.0) for s in samples if s.on_correct_path]

"""Pieces every search method shares: a mutable tree builder, answer reading and voting.

Search builds its tree node by node; `TreeBuilder` holds plain mutable nodes while the search runs
and `TreeBuilder.freeze` turns them into the frozen, validated `openberry.tree.Tree` record that
every method returns.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any, TypeVar

from openberry.formats.openlongcot import SPECIAL_TOKENS
from openberry.formats.profiles import ANSWER_TOKENS, TINY, PromptProfile, RolePrompt
from openberry.formats.replies import read_critique
from openberry.grading.extract import extract_answer
from openberry.grading.normalize import normalize_answer
from openberry.models.base import SamplingParams
from openberry.records import Generation, Problem
from openberry.search.engine import Generate
from openberry.tree import Node, Tree

__all__ = [
    "PROMPTS_METADATA",
    "MutableNode",
    "Step",
    "TreeBuilder",
    "answer_of_text",
    "expandable",
    "force_answers",
    "force_step_answer",
    "generate_solutions",
    "majority",
    "picks_in_flight",
    "reply_params",
    "rewrite_child",
    "rewrite_children",
    "softmax",
    "strip_tags",
    "vote_key",
]


_T = TypeVar("_T")
Step = Generator[Any, Any, _T]
"""A step of a search that asks the model: a generator the search runs with ``yield from``,
which yields model requests (see `openberry.search.engine`) and returns a `_T`."""

_TAG_RE = re.compile("|".join(re.escape(t) for t in sorted(SPECIAL_TOKENS, key=len, reverse=True)))


def strip_tags(text: str) -> str:
    """`text` without any tag of the OpenLongCoT format (which it could not be written with).

    Model output is untrusted: a sampled solution may contain ``</hint>`` or a rating token.
    """
    return _TAG_RE.sub("", text)


def answer_of_text(text: str) -> str | None:
    r"""The final answer a solution states (``\boxed{}``, ``####`` or "the answer is"), else None.

    No last-number fallback: a solution that states no answer has none (a step such as
    ``12 + 3 = 15`` must not count as answering 15), nor does one that states an empty answer
    (an instruction echoed: ``within \\boxed{}``).
    """
    answer = extract_answer(text, fallback="none")
    return answer if answer is not None and answer.strip() else None


def force_answers(
    prompts: Sequence[Any], gens: Sequence[Generation], profile: PromptProfile
) -> Step[list[Generation]]:
    """`gens` (solutions of `prompts`, one each) with answer forcing (`PromptProfile.answer`):
    each solution that states no answer (`answer_of_text`) is continued after the profile's
    ``answer`` text, greedily, for at most `ANSWER_TOKENS` tokens, in one request; its text
    becomes the solution, the forcing text and that continuation (tokens and log-probabilities
    stay the solution's). Unchanged when the profile forces nothing or every solution answers."""
    todo = [i for i, g in enumerate(gens) if answer_of_text(g.text) is None]
    if not profile.answer or not todo:
        return list(gens)
    heads = [gens[i].text.rstrip() + profile.answer for i in todo]
    params = SamplingParams(max_new_tokens=ANSWER_TOKENS, temperature=0.0)
    out = yield Generate(tuple(prompts[i] + h for i, h in zip(todo, heads, strict=True)), params)
    forced = list(gens)
    for i, head, cont in zip(todo, heads, out, strict=True):
        forced[i] = replace(gens[i], text=head + cont[0].text)
    return forced


def force_step_answer(
    builder: TreeBuilder, parent: int, prompt: Any, profile: PromptProfile
) -> Step[MutableNode | None]:
    """Answer forcing for the step methods: when a search ends on node `parent` without an
    answer, its path (already in `prompt`, the solve prompt and the path's steps) is continued
    after the profile's ``answer`` text (`force_answers`); the forced text becomes a conclusion
    child of `parent` marked ``forced_answer``. None when the profile forces nothing."""
    if not profile.answer:
        return None
    (gen,) = yield from force_answers([prompt], [Generation(text="")], profile)
    node = builder.add(parent, gen.text.strip(), meta_action="conclusion", terminal=True)
    node.info["forced_answer"] = True
    node.answer = answer_of_text(gen.text)
    return node


Answered = tuple[Generation, dict[str, Any]]
"""A solution after answer forcing and its node info (``forced_answer`` when forced)."""


def generate_solutions(
    prompts: Sequence[Any], params: SamplingParams, profile: PromptProfile
) -> Step[list[list[Answered]]]:
    """``params.n`` solutions of each of `prompts` in one request, then answer forcing
    (`force_answers`) of those that state no answer in one more: per prompt, each solution
    with its node info."""
    out = yield Generate(tuple(prompts), params)
    sampled = [g for row in out for g in row]
    row_prompts = [p for p, row in zip(prompts, out, strict=True) for _ in row]
    forced = iter(
        zip((yield from force_answers(row_prompts, sampled, profile)), sampled, strict=True)
    )
    return [
        [(f, {"forced_answer": True} if f is not s else {}) for f, s in islice(forced, len(row))]
        for row in out
    ]


def vote_key(answer: str) -> str:
    """The form answers are compared in when voting (normalised LaTeX, spacing removed)."""
    return normalize_answer(answer) or answer.strip()


def mean_logprob(gen: Generation) -> float | None:
    """A generation's mean token log-probability (None without log-probabilities)."""
    lps = gen.logprobs or ()
    return sum(lps) / len(lps) if lps else None


def value_vote(answers: Sequence[str], values: Sequence[float]) -> int:
    """Index of the highest-valued answer of the kind with the largest summed value (ties go to
    the kind more answers state, then to the higher value, then to the earlier answer)."""
    keys = [vote_key(a) for a in answers]
    mass: dict[str, float] = {}
    for key, v in zip(keys, values, strict=True):
        mass[key] = mass.get(key, 0.0) + v
    winner = max(mass, key=lambda k: (mass[k], keys.count(k)))
    return max((i for i in range(len(keys)) if keys[i] == winner), key=lambda i: (values[i], -i))


def majority(answers: Sequence[str | None]) -> tuple[int | None, dict[str, int]]:
    """Index of the first answer of the most frequent kind, and the vote counts.

    Ties go to the answer kind seen first; None answers do not vote. Returns ``(None, {})`` when
    no answer votes.
    """
    keys = [vote_key(a) if a is not None else None for a in answers]
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return None, {}
    best = max(counts.values())
    for i, k in enumerate(keys):
        if k is not None and counts[k] == best:
            return i, dict(counts)
    raise AssertionError("unreachable")


def softmax(xs: Sequence[float]) -> list[float]:
    """``exp(x - max) / sum``; an entry of ``-inf`` gets 0 (all of them: undefined)."""
    if not xs:
        return []
    m = max(xs)
    es = [math.exp(x - m) for x in xs]
    s = sum(es)
    return [e / s for e in es]


def expandable(q: float, child_qs: Sequence[float], max_children: int, in_flight: int = 0) -> bool:
    """The candidate rule of MCTSr and SR-MCTS (not fully expanded / kept by dynamic pruning):
    fewer than `max_children` children, or no child with a Q above `q`. Each of the node's
    `in_flight` picks is a child still to come that may beat it: it counts towards
    `max_children`, and a node with any in flight is past the limit not selectable."""
    if len(child_qs) + in_flight < max_children:
        return True
    return not in_flight and max(child_qs) < q


def picks_in_flight(select: Callable[[Mapping[int, int]], int | None], k: int) -> list[int]:
    """The nodes of a round of `k` rollouts run at once (parallel MCTS with a virtual loss,
    Chaslot et al. 2008): ``select(pending)`` is called `k` times, `pending` counting the picks
    made so far in the round per node id, on which `select` puts its method's virtual loss. A
    node is picked again only while it stays the best choice with its virtual losses. Fewer than
    `k` picks when `select` finds no candidate (None)."""
    pending: Counter[int] = Counter()
    picks: list[int] = []
    for _ in range(k):
        pick = select(pending)
        if pick is None:
            break
        picks.append(pick)
        pending[pick] += 1
    return picks


@dataclass
class MutableNode:
    """A node while the search runs; the fields mirror `openberry.tree.Node`."""

    id: int
    parent: int | None
    text: str = ""
    meta_action: str | None = None
    children: list[int] = field(default_factory=list)
    prior: float | None = None
    visits: int = 0
    value: float | None = None
    rewards: list[float] = field(default_factory=list)
    rating: str | None = None
    prompt_tokens: int = 0
    generated_tokens: int = 0
    terminal: bool = False
    answer: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def freeze(self) -> Node:
        return Node(
            id=self.id,
            parent=self.parent,
            children=tuple(self.children),
            text=self.text,
            meta_action=self.meta_action,  # type: ignore[arg-type]
            prior=self.prior,
            visits=self.visits,
            value=self.value,
            rewards=tuple(self.rewards),
            rating=self.rating,  # type: ignore[arg-type]
            prompt_tokens=self.prompt_tokens,
            generated_tokens=self.generated_tokens,
            terminal=self.terminal,
            answer=self.answer,
            info=dict(self.info),
        )


class TreeBuilder:
    """Grows a search tree: node 0 is the problem; ids are creation order."""

    def __init__(self, problem: Problem, method: str, *, root_meta: str | None = "problem") -> None:
        self.problem = problem
        self.method = method
        self.nodes: list[MutableNode] = [
            MutableNode(id=0, parent=None, text=problem.question, meta_action=root_meta)
        ]

    @property
    def root(self) -> MutableNode:
        return self.nodes[0]

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, i: int) -> MutableNode:
        return self.nodes[i]

    def add(
        self,
        parent: int,
        text: str,
        *,
        generation: Generation | None = None,
        **fields: Any,
    ) -> MutableNode:
        """Append a child of `parent`; `generation` fills the token counts."""
        node = MutableNode(id=len(self.nodes), parent=parent, text=text, **fields)
        if generation is not None:
            node.prompt_tokens = max(generation.prompt_tokens, 0)
            node.generated_tokens = max(generation.num_tokens, 0)
        self.nodes.append(node)
        self.nodes[parent].children.append(node.id)
        return node

    def add_solution(
        self, parent: int, generation: Generation, info: dict[str, Any] | None = None
    ) -> MutableNode:
        """Append a whole-answer child (MCTSr, SR-MCTS, the sampling baselines): the generated
        text, terminal, with the answer it states."""
        return self.add(
            parent,
            generation.text,
            generation=generation,
            terminal=True,
            answer=answer_of_text(generation.text),
            info=info or {},
        )

    def path(self, node_id: int) -> list[int]:
        ids = [node_id]
        while (p := self.nodes[ids[-1]].parent) is not None:
            ids.append(p)
        return ids[::-1]

    def snapshot(self) -> Tree:
        """The tree as it is now (used to build OpenLongCoT prompts mid-search)."""
        return self.freeze()

    def freeze(self, chosen: Sequence[int] = (), info: dict[str, Any] | None = None) -> Tree:
        return Tree(
            problem=self.problem,
            nodes=tuple(n.freeze() for n in self.nodes),
            method=self.method,
            chosen=tuple(chosen),
            info=dict(info or {}),
        )


def rewrite_child(
    builder: TreeBuilder,
    problem: Problem,
    parent: int,
    critique: Generation,
    params: Any,
    rollout: int,
    prompts: PromptProfile = TINY,
) -> Generator[Any, Any, MutableNode]:
    """Self-refine's rewrite (MCTSr, SR-MCTS): ask for a corrected solution of node `parent`
    from its `critique`, and add it as a child that carries the critique and its tokens."""
    (child,) = yield from rewrite_children(
        builder, problem, [parent], [critique], params, rollout, prompts
    )
    return child


def rewrite_children(
    builder: TreeBuilder,
    problem: Problem,
    parents: Sequence[int],
    critiques: Sequence[Generation],
    params: Any,
    first_rollout: int,
    prompts: PromptProfile = TINY,
) -> Generator[Any, Any, list[MutableNode]]:
    """`rewrite_child` for several rollouts at once: one request asks for the rewrite of each
    node of `parents` from its critique (in the `prompts` profile); the children are added in
    that order, the k-th marked with rollout ``first_rollout + k``. A critique of any length is
    used whole; an empty one is recorded as ``info["unparsed_critique"]`` on the child, whose
    rewrite then gets no feedback (the fallback)."""
    asks = [
        prompts.rewrite_prompt(problem.question, builder[p].text, c.text)
        for p, c in zip(parents, critiques, strict=True)
    ]
    rows = yield from generate_solutions(asks, params, prompts)
    children = []
    for k, (parent, critique, row) in enumerate(zip(parents, critiques, rows, strict=True)):
        (rewrite, forced), critique_text = row[0], critique.text.strip()
        info: dict[str, Any] = {"critique": critique_text, "rollout": first_rollout + k, **forced}
        if read_critique(critique.text) is None:
            info["unparsed_critique"] = True
        child = builder.add_solution(parent, rewrite, info)
        child.generated_tokens += critique.num_tokens
        child.prompt_tokens += critique.prompt_tokens
        children.append(child)
    return children


PROMPTS_METADATA: dict[str, str] = {"option": "--prompts"}
"""Field metadata of a method config's ``prompts`` field (a `PromptProfile`, berry-tiny's
``tiny`` by default): ``--prompts`` sets it, ``--set`` refuses it."""


def reply_params(
    role: RolePrompt, max_new_tokens: int, temperature: float, n: int = 1
) -> SamplingParams:
    """Sampling settings of a short reply (critique, self-evaluation, a judge's verdict) in its
    profile's `role`: the role's stop string, its token budget or else `max_new_tokens` (the
    method's own setting)."""
    return SamplingParams(
        n=n,
        max_new_tokens=role.max_new_tokens or max_new_tokens,
        temperature=temperature,
        stop=(role.stop,) if role.stop else (),
    )

"""The batched search engine: many trees stepped at once, one backend call per kind of request.

Every search algorithm in openberry is written as a *generator* over one problem: it yields a
model request (or a list of them) whenever it needs the model, receives the answer from ``yield``,
and finally returns its `Tree`. The engine runs the generators of all problems of a batch side by
side: each round it gathers the pending requests of every problem, merges those that can share a
backend call (same kind, same model, same sampling settings), sends each merged batch to the
backend once, and hands every problem its slice of the answer. A batch of 64 problems thus costs
about as many backend calls as one problem, and the backend sees batches 64 times larger, which is
where a GPU (or our CPU decode loop) gets its speed.

Algorithms stay sequential and readable (``critique = yield Generate(...)``) while the batching is
done once, here, for all of them. This is the "batched environment" idea of mctx applied to
language-model calls, which are far too expensive to run one at a time.

Oracle boundary: the engine accepts `Problem` records only (no reference answer exists on them)
and refuses an `Example`, so no search can read the answer it is being graded on.

Reproducibility: algorithms never seed their own sampling calls; the engine derives the seed of
each merged call from the run seed and the round number, so a run is reproducible from its seed
for the same problems in the same batch. At temperature 0 results do not depend on the batch.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass, replace
from typing import Any, Union

from openberry.errors import BerryError
from openberry.models.base import Policy, SamplingParams
from openberry.records import Example, Generation, Problem
from openberry.tree import Tree

__all__ = [
    "REQUEST_KINDS",
    "Asker",
    "Generate",
    "NextTokenProbs",
    "Request",
    "Score",
    "SearchError",
    "SearchFn",
    "SearchResult",
    "SearchStats",
    "StepRewards",
    "answer_group",
    "derive_seed",
    "problem_rng",
    "request_key",
    "run_search",
    "search_result",
]

logger = logging.getLogger(__name__)


class SearchError(BerryError, RuntimeError):
    """A search could not run (bad configuration, a model misbehaving, a broken algorithm)."""


@dataclass(frozen=True)
class Generate:
    """Sample `params.n` continuations of each prompt. Answer: ``list[list[Generation]]``."""

    prompts: tuple[str, ...]
    params: SamplingParams
    model: str = "policy"
    """Which model of the run answers (``policy``, ``judge`` or ``value``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompts", tuple(self.prompts))
        if self.params.seed is not None:
            raise SearchError("search requests must not carry a seed: the engine seeds each call")


@dataclass(frozen=True)
class Score:
    """Per-token log p of each completion after its prompt. Answer: ``list[tuple[float, ...]]``."""

    prompts: tuple[str, ...]
    completions: tuple[str, ...]
    model: str = "policy"

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompts", tuple(self.prompts))
        object.__setattr__(self, "completions", tuple(self.completions))
        if len(self.prompts) != len(self.completions):
            raise SearchError("Score needs one completion per prompt")


@dataclass(frozen=True)
class NextTokenProbs:
    """Probability of each candidate token after each prompt. Answer: ``list[dict[str, float]]``."""

    prompts: tuple[str, ...]
    candidates: tuple[str, ...]
    model: str = "policy"

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompts", tuple(self.prompts))
        object.__setattr__(self, "candidates", tuple(self.candidates))


@dataclass(frozen=True)
class StepRewards:
    """A reward-head model's step rewards: for each prompt, the probability of the good class
    (``label``) read at each of its character offsets ``ends`` (the end of each step's tag).
    Answer: ``list[tuple[float, ...]]``, one reward per offset (`openberry.models.base.RewardModel.step_rewards`)."""

    prompts: tuple[str, ...]
    ends: tuple[tuple[int, ...], ...]
    label: int = 1
    model: str = "value"

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompts", tuple(self.prompts))
        object.__setattr__(self, "ends", tuple(tuple(e) for e in self.ends))
        if len(self.prompts) != len(self.ends):
            raise SearchError("StepRewards needs one tuple of ends per prompt")


Request = Union[Generate, Score, NextTokenProbs, StepRewards]  # noqa: UP007 (a runtime alias)
REQUEST_KINDS = (Generate, Score, NextTokenProbs, StepRewards)
"""Every kind of model request a search may yield."""
SearchGen = Generator[Any, Any, Tree]
SearchFn = Callable[[Problem, random.Random], SearchGen]
"""A search algorithm bound to its config: ``fn(problem, rng)`` returns the problem's generator."""


@dataclass
class SearchStats:
    """What one problem's search cost. Token counts are summed over every backend request."""

    calls: int = 0
    """Model requests the search made (each may hold several prompts)."""
    prompts: int = 0
    """Prompts sent, over all requests."""
    prompt_tokens: int = 0
    """Prompt tokens processed for generation (as the backend reports them)."""
    generated_tokens: int = 0
    """Tokens generated."""
    scored_tokens: int = 0
    """Prompt and completion tokens evaluated by score / next-token requests (0 when the
    backend cannot count tokens); prompts answered from the search's memo are not counted."""
    cached_prompts: int = 0
    """Score / next-token prompts answered from the search's memo instead of the model: the
    same prompt asked again (in this round or an earlier one) is evaluated once."""
    rounds: int = 0
    """Engine rounds the problem took part in (its sequential depth of model calls)."""
    wall_time: float = 0.0
    """Seconds from the batch start to the moment this problem's search finished."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "prompts": self.prompts,
            "prompt_tokens": self.prompt_tokens,
            "generated_tokens": self.generated_tokens,
            "scored_tokens": self.scored_tokens,
            "cached_prompts": self.cached_prompts,
            "rounds": self.rounds,
            "wall_time": round(self.wall_time, 4),
        }


@dataclass(frozen=True)
class SearchResult:
    """One problem's finished search."""

    problem: Problem
    tree: Tree
    """The whole search tree; its ``info["stats"]`` repeats `stats`."""
    answer: str | None
    """The final answer the method chose (None when it found none)."""
    stats: SearchStats = field(default_factory=SearchStats)


def derive_seed(seed: int, *parts: object) -> int:
    """A 31-bit seed derived from ``seed`` and ``parts`` (stable across runs and platforms)."""
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF


def _token_counter(model: Policy) -> Callable[[Sequence[str]], list[int]] | None:
    counter = getattr(model, "count_tokens", None)
    return counter if callable(counter) else None


class _Driver:
    """Runs the generators of one batch; see the module docstring."""

    def __init__(
        self,
        models: Mapping[str, Policy],
        seed: int,
        max_batch: int,
        finish: Callable[[int, Tree], None],
    ) -> None:
        self.models = dict(models)
        self.seed = seed
        self.max_batch = max_batch
        self.finish = finish
        self.round = 0
        self.memo: dict[tuple, Any] = {}
        """Answers of deterministic requests (score, next-token) by (kind, model, candidates,
        prompt[, completion]): a prompt asked again is not sent again."""

    def _model(self, name: str) -> Policy:
        if name not in self.models:
            raise SearchError(f"this search needs a {name!r} model, but none was given")
        return self.models[name]

    def run(self, gens: list[SearchGen], stats: list[SearchStats]) -> list[Tree]:
        start = time.perf_counter()
        trees: list[Tree | None] = [None] * len(gens)
        pending: dict[int, tuple[bool, list[Request]]] = {}

        def advance(i: int, value: Any) -> None:
            try:
                out = gens[i].send(value)
            except StopIteration as stop:
                if not isinstance(stop.value, Tree):
                    raise SearchError(
                        f"search of problem {i} returned {type(stop.value).__name__}, not a Tree"
                    ) from None
                trees[i] = stop.value
                stats[i].wall_time = time.perf_counter() - start
                pending.pop(i, None)
                self.finish(i, stop.value)
                return
            single = not isinstance(out, (list, tuple))
            requests = [out] if single else list(out)
            for r in requests:
                if not isinstance(r, REQUEST_KINDS):
                    raise SearchError(f"search yielded {type(r).__name__}, not a model request")
            if not requests:
                raise SearchError("search yielded an empty list of requests")
            pending[i] = (single, requests)

        for i in range(len(gens)):
            advance(i, None)
        while pending:
            answers = self._answer_round(pending, stats)
            for i, (single, _requests) in list(pending.items()):
                advance(i, answers[i][0] if single else answers[i])
        return [t for t in trees if t is not None]

    def _answer_round(
        self, pending: dict[int, tuple[bool, list[Request]]], stats: list[SearchStats]
    ) -> dict[int, list[Any]]:
        self.round += 1
        # Group identical request shapes across problems: key -> list of (problem, slot, request).
        groups: dict[tuple, list[tuple[int, int, Request]]] = {}
        for i, (_single, requests) in pending.items():
            stats[i].rounds += 1
            for slot, r in enumerate(requests):
                groups.setdefault(request_key(r), []).append((i, slot, r))
        answers: dict[int, list[Any]] = {i: [None] * len(reqs) for i, (_, reqs) in pending.items()}
        for g, (key, members) in enumerate(groups.items()):
            askers = [Asker(r, self.memo, stats[i]) for i, _slot, r in members]
            seed = derive_seed(self.seed, self.round, g)
            parts = answer_group(self._model(key[1]), key, askers, seed, self.max_batch)
            for (i, slot, _r), part in zip(members, parts, strict=True):
                answers[i][slot] = part
        return answers


def request_key(r: Request) -> tuple:
    """Requests with equal keys can share one backend call: same kind, model and settings."""
    if isinstance(r, Generate):
        return ("generate", r.model, r.params)
    if isinstance(r, Score):
        return ("score", r.model)
    if isinstance(r, StepRewards):
        return ("reward", r.model, r.label)
    return ("next", r.model, r.candidates)


@dataclass(frozen=True)
class Asker:
    """One request of a merged backend call, with the memo and the stats of the search that
    asked it (searches of one batch may share a memo)."""

    request: Request
    memo: dict[tuple, Any] = field(repr=False)
    """Answers of deterministic requests by (key, prompt[, completion]): an item asked again is
    not sent again."""
    stats: SearchStats = field(repr=False)


def answer_group(
    model: Policy, key: tuple, askers: Sequence[Asker], seed: int, max_batch: int
) -> list[list[Any]]:
    """Answer requests that share `key` (`request_key`) with one backend call, sent in chunks
    of `max_batch` prompts (times samples per prompt); `seed` seeds a sampled generation.
    Counts each request and its tokens in its asker's stats. Returns each asker's answers."""
    for a in askers:
        a.stats.calls += 1
        a.stats.prompts += len(a.request.prompts)
    if not any(a.request.prompts for a in askers):  # empty requests keep a search in step
        return [[] for _ in askers]
    _check_can(model, key[0])
    if key[0] == "generate":
        return _answer_generate(model, key[2], askers, seed, max_batch)
    if key[0] == "score":
        out, sent = _memoized(
            key,
            askers,
            lambda r: list(zip(r.prompts, r.completions, strict=True)),
            lambda items: model.score([p for p, _ in items], [c for _, c in items]),
            max_batch,
            _name(model),
        )
    elif key[0] == "reward":
        label = key[2]
        out, sent = _memoized(
            key,
            askers,
            lambda r: list(zip(r.prompts, r.ends, strict=True)),
            lambda items: model.step_rewards([p for p, _ in items], [e for _, e in items], label),
            max_batch,
            _name(model),
        )
    else:
        cands = list(key[2])
        out, sent = _memoized(
            key,
            askers,
            lambda r: list(r.prompts),
            lambda items: model.next_token_probs(items, cands),
            max_batch,
            _name(model),
        )
    counter = _token_counter(model)
    for a, was_sent in zip(askers, sent, strict=True):
        a.stats.cached_prompts += was_sent.count(False)
        _count_scored(a.stats, a.request, was_sent, counter)
    return out


_METHODS = {
    "generate": "generate",
    "score": "score",
    "next": "next_token_probs",
    "reward": "step_rewards",
}
"""The model method that answers each kind of request (`request_key`'s first item)."""


def _check_can(model: Any, kind: str) -> None:
    """Refuse, naming the model, a request its model has no method for (a reward-head model
    asked to generate, a causal LM asked for reward-head step rewards)."""
    if callable(getattr(model, _METHODS[kind], None)):
        return
    if kind == "reward":
        hint = "; the prm-head scorer needs a reward-head model as --value-model"
    elif callable(getattr(model, "step_rewards", None)):
        hint = "; it is a reward-head model: give it as --value-model to the prm-head scorer"
    else:
        hint = ""
    raise SearchError(f"model {_name(model)!r} cannot answer {kind!r} requests{hint}")


def _answer_generate(
    model: Policy, params: SamplingParams, askers: Sequence[Asker], seed: int, max_batch: int
) -> list[list[Any]]:
    if not params.greedy:
        params = replace(params, seed=seed)
    prompts = [p for a in askers for p in a.request.prompts]
    out = _chunked(
        lambda lo, hi: model.generate(prompts[lo:hi], params),
        len(prompts),
        max_batch,
        per_prompt=params.n,
    )
    if len(out) != len(prompts):
        raise SearchError(f"model {_name(model)!r} answered {len(out)} of {len(prompts)} prompts")
    parts, pos = [], 0
    for a in askers:
        part = out[pos : pos + len(a.request.prompts)]
        _count_generated(a.stats, part)
        parts.append(part)
        pos += len(a.request.prompts)
    return parts


def _memoized(
    key: tuple,
    askers: Sequence[Asker],
    items_of: Callable[[Any], list[Any]],
    call: Callable[[list[Any]], list[Any]],
    max_batch: int,
    model_name: str,
) -> tuple[list[list[Any]], list[list[bool]]]:
    """Answers of a deterministic request kind: each item (a prompt, or a prompt-completion
    pair) not in its asker's memo is sent once, in chunks of `max_batch`, however many askers
    ask it; the others come from the memos. Returns each asker's answers and, per item, whether
    this item was the one sent."""
    todo: dict[Any, None] = {}
    sent: list[list[bool]] = []
    asked = [items_of(a.request) for a in askers]
    for a, items in zip(askers, asked, strict=True):
        flags = []
        for item in items:
            first = (key, item) not in a.memo and item not in todo
            if first:
                todo[item] = None
            flags.append(first)
        sent.append(flags)
    fresh = list(todo)
    got: dict[Any, Any] = {}
    if fresh:
        answers = _chunked(lambda lo, hi: call(fresh[lo:hi]), len(fresh), max_batch)
        if len(answers) != len(fresh):
            raise SearchError(
                f"model {model_name!r} answered {len(answers)} of {len(fresh)} prompts"
            )
        got = dict(zip(fresh, answers, strict=True))
    out = []
    for a, items in zip(askers, asked, strict=True):
        for item in items:
            if (key, item) not in a.memo:
                a.memo[(key, item)] = got[item]
        # Each asker gets its own copy of a mutable answer (a dict of probabilities).
        out.append([_copied(a.memo[(key, item)]) for item in items])
    return out, sent


def _name(model: Policy) -> str:
    return str(getattr(model, "name", type(model).__name__))


def _chunked(
    call: Callable[[int, int], list[Any]], n: int, max_batch: int, per_prompt: int = 1
) -> list:
    step = max(1, max_batch // max(1, per_prompt))
    out: list[Any] = []
    for lo in range(0, n, step):
        out.extend(call(lo, min(n, lo + step)))
    return out


def _count_generated(s: SearchStats, part: list[list[Generation]]) -> None:
    for row in part:
        for g in row:
            gen: Generation = g
            s.generated_tokens += max(gen.num_tokens, 0)
        # Siblings share one prompt: count its tokens once per prompt.
        s.prompt_tokens += max((g.prompt_tokens for g in row), default=0)


def _count_scored(
    s: SearchStats,
    r: Request,
    sent: list[bool],
    counter: Callable[[Sequence[str]], list[int]] | None,
) -> None:
    """Tokens of the prompts (and completions) of `r` that were sent to the model."""
    if counter is None:
        return
    texts = list(r.prompts)
    if isinstance(r, Score):
        texts = [p + c for p, c in zip(r.prompts, r.completions, strict=True)]
    texts = [t for t, was_sent in zip(texts, sent, strict=True) if was_sent]
    if texts:
        s.scored_tokens += sum(counter(texts))


def _copied(answer: Any) -> Any:
    return dict(answer) if isinstance(answer, dict) else answer


def _check_problems(problems: Sequence[Problem]) -> None:
    for p in problems:
        if isinstance(p, Example):
            raise TypeError(
                "run_search takes Problem records, not Example: search must never see the "
                "reference answer (pass example.problem)"
            )
        if not isinstance(p, Problem):
            raise TypeError(f"run_search takes Problem records, got {type(p).__name__}")


def run_search(
    search: SearchFn,
    problems: Sequence[Problem],
    models: Policy | Mapping[str, Policy],
    *,
    seed: int = 0,
    max_batch: int = 512,
    answer_of: Callable[[Tree], str | None] | None = None,
    progress: Callable[[int], None] | None = None,
    on_result: Callable[[int, SearchResult], None] | None = None,
) -> list[SearchResult]:
    """Search every problem together, batching their model calls; results in problem order.

    Each tree's ``info`` gets ``stats`` (`SearchStats`), ``seed`` and, for a search made by
    `openberry.search.make_search`, ``config``: the whole config of the search as a dict.

    Args:
        search: the method bound to its config (see `openberry.search.methods`).
        problems: the problems. `Example` records are refused: search never sees answers.
        models: the policy, or a mapping ``{"policy": ..., "judge": ..., "value": ...}`` with a
            separate judge (PPRM preferences) or value model (rating-token values, or a process
            reward model: a causal LM for ``prm``, a reward head for ``prm-head``); the policy
            plays the roles not given.
        seed: run seed: algorithm randomness and sampling seeds derive from it.
        max_batch: most prompts (times samples per prompt) sent to a backend in one call.
        answer_of: how to read the final answer from a tree (default: the answer of the last
            node of ``tree.chosen``).
        progress: called with 1 each time a problem finishes.
        on_result: called with ``(index, result)`` as soon as problem ``index`` finishes, while
            the others are still searching (how `berry eval` writes each record as it finishes).
    """
    _check_problems(problems)
    table = dict(models) if isinstance(models, Mapping) else {"policy": models}
    if "policy" not in table:
        raise SearchError("models must include a 'policy'")
    table.setdefault("judge", table["policy"])
    table.setdefault("value", table["policy"])
    for model in {id(m): m for m in table.values()}.values():
        # A backend's cache of earlier prompts (HFPolicy's prefix store) changes results by
        # float rounding only, but a search should not depend on what ran before it.
        reset = getattr(model, "reset_prefix_cache", None)
        if callable(reset):
            reset()
    stats = [SearchStats() for _ in problems]
    gens = [search(p, problem_rng(seed, p)) for p in problems]
    read = answer_of or chosen_answer
    results: list[SearchResult | None] = [None] * len(problems)

    config = getattr(search, "config", None)

    def finish(i: int, tree: Tree) -> None:
        results[i] = search_result(problems[i], tree, stats[i], seed=seed, config=config, read=read)
        if on_result is not None:
            on_result(i, results[i])
        if progress is not None:
            progress(1)

    _Driver(table, seed, max_batch, finish).run(gens, stats)
    return [r for r in results if r is not None]


def search_result(
    problem: Problem,
    tree: Tree,
    stats: SearchStats,
    *,
    seed: int,
    config: Any = None,
    read: Callable[[Tree], str | None] | None = None,
) -> SearchResult:
    """A finished search as a `SearchResult`: the tree's ``info`` gets the search's whole
    `config` (a dataclass), its `stats` and `seed`; the answer is ``read(tree)`` (default
    `chosen_answer`)."""
    info = dict(tree.info)
    if is_dataclass(config) and not isinstance(config, type):
        info = {"config": asdict(config), **info}
    info["stats"] = stats.to_dict()
    info.setdefault("seed", seed)
    tree = replace(tree, info=info)
    return SearchResult(
        problem=problem, tree=tree, answer=(read or chosen_answer)(tree), stats=stats
    )


def problem_rng(seed: int, problem: Problem) -> random.Random:
    """The random generator a search of `problem` gets in a run seeded `seed`."""
    return random.Random(derive_seed(seed, "problem", problem.id, problem.question))


def chosen_answer(tree: Tree) -> str | None:
    """The answer of the last node of the tree's chosen path (None if nothing was chosen)."""
    if not tree.chosen:
        return None
    return tree.nodes[tree.chosen[-1]].answer

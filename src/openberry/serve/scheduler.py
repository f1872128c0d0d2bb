"""One thread owns the models and steps every request in flight together: continuous batching at
the granularity of a backend call.

A served request becomes a *job*: a generator that yields model requests (`Generate`, `Score`,
`NextTokenProbs`, `StepRewards` of `openberry.search.engine`, or a `Call` that must run alone)
and returns its result, exactly as the search algorithms are written. A plain completion is a
job of one or two requests; a search is its algorithm's own generator. The scheduler thread
keeps every admitted job's unanswered requests in a ready pool and, one backend call at a time:

1. admits new jobs (up to ``max_active`` stepped together; the others wait in the queue, whose
   length ``max_queue`` bounds: a full queue refuses with `Busy`, never blocks);
2. drops cancelled jobs (their client went away): their generators are closed, no further call
   is made for them;
3. picks the next call: plain (interactive) requests and search requests take turns when both
   wait, each in the order they became ready, so a plain request waits for at most one search
   call and a stream of plain requests cannot starve the searches; every ready request that can
   share the chosen request's backend call (same kind, model and sampling settings,
   `openberry.search.engine.request_key`) joins it;
4. answers it (`openberry.search.engine.answer_group`, the engine's own batching), hands each
   job its part and steps the jobs whose requests are all answered to their next yield.

So a new request joins at the next backend call instead of waiting for a whole search, and
concurrent searches share calls the way the engine batches the problems of one run. Where this
departs from `openberry.search.engine.run_search` (which steps a fixed batch in lock-step rounds):

- at temperature 0 the answers are the same as serving the jobs one at a time (batching does
  not change greedy decoding). A sampled call takes the seed `run_search` would give its first
  request's search (from the search's seed, its round and the request's group), so a search
  served alone answers as ``berry solve`` with the same seed does; a search that shares a
  sampled call with others gets samples that depend on them. A plain request that sets
  ``seed`` runs in a call of its own, so its samples do not;
- each job has its own memo of deterministic answers, as a search of one run has; the policy's
  prefix cache is shared by all jobs (it changes results by float rounding only) and is not
  reset when a search starts;
- a merged call that fails is retried job by job, so a bad request fails alone.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import ctypes.util
import functools
import gc
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

from openberry.models.base import Policy
from openberry.search.engine import (
    REQUEST_KINDS,
    Asker,
    SearchError,
    SearchStats,
    answer_group,
    derive_seed,
    request_key,
)

__all__ = ["Busy", "Call", "Cancelled", "CountTokens", "Job", "Scheduler", "TokenBudgetExceeded"]

logger = logging.getLogger(__name__)

JobGen = Generator[Any, Any, Any]


class Busy(RuntimeError):
    """The scheduler's queue is full: try again later."""


class Cancelled(RuntimeError):
    """The job was cancelled (its client went away) before it finished."""


class TokenBudgetExceeded(RuntimeError):
    """A job generated more tokens than its budget allows."""


@dataclass(frozen=True)
class Call:
    """Run ``fn(*args)`` on the scheduler thread, alone (a model method with no batched form in
    the engine, or a sampled generation with its own seed). Answer: what `fn` returns."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class CountTokens:
    """The token count of each prompt (``count_tokens`` of the model). Tokenizing is cheap, so
    the scheduler answers every waiting count in one call before it picks the next backend call,
    without using a turn. Answer: ``list[int]``."""

    prompts: tuple[str, ...]
    model: str = "policy"


@dataclass(eq=False)
class Job:
    """One request in flight: its generator, its future and its bookkeeping."""

    gen: JobGen
    interactive: bool
    """Plain requests: their calls go before searches' calls."""
    token_budget: int | None
    """Most tokens the job may generate; past it the job fails with `TokenBudgetExceeded`."""
    seed: int | None = None
    """The run seed of a search (see `Scheduler.submit`)."""
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    """Resolves to ``(result, stats)``, or to the job's exception."""
    stats: SearchStats = field(default_factory=SearchStats)
    memo: dict[tuple, Any] = field(default_factory=dict, repr=False)
    cancelled: threading.Event = field(default_factory=threading.Event, repr=False)
    started: float = 0.0
    single: bool = True
    requests: list[Any] = field(default_factory=list)
    answers: list[Any] = field(default_factory=list)
    left: int = 0

    def cancel(self) -> None:
        """Stop the job at the scheduler's next step (safe from any thread)."""
        self.cancelled.set()


@dataclass(order=True)
class _Ready:
    """An unanswered request of an admitted job, in pick order."""

    priority: tuple[int, int]
    job: Job = field(compare=False)
    slot: int = field(compare=False)
    seed: int | None = field(default=None, compare=False)
    """The sampling seed `run_search` would give this request's call (a job with a seed)."""

    @property
    def request(self) -> Any:
        return self.job.requests[self.slot]

    @property
    def key(self) -> tuple:
        r = self.request
        return ("call", id(self.job), self.slot) if isinstance(r, Call) else _key(r)


class Scheduler:
    """Steps the jobs of many concurrent requests together on one thread (module docstring).

    Args:
        models: ``{"policy": ..., "judge": ..., "value": ...}``; roles left out are played by
            the policy.
        max_active: most jobs stepped together (1 serves requests one at a time).
        max_queue: most jobs admitted or waiting; `submit` raises `Busy` beyond it.
        max_batch: most prompts (times samples per prompt) in one backend call.
        seed: seeds the sampled calls.
    """

    def __init__(
        self,
        models: Mapping[str, Policy],
        *,
        max_active: int = 64,
        max_queue: int = 256,
        max_batch: int = 512,
        seed: int = 0,
    ) -> None:
        if max_active < 1 or max_queue < max_active:
            raise ValueError("need 1 <= max_active <= max_queue")
        self.models = {"judge": models["policy"], "value": models["policy"], **models}
        self.max_active = max_active
        self.max_queue = max_queue
        self.max_batch = max_batch
        self.seed = seed
        self.calls = 0
        """Backend calls made so far."""
        self._cond = threading.Condition()
        self._incoming: deque[Job] = deque()
        self._active: list[Job] = []
        self._ready: list[_Ready] = []
        self._order = itertools.count()
        self._closed = False
        self._plain_last = False
        self._thread = threading.Thread(target=self._loop, name="berry-scheduler", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ any thread

    def submit(
        self,
        gen: JobGen,
        *,
        interactive: bool = False,
        token_budget: int | None = None,
        seed: int | None = None,
    ) -> Job:
        """Queue a job; its ``future`` resolves to ``(result, stats)``. A job with a `seed`
        (a search) seeds its sampled calls as `openberry.search.engine.run_search` seeds a
        search run alone with that seed, so a search alone answers as ``berry solve`` does.

        Raises:
            Busy: the queue holds `max_queue` jobs.
        """
        job = Job(gen=gen, interactive=interactive, token_budget=token_budget, seed=seed)
        with self._cond:
            if self._closed:
                raise Busy("the server is shutting down")
            if len(self._incoming) + len(self._active) >= self.max_queue:
                raise Busy(f"the server has {self.max_queue} requests in flight")
            self._incoming.append(job)
            self._cond.notify()
        return job

    @property
    def load(self) -> tuple[int, int]:
        """(jobs stepped now, jobs waiting to start)."""
        with self._cond:
            return len(self._active), len(self._incoming)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread after the call in progress; unfinished jobs fail with `Cancelled`."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    # ------------------------------------------------------------------ scheduler thread

    def _loop(self) -> None:
        idle_since: float | None = None
        while True:
            with self._cond:
                while not self._closed and not self._ready and not self._can_admit():
                    self._cond.wait(timeout=0.5)
                    self._drop_cancelled()
                    if idle_since is not None and time.perf_counter() - idle_since > 1.0:
                        _release_memory()
                        idle_since = None
                if self._closed:
                    break
                new = self._admit()
            try:
                self._turn(new)
            except Exception as exc:  # a fault of the scheduler itself: fail what is in flight
                logger.exception("scheduler fault; failing %d request(s)", len(self._active))
                for job in list(self._active):
                    self._fail(job, exc)
            if not self._active:
                idle_since = time.perf_counter()
        with self._cond:
            for job in [*self._active, *self._incoming]:
                self._fail(job, Cancelled("the server shut down"))

    def _turn(self, new: list[Job]) -> None:
        """Start the newly admitted jobs, drop cancelled ones, make the next backend call."""
        for job in new:
            job.started = time.perf_counter()
            self._advance(job, None)
        self._drop_cancelled()
        self._count_tokens()
        if self._ready:
            self._step()

    def _count_tokens(self) -> None:
        """Answer every waiting `CountTokens` at once, per model (until none is left: a job
        answered may ask for another count)."""
        while counts := [e for e in self._ready if isinstance(e.request, CountTokens)]:
            self._ready = [e for e in self._ready if not isinstance(e.request, CountTokens)]
            for name in dict.fromkeys(e.request.model for e in counts):
                members = [e for e in counts if e.request.model == name]
                prompts = [p for e in members for p in e.request.prompts]
                try:
                    got = list(self.models[name].count_tokens(prompts))
                except Exception as exc:
                    for job in dict.fromkeys(e.job for e in members):
                        self._fail(job, exc)
                    continue
                answers, pos = [], 0
                for e in members:
                    answers.append(got[pos : pos + len(e.request.prompts)])
                    pos += len(e.request.prompts)
                self._deliver(members, answers)

    def _can_admit(self) -> bool:
        return bool(self._incoming) and len(self._active) < self.max_active

    def _admit(self) -> list[Job]:
        new = []
        while self._can_admit():
            job = self._incoming.popleft()
            self._active.append(job)
            new.append(job)
        return new

    def _drop_cancelled(self) -> None:
        with self._cond:
            gone = [j for j in [*self._active, *self._incoming] if j.cancelled.is_set()]
            for job in gone:
                if job in self._incoming:
                    self._incoming.remove(job)
                job.gen.close()
                self._fail(job, Cancelled("the client went away"))
        if gone:
            logger.info("cancelled %d request(s) whose client went away", len(gone))

    def _step(self) -> None:
        """Answer the next backend call: the first ready request in pick order and every ready
        request that can share its call."""
        first = self._pick()
        members = [e for e in self._ready if e.key == first.key]
        self._ready = [e for e in self._ready if e.key != first.key]
        jobs = list(dict.fromkeys(e.job for e in members))
        answers = self._answer(first.key, members)
        if answers is None:  # the merged call failed: retry job by job
            for job in jobs:
                own = [e for e in members if e.job is job]
                answers = self._answer(first.key, own, fail=job if len(jobs) > 1 else None)
                if answers is not None:
                    self._deliver(own, answers)
            return
        self._deliver(members, answers)

    def _pick(self) -> _Ready:
        """The request whose call comes next: plain and search calls take turns when both wait
        (so neither starves the other), each class in the order its requests became ready."""
        plain = [e for e in self._ready if e.job.interactive]
        search = [e for e in self._ready if not e.job.interactive]
        plain_turn = plain and (not search or not self._plain_last)
        first = min(plain) if plain_turn else min(search)
        self._plain_last = first.job.interactive
        return first

    def _answer(self, key: tuple, members: list[_Ready], fail: Job | None = None) -> Any:
        """The answers of one call for `members`, or None when it raised (the members' job
        fails when it is the only one, or when `fail` names it)."""
        self.calls += 1
        try:
            if key[0] == "call":
                (entry,) = members
                return [entry.request.fn(*entry.request.args)]
            askers = [Asker(e.request, e.job.memo, e.job.stats) for e in members]
            hints = [e.seed for e in members if e.seed is not None]
            seed = hints[0] if hints else derive_seed(self.seed, "scheduler", self.calls)
            return answer_group(self.models[key[1]], key, askers, seed, self.max_batch)
        except Exception as exc:
            jobs = list(dict.fromkeys(e.job for e in members))
            if len(jobs) == 1 or fail is not None:
                self._fail(fail or jobs[0], exc)
                return []
            logger.warning("a merged call of %d requests failed; retrying one by one", len(jobs))
            return None

    def _deliver(self, members: list[_Ready], answers: list[Any]) -> None:
        for entry, answer in zip(members, answers, strict=False):
            job = entry.job
            if job.future.done():
                continue
            job.answers[entry.slot] = answer
            job.left -= 1
            if job.token_budget is not None and job.stats.generated_tokens > job.token_budget:
                job.gen.close()
                self._fail(
                    job,
                    TokenBudgetExceeded(
                        f"the request generated {job.stats.generated_tokens} tokens, over its "
                        f"budget of {job.token_budget}"
                    ),
                )
            elif job.left == 0:
                job.stats.rounds += 1
                self._advance(job, job.answers[0] if job.single else job.answers)

    def _advance(self, job: Job, value: Any) -> None:
        """Send `value` into the job's generator and queue what it yields next."""
        try:
            out = job.gen.send(value)
        except StopIteration as stop:
            job.stats.wall_time = time.perf_counter() - job.started
            self._active.remove(job)
            job.future.set_result((stop.value, job.stats))
            return
        except Exception as exc:
            self._fail(job, exc)
            return
        job.single = not isinstance(out, (list, tuple))
        job.requests = [out] if job.single else list(out)
        bad = [r for r in job.requests if not isinstance(r, (*REQUEST_KINDS, Call, CountTokens))]
        if bad or not job.requests:
            job.gen.close()
            what = type(bad[0]).__name__ if bad else "an empty list"
            self._fail(job, SearchError(f"a job yielded {what}, not a model request"))
            return
        job.answers = [None] * len(job.requests)
        job.left = len(job.requests)
        rank = 0 if job.interactive else 1
        groups: dict[tuple, int] = {}
        for slot, r in enumerate(job.requests):
            g = groups.setdefault(("call", slot) if isinstance(r, Call) else _key(r), len(groups))
            seed = None if job.seed is None else derive_seed(job.seed, job.stats.rounds + 1, g)
            self._ready.append(_Ready((rank, next(self._order)), job, slot, seed))

    def _fail(self, job: Job, exc: BaseException) -> None:
        if job in self._active:
            self._active.remove(job)
        self._ready = [e for e in self._ready if e.job is not job]
        if not job.future.done():
            job.future.set_exception(exc)


def _key(r: Any) -> tuple:
    return ("count", r.model) if isinstance(r, CountTokens) else request_key(r)


def _release_memory() -> None:
    """Give freed memory back to the system once the server is idle (glibc keeps the arenas of
    a large request otherwise)."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, looked up once (None where there is none)."""
    libc = ctypes.util.find_library("c")
    if not libc:
        return None
    try:
        return ctypes.CDLL(libc).malloc_trim
    except (OSError, AttributeError):
        return None

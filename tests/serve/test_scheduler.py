"""The serving scheduler: merged calls, pick order, cancellation, a full queue, failures, budgets."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from openberry.models.base import SamplingParams
from openberry.models.fake import FakePolicy
from openberry.records import Problem
from openberry.search import make_search, run_search
from openberry.search.engine import Generate, SearchError, problem_rng
from openberry.serve.scheduler import Busy, Call, Cancelled, Scheduler, TokenBudgetExceeded

GREEDY = SamplingParams(max_new_tokens=8, temperature=0)


class Gated(FakePolicy):
    """A fake policy that records each generate call and blocks while `gate` is clear."""

    def __init__(self, **kwargs) -> None:
        super().__init__(seed=0, **kwargs)
        self.gate = threading.Event()
        self.gate.set()
        self.calls: list[tuple[str, ...]] = []
        self.entered = threading.Event()

    def generate(self, prompts, params):
        self.calls.append(tuple(prompts))
        self.entered.set()
        assert self.gate.wait(10), "test gate never opened"
        if any("bad" in p for p in prompts):
            raise ValueError("bad prompt")
        return super().generate(prompts, params)


def _plain(prompts, params=GREEDY):
    return (yield Generate(tuple(prompts), params))


@pytest.fixture
def policy():
    return Gated()


@pytest.fixture
def scheduler(policy):
    s = Scheduler({"policy": policy}, max_active=8, max_queue=8)
    yield s
    policy.gate.set()
    s.close()


def _hold(policy, scheduler):
    """Start a job that blocks the model until ``policy.gate`` is set."""
    policy.gate.clear()
    policy.entered.clear()
    job = scheduler.submit(_plain(["hold"]), interactive=True)
    assert policy.entered.wait(5)
    return job


def test_jobs_arriving_during_a_call_share_the_next_call(policy, scheduler) -> None:
    hold = _hold(policy, scheduler)
    jobs = [scheduler.submit(_plain([f"q{i}"]), interactive=True) for i in range(3)]
    policy.gate.set()
    hold.future.result(5)
    results = [j.future.result(5)[0] for j in jobs]
    assert policy.calls == [("hold",), ("q0", "q1", "q2")]
    solo = policy.generate(["q1"], GREEDY)
    assert results[1][0][0].text == solo[0][0].text


def test_plain_and_search_calls_take_turns_and_searches_alternate(policy, scheduler) -> None:
    hot = SamplingParams(max_new_tokens=8, temperature=0.5)

    def search(tag, params):
        for step in range(2):
            yield Generate((f"{tag}{step}",), params)
        return tag

    hold = _hold(policy, scheduler)
    a = scheduler.submit(search("a", GREEDY))
    b = scheduler.submit(search("b", hot))
    short = SamplingParams(max_new_tokens=6, temperature=0)
    plain = scheduler.submit(_plain(["p"], short), interactive=True)
    same = scheduler.submit(_plain(["p2"]), interactive=True)
    policy.gate.set()
    for job in (hold, a, b, plain, same):
        job.future.result(5)
    # After the plain "hold" call, search and plain calls take turns (the plain request with
    # the search's settings shares its call); the searches alternate instead of one running to
    # its end.
    assert policy.calls == [("hold",), ("a0", "p2"), ("p",), ("b0",), ("a1",), ("b1",)]


def test_regression_a_stream_of_plain_requests_does_not_starve_a_search(policy, scheduler) -> None:
    """Plain requests arriving all the time still leave every other call to the searches."""
    short = SamplingParams(max_new_tokens=6, temperature=0)

    def search():
        for step in range(3):
            yield Generate((f"s{step}",), GREEDY)

    hold = _hold(policy, scheduler)
    job = scheduler.submit(search())
    plain = [scheduler.submit(_plain(["p"], short), interactive=True)]
    policy.gate.set()
    while not job.future.done():
        plain.append(scheduler.submit(_plain([f"p{len(plain)}"], short), interactive=True))
        time.sleep(0.01)
        assert len(plain) < 300, "the search never finished"
    for j in (hold, *plain):
        j.future.result(5)
    searched = [i for i, c in enumerate(policy.calls) if c[0].startswith("s")]
    assert len(searched) == 3
    # Between two search calls, at most one plain call.
    assert all(b - a <= 2 for a, b in itertools.pairwise(searched))


def test_a_cancelled_job_is_closed_and_never_reaches_the_model(policy, scheduler) -> None:
    closed = threading.Event()

    def search():
        try:
            yield Generate(("first",), GREEDY)
            yield Generate(("second",), GREEDY)
        finally:
            closed.set()

    hold = _hold(policy, scheduler)
    job = scheduler.submit(search())
    job.cancel()
    policy.gate.set()
    hold.future.result(5)
    with pytest.raises(Cancelled):
        job.future.result(5)
    assert closed.wait(5)
    assert ("first",) not in policy.calls and ("second",) not in policy.calls


def test_a_full_queue_refuses_at_once() -> None:
    policy = Gated()
    s = Scheduler({"policy": policy}, max_active=1, max_queue=2)
    try:
        _hold(policy, s)
        s.submit(_plain(["waiting"]))
        t0 = time.perf_counter()
        with pytest.raises(Busy):
            s.submit(_plain(["refused"]))
        assert time.perf_counter() - t0 < 1
    finally:
        policy.gate.set()
        s.close()


def test_max_active_one_serves_one_request_at_a_time(policy) -> None:
    s = Scheduler({"policy": policy}, max_active=1, max_queue=8)
    try:
        hold = _hold(policy, s)
        jobs = [s.submit(_plain([f"q{i}"]), interactive=True) for i in range(3)]
        policy.gate.set()
        for job in (hold, *jobs):
            job.future.result(5)
        assert policy.calls == [("hold",), ("q0",), ("q1",), ("q2",)]
    finally:
        s.close()


def test_regression_a_bad_request_in_a_merged_call_fails_alone(policy, scheduler) -> None:
    hold = _hold(policy, scheduler)
    good = scheduler.submit(_plain(["fine"]), interactive=True)
    bad = scheduler.submit(_plain(["bad one"]), interactive=True)
    policy.gate.set()
    hold.future.result(5)
    assert good.future.result(5)[0][0][0].text == policy.generate(["fine"], GREEDY)[0][0].text
    with pytest.raises(ValueError, match="bad prompt"):
        bad.future.result(5)


def test_a_job_over_its_token_budget_is_stopped(scheduler) -> None:
    def endless():
        while True:
            yield Generate(("go",), SamplingParams(max_new_tokens=4, temperature=0))

    job = scheduler.submit(endless(), token_budget=10)
    with pytest.raises(TokenBudgetExceeded, match="budget of 10"):
        job.future.result(5)


def test_calls_run_alone_and_bad_yields_fail_the_job(scheduler) -> None:
    def calling():
        return (yield Call(sum, ([1, 2, 3],)))

    assert scheduler.submit(calling()).future.result(5)[0] == 6

    def broken():
        yield "not a request"

    with pytest.raises(SearchError, match="str"):
        scheduler.submit(broken()).future.result(5)


def test_greedy_searches_in_flight_together_match_run_search() -> None:
    """At temperature 0 a search stepped beside others answers as `run_search` alone does."""
    model = FakePolicy(seed=3)
    s = Scheduler({"policy": model}, max_active=8)
    try:
        search = make_search("beam", 2, {"temperature": "0"})
        problems = [Problem(id=f"p{i}", question=f"Compute {i} + {i + 1}.") for i in range(4)]
        jobs = [s.submit(search(p, problem_rng(0, p))) for p in problems]
        plain = s.submit(_plain(["Compute 1 + 1."]), interactive=True)
        trees = [j.future.result(10)[0] for j in jobs]
        plain.future.result(10)
        for p, tree in zip(problems, trees, strict=True):
            (alone,) = run_search(search, [p], model, seed=0)
            assert [n.text for n in tree.nodes] == [n.text for n in alone.tree.nodes]
            assert tree.chosen == alone.tree.chosen
    finally:
        s.close()


def test_close_fails_what_is_waiting(policy) -> None:
    s = Scheduler({"policy": policy}, max_active=1, max_queue=4)
    hold = _hold(policy, s)
    waiting = s.submit(_plain(["later"]))
    closer = threading.Thread(target=s.close)
    closer.start()
    policy.gate.set()
    closer.join(10)
    hold.future.result(5)
    with pytest.raises(Cancelled):
        waiting.future.result(5)


def test_regression_token_counts_of_waiting_jobs_go_in_one_call_without_a_turn(policy) -> None:
    """Each plain request counts its prompt's tokens first; those counts were one exclusive
    call per request, taking turns with the searches' calls under load."""
    from openberry.serve.scheduler import CountTokens

    counted: list[list[str]] = []
    policy.count_tokens = lambda texts: counted.append(list(texts)) or [len(t) for t in texts]
    s = Scheduler({"policy": policy}, max_active=8, max_queue=8)

    def counted_plain(prompt):
        (n,) = yield CountTokens((prompt,))
        out = yield Generate((prompt,), GREEDY)
        return n, out

    try:
        hold = _hold(policy, s)
        jobs = [s.submit(counted_plain(f"q{i}"), interactive=True) for i in range(3)]
        policy.gate.set()
        hold.future.result(5)
        assert [j.future.result(5)[0][0] for j in jobs] == [2, 2, 2]
        assert counted == [["q0", "q1", "q2"]]
        assert policy.calls == [("hold",), ("q0", "q1", "q2")]
    finally:
        s.close()


def test_regression_a_sampled_search_alone_answers_as_run_search() -> None:
    """A served search with a seed takes the sampling seeds `run_search` gives it (they came
    from the server's call counter, so a request's `seed` did not reproduce `berry solve`)."""
    model = FakePolicy(seed=5)
    s = Scheduler({"policy": model})
    try:
        for method in ("mctsr", "self-consistency", "step-mcts"):
            search = make_search(method, 3)
            p = Problem(id="p", question="Compute 4 + 9.")
            s.submit(_plain(["warm the call counter"]), interactive=True).future.result(5)
            tree, _stats = s.submit(search(p, problem_rng(7, p)), seed=7).future.result(10)
            (alone,) = run_search(search, [p], model, seed=7)
            assert [n.text for n in tree.nodes] == [n.text for n in alone.tree.nodes], method
    finally:
        s.close()

"""The batched engine: batching, statistics, determinism, and the oracle boundary."""

from __future__ import annotations

import dataclasses
import json

import pytest

from openberry.data.arithmetic import load_split
from openberry.models.base import SamplingParams
from openberry.models.fake import FakePolicy
from openberry.records import Example, Problem
from openberry.search import METHODS, SearchError, make_search, run_search
from openberry.search.engine import Generate
from search.policies import ArithmeticExpert, RecordingPolicy

PROBLEMS = [e.problem for e in load_split("test", limit=5)]


def strip(tree) -> dict:
    """A tree as a dict without its wall-clock statistics."""
    return {**tree.to_dict(), "info": {k: v for k, v in tree.info.items() if k != "stats"}}


def test_problem_record_has_no_answer_field() -> None:
    """The oracle boundary by construction: what search receives cannot hold an answer."""
    assert {f.name for f in dataclasses.fields(Problem)} == {"id", "question", "source", "meta"}
    assert not {"answer", "expression_value"} & set(PROBLEMS[0].meta)


def test_run_search_refuses_examples() -> None:
    example = load_split("test", limit=1)[0]
    with pytest.raises(TypeError, match="never see the reference answer"):
        run_search(make_search("greedy"), [example], ArithmeticExpert())


@pytest.mark.parametrize("method", sorted(METHODS))
def test_no_search_reads_the_reference_answer(method: str) -> None:
    """A canary answer on the examples never reaches a prompt or a tree, for every method."""
    canary = "ORACLE-CANARY-4471"
    examples = [Example(problem=p, answer=canary, solution=canary) for p in PROBLEMS[:2]]
    policy = ArithmeticExpert()
    results = run_search(
        make_search(method, rollouts=2), [e.problem for e in examples], policy, seed=1
    )
    assert policy.prompts and not any(canary in p for p in policy.prompts)
    for r in results:
        assert canary not in r.tree.to_json()
    # The same problems with other reference answers give the same trees: answers are unused.
    other = run_search(
        make_search(method, rollouts=2), [p for p in PROBLEMS[:2]], ArithmeticExpert(), seed=1
    )
    assert [strip(r.tree) for r in results] == [strip(r.tree) for r in other]


@pytest.mark.parametrize("method", ["greedy", "self-consistency", "mctsr", "sr-mcts", "meta-mcts"])
def test_many_problems_cost_the_calls_of_one(method: str) -> None:
    """Pending requests of all problems share backend calls: 5 problems, the calls of 1."""
    one, many = ArithmeticExpert(), ArithmeticExpert()
    run_search(make_search(method, rollouts=3), PROBLEMS[:1], one, seed=0)
    results = run_search(make_search(method, rollouts=3), PROBLEMS, many, seed=0)
    assert len(many.prompts) > len(one.prompts)
    # At most one backend call per engine round and request kind (generate, next-token).
    assert sum(many.calls.values()) <= 2 * max(r.stats.rounds for r in results)
    if method != "meta-mcts":  # meta-mcts trees differ in depth, so their rounds differ
        assert sum(many.calls.values()) <= sum(one.calls.values())


@pytest.mark.parametrize("method", sorted(METHODS))
def test_batched_trees_equal_one_at_a_time_at_temperature_zero(method: str) -> None:
    overrides = {
        "greedy": {},
        "self-consistency": {"temperature": "0"},
        "best-of-n": {"temperature": "0", "scorer": "pprm"},
        "beam": {"temperature": "0"},
        "mctsr": {"temperature": "0"},
        "sr-mcts": {"temperature": "0"},
        "meta-mcts": {"temperature": "0", "meta_policy": "model"},
        "step-mcts": {"temperature": "0"},
    }[method]
    policy = FakePolicy(seed=3, eos_bias=0.0)
    search = make_search(method, rollouts=2, overrides=overrides)
    together = run_search(search, PROBLEMS[:3], policy, seed=5, max_batch=64)
    alone = [run_search(search, [p], policy, seed=5)[0] for p in PROBLEMS[:3]]
    assert [strip(r.tree) for r in together] == [strip(r.tree) for r in alone]


def test_stats_count_calls_and_tokens() -> None:
    policy = ArithmeticExpert()
    (r,) = run_search(make_search("self-consistency", rollouts=4), PROBLEMS[:1], policy)
    assert r.stats.calls == 1 and r.stats.rounds == 1 and r.stats.prompts == 1
    assert r.stats.generated_tokens == sum(n.generated_tokens for n in r.tree.nodes)
    assert r.stats.prompt_tokens == len(policy.prompts[0].split())
    assert r.stats.wall_time > 0
    assert r.tree.info["stats"] == r.stats.to_dict()


def test_sampled_search_is_reproducible_from_the_seed() -> None:
    search = make_search("mctsr", rollouts=2)
    a = run_search(search, PROBLEMS[:2], FakePolicy(seed=1), seed=7)
    b = run_search(search, PROBLEMS[:2], FakePolicy(seed=1), seed=7)
    c = run_search(search, PROBLEMS[:2], FakePolicy(seed=1), seed=8)
    drop = lambda rs: [json.dumps(r.tree.nodes[1].to_dict()) for r in rs]  # noqa: E731
    assert drop(a) == drop(b) and drop(a) != drop(c)


def test_requests_may_not_carry_a_seed() -> None:
    with pytest.raises(SearchError, match="seed"):
        Generate(("x",), SamplingParams(seed=3))


def test_a_missing_judge_model_falls_back_to_the_policy_and_unknown_models_fail() -> None:
    policy = ArithmeticExpert()
    (r,) = run_search(make_search("best-of-n", 2, {"scorer": "pprm"}), PROBLEMS[:1], policy)
    assert policy.calls["next"] == 1 and r.answer is not None

    class Broken(RecordingPolicy):
        def respond(self, prompt, index, params):
            return "x"

    def bad(problem, rng):
        yield Generate(("p",), SamplingParams(), model="critic")

    with pytest.raises(SearchError, match="'critic' model"):
        run_search(bad, PROBLEMS[:1], Broken())


def test_on_result_reports_each_problem_as_it_finishes() -> None:
    """`on_result` fires once per problem, before the batch ends, with the returned results."""
    seen: list[tuple[int, object]] = []
    progress: list[int] = []
    results = run_search(
        make_search("meta-mcts", rollouts=2),
        PROBLEMS,
        ArithmeticExpert(),
        seed=3,
        on_result=lambda i, r: seen.append((i, r)),
        progress=progress.append,
    )
    assert sorted(i for i, _ in seen) == list(range(len(PROBLEMS)))
    assert progress == [1] * len(PROBLEMS)
    for i, r in seen:
        assert r is results[i] and r.problem == PROBLEMS[i]
    # Reported in the order problems finish: by the number of rounds they took.
    rounds = [r.stats.rounds for _, r in seen]
    assert rounds == sorted(rounds) and rounds[0] < rounds[-1]


def test_run_search_resets_backend_prefix_caches() -> None:
    """A search must not depend on what ran before it: run_search empties each distinct
    model's prefix cache (`HFPolicy.reset_prefix_cache`) once, before the first call."""

    class Cached(FakePolicy):
        resets = 0

        def reset_prefix_cache(self) -> None:
            self.resets += 1

    policy, judge = Cached(), Cached()
    problems = [e.problem for e in load_split("test", limit=2)]
    run_search(make_search("greedy"), problems, policy)
    assert policy.resets == 1
    run_search(make_search("sr-mcts", rollouts=1), problems, {"policy": policy, "judge": judge})
    assert (policy.resets, judge.resets) == (2, 1)


def test_a_repeated_score_or_next_token_prompt_is_sent_once() -> None:
    """Score and next-token answers are deterministic, so the engine asks the model once per
    search for each distinct prompt (within a round and across rounds); sampling is not
    memoised. Each asker gets its own copy of the probabilities."""
    from openberry.search.common import TreeBuilder
    from openberry.search.engine import NextTokenProbs, Score

    class Counting(RecordingPolicy):
        def respond(self, prompt, index, params):
            return f"sample {index}"

        def prob(self, prompt, candidates):
            return {c: 0.5 for c in candidates}

        def count_tokens(self, texts):
            return [len(t.split()) for t in texts]

    got: dict[str, list] = {}

    def search(problem, rng):
        a, b = "judge this one", "and that one"
        first = yield NextTokenProbs((a, b, a), ("Yes", "No"))
        first[0]["Yes"] = 99.0  # must not leak into the other answers
        again, scores = yield [
            NextTokenProbs((b, "a new one"), ("Yes", "No")),
            Score((a, a), ("x y", "x y")),
        ]
        samples = yield Generate((a, a), SamplingParams(temperature=1.0))
        got[problem.id] = [first, again, scores, samples]
        return TreeBuilder(problem, "test").freeze()

    policy = Counting()
    (r,) = run_search(search, PROBLEMS[:1], policy)
    first, again, scores, samples = got[PROBLEMS[0].id]
    assert first[1] == first[2] == again[0] == {"Yes": 0.5, "No": 0.5}
    # Backend saw: a, b | "a new one" (next-token), (a, "x y") once (score), a twice (generate).
    assert policy.prompts.count("judge this one") == 1 + 1 + 2
    assert policy.prompts.count("and that one") == 1 and "a new one" in policy.prompts
    assert scores[0] == scores[1] and len(samples) == 2
    assert r.stats.prompts == 3 + 2 + 2 + 2
    assert r.stats.cached_prompts == 1 + 1 + 1
    # Scored tokens count what was sent: three 3-word prompts and "judge this onex y" once.
    assert r.stats.scored_tokens == 3 + 3 + 3 + 4


@pytest.mark.parametrize(
    ("method", "overrides"),
    [
        ("step-mcts", {}),
        ("beam", {}),
        ("meta-mcts", {}),
        ("best-of-n", {"scorer": "value"}),
        ("best-of-n", {"scorer": "value", "scorer_config.value_context": "predicted"}),
    ],
)
def test_rating_requests_go_to_a_separate_value_model(method, overrides) -> None:
    """Every rating-token request of every method that rates is answered by the ``value`` model
    when one is given; the policy only writes."""
    policy, value = ArithmeticExpert(), ArithmeticExpert()
    search = make_search(method, 2, overrides)
    run_search(search, PROBLEMS[:2], {"policy": policy, "value": value})
    assert value.calls["next"] >= 1 and set(value.calls) == {"next"}
    assert policy.calls["next"] == 0 and policy.calls["generate"] >= 1
    alone = ArithmeticExpert()
    run_search(search, PROBLEMS[:2], alone)
    assert alone.calls["next"] == value.calls["next"]

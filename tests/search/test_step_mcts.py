"""Step-level MCTS: closed forms of the prior, PUCT and backup; a golden tree; one call per
expansion; no reference answer; determinism at a fixed seed."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace

import pytest
from golden import check_golden

from openberry.data.arithmetic import load_split
from openberry.models.base import SamplingParams
from openberry.models.fake import FakePolicy
from openberry.records import Example, Generation
from openberry.search import make_search, run_search
from openberry.search.common import TreeBuilder, value_vote
from openberry.search.engine import SearchError
from openberry.search.scorers import ScorerConfig, step_reward
from openberry.search.step_mcts import (
    StepMCTSConfig,
    StepMCTSState,
    backup,
    effective_q,
    path_value,
    puct_scores,
    select,
    select_round,
    sibling_priors,
    unexplored_mass,
    widen_score,
)
from search.policies import ArithmeticExpert

EXAMPLES = load_split("test", limit=3)


def test_prior_is_the_softmax_of_mean_logprobs() -> None:
    """softmax(mean log p) = exp(mean log p) normalised: 0.5 and 0.25 give 2/3 and 1/3."""
    assert sibling_priors([math.log(0.5), math.log(0.25)]) == pytest.approx([2 / 3, 1 / 3])
    assert sibling_priors([-1.0, -1.0, -1.0]) == pytest.approx([1 / 3] * 3)
    assert sibling_priors([-math.inf, math.log(0.1)]) == pytest.approx([0.0, 1.0])
    assert sibling_priors([-math.inf, -math.inf]) == [0.5, 0.5]  # no log-probabilities
    assert sibling_priors([]) == []


def test_puct_closed_form() -> None:
    # Q + c P sqrt(N_parent) / (1 + N_child)
    got = puct_scores([0.5, 0.2], [0.25, 0.75], [3, 0], 4, 1.5)
    assert got == pytest.approx([0.5 + 1.5 * 0.25 * 2 / 4, 0.2 + 1.5 * 0.75 * 2 / 1])
    assert puct_scores([0.3], [1.0], [2], 0, 1.0) == [0.3]  # an unvisited parent: Q alone


def test_backup_is_the_mean_of_leaf_values() -> None:
    tree = TreeBuilder(EXAMPLES[0].problem, "step-mcts")
    a = tree.add(0, "a")
    backup([a], [0.2])
    assert (a.visits, a.value) == (1, 0.2)
    backup([tree.root, a], [0.4, 0.9])
    assert tree.root.visits == 2 and tree.root.value == pytest.approx(0.65)
    assert a.visits == 3 and a.value == pytest.approx((0.2 + 0.4 + 0.9) / 3)


def test_path_value_aggregates_step_ratings() -> None:
    cfg = ScorerConfig()
    assert path_value([0.9, 0.3, 0.8], False, cfg) == 0.3
    assert path_value([0.9, 0.8, 0.1], True, cfg) == 0.8  # the conclusion's rating left out
    assert path_value([0.9, 0.8, 0.1], True, ScorerConfig(value_conclusion=True)) == 0.1
    assert path_value([0.4], True, cfg) == 0.4  # a lone conclusion keeps its rating
    assert path_value([0.2, 0.6], False, ScorerConfig(value_aggregate="mean")) == 0.4
    assert path_value([0.2, 0.6], False, ScorerConfig(value_aggregate="last")) == 0.6
    with pytest.raises(SearchError, match="unknown value aggregate"):  # was min, silently
        path_value([0.2, 0.6], False, ScorerConfig(value_aggregate="max"))  # type: ignore[arg-type]


def test_vote_sums_values_per_answer() -> None:
    # "7" has 0.4 + 0.4 = 0.8 > 0.7 for "9": its best-valued (then earliest) terminal wins.
    assert value_vote(["9", "7", "7"], [0.7, 0.4, 0.4]) == 1
    assert value_vote(["9", "7", "7"], [0.9, 0.4, 0.4]) == 0


def test_select_descends_the_best_puct_child() -> None:
    """Root N = 4; child a: Q 0.6, P 0.2, N 3; child b: Q 0.3, P 0.8, N 1:
    a = 0.6 + 0.2 * 2 / 4 = 0.7, b = 0.3 + 0.8 * 2 / 2 = 1.1, so b; below b, its only child."""
    tree = TreeBuilder(EXAMPLES[0].problem, "step-mcts")
    state = StepMCTSState(EXAMPLES[0].problem, tree, StepMCTSConfig(c_puct=1.0))
    a, b = tree.add(0, "a", prior=0.2), tree.add(0, "b", prior=0.8)
    tree.root.visits, a.visits, a.value, b.visits, b.value = 4, 3, 0.6, 1, 0.3
    c = tree.add(b.id, "c", prior=1.0, visits=1, value=0.5)
    assert [n.id for n in select(state)] == [0, b.id, c.id]
    b.value = -1.0
    assert [n.id for n in select(state)] == [0, a.id]
    c.terminal = True  # a terminal node ends the descent even with children
    a.terminal = True
    tree.add(a.id, "d")
    assert [n.id for n in select(state)] == [0, a.id]


def test_virtual_loss_closed_form() -> None:
    """Q with p pending simulations = (Q N + virtual_loss p) / (N + p); none pending: Q."""
    tree = TreeBuilder(EXAMPLES[0].problem, "step-mcts")
    a = tree.add(0, "a")
    a.visits, a.value = 3, 0.6
    state = StepMCTSState(EXAMPLES[0].problem, tree, StepMCTSConfig(virtual_loss=0.1))
    assert effective_q(state, a) == 0.6
    state.pending[a.id] = 2
    assert effective_q(state, a) == pytest.approx((0.6 * 3 + 0.1 * 2) / 5)


def test_a_round_spreads_over_siblings_by_virtual_loss() -> None:
    """Two selections: a (0.5 + 0.6 sqrt 2 / 2 = 0.92 against b's 0.68), then with a's
    virtual loss a scores 0.25 + 0.6 sqrt 3 / 3 = 0.60 against b's 0.4 + 0.4 sqrt 3 / 2 = 0.75."""
    tree = TreeBuilder(EXAMPLES[0].problem, "step-mcts")
    a, b = tree.add(0, "a"), tree.add(0, "b")
    a.prior, b.prior, a.value, b.value = 0.6, 0.4, 0.5, 0.4
    a.visits = b.visits = 1
    tree.root.visits = 2
    state = StepMCTSState(EXAMPLES[0].problem, tree, StepMCTSConfig())
    assert [p[-1].id for p in select_round(state, 2)] == [a.id, b.id]
    assert state.pending == {}
    assert [p[-1].id for p in select_round(state, 1)] == [a.id]  # no loss left behind


def test_a_leaf_held_by_the_round_is_expanded_once() -> None:
    tree = TreeBuilder(EXAMPLES[0].problem, "step-mcts")
    state = StepMCTSState(EXAMPLES[0].problem, tree, StepMCTSConfig())
    assert [[n.id for n in p] for p in select_round(state, 3)] == [[0]]


def test_simulations_in_flight_share_one_call() -> None:
    overrides = {
        "children": 2,
        "finish_tokens": 0,
        "in_flight": 3,
        "widen": False,
        "rollout": False,
    }
    calls = {}
    for k in (3, 1):
        policy = _FakeCalls()
        search = make_search("step-mcts", rollouts=7, overrides={**overrides, "in_flight": k})
        run_search(search, [EXAMPLES[1].problem], policy)
        calls[k] = policy.sizes
    assert calls[3][0] == 1 and max(calls[3]) == 3  # the root alone, then up to 3 leaves a call
    assert len(calls[3]) < sum(calls[3]) <= 7
    assert calls[1] == [1] * len(calls[1]) and len(calls[1]) > len(calls[3])


def test_unexplored_mass_is_what_the_children_leave() -> None:
    tree = TreeBuilder(EXAMPLES[0].problem, "step-mcts")
    a, b = tree.add(0, "a"), tree.add(0, "b")
    a.info, b.info = {"logprob": math.log(0.5)}, {"logprob": math.log(0.2)}
    assert unexplored_mass([a, b]) == pytest.approx(0.3)
    b.info = {"logprob": None}  # a backend without log-probabilities: never widen
    assert unexplored_mass([a, b]) == 0.0


def _one_low_child(widen: bool) -> StepMCTSState:
    """Root: Q 0.05, N 3, one child a sampled three times (P 1, Q 0.05, N 3, p(line) 0.4)."""
    tree = TreeBuilder(EXAMPLES[0].problem, "step-mcts")
    a = tree.add(0, "a")
    a.info = {"logprob": math.log(0.4), "samples": 3}
    a.prior, a.value, a.visits = 1.0, 0.05, 3
    tree.root.value, tree.root.visits = 0.05, 3
    return StepMCTSState(EXAMPLES[0].problem, tree, StepMCTSConfig(widen=widen))


def test_widen_score_closed_form() -> None:
    """Q(node) + c_puct * mass * sqrt(N(node)) / (1 + expansions) = 0.05 + 0.6 sqrt 3 / 2."""
    state = _one_low_child(True)
    kids = [state.tree[1]]
    assert widen_score(state, state.tree.root, kids) == pytest.approx(0.05 + 0.6 * 3**0.5 / 2)
    state.tree.root.info["expansions"] = 3
    assert widen_score(state, state.tree.root, kids) == pytest.approx(0.05 + 0.6 * 3**0.5 / 4)


def test_identical_siblings_no_longer_trap_the_search() -> None:
    """Regression: a node whose samples were all one line had one child for good, however low
    its value. With ``widen`` selection stops at the node to sample it again: its child scores
    0.05 + sqrt 3 / 4 = 0.48, sampling again 0.05 + 0.6 sqrt 3 / 2 = 0.57."""
    assert [n.id for n in select(_one_low_child(True))] == [0]
    assert [n.id for n in select(_one_low_child(False))] == [0, 1]


def test_a_rollout_reaches_an_answer_in_one_simulation() -> None:
    over = {"rollout": True, "finish_tokens": 0, "children": 2}
    (r,) = run_search(
        make_search("step-mcts", rollouts=1, overrides=over),
        [EXAMPLES[0].problem],
        ArithmeticExpert(),
    )
    assert r.answer is not None and r.tree.nodes[r.tree.chosen[-1]].terminal
    assert r.tree.root.visits == 1  # one simulation: the path was backed up once


def test_step_mcts_golden_tree() -> None:
    (r,) = run_search(
        make_search("step-mcts", rollouts=4, overrides={"children": 2}),
        [EXAMPLES[0].problem],
        ArithmeticExpert(),
    )
    check_golden("step_mcts", r.tree)
    assert r.answer == EXAMPLES[0].answer  # the slipped first line is rated down and not taken


def test_step_mcts_in_flight_golden_tree() -> None:
    """Three simulations in flight over lines that differ (a random-text policy)."""
    over = {"children": 2, "in_flight": 3, "max_depth": 4, "rollout": False}
    (r,) = run_search(
        make_search("step-mcts", rollouts=6, overrides=over),
        [EXAMPLES[1].problem],
        FakePolicy(seed=3),
    )
    check_golden("step_mcts_in_flight", r.tree)


class _Calls(ArithmeticExpert):
    """Records the sampling settings of every generate call."""

    def __init__(self) -> None:
        super().__init__()
        self.params: list[tuple[int, SamplingParams]] = []

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Generation]]:
        self.params.append((len(prompts), params))
        return super().generate(prompts, params)


class _FakeCalls(FakePolicy):
    """A random-text policy (siblings differ) that records the prompts of every generate call."""

    def __init__(self) -> None:
        super().__init__(seed=3)
        self.sizes: list[int] = []

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Generation]]:
        self.sizes.append(len(prompts))
        return super().generate(prompts, params)


def test_siblings_are_sampled_in_one_call_with_n() -> None:
    policy = _Calls()
    over = {"children": 3, "finish_tokens": 0, "rollout": False}
    search = make_search("step-mcts", rollouts=3, overrides=over)
    (r,) = run_search(search, [EXAMPLES[1].problem], policy)
    assert policy.params and all(k == 1 for k, _ in policy.params)
    assert all(p.n == 3 and p.stop == ("\n",) for _, p in policy.params)
    assert len(policy.params) == 3  # one policy call per simulation
    # Every expanded node's children came from its one call (merged duplicates counted).
    for node in r.tree.nodes:
        if node.children:
            assert sum(r.tree.nodes[k].info["samples"] for k in node.children) == 3


def test_the_search_never_sees_the_reference_answer() -> None:
    canary = "ORACLE-CANARY-9127"
    example = Example(problem=EXAMPLES[2].problem, answer=canary, solution=canary)
    policy = ArithmeticExpert()
    (r,) = run_search(make_search("step-mcts", rollouts=4), [example.problem], policy)
    assert policy.prompts and not any(canary in p for p in policy.prompts)
    assert canary not in r.tree.to_json()
    with pytest.raises(TypeError, match="never see the reference answer"):
        run_search(make_search("step-mcts", rollouts=4), [example], ArithmeticExpert())


def test_deterministic_at_a_fixed_seed() -> None:
    search = make_search("step-mcts", rollouts=4)
    problems = [e.problem for e in EXAMPLES]
    trees = [
        [
            json.dumps(x.tree.to_dict()["nodes"])
            for x in run_search(search, problems, FakePolicy(seed=1), seed=s)
        ]
        for s in (7, 7, 8)
    ]
    assert trees[0] == trees[1] and trees[0] != trees[2]


def test_visits_selection_takes_the_most_visited_terminal() -> None:
    search = make_search("step-mcts", rollouts=6, overrides={"answer_selection": "visits"})
    (r,) = run_search(search, [EXAMPLES[0].problem], ArithmeticExpert())
    last = r.tree.nodes[r.tree.chosen[-1]]
    terminals = [n for n in r.tree.nodes if n.terminal and n.answer is not None]
    assert last.terminal and last.visits == max(n.visits for n in terminals)


class _Tagged(ArithmeticExpert):
    """Writes OpenLongCoT tags alone as two of the three sampled lines of every expansion."""

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Generation]]:
        out = super().generate(prompts, params)
        tags = ("<expansion>", "<end_of_thought>")
        return [
            [
                replace(g, text=tags[k]) if k < len(tags) and params.n > 1 else g
                for k, g in enumerate(row)
            ]
            for row in out
        ]


def test_a_line_of_tags_alone_is_an_empty_terminal_line() -> None:
    """Regression: such a line crashed the value prompt (first line) or took the rating of the
    step before it (later lines), as the value prompts drop tags and the node kept them."""
    search = make_search("step-mcts", rollouts=4, overrides={"children": 3})
    (r,) = run_search(search, [EXAMPLES[0].problem], _Tagged())
    tagged = [n for n in r.tree.nodes[1:] if not n.text]
    assert tagged and all(n.terminal and "step_value" not in n.info for n in tagged)
    assert all(list(n.rewards) == [0.0] for n in tagged)
    searched = [n for n in r.tree.nodes[1:] if n.text and not n.info.get("finish")]
    assert searched and all("step_value" in n.info for n in searched)


def test_step_reward_closed_form() -> None:
    """RAP's mix: rating ** alpha * p ** (1 - alpha), p the line's per-token probability."""
    assert step_reward(0.8, math.log(0.5), 0.2) == pytest.approx(0.8**0.2 * 0.5**0.8)
    assert step_reward(0.8, math.log(0.5), 1.0) == 0.8  # the rating alone
    assert step_reward(0.8, math.log(0.5), 0.0) == pytest.approx(0.5)  # the confidence alone
    assert step_reward(0.8, None, 0.2) == 0.8  # no log-probabilities: the rating alone
    assert step_reward(0.0, math.log(0.9), 0.2) == 0.0  # a step rated wrong stays at 0


@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.2])
def test_path_values_are_the_minimum_of_mixed_step_rewards(alpha: float) -> None:
    """Every evaluated node's path value is the minimum over its steps of `step_reward` (the
    answer line's own left out), with each line's own log-probabilities."""
    over = {"children": 2, "max_depth": 4, "alpha": alpha, "finish_tokens": 0}
    (r,) = run_search(make_search("step-mcts", 6, over), [EXAMPLES[1].problem], FakePolicy(seed=3))
    nodes = r.tree.nodes
    rated = [n for n in nodes[1:] if n.rewards and n.text]
    assert rated
    for n in rated:
        path = [nodes[i] for i in r.tree.path(n.id)[1:]]
        if n.answer is not None and len(path) > 1:
            path = path[:-1]
        want = min(step_reward(m.info["step_value"], m.info["mean_logprob"], alpha) for m in path)
        assert n.rewards[-1] == pytest.approx(want)
    if alpha < 1.0:  # the mix moved some value: the random-text lines are far from certain
        assert any(
            n.rewards[-1] < min(nodes[i].info["step_value"] for i in r.tree.path(n.id)[1:])
            for n in rated
        )


def test_alpha_out_of_range_is_refused() -> None:
    for alpha in (-0.1, 1.5):
        with pytest.raises(SearchError, match="alpha must be in"):
            StepMCTSConfig(alpha=alpha)


@pytest.mark.parametrize("field", ["in_flight", "children"])
def test_a_round_of_no_simulations_is_refused(field: str) -> None:
    """Regression: ``in_flight=0`` made every round select nothing, so the search never ended."""
    with pytest.raises(SearchError, match=f"{field} must be >= 1"):
        StepMCTSConfig(**{field: 0})

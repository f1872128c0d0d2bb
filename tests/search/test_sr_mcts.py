"""LLaMA-Berry SR-MCTS: closed forms, PPRM caching, a golden tree, selection by EBC."""

from __future__ import annotations

import math

import pytest
from golden import check_golden

from openberry.data.arithmetic import load_split
from openberry.formats.prompts import JUDGE_YES
from openberry.records import Generation
from openberry.search import make_search, run_search
from openberry.search.common import TreeBuilder
from openberry.search.engine import SearchError
from openberry.search.sr_mcts import (
    SRMCTSConfig,
    SRMCTSState,
    backup,
    berry_backup,
    choose_answer,
    select,
    select_round,
    uct_berry,
    virtual_stats,
)
from search.policies import ArithmeticExpert, BatchRecorder, solution_ok

EXAMPLES = load_split("test", limit=3)


def test_uct_and_backup_closed_forms() -> None:
    assert uct_berry(0.5, 4, 2) == pytest.approx(0.5 + 1.4 * math.sqrt(math.log(4) / 2))
    assert uct_berry(0.5, 1, 1) == 0.5 and uct_berry(0.5, 3, 0) == math.inf
    assert berry_backup(0.2, 1.0) == pytest.approx(0.9 * 0.2 + 0.1 * 1.0)


def test_select_and_backup_steps() -> None:
    """`select` prunes a node whose children include a better one; `backup` moves the parent's Q
    towards its new child and counts the visits."""
    problem = EXAMPLES[0].problem
    tree = TreeBuilder(problem, "sr-mcts")
    a = tree.add_solution(0, Generation(text="a"))
    b = tree.add_solution(a.id, Generation(text="b"))
    c = tree.add_solution(a.id, Generation(text="c"))
    tree.root.visits, a.visits, b.visits, c.visits = 3, 1, 1, 1
    state = SRMCTSState(problem, tree, SRMCTSConfig(), [a.id, b.id, c.id])
    state.q = {a.id: 0.5, b.id: 0.2, c.id: 0.9}
    assert select(state) == c.id  # a is pruned (two children, c beats it); c's Q is highest
    backup(state, c.id, b.id)
    assert state.q[c.id] == pytest.approx(0.9 * 0.9 + 0.1 * 0.2)
    assert c.visits == 2 and tree.root.visits == 4
    state.q = {a.id: 0.95, b.id: 0.2, c.id: 0.9}
    assert select(state) == a.id


def _three_solutions() -> tuple[SRMCTSState, list[int]]:
    """Solutions a (Q 0.5, 2 visits) and c (Q 0.9, 1 visit) under the problem (3 visits), and
    b (Q 0.2, 1 visit) under a."""
    problem = EXAMPLES[0].problem
    tree = TreeBuilder(problem, "sr-mcts")
    a = tree.add_solution(0, Generation(text="a"))
    b = tree.add_solution(a.id, Generation(text="b"))
    c = tree.add_solution(0, Generation(text="c"))
    tree.root.visits, a.visits, b.visits, c.visits = 3, 2, 1, 1
    state = SRMCTSState(problem, tree, SRMCTSConfig(), [a.id, b.id, c.id])
    state.q = {a.id: 0.5, b.id: 0.2, c.id: 0.9}
    return state, [a.id, b.id, c.id]


def test_virtual_loss_is_a_backup_of_a_worst_child_per_pick_in_flight() -> None:
    state, (a, _b, c) = _three_solutions()
    q, visits = virtual_stats(state, {c: 2})
    assert q[c] == pytest.approx(0.9 * 0.9 * 0.9) and q[a] == 0.5
    assert visits[c] == 3 and visits[0] == 5 and visits[a] == 2
    assert virtual_stats(state, {}) == (state.q, [3, 2, 1, 1])


def test_picks_in_flight_closed_form() -> None:
    """Five picks in one round, each counting a visit of its node and of the problem and moving
    its Q by 0.9; UCT = Q + 1.4 sqrt(ln N_parent / N), worked by hand:

    1. a 0.5 + 1.4 sqrt(ln 3 / 2) = 1.54, b 0.2 + 1.4 sqrt(ln 2) = 1.37,
       c 0.9 + 1.4 sqrt(ln 3) = 2.37: c;
    2. a 0.5 + 1.4 sqrt(ln 4 / 2) = 1.67, c 0.81 + 1.4 sqrt(ln 4 / 2) = 1.98: c again;
    3. c has two rewrites in flight, the child limit: a 0.5 + 1.4 sqrt(ln 5 / 2) = 1.76: a;
    4. a is at the limit (b and one in flight): b;
    5. b, the only candidate left, again.
    """
    state, (a, b, c) = _three_solutions()
    assert select_round(state, 5) == [c, c, a, b, b]
    assert select_round(state, 6) == [c, c, a, b, b]  # nothing left to pick
    assert select_round(state, 1) == [select(state)] == [c]


def test_sr_mcts_golden_tree() -> None:
    """in_flight=1 is the paper's sequential loop: this tree was recorded before in_flight."""
    search = make_search("sr-mcts", rollouts=4, overrides={"in_flight": 1})
    (r,) = run_search(search, [EXAMPLES[0].problem], ArithmeticExpert())
    check_golden("sr_mcts", r.tree)


def test_sr_mcts_in_flight_golden_tree() -> None:
    """8 rollouts three at a time; the first round has 2 (the first solution's child limit)."""
    search = make_search("sr-mcts", rollouts=8, overrides={"in_flight": 3})
    (r,) = run_search(search, [EXAMPLES[1].problem], ArithmeticExpert())
    check_golden("sr_mcts_in_flight", r.tree)
    assert len(r.tree) == 1 + 1 + 8
    assert [n.info["rollout"] for n in r.tree.nodes[2:]] == list(range(1, 9))


def test_rollouts_in_flight_send_one_request_per_call_kind() -> None:
    """A round's critiques go out in one backend call, its rewrites in one and its judge
    prompts in one."""
    policy = BatchRecorder()
    search = make_search("sr-mcts", rollouts=6, overrides={"in_flight": 4})
    (r,) = run_search(search, [EXAMPLES[1].problem], policy)
    assert len(r.tree) == 2 + 6
    critiques = [kinds.count("review") for kinds in policy.batches if "review" in kinds]
    rewrites = [kinds.count("refine") for kinds in policy.batches if "refine" in kinds]
    # Round 1: the first solution alone, picked up to its child limit (2); round 2: 4.
    assert critiques == [2, 4] and rewrites == [2, 4]
    # solve (the first solution has nothing to be compared with), then per round: critiques,
    # rewrites, judge; one request each.
    assert r.stats.calls == r.stats.rounds == 1 + 2 * 3
    sequential = make_search("sr-mcts", rollouts=6, overrides={"in_flight": 1})
    (s,) = run_search(sequential, [EXAMPLES[1].problem], ArithmeticExpert())
    assert s.stats.rounds == 1 + 6 * 3


@pytest.mark.parametrize("preference", ["judge", "value"])
def test_in_flight_judges_every_new_pair_once(preference: str) -> None:
    """The judge sees each ordered pair of solutions once, however the rollouts are grouped,
    and the value head scores each solution once."""
    policy = ArithmeticExpert()
    search = make_search(
        "sr-mcts", rollouts=7, overrides={"in_flight": 3, "preference": preference}
    )
    (r,) = run_search(search, [EXAMPLES[0].problem], policy)
    n = len(r.tree) - 1
    if preference == "judge":
        judged = [p for p in policy.prompts if p.endswith("than solution B? ")]
        assert len(judged) + r.stats.cached_prompts == n * (n - 1)
    else:
        assert all("value_score" in node.info for node in r.tree.nodes[1:])


def test_in_flight_must_be_positive() -> None:
    with pytest.raises(SearchError, match="in_flight"):
        SRMCTSConfig(in_flight=0)


@pytest.mark.parametrize("preference", ["judge", "value"])
def test_the_top_ebc_solution_is_a_correct_one(preference: str) -> None:
    policy = ArithmeticExpert()
    search = make_search("sr-mcts", rollouts=3, overrides={"preference": preference})
    results = run_search(search, [e.problem for e in EXAMPLES], policy)
    for r, e in zip(results, EXAMPLES, strict=True):
        assert r.answer == e.answer
        assert solution_ok(r.tree.nodes[r.tree.chosen[-1]].text)


def test_each_rollout_judges_only_the_new_solution_in_both_orders() -> None:
    policy = ArithmeticExpert()
    (r,) = run_search(make_search("sr-mcts", rollouts=4), [EXAMPLES[0].problem], policy)
    judged = [p for p in policy.prompts if p.endswith("than solution B? ")]
    n = 5  # root solution + 4 rewrites
    # Every ordered pair is asked once (2(k - 1) prompts for the k-th solution); the expert
    # writes equal solutions, whose equal judge prompts the engine sends only once.
    assert len(judged) + r.stats.cached_prompts == n * (n - 1)
    assert len(set(judged)) == len(judged) and r.stats.cached_prompts > 0
    assert JUDGE_YES == "Yes"


def test_dynamic_pruning_limits_children_to_two() -> None:
    policy = ArithmeticExpert(slips=lambda i: True)
    (r,) = run_search(make_search("sr-mcts", rollouts=6), [EXAMPLES[2].problem], policy)
    for node in r.tree.nodes[1:]:
        kids = [r.tree.nodes[k] for k in node.children]
        if len(kids) > 2:
            raise AssertionError(f"node {node.id} has {len(kids)} children")


def test_answer_selection_rules() -> None:
    """``ebc``: the top score. ``vote``: the most frequent answer (None does not vote), ties to
    the higher summed score, reached through its top-scored solution."""
    answers = ["7", "9", " 9", None, "7"]
    scores = [0.9, 0.1, 0.3, 0.99, 0.2]
    assert choose_answer("ebc", answers, scores) == 3
    # "7" and "9" have two votes each ("9" and " 9" are one answer); "7" has the larger mass
    # (1.1 against 0.4) and its top-scored solution is index 0.
    assert choose_answer("vote", answers, scores) == 0
    assert choose_answer("vote", ["9", "9", "7"], [0.1, 0.2, 0.9]) == 1  # two votes beat one
    assert choose_answer("vote", [None, None], [0.2, 0.7]) == 1  # no vote: the top score
    assert choose_answer("vote", ["5", "5"], [0.4, 0.4]) == 0  # score ties go to the first


@pytest.mark.parametrize("rule", ["vote", "ebc"])
def test_sr_mcts_answer_follows_the_selection_rule(rule: str) -> None:
    problems = [e.problem for e in load_split("test", limit=4)]
    search = make_search("sr-mcts", rollouts=4, overrides={"answer_selection": rule})
    for r in run_search(search, problems, ArithmeticExpert(), seed=0):
        sols = list(r.tree.nodes[1:])  # every node but the root is a solution
        chosen = r.tree.nodes[r.tree.chosen[-1]]
        scores = [n.info["ebc_score"] for n in sols]
        k = choose_answer(rule, [n.answer for n in sols], scores)
        assert chosen.id == sols[k].id and r.answer == chosen.answer
        if rule == "ebc":
            assert chosen.info["ebc_score"] == max(scores)
        else:
            top = max(sum(n.answer == a for n in sols) for a in {n.answer for n in sols})
            assert sum(n.answer == chosen.answer for n in sols) == top

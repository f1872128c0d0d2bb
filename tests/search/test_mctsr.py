"""MCTSr: closed forms of Q, UCT, candidates and backup; a golden tree; paper behaviours."""

from __future__ import annotations

import math

import pytest
from golden import check_golden

from openberry.data.arithmetic import load_split
from openberry.records import Generation
from openberry.search import make_search, run_search
from openberry.search.common import TreeBuilder
from openberry.search.mctsr import (
    DUMMY_ANSWERS,
    MCTSrConfig,
    MCTSrState,
    backed_up_values,
    backup,
    is_candidate,
    q_value,
    select,
    uct,
)
from openberry.search.scorers import ScorerConfig, parse_score, suppress_full_score
from search.policies import ArithmeticExpert

EXAMPLES = load_split("test", limit=3)


def test_q_is_mean_of_min_and_mean() -> None:
    assert q_value([10, 50, 90]) == pytest.approx(0.5 * (10 + 50))
    assert q_value([-20]) == -20
    assert q_value([]) == -100


def test_uct_closed_form_and_root_level_nodes() -> None:
    assert uct(30.0, 3, 2) == pytest.approx(30 + 1.4 * math.sqrt(math.log(4) / (2 + 1e-5)))
    assert uct(30.0, 0, 5) == 30.0  # root-level: ln(0 + 1) = 0


def test_fully_expanded_rule() -> None:
    assert is_candidate(10, [], 3)
    assert is_candidate(10, [20, 30], 3)  # fewer than 3 children
    assert is_candidate(40, [20, 30, 35], 3)  # no child beats it
    assert not is_candidate(25, [20, 30, 5], 3)


def test_backup_through_ancestors_and_one_level() -> None:
    q = [0.0, 10.0, 20.0, 60.0]
    children = [[1], [2], [3], []]  # a chain 0 -> 1 -> 2 -> 3
    v = backed_up_values(q, children, "ancestors")
    assert v[3] == 60 and v[2] == 40 and v[1] == 25 and v[0] == 12.5
    v1 = backed_up_values(q, children, "parent")
    assert v1[1] == 15 and v1[2] == 40


def test_reward_parsing_and_full_score_suppression() -> None:
    assert parse_score("80") == 80 and parse_score("[Score] 7 out of 10") == 10
    assert parse_score("Score: -30. Score: 45") == 45 and parse_score("none") is None
    assert parse_score("250") == 100
    cfg = ScorerConfig()
    assert suppress_full_score(95, cfg) == 50 and suppress_full_score(94, cfg) == 94


def test_backup_and_select_steps() -> None:
    """`backup` recomputes Q and V from the rewards; `select` picks by UCT among the answers
    that are not fully expanded, and returns None when every answer is."""
    problem = EXAMPLES[0].problem
    tree = TreeBuilder(problem, "mctsr")
    a = tree.add_solution(0, Generation(text="a"))
    b = tree.add_solution(a.id, Generation(text="b"))
    a.rewards, b.rewards = [40.0, 20.0], [80.0]
    state = MCTSrState(problem, tree, MCTSrConfig(max_children=1), [a.id, b.id])
    q, v = backup(state)
    assert q == [0.0, 25.0, 80.0] and v == [26.25, 52.5, 80.0]
    assert select(state, q, v) == b.id  # a has max_children children and one beats it
    b.rewards = [-50.0]
    q, v = backup(state)
    assert select(state, q, v) == a.id  # no child beats a now; a's UCT (V, root-level) is higher
    state.answers = [a.id]
    a.rewards = [-90.0]
    q, v = backup(state)
    assert select(state, q, v) is None


def test_mctsr_golden_tree() -> None:
    (r,) = run_search(make_search("mctsr", rollouts=4), [EXAMPLES[0].problem], ArithmeticExpert())
    check_golden("mctsr", r.tree)


def test_mctsr_starts_with_naive_and_dummy_answers_and_refines_to_the_right_one() -> None:
    (r,) = run_search(make_search("mctsr", rollouts=4), [EXAMPLES[1].problem], ArithmeticExpert())
    root_level = [r.tree.nodes[i] for i in r.tree.root.children]
    assert len(root_level) == 2 and root_level[1].text in DUMMY_ANSWERS
    assert len(r.tree) == 3 + 4  # problem, naive, dummy, one child per rollout
    assert r.answer == EXAMPLES[1].answer  # the naive answer slips; a rewrite fixes it
    # Every answer node got a reward at creation and one more each time it was selected.
    for node in r.tree.nodes[1:]:
        assert len(node.rewards) == 1 + sum(1 for c in node.children)


def test_mctsr_runs_every_rollout_even_when_the_first_answer_is_right() -> None:
    """No ground-truth early stop at inference (the original code stopped at a correct answer)."""
    policy = ArithmeticExpert(slips=lambda i: False)
    (r,) = run_search(make_search("mctsr", rollouts=5), [EXAMPLES[0].problem], policy)
    assert len(r.tree) == 3 + 5

"""MCTSr: closed forms of Q, UCT, candidates and backup; a golden tree; paper behaviours."""

from __future__ import annotations

import math

import pytest
from golden import check_golden

from openberry.data.arithmetic import load_split
from openberry.records import Generation
from openberry.search import make_search, run_search
from openberry.search.common import TreeBuilder
from openberry.search.engine import SearchError
from openberry.search.mctsr import (
    DUMMY_ANSWERS,
    VIRTUAL_REWARD,
    MCTSrConfig,
    MCTSrState,
    backed_up_values,
    backup,
    choose,
    is_candidate,
    q_value,
    select,
    select_round,
    uct,
)
from openberry.search.scorers import ScorerConfig, parse_score, suppress_full_score
from search.policies import ArithmeticExpert, BatchRecorder

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


def test_fully_expanded_rule_counts_rollouts_in_flight() -> None:
    """A pick in flight is a child still to come that may beat the node: it counts towards
    ``max_children``, and a node at the limit with one in flight is not selectable."""
    assert is_candidate(10, [20], 3, in_flight=1)
    assert not is_candidate(10, [20, 30], 3, in_flight=1)
    assert not is_candidate(40, [20, 30, 35], 3, in_flight=1)  # a candidate with none in flight
    assert is_candidate(10, [], 3, in_flight=2) and not is_candidate(10, [], 3, in_flight=3)


def _three_answers() -> tuple[MCTSrState, list[int]]:
    """Root-level answers a, b, d with one reward each (80, 40, -60) and a child c of a (70)."""
    problem = EXAMPLES[0].problem
    tree = TreeBuilder(problem, "mctsr")
    a, b, d = (tree.add_solution(0, Generation(text=t)) for t in "abd")
    c = tree.add_solution(a.id, Generation(text="c"))
    a.rewards, b.rewards, d.rewards, c.rewards = [80.0], [40.0], [-60.0], [70.0]
    ids = [a.id, b.id, d.id, c.id]
    return MCTSrState(problem, tree, MCTSrConfig(), ids), ids


def test_the_chosen_answer_is_a_node_that_states_one() -> None:
    """Regression: a chat model's best-rated solution may state no answer (a forced answer that
    never closed its box); the search then answered nothing though other nodes had answers."""
    state, (a, b, d, c) = _three_answers()
    for i, answer in zip((a, b, d, c), (None, "14", "15", None), strict=True):
        state.tree[i].answer = answer
    assert choose(state) == b  # a has the best Q but no answer
    for i in (b, d):
        state.tree[i].answer = None
    assert choose(state) == a  # none answers: the best Q, as before


def test_virtual_loss_is_a_worst_reward_per_pick_in_flight() -> None:
    state, (a, _b, _d, c) = _three_answers()
    q, v = backup(state, {a: 1, c: 2})
    assert VIRTUAL_REWARD == -100
    assert q[a] == q_value([80, -100]) == -55.0
    assert q[c] == q_value([70, -100, -100]) == pytest.approx(0.5 * (-100 - 130 / 3))
    assert v[a] == pytest.approx(0.5 * (q[a] + q[c]))  # the loss reaches the ancestors' V
    assert backup(state, {}) == backup(state)


def test_picks_in_flight_closed_form() -> None:
    """Six picks in one round, each adding a -100 reward to its node (root-level UCT = V;
    c's UCT is V + 1.4 sqrt(ln(N_a + 1) / N_c)); worked by hand:

    1. a (80 + 70) / 2 = 75, b 40, d -60, c 70 + 1.4 sqrt(ln 2) = 71.17: a;
    2. a (-55 + 70) / 2 = 7.5, c 70 + 1.4 sqrt(ln 3) = 71.47: c;
    3. a (-55 - 57.5) / 2 = -56.25, c -57.5 + 1.4 sqrt(ln 3 / 2) = -56.46, b 40: b;
    4. b -65, d -60: a (-56.25) again, the best with its loss;
    5. a (-70 - 57.5) / 2 = -63.75, c -57.5 + 1.4 sqrt(ln 4 / 2) = -56.33: c again;
    6. a (-70 - 71.67) / 2 = -70.83, c -71.67 + 1.4 sqrt(ln 4 / 3) = -70.71, d -60: d.
    """
    state, (a, b, d, c) = _three_answers()
    assert select_round(state, 6) == [a, c, b, a, c, d]
    assert select_round(state, 1) == [select(state, *backup(state))] == [a]


def test_mctsr_golden_tree() -> None:
    """in_flight=1 is the paper's sequential loop: this tree was recorded before in_flight."""
    search = make_search("mctsr", rollouts=4, overrides={"in_flight": 1})
    (r,) = run_search(search, [EXAMPLES[0].problem], ArithmeticExpert())
    check_golden("mctsr", r.tree)


def test_mctsr_in_flight_golden_tree() -> None:
    """8 rollouts three at a time: rounds of 3, 3 and 2."""
    search = make_search("mctsr", rollouts=8, overrides={"in_flight": 3})
    (r,) = run_search(search, [EXAMPLES[1].problem], ArithmeticExpert())
    check_golden("mctsr_in_flight", r.tree)
    assert len(r.tree) == 3 + 8
    assert [n.info["rollout"] for n in r.tree.nodes[3:]] == list(range(1, 9))


def test_rollouts_in_flight_send_one_request_per_call_kind() -> None:
    """With in_flight=4, a round's 4 critiques go out in one backend call (with the 4 extra
    reward samples, which share their sampling settings), its 4 rewrites in one, and the 4
    rewards of the rewrites in one: 8 rollouts take 2 rounds of 3 calls."""
    policy = BatchRecorder()
    search = make_search("mctsr", rollouts=8, overrides={"in_flight": 4})
    (r,) = run_search(search, [EXAMPLES[1].problem], policy)
    assert len(r.tree) == 3 + 8
    critiques = [kinds.count("review") for kinds in policy.batches if "review" in kinds]
    rewrites = [kinds.count("refine") for kinds in policy.batches if "refine" in kinds]
    assert critiques == [4, 4] and rewrites == [4, 4]
    assert next(kinds for kinds in policy.batches if "review" in kinds).count("score") == 4
    # solve, 2 initial rewards, then per round: rewards + critiques, rewrites, rewards.
    assert r.stats.rounds == 2 + 2 * 3
    sequential = make_search("mctsr", rollouts=8, overrides={"in_flight": 1})
    (s,) = run_search(sequential, [EXAMPLES[1].problem], ArithmeticExpert())
    assert s.stats.rounds == 2 + 8 * 3


def test_in_flight_must_be_positive() -> None:
    with pytest.raises(SearchError, match="in_flight"):
        MCTSrConfig(in_flight=0)


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

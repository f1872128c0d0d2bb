"""LLaMA-Berry SR-MCTS: closed forms, PPRM caching, a golden tree, selection by EBC."""

from __future__ import annotations

import math

import pytest
from golden import check_golden

from openberry.data.arithmetic import load_split
from openberry.formats.prompts import JUDGE_YES
from openberry.search import make_search, run_search
from openberry.search.sr_mcts import berry_backup, uct_berry
from search.policies import ArithmeticExpert, solution_ok

EXAMPLES = load_split("test", limit=3)


def test_uct_and_backup_closed_forms() -> None:
    assert uct_berry(0.5, 4, 2) == pytest.approx(0.5 + 1.4 * math.sqrt(math.log(4) / 2))
    assert uct_berry(0.5, 1, 1) == 0.5 and uct_berry(0.5, 3, 0) == math.inf
    assert berry_backup(0.2, 1.0) == pytest.approx(0.9 * 0.2 + 0.1 * 1.0)


def test_sr_mcts_golden_tree() -> None:
    (r,) = run_search(make_search("sr-mcts", rollouts=4), [EXAMPLES[0].problem], ArithmeticExpert())
    check_golden("sr_mcts", r.tree)


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
    run_search(make_search("sr-mcts", rollouts=4), [EXAMPLES[0].problem], policy)
    judged = [p for p in policy.prompts if p.endswith("than solution B? ")]
    n = 5  # root solution + 4 rewrites
    assert len(judged) == n * (n - 1)  # every ordered pair once: 2(k - 1) for the k-th solution
    assert len(set(judged)) <= len(judged)
    assert JUDGE_YES == "Yes"


def test_dynamic_pruning_limits_children_to_two() -> None:
    policy = ArithmeticExpert(slips=lambda i: True)
    (r,) = run_search(make_search("sr-mcts", rollouts=6), [EXAMPLES[2].problem], policy)
    for node in r.tree.nodes[1:]:
        kids = [r.tree.nodes[k] for k in node.children]
        if len(kids) > 2:
            raise AssertionError(f"node {node.id} has {len(kids)} children")

"""Experience from hand-built verified trees: prompts, actions, rewards and each algorithm's
advantages, checked against the tree by hand."""

from __future__ import annotations

import pytest

from extracttrees import PROBLEM, RIGHT, Q, make_tree, sc_tree, step_tree
from openberry.formats.prompts import solve_prompt
from openberry.training.rl.advantages import group_advantages, tree_gae
from openberry.training.rl.experience import (
    expert_targets,
    grpo_targets,
    ppo_targets,
    root_value,
    tree_samples,
)


def _by_node(samples):
    return {s.node: s for s in samples}


def test_step_tree_samples_prompts_actions_rewards() -> None:
    s = _by_node(tree_samples(step_tree()))
    assert set(s) == {1, 2, 3, 4, 5, 6, 7}
    assert s[1].prompt == solve_prompt(Q) and s[1].action == "3 * 4 = 12\n"
    assert s[4].prompt == solve_prompt(Q) + "3 * 4 = 12\n2 + 12 = 14\n"
    assert (s[4].reward, s[4].done, s[4].correct) == (1.0, True, True)
    assert (s[6].reward, s[6].done, s[6].correct) == (0.0, True, False)
    assert (s[7].reward, s[7].done, s[7].correct) == (0.0, False, None)  # unfinished leaf
    assert {n for n, x in s.items() if x.on_correct_path} == {1, 3, 4}
    assert s[4].value_prompt is not None and s[4].value_prompt.count("2 + 12 = 14") == 1


def test_no_reference_answer_reaches_a_prompt() -> None:
    """Only verdicts are read: a tree whose answers are all wrong has no '14' anywhere."""
    for s in tree_samples(step_tree()):
        if not s.on_correct_path:
            assert "14" not in s.action
        assert "answer is 14" not in s.prompt


def test_whole_answer_tree_samples() -> None:
    s = tree_samples(sc_tree())
    assert s[0].action == RIGHT + "\n"
    assert all(x.prompt == solve_prompt(PROBLEM.question) and x.done for x in s)
    assert [x.reward for x in s] == [1.0, 0.0, 0.0, 1.0]


def test_ppo_targets_are_tree_gae_with_the_root_as_mean_of_first_steps() -> None:
    samples = tree_samples(step_tree())
    values = {1: 0.7, 2: 0.4, 3: 0.8, 4: 0.9, 5: 0.3, 6: 0.2, 7: 0.5}
    out = _by_node(ppo_targets(samples, values, gamma=1.0, gae_lambda=0.9))
    v = {**values, 0: (0.7 + 0.4) / 2}
    assert root_value(samples, values) == pytest.approx(v[0])
    want = tree_gae(
        {x.node: x.parent for x in samples},
        {x.node: x.reward for x in samples},
        v,
        {x.node: x.done for x in samples},
        {x.node: 1.0 for x in samples},
        1.0,
        0.9,
    )
    for node, x in out.items():
        assert x.advantage == pytest.approx(want[node])
    assert out[4].value_target == 1.0 and out[6].value_target == 0.0  # outcomes
    assert out[7].value_target is None  # nothing below an unfinished leaf
    follow = (want[3] + want[7]) / 2
    assert out[1].value_target == pytest.approx(min(1.0, max(0.0, 0.7 + follow)))


def test_grpo_targets_by_hand() -> None:
    out = _by_node(grpo_targets(tree_samples(step_tree())))
    # the group: answers 4 (right) and 6 (wrong); the unfinished line 7 is no answer
    a_right, a_wrong = group_advantages([1.0, 0.0])
    assert out[4].advantage == pytest.approx(a_right)
    assert out[6].advantage == pytest.approx(a_wrong)
    assert out[1].advantage == pytest.approx(a_right)  # only answer 4 lies below node 1
    assert out[7].advantage == 0.0


def test_grpo_on_whole_answers_is_the_group_baseline() -> None:
    out = grpo_targets(tree_samples(sc_tree()))
    assert [x.advantage for x in out] == pytest.approx(group_advantages([1.0, 0.0, 0.0, 1.0]))


def test_grpo_counts_merged_samples() -> None:
    tree = make_tree(
        "step-mcts",
        [
            (0, "3 * 4 = 12", None, None),
            (1, "The answer is \\boxed{14}.", True, {"samples": 3}),
            (1, "The answer is \\boxed{13}.", False, None),
        ],
    )
    out = _by_node(grpo_targets(tree_samples(tree)))
    group = group_advantages([1.0, 1.0, 1.0, 0.0])
    assert out[2].advantage == pytest.approx(group[0])
    assert out[3].advantage == pytest.approx(group[3])
    assert out[1].advantage == pytest.approx((3 * group[0] + group[3]) / 4)


def test_expert_targets_keep_the_verified_path_only() -> None:
    out = expert_targets(tree_samples(step_tree()))
    assert sorted(x.node for x in out) == [1, 3, 4]
    assert all(x.advantage == 1.0 for x in out)

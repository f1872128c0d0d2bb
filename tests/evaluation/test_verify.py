"""The training-time verifier: verdicts on every candidate of a tree, never the reference."""

from __future__ import annotations

from openberry.evaluation.verify import (
    HINT_TEMPLATE,
    VERIFIED,
    candidate_ids,
    hinted_problem,
    is_verified,
    verify_tree,
)
from openberry.records import Example, Problem
from openberry.tree import Node, Tree

PROBLEM = Problem(id="p", question="Compute 1 + 2.")


def whole_answer_tree() -> Tree:
    """Root + three whole solutions (as self-consistency writes them); one has no answer."""
    nodes = [
        Node(0, None, (1, 2, 3), text=PROBLEM.question),
        Node(1, 0, text="1 + 2 = 3\nThe answer is \\boxed{3}.", answer="3", terminal=True),
        Node(2, 0, text="1 + 2 = 4\nThe answer is \\boxed{4}.", answer="4", terminal=True),
        Node(3, 0, text="1 + 2 = 3", answer=None),
    ]
    return Tree(PROBLEM, tuple(nodes), method="self-consistency")


def step_tree() -> Tree:
    """One line per node (as step-mcts writes them): only answer nodes are candidates."""
    nodes = [
        Node(0, None, (1, 2), text=PROBLEM.question),
        Node(1, 0, (3,), text="1 + 2 = 3"),
        Node(2, 0, text="1 + 2 = 4"),
        Node(3, 1, text="The answer is \\boxed{3}.", answer="3", terminal=True),
    ]
    return Tree(PROBLEM, tuple(nodes), method="step-mcts")


def test_whole_answer_trees_verify_every_solution_and_no_answer_is_wrong() -> None:
    calls: list[str | None] = []

    def verdict(a: str | None) -> bool:
        calls.append(a)
        return a == "3"

    tree = verify_tree(whole_answer_tree(), verdict)
    assert candidate_ids(tree) == [1, 2, 3]
    assert [n.info.get(VERIFIED) for n in tree.nodes] == [None, True, False, False]
    assert calls == ["3", "4"]  # once per distinct answer; no answer is never graded
    assert is_verified(tree) and not is_verified(whole_answer_tree())


def test_step_trees_verify_answer_nodes_only() -> None:
    tree = verify_tree(step_tree(), lambda a: a == "3")
    assert [n.info.get(VERIFIED) for n in tree.nodes] == [None, None, None, True]


def test_verified_tree_round_trips_through_its_file(tmp_path) -> None:
    tree = verify_tree(step_tree(), lambda a: a == "3")
    loaded = Tree.load(tree.save(tmp_path / "t.json"))
    assert loaded == tree and loaded.nodes[3].info[VERIFIED] is True


def test_hint_appends_the_answer_to_the_question_only() -> None:
    ex = Example(problem=PROBLEM, answer="3")
    hinted = hinted_problem(ex)
    assert hinted.question == HINT_TEMPLATE.format(question=PROBLEM.question, answer="3")
    assert hinted.id == PROBLEM.id and PROBLEM.question == "Compute 1 + 2."

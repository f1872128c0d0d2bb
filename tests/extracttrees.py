"""Hand-built verified trees for the `berry extract` tests (`openberry.training.extract`)."""

from __future__ import annotations

from openberry.records import Problem
from openberry.search.common import answer_of_text
from openberry.tree import Node, Tree

Q = "Compute 2 + 3 * 4."
PROBLEM = Problem(id="p/0", question=Q, source="arithmetic")
RIGHT = "3 * 4 = 12\n2 + 12 = 14\nThe answer is \\boxed{14}."
SLIP = "3 * 4 = 12\n2 + 12 = 15\nThe answer is \\boxed{15}."
WRONG_FIRST = "3 * 4 = 11\n2 + 11 = 13\nThe answer is \\boxed{13}."
WRONG_ORDER = "2 + 3 = 5\n5 * 4 = 20\nThe answer is \\boxed{20}."


def make_tree(method: str, spec, problem: Problem = PROBLEM) -> Tree:
    """spec: (parent, text, verified or None, info) per non-root node, in id order."""
    children: dict[int, list[int]] = {0: []}
    nodes = []
    for k, (parent, _, _, _) in enumerate(spec, start=1):
        children.setdefault(k, [])
        children[parent].append(k)
    nodes.append(Node(0, None, tuple(children[0]), text=problem.question, meta_action="problem"))
    for k, (parent, text, verified, info) in enumerate(spec, start=1):
        extra = dict(info or {})
        if verified is not None:
            extra["verified"] = verified
        answer = answer_of_text(text)
        nodes.append(
            Node(k, parent, tuple(children[k]), text=text, answer=answer,
                 terminal=answer is not None, info=extra)
        )  # fmt: skip
    return Tree(problem=problem, nodes=tuple(nodes), method=method)


def sc_tree() -> Tree:
    """Self-consistency: root + four whole solutions (the right one twice)."""
    return make_tree(
        "self-consistency",
        [(0, RIGHT, True, None), (0, SLIP, False, None), (0, WRONG_FIRST, False, None),
         (0, RIGHT, True, None)],
    )  # fmt: skip


def step_tree() -> Tree:
    """Step-MCTS: one line per node; node 7 is unfinished (never verified)."""
    return make_tree(
        "step-mcts",
        [
            (0, "3 * 4 = 12", None, None),  # 1
            (0, "2 + 3 = 5", None, None),  # 2
            (1, "2 + 12 = 14", None, None),  # 3
            (3, "The answer is \\boxed{14}.", True, None),  # 4
            (2, "5 * 4 = 20", None, None),  # 5
            (5, "The answer is \\boxed{20}.", False, None),  # 6
            (1, "2 + 12 = 16", None, None),  # 7
        ],
    )

"""The training-time verifier: grade every candidate solution of a finished tree and store the
verdicts in the tree, so trees become training data (`openberry.training.extract`).

After a search, and only then, the grader compares each candidate's answer with the reference and
writes ``node.info["verified"] = True | False`` on the node. The reference itself is never written
into the tree or into any prompt. Which nodes are candidates depends on the method's shape
(`openberry.search.registry.Method.steps`):

- whole-answer methods (greedy, self-consistency, best-of-n, MCTSr, SR-MCTS): every node but the
  root holds one whole solution, so every such node is verified; a solution with no answer is
  verified False;
- step methods (beam, meta-action MCTS, step-mcts): a solution is a root-to-node path, so the
  nodes that state an answer are verified; a node without one is left unmarked.

LLaMA-O1's collector put the reference answer into its prompts as a hint. `hinted_problem` does
that for users who ask for it (``berry collect --hint-answer``): off by default and recorded in the
run, since search that sees the answer measures nothing at inference.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from openberry.records import Example, Problem
from openberry.search.registry import REGISTRY
from openberry.tree import Tree

__all__ = [
    "HINT_TEMPLATE",
    "VERIFIED",
    "candidate_ids",
    "hinted_problem",
    "is_verified",
    "verify_tree",
]

VERIFIED = "verified"
"""The key of ``node.info`` that holds a candidate's verdict."""
HINT_TEMPLATE = "{question}\n(The answer is {answer}.)"
"""How ``--hint-answer`` writes the reference answer into the question the search sees."""


def hinted_problem(example: Example) -> Problem:
    """The example's problem with its reference answer appended to the question (an oracle
    leak: training-time collection only)."""
    question = HINT_TEMPLATE.format(question=example.problem.question, answer=example.answer)
    return dataclasses.replace(example.problem, question=question)


def _is_step_method(method: str) -> bool:
    found = REGISTRY.get(method)
    return bool(found and found.steps)


def candidate_ids(tree: Tree) -> list[int]:
    """Ids of the nodes that end a candidate solution (see the module docstring)."""
    if _is_step_method(tree.method):
        return [n.id for n in tree.nodes[1:] if n.answer is not None]
    return [n.id for n in tree.nodes[1:]]


def verify_tree(tree: Tree, verdict: Callable[[str | None], bool]) -> Tree:
    """The tree with ``info["verified"]`` set on every candidate node.

    Args:
        tree: A finished search tree.
        verdict: The grader's verdict on an answer (None: no answer) against the reference;
            called once per distinct answer.
    """
    cache: dict[str | None, bool] = {}
    nodes = list(tree.nodes)
    for i in candidate_ids(tree):
        node = nodes[i]
        if node.answer not in cache:
            cache[node.answer] = bool(verdict(node.answer)) if node.answer is not None else False
        nodes[i] = dataclasses.replace(node, info={**node.info, VERIFIED: cache[node.answer]})
    info = {**tree.info, "verifier": {"grader": "openberry", "checked": len(candidate_ids(tree))}}
    return dataclasses.replace(tree.with_nodes(nodes), info=info)


def is_verified(tree: Tree) -> bool:
    """True when the tree's candidates carry verdicts (it went through `verify_tree`)."""
    return "verifier" in tree.info

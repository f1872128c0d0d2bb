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
run, since search that sees the answer measures nothing at inference. Such trees are written with
the question without its hint (`dataset_tree`) and ``info["hint_answer"]``, so training rows
built from them never contain the answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from openberry.records import Example, Problem
from openberry.search.registry import REGISTRY
from openberry.tree import Tree

__all__ = [
    "HINT_TEMPLATE",
    "VERIFICATION",
    "VERIFIED",
    "candidate_ids",
    "dataset_tree",
    "hinted_problem",
    "is_verified",
    "verify_tree",
]

VERIFIED = "verified"
"""The key of ``node.info`` that holds a candidate's verdict."""
VERIFICATION = "verification"
"""The key of ``tree.info`` that marks a verified tree (which grader, how many candidates)."""
HINT_TEMPLATE = "{question}\n(The answer is {answer}.)"
"""How ``--hint-answer`` writes the reference answer into the question the search sees."""


def hinted_problem(example: Example) -> Problem:
    """The example's problem with its reference answer appended to the question (an oracle
    leak: training-time collection only)."""
    question = HINT_TEMPLATE.format(question=example.problem.question, answer=example.answer)
    return dataclasses.replace(example.problem, question=question)


def dataset_tree(tree: Tree, problem: Problem, hinted: bool = False) -> Tree:
    """The tree with the dataset's own `problem`: the id without the sample suffix that
    independent samples search under, and, for a tree searched on a `hinted_problem` (`hinted`),
    the question without its hint (also in the root's text) and ``info["hint_answer"] = True``,
    so that the answer never reaches the training rows built from it."""
    if not hinted:
        return dataclasses.replace(tree, problem=problem)
    nodes = list(tree.nodes)
    nodes[0] = dataclasses.replace(nodes[0], text=problem.question)
    info = {**tree.info, "hint_answer": True}
    return dataclasses.replace(tree.with_nodes(nodes), problem=problem, info=info)


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
    checked = {"grader": "openberry", "checked": len(candidate_ids(tree))}
    info = {**tree.info, VERIFICATION: checked}
    return dataclasses.replace(tree.with_nodes(nodes), info=info)


def is_verified(tree: Tree) -> bool:
    """True when the tree's candidates carry verdicts (it went through `verify_tree`)."""
    return VERIFICATION in tree.info

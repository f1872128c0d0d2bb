"""Arithmetic task: OpenLongCoT tree writers and the `corpus_rows` corpora."""

from __future__ import annotations

import itertools
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openberry.data.arithmetic import (
    CORPUS_KINDS,
    ArithmeticConfig,
    ArithmeticTaskError,
    branching_tree,
    check_solution,
    corpus_rows,
    critique_tree,
    draw_expression,
    evaluate,
    expression_of,
    load_split,
    parse_expression,
    question_text,
    random_slipped_solution,
    render,
    solution_tree,
    write_critique,
    write_slipped_solution,
    write_solution,
)
from openberry.formats.prompts import review_prompt, solve_prompt
from openberry.records import Problem
from openberry.tree import Tree


def problem_for(expression: str) -> Problem:
    return Problem("arithmetic/test/x", question_text(expression), source="arithmetic")


def path_lines(tree: Tree, node_id: int) -> list[str]:
    return [tree.nodes[i].text for i in tree.path(node_id)[1:]]


def assert_ratings_match_checker(tree: Tree, expression: str) -> None:
    """In trees without critic nodes, a node is positive iff its path replays correctly."""
    for node in tree.nodes[1:]:
        check = check_solution(expression, "\n".join(path_lines(tree, node.id)))
        expected = "positive" if check.first_error is None else "negative"
        assert node.rating == expected, (node.id, path_lines(tree, node.id))


def test_solution_tree_is_a_rated_chain():
    expression = "37 + 48 * 2 - 15"
    tree = solution_tree(problem_for(expression))
    assert [n.meta_action for n in tree] == [
        "problem",
        "expansion",
        "expansion",
        "expansion",
        "conclusion",
    ]
    assert [n.text for n in tree][1:] == write_solution(expression).text.split("\n")
    assert tree.root.text == "Compute 37 + 48 * 2 - 15."
    assert all(n.rating == "positive" for n in tree)
    assert tree.chosen == (0, 1, 2, 3, 4)
    assert tree.nodes[-1].terminal and tree.nodes[-1].answer == "118"
    assert Tree.from_json(tree.to_json()) == tree


def test_slipped_solution_tree_turns_negative_at_the_slip():
    expression = "37 + 48 * 2 - 15"
    slipped = write_slipped_solution(expression, 1, random.Random(0))
    tree = solution_tree(problem_for(expression), slipped)
    assert [n.rating for n in tree] == ["positive", "positive"] + ["negative"] * 3
    assert tree.nodes[2].info["slip"] == slipped.slip.kind
    assert tree.chosen == ()
    assert tree.nodes[-1].answer == str(slipped.answer) != "118"
    assert_ratings_match_checker(tree, expression)


def test_critique_tree_shape_and_ratings():
    expression = "(2 + 3) * 4 + 6 * 2"
    slipped = write_slipped_solution(expression, 1, random.Random(3))
    tree = critique_tree(problem_for(expression), slipped)
    metas = [n.meta_action for n in tree]
    assert metas == ["problem"] + ["expansion"] * 4 + ["conclusion", "critic"] + ["refine"] * 3 + [
        "conclusion"
    ]
    ratings = [n.rating for n in tree]
    assert ratings == ["positive"] * 2 + ["negative"] * 4 + ["positive"] * 5
    assert tree.nodes[6].text == write_critique(slipped).text
    assert tree.nodes[6].text.startswith("Step 2 is wrong: 5 * 4 = 20, not ")
    assert tree.nodes[5].terminal and tree.nodes[5].answer == str(slipped.answer)
    assert tree.nodes[-1].terminal and tree.nodes[-1].answer == "32"
    assert tree.chosen == tuple(range(len(tree)))
    # The refined continuation, after the correct prefix, is a correct solution.
    refined = [n.text for n in tree if n.meta_action == "refine"] + [tree.nodes[-1].text]
    assert check_solution(expression, "\n".join([tree.nodes[1].text, *refined])).is_correct


def test_critique_tree_needs_a_slip():
    with pytest.raises(ArithmeticTaskError, match="slipped"):
        critique_tree(problem_for("2 + 3"), write_solution("2 + 3"))


def test_branching_tree_branches_and_rates_siblings():
    expression = "2 * 3 + 4 * 5 - 6"
    tree = branching_tree(problem_for(expression), random.Random(0), branch_prob=1.0)
    chain = tree.chosen
    assert [tree.nodes[i].meta_action for i in chain][-1] == "conclusion"
    assert check_solution(expression, "\n".join(path_lines(tree, chain[-1]))).is_correct
    for node_id in chain[:-2]:  # every step node has a sibling (the conclusion has none)
        assert len(tree.nodes[node_id].children) == 2
    assert_ratings_match_checker(tree, expression)
    siblings = [n for n in tree.nodes[1:] if n.id not in chain]
    assert all(n.meta_action == "expansion" and not n.children for n in siblings)


def test_branching_tree_without_branches_is_the_solution_chain():
    problem = problem_for("37 + 48 * 2 - 15")
    tree = branching_tree(problem, 0, branch_prob=0.0)
    assert [n.text for n in tree] == [n.text for n in solution_tree(problem)]
    with pytest.raises(ArithmeticTaskError, match="branch_prob"):
        branching_tree(problem, 0, branch_prob=2.0)


def test_branching_tree_sibling_kinds_and_positions_vary():
    kinds, first = set(), set()
    for seed in range(60):
        tree = branching_tree(problem_for("2 * 3 + 4 * 5"), seed, branch_prob=1.0)
        for node in tree.nodes[1:]:
            if node.id not in tree.chosen:
                kinds.add("alternative" if node.info.get("alternative") else "slip")
        first.add(tree.nodes[0].children[0] in tree.chosen)
    assert kinds == {"alternative", "slip"}
    assert first == {True, False}  # the correct step is not always the first child


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), paren_prob=st.floats(0, 1), allow_negative=st.booleans())
def test_trees_for_random_problems(seed, paren_prob, allow_negative):
    rng = random.Random(seed)
    config = ArithmeticConfig(max_operands=5, paren_prob=paren_prob, allow_negative=allow_negative)
    expression = render(draw_expression(rng, config))
    problem = problem_for(expression)
    assert_ratings_match_checker(branching_tree(problem, rng), expression)
    slipped = random_slipped_solution(expression, rng)
    assert_ratings_match_checker(solution_tree(problem, slipped), expression)
    tree = critique_tree(problem, slipped)
    assert tree.nodes[-1].answer == str(evaluate(parse_expression(expression)))
    assert {n.meta_action for n in tree} == {
        "problem",
        "expansion",
        "conclusion",
        "critic",
        "refine",
    }


def test_tree_text_round_trips_through_openlongcot():
    from openberry.formats import openlongcot

    expression = "20 - (3 + 2 * 4)"
    problem = problem_for(expression)
    slipped = write_slipped_solution(expression, 0, 1)
    for tree in (
        solution_tree(problem),
        branching_tree(problem, 2, branch_prob=1.0),
        critique_tree(problem, slipped),
    ):
        back = openlongcot.string_to_tree(openlongcot.tree_to_string(tree))
        by_text = sorted((n.text, n.meta_action, n.rating) for n in tree)
        assert sorted((n.text, n.meta_action, n.rating) for n in back) == by_text


# -- corpus ------------------------------------------------------------------------------------

SCHEMAS = {
    "solutions": {"id", "prompt", "completion", "correct"},
    "openlongcot": {"id", "text", "shape"},
    "critique": {"id", "prompt", "completion", "correct"},
    "ratings": {"id", "question", "lines", "label", "text"},
    "pairs": {"id", "question", "solution_a", "solution_b", "better"},
    "pretrain": {"id", "role", "text", "correct"},
}


@pytest.mark.parametrize("kind", CORPUS_KINDS)
def test_corpus_rows_schema_and_determinism(kind):
    rows = list(corpus_rows(kind, limit=25, seed=3))
    assert len(rows) == 25
    assert all(set(row) == SCHEMAS[kind] for row in rows)
    assert all(row["id"].startswith("arithmetic/train/") for row in rows)
    json.dumps(rows)
    assert rows == list(corpus_rows(kind, limit=25, seed=3))
    assert rows != list(corpus_rows(kind, limit=25, seed=4))


def test_corpus_solutions_mix_correct_and_flawed():
    rows = list(corpus_rows("solutions", limit=400, slip_rate=0.5))
    share = sum(row["correct"] for row in rows) / len(rows)
    assert 0.4 < share < 0.6
    for row in rows:
        question = row["prompt"].removeprefix("Question: ").removesuffix("\nSolution:\n")
        assert row["prompt"] == solve_prompt(question)
        expression = expression_of(question)
        assert check_solution(expression, row["completion"]).is_correct == row["correct"]
    assert all(row["correct"] for row in corpus_rows("solutions", limit=50, slip_rate=0.0))


def test_corpus_critique_rows_fix_the_solution():
    for row in corpus_rows("critique", limit=100):
        head, body = row["prompt"].split("\nProposed solution:\n")
        question = head.removeprefix("Question: ")
        solution = body.removesuffix("\nReview:\n").split("\n")
        assert row["prompt"] == review_prompt(question, "\n".join(solution))
        expression = expression_of(question)
        check = check_solution(expression, "\n".join(solution))
        first, *refined = row["completion"].split("\n")
        value = evaluate(parse_expression(expression))
        assert refined[-1] == f"The answer is \\boxed{{{value}}}."
        if row["correct"]:
            assert check.is_correct and first == "All steps are correct."
        else:
            assert first.startswith(f"Step {check.first_error + 1} is wrong: ")
            fixed = [*solution[: check.first_error], *refined]
            assert check_solution(expression, "\n".join(fixed)).is_correct


def test_corpus_ratings_flip_once_and_match_the_rating_token():
    rows = list(corpus_rows("ratings", limit=300, slip_rate=0.5))
    assert {row["label"] for row in rows} == {"positive", "negative"}
    for row in rows:
        expression = expression_of(row["question"])
        check = check_solution(expression, "\n".join(row["lines"]))
        assert row["label"] == ("positive" if check.first_error is None else "negative")
        assert row["text"].endswith(f"<{row['label']}_rating><end_of_rating>")
        assert row["text"].count("\n") == len(row["lines"])
    by_problem = itertools.groupby(rows, key=lambda row: row["id"].rsplit("/", 1)[0])
    for _, group in by_problem:
        labels = [row["label"] for row in group]
        assert labels == sorted(labels, key=["positive", "negative"].index)


def test_corpus_pairs_are_balanced_and_correct():
    rows = list(corpus_rows("pairs", limit=400))
    share_a = sum(row["better"] == "a" for row in rows) / len(rows)
    assert 0.4 < share_a < 0.6
    for row in rows:
        expression = expression_of(row["question"])
        better, worse = (
            (row["solution_a"], row["solution_b"])
            if row["better"] == "a"
            else (row["solution_b"], row["solution_a"])
        )
        assert check_solution(expression, better).is_correct
        assert not check_solution(expression, worse).is_correct


def test_corpus_openlongcot_shapes():
    from openberry.formats import openlongcot

    rows = list(corpus_rows("openlongcot", limit=60))
    assert {row["shape"] for row in rows} == {"critique", "branching"}
    for row in rows:
        tree = openlongcot.string_to_tree(row["text"])
        has_critic = any(n.meta_action == "critic" for n in tree)
        assert has_critic == (row["shape"] == "critique")


def test_corpus_limits_and_splits():
    test_rows = list(corpus_rows("solutions", "test"))
    assert len(test_rows) == 500
    examples = load_split("test")
    assert [row["prompt"] for row in test_rows] == [
        solve_prompt(e.problem.question) for e in examples
    ]
    ratings = list(corpus_rows("ratings", "validation", limit=7))
    assert len(ratings) == 7  # the limit counts rows, not problems
    assert list(corpus_rows("pairs", limit=0)) == []
    default_train = corpus_rows("pairs")  # 10,000 train problems: lazy, take what you need
    assert len(list(itertools.islice(default_train, 3))) == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "essays"}, "unknown arithmetic corpus kind"),
        ({"kind": "pairs", "split": "dev"}, "unknown arithmetic split"),
        ({"kind": "pairs", "slip_rate": 1.5}, "slip_rate"),
        ({"kind": "pairs", "limit": -3}, "limit"),
    ],
)
def test_corpus_errors_are_raised_eagerly(kwargs, message):
    with pytest.raises(ArithmeticTaskError, match=message):
        corpus_rows(**kwargs)

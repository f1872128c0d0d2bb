import pytest
from hypothesis import given, settings

from openberry.formats.openlongcot import (
    SPECIAL_TOKENS,
    OpenLongCoTError,
    node_header,
    node_line,
    path_to_string,
    policy_prompt,
    string_to_tree,
    tree_to_string,
    value_prompt,
)
from openberry.records import Problem
from openberry.tree import Node, Tree
from strategies import trees

ROOT = (
    "<start_of_father_id>-1<end_of_father_id><start_of_local_id>0<end_of_local_id>"
    "<start_of_thought><problem>Compute 2+3*4.<end_of_thought>"
    "<start_of_rating><unknow_rating><end_of_rating>"
)


def example_tree() -> Tree:
    nodes = (
        Node(0, None, (1, 3), "Compute 2+3*4.", "problem"),
        Node(1, 0, (2,), "3*4=12", "expansion", value=0.9),
        Node(2, 1, (), "2+12=14\nThe answer is \\boxed{14}.", "conclusion", value=0.2),
        Node(3, 0, (), "3*4=11", "expansion", rating="negative"),
    )
    return Tree(Problem("p", "Compute 2+3*4."), nodes)


def test_exact_line_grammar():
    """The node line is byte-for-byte the LLaMA-O1 format (LLaMA-O1's node line)."""
    assert node_line(-1, 0, "problem", "Compute 2+3*4.", "unknown") == ROOT
    assert node_header(0, 1, "critic") == (
        "<start_of_father_id>0<end_of_father_id><start_of_local_id>1<end_of_local_id>"
        "<start_of_thought><critic>"
    )
    assert node_header(0, 1).endswith("<start_of_thought>")


def test_whole_tree_is_preorder_with_ratings_from_values():
    text = tree_to_string(example_tree())
    lines = text.split("\n")
    assert lines[0] == ROOT
    assert "<start_of_local_id>1<" in lines[1] and "<positive_rating>" in lines[1]
    # node 2's text has a newline, so it spans two physical lines; node 3 follows it (pre-order)
    assert lines[2].endswith("2+12=14")
    assert "<negative_rating>" in lines[3]
    assert "<start_of_local_id>3<" in lines[4] and "<negative_rating>" in lines[4]


def test_tree_text_round_trip_keeps_structure_and_ratings():
    tree = example_tree()
    text = tree_to_string(tree)
    parsed = string_to_tree(text, problem_id="p")
    assert [n.parent for n in parsed] == [None, 0, 1, 0]
    assert [n.children for n in parsed] == [(1, 3), (2,), (), ()]
    assert [n.rating for n in parsed] == ["unknown", "positive", "negative", "negative"]
    assert parsed.problem.question == "Compute 2+3*4."
    assert tree_to_string(parsed) == text


def test_path_string_round_trip_renumbers_and_restores_ids():
    tree = example_tree()
    path = path_to_string(tree, 3)
    parsed = string_to_tree(path)
    assert len(parsed) == 2
    assert parsed.nodes[1].info == {"local_id": 3}
    assert path_to_string(parsed, 1) == path


@settings(max_examples=150, deadline=None)
@given(trees(format_safe=True))
def test_property_tree_round_trip(tree):
    text = tree_to_string(tree)
    parsed = string_to_tree(text, problem_id=tree.problem.id)
    for a, b in zip(tree.nodes, parsed.nodes, strict=True):
        assert (a.parent, a.children, a.text, a.meta_action, a.rating) == (
            b.parent,
            b.children,
            b.text,
            b.meta_action,
            b.rating,
        )
    assert tree_to_string(parsed) == text


@settings(max_examples=100, deadline=None)
@given(trees(format_safe=True))
def test_property_path_round_trip(tree):
    for leaf in tree.leaves():
        path = path_to_string(tree, leaf)
        assert path_to_string(string_to_tree(path), len(tree.path(leaf)) - 1) == path


def test_prompts_end_where_the_model_continues():
    tree = example_tree()
    prompt = policy_prompt(tree, 1, "critic", hint="check step 1")
    assert prompt.startswith(path_to_string(tree, 1) + "\n<hint>check step 1</hint>\n")
    assert prompt.endswith("<start_of_local_id>4<end_of_local_id><start_of_thought><critic>")
    vp = value_prompt(tree, 1, "expansion", "2+12=14", new_id=4)
    assert vp.endswith("2+12=14<end_of_thought><start_of_rating>")


@pytest.mark.parametrize("tag", SPECIAL_TOKENS)
def test_text_with_a_tag_cannot_be_written(tag):
    with pytest.raises(OpenLongCoTError, match="cannot escape"):
        node_line(0, 1, "expansion", f"a {tag} b", "positive")


SECOND = (
    "<start_of_father_id>0<end_of_father_id><start_of_local_id>1<end_of_local_id>"
    "<start_of_thought><expansion>3*4=12<end_of_thought>"
    "<start_of_rating><positive_rating><end_of_rating>"
)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", r"line 1, column 1: expected a node line"),
        ("hello", r"line 1, column 1: expected <start_of_father_id>, found 'hello'"),
        (
            ROOT + "\n" + SECOND.replace("<end_of_local_id>", ""),
            r"line 2, column 60: expected <end_of_local_id> to close local id, found <start_of_thought>",
        ),
        (
            ROOT + "\n" + SECOND.replace("<expansion>", "<think>"),
            r"line 2, column 95: expected a meta tag",
        ),
        (
            ROOT + "\n" + SECOND.replace("<positive_rating>", "<good>"),
            r"line 2, column \d+: expected a rating token",
        ),
        (ROOT.replace("-1", "x"), r"line 1, column 21: expected an integer father id, found 'x'"),
        (
            ROOT + "\n" + SECOND.replace("<end_of_thought>", ""),
            r"line 2, column \d+: expected <end_of_thought> to close the thought",
        ),
        (ROOT + SECOND, r"line 1, column \d+: expected a newline before the next node"),
        (
            ROOT + "\n" + SECOND + "\n" + SECOND,
            r"line 3: duplicate local id 1 \(first used on line 2\)",
        ),
        (
            ROOT + "\n" + SECOND.replace("father_id>0<", "father_id>7<"),
            r"line 2: father id 7 of node 1 is not a node written before it",
        ),
        (SECOND, r"line 1: the first node must be the root"),
        (
            ROOT.replace("<problem>", "<expansion>"),
            r"line 1: the root's thought must start with <problem>",
        ),
        (ROOT + "\n" + SECOND[:60], r"line 2, column \d+: .*end of text"),
    ],
)
def test_malformed_text_names_the_line_and_what_was_expected(text, message):
    with pytest.raises(OpenLongCoTError, match=message):
        string_to_tree(text)


def test_duplicate_ids_regression_b3():
    """The original's bug B3 (docs/search.md): LLaMA-O1's id rule produced duplicate ids; we refuse such trees loudly."""
    text = ROOT + "\n" + SECOND + "\n" + SECOND.replace("3*4=12", "3*4=13")
    with pytest.raises(OpenLongCoTError, match="duplicate local id 1"):
        string_to_tree(text)

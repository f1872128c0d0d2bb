import json
import math

import pytest
from hypothesis import given, settings

from openberry.records import Problem
from openberry.tree import SCHEMA_VERSION, Node, Tree, TreeFormatError
from strategies import trees


def small_tree() -> Tree:
    nodes = (
        Node(0, None, (1, 2), "Compute 2+3.", "problem", visits=3),
        Node(1, 0, (3,), "2+3=5", "expansion", prior=0.7, visits=2, value=0.8, rewards=(0.5, 1.0)),
        Node(2, 0, (), "2+3=6", "expansion", prior=0.3, visits=1, value=0.1),
        Node(3, 1, (), "\\boxed{5}", "conclusion", terminal=True, answer="5", generated_tokens=4),
    )
    return Tree(Problem("p", "Compute 2+3."), nodes, method="test", chosen=(0, 1, 3))


def test_navigation():
    t = small_tree()
    assert t.path(3) == [0, 1, 3]
    assert t.depth(3) == 2
    assert t.leaves() == [2, 3]
    assert t.preorder() == [0, 1, 3, 2]
    assert t.root.is_root and len(t) == 4


def test_effective_rating():
    assert Node(1, 0, value=0.5).effective_rating() == "positive"
    assert Node(1, 0, value=0.49).effective_rating() == "negative"
    assert Node(1, 0).effective_rating() == "unknown"
    assert Node(1, 0, value=0.9, rating="negative").effective_rating() == "negative"


@settings(max_examples=150, deadline=None)
@given(trees())
def test_json_round_trip_is_lossless(tree):
    again = Tree.from_json(tree.to_json())
    assert again == tree
    assert again.to_json() == tree.to_json()


def test_save_and_load(tmp_path):
    t = small_tree()
    path = t.save(tmp_path / "sub" / "tree.json")
    assert Tree.load(path) == t
    assert not list(tmp_path.glob("sub/*.tmp"))


def test_nan_value_is_stored_as_unknown():
    assert Node(1, 0, value=math.nan).value is None
    with pytest.raises(TreeFormatError, match="finite"):
        Node(1, 0, value=math.inf)


def test_newer_version_is_refused_with_a_clear_message():
    data = small_tree().to_dict()
    data["version"] = SCHEMA_VERSION + 1
    with pytest.raises(TreeFormatError, match="newer than this openberry reads"):
        Tree.from_dict(data)


def _mutated(mutate) -> dict:
    data = json.loads(small_tree().to_json())
    mutate(data)
    return data


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.update(schema="other"), "not an openberry tree"),
        (lambda d: d.update(version="1"), "positive integer"),
        (lambda d: d.update(nodes={}), "'nodes' must be a list"),
        (lambda d: d.update(nodes=[]), "at least its root"),
        (lambda d: d.pop("problem"), "'problem' must be an object"),
        (lambda d: d["problem"].pop("question"), "missing field 'question'"),
        (lambda d: d["nodes"][1].update(id=5), "ids must equal indices"),
        (lambda d: d["nodes"][0].update(parent=0), "root"),
        (lambda d: d["nodes"][3].update(parent=3), "earlier node"),
        (lambda d: d["nodes"][1].update(children=[]), "do not match"),
        (lambda d: d["nodes"][1].update(visits="2"), "'visits' must be int"),
        (lambda d: d["nodes"][1].update(terminal=1), "'terminal' must be bool"),
        (lambda d: d["nodes"][1].update(meta_action="think"), "meta_action"),
        (lambda d: d["nodes"][1].update(rating="good"), "rating"),
        (lambda d: d["nodes"][1].update(colour="red"), "unknown field"),
        (lambda d: d["nodes"][1].pop("parent"), "missing field 'parent'"),
        (lambda d: d.update(chosen=[0, 2, 3]), "not a path"),
        (lambda d: d.update(chosen=[1, 3]), "start at the root"),
    ],
)
def test_bad_files_give_clear_errors(mutate, message):
    with pytest.raises(TreeFormatError, match=message):
        Tree.from_dict(_mutated(mutate))


def test_load_names_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TreeFormatError, match=r"bad\.json: tree file is not valid JSON"):
        Tree.load(bad)

"""`berry view`, run in-process through `openberry.cli.main.main`."""

from __future__ import annotations

import json
import webbrowser

import pytest

import openberry.cli.main as cli_main
from openberry.data.arithmetic import load_split
from openberry.data.arithmetic.trees import solution_tree
from openberry.tree import Tree


@pytest.fixture(autouse=True)
def _view_command_only(monkeypatch):
    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", ("openberry.cli.view",))


@pytest.fixture
def tree_file(tmp_path):
    tree = solution_tree(load_split("test", limit=1)[0].problem)
    return tree.save(tmp_path / "run" / "tree.json")


def berry(*argv: str) -> int:
    return cli_main.main(list(argv))


def test_view_writes_html_next_to_the_input(tree_file, capsys):
    assert berry("view", str(tree_file)) == 0
    out = tree_file.with_name("tree.html")
    assert capsys.readouterr().out.strip() == str(out)
    page = out.read_text(encoding="utf-8")
    assert 'id="tree-data"' in page and Tree.load(tree_file).problem.question in page
    assert sorted(p.name for p in tree_file.parent.iterdir()) == ["tree.html", "tree.json"]


def test_view_out_and_title(tree_file, tmp_path, capsys):
    out = tmp_path / "pages" / "x.html"
    assert berry("view", str(tree_file), "-o", str(out), "--title", "my <run>") == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert "<title>my &lt;run&gt;</title>" in out.read_text(encoding="utf-8")


def test_view_open_uses_the_browser(tree_file, monkeypatch, capsys):
    opened = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    assert berry("view", str(tree_file), "--open") == 0
    assert opened == [tree_file.with_name("tree.html").resolve().as_uri()]


def _fails(capsys, *argv: str) -> str:
    assert berry("view", *argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("berry view: error: ") and "Traceback" not in err
    return err


def test_view_missing_file(tmp_path, capsys):
    err = _fails(capsys, str(tmp_path / "nope.json"))
    assert "nope.json: no such file" in err
    assert not (tmp_path / "nope.html").exists()


def test_view_directory(tmp_path, capsys):
    assert "not a file" in _fails(capsys, str(tmp_path))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (json.dumps({"schema": "something.else"}), "not an openberry tree"),
        ("{not json", "not valid JSON"),
        (json.dumps({"schema": "openberry.tree", "version": 1, "nodes": []}), "'problem'"),
        (b"\xff\xfe\x00binary", "not UTF-8"),
    ],
)
def test_view_invalid_tree_file(tmp_path, capsys, content, message):
    path = tmp_path / "bad.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    err = _fails(capsys, str(path))
    assert str(path) in err and message in err
    assert not (tmp_path / "bad.html").exists()


def test_view_refuses_to_overwrite_its_input(tree_file, capsys):
    assert "overwrite the input" in _fails(capsys, str(tree_file), "-o", str(tree_file))
    assert Tree.load(tree_file)  # still a tree


def test_view_help(capsys):
    with pytest.raises(SystemExit) as exc:
        berry("view", "--help")
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "TREE.json" in out and "offline" in out and "--open" in out and "chosen path" in out

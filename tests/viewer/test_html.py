"""`openberry.viewer.html`: the self-contained tree page, checked as text and in headless Chromium.

The browser tests load the page with ``chromium --headless --dump-dom``. Plain loading checks the
DOM the script built; loading with the hash ``#selftest-ID`` makes the page click its own buttons
and toggles and write what it saw as JSON into ``<pre id="selftest">`` (see ``viewer.js``), which
these tests read back and compare with the tree. They are skipped when no Chromium is installed
(``make test`` installs it when it can: ``apt-get install chromium``).
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from openberry.data.arithmetic import load_split
from openberry.data.arithmetic.trees import branching_tree, solution_tree
from openberry.tree import Tree
from openberry.viewer import chosen_answer, render_tree_html, tree_json_for_html, write_tree_html
from openberry.viewer import html as viewer_html

HOSTILE = '</script><script>alert(1)</script><!--<script>x</SCRIPT ><img src=x onerror="alert(2)">'
DATA_RE = re.compile(r'<script type="application/json" id="tree-data">(.*?)</script>', re.S)


@pytest.fixture(scope="module")
def problem():
    return load_split("test", limit=3)[1].problem


@pytest.fixture(scope="module")
def tree(problem) -> Tree:
    """A branching arithmetic tree with search statistics, run stats and one hostile leaf."""
    base = branching_tree(problem, 3, branch_prob=1.0)
    off_path = [n.id for n in base.nodes if n.id not in base.chosen]
    assert off_path, "the fixture needs a node off the chosen path"
    hostile_id = off_path[0]
    nodes = []
    for node in base.nodes:
        node = dataclasses.replace(
            node,
            visits=10 - node.id % 7,
            value=(node.id % 5) / 4,
            prior=0.5,
            rewards=(0.25, 1.0),
            prompt_tokens=40 + node.id,
            generated_tokens=7,
        )
        if node.id == hostile_id:
            node = dataclasses.replace(node, text=HOSTILE + "\nsecond line", info={"x": HOSTILE})
        nodes.append(node)
    info = {"stats": {"calls": 12, "wall_s": 1.5}, "config": {"c": 1.25}}
    return dataclasses.replace(base.with_nodes(nodes), method="test-method", info=info)


def hostile_id(tree: Tree) -> int:
    return next(n.id for n in tree.nodes if n.text.startswith(HOSTILE))


def embedded(page: str) -> str:
    blobs = DATA_RE.findall(page)
    assert len(blobs) == 1
    return blobs[0]


# -- the page as text ----------------------------------------------------------------------------


def test_page_is_self_contained(tree):
    page = render_tree_html(tree)
    assert page.startswith("<!DOCTYPE html>")
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<link" not in page.lower() and "@import" not in page and "url(" not in page
    assert page.count("<style>") == 1 and page.count("<script") == 2  # data + code, both inline


def test_embedded_json_round_trips(tree):
    blob = embedded(render_tree_html(tree))
    assert json.loads(blob) == tree.to_dict()
    assert Tree.from_dict(json.loads(blob)) == tree
    assert json.loads(blob)["chosen"] == list(tree.chosen) and tree.chosen


def test_hostile_text_cannot_leave_the_script_element(tree, problem):
    hostile = dataclasses.replace(
        tree, problem=dataclasses.replace(problem, question=HOSTILE), method=HOSTILE
    )
    page = render_tree_html(hostile, title=HOSTILE)
    low = page.lower()
    assert low.count("</script") == 2 and low.count("<script") == 2
    assert "<!--" not in page and "alert(1)</script>" not in page
    assert "<img" not in low
    assert html.escape(HOSTILE) in page  # the title, escaped in <title> and <h1>
    blob = embedded(page)
    assert "<" not in blob and ">" not in blob and "&" not in blob
    data = json.loads(blob)
    assert data["method"] == HOSTILE and data["problem"]["question"] == HOSTILE
    assert data["nodes"][hostile_id(tree)]["text"].startswith(HOSTILE)


def test_tree_json_for_html_escapes_line_separators(problem):
    text = "a\u2028b\u2029c <&> \U0001f600 é"
    t = solution_tree(problem)
    t = t.with_nodes([dataclasses.replace(t.nodes[0], text=text), *t.nodes[1:]])
    blob = tree_json_for_html(t)
    assert "\u2028" not in blob and "\u2029" not in blob
    assert json.loads(blob)["nodes"][0]["text"] == text


def test_default_title_names_method_and_problem(tree):
    page = render_tree_html(tree)
    assert f"<title>test-method · {tree.problem.id}</title>" in page


def test_script_inserts_text_without_html_parsing():
    code = (Path(__file__).parents[2] / "src/openberry/viewer/assets/viewer.js").read_text()
    assert not re.search(r"\.(innerHTML|outerHTML)\b|insertAdjacentHTML|document\.write", code)


def _with_answers(problem, verdicts: dict[int, bool | None]) -> Tree:
    """A solution tree whose chosen path ends at a terminal node; `verdicts` sets
    ``info["verified"]`` on nodes (None: no verdict recorded)."""
    t = solution_tree(problem)
    nodes = [
        dataclasses.replace(n, info={"verified": verdicts[n.id]})
        if verdicts.get(n.id) is not None
        else n
        for n in t.nodes
    ]
    return t.with_nodes(nodes)


def _chosen_answer_line(page: str) -> str:
    found = re.search(r'<p class="chosen-answer" id="chosen-answer">(.*?)</p>', page)
    assert found, "the header has no chosen-answer line"
    return found.group(1)


def test_header_states_the_chosen_answer_and_only_a_recorded_verdict(problem):
    """Regression: the header did not state the chosen answer; and nothing in the page may claim
    an answer is right unless a verdict is recorded in the tree."""
    last = solution_tree(problem).chosen[-1]
    plain = _with_answers(problem, {})
    assert chosen_answer(plain) == ("119", None)
    line = _chosen_answer_line(render_tree_html(plain))
    assert "<code>119</code>" in line and 'class="verdict unverified">not verified' in line
    line = _chosen_answer_line(render_tree_html(_with_answers(problem, {last: True})))
    assert 'class="verdict correct">\u2713 correct (verified)' in line
    line = _chosen_answer_line(render_tree_html(_with_answers(problem, {last: False})))
    assert 'class="verdict wrong">\u2717 wrong (verified)' in line
    none = dataclasses.replace(plain, chosen=())
    assert "<b>none</b>" in _chosen_answer_line(render_tree_html(none))
    assert "nothing was chosen" in _chosen_answer_line(render_tree_html(none))


def test_hostile_chosen_answer_is_escaped(problem):
    t = solution_tree(problem)
    nodes = list(t.nodes)
    nodes[-1] = dataclasses.replace(nodes[-1], answer=HOSTILE)
    line = _chosen_answer_line(render_tree_html(t.with_nodes(nodes)))
    assert f"<code>{html.escape(HOSTILE)}</code>" in line and "<script" not in line


def test_answer_is_green_only_with_a_recorded_verdict():
    """Regression: every answer chip was green, right or wrong. The stylesheet gives a plain
    answer a neutral colour, and the script adds ``correct``/``wrong`` from info.verified."""
    css = (Path(viewer_html.__file__).parent / "assets" / "viewer.css").read_text()
    rules = dict(re.findall(r"^(\.answer[.\w]*) \{([^}]*)\}", css, re.M))
    green, red = "#1d6b35", "#b3261e"
    assert green not in rules[".answer"] and red not in rules[".answer"]
    assert green in rules[".answer.correct"] and red in rules[".answer.wrong"]
    script = (Path(viewer_html.__file__).parent / "assets" / "viewer.js").read_text()
    assert "node.info.verified" in script and '" correct" : " wrong"' in script


def test_write_tree_html_is_atomic_and_creates_directories(tree, tmp_path):
    out = write_tree_html(tree, tmp_path / "a" / "b" / "tree.html", title="T")
    assert out == tmp_path / "a" / "b" / "tree.html"
    assert out.read_text(encoding="utf-8") == render_tree_html(tree, title="T")
    assert [p.name for p in out.parent.iterdir()] == ["tree.html"]  # no .tmp left behind


# -- the page in a browser -----------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium binary on PATH (install it: apt-get install chromium; make test does "
    "this when run as root)",
)


class _DomNodes(HTMLParser):
    """Collects the `.node` elements and the self-test output of a dumped DOM."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.nodes: list[tuple[int, set[str]]] = []
        self.scripts = 0
        self.buttons: dict[str, bool] = {}  # id -> disabled
        self.errors = 0
        self._in_selftest = False
        self.selftest = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = set((a.get("class") or "").split())
        if "node" in classes:
            self.nodes.append((int(a["data-node-id"]), classes))
        if "error" in classes:
            self.errors += 1
        if tag == "script":
            self.scripts += 1
        if tag == "button" and a.get("id"):
            self.buttons[a["id"]] = "disabled" in a
        if tag == "pre" and a.get("id") == "selftest":
            self._in_selftest = True

    def handle_endtag(self, tag):
        if tag == "pre":
            self._in_selftest = False

    def handle_data(self, data):
        if self._in_selftest:
            self.selftest += data


def dump_dom(page: Path, tmp_path: Path, fragment: str = "") -> _DomNodes:
    assert CHROMIUM is not None
    cmd = [
        CHROMIUM,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.resolve().as_uri() + fragment,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    parser = _DomNodes()
    parser.feed(done.stdout)
    assert parser.nodes, f"no .node elements in the DOM; stderr: {done.stderr[-2000:]}"
    return parser


def selftest(page: Path, tmp_path: Path, node_id: int) -> dict:
    dom = dump_dom(page, tmp_path, f"#selftest-{node_id}")
    assert dom.selftest, "the page wrote no self-test result"
    result = json.loads(dom.selftest)
    assert "error" not in result, result["error"]
    return result


@needs_chromium
def test_browser_builds_one_node_element_per_node(tree, tmp_path):
    page = write_tree_html(tree, tmp_path / "tree.html")
    dom = dump_dom(page, tmp_path)
    assert sorted(i for i, _ in dom.nodes) == list(range(len(tree)))
    assert {i for i, classes in dom.nodes if "chosen" in classes} == set(tree.chosen)
    assert dom.scripts == 2  # the hostile node text did not add a script element
    assert dom.errors == 0
    assert dom.buttons == {"btn-expand": False, "btn-collapse": False, "btn-chosen": False}


@needs_chromium
def test_browser_collapse_details_and_buttons(tree, tmp_path):
    page = write_tree_html(tree, tmp_path / "tree.html")
    target = hostile_id(tree)
    res = selftest(page, tmp_path, target)
    n = len(tree)
    assert res["node_elements"] == n
    assert sorted(res["node_ids"]) == list(range(n))
    assert res["node_ids"] == tree.preorder()  # children nested in order
    assert sorted(res["chosen_ids"]) == sorted(tree.chosen)
    assert res["scripts"] == 2
    assert res["visible_after_expand_all"] == n

    collapse = res["collapse"]
    assert collapse["collapsed_class"] and collapse["node_visible"]
    assert collapse["descendants"] == len(tree) - 1  # the root: the first node with grandchildren
    assert collapse["visible_descendants"] == 0
    assert collapse["visible_descendants_after_reexpand"] == collapse["descendants"]

    details = res["details"]
    assert details == {
        "node": target,
        "selected": True,
        "text": tree.nodes[target].text,
        "title": f"Node #{target}",
    }

    assert res["visible_after_collapse_all"] == [0]
    assert not res["chosen_button_disabled"]
    assert set(tree.chosen) <= set(res["visible_after_show_chosen"])
    assert res["selected_after_show_chosen"] == tree.chosen[-1]


@needs_chromium
def test_browser_tree_without_chosen_path(problem, tmp_path):
    t = dataclasses.replace(solution_tree(problem), chosen=(), info={})
    page = write_tree_html(t, tmp_path / "tree.html")
    dom = dump_dom(page, tmp_path)
    assert len(dom.nodes) == len(t)
    assert not any("chosen" in classes for _, classes in dom.nodes)
    assert dom.buttons["btn-chosen"] is True  # disabled
    res = selftest(page, tmp_path, len(t) - 1)
    assert res["details"]["text"] == t.nodes[-1].text
    assert res["visible_after_show_chosen"] == [0]  # the disabled button did nothing


@needs_chromium
def test_browser_single_node_tree(problem, tmp_path):
    t = dataclasses.replace(solution_tree(problem), chosen=())
    t = t.with_nodes([dataclasses.replace(t.nodes[0], children=())])
    page = write_tree_html(t, tmp_path / "tree.html")
    res = selftest(page, tmp_path, 0)
    assert res["node_elements"] == 1 and "collapse" not in res
    assert res["details"]["text"] == problem.question


@needs_chromium
def test_browser_answer_colour_follows_recorded_verdicts(problem, tmp_path):
    """Regression: an answer was green even when wrong; it is coloured only by a verdict."""
    t = branching_tree(problem, 3, branch_prob=1.0)
    terminals = [n.id for n in t.nodes if n.terminal and n.answer is not None]
    assert terminals
    for verdict, want in ((None, "answer"), (True, "answer correct"), (False, "answer wrong")):
        nodes = [
            dataclasses.replace(n, info={"verified": verdict}) if verdict is not None else n
            for n in t.nodes
        ]
        page = write_tree_html(t.with_nodes(nodes), tmp_path / "tree.html")
        res = selftest(page, tmp_path, 0)
        assert {res["answers"][str(i)] for i in terminals} == {want}

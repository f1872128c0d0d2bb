"""`write_report`, `summarize_dir` and `compare_dirs` on small hand-built eval directories."""

from __future__ import annotations

import json
import sys

import pytest

from evaldirs import make_eval_dir, record, sample, write_records
from openberry.errors import BerryError
from openberry.evaluation.report import (
    COVERAGE_TITLE,
    compare_dirs,
    summarize_dir,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """One report over a directory with a torn line, a duplicate and an unlisted run."""
    out = make_eval_dir(
        tmp_path_factory.mktemp("eval") / "ev", torn=True, duplicate=True, extra_run=True
    )
    return out, write_report(out)


def test_report_json_numbers(reported):
    out, summary = reported
    assert json.loads((out / "report.json").read_text(encoding="utf-8")) == summary
    assert (summary["dataset"], summary["model"], summary["samples"]) == (
        "arithmetic",
        "berry-tiny",
        2,
    )
    assert list(summary["runs"]) == ["greedy@1", "mctsr@4", "best-of-n@2"]
    greedy = summary["runs"]["greedy@1"]
    assert greedy["problems"] == 4  # the torn line is not counted
    assert greedy["accuracy"] == pytest.approx(0.5)
    assert greedy["maj@2"] == pytest.approx(0.5)
    assert greedy["coverage"]["pass@2"] == pytest.approx(0.75)
    assert greedy["oracle"]["oracle_any_node"] == pytest.approx(0.75)
    assert greedy["cost"]["generated_tokens"] == 100
    assert greedy["load"] == {"torn_line": 5, "duplicates": 0}
    mctsr = summary["runs"]["mctsr@4"]
    assert mctsr["problems"] == 4 and mctsr["load"]["duplicates"] == 1
    assert mctsr["accuracy"] == pytest.approx(7 / 8)
    assert summary["plots"] == ["plots/accuracy_vs_tokens.png", "plots/accuracy_vs_budget.png"]


def test_report_warnings(reported):
    _, summary = reported
    warnings = "\n".join(summary["warnings"])
    assert "greedy@1: records.jsonl:5: torn last line" in warnings
    assert (
        "mctsr@4: records.jsonl: 1 duplicate id(s)" in warnings and "arithmetic/test/1" in warnings
    )
    assert "best-of-n@2: found on disk but not listed in run.json" in warnings
    assert "best-of-n@2: some problems have 1 sample(s); run.json asks for 2" in warnings
    assert "runs cover different numbers of problems (1 to 4)" in warnings


def test_report_markdown(reported):
    out, _ = reported
    md = (out / "report.md").read_text(encoding="utf-8")
    assert md.startswith("# Evaluation report: arithmetic · berry-tiny\n")
    assert "| Method | Budget | Accuracy % | maj@2 % | Gen. tokens/problem |" in md
    assert "| greedy | 1 | 50.0 | 50.0 | 100 |" in md
    assert "| mctsr | 4 | 87.5 | 100.0 | 400 |" in md
    assert "| best-of-n | 2 | 100.0 | – | 200 |" in md
    assert f"## {COVERAGE_TITLE}" in md
    coverage = md.split(f"## {COVERAGE_TITLE}")[1]
    assert "coverage pass@1 %" in coverage and "coverage pass@2 %" in coverage
    assert "oracle: any node % (sample 0)" in coverage and "oracle: best-scored node %" in coverage
    assert "| greedy | 1 | 2 | 50.0 | 75.0 | 75.0 | 50.0 | 2 |" in coverage
    # The accuracy table's header mentions neither the oracle nor coverage.
    header = md.split("## Accuracy")[1].strip().splitlines()[0]
    assert header.startswith("| Method |") and "oracle" not in header and "pass@" not in header
    assert "![Accuracy vs generated tokens](plots/accuracy_vs_tokens.png)" in md
    assert "![Accuracy vs budget](plots/accuracy_vs_budget.png)" in md
    assert "## Warnings" in md and "torn last line" in md
    assert "### greedy@1: 3 wrong of 4 (sample 0)" in md
    assert "[tree](greedy@1/wrong/000001-s0.html)" in md
    assert "answer _none_, reference `3` (wrong)\n" in md  # its tree file is missing: no link


def test_report_plots_are_png(reported):
    out, _ = reported
    for name in ("accuracy_vs_tokens.png", "accuracy_vs_budget.png"):
        data = (out / "plots" / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000


def test_report_wrong_tree_pages(reported):
    out, summary = reported
    page = out / "greedy@1" / "wrong" / "000001-s0.html"
    html = page.read_text(encoding="utf-8")
    assert 'id="tree-data"' in html and "Question 1?" in html
    assert sorted(p.name for p in page.parent.iterdir()) == ["000001-s0.html"]
    greedy = summary["runs"]["greedy@1"]
    # Problem 2's tree file is missing and problem 3 names none: counted, not fatal.
    assert greedy["wrong_pages"] == {"written": 1, "missing": 2, "unreadable": 0, "not_rendered": 0}
    assert greedy["wrong"][0]["page"] == "greedy@1/wrong/000001-s0.html"
    assert not (out / "mctsr@4" / "wrong").exists()  # no wrong sample 0


def test_max_wrong_trees_zero_writes_no_page(tmp_path):
    out = make_eval_dir(tmp_path / "ev")
    summary = write_report(out, max_wrong_trees=0)
    assert summary["runs"]["greedy@1"]["wrong_pages"]["not_rendered"] == 3
    assert not (out / "greedy@1" / "wrong").exists()
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "[tree JSON](greedy@1/trees/000001-s0.json)" in md
    assert md.count("[tree JSON]") == 1  # problem 2's tree file is missing


def test_report_without_matplotlib(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = make_eval_dir(tmp_path / "ev")
    summary = write_report(out)
    assert summary["plots"] == [] and not (out / "plots").exists()
    assert "matplotlib is not installed" in (out / "report.md").read_text(encoding="utf-8")
    assert "matplotlib is not installed" in caplog.text


def test_summarize_dir_errors(tmp_path):
    with pytest.raises(BerryError, match="no such directory"):
        summarize_dir(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BerryError, match="no records found"):
        summarize_dir(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "run.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(BerryError, match="expected a JSON object"):
        summarize_dir(bad)


def test_summarize_dir_listed_run_without_records(tmp_path):
    out = make_eval_dir(tmp_path / "ev")
    config = json.loads((out / "run.json").read_text(encoding="utf-8"))
    config["runs"] += ["beam@8", "../elsewhere"]
    (out / "run.json").write_text(json.dumps(config), encoding="utf-8")
    summary = summarize_dir(out)
    assert list(summary["runs"]) == ["greedy@1", "mctsr@4"]
    assert "1 run(s) without records yet, left out of the report: beam@8" in summary["warnings"]
    assert "run.json lists '../elsewhere', not a run directory name: ignored" in summary["warnings"]


def test_compare_dirs(tmp_path):
    a = make_eval_dir(tmp_path / "a" / "ev")
    b = tmp_path / "b" / "ev"
    b.mkdir(parents=True)
    (b / "run.json").write_text(
        json.dumps({"dataset": "arithmetic", "model": "other", "runs": ["mctsr@4"], "samples": 1}),
        encoding="utf-8",
    )
    write_records(
        b / "mctsr@4" / "records.jsonl", [record("mctsr@4", 0, "1", [sample("2", False)])]
    )
    md = compare_dirs([a, b])
    assert md.startswith("# Comparison of 2 evaluation directories")
    assert "| Dir | Method | Budget | Accuracy % |" in md
    assert "| a/ev | greedy | 1 | 50.0 |" in md
    assert "| a/ev | mctsr | 4 | 87.5 |" in md
    assert "| b/ev | mctsr | 4 | 0.0 |" in md
    assert COVERAGE_TITLE in md and "## Plots" not in md
    assert not (a / "report.md").exists()

    out = tmp_path / "cmp"
    assert compare_dirs([a, b], out).startswith("# Comparison")
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert [d["label"] for d in data["dirs"]] == ["a/ev", "b/ev"]
    assert data["dirs"][1]["summary"]["runs"]["mctsr@4"]["accuracy"] == 0.0
    assert (out / "report.md").read_text(encoding="utf-8").count("![") == 2
    assert (out / "plots" / "accuracy_vs_tokens.png").read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(BerryError, match="one of the compared directories"):
        compare_dirs([a, b], a)


def _tick_labels(ax) -> list[str]:
    lo, hi = ax.get_xlim()
    return [t.get_text() for t in ax.get_xticklabels() if lo <= t.get_position()[0] <= hi]


@pytest.mark.parametrize("tokens", [(1100.0, 1500.0, 1900.0), (1234.0,), (3.0, 5.0)])
def test_tokens_plot_has_x_labels_within_one_power_of_two(tokens):
    """Regression: accuracy_vs_tokens.png lost its x tick labels when every point fell within
    one power of two (the log-2 axis then has no major tick inside the data)."""
    pytest.importorskip("matplotlib")
    from openberry.evaluation.report import _figure, _lines, _Point, _Series

    points = tuple(_Point(2**i, t, 0.5, 30, 1) for i, t in enumerate(tokens))
    fig = _figure(_lines([_Series("mctsr", points)], lambda p: p.tokens), "tokens", "t")
    fig.canvas.draw()
    labels = [t for t in _tick_labels(fig.axes[0]) if t]
    assert len(labels) >= min(2, len(tokens)), labels
    lo, hi = fig.axes[0].get_xlim()
    assert lo < min(tokens) and max(tokens) < hi


def test_wide_token_range_keeps_the_power_of_two_ticks():
    pytest.importorskip("matplotlib")
    from openberry.evaluation.report import _figure, _lines, _Point, _Series

    points = tuple(_Point(b, 100.0 * b, 0.5, 30, 1) for b in (1, 4, 16))
    fig = _figure(_lines([_Series("sc", points)], lambda p: p.tokens), "tokens", "t")
    fig.canvas.draw()
    assert {"256", "1024"} <= set(_tick_labels(fig.axes[0]))


def test_plot_legend_states_the_sample_size(tmp_path):
    """Regression: the plots did not say how many problems (and samples) a point stands for."""
    pytest.importorskip("matplotlib")
    from openberry.evaluation.report import _figure, _lines, _series

    summary = summarize_dir(make_eval_dir(tmp_path / "ev"))
    series = _series([(None, run) for run in summary["runs"].values()])
    fig = _figure(_lines(series, lambda p: p.tokens), "tokens", "t")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["greedy (n=4, k=2)", "mctsr (n=4, k=2)"]


def test_report_refuses_a_newer_run_json(tmp_path):
    """Regression: a run.json of a newer format version was read silently."""
    out = make_eval_dir(tmp_path / "ev")
    config = json.loads((out / "run.json").read_text(encoding="utf-8"))
    (out / "run.json").write_text(json.dumps({**config, "version": 2}), encoding="utf-8")
    with pytest.raises(BerryError, match=r"run.json version 2 is newer than .* \(version 1\)"):
        write_report(out)
    (out / "run.json").write_text(json.dumps({**config, "version": 1}), encoding="utf-8")
    assert write_report(out)["runs"]

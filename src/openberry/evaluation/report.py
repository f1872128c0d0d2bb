"""Reports over `berry eval` output directories: ``report.json``, ``report.md`` and plots.

`summarize_dir` reads ``OUT/run.json`` and every run's ``records.jsonl`` (read-only: a torn last
line is reported under ``"warnings"`` and not counted, never repaired) and summarises each run
with `openberry.evaluation.metrics.summarize_run`. `write_report` writes the summary as
``OUT/report.json``, a readable ``OUT/report.md``, the plots ``OUT/plots/accuracy_vs_tokens.png``
and ``OUT/plots/accuracy_vs_budget.png`` and a tree viewer page per wrong answer (up to a limit)
under ``OUT/<run>/wrong/``. `compare_dirs` puts several output directories side by side.

Accuracy and the metrics that use the reference answer to pick among candidates (pass@k for
k > 1, ``oracle_any_node``, ``best_scored_node``) are kept in separate tables whose headers say
so; see the `openberry.evaluation.metrics` docstring for why.

matplotlib is imported only when plots are drawn, with the Agg renderer and without pyplot (no
global state, no display needed); without matplotlib the plots are skipped with a warning.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from openberry.errors import BerryError
from openberry.evaluation.runner import RUN_VERSION
from openberry.evaluation.store import RecordFile
from openberry.fileio import replace_atomically, write_text_atomic

__all__ = [
    "COVERAGE_TITLE",
    "PLOT_BUDGET",
    "PLOT_TOKENS",
    "REPORT_SCHEMA",
    "compare_dirs",
    "markdown_tables",
    "summarize_dir",
    "write_report",
]

logger = logging.getLogger(__name__)

REPORT_SCHEMA = "openberry.eval-report"
COMPARISON_SCHEMA = "openberry.eval-comparison"
REPORT_VERSION = 1
PLOT_TOKENS = "accuracy_vs_tokens.png"
PLOT_BUDGET = "accuracy_vs_budget.png"
COVERAGE_TITLE = "Coverage and oracle metrics (use the reference answer; not accuracy)"
_MD_WRONG_LIMIT = 100
"""Wrong answers listed per run in report.md (report.json lists them all)."""
_DASH = "–"


# -- reading ------------------------------------------------------------------------------------


def _read_run_json(out_dir: Path) -> tuple[dict[str, Any], list[str]]:
    path = out_dir / "run.json"
    if not path.is_file():
        return {}, [f"run.json is missing; runs were found by listing {out_dir}"]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BerryError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise BerryError(f"{path}: expected a JSON object, got {type(data).__name__}")
    version = data.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > RUN_VERSION:
        raise BerryError(
            f"{path}: run.json version {version} is newer than this openberry reads (version "
            f"{RUN_VERSION}); upgrade openberry to report on it"
        )
    return data, []


def _run_names(out_dir: Path, config: Mapping[str, Any], warnings: list[str]) -> list[str]:
    listed = config.get("runs")
    names: list[str] = []
    for name in listed if isinstance(listed, list) else []:
        if not isinstance(name, str) or name in names:
            continue
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            warnings.append(f"run.json lists {name!r}, not a run directory name: ignored")
            continue
        names.append(name)
    on_disk = sorted(
        p.name for p in out_dir.iterdir() if p.is_dir() and (p / "records.jsonl").is_file()
    )
    extra = [name for name in on_disk if name not in names]
    if config:
        warnings.extend(f"{name}: found on disk but not listed in run.json" for name in extra)
    return names + extra


def _load_warnings(load: Any) -> list[str]:
    """What a read-only load of a run's records.jsonl found: a torn last line, duplicate ids."""
    found: list[str] = []
    if load.torn_line is not None:
        found.append(
            f"records.jsonl:{load.torn_line}: torn last line (an interrupted write) not counted; "
            "'berry eval --resume' repairs it and runs that problem again"
        )
    if load.duplicates:
        shown = ", ".join(load.duplicates[:5]) + (", ..." if len(load.duplicates) > 5 else "")
        found.append(
            f"records.jsonl: {len(load.duplicates)} duplicate id(s), first record kept: {shown}"
        )
    return found


def _summarize_named_run(
    out_dir: Path, name: str, expected_samples: Any, warnings: list[str]
) -> dict[str, Any] | None:
    """`summarize_run` of one run directory plus its ``load`` block, or None when it has no
    records; the run's warnings, prefixed with its name, are added to `warnings`."""
    from openberry.evaluation.metrics import summarize_run

    rows, load = RecordFile(out_dir / name / "records.jsonl").load(repair=False)
    run_warnings = _load_warnings(load)
    if not rows:
        warnings.extend(f"{name}: {w}" for w in run_warnings)
        return None
    summary = summarize_run(rows, run=name)
    if isinstance(expected_samples, int) and summary["samples"] < expected_samples:
        run_warnings.append(
            f"some problems have {summary['samples']} sample(s); run.json asks for "
            f"{expected_samples}"
        )
    summary["warnings"] = run_warnings + summary["warnings"]
    summary["load"] = {"torn_line": load.torn_line, "duplicates": len(load.duplicates)}
    warnings.extend(f"{name}: {w}" for w in summary["warnings"])
    return summary


def _cross_run_warnings(runs: Mapping[str, Any], empty: Sequence[str]) -> list[str]:
    """Warnings about the runs together: runs without records, runs over different problems."""
    found: list[str] = []
    if empty:
        found.append(
            f"{len(empty)} run(s) without records yet, left out of the report: {', '.join(empty)}"
        )
    sizes = {run["problems"] for run in runs.values()}
    if len(sizes) > 1:
        found.append(
            f"runs cover different numbers of problems ({min(sizes)} to {max(sizes)}): an "
            "unfinished run? Their accuracies are over different problem sets"
        )
    return found


def summarize_dir(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Summarise every run of a `berry eval` output directory.

    Runs come in the order of ``run.json``'s ``"runs"``, then run directories found on disk with
    a ``records.jsonl`` that ``run.json`` does not list. Record files are read without repair.

    Returns:
        ``{"schema", "version", "dir", "dataset", "model", "samples", "seed", "runs",
        "warnings"}`` where ``runs`` maps each run name to `summarize_run`'s dict plus ``load``
        (``torn_line``, ``duplicates``), and ``warnings`` lists torn lines, duplicate ids, runs
        without records and the like, each prefixed with its run.

    Raises:
        BerryError: The directory is missing, ``run.json`` is not a JSON object, a record file is
            damaged before its last line, or no run has any record.
    """
    out_dir = Path(out_dir)
    if not out_dir.exists():
        raise BerryError(f"{out_dir}: no such directory")
    if not out_dir.is_dir():
        raise BerryError(f"{out_dir}: not a directory")
    config, warnings = _read_run_json(out_dir)
    runs: dict[str, Any] = {}
    empty: list[str] = []
    for name in _run_names(out_dir, config, warnings):
        summary = _summarize_named_run(out_dir, name, config.get("samples"), warnings)
        if summary is None:
            empty.append(name)
        else:
            runs[name] = summary
    warnings.extend(_cross_run_warnings(runs, empty))
    if not runs:
        raise BerryError(
            f"{out_dir}: no records found (no <run>/records.jsonl with a record); is it an output "
            "directory of 'berry eval'?"
        )
    return {
        "schema": REPORT_SCHEMA,
        "version": REPORT_VERSION,
        "dir": str(out_dir),
        "dataset": config.get("dataset"),
        "model": config.get("model"),
        "samples": config.get("samples"),
        "seed": config.get("seed"),
        "runs": runs,
        "warnings": warnings,
    }


# -- markdown -----------------------------------------------------------------------------------


def _pct(x: Any) -> str:
    return _DASH if x is None else f"{100 * x:.1f}"


def _num(x: Any, digits: int) -> str:
    return _DASH if x is None else f"{x:,.{digits}f}"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = [
        "| " + " | ".join(_cell(h) for h in header) + " |",
        "|" + "|".join("---" if i < 2 else "--:" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _code(value: Any, limit: int = 60) -> str:
    """A markdown code span for an answer of any content (backticks, newlines, long text)."""
    if value is None:
        return "_none_"
    text = " ".join(str(value).split())
    if not text:
        return "_empty_"
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _link(path: str) -> str:
    return quote(path, safe="/@+")


_Row = tuple[str | None, Mapping[str, Any]]
"""(directory label or None, run summary)."""


def _method_budget(run: Mapping[str, Any]) -> list[str]:
    budget = run.get("budget")
    return [run.get("method") or run.get("run") or "?", _DASH if budget is None else str(budget)]


def _accuracy_table(rows: Sequence[_Row]) -> str:
    with_dir = any(label is not None for label, _ in rows)
    ks = sorted({r["samples"] for _, r in rows if r.get("samples", 0) > 1})
    header = ["Dir"] if with_dir else []
    header += ["Method", "Budget", "Accuracy %"]
    if ks:
        header.append(f"maj@{ks[0]} %" if len(ks) == 1 else "maj@K %")
    header += ["Gen. tokens/problem", "Calls/problem", "Wall s/problem", "No answer", "Problems"]
    body = []
    for label, run in rows:
        row = [label or ""] if with_dir else []
        row += [*_method_budget(run), _pct(run.get("accuracy"))]
        if ks:
            k = run.get("samples", 0)
            maj = run.get(f"maj@{k}") if k > 1 else None
            cell = _pct(maj)
            row.append(cell if len(ks) == 1 or maj is None else f"{cell} (K={k})")
        cost = run.get("cost", {})
        row += [
            _num(cost.get("generated_tokens"), 0),
            _num(cost.get("calls"), 1),
            _num(cost.get("wall_time_per_problem", cost.get("wall_time")), 3),
            cost.get("no_answer", 0),
            run.get("problems", 0),
        ]
        body.append(row)
    return _table(header, body)


def _coverage_table(rows: Sequence[_Row]) -> str:
    with_dir = any(label is not None for label, _ in rows)
    ks = sorted(
        {int(key.split("@")[1]) for _, r in rows for key in r.get("coverage", {})},
    )
    header = ["Dir"] if with_dir else []
    header += ["Method", "Budget", "Samples K"]
    header += [f"coverage pass@{k} %" for k in ks]
    header += [
        "oracle: any node % (sample 0)",
        "oracle: best-scored node %",
        "best-scored: problems",
    ]
    body = []
    for label, run in rows:
        row = [label or ""] if with_dir else []
        row += [*_method_budget(run), run.get("samples", 0)]
        coverage = run.get("coverage", {})
        row += [_pct(coverage.get(f"pass@{k}")) for k in ks]
        oracle = run.get("oracle", {})
        row += [
            _pct(oracle.get("oracle_any_node")),
            _pct(oracle.get("best_scored_node")),
            oracle.get("best_scored_node_problems", 0),
        ]
        body.append(row)
    return _table(header, body)


_ACCURACY_NOTE = (
    "Accuracy is the mean over problems of the fraction of correct samples, each sample being the "
    "answer the method itself chose (pass@1, unbiased). Tokens and calls are means per problem of "
    "one search (one sample); maj@K costs K searches. Wall s/problem is the run's wall time (the "
    "sum over batches of their longest search) divided by its problems: problems of a batch are "
    "searched together."
)
_COVERAGE_NOTE = (
    "These numbers are **not accuracy**. Coverage pass@k is the unbiased chance that at least one "
    "of k samples is correct (Chen et al. 2021) and oracle any node counts a problem as solved "
    "when any candidate answer in sample 0's tree is correct: both use the reference answer to "
    "choose. Best-scored node re-selects, after the search, sample 0's candidate with the highest "
    "node value; it does not look at the reference but is not the method's own answer, and it "
    "only counts the problems where some candidate was scored."
)


def _tables(rows: Sequence[_Row], level: str = "##") -> str:
    return "\n\n".join(
        [
            f"{level} Accuracy",
            _accuracy_table(rows),
            _ACCURACY_NOTE,
            f"{level} {COVERAGE_TITLE}",
            _coverage_table(rows),
            _COVERAGE_NOTE,
        ]
    )


def markdown_tables(summary: Mapping[str, Any]) -> str:
    """The accuracy table and the coverage/oracle table of a `summarize_dir` summary, in
    markdown, each under its heading and followed by a note on what its numbers mean."""
    return _tables([(None, run) for run in summary["runs"].values()])


def _plots_md(plots: Sequence[str], skipped: str | None, prefix: str = "") -> list[str]:
    parts = ["## Plots"]
    if plots:
        alt = {PLOT_TOKENS: "Accuracy vs generated tokens", PLOT_BUDGET: "Accuracy vs budget"}
        parts += [f"![{alt.get(Path(p).name, p)}]({_link(prefix + p)})" for p in plots]
    else:
        parts.append(f"_No plots: {skipped or 'nothing to plot'}._")
    return parts


def _wrong_md(name: str, run: Mapping[str, Any]) -> str:
    wrong = run.get("wrong", [])
    lines = [f"### {name}: {len(wrong)} wrong of {run.get('problems', 0)} (sample 0)", ""]
    if not wrong:
        return "\n".join([*lines, "None."])
    for item in wrong[:_MD_WRONG_LIMIT]:
        text = (
            f"- #{item.get('index', '?')} {_code(item.get('id'), 80)}: answer "
            f"{_code(item.get('answer'))}, reference {_code(item.get('reference'))}"
        )
        if item.get("verdict"):
            text += f" ({item['verdict']})"
        if item.get("page"):
            text += f" · [tree]({_link(item['page'])})"
        elif item.get("tree") and not item.get("tree_missing"):
            text += f" · [tree JSON]({_link(name + '/' + str(item['tree']))})"
        lines.append(text)
    if len(wrong) > _MD_WRONG_LIMIT:
        lines.append(f"- ... and {len(wrong) - _MD_WRONG_LIMIT} more (see report.json)")
    pages = run.get("wrong_pages")
    if pages:
        lines += [
            "",
            f"Tree pages written: {pages['written']}; tree files missing: {pages['missing']}; "
            f"unreadable: {pages['unreadable']}; beyond the limit: {pages['not_rendered']}.",
        ]
    return "\n".join(lines)


def _report_md(summary: Mapping[str, Any], skipped: str | None) -> str:
    runs = summary["runs"]
    parts = [
        f"# Evaluation report: {summary.get('dataset') or '?'} · {summary.get('model') or '?'}",
        f"{len(runs)} run(s); {summary.get('samples') or '?'} sample(s) per problem; seed "
        f"{summary.get('seed') if summary.get('seed') is not None else '?'}. "
        "Written by `berry report`; the numbers are in report.json.",
        markdown_tables(summary),
        *_plots_md(summary.get("plots", []), skipped),
    ]
    if summary.get("warnings"):
        parts += ["## Warnings", "\n".join(f"- {w}" for w in summary["warnings"])]
    parts.append("## Wrong answers")
    parts += [_wrong_md(name, run) for name, run in runs.items()]
    return "\n\n".join(parts) + "\n"


# -- files --------------------------------------------------------------------------------------


def _write_text(path: Path, text: str) -> Path:
    return write_text_atomic(path, text)


def _write_json(path: Path, data: Any) -> Path:
    return _write_text(path, json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False) + "\n")


def _write_wrong_pages(out_dir: Path, name: str, run: dict[str, Any], limit: int) -> dict[str, int]:
    """Write up to `limit` tree pages of the run's wrong answers; set ``page`` on those items."""
    from openberry.tree import Tree
    from openberry.viewer import write_tree_html

    counts = {"written": 0, "missing": 0, "unreadable": 0, "not_rendered": 0}
    for item in run.get("wrong", []):
        rel = item.get("tree")
        src = out_dir / name / rel if isinstance(rel, str) and rel else None
        if counts["written"] >= limit:
            counts["not_rendered"] += 1
            if src is None or not src.is_file():
                item["tree_missing"] = True
            continue
        if src is None or not src.is_file():
            item["tree_missing"] = True
            counts["missing"] += 1
            logger.debug("%s: no tree file for wrong answer %s", name, item.get("id"))
            continue
        try:
            tree = Tree.load(src)
        except (BerryError, OSError, UnicodeDecodeError) as exc:
            counts["unreadable"] += 1
            logger.warning("%s: cannot read tree %s: %s", name, src, exc)
            continue
        page = out_dir / name / "wrong" / f"{src.stem}.html"
        title = f"{name} · {item.get('id')} · wrong: {item.get('answer')!s} (reference {item.get('reference')!s})"
        write_tree_html(tree, page, title=title)
        item["page"] = page.relative_to(out_dir).as_posix()
        counts["written"] += 1
    return counts


# -- plots --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Point:
    budget: int | None
    tokens: float | None
    accuracy: float
    problems: int | None = None
    samples: int | None = None


@dataclass(frozen=True)
class _Series:
    label: str
    points: tuple[_Point, ...]

    @property
    def legend(self) -> str:
        """The label with the sample size: ``mctsr (n=200)``, ``sc (n=200, k=4)``, or a range
        when the series' runs cover different numbers of problems."""
        sizes = sorted({p.problems for p in self.points if p.problems is not None})
        if not sizes:
            return self.label
        n = str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}\u2013{sizes[-1]}"
        ks = {p.samples for p in self.points if p.samples is not None and p.samples > 1}
        k = f", k={'/'.join(str(x) for x in sorted(ks))}" if ks else ""
        return f"{self.label} (n={n}{k})"


def _series(rows: Sequence[_Row]) -> list[_Series]:
    """One series per (dir, method), points ordered by budget."""
    groups: dict[str, list[_Point]] = {}
    for label, run in rows:
        if run.get("accuracy") is None:
            continue
        method = run.get("method") or run.get("run") or "?"
        key = f"{label}: {method}" if label is not None else method
        groups.setdefault(key, []).append(
            _Point(
                run.get("budget"),
                run.get("cost", {}).get("generated_tokens"),
                run["accuracy"],
                run.get("problems"),
                run.get("samples"),
            )
        )
    return [
        _Series(key, tuple(sorted(pts, key=lambda p: (p.budget is None, p.budget or 0))))
        for key, pts in groups.items()
    ]


def _narrow_log2_ticks(xs: Sequence[float], count: int = 5) -> list[float] | None:
    """Tick positions for a log-2 axis whose data hold fewer than two powers of two (where the
    default locator leaves the axis without labels): `count` values spread evenly in log space
    over the data, rounded to two significant digits; None when the default ticks do."""
    lo, hi = min(xs), max(xs)
    powers = [2.0**k for k in range(math.floor(math.log2(lo)), math.ceil(math.log2(hi)) + 1)]
    if sum(lo <= p <= hi for p in powers) >= 2:
        return None
    if hi == lo:
        return [lo]
    spread = [lo * (hi / lo) ** (i / (count - 1)) for i in range(count)]
    return sorted({float(f"{x:.2g}") for x in spread})


def _tick_label(x: float) -> str:
    return f"{x:,.0f}" if x >= 10 else f"{x:g}"


_Line = tuple[str, list[tuple[float, _Point]]]
"""A plotted line: its legend and its (x, point) pairs."""


def _lines(series: Sequence[_Series], pick: Any) -> list[_Line]:
    """Each series' points with a positive x (``pick(point)``), labelled with its sample size."""
    lines = []
    for s in series:
        pts = [(pick(p), p) for p in s.points]
        pts = [(x, p) for x, p in pts if x is not None and x > 0]
        if pts:
            lines.append((s.legend, pts))
    return lines


def _figure(lines: Sequence[_Line], xlabel: str, title: str) -> Any:
    """Accuracy (%) against x on a log-2 axis, one line per series, each point marked with its
    budget; x tick labels even when every x lies within one power of two."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator, ScalarFormatter

    fig = Figure(figsize=(7.0, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, pts in lines:
        ax.plot([x for x, _ in pts], [100 * p.accuracy for _, p in pts], marker="o", label=label)
        for x, p in pts:
            if p.budget is not None:
                ax.annotate(
                    f"@{p.budget}",
                    (x, 100 * p.accuracy),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                )
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    xs = [x for _, pts in lines for x, _ in pts]
    ticks = _narrow_log2_ticks(xs)
    if ticks is not None:  # within one power of two the default ticks have no labels
        lo, hi = min(*xs, *ticks), max(*xs, *ticks)
        ax.set_xlim(lo / 2**0.15, hi * 2**0.15)
        ax.set_xticks(ticks, labels=[_tick_label(t) for t in ticks])
        ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, title="n: problems, k: samples", title_fontsize=7)
    return fig


def _write_plots(
    series: Sequence[_Series], plot_dir: Path, title: str
) -> tuple[list[Path], str | None]:
    """Draw both plots; returns the files written and, when none, why."""
    try:
        import matplotlib  # noqa: F401  (a missing install fails here, with a clear name)
    except ImportError as exc:
        logger.warning(
            "plots skipped: matplotlib is not installed (%s); pip install matplotlib", exc
        )
        return [], "matplotlib is not installed"

    def draw(name: str, xlabel: str, pick: Any) -> Path | None:
        lines = _lines(series, pick)
        if not lines:
            logger.info("%s: nothing to plot (no positive x values)", name)
            return None
        fig = _figure(lines, xlabel, title)
        return replace_atomically(
            plot_dir / name, lambda tmp: fig.savefig(tmp, format="png", dpi=120)
        )

    written = [
        draw(
            PLOT_TOKENS, "generated tokens per problem (one search; log2 scale)", lambda p: p.tokens
        ),
        draw(PLOT_BUDGET, "budget (rollouts; log2 scale)", lambda p: p.budget),
    ]
    paths = [p for p in written if p is not None]
    return paths, None if paths else "nothing to plot"


# -- entry points -------------------------------------------------------------------------------


def write_report(out_dir: str | os.PathLike[str], *, max_wrong_trees: int = 20) -> dict[str, Any]:
    """Write ``report.json``, ``report.md``, the plots and the wrong answers' tree pages.

    Args:
        out_dir: An output directory of `berry eval`.
        max_wrong_trees: Tree viewer pages written per run, for the first wrong answers by index
            (``OUT/<run>/wrong/<tree file stem>.html``); missing tree files are counted, not fatal.

    Returns:
        The summary of `summarize_dir`, as written to ``report.json``: each run also has
        ``wrong_pages`` (counts) and its wrong answers a ``page`` path when one was written; the
        summary has ``plots`` (paths relative to `out_dir`).

    Raises:
        BerryError: See `summarize_dir`.
    """
    if max_wrong_trees < 0:
        raise ValueError(f"max_wrong_trees must be >= 0, got {max_wrong_trees}")
    out_dir = Path(out_dir)
    summary = summarize_dir(out_dir)
    for name, run in summary["runs"].items():
        run["wrong_pages"] = _write_wrong_pages(out_dir, name, run, max_wrong_trees)
    title = f"{summary.get('dataset') or '?'} · {summary.get('model') or '?'}"
    rows = [(None, run) for run in summary["runs"].values()]
    plots, skipped = _write_plots(_series(rows), out_dir / "plots", title)
    summary["plots"] = [p.relative_to(out_dir).as_posix() for p in plots]
    _write_text(out_dir / "report.md", _report_md(summary, skipped))
    _write_json(out_dir / "report.json", summary)
    logger.info("report of %d run(s) written to %s", len(summary["runs"]), out_dir / "report.md")
    return summary


def _labels(paths: Sequence[Path]) -> list[str]:
    """Directory names, lengthened with parent names (then numbered) until they are distinct."""
    resolved = [p.resolve() for p in paths]
    labels = [r.name or str(r) for r in resolved]
    for depth in range(2, max(len(r.parts) for r in resolved) + 1):
        dup = {label for label, n in Counter(labels).items() if n > 1}
        if not dup:
            break
        labels = [
            "/".join(r.parts[-depth:]) if label in dup else label
            for r, label in zip(resolved, labels, strict=True)
        ]
    counts = Counter(labels)
    seen: Counter[str] = Counter()
    out = []
    for label in labels:
        if counts[label] > 1:
            seen[label] += 1
            label = f"{label} ({seen[label]})"
        out.append(label)
    return out


def _directories_md(labels: Sequence[str], summaries: Sequence[Mapping[str, Any]]) -> list[str]:
    """The comparison's title, a line per directory, and a note when the datasets differ."""
    parts = [f"# Comparison of {len(summaries)} evaluation directories"]
    parts.append(
        "\n".join(
            f"- **{label}**: `{s['dir']}`: dataset {s.get('dataset') or '?'}, model "
            f"{s.get('model') or '?'}, {s.get('samples') or '?'} sample(s), seed "
            f"{s.get('seed') if s.get('seed') is not None else '?'}, {len(s['runs'])} run(s)"
            for label, s in zip(labels, summaries, strict=True)
        )
    )
    datasets = {s.get("dataset") for s in summaries}
    if len(datasets) > 1:
        parts.append(
            "**Note:** the directories evaluate different datasets "
            f"({', '.join(sorted(str(d) for d in datasets))}); their accuracies are not comparable."
        )
    return parts


def _write_comparison(
    out_path: Path,
    text: str,
    dirs: Sequence[tuple[str, Path, Mapping[str, Any]]],
    plots: Sequence[Path],
    warnings: Sequence[str],
) -> None:
    """Write the comparison's ``report.md`` and ``report.json`` (`dirs`: label, path, summary)."""
    _write_text(out_path / "report.md", text)
    _write_json(
        out_path / "report.json",
        {
            "schema": COMPARISON_SCHEMA,
            "version": REPORT_VERSION,
            "dirs": [{"label": label, "path": str(p), "summary": s} for label, p, s in dirs],
            "plots": [p.relative_to(out_path).as_posix() for p in plots],
            "warnings": list(warnings),
        },
    )
    logger.info("comparison written to %s", out_path / "report.md")


def compare_dirs(
    dirs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str] | None = None
) -> str:
    """Put several `berry eval` output directories side by side.

    Args:
        dirs: The output directories (each as read by `summarize_dir`; nothing is written there).
        out: When given, write ``out/report.md``, ``out/report.json`` and combined plots (one line
            per directory and method) under ``out/plots/``.

    Returns:
        The comparison in markdown: the directories, the accuracy table and the coverage/oracle
        table with a ``Dir`` column (the directory's name, lengthened when two are equal), and the
        plots when `out` is given.

    Raises:
        BerryError: No directory, a directory `summarize_dir` refuses, or `out` is one of `dirs`.
    """
    paths = [Path(d) for d in dirs]
    if not paths:
        raise BerryError("no directories to compare")
    summaries = [summarize_dir(p) for p in paths]
    labels = _labels(paths)
    out_path = Path(out) if out is not None else None
    if out_path is not None and out_path.resolve() in {p.resolve() for p in paths}:
        raise BerryError(
            f"--out {out_path} is one of the compared directories; its own report would be "
            "overwritten: choose another directory"
        )
    rows: list[_Row] = [
        (label, run)
        for label, s in zip(labels, summaries, strict=True)
        for run in s["runs"].values()
    ]
    parts = _directories_md(labels, summaries)
    parts.append(_tables(rows))
    warnings = [
        f"{label}: {w}" for label, s in zip(labels, summaries, strict=True) for w in s["warnings"]
    ]
    if out_path is not None:
        plots, skipped = _write_plots(_series(rows), out_path / "plots", "comparison")
        parts += _plots_md([p.relative_to(out_path).as_posix() for p in plots], skipped)
    if warnings:
        parts += ["## Warnings", "\n".join(f"- {w}" for w in warnings)]
    text = "\n\n".join(parts) + "\n"
    if out_path is not None:
        dir_list = list(zip(labels, paths, summaries, strict=True))
        _write_comparison(out_path, text, dir_list, plots, warnings)
    return text

"""`openberry.training.extract`: the solution trie and every kind of rows, on hand-built trees
whose expected rows are worked out by hand below."""

from __future__ import annotations

import json

import pytest

from extracttrees import (
    RIGHT,
    SLIP,
    WRONG_FIRST,
    WRONG_ORDER,
    Q,
    make_tree,
    sc_tree,
    step_tree,
)
from openberry.formats.openlongcot import string_to_tree
from openberry.formats.prompts import judge_prompt, solve_prompt
from openberry.jsonl import write_jsonl
from openberry.records import Problem
from openberry.search.common import answer_of_text
from openberry.search.scorers import step_value_prompts
from openberry.training.extract import (
    ExtractConfig,
    ExtractError,
    build_trie,
    extract,
    load_problems,
    plan_journey,
    tree_critiques,
    tree_solutions,
)
from openberry.training.sft import load_rows
from openberry.tree import Tree


def golden_problem():
    (p,) = _load([sc_tree(), step_tree()]).problems
    return p


def _load(trees, tmp_path=None):
    import tempfile
    from pathlib import Path

    d = Path(tmp_path or tempfile.mkdtemp())
    for k, t in enumerate(trees):
        t.save(d / f"run{k}" / "trees" / f"{k:06d}-s0.json")
    return load_problems([d])


# -- loading and the trie ---------------------------------------------------------------------


def test_tree_solutions_whole_answer_and_step_methods():
    sols = tree_solutions(sc_tree())
    assert [(s.text, s.correct) for s in sols] == [
        (RIGHT, True), (SLIP, False), (WRONG_FIRST, False), (RIGHT, True)
    ]  # fmt: skip
    sols = tree_solutions(step_tree())
    assert [(s.text, s.correct) for s in sols] == [(RIGHT, True), (WRONG_ORDER, False)]
    assert [m for m, _ in sols[0].steps] == ["expansion", "expansion", "conclusion"]


def test_mctsr_dummy_answer_is_not_a_solution():
    t = make_tree("mctsr", [(0, RIGHT, True, None), (0, "I don't know.", False, {"dummy": True})])
    assert [s.text for s in tree_solutions(t)] == [RIGHT]


def test_trie_counts_and_returns_hand_checked():
    p = golden_problem()
    trie = p.trie
    assert (trie.count, trie.correct) == (6, 3)  # 4 whole answers + 2 verified step leaves
    assert sorted(trie.children) == ["2 + 3 = 5", "3 * 4 = 11", "3 * 4 = 12"]
    twelve = trie.children["3 * 4 = 12"]
    assert (twelve.count, twelve.correct, twelve.value) == (4, 3, 0.75)
    assert twelve.children["2 + 12 = 14"].value == 1.0
    assert twelve.children["2 + 12 = 14"].count == 3
    assert twelve.children["2 + 12 = 15"].value == 0.0
    assert "2 + 12 = 16" not in twelve.children  # unfinished, unverified step
    assert trie.children["2 + 3 = 5"].count == 1


def test_build_trie_empty():
    assert build_trie([]).count == 0 and build_trie([]).value == 0.0


def test_unverified_trees_are_skipped(tmp_path):
    plain = make_tree("greedy", [(0, RIGHT, None, None)])
    loaded = _load([sc_tree(), plain], tmp_path)
    assert (loaded.trees, loaded.skipped, len(loaded.problems)) == (2, 1, 1)


def test_only_unverified_trees_is_an_error(tmp_path):
    with pytest.raises(ExtractError, match="has a verified node"):
        _load([make_tree("greedy", [(0, RIGHT, None, None)])], tmp_path)


def test_trees_of_one_problem_are_grouped(tmp_path):
    other = Problem(id="p/1", question="Compute 1 + 1.", source="arithmetic")
    t = make_tree("greedy", [(0, "1 + 1 = 2\nThe answer is \\boxed{2}.", True, None)], other)
    loaded = _load([sc_tree(), t, step_tree()], tmp_path)
    assert [(p.id, p.trees) for p in loaded.problems] == [("p/0", 2), ("p/1", 1)]


def test_missing_source_is_an_error(tmp_path):
    with pytest.raises(ExtractError, match="no such file"):
        load_problems([tmp_path / "nope"])


# -- best paths, values, pairs ----------------------------------------------------------------


def test_best_paths_are_distinct_correct_solutions():
    rows = extract("best-paths", [golden_problem()]).rows
    assert rows == [
        {"id": "p/0", "kind": "best-paths", "prompt": solve_prompt(Q), "completion": RIGHT + "\n"}
    ]


def test_values_hand_checked():
    rows = extract("values", [golden_problem()]).rows
    got = [(r["value"], r["count"]) for r in rows]
    # pre-order, children by line: "2 + 3 = 5" (3 steps), "3 * 4 = 11" (3), "3 * 4 = 12" ...
    assert got == [(0.0, 1)] * 6 + [(0.75, 4), (1.0, 3), (1.0, 3), (0.0, 1), (0.0, 1)]
    steps = [("expansion", "3 * 4 = 12"), ("expansion", "2 + 12 = 14")]
    assert rows[7]["prompt"] == step_value_prompts(Q, steps)[-1]
    assert rows[7]["prompt"].endswith("2 + 12 = 14<end_of_thought><start_of_rating>")
    assert all(r["kind"] == "value" and r["id"] == "p/0" for r in rows)
    few = extract("values", [golden_problem()], ExtractConfig(min_count=2)).rows
    assert [(r["value"], r["count"]) for r in few] == [(0.75, 4), (1.0, 3), (1.0, 3)]


def test_pairs_hand_checked_both_orders():
    rows = extract("pairs", [golden_problem()]).rows
    assert len(rows) == 12
    by_pair: dict[str, list[dict]] = {}
    for r in rows:
        by_pair.setdefault(r["pair"], []).append(r)
    assert list(by_pair) == [f"p/0:{k}" for k in range(6)]
    got = [(rs[0]["kind"], rs[0]["solution_a"], rs[0]["solution_b"]) for rs in by_pair.values()]
    assert got == [
        ("outcome", RIGHT, WRONG_ORDER),
        ("outcome", RIGHT, WRONG_FIRST),
        ("outcome", RIGHT, SLIP),
        ("step", "3 * 4 = 12", "2 + 3 = 5"),
        ("step", "3 * 4 = 12", "3 * 4 = 11"),
        ("step", "3 * 4 = 12\n2 + 12 = 14", "3 * 4 = 12\n2 + 12 = 15"),
    ]
    for first, second in by_pair.values():
        assert (first["label"], first["chosen"], first["rejected"]) == (1, "Yes", "No")
        assert (second["label"], second["chosen"], second["rejected"]) == (0, "No", "Yes")
        assert second["completion"] == "No" and first["completion"] == "Yes"
        assert (second["solution_a"], second["solution_b"]) == (
            first["solution_b"], first["solution_a"]
        )  # fmt: skip
        assert first["prompt"] == judge_prompt(Q, first["solution_a"], first["solution_b"])
        assert first["question"] == Q
    step = by_pair["p/0:3"]
    assert (step[0]["value_a"], step[0]["value_b"]) == (0.75, 0.0)
    assert (step[1]["value_a"], step[1]["value_b"]) == (0.0, 0.75)


def test_pair_kinds_gap_and_support():
    p = golden_problem()
    outcome = extract("pairs", [p], ExtractConfig(pair_kinds=("outcome",)))
    assert {r["kind"] for r in outcome.rows} == {"outcome"}
    assert outcome.counts == {"problems": 1, "outcome pairs": 3}
    strict = extract("pairs", [p], ExtractConfig(pair_kinds=("step",), value_gap=0.8))
    assert strict.counts["step pairs"] == 1  # only 1.0 vs 0.0 under "3 * 4 = 12"
    supported = extract("pairs", [p], ExtractConfig(pair_kinds=("step",), min_count=2))
    assert "step pairs" not in supported.counts


def test_pairs_are_sampled_deterministically_at_a_seed():
    p = golden_problem()
    cfg = ExtractConfig(max_pairs_per_problem=2, seed=3)
    a, b = extract("pairs", [p], cfg).rows, extract("pairs", [p], cfg).rows
    assert a == b and len(a) == 8
    pairs = {(r["solution_a"], r["solution_b"]) for r in a if r["label"] == 1}
    assert len(pairs) == 4  # without replacement


def test_bad_config_is_refused():
    with pytest.raises(ExtractError):
        ExtractConfig(pair_kinds=("nope",))
    with pytest.raises(ExtractError, match="unknown field"):
        ExtractConfig(reflection="Wait, {where} is wrong.")
    with pytest.raises(ExtractError, match="states no answer"):
        ExtractConfig(reflection="So the answer is 3.")
    with pytest.raises(ExtractError, match="unknown kind"):
        extract("nope", [])


# -- journey and shortcut ---------------------------------------------------------------------

O1 = {"journey_k": 2, "detour_steps": 2, "detour_rate": 1.0, "mask_wrong_steps": False}
"""Journeys as O1-Journey writes them: every place a detour, trained on whole."""


def test_journey_and_shortcut_golden_step_tree():
    p = golden_problem()
    journey = extract("journey", [p], ExtractConfig(**O1)).rows
    shortcut = extract("shortcut", [p]).rows
    # Detours at both places: before step 1 one of the two wrong first steps ("2 + 3 = 5" at
    # seed 0) followed by its one non-answer child; before step 2 "2 + 12 = 15", whose only
    # child is an answer line, so the detour stops there.
    assert journey == [{
        "id": "p/0", "kind": "journey", "prompt": solve_prompt(Q), "detours": 2,
        "completion": (
            "2 + 3 = 5\n5 * 4 = 20\nStep 1 is wrong.\n"
            "3 * 4 = 12\n2 + 12 = 15\nStep 2 is wrong.\n"
            "2 + 12 = 14\nThe answer is \\boxed{14}.\n"
        ),
    }]  # fmt: skip
    assert shortcut == [
        {"id": "p/0", "kind": "shortcut", "prompt": solve_prompt(Q), "completion": RIGHT + "\n"}
    ]


def test_masked_journey_spans_cover_exactly_the_wrong_steps():
    p = golden_problem()
    (row,) = extract("journey", [p], ExtractConfig(**{**O1, "mask_wrong_steps": True})).rows
    (plain,) = extract("journey", [p], ExtractConfig(**O1)).rows
    assert row["completion"] == plain["completion"]
    spans = row["ignore_spans"]
    assert [row["completion"][a:b] for a, b in spans] == [
        "2 + 3 = 5\n",
        "5 * 4 = 20\n",
        "2 + 12 = 15\n",
    ]
    assert "ignore_spans" not in plain
    (doc,) = extract("journey", [p], ExtractConfig(format="openlongcot", detour_rate=1.0)).rows
    assert "ignore_spans" not in doc and doc["detours"] == 1


def test_default_journey_one_masked_one_step_detour_or_none():
    p = golden_problem()
    kinds = set()
    for seed in range(12):
        (row,) = extract("journey", [p], ExtractConfig(seed=seed)).rows
        kinds.add(row["detours"])
        if row["detours"]:
            (a, b), *more = row["ignore_spans"]
            lines = row["completion"].splitlines()
            wrong = row["completion"][a:b]
            assert not more and wrong.endswith("\n") and lines.index(wrong[:-1]) + 1 < len(lines)
            assert lines[lines.index(wrong[:-1]) + 1].endswith("is wrong.")
    assert kinds == {0, 1}


def test_detour_rate_leaves_some_journeys_without_a_detour():
    p = golden_problem()
    counts = set()
    for seed in range(20):
        cfg = ExtractConfig(**{**O1, "seed": seed, "detour_rate": 0.5})
        plan = plan_journey(p, cfg)
        assert plan is not None
        counts.add(len(plan.detours))
        (row,) = extract("journey", [p], cfg).rows
        if not plan.detours:
            assert row["completion"] == extract("shortcut", [p], cfg).rows[0]["completion"]
    assert counts == {0, 1, 2}
    out = extract("journey", [p], ExtractConfig(seed=0, detour_rate=0.01))
    assert out.rows[0]["detours"] == 0 and out.counts["journeys without a detour"] == 1
    for bad in (0.0, 1.5):
        with pytest.raises(ExtractError, match="detour_rate"):
            ExtractConfig(detour_rate=bad)


def test_journey_k_and_detour_steps_limit():
    p = golden_problem()
    plan = plan_journey(p, ExtractConfig(journey_k=1, detour_steps=1, detour_rate=1.0))
    assert plan is not None and len(plan.detours) == 1
    assert len(plan.detours[0].steps) == 1


@pytest.mark.parametrize("seed", range(12))
def test_no_answer_line_inside_a_detour(seed):
    p = golden_problem()
    plan = plan_journey(p, ExtractConfig(**{**O1, "seed": seed, "detour_steps": 5}))
    assert plan is not None
    for role, (meta, line) in plan.steps():
        if role in ("wrong", "reflection"):
            assert meta != "conclusion" and answer_of_text(line) is None, (role, line)
    lines = plan.lines()
    assert [answer_of_text(x) for x in lines].count(None) == len(lines) - 1
    assert answer_of_text(lines[-1]) == "14"
    for d in plan.detours:  # every detour step lies on wrong solutions only
        node = p.trie
        for _, line in plan.path[: d.at]:
            node = node.children[line]
        for _, line in d.steps:
            node = node.children[line]
            assert node.correct == 0


def test_journey_deterministic_at_a_seed_and_shortcut_matches():
    p = golden_problem()
    for seed in range(5):
        cfg = ExtractConfig(**{**O1, "seed": seed})
        assert extract("journey", [p], cfg).rows == extract("journey", [p], cfg).rows
        plan = plan_journey(p, cfg)
        assert extract("shortcut", [p], cfg).rows[0]["completion"] == (
            "\n".join(s[1] for s in plan.path) + "\n"
        )


def test_no_journey_without_a_wrong_branch():
    (p,) = _load([make_tree("self-consistency", [(0, RIGHT, True, None)])]).problems
    out = extract("journey", [p])
    assert out.rows == [] and out.counts["problems without a journey"] == 1
    assert extract("shortcut", [p]).rows == []


def critique_tree(critique: str) -> Tree:
    """MCTSr: a slipped answer, rewritten from its critique into the right one."""
    return make_tree(
        "mctsr",
        [(0, SLIP, False, None), (1, RIGHT, True, {"critique": critique})],
    )


def test_journey_uses_the_trees_own_critique():
    (p,) = _load([critique_tree("Step 2 is wrong: 2 + 12 = 14, not 15.")]).problems
    assert tree_critiques(critique_tree("Step 2 is wrong.")) == [
        (tuple(SLIP.splitlines()), "Step 2 is wrong.")
    ]
    out = extract("journey", [p], ExtractConfig(**O1))
    assert out.rows[0]["completion"] == (
        "3 * 4 = 12\n2 + 12 = 15\nStep 2 is wrong: 2 + 12 = 14, not 15.\n"
        "2 + 12 = 14\nThe answer is \\boxed{14}.\n"
    )
    assert out.counts["critique reflections"] == 1


@pytest.mark.parametrize(
    "critique",
    [
        "Step 3 is wrong: it says 15.",
        "Step 1 is wrong.",  # names a step on the correct prefix, not the detour's first
        "All steps are correct.",
        "The answer is 14.",
    ],
)
def test_critique_that_does_not_fit_the_detour_gives_the_template(critique):
    (p,) = _load([critique_tree(critique)]).problems
    cfg = ExtractConfig(**O1, reflection="Hmm, line {step} ({line}) is off.")
    assert extract("journey", [p], cfg).rows[0]["completion"] == (
        "3 * 4 = 12\n2 + 12 = 15\nHmm, line 2 (2 + 12 = 15) is off.\n"
        "2 + 12 = 14\nThe answer is \\boxed{14}.\n"
    )
    no_crit = ExtractConfig(**O1, use_critiques=False)
    assert "Step 2 is wrong." in extract("journey", [p], no_crit).rows[0]["completion"]


def test_journey_as_openlongcot_document():
    (p,) = _load([critique_tree("Step 2 is wrong: 2 + 12 = 14, not 15.")]).problems
    (row,) = extract("journey", [p], ExtractConfig(**O1, format="openlongcot")).rows
    assert set(row) == {"id", "kind", "text", "detours"}
    tree = string_to_tree(row["text"])
    got = [(n.parent, n.meta_action, n.text, n.rating) for n in tree.nodes]
    assert got == [
        (None, "problem", Q, "positive"),
        (0, "expansion", "3 * 4 = 12", "positive"),
        (1, "expansion", "2 + 12 = 15", "negative"),
        (2, "critic", "Step 2 is wrong: 2 + 12 = 14, not 15.", "positive"),
        (3, "refine", "2 + 12 = 14", "positive"),
        (4, "conclusion", "The answer is \\boxed{14}.", "positive"),
    ]


def test_openlongcot_kind_writes_the_trie():
    (row,) = extract("openlongcot", [golden_problem()]).rows
    tree = string_to_tree(row["text"])
    assert len(tree) == 1 + 11  # the root and the 11 trie steps
    twelve = next(n for n in tree.nodes if n.text == "3 * 4 = 12")
    assert twelve.rating == "positive"  # return 0.75
    assert next(n for n in tree.nodes if n.text == "3 * 4 = 11").rating == "negative"
    assert tree.nodes[-1].meta_action == "conclusion"


def test_rows_are_readable_by_sft_load_rows(tmp_path):
    p = golden_problem()
    for kind, form in [("best-paths", "pair"), ("journey", "pair"), ("shortcut", "pair"),
                       ("pairs", "pair"), ("openlongcot", "text")]:  # fmt: skip
        path = tmp_path / f"{kind}.jsonl"
        write_jsonl(path, extract(kind, [p]).rows)
        rows = load_rows([str(path)])
        assert rows and all((r.text is None) == (form == "pair") for r in rows)
    path = tmp_path / "journey-olc.jsonl"
    write_jsonl(path, extract("journey", [p], ExtractConfig(format="openlongcot")).rows)
    assert all(r.text for r in load_rows([str(path)]))
    assert json.loads(path.read_text().splitlines()[0])["kind"] == "journey"


def test_critique_with_a_format_tag_is_written_without_it():
    (p,) = _load([critique_tree("Step 2 is wrong.<end_of_thought><positive_rating>")]).problems
    (row,) = extract("journey", [p], ExtractConfig(**O1, format="openlongcot")).rows
    assert [n.text for n in string_to_tree(row["text"]).nodes][3] == "Step 2 is wrong."


def test_pairs_in_the_step_judge_frame():
    from openberry.search.scorers import step_judge_prompt

    rows = extract("pairs", [golden_problem()], ExtractConfig(judge_frame="step")).rows
    plain = extract("pairs", [golden_problem()]).rows
    assert [r["solution_a"] for r in rows] == [r["solution_a"] for r in plain]
    for r in rows:
        assert r["frame"] == "step"
        assert r["prompt"] == step_judge_prompt(Q, r["solution_a"], r["solution_b"])
    with pytest.raises(ExtractError, match="judge_frame"):
        ExtractConfig(judge_frame="nope")

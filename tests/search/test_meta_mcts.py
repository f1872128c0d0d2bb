"""LLaMA-O1 meta-action MCTS: closed forms, a golden tree, and one regression test per bug of
the original code (B1-B17, docs/search.md) that applies to search."""

from __future__ import annotations

import math
import random

import pytest
from golden import check_golden

from openberry.data.arithmetic import load_split
from openberry.formats.openlongcot import RATING_TOKENS, parse_nodes
from openberry.models.base import SamplingParams
from openberry.models.fake import FakePolicy
from openberry.records import Generation, Problem
from openberry.search import make_search, run_search
from openberry.search.common import TreeBuilder
from openberry.search.engine import Generate, NextTokenProbs, SearchError
from openberry.search.meta_mcts import (
    ALLOWED_TRANSITIONS,
    MetaMCTSConfig,
    backup,
    choose_conclusion,
    clean_thought,
    closed,
    expansion_meta,
    init_state,
    meta_mcts,
    puct_scores,
    rectify,
    rule_metas,
    sample_metas,
    simulate,
    thought_params,
    transition_matrix,
)
from search.policies import ArithmeticExpert, RecordingPolicy

EXAMPLES = load_split("test", limit=3)
PROBLEM = EXAMPLES[0].problem

ORIGINAL = {
    "meta_policy": "transitions",
    "num_candidates": 2,
    "max_children": 4,
    "temperature": 1.0,
    "node_value": "rating",
    "answer_selection": "vote",
    "alpha": 1.0,
}
"""The original online trainer's settings, with the answer rule that was the default before the
expansion mode (the trainer chooses no answer)."""


def original(**fields) -> MetaMCTSConfig:
    """The original trainer's settings, with `fields` changed."""
    return MetaMCTSConfig(**{**ORIGINAL, **fields})


def test_puct_closed_form() -> None:
    s = puct_scores([0.5, 0.2], [0.25, 0.75], [3, 1], [0.0, 0.0], c_puct=1.4, varentropy_lambda=0.1)
    assert s[0] == pytest.approx(0.5 + 1.4 * 0.25 * 2 / 4 + 0.1 * 0.5)
    assert s[1] == pytest.approx(0.2 + 1.4 * 0.75 * 2 / 2 + 0.1 * 0.5)
    ve = puct_scores([0, 0], [0, 0], [0, 0], [0.0, math.log(3)], varentropy_lambda=1.0)
    assert ve == pytest.approx([0.25, 0.75])


def test_transition_matrix_is_a_masked_row_softmax_of_summed_values() -> None:
    t = transition_matrix([("expansion", "expansion", 0.9), ("expansion", "conclusion", 0.2)])
    row = t["expansion"]
    e = [math.exp(0.9), math.exp(0.2), math.exp(0.0)]
    assert row["expansion"] == pytest.approx(e[0] / sum(e))
    assert row["critic"] == pytest.approx(e[2] / sum(e)) and row["refine"] == 0.0
    assert t["problem"] == {m: float(m == "expansion") for m in t["problem"]}
    unmasked = transition_matrix([], mask=False)
    assert all(v == pytest.approx(0.2) for v in unmasked["critic"].values())
    assert set(sample_metas(t["critic"], 5, random.Random(0))) == set(ALLOWED_TRANSITIONS["critic"])


def test_rule_table_order() -> None:
    rng = random.Random(0)
    assert rule_metas("conclusion", "x", 0.9, False, 2, rng) == ["critic", "critic"]
    assert rule_metas("critic", "x", 0.9, False, 1, rng) == ["refine"]
    assert rule_metas("expansion", "the answer", 1.0, False, 1, rng) == ["conclusion"]
    assert rule_metas("expansion", "the answer", 1.0, True, 1, rng) == ["critic"]
    assert rule_metas("problem", "x", 0.5, False, 1, rng) == ["expansion"]
    assert rule_metas("refine", "x", 0.5, False, 1, rng) == ["expansion"]


def test_rectify_closed_form() -> None:
    parents = [None, 0, 1, 1]
    true, count = rectify(parents, [(2, True), (3, False)], gamma=0.5, failure=0.0)
    assert true[2] == 1.0 and true[3] == 0.0
    assert true[1] == pytest.approx((0.5 + 0.0) / 2) and count[1] == 2
    assert true[0] == pytest.approx((0.25 + 0.0) / 2)


def test_choose_conclusion_closed_form() -> None:
    answers, values = ["7", "9", " 9 ", "7"], [0.9, 0.6, 0.5, 0.1]
    assert choose_conclusion(answers, values, "value") == 0
    # vote: "9" and " 9 " are one answer (1.1) against 7 (1.0); its best-valued conclusion wins
    assert choose_conclusion(answers, values, "vote") == 1
    # equal mass: the answer more conclusions state
    assert choose_conclusion(["1", "2", "2"], [0.5, 0.25, 0.25], "vote") == 1
    assert choose_conclusion(["1", "1"], [0.3, 0.3], "vote") == 0  # then the earlier one
    with pytest.raises(ValueError):
        choose_conclusion(["1"], [0.3], "best")


def test_answer_selection_visits_is_the_default_and_recorded() -> None:
    assert MetaMCTSConfig().answer_selection == "visits"
    for rule in ("vote", "value", "visits"):
        over = {"simulations": "4", "meta_policy": "model", "answer_selection": rule}
        (r,) = run_search(make_search("meta-mcts", overrides=over), [PROBLEM], ArithmeticExpert())
        tree = r.tree
        assert tree.info["config"]["answer_selection"] == rule
        assert tree.nodes[tree.chosen[-1]].meta_action == "conclusion"


def test_backup_discounts_once_per_level_and_keeps_a_running_mean() -> None:
    tree = TreeBuilder(PROBLEM, "meta-mcts")
    a = tree.add(0, "a")
    b = tree.add(a.id, "b")
    path = [tree.root, a, b]
    backup(path, 1.0, 0.5)
    assert [n.visits for n in path] == [1, 1, 1]
    assert (b.value, a.value, tree.root.value) == (0.5, 0.25, 0.125)
    backup(path, 0.0, 0.5)
    assert (b.value, a.value, tree.root.value) == (0.25, 0.125, 0.0625)


def test_simulate_asks_the_policy_head_then_the_value_head() -> None:
    """One simulation is two requests: one Generate for every candidate, one NextTokenProbs for
    every new child; the leaf value goes back up the selected path."""
    state = init_state(PROBLEM, random.Random(0), original(meta_policy="model"))
    sim = simulate(state, thought_params(state.config, 1.0))
    request = next(sim)
    assert isinstance(request, Generate) and len(request.prompts) == 2
    texts = ["<expansion>2 + 3 = 5", "<conclusion>The answer is \\boxed{5}."]
    request = sim.send([[Generation(text=t, logprobs=(-0.1,), num_tokens=1)] for t in texts])
    assert isinstance(request, NextTokenProbs) and len(request.prompts) == 2
    pos, neg = RATING_TOKENS["positive"], RATING_TOKENS["negative"]
    with pytest.raises(StopIteration) as stop:
        sim.send([{pos: 0.8, neg: 0.2}, {pos: 0.4, neg: 0.6}])
    new = stop.value.value
    assert [c.meta_action for c in new] == ["expansion", "conclusion"] and new[1].answer == "5"
    assert [c.value for c in new] == pytest.approx([0.8, 0.4])
    assert [c.prior for c in new] == [0.5, 0.5]
    root = state.tree.root
    assert root.visits == 1 and root.value == pytest.approx(0.9 * 0.8)  # best child, discounted


def test_alpha_mixes_each_rating_with_the_thought_confidence() -> None:
    """``alpha`` < 1: a new thought's value is rating ** alpha * p ** (1 - alpha), p its
    per-token probability; the recorded rating stays the value head's."""
    state = init_state(PROBLEM, random.Random(0), original(meta_policy="model", alpha=0.5))
    sim = simulate(state, thought_params(state.config, 1.0))
    next(sim)
    texts = ["<expansion>2 + 3 = 5", "<conclusion>The answer is \\boxed{5}."]
    sim.send([[Generation(text=t, logprobs=(-0.1, -0.3), num_tokens=2)] for t in texts])
    pos, neg = RATING_TOKENS["positive"], RATING_TOKENS["negative"]
    with pytest.raises(StopIteration) as stop:
        sim.send([{pos: 0.8, neg: 0.2}, {pos: 0.4, neg: 0.6}])
    new = stop.value.value
    p = math.exp(-0.2)
    assert [c.value for c in new] == pytest.approx([0.8**0.5 * p**0.5, 0.4**0.5 * p**0.5])
    assert [c.info["original_value"] for c in new] == pytest.approx([0.8, 0.4])
    with pytest.raises(SearchError, match="alpha must be in"):
        original(alpha=2.0)


def test_meta_mcts_golden_tree() -> None:
    """The original online trainer's transition rule, pinned by its settings."""
    search = make_search("meta-mcts", rollouts=2, overrides=ORIGINAL)
    (r,) = run_search(search, [PROBLEM], ArithmeticExpert())
    check_golden("meta_mcts", r.tree)


def test_meta_mcts_expansion_golden_tree() -> None:
    """The default settings: the expansion mode."""
    (r,) = run_search(make_search("meta-mcts", rollouts=2), [PROBLEM], ArithmeticExpert())
    check_golden("meta_mcts_expansion", r.tree)


def test_model_chosen_metas_solve_with_the_expert() -> None:
    search = make_search("meta-mcts", rollouts=2, overrides={"meta_policy": "model"})
    results = run_search(search, [e.problem for e in EXAMPLES], ArithmeticExpert())
    assert [r.answer for r in results] == [e.answer for e in EXAMPLES]
    for r in results:
        assert r.tree.nodes[r.tree.chosen[-1]].meta_action == "conclusion"


def _tree(policy, config=None, problem=PROBLEM, verifier=None):
    config = config or original(simulations=4, meta_policy="model")
    search = lambda p, rng: meta_mcts(p, rng, config, verifier)  # noqa: E731
    (r,) = run_search(search, [problem], policy)
    return r.tree


def test_b3_node_ids_are_unique_creation_order() -> None:
    tree = _tree(ArithmeticExpert())
    assert [n.id for n in tree.nodes] == list(range(len(tree)))
    # Every OpenLongCoT prompt names the new node with a fresh id (never a sibling's).
    policy = ArithmeticExpert()
    _tree(policy)
    for prompt in policy.prompts:
        if prompt.startswith("<start_of_father_id>"):
            ids = [n.local_id for n in parse_nodes(prompt.rsplit("\n", 1)[0])]
            assert len(ids) == len(set(ids))


def test_b4_root_is_the_problem_text_and_no_answer() -> None:
    policy = ArithmeticExpert()
    tree = _tree(policy)
    assert tree.root.text == PROBLEM.question and tree.root.meta_action == "problem"
    assert all(f"<problem>{PROBLEM.question}<end_of_thought>" in p for p in policy.prompts)


def test_b6_each_child_keeps_its_own_prior_and_statistics() -> None:
    tree = _tree(FakePolicy(seed=2), original(simulations=1, meta_policy="model"))
    kids = [tree.nodes[k] for k in tree.root.children]
    assert len(kids) == 2
    assert kids[0].info["seq_prob"] != kids[1].info["seq_prob"]
    assert kids[0].info["varentropy"] != kids[1].info["varentropy"]


def test_b7_prior_comes_from_the_generated_tokens_logprobs() -> None:
    policy = FakePolicy(seed=4)
    tree = _tree(policy, original(simulations=1, meta_policy="transitions", temperature=1.0))
    from openberry.formats.openlongcot import node_header, node_line

    prompt_root = node_line(-1, 0, "problem", PROBLEM.question, "positive") + "\n"
    for k in tree.root.children:
        node = tree.nodes[k]
        prompt = prompt_root + node_header(0, k, node.meta_action)
        (lps,) = policy.score([prompt], [node.text])
        # Generated text may end at a stop string; its own tokens' mean log p gives seq_prob.
        if node.info["finish_reason"] != "stop" or not node.text:
            continue
        assert node.info["seq_prob"] == pytest.approx(math.exp(sum(lps) / len(lps)), rel=0.2)


def test_b9_value_is_read_at_the_position_that_predicts_the_rating() -> None:
    class Probe(ArithmeticExpert):
        def prob(self, prompt, candidates):
            assert prompt.endswith("<end_of_thought><start_of_rating>"), prompt[-60:]
            return super().prob(prompt, candidates)

    tree = _tree(Probe())
    values = [n.info.get("original_value") for n in tree.nodes[1:]]
    assert set(values) <= {0.95, 0.05}


def test_b11_values_are_probabilities_and_zero_is_a_value() -> None:
    true, count = rectify([None, 0], [(1, False)], gamma=0.9, failure=0.0)
    assert true == [0.0, 0.0] and count == [1, 1]  # 0.0 stays 0.0, not "unset"
    tree = _tree(ArithmeticExpert())
    assert all(0.0 <= n.value <= 1.0 for n in tree.nodes if n.value is not None)


def test_b14_verifier_is_called_on_conclusions_only() -> None:
    seen: list[str] = []

    def verifier(answer: str) -> bool:
        seen.append(answer)
        return answer == EXAMPLES[0].answer

    tree = _tree(
        ArithmeticExpert(), original(simulations=8, meta_policy="model"), verifier=verifier
    )
    assert seen and all(a == EXAMPLES[0].answer for a in seen)
    labelled = [n for n in tree.nodes if "leaf_type" in n.info]
    assert labelled and all(n.meta_action == "conclusion" for n in labelled)
    assert all("true_value" in tree.nodes[i].info for i in tree.path(labelled[0].id))


def test_patience_stop_only_with_a_verifier() -> None:
    cfg = original(simulations=12, meta_policy="model", patience=1)
    with_v = _tree(ArithmeticExpert(), cfg, verifier=lambda a: True)
    without = _tree(ArithmeticExpert(), cfg)
    assert len(with_v) < len(without)
    assert with_v.info["verifier"] and not without.info["verifier"]


def test_b15_no_hint_and_no_answer_in_prompts() -> None:
    policy = ArithmeticExpert()
    _tree(policy)
    assert not any(
        "<hint>" in p or EXAMPLES[0].answer in p.split("<problem>")[0] for p in policy.prompts
    )


def test_b16_generated_text_is_cut_only_at_a_stop_string() -> None:
    assert clean_thought("12 + 3 = 15") == "12 + 3 = 15"  # no end tag: nothing lost
    assert clean_thought("<expansion>12 + 3 = 15") == "12 + 3 = 15"

    class NoEnd(RecordingPolicy):
        def respond(self, prompt, index, params):
            return "12 + 3 = 15"

        def prob(self, prompt, candidates):
            return {c: 0.5 for c in candidates}

    tree = _tree(NoEnd(), MetaMCTSConfig(simulations=1, finish_steps=0))
    assert all(tree.nodes[k].text == "12 + 3 = 15" for k in tree.root.children)


def test_b16_conclusion_is_its_own_meta_action() -> None:
    policy = ArithmeticExpert()
    _tree(policy)
    concl = [p for p in policy.prompts if p.endswith("<conclusion>")]
    critic = [p for p in policy.prompts if p.endswith("<critic>")]
    assert not any(p in critic for p in concl)


def test_b17_prior_is_normalised_probabilities_not_their_softmax() -> None:
    tree = _tree(FakePolicy(seed=5), original(simulations=1, meta_policy="model"))
    kids = [tree.nodes[k] for k in tree.root.children]
    probs = [k.info["seq_prob"] for k in kids]
    for k in kids:
        assert k.prior == pytest.approx(k.info["seq_prob"] / sum(probs))


def test_value_head_reads_positive_against_negative_only() -> None:
    class Skewed(ArithmeticExpert):
        def prob(self, prompt, candidates):
            pos, neg = RATING_TOKENS["positive"], RATING_TOKENS["negative"]
            return {pos: 0.03, neg: 0.01}  # most mass elsewhere: the two-way share is 0.75

    tree = _tree(Skewed(), original(simulations=1, meta_policy="model"))
    assert tree.nodes[1].info["original_value"] == pytest.approx(0.75)


def test_token_stats_are_requested_from_the_backend() -> None:
    seen: list[SamplingParams] = []

    class Spy(ArithmeticExpert):
        def generate(self, prompts, params):
            seen.append(params)
            return super().generate(prompts, params)

    _tree(Spy())
    assert seen and all(p.token_stats for p in seen)
    assert Problem  # the search takes a Problem


def test_merged_twin_keeps_later_nodes_at_the_local_ids_they_were_written_under() -> None:
    """Regression: a merged twin adds no node, so the nodes after it got tree ids one below the
    header ids they were generated under, and were rated and shown under ids the model never
    saw (the value prompt did not extend the policy prompt)."""

    class Twins(RecordingPolicy):
        def __init__(self) -> None:
            super().__init__()
            self.written: list[str] = []  # policy prompt + thought, in generation order

        def respond(self, prompt, index, params):
            # The second expansion's first candidate repeats the first child.
            k = len(self.written)
            text = "<expansion>" + {0: "same", 1: "other", 2: "same"}.get(k, f"step {k}")
            self.written.append(prompt + text)
            return text + "<end_of_thought>"

        def prob(self, prompt, candidates):
            return {c: 0.5 for c in candidates}

    policy = Twins()
    tree = _tree(policy, original(simulations=3, meta_policy="model", finish_steps=0))
    merged = [n for n in tree.nodes if n.info.get("duplicates")]
    assert merged, "the second expansion's first candidate should have been merged"
    rated = [p for p in policy.prompts if p.endswith("<start_of_rating>")]
    written = {w + "<end_of_thought><start_of_rating>" for w in policy.written}
    assert rated and all(p in written for p in rated)
    local = [n.info.get("local_id", n.id) for n in tree.nodes]
    assert any(lid != n.id for lid, n in zip(local, tree.nodes, strict=True))
    # Local ids stay unique, and as small as the tree: the twin's id went to a later node.
    assert len(set(local)) == len(local) and max(local) == len(tree) - 1
    # Later prompts show every node under its local id.
    for prompt in policy.prompts:
        nodes = parse_nodes(prompt.rsplit("\n", 1)[0]) if "\n" in prompt else []
        ids = [n.local_id for n in nodes]
        assert len(ids) == len(set(ids))


# The expansion mode (the default).


def test_expansion_mode_is_the_default() -> None:
    cfg = MetaMCTSConfig()
    assert (cfg.meta_policy, cfg.critique, cfg.node_value) == ("expansion", "none", "path")


def test_expansion_meta_closed_form() -> None:
    none, model = MetaMCTSConfig(), MetaMCTSConfig(critique="model")
    assert expansion_meta(none, "expansion", "12 + 3 = 15") == "expansion"
    # A thought that states an answer is the conclusion, whatever its tag.
    assert expansion_meta(none, "expansion", "so \\boxed{15}") == "conclusion"
    assert expansion_meta(none, "conclusion", "done") == "conclusion"
    assert expansion_meta(none, "critic", "Step 1 is wrong.") is None
    assert expansion_meta(none, "refine", "12 + 3 = 15") is None
    assert expansion_meta(none, "problem", "Compute 1 + 1.") is None
    assert expansion_meta(model, "critic", "the answer is wrong") == "critic"
    assert expansion_meta(model, "refine", "12 + 3 = 15") == "refine"
    assert expansion_meta(model, "refine", "The answer is \\boxed{15}.") == "conclusion"
    assert expansion_meta(model, "problem", "x") is None


def test_expansion_mode_samples_the_siblings_in_one_call() -> None:
    """One prompt asks for ``num_candidates`` thoughts (``n``); the model writes each tag; the
    siblings share the header's local id; a thought with an answer is a terminal conclusion."""
    state = init_state(PROBLEM, random.Random(0), MetaMCTSConfig(num_candidates=3))
    sim = simulate(state, thought_params(state.config, 1.0, 3))
    request = next(sim)
    assert isinstance(request, Generate) and len(request.prompts) == 1
    assert request.params.n == 3 and request.prompts[0].endswith("<start_of_thought>")
    texts = ["<expansion>2 + 3 = 5", "<critic>Step 1 is wrong.", "2 + 3 = 5 \\boxed{5}"]
    lps = [(-0.1,), (-0.5,), (-1.0,)]
    request = sim.send(
        [[Generation(text=t, logprobs=lp, num_tokens=1) for t, lp in zip(texts, lps, strict=True)]]
    )
    assert isinstance(request, NextTokenProbs) and len(request.prompts) == 2
    assert all("<start_of_local_id>1<end_of_local_id>" in p for p in request.prompts)
    pos, neg = RATING_TOKENS["positive"], RATING_TOKENS["negative"]
    with pytest.raises(StopIteration) as stop:
        sim.send([{pos: 0.8, neg: 0.2}, {pos: 0.4, neg: 0.6}])
    new = stop.value.value
    assert [c.meta_action for c in new] == ["expansion", "conclusion"]
    assert new[1].terminal and new[1].answer == "5" and closed(state.config, new[1])
    assert state.tree.root.info == {"expansions": 3, "dropped": 1}
    e = [math.exp(-0.1), math.exp(-1.0)]
    assert [c.prior for c in new] == pytest.approx([e[0] / sum(e), e[1] / sum(e)])
    assert [c.info.get("local_id", c.id) for c in new] == [1, 1]


def test_expansion_mode_revisits_a_terminal_conclusion_without_a_model_call() -> None:
    cfg = MetaMCTSConfig(num_candidates=1, max_children=1)
    state = init_state(PROBLEM, random.Random(0), cfg)
    concl = state.tree.add(0, "The answer is \\boxed{5}.", meta_action="conclusion")
    concl.terminal, concl.answer, concl.prior = True, "5", 1.0
    concl.value = concl.info["original_value"] = 0.5
    state.tree.root.info["expansions"] = 1
    sim = simulate(state, thought_params(cfg, 1.0))
    with pytest.raises(StopIteration) as stop:
        next(sim)
    assert stop.value.value == []
    assert concl.visits == 1 and concl.value == pytest.approx(0.9 * 0.5)
    # With critique=conclusions the model may go on after a conclusion.
    assert not closed(MetaMCTSConfig(critique="conclusions"), concl)
    assert not closed(MetaMCTSConfig(meta_policy="model"), concl)


def test_expansion_mode_solves_with_the_expert() -> None:
    results = run_search(
        make_search("meta-mcts", rollouts=2), [e.problem for e in EXAMPLES], ArithmeticExpert()
    )
    assert [r.answer for r in results] == [e.answer for e in EXAMPLES]
    for r in results:
        metas = {n.meta_action for n in r.tree.nodes[1:]}
        assert metas <= {"expansion", "conclusion"}
        assert r.tree.nodes[r.tree.chosen[-1]].meta_action == "conclusion"


@pytest.mark.parametrize("critique", ["none", "model", "conclusions"])
def test_expansion_mode_critique_options_run(critique: str) -> None:
    config = MetaMCTSConfig(simulations=6, critique=critique)  # type: ignore[arg-type]
    tree = _tree(FakePolicy(seed=1), config)
    ids = [n.id for n in tree.nodes]
    assert ids == list(range(len(tree)))
    if critique == "none":
        assert {n.meta_action for n in tree.nodes[1:]} <= {"expansion", "conclusion"}


def test_path_value_closed_form() -> None:
    """A node's path value is the lowest rating on its path, its own included; a conclusion's
    own rating is left out."""
    from openberry.search.meta_mcts import path_value

    tree = TreeBuilder(PROBLEM, "meta-mcts")
    a = tree.add(0, "a", meta_action="expansion", info={"original_value": 0.9})
    b = tree.add(a.id, "b", meta_action="expansion", info={"original_value": 0.4})
    c = tree.add(b.id, "c", meta_action="conclusion", info={"original_value": 0.1})
    d = tree.add(a.id, "d", meta_action="conclusion", info={"original_value": 0.2})
    assert [path_value(tree, n.id) for n in (a, b, c, d)] == [0.9, 0.4, 0.4, 0.9]


def test_node_value_path_starts_each_thought_at_its_path_value() -> None:
    config = MetaMCTSConfig(simulations=4, node_value="path")
    tree = _tree(ArithmeticExpert(), config)
    for n in tree.nodes[1:]:
        assert n.info["path_value"] <= n.info["original_value"] or n.meta_action == "conclusion"


def test_answer_selection_visits_takes_the_most_visited_conclusion() -> None:
    over = {"simulations": "8", "answer_selection": "visits"}
    (r,) = run_search(make_search("meta-mcts", overrides=over), [PROBLEM], ArithmeticExpert())
    concl = [n for n in r.tree.nodes if n.meta_action == "conclusion" and n.answer is not None]
    chosen = r.tree.nodes[r.tree.chosen[-1]]
    assert chosen.visits == max(n.visits for n in concl)

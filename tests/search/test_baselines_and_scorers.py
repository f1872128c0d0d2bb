"""Baselines and scorers on the scripted arithmetic expert, and the scorers' closed forms."""

from __future__ import annotations

import dataclasses
import math

import pytest
from golden import check_golden

from openberry.data.arithmetic import load_split
from openberry.formats.openlongcot import parse_nodes
from openberry.search import SearchError, make_search, run_search
from openberry.search.common import answer_of_text, majority
from openberry.search.methods import apply_overrides, make_config
from openberry.search.scorers import (
    SCORERS,
    make_scorer,
    solution_steps,
    step_value_prompts,
    value_preferences,
)
from search.policies import ArithmeticExpert, _line_ok

EXAMPLES = load_split("test", limit=4)
PROBLEMS = [e.problem for e in EXAMPLES]


def test_greedy_and_self_consistency() -> None:
    (g,) = run_search(make_search("greedy"), PROBLEMS[:1], ArithmeticExpert())
    assert len(g.tree) == 2 and g.tree.chosen == (0, 1)
    # Samples 0, 2, 4 slip (3 wrong, same answer), 1, 3 are right: the slip wins 3 to 2.
    (sc,) = run_search(make_search("self-consistency", 5), PROBLEMS[:1], ArithmeticExpert())
    votes = sc.tree.info["votes"]
    assert votes[EXAMPLES[0].answer] == 2 and sorted(votes.values()) == [2, 3]
    assert sc.answer != EXAMPLES[0].answer
    check_golden("self_consistency", sc.tree)


@pytest.mark.parametrize("scorer", SCORERS)
def test_best_of_n_picks_a_right_solution_with_every_scorer_but_logprob(scorer: str) -> None:
    results = run_search(
        make_search("best-of-n", 4, {"scorer": scorer}), PROBLEMS, ArithmeticExpert()
    )
    right = [r.answer == e.answer for r, e in zip(results, EXAMPLES, strict=True)]
    if scorer == "logprob":  # the expert's log p says nothing about correctness
        assert all(r.answer is not None for r in results)
    else:
        assert all(right)


def test_beam_search_keeps_the_right_steps() -> None:
    results = run_search(make_search("beam", 4), PROBLEMS, ArithmeticExpert())
    assert [r.answer for r in results] == [e.answer for e in EXAMPLES]
    check_golden("beam", results[0].tree)
    chosen = results[0].tree.nodes[results[0].tree.chosen[-1]]
    assert chosen.meta_action == "conclusion" and chosen.terminal


def test_majority_ties_go_to_the_first_and_none_does_not_vote() -> None:
    assert majority([None, "2", "3", "3", "2"]) == (1, {"2": 2, "3": 2})
    assert majority([None, None]) == (None, {})
    assert majority(["\\frac12", "0.5", "\\frac{1}{2}"])[1] == {"\\frac{1}{2}": 2, "0.5": 1}


def test_answer_of_text_needs_a_stated_answer() -> None:
    assert answer_of_text("12 + 3 = 15") is None
    assert answer_of_text("The answer is \\boxed{15}.") == "15"


def test_an_echoed_empty_box_is_no_answer() -> None:
    # SmolLM2 echoed the solve instruction ("within \boxed{}"): an empty answer, which step
    # search took as a terminal and the vote counted, where evaluation reads no answer.
    assert answer_of_text("The answer is within \\boxed{}. 1 + 1 =") is None
    assert answer_of_text("so \\boxed{ }") is None


def test_solution_steps_and_value_prompts_are_openlongcot() -> None:
    steps = solution_steps("29 + 25 = 54\n\n54 + 15 = 69\nThe answer is \\boxed{69}.")
    assert [m for m, _ in steps] == ["expansion", "expansion", "conclusion"]
    prompts = step_value_prompts("Compute 29 + 25 + 15.", steps)
    assert len(prompts) == 3 and all(p.endswith("<start_of_rating>") for p in prompts)
    nodes = parse_nodes(prompts[-1] + "<positive_rating><end_of_rating>")
    assert [n.meta_action for n in nodes] == ["problem", "expansion", "expansion", "conclusion"]
    assert all(n.rating == "positive" for n in nodes[:-1])


def test_bradley_terry_preferences_from_values() -> None:
    p = value_preferences([0.8, 0.5])
    assert p[0][1] == pytest.approx(1 / (1 + math.exp(-math.log(4))))
    assert p[0][1] + p[1][0] == pytest.approx(1) and p[0][0] == 0.5


def test_unknown_scorer_and_settings_fail_clearly() -> None:
    with pytest.raises(SearchError, match="unknown scorer"):
        make_scorer("oracle")
    with pytest.raises(SearchError, match="has no setting 'cpuct'"):
        make_config("mctsr", 4, {"cpuct": "1"})
    with pytest.raises(SearchError, match="unknown method"):
        make_config("mcts", 4)
    cfg = apply_overrides(make_config("sr-mcts", 8), {"c": "0.5", "preference": "value"})
    assert cfg.c == 0.5 and cfg.preference == "value" and cfg.rollouts == 8
    nested = make_config("best-of-n", 4, {"scorer_config.ebc_alpha": "0.8"})
    assert nested.scorer_config.ebc_alpha == 0.8
    with pytest.raises(SearchError, match="group of settings"):
        make_config("best-of-n", 4, {"scorer_config": "x"})
    with pytest.raises(SearchError, match="must be one of"):
        make_config("sr-mcts", 8, {"preference": "oracle"})


def _run_scorer(policy, name, solutions, **cfg):
    from openberry.search.scorers import ScorerConfig

    scorer = make_scorer(name, ScorerConfig(**cfg))
    gen = scorer(PROBLEMS[0], solutions)

    def search(problem, rng):
        scores = yield from gen
        from openberry.search.common import TreeBuilder

        b = TreeBuilder(problem, "probe")
        b.root.info["scores"] = scores
        return b.freeze()

    (r,) = run_search(search, PROBLEMS[:1], policy)
    return r.tree.root.info["scores"]


def test_value_scorer_leaves_out_the_answer_line_by_default() -> None:
    good = "29 + 25 = 54\n54 + 15 = 69\nThe answer is \\boxed{69}."
    bad = "29 + 25 = 44\n44 + 15 = 59\nThe answer is \\boxed{59}."

    class ConclusionHater(ArithmeticExpert):
        def prob(self, prompt, candidates):
            p = super().prob(prompt, candidates)
            if prompt.rsplit("<start_of_thought>", 1)[1].startswith("<conclusion>"):
                p = {c: 1.0 - v if c in p else v for c, v in p.items()}
            return p

    assert _run_scorer(ConclusionHater(), "value", [good, bad]) == pytest.approx([0.95, 0.05])
    assert _run_scorer(
        ConclusionHater(), "value", [good, bad], value_conclusion=True
    ) == pytest.approx([0.05, 0.05])


def test_predicted_context_writes_the_models_own_ratings() -> None:
    policy = ArithmeticExpert()
    bad = "29 + 25 = 44\n44 + 15 = 59\nThe answer is \\boxed{59}."
    scores = _run_scorer(policy, "value", [bad], value_context="predicted")
    assert scores == pytest.approx([0.05])
    second = [
        p for p in policy.prompts if p.endswith("44 + 15 = 59<end_of_thought><start_of_rating>")
    ]
    assert second and "44<end_of_thought><start_of_rating><negative_rating>" in second[0]


def test_solutions_with_format_tags_are_scored_not_rejected() -> None:
    """Regression: a sampled solution holding ``</hint>`` crashed the value scorer."""
    text = "29 + 25 = 54</hint>\n<positive_rating>54 + 15 = 69\nThe answer is \\boxed{69}."
    assert solution_steps(text)[0] == ("expansion", "29 + 25 = 54")
    assert _run_scorer(ArithmeticExpert(), "value", [text]) == pytest.approx([0.95])


def test_judge_probabilities_are_rounded_so_batch_noise_cannot_flip_ties() -> None:
    """Regression: float noise of a batched forward pass (~1e-7) made equal solutions get
    unequal P(Yes) and flipped EBC's tie-breaks, so SR-MCTS trees differed between a batched and
    a one-at-a-time run at temperature 0."""
    from openberry.formats.prompts import JUDGE_NO, JUDGE_YES
    from openberry.records import Problem
    from openberry.search.scorers import PROB_DECIMALS, judge_preferences

    gen = judge_preferences(Problem(id="p", question="Compute 1 + 1."), ["2", "2"])
    request = next(gen)
    assert len(request.prompts) == 2
    noisy = [
        {JUDGE_YES: 0.5 + 3e-8, JUDGE_NO: 0.5 - 3e-8},
        {JUDGE_YES: 0.5 - 2e-8, JUDGE_NO: 0.5 + 2e-8},
    ]
    with pytest.raises(StopIteration) as stop:
        gen.send(noisy)
    assert stop.value.value == {(0, 1): 0.5, (1, 0): 0.5}
    assert PROB_DECIMALS == 4


def test_step_judge_prompt_rates_a_first_differing_step_after_the_shared_ones() -> None:
    from openberry.search.scorers import step_judge_prompt

    a = "2 + 3 = 5\n5 * 4 = 20\nThe answer is \\boxed{20}."
    b = "2 + 3 = 5\n5 * 4 = 24\nThe answer is \\boxed{24}."
    expected = (
        "<start_of_father_id>-1<end_of_father_id><start_of_local_id>0<end_of_local_id>"
        "<start_of_thought><problem>Q?<end_of_thought><start_of_rating><positive_rating>"
        "<end_of_rating>\n"
        "<start_of_father_id>0<end_of_father_id><start_of_local_id>1<end_of_local_id>"
        "<start_of_thought><expansion>2 + 3 = 5<end_of_thought><start_of_rating><positive_rating>"
        "<end_of_rating>\n"
        "<start_of_father_id>1<end_of_father_id><start_of_local_id>2<end_of_local_id>"
        "<start_of_thought><expansion>5 * 4 = 20<end_of_thought><start_of_rating>"
    )
    assert step_judge_prompt("Q?", a, b) == expected
    assert step_judge_prompt("Q?", b, a) == expected.replace("= 20<", "= 24<")
    # Identical solutions meet at their end: the same prompt in both orders.
    assert step_judge_prompt("Q?", a, a) == step_judge_prompt("Q?", a, a + "\n")


@pytest.mark.parametrize("frame", ["plain", "step"])
def test_pprm_scorer_asks_the_judge_in_its_frame(frame) -> None:
    from openberry.search.scorers import JUDGE_FRAMES

    class Judge(ArithmeticExpert):
        def prob(self, prompt, candidates):
            return dict.fromkeys(candidates, 0.5)

    policy, judge = ArithmeticExpert(), Judge()
    search = make_search("best-of-n", 3, {"scorer": "pprm", "scorer_config.judge_frame": frame})
    (result,) = run_search(search, PROBLEMS[:1], {"policy": policy, "judge": judge})
    sols = [n.text for n in result.tree.nodes[1:]]
    q = PROBLEMS[0].question
    asked = [JUDGE_FRAMES[frame](q, sols[i], sols[j]) for i in range(3) for j in range(3) if i != j]
    assert judge.prompts and set(judge.prompts) == set(asked)  # a repeated prompt is sent once


def test_parting_lines_are_the_first_lines_that_differ_after_the_shared_ones() -> None:
    from openberry.formats.prompts import solve_prompt
    from openberry.search.scorers import parting_lines

    a = "2 + 3 = 5\n5 * 4 = 20\nThe answer is \\boxed{20}."
    b = "2 + 3 = 5\n\n 5 * 4 = 24 \nThe answer is \\boxed{24}."
    assert parting_lines("Q?", a, b) == (
        solve_prompt("Q?") + "2 + 3 = 5\n",
        "5 * 4 = 20\n",
        "5 * 4 = 24\n",
    )
    assert parting_lines("Q?", "x = 1", "y = 2") == (solve_prompt("Q?"), "x = 1\n", "y = 2\n")
    # No line to weigh: identical solutions, or one that stops where the other goes on.
    assert parting_lines("Q?", a, a + "\n") is None
    assert parting_lines("Q?", "2 + 3 = 5", a) is None


def test_likelihood_preference_is_bradley_terry_on_the_log_likelihood_gap() -> None:
    from openberry.search.scorers import likelihood_preference

    assert likelihood_preference(-2.0, -2.0) == 0.5
    assert likelihood_preference(-1.0, -3.0) == pytest.approx(1 / (1 + math.exp(-2)), abs=1e-4)
    assert likelihood_preference(-1.0, -3.0) + likelihood_preference(-3.0, -1.0) == pytest.approx(1)
    assert likelihood_preference(0.0, -1e9) == 1.0  # no overflow on a huge gap


def test_likelihood_frame_scores_each_parting_line_once_with_the_judge() -> None:
    from openberry.records import Problem
    from openberry.search.scorers import judge_preferences, likelihood_preference

    sols = [
        "1 + 1 = 2\n2 + 2 = 4",
        "1 + 1 = 2\n2 + 2 = 5",
        "1 + 1 = 3\n3 + 2 = 5",
        "1 + 1 = 2\n2 + 2 = 4",
    ]
    gen = judge_preferences(Problem(id="p", question="Q?"), sols, frame="likelihood")
    request = next(gen)
    assert request.model == "judge"
    items = list(zip(request.prompts, request.completions, strict=True))
    # (0, 1) part at line 2; (0, 2), (1, 2), (2, 3) all at line 1 with the same two lines.
    assert len(items) == len(set(items)) == 4
    logp = {"2 + 2 = 4\n": -1.0, "2 + 2 = 5\n": -4.0, "1 + 1 = 2\n": -0.5, "1 + 1 = 3\n": -3.0}
    with pytest.raises(StopIteration) as stop:
        gen.send([(logp[c] / 2, logp[c] / 2) for c in request.completions])  # summed per line
    prefs = stop.value.value
    assert prefs[(0, 1)] == likelihood_preference(-1.0, -4.0) == 1 - prefs[(1, 0)]
    assert prefs[(2, 0)] == likelihood_preference(-3.0, -0.5)
    assert prefs[(0, 3)] == prefs[(3, 0)] == 0.5  # identical: no parting line


def test_best_of_n_with_a_likelihood_judge_picks_the_solution_its_judge_finds_likely() -> None:
    from search.policies import solution_ok

    class LikelihoodJudge(ArithmeticExpert):
        def score(self, prompts, completions):
            self.prompts.extend(prompts)
            right = [solution_ok(c.strip() + "\n\\boxed{0}") for c in completions]
            return [(-0.1,) if ok else (-5.0,) for ok in right]

    judge = LikelihoodJudge()
    search = make_search(
        "best-of-n", 4, {"scorer": "pprm", "scorer_config.judge_frame": "likelihood"}
    )
    (result,) = run_search(search, PROBLEMS[:1], {"policy": ArithmeticExpert(), "judge": judge})
    assert judge.prompts and all(p.startswith("Question: ") for p in judge.prompts)
    chosen = result.tree.nodes[result.tree.chosen[-1]].text
    assert solution_ok(chosen)


class _ConfidentSlips(ArithmeticExpert):
    """The expert, with log-probabilities: its slipped solutions (and slipped lines) are written
    with confidence (-0.01 a token), its right ones without (-3 a token)."""

    def generate(self, prompts, params):
        out = super().generate(prompts, params)
        for prompt, row in zip(prompts, out, strict=True):
            done = prompt.split("\nSolution:\n", 1)[-1]  # a step prompt's lines so far
            for k, g in enumerate(row):
                lp = -0.01 if _slipped_path(done + g.text) else -3.0
                row[k] = dataclasses.replace(g, logprobs=(lp,) * g.num_tokens)
        return out


def _slipped_path(text: str) -> bool:
    """Whether a (partial) solution holds a line whose arithmetic is wrong."""
    return any(_line_ok(line) is False for line in text.splitlines())


@pytest.mark.parametrize("method", ["best-of-n", "beam"])
def test_the_reward_mix_trades_the_rating_for_the_confidence(method: str) -> None:
    """alpha 1 ranks by the value alone (the right path); alpha near 0 by the policy's
    confidence, which here favours the slip: rating 0.05 ** 0.05 * e ** -0.01 beats
    0.95 ** 0.05 * e ** -3."""
    slipped = {}
    for alpha in (1.0, 0.05):
        search = make_search(method, 4, {"alpha": alpha})
        (r,) = run_search(search, [PROBLEMS[0]], _ConfidentSlips())
        chosen = "\n".join(r.tree.nodes[i].text for i in r.tree.chosen[1:])
        slipped[alpha] = _slipped_path(chosen)
        if method == "best-of-n":
            for n in r.tree.nodes[1:]:
                if alpha < 1.0:
                    lp = -0.01 if _slipped_path(n.text) else -3.0
                    want = n.info["score"] ** alpha * math.exp(lp) ** (1 - alpha)
                    assert n.info["mixed_score"] == pytest.approx(want)
                else:
                    assert "mixed_score" not in n.info
    assert slipped == {1.0: False, 0.05: True}


@pytest.mark.parametrize("method", ["best-of-n", "beam"])
def test_alpha_out_of_range_is_refused(method: str) -> None:
    with pytest.raises(SearchError, match="alpha must be in"):
        make_search(method, 4, {"alpha": 1.5})

"""Free-form steps (``step_split``) in beam, step-mcts and the scorers, and the process reward
model scorers (``prm``, ``prm-head``): closed forms and end-to-end runs on scripted fakes."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest

from openberry.formats.prompts import solve_prompt
from openberry.models import FakePolicy
from openberry.records import Problem
from openberry.search import SearchError, make_search, run_search
from openberry.search.engine import Generate, StepRewards
from openberry.search.methods import make_config
from openberry.search.scorers import (
    ScorerConfig,
    aggregate_values,
    make_scorer,
    newest_step_rewards,
    node_steps,
    prm_reward,
    prm_text,
    solution_steps,
)

PROBLEM = Problem(id="p/1", question="Compute 2 + 3, then double it.")
PARAGRAPHS = [
    "We add 2 and 3.\nThat gives 5.",
    "Then we double it: 10.",
    "The answer is \\boxed{10}.",
]
HEADERS = [
    "## Step 1: Add\n2 + 3 = 5.",
    "## Step 2: Double\n\n5 * 2 = 10.",
    "The answer is \\boxed{10}.",
]


def step_script(steps: Sequence[str], sep: str = "\n\n") -> dict[str, str]:
    """A FakePolicy script that writes `steps` joined by `sep` after the solve prompt and
    continues the solution after each step written back with `sep`."""
    script = {"Solution:\n": sep.join(steps)}
    for k in range(1, len(steps)):
        script[steps[k - 1] + sep] = sep.join(steps[k:])
    return script


class FakeRewardHead:
    """A reward-head model: the reward of a step is a hash of the text up to its tag."""

    name = "fake-reward-head"

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[str, ...], tuple[tuple[int, ...], ...], int]] = []

    def step_rewards(
        self, prompts: Sequence[str], ends: Sequence[Sequence[int]], label: int = 1
    ) -> list[tuple[float, ...]]:
        self.calls.append((tuple(prompts), tuple(tuple(e) for e in ends), label))
        return [tuple(reward_of(p[:e]) for e in es) for p, es in zip(prompts, ends, strict=True)]


def reward_of(text: str) -> float:
    digest = hashlib.blake2b(text.encode(), digest_size=4).digest()
    return round(int.from_bytes(digest, "little") / 2**32, 4)


def fake(steps: Sequence[str] = PARAGRAPHS, sep: str = "\n\n") -> FakePolicy:
    return FakePolicy(seed=1, script=step_script(steps, sep))


# -- the PRM input and rewards ----------------------------------------------------------------


def test_prm_text_is_math_shepherds_format() -> None:
    text, ends = prm_text("Q?", ["a = 1", "b ки = 2"], ScorerConfig())
    assert text == "Q? a = 1 ки\nb  = 2 ки"
    assert [text[:e] for e in ends] == ["Q? a = 1 ки", text]
    cfg = ScorerConfig(prm_prefix="Problem: {question}\n", prm_tag="<extra_0>", prm_separator="")
    text, ends = prm_text("1 + {x}?", ["s1", "s2"], cfg)
    assert text == "Problem: 1 + {x}?\ns1<extra_0>s2<extra_0>" and ends[-1] == len(text)


def test_prm_reward_and_product_aggregate() -> None:
    cfg = ScorerConfig()
    assert prm_reward({"+": 0.3, "-": 0.1}, cfg) == 0.75
    assert prm_reward({"+": 0.0, "-": 0.0}, cfg) == 0.5
    assert aggregate_values([0.5, 0.8], "product") == pytest.approx(0.4)
    with pytest.raises(SearchError, match="prm_good and prm_bad"):
        ScorerConfig(prm_good="+", prm_bad="+")


def drive(gen, answer):
    """Run a scorer generator, answering every request with `answer(request)`."""
    try:
        request = next(gen)
        while True:
            request = gen.send(answer(request))
    except StopIteration as stop:
        return stop.value


@pytest.mark.parametrize("aggregate", ["min", "last", "mean", "product"])
def test_prm_scorer_closed_form(aggregate: str) -> None:
    """``prm``: one next-token prompt per step, ending at its tag; the score aggregates
    p(+)/(p(+)+p(-))."""
    value = FakePolicy(seed=5)
    cfg = ScorerConfig(step_split="paragraph", prm_aggregate=aggregate)  # type: ignore[arg-type]
    solutions = ["\n\n".join(PARAGRAPHS), "We get 10.\nThe answer is \\boxed{10}."]
    asked = []

    def answer(request):
        asked.append(request)
        return value.next_token_probs(request.prompts, request.candidates)

    scores = drive(make_scorer("prm", cfg)(PROBLEM, solutions), answer)
    assert len(asked) == 1 and asked[0].candidates == ("+", "-") and asked[0].model == "value"
    for solution, score in zip(solutions, scores, strict=True):
        steps = [t for _, t in solution_steps(solution, "paragraph")]
        text, ends = prm_text(PROBLEM.question, steps, cfg)
        probs = value.next_token_probs([text[:e] for e in ends], ["+", "-"])
        expected = [round(p["+"] / (p["+"] + p["-"]), 4) for p in probs]
        assert score == pytest.approx(aggregate_values(expected, aggregate))
    assert len(asked[0].prompts) == 3 + 2  # answer line split off the second solution


def test_prm_head_scorer_is_one_request_read_at_each_tag() -> None:
    head = FakeRewardHead()
    cfg = ScorerConfig(step_split="auto", prm_label=0)
    solutions = ["\n".join(HEADERS), "no steps here at all.", ""]

    def answer(request):
        assert isinstance(request, StepRewards) and request.label == 0
        return head.step_rewards(request.prompts, request.ends, request.label)

    scores = drive(make_scorer("prm-head", cfg)(PROBLEM, solutions), answer)
    assert len(head.calls) == 1 and len(head.calls[0][0]) == 2  # the empty solution is not sent
    prompts, ends, _ = head.calls[0]
    assert all(prompts[0][:e].endswith(" ки") for e in ends[0]) and len(ends[0]) == 3
    assert scores[0] == min(reward_of(prompts[0][:e]) for e in ends[0])
    assert scores[2] == 0.0


def test_newest_step_rewards_rate_the_last_step_only() -> None:
    steps = [node_steps(PARAGRAPHS[:2], "paragraph"), [], node_steps(PARAGRAPHS, "paragraph")]
    head = FakeRewardHead()
    gen = newest_step_rewards(PROBLEM.question, steps, "prm-head", ScorerConfig())
    got = drive(gen, lambda r: head.step_rewards(r.prompts, r.ends, r.label))
    ((prompts, ends, _),) = head.calls
    assert [len(e) for e in ends] == [1, 1] and got[1] == 0.0
    assert got[0] == reward_of(prompts[0]) and prompts[0].endswith("double it: 10. ки")
    with pytest.raises(SearchError, match="unknown step scorer"):
        next(newest_step_rewards(PROBLEM.question, steps, "logprob", ScorerConfig()))


def test_node_steps_keep_nodes_whole_except_in_line_mode() -> None:
    assert node_steps(["a\nb", "The answer is \\boxed{1}."], "paragraph") == [
        ("expansion", "a\nb"),
        ("conclusion", "The answer is \\boxed{1}."),
    ]
    assert node_steps(["a", "b"], "line") == solution_steps("a\nb")


# -- beam and step-mcts over paragraphs and headers --------------------------------------------


def first_prompts(policy: FakePolicy) -> list[str]:
    seen: list[str] = []
    real = policy.generate

    def spy(prompts, params):
        seen.extend(prompts)
        return real(prompts, params)

    policy.generate = spy  # type: ignore[method-assign]
    return seen


@pytest.mark.parametrize(("split", "steps"), [("paragraph", PARAGRAPHS), ("auto", PARAGRAPHS)])
@pytest.mark.parametrize("method", ["beam", "step-mcts"])
def test_step_search_over_paragraphs(method: str, split: str, steps: list[str]) -> None:
    policy = fake(steps)
    prompts = first_prompts(policy)
    search = make_search(method, 2, {"step_split": split})
    (result,) = run_search(search, [PROBLEM], policy)
    tree = result.tree
    texts = [tree.nodes[i].text for i in tree.chosen[1:]]
    assert texts == steps and result.answer == "10"
    assert tree.nodes[tree.chosen[-1]].meta_action == "conclusion"
    assert solve_prompt(PROBLEM.question) + steps[0] + "\n\n" in prompts


@pytest.mark.parametrize("method", ["beam", "step-mcts"])
def test_header_split_keeps_blank_lines_inside_a_step(method: str) -> None:
    policy = fake(HEADERS)
    (result,) = run_search(make_search(method, 2, {"step_split": "header"}), [PROBLEM], policy)
    texts = [result.tree.nodes[i].text for i in result.tree.chosen[1:]]
    # The header stop ends step 1 before "## Step 2"; step 2 keeps its blank line; the answer
    # line has no header: header mode runs it into step 2, which then states the answer.
    assert texts == [HEADERS[0], HEADERS[1] + "\n\n" + HEADERS[2]] and result.answer == "10"


@pytest.mark.parametrize("scorer", ["prm", "prm-head"])
@pytest.mark.parametrize("method", ["beam", "step-mcts"])
def test_step_search_with_a_prm(method: str, scorer: str) -> None:
    models = {"policy": fake(), "value": FakeRewardHead() if scorer == "prm-head" else FakePolicy()}
    over = {"step_split": "paragraph", "step_scorer": scorer, "scorer_config.prm_aggregate": "mean"}
    if method == "step-mcts":
        over["rollout"] = "true"  # every step of the chosen path is then rated
        over["alpha"] = "1"  # the PRM's rewards alone, not mixed with the lines' confidence
    (result,) = run_search(make_search(method, 2, over), [PROBLEM], models)
    tree = result.tree
    assert result.answer == "10"
    chosen = tree.chosen[1:]
    if method == "beam":
        rewards = [tree.nodes[i].value for i in chosen]
    else:
        rewards = [tree.nodes[i].info["step_value"] for i in chosen]
    assert all(r is not None and 0.0 <= r <= 1.0 for r in rewards)
    if scorer == "prm-head":
        cfg = ScorerConfig()
        text, ends = prm_text(PROBLEM.question, PARAGRAPHS, cfg)
        assert rewards == [reward_of(text[:e]) for e in ends]
    if method == "step-mcts":
        leaf = tree.nodes[tree.chosen[-1]]
        assert leaf.rewards[-1] == pytest.approx(sum(rewards) / len(rewards))


def test_best_of_n_with_the_prm_head_scorer() -> None:
    models = {"policy": fake(), "value": FakeRewardHead()}
    search = make_search("best-of-n", 2, {"scorer": "prm-head", "scorer_config.step_split": "auto"})
    (result,) = run_search(search, [PROBLEM], models)
    assert result.answer == "10" and result.tree.info["scorer"] == "prm-head"


def test_a_causal_model_cannot_answer_step_rewards_and_a_head_cannot_generate() -> None:
    search = make_search("best-of-n", 2, {"scorer": "prm-head"})
    with pytest.raises(SearchError, match="prm-head scorer needs a reward-head model"):
        run_search(search, [PROBLEM], fake())
    with pytest.raises(SearchError, match="it is a reward-head model"):
        run_search(make_search("greedy"), [PROBLEM], FakeRewardHead())  # type: ignore[arg-type]


def test_step_settings_are_checked_when_made() -> None:
    with pytest.raises(SearchError, match="step_split"):
        make_config("beam", 2, {"step_split": "words"})
    with pytest.raises(SearchError, match="step_scorer"):
        make_config("step-mcts", 2, {"step_scorer": "logprob"})
    assert make_config("beam", 2, {"scorer_config.prm_label": "0"}).scorer_config.prm_label == 0


def test_line_split_is_the_default_and_stops_at_newlines() -> None:
    for method in ("beam", "step-mcts"):
        assert make_config(method).step_split == "line"
    seen: list[Generate] = []
    policy = FakePolicy(seed=2)
    real = policy.generate
    policy.generate = lambda p, params: seen.append(params) or real(p, params)  # type: ignore[method-assign]
    run_search(make_search("beam", 2, {"max_steps": 1}), [PROBLEM], policy)
    assert seen[0].stop == ("\n",)

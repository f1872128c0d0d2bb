"""Every search method with the ``paper`` prompt profile: on a scripted chat model that answers
like an instruct model (chatty scores, formatted verdicts, long critiques, some replies that say
nothing), and on the tiny transformers model behind a ChatML template. Nothing crashes, and
every reply that could not be read is recorded on its node."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from openberry.data.arithmetic import load_split
from openberry.data.arithmetic.solutions import write_solution
from openberry.formats.chat import ChatPrompt
from openberry.formats.openlongcot import RATING_TOKENS
from openberry.formats.profiles import PAPER, TINY, ProfileError, RolePrompt, load_profile
from openberry.formats.prompts import JUDGE_NO, JUDGE_YES
from openberry.models.base import SamplingParams
from openberry.search import make_config, make_search, run_search
from openberry.search.engine import SearchError
from openberry.search.registry import REGISTRY
from search.chat_policies import CHATML, ChatExpert, _question
from search.policies import ArithmeticExpert, _steps_ok

EXAMPLES = load_split("test", limit=2)
PROBLEMS = [e.problem for e in EXAMPLES]


def _search(method: str, policy, rollouts: int = 3, **overrides):
    search = make_search(method, rollouts, overrides, prompts=PAPER)
    return run_search(search, PROBLEMS, policy)


def _counts(results, key: str) -> int:
    return sum(n.info.get(key, 0) for r in results for n in r.tree.nodes)


@pytest.mark.parametrize("method", list(REGISTRY))
def test_every_method_runs_with_the_paper_profile(method: str) -> None:
    policy = ChatExpert()
    results = _search(method, policy)
    assert len(results) == len(PROBLEMS)
    if method != "meta-mcts":  # OpenLongCoT only: no role prompts
        assert results[0].tree.info["config"]["prompts"]["name"] == "paper"
        assert any(isinstance(p, ChatPrompt) for p in policy.prompts)
    assert all(r.answer is not None for r in results)


def test_paper_prompts_reach_the_model_and_step_methods_write_in_the_reply() -> None:
    policy = ChatExpert()
    _search("beam", policy)
    steps = [p for p in policy.prompts if isinstance(p, ChatPrompt) and p.reply]
    assert steps and all("Please reason step by step" in p.messages[-1][1] for p in steps)
    assert all(p.messages[-1][1].count("\n") == 1 for p in steps)  # the lines are not in it
    assert any(p.reply.count("\n") >= 2 for p in steps)


def test_mctsr_records_unparsed_rewards_and_keeps_long_critiques() -> None:
    results = _search("mctsr", ChatExpert())
    dummy = [n for r in results for n in r.tree.nodes if n.info.get("dummy")]
    assert dummy and all(n.info["unparsed_rewards"] >= 1 and 0.0 in n.rewards for n in dummy)
    rewritten = [n for r in results for n in r.tree.nodes if "critique" in n.info]
    assert rewritten and all(len(n.info["critique"]) > 500 for n in rewritten)
    real = [n for r in results for n in r.tree.nodes if n.id and not n.info.get("dummy")]
    assert {90.0, -60.0} & {x for n in real for x in n.rewards}


def test_best_of_n_self_eval_reads_chatty_scores() -> None:
    results = _search("best-of-n", ChatExpert(), 4, scorer="self-eval")
    assert all(r.answer == e.answer for r, e in zip(results, EXAMPLES, strict=True))
    assert _counts(results, "unparsed_self_evals") == 0


def test_judge_falls_back_to_its_written_verdict_and_records_what_it_cannot_read() -> None:
    results = _search("best-of-n", ChatExpert(), 4, scorer="pprm")
    assert _counts(results, "written_judgements") > 0
    assert _counts(results, "unparsed_judgements") > 0  # two right answers: no verdict
    assert all(r.answer == e.answer for r, e in zip(results, EXAMPLES, strict=True))
    sr = _search("sr-mcts", ChatExpert())
    assert _counts(sr, "written_judgements") > 0


def test_tiny_profile_never_asks_for_a_written_verdict() -> None:
    class Silent(ArithmeticExpert):
        def prob(self, prompt: str, candidates: Sequence[str]) -> dict[str, float]:
            return {c: 0.0 for c in candidates}

    policy = Silent()
    search = make_search("best-of-n", 3, {"scorer": "pprm"}, prompts=TINY)
    (r,) = run_search(search, PROBLEMS[:1], policy)
    assert policy.calls["generate"] == 1  # the samples only
    assert _counts([r], "unparsed_judgements") == 6 * 2  # every ordered pair, both solutions


def test_prompts_are_set_by_their_option_not_by_set() -> None:
    with pytest.raises(SearchError, match="prompts is set with --prompts"):
        make_config("mctsr", 1, {"prompts": "paper"})
    with pytest.raises(SearchError, match="prompts is set with --prompts"):
        make_config("mctsr", 1, {"prompts.solve.user": "{question}"})
    assert make_config("mctsr", 1).prompts is TINY
    from openberry.cli._config import method_settings

    assert "  prompts (set with --prompts, default tiny)" in method_settings(["mctsr"])
    assert not hasattr(make_config("meta-mcts", 1, prompts=PAPER), "prompts")


# -- the tiny transformers model behind a chat template ------------------------------------------

SHORT = dataclasses.replace(
    PAPER,
    critique=dataclasses.replace(PAPER.critique, max_new_tokens=6),
    self_eval=dataclasses.replace(PAPER.self_eval, max_new_tokens=6),
    judge=RolePrompt(PAPER.judge.user, max_new_tokens=4),
)
"""``paper`` with short replies: the random tiny model would otherwise write 512 tokens."""

SMALL = {
    "greedy": {"max_new_tokens": 8},
    "self-consistency": {"max_new_tokens": 8},
    "best-of-n": {"max_new_tokens": 8, "scorer": "pprm"},
    "beam": {"max_steps": 2, "max_step_tokens": 6},
    "mctsr": {"max_new_tokens": 8, "reward_retries": 0},
    "sr-mcts": {"max_new_tokens": 8},
    "meta-mcts": {"max_thought_tokens": 6},
    "step-mcts": {"max_step_tokens": 6, "max_depth": 2, "finish_tokens": 6},
}


@pytest.fixture(scope="module")
def chat_tiny():
    torch = pytest.importorskip("torch")
    from models.tiny import tiny_hf_policy

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    policy = tiny_hf_policy()
    policy.tokenizer.chat_template = CHATML
    policy.use_chat_template = True
    yield policy
    torch.set_num_threads(threads)


@pytest.mark.parametrize("method", list(REGISTRY))
def test_every_method_runs_on_a_chat_template_model(chat_tiny, method: str) -> None:
    assert set(SMALL) == set(REGISTRY)
    search = make_search(method, 1, SMALL[method], prompts=SHORT)
    (r,) = run_search(search, PROBLEMS[:1], chat_tiny, seed=0)
    assert len(r.tree) >= 2
    if method == "mctsr":  # a random model states no score: every reward is unparsed
        assert _counts([r], "unparsed_rewards") >= 2


# -- answer forcing -----------------------------------------------------------------------------


class Looping(ChatExpert):
    """Solutions that loop and never state an answer; after the ``paper`` profile's answer
    text it writes the right answer."""

    def respond(self, prompt: str, index: int, params: SamplingParams) -> str:
        if isinstance(prompt, ChatPrompt) and prompt.reply.endswith(PAPER.answer):
            question = _question(prompt.messages[-1][1]).removeprefix("Compute ").rstrip(".")
            return f"{write_solution(question).answer}}}$. Done."
        if (
            isinstance(prompt, ChatPrompt)
            and "Please reason step by step" in prompt.messages[-1][1]
        ):
            if index % 2:  # an echoed instruction: an empty answer is none
                return "Let me add. The answer is within \\boxed{}. 1 + 1 ="
            return "Let me add. = 1 + 1 = 1 + 1 =" * 3
        return super().respond(prompt, index, params)


@pytest.mark.parametrize("method", ["greedy", "self-consistency", "best-of-n"])
def test_answer_forcing_reads_an_answer_after_a_looping_solution(method: str) -> None:
    overrides = {"scorer": "logprob"} if method == "best-of-n" else {}
    policy = Looping()
    results = _search(method, policy, 3, **overrides)
    assert [r.answer for r in results] == [e.answer for e in EXAMPLES]
    solutions = [n for r in results for n in r.tree.nodes if n.id]
    assert solutions and all(n.info["forced_answer"] for n in solutions)
    assert all(n.text.startswith("Let me add.") and PAPER.answer in n.text for n in solutions)
    forcing = [p for p in policy.prompts if isinstance(p, ChatPrompt) and p.reply]
    assert len(forcing) == len(solutions)  # one continuation per solution without an answer
    assert all(p.reply.endswith("1 + 1 =" + PAPER.answer) for p in forcing)
    assert all(r.tree.nodes[1].answer == r.answer for r in results if method == "greedy")


@pytest.mark.parametrize("method", ["mctsr", "sr-mcts"])
def test_answer_forcing_in_the_self_refine_searches_solutions_and_rewrites(method: str) -> None:
    results = _search(method, Looping(), 2)
    for r, e in zip(results, EXAMPLES, strict=True):
        first = r.tree.nodes[1]
        assert first.info["forced_answer"] and first.answer == e.answer
        rewrites = [n for n in r.tree.nodes if "critique" in n.info]
        assert rewrites and all(n.info["forced_answer"] for n in rewrites)  # they loop too
        assert all(n.answer == e.answer for n in rewrites)


@pytest.mark.parametrize(
    ("method", "overrides"), [("beam", {"max_steps": 3}), ("step-mcts", {"max_depth": 3})]
)
def test_answer_forcing_at_the_end_of_a_step_search(method: str, overrides) -> None:
    policy = Looping()
    results = _search(method, policy, 2, **overrides)
    assert [r.answer for r in results] == [e.answer for e in EXAMPLES]
    for r in results:
        last = r.tree.nodes[r.tree.chosen[-1]]
        assert last.info["forced_answer"] and last.meta_action == "conclusion"
        assert last.text.startswith(PAPER.answer.strip())
    quiet = dataclasses.replace(PAPER, answer="")
    search = make_search(method, 2, overrides, prompts=quiet)
    assert all(r.answer is None for r in run_search(search, PROBLEMS, Looping()))


def test_no_forcing_when_the_profile_has_none_or_every_solution_answers() -> None:
    policy = Looping()
    quiet = dataclasses.replace(PAPER, answer="")
    (r,) = run_search(make_search("greedy", 1, prompts=quiet), PROBLEMS[:1], policy)
    assert r.answer is None and "forced_answer" not in r.tree.nodes[1].info
    policy = ChatExpert()
    results = _search("self-consistency", policy, 3)
    assert not any(n.info.get("forced_answer") for r in results for n in r.tree.nodes)
    assert policy.calls["generate"] == 1  # the samples only (both problems in one call)


# -- the step-value question ----------------------------------------------------------------------


class StepJudge(ChatExpert):
    """Answers the ``paper`` step-value question: Yes to a right step, No to a wrong one."""

    def prob(self, prompt: str, candidates: Sequence[str]) -> dict[str, float]:
        assert not set(candidates) & set(RATING_TOKENS.values())  # no rating tokens asked
        user = prompt.messages[-1][1] if isinstance(prompt, ChatPrompt) else ""
        if "Is the next step correct?" not in user:
            return super().prob(prompt, candidates)
        earlier = user.split("Solution so far:\n", 1)[1].split("\nNext step: ", 1)[0]
        step = user.split("Next step: ", 1)[1].split("\n", 1)[0]
        steps = [x for x in earlier.splitlines() if "=" in x] + [step]
        ok = ("=" not in step and "boxed" not in step) or _steps_ok(steps)  # prose is fine
        return {JUDGE_YES: 0.9 if ok else 0.1, JUDGE_NO: 0.1 if ok else 0.9}


@pytest.mark.parametrize(
    ("method", "overrides"),
    [
        ("best-of-n", {"scorer": "value", "alpha": 1.0}),
        ("beam", {"alpha": 1.0}),
        ("step-mcts", {"alpha": 1.0}),
    ],
)
def test_value_searches_rate_steps_with_the_step_value_question(method: str, overrides) -> None:
    policy = StepJudge()
    results = _search(method, policy, 4, **overrides)
    if method == "step-mcts":  # its answer is the most visited: check the ratings it read
        rated = [n for r in results for n in r.tree.nodes if "step_value" in n.info]
        slips = [n for n in rated if n.parent == 0 and not _steps_ok([n.text])]
        assert slips and {n.info["step_value"] for n in slips} == {0.1}
        assert {n.info["step_value"] for n in rated} == {0.1, 0.9}
    else:
        assert [r.answer for r in results] == [e.answer for e in EXAMPLES]
    asked = [p for p in policy.prompts if isinstance(p, ChatPrompt) and "Next step:" in str(p)]
    assert asked and all("Is the next step correct?" in p.messages[-1][1] for p in asked)
    assert any("Solution so far:\n(none)\n" in p.messages[-1][1] for p in asked)


def test_step_value_prompt_and_files(tmp_path) -> None:
    prompt = PAPER.step_value_prompt("Compute 1 + 2 + 3.", ["1 + 2 = 3"], "3 + 3 = 6\n")
    assert prompt.messages[-1][1] == (
        "Question: Compute 1 + 2 + 3.\nSolution so far:\n1 + 2 = 3\nNext step: 3 + 3 = 6\n"
        "Is the next step correct? Answer Yes or No."
    )
    with pytest.raises(ProfileError, match="no step_value role"):
        TINY.step_value_prompt("q", [], "s")
    import json

    def load(data):
        path = tmp_path / "p.json"
        path.write_text(json.dumps(data))
        return load_profile(path)

    assert load({"base": "paper"}).step_value == PAPER.step_value
    assert load({"base": "tiny"}).step_value is None
    own = load({"base": "tiny", "step_value": "{question}|{steps}|{step} ok?"})
    assert own.step_value_prompt("q", ["a", "b"], "c") == "q|a\nb|c ok?"
    with pytest.raises(ProfileError, match="never uses"):
        load({"base": "paper", "step_value": "{question} {steps}"})
    with pytest.raises(ProfileError, match="unknown placeholder"):
        load({"base": "paper", "step_value": "{step} {solution}"})

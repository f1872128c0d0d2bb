"""Prompt profiles: tiny is byte-identical to berry-tiny's frames, paper renders through a real
chat template, and profile files are checked with errors that name what is wrong."""

from __future__ import annotations

import json
import pickle

import pytest

from openberry.formats.chat import ChatPrompt, chat_messages, plain_chat
from openberry.formats.profiles import (
    AUTO,
    PAPER,
    PLACEHOLDERS,
    ROLES,
    TINY,
    ProfileError,
    choice_identity,
    choose_profile,
    fill,
    load_profile,
    prompt_choice,
    renders_chat,
)
from openberry.formats.prompts import (
    judge_prompt,
    refine_prompt,
    review_prompt,
    self_eval_prompt,
    solve_prompt,
)
from search.chat_policies import CHATML

QUESTIONS = ["Compute 2 + 3 * 4.", "What is {x} if $x^2 = 4$?", "Q with {question} inside", ""]
SOLUTIONS = [
    "3 * 4 = 12\n2 + 12 = 14\nThe answer is \\boxed{14}.",
    "x = 2\n\n\n",
    "  leading space, trailing spaces   ",
    "{solution} {{braces}}",
    "",
]
CRITIQUES = ["All steps are correct.", "  Step 2 is wrong: 12 + 2 = 14.\n", "\n", "{critique}"]


# -- tiny: the frames berry-tiny was trained on, byte for byte -----------------------------------


@pytest.mark.parametrize("q", QUESTIONS)
def test_tiny_profile_is_byte_identical_to_the_tiny_frames(q: str) -> None:
    assert TINY.solve_prompt(q) == solve_prompt(q)
    for s in SOLUTIONS:
        assert TINY.critique_prompt(q, s) == review_prompt(q, s)
        assert TINY.self_eval_prompt(q, s) == self_eval_prompt(q, s)
        for c in CRITIQUES:
            assert TINY.rewrite_prompt(q, s, c) == refine_prompt(q, s, c)
        for b in SOLUTIONS:
            assert TINY.judge_prompt(q, s, b) == judge_prompt(q, s, b)


def test_tiny_prompts_are_plain_strings_and_replies_one_line() -> None:
    prompt = TINY.solve_prompt("Q?")
    assert type(prompt) is str and not isinstance(prompt, ChatPrompt)
    assert TINY.critique.stop == TINY.self_eval.stop == "\n"
    assert TINY.self_eval.reply == "Score: " and TINY.critique.max_new_tokens == 0


# -- paper: the papers' instructions, through a chat template ------------------------------------


def test_paper_prompts_carry_the_papers_instructions() -> None:
    q, s = "Compute 1 + 2.", "1 + 2 = 3\nThe answer is \\boxed{3}."
    assert PAPER.solve_prompt(q).messages == (
        ("user", q + "\nPlease reason step by step, and put your final answer within \\boxed{}."),
    )
    critique = PAPER.critique_prompt(q, s).messages[-1][1]
    assert critique.startswith(f"Question: {q}\nAnswer: {s}\nSince we have a weak answer")
    assert "Let's think step by step." in critique
    rewrite = PAPER.rewrite_prompt(q, s, "  Step 1 is fine.\n").messages[-1][1]
    assert "Feedback: Step 1 is fine.\nPlease refine your answer" in rewrite
    reward = PAPER.self_eval_prompt(q, s).messages[-1][1]
    assert "between -100 and +100" in reward and reward.endswith("[Analyst]...[Score]...")
    judge = PAPER.judge_prompt(q, "A", "B").messages[-1][1]
    assert judge == (
        f"Problem: {q}\nFirst Answer: A\nSecond Answer: B\n"
        "Is First Answer better than Second Answer? Answer Yes or No."
    )


def test_paper_prompt_through_a_real_chat_template() -> None:
    """The tiny test tokenizer has no template; a ChatML one is set on it here."""
    pytest.importorskip("transformers")
    from models.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    tok.chat_template = CHATML

    def template(messages: list[dict[str, str]]) -> str:
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    q = "Compute 1 + 2."
    prompt = PAPER.solve_prompt(q)
    user = f"{q}\nPlease reason step by step, and put your final answer within \\boxed{{}}."
    head = f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    assert prompt.render(template) == head
    # A partial solution the search extends is the start of the assistant's turn.
    step = prompt + "1 + 2 = 3\n"
    assert isinstance(step, ChatPrompt) and step.reply == "1 + 2 = 3\n"
    assert step.render(template) == head + "1 + 2 = 3\n"
    # With a system message, it comes first.
    system = ChatPrompt([("system", "Be brief."), ("user", "Hi")], reply="Hel")
    assert system.render(template) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHel"
    )


def test_hf_runtime_renders_chat_prompts_with_the_template_and_others_as_before() -> None:
    pytest.importorskip("torch")
    from models.tiny import tiny_hf_policy

    policy = tiny_hf_policy()
    rt = policy.runtime
    plain = "Question: Q\nSolution:\n"
    chat = PAPER.solve_prompt("Q") + "step\n"
    assert rt.format(plain) == plain and rt.format(chat) == str(chat)  # no template: plain
    assert not policy.chat
    policy.tokenizer.chat_template = CHATML
    assert rt.format(plain) == plain  # plain prompts are wrapped only with --chat-template
    assert rt.format(chat).endswith("<|im_start|>assistant\nstep\n")
    ids = rt.encode_prompts([chat, plain])
    assert ids[0] == policy.tokenizer(rt.format(chat), add_special_tokens=False)["input_ids"]
    assert ids[1] == policy.tokenizer(plain)["input_ids"]
    policy.use_chat_template = True
    assert policy.chat and renders_chat(policy)
    assert rt.format(plain).startswith("<|im_start|>user\nQuestion: Q")
    assert rt.encode_completion(chat, ids[0], "x") == policy.tokenizer.encode(
        "x", add_special_tokens=False
    )


# -- ChatPrompt ------------------------------------------------------------------------------------


def test_chat_prompt_is_a_string_that_keeps_its_messages() -> None:
    p = ChatPrompt([("system", "S"), ("user", "U")], reply="R")
    assert p == "S\n\nU\n\nR" == plain_chat(p.messages, p.reply)
    assert pickle.loads(pickle.dumps(p)).messages == p.messages
    assert json.loads(json.dumps(p)) == str(p)
    assert chat_messages(p) == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U"},
    ]
    assert chat_messages("plain") == [{"role": "user", "content": "plain"}]
    assert (p + "more").reply == "Rmore" and ("x" + p) == "xS\n\nU\n\nR"
    with pytest.raises(ValueError, match="roles"):
        ChatPrompt([("tool", "x")])


# -- placeholders --------------------------------------------------------------------------------


def test_fill_substitutes_once_and_keeps_other_braces() -> None:
    values = {"question": "{solution}", "solution": "S"}
    assert (
        fill("{question} / {solution} / \\boxed{} / {{x}}", values)
        == "{solution} / S / \\boxed{} / {x}"
    )
    with pytest.raises(ProfileError, match=r"no value for placeholder \{critique\}"):
        fill("{critique}", values)


def test_every_role_uses_only_its_placeholders() -> None:
    from openberry.formats.profiles import placeholders

    for profile in (TINY, PAPER):
        for role in ROLES:
            r = profile.role(role)
            assert set(placeholders(r.user + r.reply)) <= set(PLACEHOLDERS[role])


# -- choosing a profile --------------------------------------------------------------------------


class _Chatty:
    chat = True


def test_auto_is_paper_for_a_policy_that_renders_its_chat_template() -> None:
    assert choose_profile(AUTO, renders_chat(_Chatty())) is PAPER
    assert choose_profile(AUTO, renders_chat(object())) is TINY
    assert choose_profile("tiny", True) is TINY and choose_profile(PAPER, False) is PAPER
    with pytest.raises(ProfileError, match="unknown prompt profile 'nope'"):
        choose_profile("nope", False)


def test_prompt_choice_names_and_files(tmp_path) -> None:
    assert prompt_choice("auto") == "auto" and prompt_choice("paper") == "paper"
    with pytest.raises(ProfileError, match="choose auto, tiny, paper"):
        prompt_choice("papers")
    with pytest.raises(ProfileError, match="cannot read"):
        prompt_choice(str(tmp_path / "missing.toml"))


# -- profile files -------------------------------------------------------------------------------

TOML = r"""
name = "mine"
system = "You are a careful mathematician."
rewrite = "{question}\n{solution}\nReview: {critique}\nRewrite it."
self_eval = { user = "{question}\n{solution}\nScore it.", reply = "Score:", stop = "\n" }
judge = "{question}\nA: {solution_a}\nB: {solution_b}\nIs A better? {{Yes/No}}"

[solve]
user = "Solve: {question}\nEnd with \\boxed{}."

[critique]
user = "{question}\n{solution}\nFind the first wrong step."
max_new_tokens = 300
"""


def test_a_toml_profile_file(tmp_path) -> None:
    pytest.importorskip("tomllib")
    path = tmp_path / "mine.toml"
    path.write_text(TOML)
    profile = load_profile(path)
    assert profile.name == "mine" and profile.chat and len(profile.sha256) == 64
    prompt = profile.solve_prompt("1 + 1?")
    assert prompt.messages == (
        ("system", "You are a careful mathematician."),
        ("user", "Solve: 1 + 1?\nEnd with \\boxed{}."),
    )
    assert profile.critique.max_new_tokens == 300
    assert profile.self_eval.reply == "Score:" and profile.self_eval.stop == "\n"
    assert profile.judge_prompt("Q", "a", "b").messages[-1][1].endswith("Is A better? {Yes/No}")
    assert choice_identity(profile) == {"name": "mine", "sha256": profile.sha256}
    assert prompt_choice(str(path)) == profile


def test_a_json_profile_file_based_on_paper(tmp_path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"base": "paper", "judge": "{question}|{solution_a}|{solution_b}"}))
    profile = load_profile(path)
    assert profile.name == "p" and profile.chat
    assert (
        profile.critique == PAPER.critique
        and profile.judge.user == "{question}|{solution_a}|{solution_b}"
    )
    plain = load_profile(_write(tmp_path / "t.json", {"base": "tiny", "chat": False}))
    assert plain.solve_prompt("Q") == solve_prompt("Q")
    assert profile.answer == PAPER.answer and plain.answer == TINY.answer == ""
    own = load_profile(_write(tmp_path / "a.json", {"base": "paper", "answer": "\nSo: "}))
    assert own.answer == "\nSo: "


def _write(path, data):
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"solve": "{question}"}, "role 'critique' is missing"),
        (
            {"base": "paper", "critique": "{question} {answer}"},
            "role 'critique': unknown placeholder {answer}",
        ),
        ({"base": "paper", "judge": "{solution_a} only"}, "role 'judge' never uses {solution_b}"),
        ({"base": "paper", "solve": "no question"}, "role 'solve' never uses {question}"),
        ({"base": "paper", "solve": "\\frac{a}{b} {question}"}, "unknown placeholder {a}"),
        ({"base": "paper", "temperature": 1}, "unknown key 'temperature'"),
        ({"base": "nope"}, "unknown base profile 'nope'"),
        (
            {"base": "paper", "solve": {"prompt": "{question}"}},
            "role 'solve': unknown key 'prompt'",
        ),
        ({"base": "paper", "solve": {"reply": "x"}}, "role 'solve' has no user template"),
        ({"base": "paper", "solve": 3}, "role 'solve' must be a string or a table"),
        (
            {"base": "paper", "critique": {"user": "{solution}", "stop": ["\n"]}},
            "stop must be a string",
        ),
        ({"base": "paper", "critique": {"user": "{solution}", "max_new_tokens": -1}}, ">= 0"),
        ({"base": "paper", "solve": {"user": "{question}", "max_new_tokens": 9}}, "short replies"),
        ({"base": "paper", "chat": "yes"}, "chat must be a bool"),
        ({"base": "paper", "answer": 1}, "answer must be a str"),
    ],
)
def test_bad_profile_files_name_what_is_wrong(tmp_path, data, message) -> None:
    path = _write(tmp_path / "bad.json", data)
    with pytest.raises(ProfileError) as exc:
        load_profile(path)
    assert message in str(exc.value) and str(path) in str(exc.value)


def test_unparsable_profile_file(tmp_path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("solve = ")
    with pytest.raises(ProfileError, match="not a TOML or JSON prompt profile"):
        load_profile(path)


def test_the_example_profile_file_in_the_docs_loads() -> None:
    pytest.importorskip("tomllib")
    from pathlib import Path

    path = Path(__file__).parents[2] / "docs" / "examples" / "prompts.toml"
    profile = load_profile(path)
    assert profile.name == "paper-with-system" and profile.system.startswith("You are")
    assert profile.critique == PAPER.critique and profile.judge.max_new_tokens == 64

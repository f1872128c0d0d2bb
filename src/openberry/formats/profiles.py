"""Prompt profiles: the text of every role prompt search sends, chosen by name or read from a file.

A search asks the model to play five roles, and optionally a sixth, besides the OpenLongCoT
policy and value heads (`openberry.formats.openlongcot`, which are formats a model is trained on
and are the same in every profile):

==========  ===================================  ============================================
role        placeholders                         the model writes
==========  ===================================  ============================================
solve       {question}                           a step-by-step solution
critique    {question} {solution}                a critique (MCTSr's feedback m)
rewrite     {question} {solution} {critique}     a corrected solution (MCTSr's rewrite)
self_eval   {question} {solution}                a score in [-100, 100] (MCTSr's reward)
judge       {question} {solution_a} {solution_b} Yes or No: is solution A better? (PPRM)
step_value  {question} {steps} {step}            Yes or No: is the step correct? (optional)
==========  ===================================  ============================================

Without ``step_value`` a step's value is the OpenLongCoT value head's; with it (``paper``) it is
P(Yes) of that question, as RAP's self-evaluation reward (Hao et al. 2023, section 3.2).

A `PromptProfile` holds one `RolePrompt` per role: the template of the user message and of the
start of the model's reply, and for the short replies (critique, self_eval, judge) their stop
strings and token budget. Two profiles are built in:

- ``tiny``: the short frames berry-tiny learned from its corpus (`openberry.formats.prompts`;
  byte-identical to those functions), plain text, each reply one line. berry-tiny's profile.
- ``paper``: the papers' instructions for chat models, rendered through the model's chat
  template (a `openberry.formats.chat.ChatPrompt`): MCTSr's critique, rewrite and self-reward
  prompts (Zhang et al. 2024, arXiv 2406.07394, section 3 and its code, in the wording of
  ../shared/research/seed-spec.md section 1), LLaMA-Berry's PPRM question (arXiv 2410.02884,
  Figure A6), and a solve prompt asking for a step-by-step solution with the answer in
  ``\\boxed{}``.

Departures in ``paper``: the critique, rewrite and reward prompts are single user turns that
carry the question and the answer (MCTSr's code sent the last two messages of a chat history);
MCTSr's ``[reasoning process]...[Verification]...`` response format is replaced by the
``\\boxed{}`` instruction, because a verification section ("the answer is correct") reads as an
answer to answer extraction; the PPRM question ends with "Answer Yes or No.", since an instruct
model used as a judge was not trained to answer with one word as the PPRM was.

``--prompts auto`` (the command-line default) is ``paper`` when the policy wraps prompts in its
chat template (``--chat-template``, `renders_chat`), else ``tiny``: a model prompted through a
chat template is an instruct model, which follows instructions but never saw berry-tiny's
frames; a model read as plain text is a base model or one trained on those frames. ``berry
serve`` never wraps its completions prompts, so there ``auto`` is ``paper`` when the served
model's tokenizer has a chat template (`has_chat_template`).

A profile file (TOML or JSON) has the same shape (docs/prompts.md)::

    name = "my-profile"        # optional (default: the file name)
    base = "paper"             # optional: roles not given come from this profile
    chat = true                # render through the chat template (default: the base's, or true)
    system = "You are ..."     # optional system message (chat profiles)
    answer = "\\n\\nThe final answer is $\\\\boxed{"  # optional answer forcing (below)
    [solve]
    user = "{question}\\nPlease reason step by step ..."
    reply = ""                 # optional start of the reply
    [critique]
    user = "..."
    stop = "\\n"              # optional stop string of the reply
    max_new_tokens = 512       # optional (0: the method's own setting)

``answer`` is answer forcing, as evaluation harnesses do for chat models: a solution that ended
without an answer (a loop cut at the token limit, an instruction echoed) gets this text written
after it, the model writes up to `ANSWER_TOKENS` more tokens greedily, and the answer in them
counts. ``paper`` forces "The final answer is $\\boxed{"; ``tiny`` forces nothing (berry-tiny
states its answers). The sampling methods, the self-refine searches (MCTSr, SR-MCTS) and, at
their end, the step searches (beam, step-mcts) use it.

A role may also be a string (its user template). Placeholders are ``{name}``; ``{{`` and ``}}``
write literal braces; any other ``{word}`` is an error, so is a missing role (without ``base``)
or a role that never uses the text it is about. Templates are filled by substitution only:
nothing in a file is evaluated.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from openberry.errors import BerryError
from openberry.formats.chat import ChatPrompt, plain_chat

__all__ = [
    "AUTO",
    "OPTIONAL_ROLES",
    "PAPER",
    "PLACEHOLDERS",
    "PROFILES",
    "ROLES",
    "TINY",
    "ProfileError",
    "PromptChoice",
    "PromptProfile",
    "RolePrompt",
    "choice_identity",
    "choose_profile",
    "fill",
    "has_chat_template",
    "load_profile",
    "placeholders",
    "profile_from_dict",
    "prompt_choice",
    "renders_chat",
]


class ProfileError(BerryError, ValueError):
    """A prompt profile that cannot be used (unknown name, bad file, bad template)."""


ROLES: tuple[str, ...] = ("solve", "critique", "rewrite", "self_eval", "judge")
"""The roles of a profile, in the order files and docs list them."""

PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "solve": ("question",),
    "critique": ("question", "solution"),
    "rewrite": ("question", "solution", "critique"),
    "self_eval": ("question", "solution"),
    "judge": ("question", "solution_a", "solution_b"),
    "step_value": ("question", "steps", "step"),
}
"""The placeholders each role's templates may use."""

OPTIONAL_ROLES: tuple[str, ...] = ("step_value",)
"""Roles a profile may leave out: without ``step_value`` the step methods rate steps with the
OpenLongCoT rating tokens (the value head)."""

_REQUIRED: dict[str, tuple[str, ...]] = {
    "solve": ("question",),
    "critique": ("solution",),
    "rewrite": ("critique",),
    "self_eval": ("solution",),
    "judge": ("solution_a", "solution_b"),
    "step_value": ("step",),
}
"""Placeholders a role must use somewhere (the text it is about)."""

_SHORT_REPLIES = ("critique", "self_eval", "judge")
"""Roles whose reply length and stop strings the profile sets; solutions (solve, rewrite) are
as long as the method's ``max_new_tokens``."""

_FIELD_RE = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class RolePrompt:
    """One role's prompt."""

    user: str
    """Template of the user message (of the whole prompt in a plain profile)."""
    reply: str = ""
    """Template of the start of the model's reply: the end of a plain prompt, the start of the
    assistant turn of a chat one. Reply parsers read it before the generated text."""
    stop: str = ""
    """Stop string of the reply (critique, self_eval; "": the model's end of sequence)."""
    max_new_tokens: int = 0
    """Most tokens of the reply: critique, self_eval, and the judge's written answer when its
    first token is not Yes or No (0: the method's own setting)."""


@dataclass(frozen=True)
class PromptProfile:
    """The role prompts of a search (see the module docstring)."""

    name: str
    """``tiny``, ``paper``, or the name a file gives (default: its file name)."""
    chat: bool
    """Render prompts as chat messages (`openberry.formats.chat.ChatPrompt`), else plain text."""
    solve: RolePrompt
    """Solve: a step-by-step solution of {question}."""
    critique: RolePrompt
    """Critique of {solution} (MCTSr's feedback)."""
    rewrite: RolePrompt
    """Rewrite of {solution} from its {critique}."""
    self_eval: RolePrompt
    """Self-evaluation of {solution}: a score in [-100, 100]."""
    judge: RolePrompt
    """Pairwise judge: is {solution_a} better than {solution_b}? (Yes or No)."""
    system: str = ""
    """System message of every chat prompt ("" for none)."""
    step_value: RolePrompt | None = None
    """Step value: is {step}, written after {steps}, a correct step of the solution of
    {question}? (Yes or No; the value is P(Yes) renormalised over Yes and No, as RAP's
    self-evaluation reward). None: the OpenLongCoT rating tokens after the value prompt."""
    answer: str = ""
    """Answer forcing: text written after a solution that ended without an answer (at the
    token limit, or with none stated), after which the model writes on briefly and greedily,
    so that the answer it then gives counts ("" for none)."""
    sha256: str = ""
    """SHA-256 of the file the profile was read from ("" for a built-in one)."""

    def role(self, name: str) -> RolePrompt:
        """The `RolePrompt` of role `name` (one of `ROLES`)."""
        if name not in ROLES:
            raise ProfileError(f"unknown role {name!r}; roles: {', '.join(ROLES)}")
        return getattr(self, name)

    def render(self, role: str, **values: str) -> str:
        """Role `role`'s prompt with `values` filled in: plain text, or a `ChatPrompt` (system
        and user messages, the reply as the start of the assistant turn). Solutions lose their
        trailing whitespace and the critique its surrounding whitespace, as the tiny frames
        always did."""
        return self._render(self.role(role), {k: _tidy(k, v) for k, v in values.items()})

    def _render(self, r: RolePrompt, vals: Mapping[str, str]) -> str:
        user, reply = fill(r.user, vals), fill(r.reply, vals)
        messages = ([("system", self.system)] if self.system else []) + [("user", user)]
        if self.chat:
            return ChatPrompt(messages, reply)
        return plain_chat(messages[:-1]) + user + reply

    def solve_prompt(self, question: str) -> str:
        """The solve prompt; ``solve_prompt(q) + lines`` asks for the line after `lines`."""
        return self.render("solve", question=question)

    def critique_prompt(self, question: str, solution: str) -> str:
        """The critique prompt of `solution`."""
        return self.render("critique", question=question, solution=solution)

    def rewrite_prompt(self, question: str, solution: str, critique: str) -> str:
        """The rewrite prompt of `solution` from its `critique`."""
        return self.render("rewrite", question=question, solution=solution, critique=critique)

    def self_eval_prompt(self, question: str, solution: str) -> str:
        """The self-evaluation prompt of `solution`."""
        return self.render("self_eval", question=question, solution=solution)

    def step_value_prompt(self, question: str, steps: list[str], step: str) -> str:
        """The step-value prompt of `step` after the earlier `steps` (one per line; "(none)"
        for the first step). Raises `ProfileError` when the profile has no step-value role."""
        if self.step_value is None:
            raise ProfileError(f"profile {self.name!r} has no step_value role")
        earlier = "\n".join(x.strip() for x in steps) or "(none)"
        vals = {"question": question, "steps": earlier, "step": step.strip()}
        return self._render(self.step_value, vals)

    def judge_prompt(self, question: str, solution_a: str, solution_b: str) -> str:
        """The judge prompt: is `solution_a` better than `solution_b`?"""
        return self.render("judge", question=question, solution_a=solution_a, solution_b=solution_b)


def _tidy(name: str, value: str) -> str:
    if name in ("solution", "solution_a", "solution_b"):
        return value.rstrip()
    if name == "critique":
        return value.strip()
    return value


def placeholders(template: str) -> list[str]:
    """The placeholder names in `template`, in order (``{{`` and ``}}`` are literal braces)."""
    return [m[1] for m in _FIELD_RE.finditer(template) if m[1]]


def fill(template: str, values: Mapping[str, str]) -> str:
    """`template` with each ``{name}`` replaced by ``values[name]`` in one pass (a value is
    never read as a template) and ``{{``/``}}`` by a brace.

    Raises:
        ProfileError: a placeholder with no value.
    """

    def sub(m: re.Match[str]) -> str:
        if not m[1]:
            return m[0][0]
        if m[1] not in values:
            raise ProfileError(f"no value for placeholder {{{m[1]}}}")
        return values[m[1]]

    return _FIELD_RE.sub(sub, template)


_TINY_PROPOSED = "Question: {question}\nProposed solution:\n{solution}\n"

TINY = PromptProfile(
    name="tiny",
    chat=False,
    solve=RolePrompt("Question: {question}\nSolution:\n"),
    critique=RolePrompt(_TINY_PROPOSED + "Review:\n", stop="\n"),
    rewrite=RolePrompt(_TINY_PROPOSED + "Review:\n{critique}\nCorrected solution:\n"),
    self_eval=RolePrompt(_TINY_PROPOSED, reply="Score: ", stop="\n"),
    judge=RolePrompt(
        "Question: {question}\nSolution A:\n{solution_a}\nSolution B:\n{solution_b}\n"
        "Is solution A better than solution B? "
    ),
)
"""berry-tiny's frames (`openberry.formats.prompts`), plain text, one-line replies."""

_BOXED = "Please reason step by step, and put your final answer within \\boxed{}."
_ANSWERED = "Question: {question}\nAnswer: {solution}\n"

PAPER = PromptProfile(
    name="paper",
    chat=True,
    solve=RolePrompt("{question}\n" + _BOXED),
    critique=RolePrompt(
        _ANSWERED + "Since we have a weak answer, provide a reflection or feedback to correct "
        "it. Analyze it strictly and critically, and point out every flaw for every possible "
        "imperfection.\nLet's think step by step.",
        max_new_tokens=512,
    ),
    rewrite=RolePrompt(
        _ANSWERED + "Feedback: {critique}\nPlease refine your answer according to your "
        "reflection or feedback. " + _BOXED
    ),
    self_eval=RolePrompt(
        _ANSWERED + "Analyze this answer strictly and critically, and point out every flaw for "
        "every possible imperfection. Be very harsh: never give full marks. Output a score "
        "between -100 and +100.\nResponse format:\n[Analyst]...[Score]...",
        max_new_tokens=512,
    ),
    judge=RolePrompt(
        "Problem: {question}\nFirst Answer: {solution_a}\nSecond Answer: {solution_b}\n"
        "Is First Answer better than Second Answer? Answer Yes or No.",
        max_new_tokens=16,
    ),
    step_value=RolePrompt(
        "Question: {question}\nSolution so far:\n{steps}\nNext step: {step}\n"
        "Is the next step correct? Answer Yes or No."
    ),
    answer="\n\nThe final answer is $\\boxed{",
)
"""The papers' instructions for chat models (see the module docstring)."""

ANSWER_TOKENS = 24
"""Most tokens written after a profile's ``answer`` text (answer forcing)."""

PROFILES: dict[str, PromptProfile] = {"tiny": TINY, "paper": PAPER}
"""Built-in profiles by name."""

AUTO = "auto"
"""``--prompts auto``: ``paper`` for a policy that renders its chat template, else ``tiny``."""

PromptChoice = Union[str, PromptProfile]  # noqa: UP007 (a runtime alias)
"""What ``--prompts`` gives: `AUTO`, a built-in name, or a profile read from a file."""


def renders_chat(policy: Any) -> bool:
    """Whether `policy` wraps prompts in a chat template: `HFPolicy` with ``--chat-template``
    and a tokenizer that has one, `OpenAIPolicy` in chat mode (their ``chat`` attribute)."""
    return getattr(policy, "chat", False) is True


def has_chat_template(policy: Any) -> bool:
    """Whether `policy`'s tokenizer has a chat template (an instruct model), whether or not the
    policy wraps its prompts in it. `openberry.serve` reads ``auto`` by this: a served model
    reads chats through its template, so its searches get the chat prompts too."""
    tokenizer = getattr(policy, "tokenizer", None)
    return bool(getattr(tokenizer, "chat_template", None))


def choose_profile(choice: PromptChoice, chat: bool) -> PromptProfile:
    """The profile of `choice` for a policy that renders its chat template (`chat`) or not."""
    if isinstance(choice, PromptProfile):
        return choice
    if choice == AUTO:
        return PAPER if chat else TINY
    if choice not in PROFILES:
        raise ProfileError(f"unknown prompt profile {choice!r}; choose {_names()}")
    return PROFILES[choice]


def choice_identity(choice: PromptChoice) -> str | dict[str, str]:
    """What identifies `choice` in a run's records: its name, and a file's SHA-256."""
    if isinstance(choice, PromptProfile):
        return {"name": choice.name, "sha256": choice.sha256}
    return choice


def _names() -> str:
    return f"{AUTO}, {', '.join(PROFILES)}, or a .toml / .json profile file"


def prompt_choice(text: str) -> PromptChoice:
    """``--prompts NAME|FILE``: `AUTO` or a built-in name as it is, else the profile read from
    the file `text` (`load_profile`).

    Raises:
        ProfileError: neither a known name nor a readable, valid profile file.
    """
    if text == AUTO or text in PROFILES:
        return text
    path = Path(text)
    if path.suffix.lower() not in (".toml", ".json") and not path.is_file():
        raise ProfileError(f"unknown prompt profile {text!r}; choose {_names()}")
    return load_profile(path)


def load_profile(path: str | Path) -> PromptProfile:
    """The profile in TOML or JSON file `path` (by its suffix; else TOML, then JSON), with the
    file's SHA-256 (see the module docstring for the shape).

    Raises:
        ProfileError: the file cannot be read or parsed, or the profile is not valid.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read prompt profile: {exc.strerror or exc}") from exc
    try:
        data = _parse(raw, path.suffix.lower())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: not a TOML or JSON prompt profile: {exc}") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: a prompt profile is a table of roles, got {type(data)}")
    try:
        profile = profile_from_dict(data, name=path.stem)
    except ProfileError as exc:
        raise ProfileError(f"{path}: {exc}") from None
    return dataclasses.replace(profile, sha256=hashlib.sha256(raw).hexdigest())


def _parse(raw: bytes, suffix: str) -> Any:
    text = raw.decode("utf-8")
    if suffix == ".json":
        return json.loads(text)
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        if suffix == ".toml":
            raise ValueError("TOML profiles need Python 3.11 or later; write it as JSON") from None
        return json.loads(text)
    if suffix == ".toml":
        return tomllib.loads(text)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return json.loads(text)


_TOP_KEYS = ("name", "base", "chat", "system", "answer", *ROLES, *OPTIONAL_ROLES)
_ROLE_KEYS = ("user", "reply", "stop", "max_new_tokens")


def profile_from_dict(data: Mapping[str, Any], name: str = "custom") -> PromptProfile:
    """A profile from a parsed file (see the module docstring); `name` when it gives none.

    Raises:
        ProfileError: an unknown key or base, a missing role, a value of the wrong type, an
            unknown placeholder, or a role that never uses the text it is about.
    """
    unknown = [k for k in data if k not in _TOP_KEYS]
    if unknown:
        raise ProfileError(f"unknown key {unknown[0]!r}; keys: {', '.join(_TOP_KEYS)}")
    base = data.get("base")
    if base is not None and base not in PROFILES:
        raise ProfileError(f"unknown base profile {base!r}; choose {', '.join(PROFILES)}")
    parent = PROFILES[base] if base else None
    roles = {}
    for role in ROLES:
        if role in data:
            roles[role] = _role(role, data[role])
        elif parent is not None:
            roles[role] = parent.role(role)
        else:
            raise ProfileError(
                f"role {role!r} is missing (a profile has {', '.join(ROLES)}; or give "
                f'base = "paper" or "tiny" to take the roles not given from it)'
            )
    for role in OPTIONAL_ROLES:
        roles[role] = _role(role, data[role]) if role in data else getattr(parent, role, None)
    chat = data.get("chat", parent.chat if parent else True)
    system = data.get("system", parent.system if parent else "")
    answer = data.get("answer", parent.answer if parent else "")
    given = data.get("name", name)
    checks = (("chat", chat, bool), ("system", system, str), ("answer", answer, str))
    for key, value, kind in (*checks, ("name", given, str)):
        if not isinstance(value, kind):
            raise ProfileError(f"{key} must be a {kind.__name__}, got {value!r}")
    return PromptProfile(name=given, chat=chat, system=system, answer=answer, **roles)


def _role(role: str, value: Any) -> RolePrompt:
    """One role of a file: a string (its user template) or a table of `_ROLE_KEYS`."""
    if isinstance(value, str):
        value = {"user": value}
    if not isinstance(value, Mapping):
        raise ProfileError(f"role {role!r} must be a string or a table, got {value!r}")
    unknown = [k for k in value if k not in _ROLE_KEYS]
    if unknown:
        raise ProfileError(
            f"role {role!r}: unknown key {unknown[0]!r}; keys: {', '.join(_ROLE_KEYS)}"
        )
    if "user" not in value:
        raise ProfileError(f"role {role!r} has no user template")
    user, reply = value["user"], value.get("reply", "")
    stop, tokens = value.get("stop", ""), value.get("max_new_tokens", 0)
    if not isinstance(user, str) or not isinstance(reply, str):
        raise ProfileError(f"role {role!r}: user and reply must be strings")
    if not isinstance(stop, str):
        raise ProfileError(f"role {role!r}: stop must be a string")
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        raise ProfileError(f"role {role!r}: max_new_tokens must be an integer >= 0")
    if (stop or tokens) and role not in _SHORT_REPLIES:
        raise ProfileError(
            f"role {role!r}: stop and max_new_tokens are for the short replies "
            f"({', '.join(_SHORT_REPLIES)}); a solution is as long as the method's max_new_tokens"
        )
    _check_placeholders(role, user, reply)
    return RolePrompt(user=user, reply=reply, stop=stop, max_new_tokens=tokens)


def _check_placeholders(role: str, user: str, reply: str) -> None:
    allowed = PLACEHOLDERS[role]
    used = placeholders(user) + placeholders(reply)
    for p in used:
        if p not in allowed:
            shown = ", ".join(f"{{{a}}}" for a in allowed)
            raise ProfileError(
                f"role {role!r}: unknown placeholder {{{p}}} (this role's placeholders: "
                f"{shown}; write {{{{ and }}}} for literal braces)"
            )
    for p in _REQUIRED[role]:
        if p not in used:
            raise ProfileError(f"role {role!r} never uses {{{p}}}, the text it is about")

"""`ChatPrompt`: a prompt for a chat model, messages plus the start of the assistant's reply.

Search sends prompts to models as strings (`openberry.search.engine`), and most backends only
ever see strings. A role prompt of a chat profile (`openberry.formats.profiles`) is a
`ChatPrompt`: a ``str`` whose value is its plain rendering (what a backend without a chat
template reads: the messages' contents, then the reply), carrying the structured form beside
it, so that a backend that has a chat template renders it properly:

    template(messages, add_generation_prompt=True) + reply

The reply is the start of the assistant turn: a continuation the search extends (a partial
solution) is written there, never into the user message. ``prompt + text`` extends the reply
and stays a `ChatPrompt`, so code that builds a step prompt as ``solve_prompt + done_lines``
keeps the structure.

`openberry.models.hf` renders a `ChatPrompt` through the tokenizer's chat template whenever the
tokenizer has one; `openberry.models.openai` in chat mode sends its messages. Every other
backend (the fake policy, scripted test policies, a tokenizer without a template) reads the
plain rendering.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["ChatPrompt", "chat_messages", "plain_chat"]

ROLES = ("system", "user", "assistant")
"""Message roles a `ChatPrompt` may hold."""


def plain_chat(messages: Iterable[tuple[str, str]], reply: str = "") -> str:
    """The plain rendering of a chat: each message's content followed by a blank line, then
    `reply`. A model without a chat template reads this."""
    return "".join(f"{content}\n\n" for _role, content in messages) + reply


class ChatPrompt(str):
    """A chat prompt: ``messages`` (``(role, content)`` pairs) and ``reply``, the start of the
    assistant's turn; its ``str`` value is `plain_chat` of them (see the module docstring).

    Equal plain renderings compare equal (it is a ``str``); within one profile the system
    message and instructions are fixed, so different chats do not share a plain rendering.
    """

    messages: tuple[tuple[str, str], ...]
    reply: str

    def __new__(cls, messages: Iterable[tuple[str, str]], reply: str = "") -> ChatPrompt:
        msgs = tuple((str(role), str(content)) for role, content in messages)
        bad = [role for role, _ in msgs if role not in ROLES]
        if bad or not msgs:
            raise ValueError(f"a chat needs messages with roles in {ROLES}, got {bad or 'none'}")
        obj = super().__new__(cls, plain_chat(msgs, reply))
        obj.messages = msgs
        obj.reply = str(reply)
        return obj

    def __add__(self, other: Any) -> Any:
        """``prompt + text``: the same chat with `text` appended to the reply."""
        if isinstance(other, str):
            return ChatPrompt(self.messages, self.reply + str(other))
        return NotImplemented

    def __reduce__(self) -> tuple[Any, ...]:
        return (ChatPrompt, (self.messages, self.reply))

    def __repr__(self) -> str:
        return f"ChatPrompt({self.messages!r}, reply={self.reply!r})"

    def render(self, template: Any) -> str:
        """The prompt through a chat template: ``template(messages)`` (a callable taking the
        messages as ``[{"role": ..., "content": ...}]`` and returning the text up to the
        assistant's turn) followed by the reply."""
        return str(template(chat_messages(self))) + self.reply


def chat_messages(prompt: str) -> list[dict[str, str]]:
    """The messages of `prompt` as ``[{"role", "content"}]``: a `ChatPrompt`'s own (without
    its reply), or a plain prompt as one user message."""
    if isinstance(prompt, ChatPrompt):
        return [{"role": role, "content": content} for role, content in prompt.messages]
    return [{"role": "user", "content": str(prompt)}]

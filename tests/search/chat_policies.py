"""A scripted chat model for search tests with the ``paper`` prompt profile, and a small ChatML
template for the tiny test tokenizer (which has none)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from openberry.data.arithmetic.solutions import write_solution
from openberry.formats.chat import ChatPrompt
from openberry.formats.prompts import JUDGE_NO, JUDGE_YES
from openberry.models.base import SamplingParams
from search.policies import ArithmeticExpert, _slipped, solution_ok

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""A small ChatML template (SmolLM2's and Qwen2.5's shape) for the tiny tokenizer."""

DUMMY = re.compile(r"I (Don't|don't|can't)")


def _question(user: str) -> str:
    return re.search(r"Compute [^\n.]*\.", user)[0]  # type: ignore[index]


def _answer_of(user: str, label: str, end: str) -> str:
    return user.split(label, 1)[1].split(end, 1)[0]


class ChatExpert(ArithmeticExpert):
    """`ArithmeticExpert` for the ``paper`` profile: reads `ChatPrompt` messages and answers as
    an instruct model does. Self-evaluations are chatty ("[Score] 90", "I would rate this
    -60/100.") and never state a score for a dummy "I don't know" answer; the judge's first
    token is rarely Yes or No, its written verdict is formatted ("**Yes**", "Answer: No.") or,
    between two equally good answers, says neither. OpenLongCoT prompts (value head,
    meta-mcts) are plain strings: the arithmetic expert answers them."""

    def respond(self, prompt: str, index: int, params: SamplingParams) -> str:
        if not isinstance(prompt, ChatPrompt):
            return super().respond(prompt, index, params)
        user = prompt.messages[-1][1]
        good = write_solution(_question(user).removeprefix("Compute ").rstrip(".")).text
        if "Is First Answer better" in user:
            return self._verdict(user)
        if "Output a score" in user:
            answer = _answer_of(user, "\nAnswer: ", "\nAnalyze this answer")
            if DUMMY.search(answer):
                return "[Analyst] There is nothing to analyze here."
            if solution_ok(answer):
                return "[Analyst] Every step checks out.\n[Score] **90**"
            return "I would rate this -60/100: step 1 adds wrongly."
        if "Since we have a weak answer" in user:
            return "Let me check every step.\n\n" + "Step 1 needs a second look. " * 30
        if "Please refine your answer" in user:
            return "Here is the corrected solution:\n" + good
        lines = (_slipped(good) if self.slips(index) else good).splitlines()
        if params.stop:  # step by step: the next line after the reply so far
            done = [x for x in prompt.reply.splitlines() if x.strip()]
            return lines[len(done)] + "\n" if len(done) < len(lines) else ""
        return "Sure! Let's compute.\n" + "\n".join(lines)

    def _verdict(self, user: str) -> str:
        a = _answer_of(user, "First Answer: ", "\nSecond Answer: ")
        b = _answer_of(user, "\nSecond Answer: ", "\nIs First Answer")
        if solution_ok(a) and not solution_ok(b):
            return "**Yes**, the first answer is right."
        if solution_ok(b) and not solution_ok(a):
            return "Answer: No."
        return "They look equally good to me."

    def prob(self, prompt: str, candidates: Sequence[str]) -> dict[str, float]:
        if isinstance(prompt, ChatPrompt) and JUDGE_YES in candidates:
            return {JUDGE_YES: 0.01, JUDGE_NO: 0.01}  # the reply opens with "**" or prose
        return super().prob(prompt, candidates)

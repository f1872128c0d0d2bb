"""Scripted policies for search tests: pure Python, deterministic, recording every prompt.

`ArithmeticExpert` plays every role on the arithmetic task from the text in front of it alone
(it never sees a reference answer): it checks each written step ``a op b = c`` itself.

- solve prompts: a solution whose step ``k`` is wrong for sample indices listed in `slips`;
- review prompts: names the first wrong step, else "All steps are correct.";
- refine prompts: the correct solution;
- self-eval prompts: 90 for a solution whose steps are all right, else -60;
- judge prompts: P(Yes) = 0.9 if A's steps are right and B's are not, 0.1 the other way, else 0.5;
- value prompts: P(positive) = 0.95 if the rated step is right, 0.05 if not; an OpenLongCoT
  policy prompt gets the next correct step, or the conclusion;
- PRM prompts (Math-Shepherd's format, ``Q step ки\nstep ки``): P(+) = 0.95 if the last step
  is right, else 0.05, as a next token (``prm``) and as a reward head's step rewards
  (``prm-head``, `step_rewards`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence

from openberry.data.arithmetic.solutions import answer_line, write_solution
from openberry.formats.openlongcot import RATING_TOKENS
from openberry.formats.prompts import JUDGE_NO, JUDGE_YES, REVIEW_OK
from openberry.models.base import SamplingParams
from openberry.records import Generation

_Q_RE = re.compile(r"Question: (Compute [^\n]*)")
_STEP_RE = re.compile(r"^\s*(-?\d+) ([-+*]) (-?\d+) = (-?\d+)\s*$")


def _line_ok(line: str) -> bool | None:
    m = _STEP_RE.match(line)
    if not m:
        return None
    a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
    return {"+": a + b, "-": a - b, "*": a * b}[op] == c


def solution_ok(text: str) -> bool:
    """States a boxed answer and every step line is right (the expert's own check)."""
    return "\\boxed{" in text and all(_line_ok(line) is not False for line in text.splitlines())


def _expression(question: str) -> str:
    return question.removeprefix("Compute ").rstrip(".")


def _slipped(solution_text: str) -> str:
    """The solution with its first step's result off by 10, and the answer recomputed wrongly."""
    lines = solution_text.splitlines()
    m = _STEP_RE.match(lines[0])
    assert m
    wrong = int(m[4]) + 10
    lines[0] = f"{m[1]} {m[2]} {m[3]} = {wrong}"
    lines[-1] = answer_line(wrong)
    return "\n".join(lines)


class RecordingPolicy:
    """Base: counts calls, records prompts, answers through `respond`/`prob`."""

    name = "scripted"

    def __init__(self) -> None:
        self.prompts: list[str] = []
        self.calls: dict[str, int] = defaultdict(int)
        self.asked: dict[str, int] = defaultdict(int)

    def respond(self, prompt: str, index: int, params: SamplingParams) -> str:  # pragma: no cover
        raise NotImplementedError

    def prob(self, prompt: str, candidates: Sequence[str]) -> dict[str, float]:  # pragma: no cover
        raise NotImplementedError

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Generation]]:
        self.calls["generate"] += 1
        out = []
        for p in prompts:
            self.prompts.append(p)
            row = []
            for _ in range(params.n):
                index = self.asked[p] if not params.greedy else 0
                self.asked[p] += 1
                text = self.respond(p, index, params)
                reason = "eos"
                for s in params.stop:
                    if s in text:
                        text, reason = text[: text.index(s)], "stop"
                n = max(1, len(text.split()))
                row.append(
                    Generation(
                        text=text,
                        logprobs=None,
                        finish_reason=reason,  # type: ignore[arg-type]
                        num_tokens=n,
                        prompt_tokens=len(p.split()),
                    )
                )
            out.append(row)
        return out

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> list[tuple[float, ...]]:
        self.calls["score"] += 1
        self.prompts.extend(prompts)
        return [tuple(-0.1 for _ in c.split()) or (-0.1,) for c in completions]

    def next_token_probs(
        self, prompts: Sequence[str], candidates: Sequence[str]
    ) -> list[dict[str, float]]:
        self.calls["next"] += 1
        self.prompts.extend(prompts)
        return [self.prob(p, candidates) for p in prompts]


class ArithmeticExpert(RecordingPolicy):
    """See the module docstring. `slips`: sample indices of solve prompts that get a slip."""

    def __init__(self, slips: Callable[[int], bool] = lambda i: i % 2 == 0) -> None:
        super().__init__()
        self.slips = slips

    def respond(self, prompt: str, index: int, params: SamplingParams) -> str:
        q = _Q_RE.search(prompt)
        if "<start_of_thought>" in prompt:
            return self._thought(prompt)
        assert q, prompt
        expr = _expression(q[1])
        good = write_solution(expr).text
        if prompt.endswith("Solution:\n"):
            return _slipped(good) if self.slips(index) else good
        if "\nSolution:\n" in prompt:  # step by step (beam search): the next line
            done = prompt.split("\nSolution:\n", 1)[1].splitlines()
            lines = (_slipped(good) if self.slips(index) and not done else good).splitlines()
            if not done:
                return lines[0] + "\n"
            return lines[len(done)] + "\n" if len(done) < len(lines) else ""
        if prompt.endswith("Review:\n"):
            sol = prompt.split("Proposed solution:\n", 1)[1].rsplit("\nReview:", 1)[0]
            for k, line in enumerate(sol.splitlines(), start=1):
                if _line_ok(line) is False:
                    return f"Step {k} is wrong."
            return REVIEW_OK
        if prompt.endswith("Corrected solution:\n"):
            return good
        if prompt.endswith("Score: "):
            sol = prompt.split("Proposed solution:\n", 1)[1].rsplit("\nScore:", 1)[0]
            return "90" if solution_ok(sol) else "-60"
        raise AssertionError(f"unexpected prompt: {prompt[-80:]!r}")

    def _thought(self, prompt: str) -> str:
        q = re.search(r"<problem>(Compute [^<]*)<end_of_thought>", prompt)
        assert q
        steps = write_solution(_expression(q[1])).text.splitlines()
        done = re.findall(r"<expansion>([^<]*)<end_of_thought>", prompt)
        meta_given = any(
            prompt.endswith(f"<{m}>")
            for m in ("expansion", "critic", "refine", "conclusion", "problem")
        )
        k = len(done)
        text = steps[k] if k < len(steps) - 1 else steps[-1]
        meta = "<conclusion>" if k >= len(steps) - 1 else "<expansion>"
        body = text if meta_given else meta + text
        return body + "<end_of_thought><start_of_rating>"

    def step_rewards(
        self, prompts: Sequence[str], ends: Sequence[Sequence[int]], label: int = 1
    ) -> list[tuple[float, ...]]:
        self.calls["reward"] += 1
        self.prompts.extend(prompts)
        return [tuple(_prm_p(p[:e]) for e in es) for p, es in zip(prompts, ends, strict=True)]

    def prob(self, prompt: str, candidates: Sequence[str]) -> dict[str, float]:
        if tuple(candidates) == ("+", "-"):
            p = _prm_p(prompt)
            return {"+": p, "-": 1 - p}
        if JUDGE_YES in candidates:
            a = prompt.split("Solution A:\n", 1)[1].split("\nSolution B:\n", 1)[0]
            b = prompt.split("\nSolution B:\n", 1)[1].rsplit("\nIs solution A", 1)[0]
            oa, ob = solution_ok(a), solution_ok(b)
            p = 0.9 if oa and not ob else 0.1 if ob and not oa else 0.5
            return {JUDGE_YES: p, JUDGE_NO: 1 - p}
        pos, neg = RATING_TOKENS["positive"], RATING_TOKENS["negative"]
        last = prompt.rsplit("<start_of_thought>", 1)[1]
        text = re.sub(r"<[a-z_]+>", "", last.split("<end_of_thought>")[0])
        ok = _line_ok(text)
        if ok is None:  # a conclusion: right iff the boxed value is the last step's result
            steps = re.findall(r"<expansion>([^<]*)<end_of_thought>", prompt)
            box = re.search(r"\\boxed\{(-?\d+)\}", text)
            ok = bool(
                box and steps and steps[-1].endswith(f"= {box[1]}") and all(map(_line_ok, steps))
            )
        p = 0.95 if ok else 0.05
        return {pos: p, neg: 1 - p, **{c: 0.0 for c in candidates if c not in (pos, neg)}}


def _steps_ok(steps: Sequence[str]) -> bool:
    """The last of `steps` is right: a step line by its arithmetic, an answer line when its box
    is the previous step's result and every earlier step is right."""
    ok = _line_ok(steps[-1])
    if ok is not None:
        return ok
    box = re.search(r"\\boxed\{(-?\d+)\}", steps[-1])
    before = steps[:-1]
    return bool(
        box and before and before[-1].endswith(f"= {box[1]}") and all(map(_line_ok, before))
    )


def _prm_p(text: str) -> float:
    """P(correct) of the last step of a Math-Shepherd PRM input ending at its tag."""
    body = text.removesuffix(" ки")
    question, _, rest = body.partition(". ")
    assert question.startswith("Compute"), text
    return 0.95 if _steps_ok(rest.split(" ки\n")) else 0.05


class BatchRecorder(ArithmeticExpert):
    """`ArithmeticExpert` that records, per backend ``generate`` call, the kind of each prompt
    (``solve``, ``review``, ``refine``, ``score``) in call order: `batches`."""

    def __init__(self, slips: Callable[[int], bool] = lambda i: i % 2 == 0) -> None:
        super().__init__(slips)
        self.batches: list[list[str]] = []

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[Generation]]:
        ends = {"Solution:\n": "solve", "Review:\n": "review", "Corrected solution:\n": "refine"}
        kinds = [next((k for e, k in ends.items() if p.endswith(e)), "score") for p in prompts]
        self.batches.append(kinds)
        return super().generate(prompts, params)

"""The step splitter: golden cases per split, generation-time stops, and the round trip."""

from __future__ import annotations

import pytest

from openberry.formats.steps import (
    STEP_SPLITS,
    join_steps,
    split_sentences,
    split_steps,
    step_separator,
    step_stops,
)

BERRY_TINY = "29 + 25 = 54\n\n54 + 15 = 69\nThe answer is \\boxed{69}."

PARAGRAPHS = """We first add the tens.
20 + 30 = 50.

Then the ones: 9 + 5 = 14.

So 50 + 14 = 64.
The answer is \\boxed{64}."""

HEADERS = """Let me solve this step by step.

## Step 1: Find the total
There are 3 boxes of 4.

That is 3 * 4 = 12.

## Step 2: Subtract
12 - 5 = 7.

The answer is \\boxed{7}."""

BOLD_HEADERS = """**Step 1:** 2 + 2 = 4
**Step 2:** 4 * 3 = 12
Therefore, the final answer is \\boxed{12}."""

PLAIN_HEADERS = "Step 1: 2 + 2 = 4\nStep 2. 4 * 3 = 12\nstep 3 - check: 12 / 3 = 4"

NUMBERED = """1. Compute 2 + 3 = 5,
   which is odd.
2. Double it: 10.
3. The answer is \\boxed{10}."""

MARKDOWN_LIST = """We consider two cases:
- if x > 0, then |x| = x;
- if x < 0, then |x| = -x.

In both cases |x| >= 0.

The answer is \\boxed{0}."""

DISPLAY = """We expand:
$$
(a + b)^2 = a^2 + 2ab + b^2

= 9
$$

Then, with \\[
a = 1,
\\] we are done.

The answer is \\boxed{9}."""

CODE = """Run this:
```python
x = 1

print(x + 1)
```

It prints 2. The answer is \\boxed{2}."""

ONE_PARAGRAPH = (
    "The price is $3.50 per item, i.e. cheap. Two items cost $7.00! "
    "So with $x = 2. 5$ nothing changes. The answer is \\boxed{7}."
)


@pytest.mark.parametrize(
    ("text", "split", "steps"),
    [
        (BERRY_TINY, "line", ["29 + 25 = 54", "54 + 15 = 69", "The answer is \\boxed{69}."]),
        (BERRY_TINY, "auto", ["29 + 25 = 54", "54 + 15 = 69", "The answer is \\boxed{69}."]),
        (
            PARAGRAPHS,
            "paragraph",
            [
                "We first add the tens.\n20 + 30 = 50.",
                "Then the ones: 9 + 5 = 14.",
                "So 50 + 14 = 64.",
                "The answer is \\boxed{64}.",
            ],
        ),
        (
            HEADERS,
            "header",
            [
                "Let me solve this step by step.",
                "## Step 1: Find the total\nThere are 3 boxes of 4.\n\nThat is 3 * 4 = 12.",
                "## Step 2: Subtract\n12 - 5 = 7.",
                "The answer is \\boxed{7}.",
            ],
        ),
        (
            BOLD_HEADERS,
            "auto",
            [
                "**Step 1:** 2 + 2 = 4",
                "**Step 2:** 4 * 3 = 12",
                "Therefore, the final answer is \\boxed{12}.",
            ],
        ),
        (
            PLAIN_HEADERS,
            "header",
            ["Step 1: 2 + 2 = 4", "Step 2. 4 * 3 = 12", "step 3 - check: 12 / 3 = 4"],
        ),
        (
            NUMBERED,
            "auto",
            [
                "1. Compute 2 + 3 = 5,\n   which is odd.",
                "2. Double it: 10.",
                "3. The answer is \\boxed{10}.",
            ],
        ),
        (NUMBERED, "paragraph", [NUMBERED.rsplit("\n", 1)[0], "3. The answer is \\boxed{10}."]),
        (
            MARKDOWN_LIST,
            "auto",
            [
                "We consider two cases:\n- if x > 0, then |x| = x;\n- if x < 0, then |x| = -x.",
                "In both cases |x| >= 0.",
                "The answer is \\boxed{0}.",
            ],
        ),
        (
            DISPLAY,
            "auto",
            [
                "We expand:\n$$\n(a + b)^2 = a^2 + 2ab + b^2\n\n= 9\n$$",
                "Then, with \\[\na = 1,\n\\] we are done.",
                "The answer is \\boxed{9}.",
            ],
        ),
        (
            CODE,
            "paragraph",
            [
                "Run this:\n```python\nx = 1\n\nprint(x + 1)\n```",
                "It prints 2. The answer is \\boxed{2}.",
            ],
        ),
        (
            ONE_PARAGRAPH,
            "auto",
            [
                "The price is $3.50 per item, i.e. cheap.",
                "Two items cost $7.00!",
                "So with $x = 2. 5$ nothing changes.",
                "The answer is \\boxed{7}.",
            ],
        ),
        ("No header here.\nJust lines.", "header", ["No header here.\nJust lines."]),
        ("", "auto", []),
        ("\n\n  \n", "paragraph", []),
    ],
)
def test_split_steps_golden(text: str, split: str, steps: list[str]) -> None:
    assert split_steps(text, split) == steps


def test_line_split_is_the_old_split() -> None:
    text = "a\n\n  b  \n$$\nc\n$$\n"
    assert split_steps(text, "line") == [x.strip() for x in text.splitlines() if x.strip()]


def test_a_display_line_inside_a_block_is_not_cut_in_auto_line_fallback() -> None:
    text = "We get\n$$\nx = 1\n$$\nhence y = 2"
    assert split_steps(text, "auto") == ["We get", "$$\nx = 1\n$$", "hence y = 2"]


def test_an_answer_line_alone_or_closing_a_block_stays() -> None:
    assert split_steps("The answer is \\boxed{4}.", "paragraph") == ["The answer is \\boxed{4}."]
    block = "We get\n$$\n\\boxed{4}\n$$"
    assert split_steps(block, "paragraph") == [block]


def test_sentences_keep_math_and_abbreviations() -> None:
    assert split_sentences("Let $a. B$ be. Then e.g. Foo holds. 3 is odd.") == [
        "Let $a. B$ be.",
        "Then e.g. Foo holds.",
        "3 is odd.",
    ]


@pytest.mark.parametrize("split", STEP_SPLITS)
def test_joined_steps_split_back(split: str) -> None:
    steps = ["Step 1: a = 1.", "Step 2: b = 2.", "The answer is \\boxed{3}."]
    assert split_steps(join_steps(steps, split), split) == steps


@pytest.mark.parametrize("split", STEP_SPLITS)
def test_header_stops_never_match_the_opening_header(split: str) -> None:
    """A generation starts with its own header (no newline before it): no stop matches there;
    the next step's header does, right after the newline."""
    step = "## Step 2: Add\n2 + 2 = 4."
    generated = step + "\n## Step 3: Done"
    stops = step_stops(split)
    hits = [generated.find(s) for s in stops if s in generated]
    assert all(h > 0 for h in hits)
    if split in ("header", "auto"):
        assert generated[: min(hits)] == step


def test_stops_and_separators() -> None:
    assert step_stops("line") == ("\n",) and step_separator("line") == "\n"
    assert step_stops("paragraph") == ("\n\n",) and step_separator("paragraph") == "\n\n"
    assert "\n\n" in step_stops("auto") and "\nStep " in step_stops("auto")
    assert "\n\n" not in step_stops("header")
    assert join_steps(["a", "b"], "line") == "a\nb\n"
    with pytest.raises(ValueError, match="unknown step split 'words'"):
        split_steps("x", "words")

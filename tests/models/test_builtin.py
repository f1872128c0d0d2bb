"""Built-in model names: resolution, the error when weights are missing, and berry-tiny itself."""

from __future__ import annotations

import pytest

from openberry.models import builtin
from openberry.models.base import ModelError


def test_other_names_pass_through() -> None:
    assert builtin.resolve_model("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"
    assert builtin.resolve_model("./runs/x/final") == "./runs/x/final"
    assert builtin.DEFAULT_MODEL in builtin.BUILTIN_MODELS


def test_missing_weights_are_a_clear_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(builtin, "builtin_dir", lambda name: tmp_path / "none")
    with pytest.raises(ModelError, match="berry train sft --recipe tiny"):
        builtin.resolve_model("berry-tiny")


@pytest.fixture(scope="module")
def berry_tiny():
    pytest.importorskip("torch")
    from openberry.models.hf import HFPolicy

    return HFPolicy.from_pretrained("berry-tiny")


def test_berry_tiny_ships_within_budget() -> None:
    path = builtin.builtin_dir("berry-tiny")
    size = (path / "model.safetensors").stat().st_size
    assert size <= 20 * 1024 * 1024
    assert {p.name for p in path.iterdir()} >= {"config.json", "tokenizer.json"}


def test_berry_tiny_loads_offline_and_solves_an_easy_problem(berry_tiny, monkeypatch) -> None:
    from openberry.formats.prompts import solve_prompt
    from openberry.models import SamplingParams

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert berry_tiny.name == "berry-tiny"
    params = SamplingParams(max_new_tokens=64, temperature=0)
    [[gen]] = berry_tiny.generate([solve_prompt("Compute 21 + 12 + 3.")], params)
    assert gen.text == "21 + 12 = 33\n33 + 3 = 36\nThe answer is \\boxed{36}."
    assert gen.finish_reason == "eos"
    n_params = sum(p.numel() for p in berry_tiny.model.parameters())
    assert n_params <= 10_000_000


def test_berry_tiny_role_tokens_are_single_tokens(berry_tiny) -> None:
    from openberry.formats.openlongcot import SPECIAL_TOKENS
    from openberry.formats.prompts import JUDGE_NO, JUDGE_YES

    tok = berry_tiny.tokenizer
    for token in (*SPECIAL_TOKENS, JUDGE_YES, JUDGE_NO):
        assert len(tok.encode(token, add_special_tokens=False)) == 1, token


def test_berry_tiny_writes_thoughts_and_rates_them(berry_tiny) -> None:
    """Policy and value roles in OpenLongCoT form (the shipped weights, greedy, deterministic)."""
    from openberry.data.arithmetic import load_split
    from openberry.data.arithmetic.expression import parse_step
    from openberry.data.arithmetic.solutions import write_solution
    from openberry.data.arithmetic.trees import solution_tree
    from openberry.formats.openlongcot import RATING_TOKENS, policy_prompt, value_prompt
    from openberry.models import SamplingParams

    (example,) = load_split("test", limit=1)
    tree = solution_tree(example.problem, write_solution(example.problem.meta["expression"]))
    params = SamplingParams(max_new_tokens=24, temperature=0, stop=("<end_of_thought>",))
    [[step]] = berry_tiny.generate([policy_prompt(tree, 0, "expansion", new_id=1)], params)
    assert step.finish_reason == "stop" and parse_step(step.text) is not None
    right, wrong = "29 + 25 = 54", "29 + 25 = 44"  # the first step of this problem, and a slip
    assert example.problem.question == "Compute 29 + 25 + 15."
    pos, neg = RATING_TOKENS["positive"], RATING_TOKENS["negative"]
    probs = berry_tiny.next_token_probs(
        [value_prompt(tree, 0, "expansion", text, 1) for text in (right, wrong)], [pos, neg]
    )
    share = [p[pos] / (p[pos] + p[neg]) for p in probs]
    assert share[0] > 0.5 > share[1]


def test_berry_tiny_states_its_context_length(berry_tiny, monkeypatch) -> None:
    """`max_context` (read-only) is what `berry eval` checks questions against."""
    from types import SimpleNamespace

    assert berry_tiny.max_context == berry_tiny.runtime.model.config.max_position_embeddings
    assert berry_tiny.max_context == 1024
    # Without a length in the model config, the tokenizer's model_max_length (also 1024) is used.
    monkeypatch.setattr(berry_tiny.runtime, "model", SimpleNamespace(config=SimpleNamespace()))
    assert berry_tiny.max_context == berry_tiny.tokenizer.model_max_length == 1024
    monkeypatch.setattr(berry_tiny.tokenizer, "model_max_length", int(1e30))  # transformers: unset
    assert berry_tiny.max_context is None

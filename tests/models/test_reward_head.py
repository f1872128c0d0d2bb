"""`HFRewardModel`: step rewards of tiny token- and sequence-classification Llamas against a
direct computation, batching, loading through `ModelSpec`, the remote-code refusal, and the
``prm-head`` / ``prm`` scorers end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from models.tiny import save_tiny_model, tiny_llama_config, tiny_tokenizer
from openberry.models import FakePolicy, ModelError
from openberry.models.spec import ModelSpec
from openberry.records import Problem
from openberry.search import make_search, run_search
from openberry.search.scorers import ScorerConfig, prm_text

torch = pytest.importorskip("torch")

from openberry.models.hf.reward import HFRewardModel, reward_head  # noqa: E402

QUESTION = "Compute 2 + 3."
STEPS = ["2 + 3 = 5", "5 is odd", "The answer is \\boxed{5}."]


def tiny_classifier(kind: str, num_labels: int = 2) -> Any:
    """A seeded 2-layer Llama with a token or sequence classification head."""
    from transformers import LlamaForSequenceClassification, LlamaForTokenClassification

    torch.manual_seed(0)
    config = tiny_llama_config(len(tiny_tokenizer()), num_labels=num_labels)
    cls = LlamaForTokenClassification if kind == "token" else LlamaForSequenceClassification
    return cls(config).eval()


@pytest.fixture(scope="module", params=["token", "sequence"])
def head(request) -> HFRewardModel:
    return HFRewardModel(tiny_classifier(request.param), tiny_tokenizer(), kind=request.param)


def direct(model: HFRewardModel, text: str, end: int, label: int) -> float:
    """The class probability computed by hand: the char tokenizer gives token i = char i, so
    a token head is read at position end - 1 of the whole text; a sequence head on text[:end]."""
    tok = model.tokenizer
    with torch.no_grad():
        if model.kind == "token":
            ids = torch.tensor([tok(text)["input_ids"]])
            logits = model.model(input_ids=ids).logits[0, end - 1]
        else:
            ids = torch.tensor([tok(text[:end])["input_ids"]])
            logits = model.model(input_ids=ids).logits[0]
    return float(torch.softmax(logits.float(), -1)[label])


@pytest.mark.parametrize("label", [0, 1])
def test_step_rewards_match_a_direct_computation(head: HFRewardModel, label: int) -> None:
    text, ends = prm_text(QUESTION, STEPS, ScorerConfig(prm_tag=" #"))
    (got,) = head.step_rewards([text], [ends], label)
    expected = [direct(head, text, e, label) for e in ends]
    assert got == pytest.approx(expected, abs=1e-5)
    assert got[0] != pytest.approx(got[1])


def test_batching_gives_the_rewards_one_at_a_time(head: HFRewardModel) -> None:
    cfg = ScorerConfig(prm_tag=" #")
    inputs = [prm_text(QUESTION, STEPS[:k], cfg) for k in (1, 3, 2)]
    inputs.append(prm_text("A much longer question, to pad the others: 12 * 7?", STEPS, cfg))
    together = head.step_rewards([t for t, _ in inputs], [e for _, e in inputs])
    alone = [head.step_rewards([t], [e])[0] for t, e in inputs]
    small = HFRewardModel(head.model, head.tokenizer, kind=head.kind, batch_rows=1)
    rows_of_one = small.step_rewards([t for t, _ in inputs], [e for _, e in inputs])
    for a, b, c in zip(together, alone, rows_of_one, strict=True):
        assert a == pytest.approx(b, abs=1e-5) and a == pytest.approx(c, abs=1e-5)


def test_a_one_logit_head_gives_a_sigmoid() -> None:
    model = HFRewardModel(tiny_classifier("token", 1), tiny_tokenizer())
    text, ends = prm_text(QUESTION, STEPS[:1], ScorerConfig())
    ids = torch.tensor([model.tokenizer(text)["input_ids"]])
    with torch.no_grad():
        logit = model.model(input_ids=ids).logits[0, ends[0] - 1, 0]
    assert model.step_rewards([text], [ends])[0][0] == pytest.approx(float(torch.sigmoid(logit)))
    with pytest.raises(ModelError, match="label 3"):
        HFRewardModel(tiny_classifier("token"), tiny_tokenizer()).step_rewards([text], [ends], 3)


def save_classifier(path: Path, kind: str) -> Path:
    tiny_classifier(kind).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


def test_model_spec_builds_a_reward_head_and_leaves_causal_lms_alone(tmp_path: Path) -> None:
    token = save_classifier(tmp_path / "token", "token")
    built = ModelSpec(str(token)).build()
    assert isinstance(built, HFRewardModel) and built.kind == "token"
    assert reward_head(str(save_classifier(tmp_path / "seq", "sequence"))).kind == "sequence"
    assert reward_head(str(save_tiny_model(tmp_path / "causal"))) is None
    text, ends = prm_text(QUESTION, STEPS, ScorerConfig())
    assert built.step_rewards([text], [ends])[0] == pytest.approx(
        HFRewardModel(tiny_classifier("token"), tiny_tokenizer()).step_rewards([text], [ends])[0],
        abs=1e-6,
    )


def test_remote_code_is_refused_unless_asked(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["Qwen2ForProcessRewardModel"],
                "auto_map": {"AutoModel": "modeling_qwen2_rm.Qwen2ForProcessRewardModel"},
                "model_type": "qwen2",
            }
        )
    )
    assert ModelSpec(str(tmp_path)).trust_remote_code is False
    with pytest.raises(ModelError, match="pass --trust-remote-code"):
        ModelSpec(str(tmp_path)).build()
    head = reward_head(str(tmp_path), trust_remote_code=True)
    assert head is not None and head.remote and head.auto_class == "AutoModel"
    (tmp_path / "config.json").write_text(
        json.dumps({"architectures": ["NoSuchForTokenClassification"]})
    )
    with pytest.raises(ModelError, match="ships no code"):
        reward_head(str(tmp_path), trust_remote_code=True)


PROBLEM = Problem(id="p/1", question="Compute 2 + 3, then double it.")
PARAGRAPHS = [
    "We add 2 and 3.\nThat gives 5.",
    "Then we double it: 10.",
    "The answer is \\boxed{10}.",
]


def scripted_policy() -> FakePolicy:
    script = {"Solution:\n": "\n\n".join(PARAGRAPHS)}
    for k in range(1, len(PARAGRAPHS)):
        script[PARAGRAPHS[k - 1] + "\n\n"] = "\n\n".join(PARAGRAPHS[k:])
    return FakePolicy(seed=1, script=script)


@pytest.mark.parametrize(
    ("method", "overrides"),
    [
        ("best-of-n", {"scorer": "prm-head", "scorer_config.step_split": "paragraph"}),
        ("beam", {"step_scorer": "prm-head", "step_split": "paragraph"}),
        ("step-mcts", {"step_scorer": "prm-head", "step_split": "paragraph", "rollout": "true"}),
    ],
)
def test_search_with_a_reward_head_prm(head: HFRewardModel, method: str, overrides: dict) -> None:
    models = {"policy": scripted_policy(), "value": head}
    (result,) = run_search(make_search(method, 2, overrides), [PROBLEM], models)
    assert result.answer == "10" and result.stats.scored_tokens > 0
    text, ends = prm_text(PROBLEM.question, PARAGRAPHS, ScorerConfig())
    rewards = [round(r, 4) for r in head.step_rewards([text], [ends])[0]]
    tree = result.tree
    if method == "beam":
        assert [tree.nodes[i].value for i in tree.chosen[1:]] == rewards
    elif method == "step-mcts":
        assert [tree.nodes[i].info["step_value"] for i in tree.chosen[1:]] == rewards
    else:
        assert tree.nodes[tree.chosen[-1]].info["score"] == min(rewards)


def test_search_with_a_token_probability_prm_on_a_causal_lm() -> None:
    from models.tiny import tiny_hf_policy

    value = tiny_hf_policy("prm")
    over = {"step_scorer": "prm", "step_split": "paragraph", "scorer_config.prm_tag": " #"}
    (result,) = run_search(
        make_search("beam", 2, over), [PROBLEM], {"policy": scripted_policy(), "value": value}
    )
    cfg = ScorerConfig(prm_tag=" #")
    text, ends = prm_text(PROBLEM.question, PARAGRAPHS, cfg)
    probs = value.next_token_probs([text[:e] for e in ends], ["+", "-"])
    rewards = [round(p["+"] / (p["+"] + p["-"]), 4) for p in probs]
    got = [result.tree.nodes[i].value for i in result.tree.chosen[1:]]
    assert got == pytest.approx(rewards, abs=1e-4) and result.answer == "10"

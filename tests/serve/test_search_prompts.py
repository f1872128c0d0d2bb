"""``berry serve --prompts``: the served searches use the profile chosen for the server."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient

from openberry.formats.chat import ChatPrompt
from openberry.formats.profiles import PAPER
from search.chat_policies import ChatExpert


def test_served_searches_use_the_servers_profile() -> None:
    from openberry.serve.app import create_app

    policy = ChatExpert()
    app = create_app(policy, model_name="chat", search_rollouts=1, prompts="paper")
    assert app.state.server.prompts is PAPER
    body = {"model": "berry-greedy", "prompt": "Compute 21 + 12 + 3."}
    with TestClient(app) as client:
        r = client.post("/v1/completions", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["openberry"]["config"]["prompts"]["name"] == "paper"
    assert any(isinstance(p, ChatPrompt) for p in policy.prompts)
    assert create_app(ChatExpert(), model_name="x").state.server.prompts.name == "tiny"


def test_auto_gives_a_served_instruct_model_the_paper_prompts() -> None:
    """The server never wraps completions prompts in the chat template, so ``auto`` looks at
    the tokenizer: one with a chat template (an instruct model) gets the paper prompts."""
    from types import SimpleNamespace

    from openberry.serve.app import create_app

    policy = ChatExpert()
    policy.tokenizer = SimpleNamespace(chat_template="{{ messages }}")
    assert create_app(policy, model_name="chat").state.server.prompts is PAPER
    assert create_app(policy, model_name="chat", prompts="tiny").state.server.prompts.name == "tiny"

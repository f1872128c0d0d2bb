"""The OpenAI-compatible server, run for real on a loopback port over a tiny in-process Llama."""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from models.tiny import live_server, tiny_hf_policy  # noqa: E402

KEY = "sk-test-secret-123"


@pytest.fixture(scope="module")
def policy():
    return tiny_hf_policy()


@pytest.fixture(scope="module")
def client(policy):
    from openberry.serve.app import create_app

    with (
        live_server(create_app(policy, model_name="tiny")) as url,
        httpx.Client(base_url=url, timeout=30) as c,
    ):
        yield c


def _complete(client, **body):
    r = client.post("/v1/completions", json={"model": "tiny", **body})
    assert r.status_code == 200, r.text
    return r.json()


def test_models(client) -> None:
    data = client.get("/v1/models").json()
    ids = [m["id"] for m in data["data"]]
    assert ids[0] == "tiny"  # then the search methods as berry-<method> (test_search_models.py)
    assert all(i.startswith("berry-") for i in ids[1:])
    assert client.get("/v1/models/tiny").status_code == 200
    assert client.get("/v1/models/other").status_code == 404


def test_completions_n_logprobs_usage(client, policy) -> None:
    from openberry.models import SamplingParams

    out = _complete(client, prompt=["ab", "x"], n=2, max_tokens=6, logprobs=1, temperature=0)
    assert [c["index"] for c in out["choices"]] == [0, 1, 2, 3]
    direct = policy.generate(["ab", "x"], SamplingParams(n=2, max_new_tokens=6, temperature=0))
    gens = [g for row in direct for g in row]
    for c, g in zip(out["choices"], gens, strict=True):
        assert c["text"] == g.text
        lp = c["logprobs"]
        assert lp["token_logprobs"] == pytest.approx(list(g.logprobs), abs=1e-5)
        assert len(lp["tokens"]) == len(lp["text_offset"]) == g.num_tokens
        # logprobs=1: the single most likely token per position, the greedy choice itself.
        assert [list(top) for top in lp["top_logprobs"]] == [[t] for t in lp["tokens"]]
        assert (
            c["finish_reason"]
            == {"eos": "stop", "length": "length", "stop": "stop"}[g.finish_reason]
        )
    assert out["choices"][0]["logprobs"]["text_offset"][0] == 2
    usage = out["usage"]
    assert usage["completion_tokens"] == sum(g.num_tokens for g in gens)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert _complete(client, prompt="ab", max_tokens=3)["choices"][0]["logprobs"] is None


def test_echo_and_top_logprobs(client, policy) -> None:
    prompt, completion = "Q: 12+7=?", "\nA: 19"
    out = _complete(client, prompt=prompt + completion, max_tokens=1, echo=True, logprobs=0)
    (c,) = out["choices"]
    assert c["text"].startswith(prompt + completion)
    lp = c["logprobs"]
    n = len(prompt + completion)  # one token per character with this tokenizer
    assert lp["tokens"][:n] == list(prompt + completion)
    assert lp["text_offset"][:n] == list(range(n))
    assert lp["token_logprobs"][0] is None
    (scored,) = policy.score([prompt], [completion])
    tail = lp["token_logprobs"][len(prompt) : n]
    assert tail == pytest.approx(list(scored), abs=1e-5)
    # logprobs=k: top k per generated token, the greedy token first.
    out = _complete(client, prompt="ab", max_tokens=4, logprobs=4, temperature=0)
    lp = out["choices"][0]["logprobs"]
    assert len(lp["top_logprobs"]) == len(lp["tokens"])
    rows = zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"], strict=True)
    for token, value, top in rows:
        assert len(top) == 4
        assert max(top, key=top.get) == token
        assert top[token] == pytest.approx(value, abs=1e-5)
    (probs,) = policy.next_token_probs(["ab"], list(out["choices"][0]["logprobs"]["tokens"][:1]))
    first_top = lp["top_logprobs"][0]
    for tok, p in probs.items():
        assert first_top[tok] == pytest.approx(math.log(p), abs=1e-5)


def test_echo_needs_policy_support() -> None:
    from openberry.models import FakePolicy
    from openberry.serve.app import create_app

    with (
        live_server(create_app(FakePolicy(seed=0), model_name="fake")) as url,
        httpx.Client(base_url=url, timeout=30) as c,
    ):
        body = {"model": "fake", "prompt": "a", "max_tokens": 2}
        assert c.post("/v1/completions", json={**body, "echo": True}).status_code == 200
        for extra in ({"echo": True, "logprobs": 0}, {"logprobs": 3}):
            r = c.post("/v1/completions", json={**body, **extra})
            assert r.status_code == 400, r.text
            assert r.json()["error"]["code"] == "unsupported_parameter"


def test_stop_and_seed(client) -> None:
    full = _complete(client, prompt="Q: 1+1=", max_tokens=20, temperature=0)["choices"][0]
    assert full["finish_reason"] == "length"
    stop = full["text"][3:5]
    cut = _complete(client, prompt="Q: 1+1=", max_tokens=20, temperature=0, stop=stop)
    choice = cut["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["text"] == full["text"][: full["text"].index(stop)]
    a = _complete(client, prompt="abc", max_tokens=8, n=3, seed=7)
    b = _complete(client, prompt="abc", max_tokens=8, n=3, seed=7)
    assert [c["text"] for c in a["choices"]] == [c["text"] for c in b["choices"]]
    g1 = _complete(client, prompt="abc", max_tokens=8, temperature=0)
    g2 = _complete(client, prompt="abc", max_tokens=8, temperature=0)
    assert g1["choices"][0]["text"] == g2["choices"][0]["text"]


def test_chat_completions(client, policy) -> None:
    from openberry.models import SamplingParams
    from openberry.serve.app import render_chat

    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    r = client.post(
        "/v1/chat/completions",
        json={
            "model": "tiny",
            "messages": messages,
            "max_tokens": 5,
            "temperature": 0,
            "logprobs": True,
        },
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["object"] == "chat.completion"
    prompt = render_chat(policy, messages)
    assert prompt == "system: be brief\nuser: hi\nassistant:"
    (g,) = policy.generate([prompt], SamplingParams(max_new_tokens=5, temperature=0))[0]
    msg = out["choices"][0]["message"]
    assert msg == {"role": "assistant", "content": g.text}
    content = out["choices"][0]["logprobs"]["content"]
    assert [e["logprob"] for e in content] == pytest.approx(list(g.logprobs), abs=1e-5)
    r = client.post(
        "/v1/chat/completions",
        json={
            "model": "tiny",
            "messages": messages,
            "logprobs": True,
            "top_logprobs": 3,
            "temperature": 0,
            "max_tokens": 5,
        },
    )
    assert r.status_code == 200, r.text
    content = r.json()["choices"][0]["logprobs"]["content"]
    for entry in content:
        tops = entry["top_logprobs"]
        assert len(tops) == 3
        # Greedy: the chosen token is the most likely one, with the same log p.
        assert tops[0]["token"] == entry["token"]
        assert tops[0]["logprob"] == pytest.approx(entry["logprob"], abs=1e-5)
        assert [t["logprob"] for t in tops] == sorted((t["logprob"] for t in tops), reverse=True)


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/v1/completions", {"model": "tiny"}, 400, "prompt"),
        ("/v1/completions", {"model": "tiny", "prompt": "a", "n": 0}, 400, "n"),
        (
            "/v1/completions",
            {"model": "tiny", "prompt": "a", "temperature": -1},
            400,
            "temperature",
        ),
        ("/v1/completions", {"model": "tiny", "prompt": "a", "top_p": 0}, 400, "top_p"),
        ("/v1/completions", {"model": "tiny", "prompt": 5}, 400, "prompt"),
        ("/v1/completions", {"model": "tiny", "prompt": "a", "n": "many"}, 400, "n"),
        ("/v1/completions", {"model": "tiny", "prompt": "a", "max_tokens": 0}, 400, "max_tokens"),
        ("/v1/completions", {"model": "tiny", "prompt": "a", "stop": [""]}, 400, "stop"),
        ("/v1/completions", {"model": "tiny", "prompt": []}, 400, "prompt"),
        ("/v1/completions", {"model": "nope", "prompt": "a"}, 404, "model"),
        ("/v1/completions", [1, 2], 400, None),
        ("/v1/chat/completions", {"model": "tiny", "messages": []}, 400, "messages"),
        ("/v1/chat/completions", {"model": "tiny", "messages": [{"role": "x"}]}, 400, "messages"),
        ("/v1/chat/completions", {"model": "tiny"}, 400, "messages"),
    ],
)
def test_bad_requests_are_4xx(client, path, body, status, param) -> None:
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"]
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param


def test_invalid_json_and_unknown_path(client) -> None:
    r = client.post(
        "/v1/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert "JSON" in r.json()["error"]["message"]
    r = client.get("/v1/nothing")
    assert r.status_code == 404
    assert r.json()["error"]["message"]


def test_streaming(client) -> None:
    body = {
        "model": "tiny",
        "prompt": "ab",
        "max_tokens": 40,
        "n": 2,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with client.stream("POST", "/v1/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [ln for ln in r.iter_lines() if ln]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(ln[len("data: ") :]) for ln in lines[:-1]]
    assert chunks[-1]["usage"]["completion_tokens"] > 0
    full = _complete(client, prompt="ab", max_tokens=40, n=2, temperature=0)
    for choice in full["choices"]:
        parts = [
            c["choices"][0] for c in chunks[:-1] if c["choices"][0]["index"] == choice["index"]
        ]
        assert "".join(p["text"] for p in parts) == choice["text"]
        assert parts[-1]["finish_reason"] == choice["finish_reason"]
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 20,
        "temperature": 0,
        "stream": True,
    }
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        lines = [ln for ln in r.iter_lines() if ln]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(ln[len("data: ") :]) for ln in lines[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_api_key_required(policy, caplog) -> None:
    from openberry.serve.app import create_app

    with live_server(create_app(policy, model_name="tiny", api_key=KEY)) as url:
        body = {"model": "tiny", "prompt": "a", "max_tokens": 2}
        r = httpx.post(url + "/v1/completions", json=body)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_api_key"
        r = httpx.get(url + "/v1/models", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        r = httpx.post(
            url + "/v1/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
        )
        assert r.status_code == 200
    assert KEY not in caplog.text


def test_cli_refuses_public_host_without_key(monkeypatch, capsys) -> None:
    from openberry.cli import main as cli_main

    monkeypatch.delenv("BERRY_API_KEY", raising=False)
    if "openberry.cli.serve" not in cli_main._COMMAND_MODULES:
        monkeypatch.setattr(
            cli_main, "_COMMAND_MODULES", (*cli_main._COMMAND_MODULES, "openberry.cli.serve")
        )
    code = cli_main.main(["serve", "--model", "/nonexistent", "--host", "0.0.0.0"])
    assert code == 2
    assert "without an API key" in capsys.readouterr().err
    from openberry.cli.serve import check_bind

    check_bind("0.0.0.0", "k")
    check_bind("::1", None)

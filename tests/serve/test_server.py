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


# ------------------------------------------------------------------- exact response layout
# Clients and the OpenAI SDK read these bodies field by field; the tests below pin the layout
# (key order included) so that the server can be reshaped without changing a byte.

ID = {"text_completion": r"cmpl-[0-9a-f]{32}", "chat.completion": r"chatcmpl-[0-9a-f]{32}"}
CHOICE_KEYS = ["index", "text", "logprobs", "finish_reason", "stop_reason"]
CHAT_CHOICE_KEYS = ["index", "message", "logprobs", "finish_reason", "stop_reason"]


def _stream(client, path, body) -> list[dict]:
    """The chunks of a streamed answer, checking the framing: ``data: <json.dumps>\\n\\n``
    events, then ``data: [DONE]``."""
    with client.stream("POST", path, json=body) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read().decode()
    events = raw.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    chunks = []
    for event in events[:-2]:
        assert event.startswith("data: ")
        chunk = json.loads(event[len("data: ") :])
        assert event[len("data: ") :] == json.dumps(chunk)
        chunks.append(chunk)
    return chunks


def _pieces(text: str) -> list[str]:
    return [text[i : i + 16] for i in range(0, len(text), 16)]


def _rounded(obj):
    """`obj` with floats rounded (two generate calls may differ in the last bits)."""
    if isinstance(obj, float):
        return round(obj, 4)
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v) for v in obj]
    return obj


def _logprobs_like(got, want):
    """`got` after checking it matches `want` (key order and values, floats to 4 places)."""
    assert json.dumps(_rounded(got)) == json.dumps(_rounded(want))
    return got


def test_response_layout(client) -> None:
    import re

    out = _complete(client, prompt=["ab", "x"], n=2, max_tokens=3, logprobs=1, temperature=0)
    assert list(out) == ["id", "object", "created", "model", "choices", "usage"]
    assert re.fullmatch(ID["text_completion"], out["id"]) and out["model"] == "tiny"
    assert isinstance(out["created"], int) and out["object"] == "text_completion"
    assert all(list(c) == CHOICE_KEYS for c in out["choices"])
    lp = out["choices"][0]["logprobs"]
    assert list(lp) == ["tokens", "token_logprobs", "top_logprobs", "text_offset"]
    assert list(out["usage"]) == ["prompt_tokens", "completion_tokens", "total_tokens"]
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    r = client.post("/v1/chat/completions", json={**body, "logprobs": True, "top_logprobs": 2})
    out = r.json()
    assert list(out) == ["id", "created", "model", "object", "choices", "usage"]
    assert re.fullmatch(ID["chat.completion"], out["id"]) and out["object"] == "chat.completion"
    (choice,) = out["choices"]
    assert list(choice) == CHAT_CHOICE_KEYS and list(choice["message"]) == ["role", "content"]
    entry = choice["logprobs"]["content"][0]
    assert list(entry) == ["token", "logprob", "bytes", "top_logprobs"]
    assert list(entry["top_logprobs"][0]) == ["token", "logprob", "bytes"]


def test_search_response_layout(client) -> None:
    import re

    fields = ["method", "answer", "chosen", "nodes", "stats", "config", "rollouts", "seed"]
    extra = {"search_config": {"max_new_tokens": 8}, "seed": 5}
    out = _complete(client, model="berry-greedy", prompt="1+1?", **extra)
    assert list(out) == ["id", "object", "created", "model", "choices", "usage", "openberry"]
    assert re.fullmatch(ID["text_completion"], out["id"]) and out["object"] == "text_completion"
    assert out["model"] == "berry-greedy" and list(out["openberry"]) == fields
    (choice,) = out["choices"]
    assert choice == {
        "index": 0,
        "text": choice["text"],
        "logprobs": None,
        "finish_reason": "stop",
        "stop_reason": None,
    }
    assert list(choice) == CHOICE_KEYS
    text, summary = choice["text"], out["openberry"]
    messages = [{"role": "system", "content": "x"}, {"role": "user", "content": "1+1?"}]
    body = {"model": "berry-greedy", "messages": messages, **extra}
    chat = client.post("/v1/chat/completions", json=body).json()
    assert list(chat) == ["id", "object", "created", "model", "choices", "usage", "openberry"]
    assert re.fullmatch(ID["chat.completion"], chat["id"]) and chat["object"] == "chat.completion"
    (choice,) = chat["choices"]
    assert list(choice) == CHAT_CHOICE_KEYS
    assert choice["message"] == {"role": "assistant", "content": text}
    assert (choice["logprobs"], choice["finish_reason"], choice["stop_reason"]) == (
        None,
        "stop",
        None,
    )
    summary["stats"].pop("wall_time"), chat["openberry"]["stats"].pop("wall_time")
    assert chat["openberry"] == summary and chat["usage"] == out["usage"]


def test_streamed_chunks_exactly(client) -> None:
    body = {"model": "tiny", "prompt": "ab", "max_tokens": 20, "n": 2, "temperature": 0}
    body["logprobs"] = 1
    full = _complete(client, **{k: v for k, v in body.items() if k != "model"})
    chunks = _stream(client, "/v1/completions", {**body, "stream": True})
    head = {"id": chunks[0]["id"], "object": "text_completion", "created": chunks[0]["created"]}
    head["model"] = "tiny"
    expected = []
    for c in full["choices"]:
        pieces = _pieces(c["text"]) or [""]
        for k, piece in enumerate(pieces):
            last = k == len(pieces) - 1
            chunk = {"index": c["index"], "text": piece}
            got = chunks[len(expected)]["choices"][0]["logprobs"]
            chunk["logprobs"] = _logprobs_like(got, c["logprobs"]) if last else None
            chunk["finish_reason"] = c["finish_reason"] if last else None
            expected.append({**head, "choices": [chunk]})
    assert [json.dumps(c) for c in chunks] == [json.dumps(c) for c in expected]
    # include_usage: one more chunk with no choices.
    body["stream_options"] = {"include_usage": True}
    chunks = _stream(client, "/v1/completions", {**body, "stream": True})
    assert chunks[-1] == {**chunks[-1], "choices": [], "usage": full["usage"]}
    assert list(chunks[-1]) == ["id", "object", "created", "model", "choices", "usage"]

    messages = [{"role": "user", "content": "hi"}]
    body = {"model": "tiny", "messages": messages, "max_tokens": 20, "n": 2, "temperature": 0}
    body["logprobs"] = True
    full = client.post("/v1/chat/completions", json=body).json()
    body["stream_options"] = {"include_usage": True}
    chunks = _stream(client, "/v1/chat/completions", {**body, "stream": True})
    head = {"id": chunks[0]["id"], "created": chunks[0]["created"], "model": "tiny"}
    head["object"] = "chat.completion.chunk"
    expected = []
    for c in full["choices"]:
        i, text = c["index"], c["message"]["content"]
        deltas = [{"role": "assistant", "content": ""}] + [{"content": p} for p in _pieces(text)]
        for delta in deltas:
            chunk = {"index": i, "delta": delta, "logprobs": None, "finish_reason": None}
            expected.append({**head, "choices": [chunk]})
        got = chunks[len(expected)]["choices"][0]["logprobs"]
        end = {"index": i, "delta": {}, "logprobs": _logprobs_like(got, c["logprobs"])}
        end["finish_reason"] = c["finish_reason"]
        expected.append({**head, "choices": [end]})
    expected.append({**head, "choices": [], "usage": full["usage"]})
    assert [json.dumps(c) for c in chunks] == [json.dumps(c) for c in expected]


def test_api_key_guards_every_v1_path(policy) -> None:
    from fastapi.testclient import TestClient

    from openberry.serve.app import create_app

    denied = {
        "error": {
            "message": "missing or invalid API key (send 'Authorization: Bearer <key>')",
            "type": "authentication_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    ok = {"Authorization": f"Bearer {KEY}"}
    chat = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    calls = [
        ("GET", "/v1/models", None),
        ("GET", "/v1/models/tiny", None),
        ("GET", "/v1/models/berry-greedy", None),
        ("POST", "/v1/completions", {"model": "tiny", "prompt": "a", "max_tokens": 2}),
        ("POST", "/v1/chat/completions", chat),
        ("POST", "/v1/completions", {"model": "berry-greedy", "prompt": "a"}),
    ]
    with TestClient(create_app(policy, model_name="tiny", api_key=KEY)) as c:
        for method, path, body in [*calls, ("GET", "/v1/nothing", None)]:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
                r = c.request(method, path, json=body, headers=headers)
                assert r.status_code == 401 and r.json() == denied, (method, path)
        for method, path, body in calls[:5]:
            assert c.request(method, path, json=body, headers=ok).status_code == 200, path
        # Only /v1 paths need the key; the rest are unknown paths.
        assert c.get("/nothing").status_code == 404


class _Failing:
    """A policy whose generate raises `exc`."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def generate(self, prompts, params):
        raise self.exc


def test_error_bodies() -> None:
    from fastapi.testclient import TestClient

    from openberry.models.base import ModelError
    from openberry.serve.app import create_app

    def error(message, type="invalid_request_error", param=None, code=None):
        return {"error": {"message": message, "type": type, "param": param, "code": code}}

    chat = {"model": "p", "messages": [{"role": "user", "content": "hi"}]}
    search = {"model": "berry-greedy", "prompt": "a"}
    plain = {"model": "p", "prompt": "a"}
    app = create_app(_Failing(RuntimeError("boom")), model_name="p")
    with TestClient(app, raise_server_exceptions=False) as c:
        fault = error("internal server error: RuntimeError", "server_error")
        for path, body in [("/v1/completions", plain), ("/v1/chat/completions", chat)]:
            r = c.post(path, json=body)
            assert (r.status_code, r.json()) == (500, fault)
        r = c.post("/v1/completions", json=search)
        assert (r.status_code, r.json()) == (500, fault)
        r = c.get("/v1/completions")
        assert (r.status_code, r.json()) == (405, error("Method Not Allowed"))
        r = c.get("/v1/nothing")
        assert (r.status_code, r.json()) == (404, error("Not Found", code="not_found"))
        r = c.post("/v1/completions", json={**plain, "model": "q"})
        served = "'p', " + ", ".join(repr(m["id"]) for m in c.get("/v1/models").json()["data"][1:])
        message = f"model 'q' does not exist; this server serves {served}"
        assert r.json() == error(message, param="model", code="model_not_found")
        r = c.post("/v1/completions", json={"model": "p"})
        assert r.json() == error("missing required field 'prompt'", param="prompt")
        r = c.post("/v1/completions", json={**plain, "n": 0, "top_p": 0})
        message = "invalid value for 'top_p': Input should be greater than 0"
        assert r.json() == error(f"{message} (and 1 more error(s))", param="top_p")
    with TestClient(create_app(_Failing(ModelError("nope")), model_name="p")) as c:
        for path, body in [("/v1/completions", plain), ("/v1/chat/completions", chat)]:
            r = c.post(path, json=body)
            assert (r.status_code, r.json()) == (400, error("generation failed: nope"))
        r = c.post("/v1/completions", json=search)
        assert (r.status_code, r.json()) == (400, error("search failed: nope"))

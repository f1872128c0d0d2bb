"""Request limits, clean errors, a full queue, cancelled clients and concurrent requests, over a
live loopback server."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import socket
import threading
import time

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from models.tiny import live_server, tiny_hf_policy  # noqa: E402
from openberry.models.fake import FakePolicy  # noqa: E402


@pytest.fixture(scope="module")
def policy():
    return tiny_hf_policy()


@pytest.fixture(scope="module")
def url(policy):
    from openberry.serve.app import create_app
    from openberry.serve.limits import ServeLimits

    limits = ServeLimits(max_body_bytes=64 * 1024, request_tokens=4096)
    with live_server(create_app(policy, model_name="tiny", limits=limits)) as u:
        yield u


def _post(url, path, body, **kw):
    return httpx.post(url + path, json=body, timeout=30, **kw)


def _error(r):
    return r.json()["error"]


def test_prompts_checked_against_the_context(url) -> None:
    # The tiny model's context is 256 tokens (one per character).
    r = _post(url, "/v1/completions", {"model": "tiny", "prompt": "x" * 300, "max_tokens": 4})
    assert r.status_code == 400 and _error(r)["code"] == "context_length_exceeded"
    assert "256" in _error(r)["message"] and _error(r)["param"] == "prompt"
    t0 = time.perf_counter()
    r = _post(url, "/v1/completions", {"model": "tiny", "prompt": "x" * 60_000})
    assert r.status_code == 400 and "characters" in _error(r)["message"]
    assert time.perf_counter() - t0 < 5
    chat = {"model": "tiny", "messages": [{"role": "user", "content": "y" * 300}]}
    r = _post(url, "/v1/chat/completions", chat)
    assert r.status_code == 400 and _error(r)["param"] == "messages"


def test_max_tokens_is_cut_to_the_room_left_in_the_context(url) -> None:
    body = {"model": "tiny", "prompt": "z" * 250, "max_tokens": 100, "temperature": 0}
    r = _post(url, "/v1/completions", body)
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] <= 6


def test_regression_empty_prompt_is_a_400(url) -> None:
    for prompt in ("", ["a", ""]):
        r = _post(url, "/v1/completions", {"model": "tiny", "prompt": prompt})
        assert r.status_code == 400 and _error(r)["param"] == "prompt"


def test_request_token_budget(url) -> None:
    body = {"model": "tiny", "prompt": "a", "n": 128, "max_tokens": 32768}
    r = _post(url, "/v1/completions", body)
    assert r.status_code == 400 and _error(r)["code"] == "request_too_large"
    assert "4096" in _error(r)["message"]


def test_search_config_values_are_range_checked(url) -> None:
    base = {"model": "berry-mctsr", "prompt": "Compute 1 + 2.", "rollouts": 1}
    for config, field in [
        ({"c": -5}, "c"),
        ({"max_new_tokens": 100000}, "max_new_tokens"),
        ({"temperature": 9}, "temperature"),
    ]:
        r = _post(url, "/v1/completions", {**base, "search_config": config})
        assert r.status_code == 400, (config, r.text)
        assert field in _error(r)["message"] and _error(r)["param"].startswith("search_config")


def test_body_limit_by_length_and_by_chunks(url) -> None:
    big = json.dumps({"model": "tiny", "prompt": "a" * 70_000}).encode()
    r = httpx.post(url + "/v1/completions", content=big, timeout=30)
    assert r.status_code == 413 and _error(r)["code"] == "request_too_large"

    def chunks():
        for _ in range(20):
            yield b" " * 8192

    r = httpx.post(url + "/v1/completions", content=chunks(), timeout=30)
    assert r.status_code == 413


def test_regression_a_500_leaves_the_connection_usable() -> None:
    from openberry.serve.app import create_app

    class Broken(FakePolicy):
        def generate(self, prompts, params):
            if prompts[0] == "boom":
                raise RuntimeError("boom")
            return super().generate(prompts, params)

    with live_server(create_app(Broken(seed=0), model_name="p")) as u:
        host, port = u.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        for prompt, status in [("boom", 500), ("fine", 200), ("boom", 500), ("fine", 200)]:
            body = json.dumps({"model": "p", "prompt": prompt, "max_tokens": 2})
            conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = json.loads(response.read())
            assert response.status == status, payload
        conn.close()


class _Slow(FakePolicy):
    """A fake policy whose generate takes `delay` seconds and counts its calls."""

    def __init__(self, delay: float) -> None:
        super().__init__(seed=0)
        self.delay = delay
        self.count = 0

    def generate(self, prompts, params):
        self.count += 1
        time.sleep(self.delay)
        return super().generate(prompts, params)


def test_full_queue_answers_503_with_retry_after() -> None:
    from openberry.serve.app import create_app

    slow = _Slow(1.0)
    app = create_app(slow, model_name="p", max_active=1, max_queue=1)
    body = {"model": "p", "prompt": "a", "max_tokens": 2}
    with live_server(app) as u, concurrent.futures.ThreadPoolExecutor(4) as pool:
        first = pool.submit(_post, u, "/v1/completions", body)
        time.sleep(0.3)
        r = _post(u, "/v1/completions", body)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert _error(r)["code"] == "server_busy"
        assert first.result().status_code == 200


def test_a_search_whose_client_went_away_is_cancelled() -> None:
    from openberry.serve.app import create_app

    slow = _Slow(0.1)
    with live_server(create_app(slow, model_name="p")) as u:
        host, port = u.removeprefix("http://").split(":")
        body = json.dumps(
            {"model": "berry-beam", "prompt": "Compute 1 + 2.", "rollouts": 64}
        ).encode()
        with socket.create_connection((host, int(port))) as sock:
            head = (
                f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            sock.sendall(head.encode() + body)
            deadline = time.monotonic() + 5
            while slow.count < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        assert slow.count >= 2
        time.sleep(1.0)  # the server notices within its poll interval and one model call
        settled = slow.count
        time.sleep(1.0)
        assert slow.count == settled, "the search kept calling the model after its client left"


def test_concurrent_greedy_requests_match_one_at_a_time(policy) -> None:
    """Plain and search requests stepped together answer as the one-at-a-time server does."""
    from openberry.serve.app import create_app

    bodies = [
        ("/v1/completions", {"model": "tiny", "prompt": f"Q{i}: ", "max_tokens": 8})
        for i in range(6)
    ] + [
        (
            "/v1/completions",
            {
                "model": "berry-beam",
                "prompt": f"Compute {i} + 1.",
                "rollouts": 2,
                "search_config": {"temperature": 0, "max_step_tokens": 8, "max_steps": 2},
            },
        )
        for i in range(3)
    ]
    for _, body in bodies[:6]:
        body["temperature"] = 0

    def answers(app, workers):
        with live_server(app) as u, concurrent.futures.ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(lambda pb: _post(u, *pb).json(), bodies))
        return [(r["choices"][0]["text"], r.get("openberry", {}).get("answer")) for r in results]

    one = answers(create_app(policy, model_name="tiny", max_active=1), 1)
    together = answers(create_app(policy, model_name="tiny", max_active=16), len(bodies))
    assert together == one


def test_scheduler_thread_stops_with_the_app(policy) -> None:
    from fastapi.testclient import TestClient

    from openberry.serve.app import create_app

    before = {t.name for t in threading.enumerate()}
    app = create_app(policy, model_name="tiny")
    with TestClient(app) as c:
        assert c.get("/v1/models").status_code == 200
    scheduler = app.state.server.scheduler
    assert not scheduler._thread.is_alive()
    assert {t.name for t in threading.enumerate()} - before == set()

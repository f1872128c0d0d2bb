"""`OpenAIPolicy` against the real openberry server (tiny Llama) and against mock transports."""

from __future__ import annotations

import contextlib
import http.server
import json
import logging
import math
import socket
import threading
import time

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from models.tiny import live_server, tiny_hf_policy  # noqa: E402
from openberry.models import ModelError, Policy, SamplingParams  # noqa: E402
from openberry.models.openai import OpenAIPolicy  # noqa: E402

PROMPTS = ["Q: 12+7=?\nA:", "x", "Solve 3*x = 9 for x.\n"]
KEY = "sk-very-secret-key-42"


@pytest.fixture(scope="module")
def hf():
    return tiny_hf_policy()


@pytest.fixture(scope="module")
def remote(hf):
    from openberry.serve.app import create_app

    with live_server(create_app(hf, model_name="tiny")) as url:
        policy = OpenAIPolicy(url, "tiny", max_concurrency=4, timeout=30, max_retries=0)
        yield policy
        policy.close()


def test_is_policy(remote) -> None:
    assert isinstance(remote, Policy)
    assert remote.name == "tiny"


def test_greedy_matches_hf_and_is_deterministic(remote, hf) -> None:
    params = SamplingParams(n=2, temperature=0, max_new_tokens=12)
    a = remote.generate(PROMPTS, params)
    b = remote.generate(PROMPTS, params)
    direct = hf.generate(PROMPTS, params)
    assert [[g.text for g in row] for row in a] == [[g.text for g in row] for row in b]
    for row, drow in zip(a, direct, strict=True):
        assert len(row) == 2
        for g, d in zip(row, drow, strict=True):
            assert g.text == d.text
            assert g.token_ids == ()
            assert g.num_tokens == d.num_tokens
            assert g.logprobs == pytest.approx(d.logprobs, abs=1e-5)
            assert g.finish_reason == d.finish_reason
            assert g.prompt_tokens == d.prompt_tokens


def test_n_seed_and_stop(remote, hf) -> None:
    out = remote.generate(PROMPTS, SamplingParams(n=5, max_new_tokens=7, seed=1))
    assert [len(row) for row in out] == [5, 5, 5]
    again = remote.generate(PROMPTS, SamplingParams(n=5, max_new_tokens=7, seed=1))
    assert [[g.text for g in r] for r in out] == [[g.text for g in r] for r in again]
    (full,) = hf.generate(["abc"], SamplingParams(temperature=0, max_new_tokens=24))[0]
    stop = full.text[2:4]
    (g,) = remote.generate(["abc"], SamplingParams(temperature=0, max_new_tokens=24, stop=(stop,)))[
        0
    ]
    assert g.finish_reason == "stop"
    assert g.text == full.text[: full.text.index(stop)]


def test_chat_mode(remote, hf) -> None:
    chat = OpenAIPolicy(remote.base_url, "tiny", chat=True, max_retries=0)
    (g,) = chat.generate(["hi"], SamplingParams(temperature=0, max_new_tokens=5))[0]
    (d,) = hf.generate(["user: hi\nassistant:"], SamplingParams(temperature=0, max_new_tokens=5))[0]
    assert g.text == d.text
    assert g.logprobs == pytest.approx(d.logprobs, abs=1e-5)
    with pytest.raises(ModelError, match="scoring"):
        chat.score(["a"], ["b"])
    chat.close()


def test_score_and_next_token_probs_match_hf(remote, hf) -> None:
    prompts, completions = ["a", "Q: 1+1=", "x"], ["bc", "2\nYes", ""]
    assert remote.score(prompts, completions) == [
        pytest.approx(row, abs=1e-5) for row in hf.score(prompts, completions)
    ]
    # Candidates in and far outside the top 5: the tail ones are echo-scored, not zero.
    cands = ["Yes", "No", "<positive_rating>", "a", "~"]
    for got, want in zip(
        remote.next_token_probs(PROMPTS, cands), hf.next_token_probs(PROMPTS, cands), strict=True
    ):
        assert got == {c: pytest.approx(want[c], rel=1e-4, abs=1e-8) for c in cands}


def test_likelihood_judge_over_the_server_matches_hf(remote, hf) -> None:
    """The likelihood judge frame needs only ``score``: through an OpenAI-compatible completions
    server it gives the local model's judge probability."""
    from openberry.search.scorers import likelihood_preference, parting_lines

    context, line_a, line_b = parting_lines("Compute 2 + 3.", "2 + 3 = 5\nSo 5.", "2 + 3 = 6")

    def prob(policy) -> float:
        lp_a, lp_b = policy.score([context, context], [line_a, line_b])
        return likelihood_preference(sum(lp_a), sum(lp_b))

    assert prob(remote) == pytest.approx(prob(hf), abs=2e-4)


def test_score_and_next_token_probs_unsupported_by_server() -> None:
    from openberry.models import FakePolicy
    from openberry.serve.app import create_app

    with live_server(create_app(FakePolicy(seed=0), model_name="fake")) as url:
        remote = OpenAIPolicy(url, "fake", max_retries=0)
        with pytest.raises(ModelError, match="does not support scoring"):
            remote.score(["a"], ["bc"])
        assert remote.score(["a"], [""]) == [()]
        with pytest.raises(ModelError):
            remote.next_token_probs(["a"], ["Yes"])
        remote.close()


# ------------------------------------------------------------------------------ mock servers


def _completion(text: str = "ok", logprobs: bool = True, **extra) -> dict:
    lp = {
        "tokens": list(text),
        "token_logprobs": [-0.5] * len(text),
        "top_logprobs": None,
        "text_offset": list(range(len(text))),
    }
    choice = {
        "index": 0,
        "text": text,
        "logprobs": lp if logprobs else None,
        "finish_reason": "stop",
        **extra,
    }
    return {"choices": [choice], "usage": {"prompt_tokens": 3, "completion_tokens": len(text)}}


def test_retries_then_success(caplog) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) <= 2:
            return httpx.Response(503, json={"error": {"message": "busy"}})
        return httpx.Response(200, json=_completion("ok"))

    policy = OpenAIPolicy(
        "http://srv", "m", api_key=KEY, backoff=0.001, transport=httpx.MockTransport(handler)
    )
    with caplog.at_level(logging.DEBUG):
        (g,) = policy.generate(["p"], SamplingParams(max_new_tokens=2))[0]
    assert g.text == "ok"
    assert g.finish_reason == "eos"
    assert g.logprobs == (-0.5, -0.5)
    assert g.num_tokens == 2
    assert g.prompt_tokens == 3
    assert len(calls) == 3
    assert calls[0].headers["authorization"] == f"Bearer {KEY}"
    assert "retry 1/2" in caplog.text  # DEFAULT_MAX_RETRIES
    assert KEY not in caplog.text
    assert KEY not in repr(policy)


def test_retries_exhausted_raise(caplog) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) % 2:
            raise httpx.ConnectError("refused")
        return httpx.Response(429, json={"error": {"message": "slow down"}})

    policy = OpenAIPolicy(
        "http://srv/v1",
        "m",
        api_key=KEY,
        max_retries=3,
        backoff=0.001,
        transport=httpx.MockTransport(handler),
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(ModelError, match="4 attempts"):
        policy.generate(["p"], SamplingParams())
    assert len(calls) == 4
    assert KEY not in caplog.text


def test_client_error_is_not_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(400, json={"error": {"message": "logprobs are not supported"}})

    policy = OpenAIPolicy("http://srv", "m", backoff=0.001, transport=httpx.MockTransport(handler))
    with pytest.raises(ModelError, match="does not support this feature"):
        policy.generate(["p"], SamplingParams())
    assert len(calls) == 1


def test_missing_logprobs_is_a_clear_error() -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json=_completion(logprobs=False)))
    policy = OpenAIPolicy("http://srv", "m", transport=transport)
    with pytest.raises(ModelError, match="does not support logprobs"):
        policy.generate(["p"], SamplingParams())


def test_stop_reason_maps_finish() -> None:
    transport = httpx.MockTransport(
        lambda r: httpx.Response(200, json=_completion("ab", stop_reason="\n"))
    )
    policy = OpenAIPolicy("http://srv", "m", transport=transport)
    (g,) = policy.generate(["p"], SamplingParams(stop=("\n",)))[0]
    assert g.finish_reason == "stop"


def test_bounded_concurrency() -> None:
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        prompt = json.loads(request.content)["prompt"]
        return httpx.Response(200, json=_completion(prompt))

    policy = OpenAIPolicy(
        "http://srv", "m", max_concurrency=3, transport=httpx.MockTransport(handler)
    )
    prompts = [f"p{i}" for i in range(12)]
    out = policy.generate(prompts, SamplingParams())
    assert [row[0].text for row in out] == prompts
    assert state["max"] == 3


def test_score_and_next_token_probs_with_capable_server() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body.get("echo"):
            text = body["prompt"]
            lp = {
                "tokens": [*text, "z"],
                "token_logprobs": [None, *[-1.0 - i for i in range(len(text))]],
                "text_offset": list(range(len(text) + 1)),
                "top_logprobs": None,
            }
            return httpx.Response(
                200,
                json={
                    "choices": [
                        {"index": 0, "text": text + "z", "logprobs": lp, "finish_reason": "length"}
                    ]
                },
            )
        lp = {
            "tokens": ["Yes"],
            "token_logprobs": [-0.1],
            "top_logprobs": [{"Yes": -0.1, "No": -2.5}],
            "text_offset": [0],
        }
        return httpx.Response(
            200,
            json={
                "choices": [{"index": 0, "text": "Yes", "logprobs": lp, "finish_reason": "length"}]
            },
        )

    policy = OpenAIPolicy("http://srv", "m", transport=httpx.MockTransport(handler))
    # prompt "ab" + completion "cd": offsets 2, 3 -> logprobs -2.0, -3.0
    assert policy.score(["ab"], ["cd"]) == [(-2.0, -3.0)]
    (probs,) = policy.next_token_probs(["q"], ["Yes", "No", "M"])
    assert probs["Yes"] == pytest.approx(0.904837, rel=1e-5)
    assert probs["No"] == pytest.approx(0.082085, rel=1e-4)
    # "M" is outside the top list: scored with echo ("qM": offset 1 -> log p -1.0).
    assert probs["M"] == pytest.approx(math.exp(-1.0))
    with pytest.raises(ModelError, match="3 tokens"):
        policy.next_token_probs(["q"], ["Yes", "abc"])


def test_tail_candidates_zero_when_server_cannot_echo(caplog) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body.get("echo"):
            return httpx.Response(400, json={"error": {"message": "echo is not supported"}})
        lp = {"tokens": ["Yes"], "token_logprobs": [-0.1], "top_logprobs": [{"Yes": -0.1}]}
        lp["text_offset"] = [0]
        choice = {"index": 0, "text": "Yes", "logprobs": lp, "finish_reason": "length"}
        return httpx.Response(200, json={"choices": [choice]})

    policy = OpenAIPolicy("http://srv", "m", transport=httpx.MockTransport(handler))
    with caplog.at_level(logging.WARNING):
        rows = policy.next_token_probs(["q", "r"], ["Yes", "No"])
    assert [row["No"] for row in rows] == [0.0, 0.0]
    assert rows[0]["Yes"] == pytest.approx(math.exp(-0.1))
    assert sum("probability 0" in r.message for r in caplog.records) == 1


def test_regression_echo_refusal_warned_once_under_concurrency(caplog) -> None:
    """Regression: requests run in threads, and when several found echo refused at the same time
    each logged the warning (test_tail_candidates_zero_when_server_cannot_echo was flaky). The
    handler holds every echo request until all have arrived, so they fail together."""
    import threading

    arrived = threading.Barrier(4, timeout=10)

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body.get("echo"):
            arrived.wait()
            return httpx.Response(400, json={"error": {"message": "echo is not supported"}})
        lp = {"tokens": ["Yes"], "token_logprobs": [-0.1], "top_logprobs": [{"Yes": -0.1}]}
        lp["text_offset"] = [0]
        choice = {"index": 0, "text": "Yes", "logprobs": lp, "finish_reason": "length"}
        return httpx.Response(200, json={"choices": [choice]})

    policy = OpenAIPolicy(
        "http://srv", "m", transport=httpx.MockTransport(handler), max_concurrency=4
    )
    with caplog.at_level(logging.WARNING):
        rows = policy.next_token_probs(["a", "b", "c", "d"], ["Yes", "No"])
    assert [row["No"] for row in rows] == [0.0] * 4
    assert sum("probability 0" in r.message for r in caplog.records) == 1


# -- timeouts and retry budget against real sockets ---------------------------------------------


@contextlib.contextmanager
def _silent_server():
    """A local server that accepts every connection and never answers; yields its URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


@contextlib.contextmanager
def _flaky_server(statuses: list[int]):
    """A local HTTP server answering each POST with the next status of `statuses` (a completion
    when 200); yields (URL, list of the paths requested)."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            seen.append(self.path)
            status = statuses[min(len(seen), len(statuses)) - 1]
            body = _completion("ok") if status == 200 else {"error": {"message": "overloaded"}}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_server_that_never_answers_times_out_after_the_retries() -> None:
    """Regression: a server that accepted connections and never answered was retried for over
    250 s with no way to set a timeout."""
    with _silent_server() as url:
        policy = OpenAIPolicy(url, "m", timeout=1, max_retries=1, backoff=0.01)
        start = time.monotonic()
        with pytest.raises(ModelError, match=r"failed after 2 attempts in .*no answer within 1 s"):
            policy.generate(["p"], SamplingParams(max_new_tokens=2))
        assert time.monotonic() - start < 4
        policy.close()


def test_max_retry_time_bounds_a_request_in_all() -> None:
    with _silent_server() as url:
        policy = OpenAIPolicy(url, "m", timeout=1, max_retries=50, max_retry_time=1.5, backoff=0.01)
        start = time.monotonic()
        with pytest.raises(ModelError, match=r"out of its 1.5 s \(--max-retry-time\)"):
            policy.generate(["p"], SamplingParams(max_new_tokens=2))
        assert time.monotonic() - start < 3
        policy.close()


def test_503_then_200_is_retried_over_http(caplog) -> None:
    with _flaky_server([503, 200]) as (url, seen):
        policy = OpenAIPolicy(url, "m", timeout=5, backoff=0.01)
        with caplog.at_level(logging.WARNING):
            (g,) = policy.generate(["p"], SamplingParams(max_new_tokens=2))[0]
        policy.close()
    assert g.text == "ok" and seen == ["/v1/completions"] * 2
    assert "HTTP 503: overloaded; retry 1/2" in caplog.text


def test_spec_passes_timeout_and_retries_to_the_openai_backend() -> None:
    from openberry.models.spec import ModelSpec

    spec = ModelSpec("m", backend="openai", base_url="http://127.0.0.1:9", timeout=3)
    with spec.build() as policy:
        assert policy.timeout == 3 and policy.retry.max_retries == 2
        assert policy.retry.max_time is None
    with pytest.raises(ModelError, match="--timeout must be > 0"):
        ModelSpec("m", timeout=0)

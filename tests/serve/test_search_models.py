"""Search methods served as models (``berry-mctsr``...) over the built-in berry-tiny."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient

from openberry.search import METHODS
from openberry.serve.search_models import completion_text

QUESTION = "Compute 21 + 12 + 3."


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Decode on one thread: the tiny model gains nothing from more, and on a busy 2-core
    machine a second spinning torch thread makes every step wait for the scheduler."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def policy():
    from openberry.models.hf import HFPolicy

    return HFPolicy.from_pretrained("berry-tiny")


@pytest.fixture(scope="module")
def client(policy):
    from openberry.serve.app import create_app

    with TestClient(create_app(policy, model_name="tiny", search_rollouts=1)) as c:
        yield c


def _chat(client, model, **body):
    messages = [
        {"role": "system", "content": "You are a careful mathematician."},
        {"role": "user", "content": QUESTION},
    ]
    return client.post("/v1/chat/completions", json={"model": model, "messages": messages, **body})


def test_models_list_the_search_methods(client) -> None:
    data = client.get("/v1/models").json()["data"]
    assert [m["id"] for m in data] == ["tiny"] + [f"berry-{m}" for m in METHODS]
    assert {"berry-mctsr", "berry-sr-mcts", "berry-meta-mcts"} <= {m["id"] for m in data}
    card = client.get("/v1/models/berry-mctsr").json()
    assert card["id"] == "berry-mctsr" and card["parent"] == "tiny"
    assert client.get("/v1/models/berry-nothing").status_code == 404


def test_chat_greedy(client, policy) -> None:
    r = _chat(client, "berry-greedy", max_tokens=3, temperature=1.5)  # sampling fields ignored
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model"] == "berry-greedy" and out["object"] == "chat.completion"
    (choice,) = out["choices"]
    text = choice["message"]["content"]
    assert text and choice["finish_reason"] == "stop"
    ob = out["openberry"]
    assert ob["method"] == "greedy" and ob["seed"] == 0 and ob["chosen"][0] == 0
    assert ob["answer"] is not None and ob["answer"] in text
    assert ob["nodes"] == 2 and ob["stats"]["calls"] == 1
    # The whole config: the prompt profile is recorded too (berry serve's default on a model
    # without --chat-template: tiny).
    assert set(ob["config"]) == {"max_new_tokens", "prompts"}
    assert ob["config"]["max_new_tokens"] == 256 and ob["config"]["prompts"]["name"] == "tiny"
    usage = out["usage"]
    assert usage["completion_tokens"] == ob["stats"]["generated_tokens"] > 0
    assert usage["prompt_tokens"] == ob["stats"]["prompt_tokens"] > 0
    # Same as running the search directly on the last user message.
    from openberry.records import Problem
    from openberry.search import make_search, run_search

    (res,) = run_search(make_search("greedy"), [Problem("p", QUESTION)], policy)
    assert text == completion_text(res.tree, "greedy") and ob["answer"] == res.answer


def test_completions_sr_mcts_rollouts_and_config(client) -> None:
    body = {"model": "berry-sr-mcts", "prompt": QUESTION, "seed": 3, "rollouts": 1}
    body["search_config"] = {"max_children": 3, "c": 2, "preference": "value"}
    r = client.post("/v1/completions", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["object"] == "text_completion" and out["choices"][0]["text"]
    ob = out["openberry"]
    assert ob["method"] == "sr-mcts" and ob["rollouts"] == 1 and ob["seed"] == 3
    assert ob["config"]["rollouts"] == 1 and ob["config"]["max_children"] == 3
    assert ob["config"]["c"] == 2.0 and ob["config"]["preference"] == "value"
    assert ob["nodes"] >= 2 and ob["stats"]["calls"] >= 2


def test_step_method_joins_the_chosen_steps(client) -> None:
    r = _chat(client, "berry-beam", rollouts=2)
    assert r.status_code == 200, r.text
    ob = r.json()["openberry"]
    assert ob["config"]["width"] == 1 and len(ob["chosen"]) >= 2
    assert r.json()["choices"][0]["message"]["content"].count("\n") == len(ob["chosen"]) - 2


@pytest.mark.parametrize(
    ("path", "extra", "param", "code"),
    [
        ("/v1/chat/completions", {"stream": True}, "stream", "unsupported_parameter"),
        ("/v1/chat/completions", {"n": 2}, "n", "unsupported_parameter"),
        ("/v1/chat/completions", {"logprobs": True}, "logprobs", "unsupported_parameter"),
        ("/v1/completions", {"echo": True}, "echo", "unsupported_parameter"),
        ("/v1/completions", {"logprobs": 0}, "logprobs", "unsupported_parameter"),
        ("/v1/completions", {"prompt": ["a", "b"]}, "prompt", "unsupported_parameter"),
        ("/v1/completions", {"search_config": {"nope": 1}}, "search_config", None),
        ("/v1/completions", {"search_config": {"c": "x"}}, "search_config", None),
        ("/v1/completions", {"search_config": {"c": [1]}}, "search_config", None),
        ("/v1/completions", {"search_config": "c=1"}, "search_config", None),
        ("/v1/completions", {"rollouts": 0}, "rollouts", None),
        ("/v1/completions", {"rollouts": "2"}, "rollouts", None),
    ],
)
def test_bad_search_requests_are_400(client, path, extra, param, code) -> None:
    body = {"model": "berry-mctsr", **extra}
    if path.endswith("chat/completions"):
        body.setdefault("messages", [{"role": "user", "content": QUESTION}])
    else:
        body.setdefault("prompt", QUESTION)
    r = client.post(path, json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["type"] == "invalid_request_error"
    if code:
        assert err["code"] == code
    if extra.get("search_config") == {"nope": 1}:
        assert "nope" in err["message"] and "rollouts" in err["message"]


def test_chat_needs_a_user_message(client) -> None:
    r = client.post(
        "/v1/chat/completions",
        json={"model": "berry-greedy", "messages": [{"role": "system", "content": "hi"}]},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"


def test_search_methods_can_be_turned_off(policy) -> None:
    from openberry.serve.app import create_app

    with TestClient(create_app(policy, model_name="tiny", search_methods=False)) as c:
        assert [m["id"] for m in c.get("/v1/models").json()["data"]] == ["tiny"]
        r = _chat(c, "berry-greedy")
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    with TestClient(create_app(policy, model_name="tiny", search_methods=["mctsr"])) as c:
        assert [m["id"] for m in c.get("/v1/models").json()["data"]] == ["tiny", "berry-mctsr"]
    with pytest.raises(ValueError, match="unknown search method"):
        create_app(policy, model_name="tiny", search_methods=["nope"])


def test_plain_model_ignores_search_fields(client) -> None:
    body = {"model": "tiny", "prompt": "ab", "max_tokens": 3, "rollouts": 0, "search_config": 5}
    r = client.post("/v1/completions", json=body)
    assert r.status_code == 200, r.text
    assert "openberry" not in r.json()


def test_cli_flags() -> None:
    from openberry.cli import main as cli_main

    parser = cli_main.build_parser()
    args = parser.parse_args(["serve"])
    assert args.search_methods is True and args.search_rollouts == 4
    args = parser.parse_args(["serve", "--no-search-methods", "--search-rollouts", "8"])
    assert args.search_methods is False and args.search_rollouts == 8
    assert parser.parse_args(["serve"]).prefix_cache_mb == 1024.0
    assert parser.parse_args(["serve", "--prefix-cache-mb", "0"]).prefix_cache_mb == 0.0


def test_cli_refuses_a_negative_prefix_cache(capsys) -> None:
    from openberry.cli import main as cli_main

    code = cli_main.main(["serve", "--model", "/nonexistent", "--prefix-cache-mb", "-1"])
    assert code == 2
    assert "--prefix-cache-mb must be >= 0" in capsys.readouterr().err


def test_served_search_matches_berry_solve(client, capsys) -> None:
    import json

    from openberry.cli import main as cli_main

    body = {"model": "berry-mctsr", "prompt": QUESTION, "rollouts": 1, "seed": 2}
    served = client.post("/v1/completions", json=body).json()
    argv = ["-q", "solve", QUESTION, "--method", "mctsr", "--rollouts", "1", "--seed", "2"]
    assert cli_main.main([*argv, "--json"]) == 0
    solved = json.loads(capsys.readouterr().out)
    assert served["choices"][0]["text"] == solved["text"]
    assert served["openberry"]["answer"] == solved["answer"]
    assert served["openberry"]["chosen"] == [0] + [c["id"] for c in solved["chosen"]]
    assert served["openberry"]["config"] == solved["config"]


def test_served_searches_ask_separate_judge_and_value_models(policy) -> None:
    """``roles`` (``berry serve --judge/--value-model``): judge and rating requests of a served
    search go to those models; the served policy still writes."""
    from openberry.serve.app import create_app

    class Counting:
        def __init__(self) -> None:
            self.calls = 0

        def next_token_probs(self, prompts, candidates):
            self.calls += 1
            return policy.next_token_probs(prompts, candidates)

    judge, value = Counting(), Counting()
    app = create_app(
        policy, model_name="tiny", search_rollouts=2, roles={"judge": judge, "value": value}
    )
    with TestClient(app) as c:
        for model in ("berry-sr-mcts", "berry-step-mcts"):
            r = c.post("/v1/completions", json={"model": model, "prompt": QUESTION})
            assert r.status_code == 200
    assert judge.calls >= 1 and value.calls >= 1
    with pytest.raises(ValueError, match="unknown model role"):
        create_app(policy, model_name="tiny", roles={"critic": judge})

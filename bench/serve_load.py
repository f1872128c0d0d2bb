"""Load test of `berry serve` on loopback: the batching scheduler against one request at a time.

Each side runs ``berry serve`` in a subprocess (by default berry-tiny): ``one-at-a-time`` with
``--max-active 1`` (the scheduler admits one request at a time, which is exactly the one-lock
server it replaced), ``batched`` with the defaults. Against each, in this order:

1. **idle**: one client sends `--idle-requests` plain completions one after another; their
   median latency is the idle latency of a plain request;
2. **plain under search load**: the same, while `--search-clients` clients keep MCTSr /
   SR-MCTS searches in flight;
3. **load**: `--clients` concurrent clients for `--duration` seconds, each looping over a
   seeded mix of requests: plain completions, chats, streamed completions, ``berry-mctsr`` and
   ``berry-sr-mcts`` searches (`--search-rollouts` each). Requests per second, latency per kind,
   status counts (every 5xx counted) and the server's RSS every second;
4. **one client**: `--single-requests` requests of the same mix (the same ones on both sides),
   one after another (requests/s).

`--phases` picks among them (a phase named twice runs twice: ``load,load`` shows whether the
server's memory levels off) and `--repeats` runs every side again, alternating, since this
machine's speed drifts. Every request is bounded (`--request-timeout`) and so is the whole run. Plain kinds ask for a
whole solution (`PLAIN_TOKENS`) at temperature 0; searches use their methods' defaults. Output:
a markdown table and, with ``--out``, the raw results as JSON.

Usage::

    .venv/bin/python bench/serve_load.py --clients 64 --duration 60 --out bench/results/serve_load.json

Run it on an otherwise idle machine: both sides share the same cores with the clients.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

QUESTIONS = [f"Compute {a} + {b} + {c}." for a, b, c in [(12, 7, 5), (29, 25, 15), (3, 44, 8)]]
KINDS = {"plain": 4, "chat": 2, "stream": 2, "mctsr": 1, "sr-mcts": 1}
"""Request kinds and their weights in the mix."""
PLAIN_TOKENS = 128
"""``max_tokens`` of plain kinds: a whole solution (berry-tiny stops at its end, ~40-60 tokens)."""


def request_for(kind: str, rng: random.Random, rollouts: int) -> tuple[str, dict]:
    """The path and body of one request of `kind`."""
    q = rng.choice(QUESTIONS)
    prompt = f"Question: {q}\nSolution:\n"
    if kind == "plain":
        return "/v1/completions", {"prompt": prompt, "max_tokens": PLAIN_TOKENS, "temperature": 0}
    if kind == "stream":
        body = {"prompt": prompt, "max_tokens": PLAIN_TOKENS, "temperature": 0, "stream": True}
        return "/v1/completions", body
    if kind == "chat":
        body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": PLAIN_TOKENS}
        return "/v1/chat/completions", {**body, "temperature": 0}
    body = {"model": f"berry-{kind}", "prompt": q, "rollouts": rollouts}
    return "/v1/completions", body


def send(client: httpx.Client, model: str, kind: str, path: str, body: dict) -> tuple[int, float]:
    """Send one request; (status, seconds). Network errors count as status 0."""
    body = {"model": model, **body} if "model" not in body else body
    t0 = time.perf_counter()
    try:
        if body.get("stream"):
            with client.stream("POST", path, json=body) as r:
                for _ in r.iter_bytes():
                    pass
                status = r.status_code
        else:
            status = client.post(path, json=body).status_code
    except httpx.HTTPError:
        status = 0
    return status, time.perf_counter() - t0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(args: argparse.Namespace, port: int, extra: list[str]) -> subprocess.Popen:
    berry = str(Path(sys.executable).with_name("berry"))
    cmd = [berry, "serve", "--model", args.model, "--port", str(port), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"server on port {port} did not start")


def run_load(url: str, args: argparse.Namespace, clients: int, seconds: float, pid: int) -> dict:
    """`clients` threads sending the mix for `seconds`; latencies by kind, statuses, RSS."""
    records: list[tuple[str, int, float]] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        rng = random.Random(args.seed * 1000 + i)
        kinds, weights = list(KINDS), list(KINDS.values())
        with httpx.Client(base_url=url, timeout=args.request_timeout) as c:
            while time.monotonic() < stop:
                kind = rng.choices(kinds, weights)[0]
                path, body = request_for(kind, rng, args.search_rollouts)
                status, dt = send(c, args.model, kind, path, body)
                with lock:
                    records.append((kind, status, dt))

    rss = [rss_mb(pid)]
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(1.0)
        rss.append(rss_mb(pid))
    wall = time.perf_counter() - t0
    return summarize(records, wall, rss)


def summarize(records: list[tuple[str, int, float]], wall: float, rss: list[float]) -> dict:
    by_kind: dict[str, list[float]] = {}
    for kind, status, dt in records:
        if status == 200:
            by_kind.setdefault(kind, []).append(dt)
    statuses: dict[str, int] = {}
    for _, status, _ in records:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {
        "requests": len(records),
        "ok": sum(len(v) for v in by_kind.values()),
        "wall_s": round(wall, 2),
        "rps": round(sum(len(v) for v in by_kind.values()) / wall, 2),
        "statuses": statuses,
        "errors_5xx": sum(n for s, n in statuses.items() if s.startswith("5") or s == "0"),
        "p50_s": {k: round(statistics.median(v), 3) for k, v in sorted(by_kind.items())},
        "p90_s": {k: round(nearest_rank(v, 0.9), 3) for k, v in sorted(by_kind.items())},
        "count": {k: len(v) for k, v in sorted(by_kind.items())},
        "rss_mb": {
            "start": round(rss[0], 1),
            "max": round(max(rss), 1),
            "end": round(rss[-1], 1),
            "quarters": [round(rss[min(len(rss) - 1, q * len(rss) // 4)], 1) for q in range(5)],
        },
    }


def nearest_rank(values: list[float], q: float) -> float:
    """The `q` quantile by the nearest-rank rule."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def one_client(url: str, args: argparse.Namespace) -> dict:
    """The same `--single-requests` requests of the mix (same seed on both sides), one by one."""
    rng = random.Random(args.seed)
    kinds, weights = list(KINDS), list(KINDS.values())
    records = []
    t0 = time.perf_counter()
    with httpx.Client(base_url=url, timeout=args.request_timeout) as c:
        for _ in range(args.single_requests):
            kind = rng.choices(kinds, weights)[0]
            path, body = request_for(kind, rng, args.search_rollouts)
            records.append((kind, *send(c, args.model, kind, path, body)))
    wall = time.perf_counter() - t0
    return {
        "requests": len(records),
        "wall_s": round(wall, 2),
        "rps": round(len(records) / wall, 3),
    }


def idle_latency(url: str, args: argparse.Namespace) -> float:
    rng = random.Random(args.seed)
    times = []
    with httpx.Client(base_url=url, timeout=args.request_timeout) as c:
        for _ in range(args.idle_requests):
            path, body = request_for("plain", rng, args.search_rollouts)
            status, dt = send(c, args.model, "plain", path, body)
            if status == 200:
                times.append(dt)
    return statistics.median(times)


def under_search_load(url: str, args: argparse.Namespace) -> dict:
    """Plain-request latency while `--search-clients` clients keep searches in flight."""
    stop = threading.Event()

    def searcher(i: int) -> None:
        rng = random.Random(args.seed * 7919 + i)
        with httpx.Client(base_url=url, timeout=args.request_timeout) as c:
            while not stop.is_set():
                kind = rng.choice(["mctsr", "sr-mcts"])
                send(c, args.model, kind, *request_for(kind, rng, args.search_rollouts))

    threads = [threading.Thread(target=searcher, args=(i,)) for i in range(args.search_clients)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # let the searches get going
    try:
        latency = idle_latency(url, args)
    finally:
        stop.set()
        for t in threads:
            t.join()
    return {"search_clients": args.search_clients, "plain_p50_s": round(latency, 3)}


def measure_side(args: argparse.Namespace, name: str, extra: list[str], port: int) -> dict:
    proc = start_server(args, port, extra)
    url = f"http://127.0.0.1:{port}"
    phases = args.phases.split(",")
    out: dict = {"side": name}
    try:
        idle_latency(url, args)  # warm-up
        for phase in phases:  # a phase named twice runs twice (load, load: is RSS flat?)
            name = phase.replace("-", "_")
            n = 2
            while name in out or (name == "idle" and "idle_plain_p50_s" in out):
                name, n = f"{phase.replace('-', '_')}_{n}", n + 1
            if phase == "idle":
                key = "idle_plain_p50_s" if name == "idle" else name
                out[key] = round(idle_latency(url, args), 3)
            elif phase == "search-load":
                out[name] = under_search_load(url, args)
            elif phase == "load":
                out[name] = run_load(url, args, args.clients, args.duration, proc.pid)
            elif phase == "single":
                out[name] = one_client(url, args)
    finally:
        proc.terminate()
        proc.wait(30)
    return out


def table(results: list[dict]) -> str:
    lines = [
        "| server | req/s (load) | plain p50: idle / searches in flight / load (s) | "
        "search p50 (s) | 5xx | RSS start / max / end (MB) | req/s (1 client) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        load = r.get("load", {})
        p50 = load.get("p50_s", {})
        search = "/".join(str(p50.get(k, "-")) for k in ("mctsr", "sr-mcts"))
        rss = load.get("rss_mb", {})
        plain = " / ".join(
            str(x)
            for x in (
                r.get("idle_plain_p50_s", "-"),
                r.get("search_load", {}).get("plain_p50_s", "-"),
                p50.get("plain", "-"),
            )
        )
        lines.append(
            f"| {r['side']} | {load.get('rps', '-')} | {plain} | {search} "
            f"| {load.get('errors_5xx', '-')} | {rss.get('start', '-')} / {rss.get('max', '-')} / "
            f"{rss.get('end', '-')} | {r.get('single', {}).get('rps', '-')} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="berry-tiny")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load per side")
    ap.add_argument("--single-requests", type=int, default=20)
    ap.add_argument("--idle-requests", type=int, default=20)
    ap.add_argument("--search-rollouts", type=int, default=4)
    ap.add_argument("--request-timeout", type=float, default=300.0)
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the server")
    ap.add_argument("--sides", default="one-at-a-time,batched")
    ap.add_argument(
        "--phases",
        default="idle,search-load,load,single",
        help="which measurements to take, in this order",
    )
    ap.add_argument(
        "--search-clients",
        type=int,
        default=2,
        help="clients keeping searches in flight while plain latency is measured",
    )
    ap.add_argument("--repeats", type=int, default=1, help="times to run all sides, alternating")
    ap.add_argument(
        "--server-args",
        default="",
        help="more `berry serve` options for both sides, e.g. '--prefix-cache-mb 0'",
    )
    ap.add_argument("--port", type=int, default=8731)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    extra = args.server_args.split()
    sides = {"one-at-a-time": ["--max-active", "1", *extra], "batched": extra}
    results = []
    names = args.sides.split(",")
    for r in range(args.repeats):
        for i, name in enumerate(names):
            port = args.port + r * len(names) + i
            results.append({"repeat": r, **measure_side(args, name, sides[name], port)})
            print(json.dumps(results[-1]), flush=True)
    print(table(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps({"args": vars(args) | {"out": str(args.out)}, "results": results}, indent=2)
        )


if __name__ == "__main__":
    main()

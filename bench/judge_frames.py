"""Judge prompt frames compared on pair rows (from ``berry extract pairs``).

Two commands:

``render FRAME IN OUT``
    Rewrite each row's ``prompt`` in another frame, keeping every other field, so that
    ``berry train pprm --data OUT`` trains a judge in that frame. Frames:

    - ``plain``: `openberry.formats.prompts.judge_prompt` (the frame search uses);
    - ``diff``: plain, then the first step where the two solutions differ, both versions
      (``They differ at step k:\\nA: ...\\nB: ...``), before the question;
    - ``local``: the shared steps and both versions of the first differing step only;
    - ``step``: `openberry.search.scorers.step_judge_prompt`, the OpenLongCoT value frame at A's
      first differing step (``berry extract pairs --judge-frame step`` writes it directly).

``value-accuracy PAIRS [--model M]``
    Pair accuracy of the value scorer (`openberry.search.scorers`: minimum step rating, answer
    line left out) used as a judge: A is preferred when its value is higher (ties count half).

Examples::

    python bench/judge_frames.py render diff pairs-train.jsonl dpairs-train.jsonl
    python bench/judge_frames.py value-accuracy pairs-test.jsonl
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from openberry.formats.openlongcot import RATING_TOKENS
from openberry.formats.prompts import judge_prompt
from openberry.search.scorers import (
    ScorerConfig,
    path_value,
    rating_value,
    solution_steps,
    step_judge_prompt,
    step_value_prompts,
)

_QUESTION = "Is solution A better than solution B? "


def _split(a: str, b: str) -> tuple[list, list, int]:
    sa, sb = solution_steps(a), solution_steps(b)
    k = 0
    while k < min(len(sa), len(sb)) and sa[k] == sb[k]:
        k += 1
    return sa, sb, k


def _at(steps: list, k: int) -> str:
    return steps[k][1] if k < len(steps) else "(end)"


def diff_frame(q: str, a: str, b: str) -> str:
    sa, sb, k = _split(a, b)
    head = judge_prompt(q, a, b)[: -len(_QUESTION)]
    return f"{head}They differ at step {k + 1}:\nA: {_at(sa, k)}\nB: {_at(sb, k)}\n{_QUESTION}"


def local_frame(q: str, a: str, b: str) -> str:
    sa, sb, k = _split(a, b)
    shared = "".join(f"{text}\n" for _, text in sa[:k])
    return f"Question: {q}\nSolution:\n{shared}A: {_at(sa, k)}\nB: {_at(sb, k)}\n{_QUESTION}"


FRAMES: dict[str, Callable[[str, str, str], str]] = {
    "plain": judge_prompt,
    "diff": diff_frame,
    "local": local_frame,
    "step": step_judge_prompt,
}


def render(frame: str, src: str, dst: str) -> None:
    fn = FRAMES[frame]
    n = 0
    with open(src, encoding="utf-8") as f, open(dst, "w", encoding="utf-8") as g:
        for line in f:
            row = json.loads(line)
            row["prompt"] = fn(row["question"], row["solution_a"], row["solution_b"])
            g.write(json.dumps(row) + "\n")
            n += 1
    print(json.dumps({"frame": frame, "rows": n, "out": dst}))


def value_accuracy(path: str, model: str) -> None:
    import torch

    from openberry.models.hf import HFPolicy

    torch.set_num_threads(1)
    policy = HFPolicy.from_pretrained(model)
    pairs = {}
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    for r in rows:
        if r["label"] == 1:
            pairs.setdefault(r["pair"], (r["question"], r["solution_a"], r["solution_b"]))
    solutions = list(dict.fromkeys((q, s) for q, a, b in pairs.values() for s in (a, b)))
    prompts, spans = [], []
    for q, s in solutions:
        steps = solution_steps(s)
        ps = step_value_prompts(q, steps)
        spans.append((len(prompts), len(prompts) + len(ps), steps))
        prompts += ps
    cands = (RATING_TOKENS["positive"], RATING_TOKENS["negative"])
    probs = []
    for lo in range(0, len(prompts), 256):
        probs += policy.next_token_probs(prompts[lo : lo + 256], cands)
    ratings = [rating_value(p) for p in probs]
    cfg = ScorerConfig()
    value = {
        key: path_value(ratings[lo:hi], bool(st) and st[-1][0] == "conclusion", cfg)
        for key, (lo, hi, st) in zip(solutions, spans, strict=True)
    }
    score = [
        (value[(q, a)] > value[(q, b)]) + 0.5 * (value[(q, a)] == value[(q, b)])
        for q, a, b in pairs.values()
    ]
    print(
        json.dumps({"model": model, "pairs": len(pairs), "pair_accuracy": sum(score) / len(score)})
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render", help="rewrite pair rows' prompts in another frame")
    r.add_argument("frame", choices=sorted(FRAMES))
    r.add_argument("src")
    r.add_argument("dst")
    v = sub.add_parser("value-accuracy", help="pair accuracy of the value scorer as a judge")
    v.add_argument("pairs")
    v.add_argument("--model", default="berry-tiny")
    args = ap.parse_args()
    if args.command == "render":
        render(args.frame, args.src, args.dst)
    else:
        value_accuracy(args.pairs, args.model)


if __name__ == "__main__":
    main()

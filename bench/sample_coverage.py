"""How often sampling finds a right answer on arithmetic problems of a given shape: pass@n (a
problem with at least one right sample among n), the share of right samples, and how many steps
the samples (all, and the right ones) have.

Used to size what outcome-reward RL can learn from on problems longer than berry-tiny's corpus
(BENCHMARKS.md, "Beyond the corpus"). The problems are the first ``--limit`` of the validation
split (``--split``) drawn with ``ArithmeticConfig(min_operands=K, max_operands=K, ...)``; the samples are
self-consistency's, graded by openberry's grader.

Usage::

    python bench/sample_coverage.py --operands 5 --samples 32 --temperature 1.0
    python bench/sample_coverage.py --operands 5 --samples 16 --temperature 1.0 --operators + \\
        --max-number 9 --paren-prob 0
"""

from __future__ import annotations

import argparse
import time
from collections import Counter


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="berry-tiny")
    ap.add_argument("--operands", type=int, default=5)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--operators", default="+-*")
    ap.add_argument("--max-number", type=int, default=30)
    ap.add_argument("--paren-prob", type=float, default=0.25)
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--split", default="validation")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from openberry.data.arithmetic import ArithmeticConfig, load_split
    from openberry.grading import is_equivalent
    from openberry.models.hf import HFPolicy
    from openberry.search import make_search
    from openberry.search.engine import run_search
    from openberry.search.scorers import solution_steps

    torch.set_num_threads(args.threads)
    task = ArithmeticConfig(
        min_operands=args.operands,
        max_operands=args.operands,
        operators=args.operators,
        max_number=args.max_number,
        paren_prob=args.paren_prob,
    )
    examples = load_split(args.split, limit=args.limit, config=task)
    policy = HFPolicy.from_pretrained(args.model)
    search = make_search("self-consistency", args.samples, {"temperature": args.temperature})
    start = time.perf_counter()
    results = run_search(search, [e.problem for e in examples], policy, seed=0)
    covered = right = 0.0
    steps_all: Counter[int] = Counter()
    steps_right: Counter[int] = Counter()
    for result, example in zip(results, examples, strict=True):
        verdicts = [is_equivalent(n.answer, example.answer) for n in result.tree.nodes[1:]]
        covered += any(verdicts)
        right += sum(verdicts) / len(verdicts)
        for node, ok in zip(result.tree.nodes[1:], verdicts, strict=True):
            steps = len(solution_steps(node.text))
            steps_all[steps] += 1
            steps_right[steps] += ok
    n = len(examples)
    print(
        f"| {args.samples} | {args.temperature} | {args.operands} numbers, operators "
        f"{args.operators}, up to {args.max_number}, parentheses {args.paren_prob} | "
        f"{100 * covered / n:.0f} % | {100 * right / n:.1f} % |  ({time.perf_counter() - start:.0f} s)"
    )
    print(
        "solution steps (lines, the answer line included): all samples",
        dict(sorted(steps_all.items())),
        "; right samples",
        {k: v for k, v in sorted(steps_right.items()) if v},
    )
    for result in results[:3]:
        print(result.problem.question, "|", result.tree.nodes[1].text.replace("\n", " / "))


if __name__ == "__main__":
    main()

"""Measure a model (by default `berry-tiny`) in every role it plays, on the arithmetic test split.

Roles and metrics (all on problems of the default test split; the reference answer is used only
to score, never shown to the model):

- **solve**: greedy accuracy (``solve_prompt``, boxed answer graded exactly), and pass@1 /
  pass@k / maj@k over k samples at temperature 1.0 (pass@k: the unbiased estimator with n = k
  samples, i.e. "any of the k is right"; an oracle metric, reported only as the headroom search
  could reach).
- **value**: AUC of p(<positive_rating>) / (p(<positive_rating>) + p(<negative_rating>)) read after
  each thought of OpenLongCoT paths (half of them with a slipped step), against the path's rating
  label (positive while every step so far is right).
- **judge**: accuracy of the pairwise judge on (correct, slipped) pairs: P(Yes) is read in both
  orders and averaged (A-first and B-first), as the PPRM does to cancel position bias.
- **self-eval**: AUC of the greedy score written after ``Score:`` for correct vs flawed solutions.
- **refine**: share of flawed solutions whose greedy review names a wrong step and whose
  corrected solution is right; share of correct solutions reviewed as correct.

Usage::

    .venv/bin/python bench/berry_tiny_eval.py                       # the shipped berry-tiny
    .venv/bin/python bench/berry_tiny_eval.py --model runs/tiny/final --limit 500 --k 8

Prints a markdown table and writes ``--json`` if given.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter

from openberry.data.arithmetic import load_split
from openberry.data.arithmetic.expression import expression_of
from openberry.data.arithmetic.solutions import (
    Solution,
    check_solution,
    random_slipped_solution,
    write_solution,
)
from openberry.data.arithmetic.trees import solution_tree
from openberry.formats.openlongcot import RATING_TOKENS, value_prompt
from openberry.formats.prompts import (
    JUDGE_NO,
    JUDGE_YES,
    REVIEW_OK,
    judge_prompt,
    refine_prompt,
    review_prompt,
    self_eval_prompt,
    solve_prompt,
)
from openberry.grading.extract import last_boxed
from openberry.models import SamplingParams
from openberry.models.hf import HFPolicy


def auc(scores: list[float], labels: list[bool]) -> float:
    """Area under the ROC curve (Mann-Whitney U with ties counted half)."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def solve_metrics(policy: HFPolicy, examples: list, k: int, max_new: int) -> dict[str, float]:
    prompts = [solve_prompt(e.problem.question) for e in examples]
    greedy = policy.generate(prompts, SamplingParams(max_new_tokens=max_new, temperature=0))
    sampled = policy.generate(
        prompts, SamplingParams(n=k, max_new_tokens=max_new, temperature=1.0, seed=0)
    )
    g_ok = [last_boxed(row[0].text) == e.answer for row, e in zip(greedy, examples, strict=True)]
    s_ok = [
        [last_boxed(g.text) == e.answer for g in row]
        for row, e in zip(sampled, examples, strict=True)
    ]
    maj = []
    for row, e in zip(sampled, examples, strict=True):
        answers = [a for a in (last_boxed(g.text) for g in row) if a is not None]
        maj.append(bool(answers) and Counter(answers).most_common(1)[0][0] == e.answer)
    n = len(examples)
    tokens = sum(row[0].num_tokens for row in greedy) / n
    return {
        "greedy": sum(g_ok) / n,
        "pass@1": sum(sum(r) for r in s_ok) / (n * k),
        f"maj@{k}": sum(maj) / n,
        f"pass@{k}": sum(any(r) for r in s_ok) / n,
        "greedy_tokens": tokens,
    }


def _correct_or_flawed(expression: str, rng: random.Random) -> Solution:
    """The correct solution or, with probability 1/2, one with a random slip."""
    if rng.random() < 0.5:
        return random_slipped_solution(expression, rng)
    return write_solution(expression)


def value_auc(policy: HFPolicy, examples: list, rng: random.Random) -> float:
    prompts, labels = [], []
    for e in examples:
        expression = expression_of(e.problem)
        solution = _correct_or_flawed(expression, rng)
        tree = solution_tree(e.problem, solution)
        for node in tree.nodes[1:]:
            prompts.append(value_prompt(tree, node.parent, node.meta_action, node.text, node.id))
            labels.append(node.rating == "positive")
    pos, neg = RATING_TOKENS["positive"], RATING_TOKENS["negative"]
    probs = policy.next_token_probs(prompts, [pos, neg])
    scores = [p[pos] / max(p[pos] + p[neg], 1e-12) for p in probs]
    return auc(scores, labels)


def judge_accuracy(policy: HFPolicy, examples: list, rng: random.Random) -> float:
    prompts, truth = [], []
    for e in examples:
        expression = expression_of(e.problem)
        good = write_solution(expression).text
        bad = random_slipped_solution(expression, rng).text
        prompts += [judge_prompt(e.problem.question, good, bad)]
        prompts += [judge_prompt(e.problem.question, bad, good)]
        truth.append(True)
    probs = policy.next_token_probs(prompts, [JUDGE_YES, JUDGE_NO])
    p_yes = [p[JUDGE_YES] / max(p[JUDGE_YES] + p[JUDGE_NO], 1e-12) for p in probs]
    # P(good better than bad), averaged over both orders.
    right = 0
    for i in range(len(examples)):
        p_good = 0.5 * (p_yes[2 * i] + (1.0 - p_yes[2 * i + 1]))
        right += p_good > 0.5
    return right / len(examples)


def review_metrics(policy: HFPolicy, examples: list, rng: random.Random) -> dict[str, float]:
    cases = []
    for e in examples:
        expression = expression_of(e.problem)
        solution = _correct_or_flawed(expression, rng)
        cases.append((e, expression, solution))
    greedy = SamplingParams(max_new_tokens=24, temperature=0, stop=("\n",))
    reviews = policy.generate(
        [review_prompt(e.problem.question, s.text) for e, _, s in cases], greedy
    )
    corrected = policy.generate(
        [
            refine_prompt(e.problem.question, s.text, r[0].text)
            for (e, _, s), r in zip(cases, reviews, strict=True)
        ],
        SamplingParams(max_new_tokens=96, temperature=0),
    )
    scores_out = policy.generate(
        [self_eval_prompt(e.problem.question, s.text) for e, _, s in cases],
        SamplingParams(max_new_tokens=6, temperature=0, stop=("\n",)),
    )
    fixed = flagged_ok = n_flawed = n_ok = 0
    scores, labels = [], []
    for (_e, expression, s), r, c, sc in zip(cases, reviews, corrected, scores_out, strict=True):
        said_ok = r[0].text.strip() == REVIEW_OK
        if s.is_correct:
            n_ok += 1
            flagged_ok += said_ok
        else:
            n_flawed += 1
            fixed += (not said_ok) and check_solution(expression, c[0].text).is_correct
        try:
            scores.append(float(int(sc[0].text.strip())))
        except ValueError:
            scores.append(0.0)
        labels.append(s.is_correct)
    return {
        "refine_fixes_flawed": fixed / max(n_flawed, 1),
        "review_accepts_correct": flagged_ok / max(n_ok, 1),
        "self_eval_auc": auc(scores, labels),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="berry-tiny", help="model dir or name (berry-tiny)")
    parser.add_argument("--limit", type=int, default=500, help="test problems (default 500)")
    parser.add_argument("--k", type=int, default=8, help="samples per problem for pass@k")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    policy = HFPolicy.from_pretrained(args.model, batch_size=256)
    examples = load_split("test", limit=args.limit)
    rng = random.Random(0)
    start = time.monotonic()
    figures: dict[str, float] = {"problems": len(examples)}
    figures |= solve_metrics(policy, examples, args.k, args.max_new_tokens)
    figures["value_auc"] = value_auc(policy, examples, rng)
    figures["judge_accuracy"] = judge_accuracy(policy, examples, rng)
    figures |= review_metrics(policy, examples, rng)
    figures["pass_ratio"] = figures[f"pass@{args.k}"] / max(figures["greedy"], 1e-9)
    figures["eval_seconds"] = round(time.monotonic() - start, 1)
    print(f"model: {args.model}\n\n| metric | value |\n|---|---|")
    for key, value in figures.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        print(f"| {key} | {shown} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"model": args.model, **figures}, fh, indent=2)


if __name__ == "__main__":
    main()

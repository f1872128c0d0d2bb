"""Pair and order accuracy of a PPRM judge on pair rows (docs/training.md).

Measures any judge model the search can use -- berry-tiny untrained, a ``berry train pprm``
output (``RUN/final``), a hub model -- on pair rows through the backend's next-token
probabilities, exactly as `openberry.search.scorers.judge_preferences` reads them
(`openberry.training.pprm.judge_accuracy`); ``--frame likelihood`` measures the judge model's
likelihood of the lines where the two solutions part instead. Prints one JSON object.

    python bench/judge_accuracy.py --judge berry-tiny --pairs test-pairs.jsonl
    python bench/judge_accuracy.py --judge runs/judge/final --pairs test-pairs.jsonl --threads 2
    python bench/judge_accuracy.py --judge runs/sft/final --pairs test-pairs.jsonl --frame likelihood
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--judge", action="append", required=True, help="model dir or id (repeat)")
    ap.add_argument("--pairs", required=True, help="pair rows (JSONL)")
    ap.add_argument("--limit", type=int, default=None, help="first N rows only")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--frame", choices=("prompt", "likelihood"), default="prompt")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from openberry.jsonl import iter_jsonl
    from openberry.models.spec import ModelSpec
    from openberry.training.pprm import judge_accuracy

    rows = [raw for _, raw in iter_jsonl(args.pairs)][: args.limit]
    out = {}
    for judge in args.judge:
        spec = ModelSpec(judge, device=args.device)
        out[judge] = judge_accuracy(spec, rows, batch_size=args.batch_size, frame=args.frame)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

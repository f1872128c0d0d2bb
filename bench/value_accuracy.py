"""MSE, Brier and AUC of a model's rating-token value on value rows (``berry extract values``).

Reads p(positive) / (p(positive) + p(negative)) after each row's prompt through the backend's
next-token probabilities, as the searches read it (`openberry.search.scorers.rating_value`), and
scores it against the rows' Monte-Carlo returns (`openberry.training.value.value_metrics`; AUC
against the return binarised at 0.5). Prints one JSON object::

    python bench/value_accuracy.py --model berry-tiny --model runs/value/final --rows values-test.jsonl
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", required=True, help="model dir or id (repeat)")
    ap.add_argument("--rows", required=True, help="value rows (JSONL)")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from openberry.formats.openlongcot import RATING_TOKENS
    from openberry.models.spec import ModelSpec
    from openberry.search.scorers import rating_value
    from openberry.training.value import load_value_rows, value_metrics

    rows = load_value_rows([args.rows])
    cands = (RATING_TOKENS["positive"], RATING_TOKENS["negative"])
    out = {}
    for name in args.model:
        policy = ModelSpec(name).build()
        probs: list[float] = []
        for lo in range(0, len(rows), args.batch_size):
            part = [r.prompt for r in rows[lo : lo + args.batch_size]]
            probs += [rating_value(p) for p in policy.next_token_probs(part, cands)]
        out[name] = {"rows": len(rows), **value_metrics(rows, probs)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

"""Continued SFT on berry-tiny's own corpus: the control arm of the RL comparison.

What it measures: greedy accuracy on held-out arithmetic problems against training wall time
while berry-tiny goes on training, with the same LoRA adapter the RL arms train, on the
pretraining mixture it was made from (``arithmetic:pretrain``: every role's documents, the
dropped carries included, as in pretraining). An RL arm that beats this curve gains by
learning from its own samples and the verifier, not by more training of the same kind.

The run is `berry train sft` (`openberry.training.sft.train_sft`) with the evaluation callback of
``bench/trl_grpo.py``: greedy decoding of the solve prompt on the first ``--eval-limit`` test
problems at step 0, every ``--eval-every`` steps and at the end, the training clock stopped
while it evaluates. No eval loss and no checkpoint are computed during the run, so the clock
holds training steps alone.

Output: one JSON line per evaluation appended to ``--out``, in ``trl_grpo.py``'s shape (``arm`` is
``continued-sft``), so ``bench/rl_curves.py --trl "LABEL=FILE"`` plots it.

Reproduce::

    .venv/bin/python bench/sft_control.py --steps 400 --eval-every 80 --seed 0 --threads 2 \\
        --out runs/sft-control.jsonl
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from trl_grpo import make_callback, operands  # bench/ is the script's directory

from openberry.data.arithmetic import ArithmeticConfig, load_split
from openberry.models.builtin import resolve_model
from openberry.training.sft import SFTConfig, train_sft

ARM = "continued-sft"
RL_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""The modules `berry train rl` puts its adapter on (its default)."""


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--steps", type=int, default=400, help="optimizer steps")
    ap.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (RL's default)")
    ap.add_argument("--warmup-steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=32, help="sequences per step")
    ap.add_argument("--max-length", type=int, default=256, help="packed block size")
    ap.add_argument("--docs", type=int, default=50000, help="corpus documents to draw")
    ap.add_argument("--full", action="store_true", help="train every weight, not a LoRA adapter")
    ap.add_argument("--eval-every", type=int, default=80, help="steps between evaluations")
    ap.add_argument("--eval-limit", type=int, default=200, help="test split problems")
    ap.add_argument("--max-completion-length", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0, help="training seed (data order, adapter)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--out", type=Path, default=Path("bench/results/sft_control.jsonl"))
    args = ap.parse_args()
    if args.eval_every < 1:
        ap.error("--eval-every must be at least 1")

    from transformers import AutoTokenizer

    path = resolve_model("berry-tiny")
    tokenizer = AutoTokenizer.from_pretrained(path)
    defaults = ArithmeticConfig()
    eval_sets = [("test", operands(defaults), load_split("test", limit=args.eval_limit))]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    callback = make_callback(args, tokenizer, eval_sets, args.out, arm=ARM)
    with tempfile.TemporaryDirectory(prefix="sft_control_") as tmp:
        config = SFTConfig(
            model=str(path),
            data=(f"arithmetic:pretrain:{args.docs}:{args.seed + 1}",),
            output_dir=tmp,
            eval_fraction=0.0,
            eval_on_start=False,
            max_length=args.max_length,
            lora=not args.full,
            lora_target_modules=RL_TARGETS,
            max_steps=args.steps,
            learning_rate=args.lr,
            warmup_steps=args.warmup_steps,
            lr_scheduler="constant_with_warmup",
            batch_size=args.batch_size,
            save_steps=args.steps + 1,
            seed=args.seed,
            threads=args.threads,
        )
        result = train_sft(config, callbacks=[callback])
    row = {
        "arm": ARM,
        "seed": args.seed,
        "step": result.step,
        "kind": "config",
        "wall_s": round(callback.train_s, 1),
        "eval_s": round(callback.eval_s, 1),
        "final": callback.final,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    print(json.dumps(row), flush=True)
    with args.out.open("a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

"""TRL's `GRPOTrainer` on berry-tiny: the anchor arm of the RL comparison.

What it measures: greedy accuracy on held-out arithmetic problems against training wall time
(and steps) while TRL's GRPO trains berry-tiny with a 0/1 correctness reward. Our own RL trainer
is compared against this arm on the same problems, reward, evaluation and machine.

- training problems: the first ``--train-limit`` problems of the arithmetic train split with
  ``--min-operands/--max-operands`` (data seed 0, so every run and arm sees the same problems),
  prompted with the solve frame berry-tiny was trained on (``solve_prompt``: ``Question: ...
  \\nSolution:\\n``);
- reward: 1.0 when the answer the completion states (``answer_of_text``: boxed etc.) is
  equivalent to the reference answer under openberry's grader, else 0.0; the reference reaches
  the reward function through the dataset's ``answer`` column;
- one step: ``--completions-per-step`` completions, ``--num-generations`` per prompt (64 / 8 = 8
  prompts), one optimizer step (TRL's defaults otherwise: loss ``dapo``, group-scaled rewards,
  linear decay after ``--warmup-steps``, beta 0 = no reference model);
- evaluation (a `TrainerCallback`, at step 0, every ``--eval-every`` steps and at the end):
  batched left-padded greedy decoding of the solve prompt on the first ``--eval-limit`` problems
  of the test split with the default config, and also with the training config when it differs,
  graded like the reward. The training clock stops while it evaluates.

Output: one JSON line per (evaluation, split) appended to ``--out``: ``{"arm": "trl-grpo",
"seed", "step", "wall_s" (training wall time so far, evaluation excluded), "split", "operands",
"accuracy", "n"}``, then one row ``{"kind": "config", ...}`` with every setting, the library
versions, seconds per step and the final accuracies.

Reproduce (full weights; measured before on the 2-core dev machine: ~97 % greedy on the default
test split after ~150 steps / ~165 s of training, from ~52 % at step 0)::

    .venv/bin/python bench/trl_grpo.py --steps 150 --seed 0 --out bench/results/trl_grpo.jsonl

Smoke run (a few minutes on a CPU)::

    .venv/bin/python bench/trl_grpo.py --steps 4 --eval-every 2 --eval-limit 16 \\
        --train-limit 64 --out /tmp/trl_smoke.jsonl
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from openberry.data.arithmetic import ArithmeticConfig, load_split
from openberry.formats.prompts import solve_prompt
from openberry.grading import is_equivalent
from openberry.models.builtin import resolve_model
from openberry.search.common import answer_of_text

ARM = "trl-grpo"
DATA_SEED = 0
"""Seed of the training and evaluation problems: fixed, so every arm and run share them."""


def correct(completion: str, reference: str | None) -> float:
    """1.0 when the answer `completion` states is equivalent to `reference`, else 0.0."""
    answer = answer_of_text(completion)
    if answer is None or reference is None:
        return 0.0
    return 1.0 if is_equivalent(answer, reference) else 0.0


def correctness_reward(
    prompts: list[str], completions: list[str], answer: list[str], **_: Any
) -> list[float]:
    """TRL reward function: the ``answer`` column holds each prompt's reference answer."""
    return [correct(c, a) for c, a in zip(completions, answer, strict=True)]


def operands(config: ArithmeticConfig) -> str:
    return f"{config.min_operands}-{config.max_operands}"


def greedy_accuracy(
    model: Any, tokenizer: Any, examples: list, max_new_tokens: int, batch_size: int = 64
) -> float:
    """Share of `examples` whose greedy solution (left-padded batches) grades as correct."""
    import torch

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    hits = 0.0
    try:
        with torch.no_grad():
            for start in range(0, len(examples), batch_size):
                batch = examples[start : start + batch_size]
                ids = tokenizer([solve_prompt(e.problem.question) for e in batch])["input_ids"]
                width = max(len(x) for x in ids)
                input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids], device=device)
                mask = torch.tensor(
                    [[0] * (width - len(x)) + [1] * len(x) for x in ids], device=device
                )
                out = model.generate(
                    input_ids=input_ids,
                    attention_mask=mask,
                    do_sample=False,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=pad,
                    eos_token_id=tokenizer.eos_token_id,
                    use_cache=True,
                )
                texts = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
                hits += sum(correct(t, e.answer) for t, e in zip(texts, batch, strict=True))
    finally:
        if was_training:
            model.train()
    return hits / max(1, len(examples))


def make_callback(
    args: argparse.Namespace, tokenizer: Any, eval_sets: list, out: Path, arm: str = ARM
) -> Any:
    """A callback that evaluates greedy accuracy (rows labelled `arm`) and keeps the training
    clock. Its ``model`` is set by the caller, or taken from the trainer when training begins."""
    from transformers import TrainerCallback

    class EvalCallback(TrainerCallback):
        """Greedy evaluation at step 0, every `eval_every` steps and at the end; the training
        clock (``wall_s``) runs only between evaluations."""

        def __init__(self) -> None:
            self.model: Any = None
            self.train_s = 0.0
            self.eval_s = 0.0
            self.since: float | None = None
            self.last_step = -1
            self.final: dict[str, float] = {}

        def _pause(self) -> None:
            if self.since is not None:
                self.train_s += time.perf_counter() - self.since
                self.since = None

        def _resume(self) -> None:
            self.since = time.perf_counter()

        def evaluate(self, step: int) -> None:
            if step == self.last_step:
                return
            self._pause()
            started = time.perf_counter()
            for name, ops, examples in eval_sets:
                acc = greedy_accuracy(self.model, tokenizer, examples, args.max_completion_length)
                row = {
                    "arm": arm,
                    "seed": args.seed,
                    "step": step,
                    "wall_s": round(self.train_s, 1),
                    "split": name,
                    "operands": ops,
                    "accuracy": round(acc, 4),
                    "n": len(examples),
                }
                self.final[f"{name}/{ops}"] = row["accuracy"]
                print(json.dumps(row), flush=True)
                with out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
            self.eval_s += time.perf_counter() - started
            self.last_step = step
            self._resume()

        def on_train_begin(self, _args, state, control, **kwargs):
            if self.model is None:
                self.model = kwargs.get("model")
            self.evaluate(state.global_step)

        def on_step_end(self, _args, state, control, **kwargs):
            step = state.global_step
            if step % args.eval_every == 0 or step >= state.max_steps:
                self.evaluate(step)

        def on_train_end(self, _args, state, control, **kwargs):
            self.evaluate(state.global_step)
            self._pause()

    return EvalCallback()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    defaults = ArithmeticConfig()
    ap.add_argument("--steps", type=int, default=150, help="optimizer steps")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--warmup-steps", type=int, default=10)
    ap.add_argument("--num-generations", type=int, default=8, help="completions per prompt")
    ap.add_argument("--completions-per-step", type=int, default=64)
    ap.add_argument("--max-completion-length", type=int, default=96)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--beta", type=float, default=None, help="KL coefficient (TRL's default)")
    ap.add_argument("--min-operands", type=int, default=defaults.min_operands)
    ap.add_argument("--max-operands", type=int, default=defaults.max_operands)
    ap.add_argument("--train-limit", type=int, default=2000, help="train split problems")
    ap.add_argument("--eval-every", type=int, default=25, help="steps between evaluations")
    ap.add_argument("--eval-limit", type=int, default=200, help="test split problems")
    ap.add_argument("--lora", action="store_true", help="train a LoRA adapter, not all weights")
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--lora-alpha", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0, help="training seed (problems are fixed)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/trl_grpo.jsonl"))
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = ap.parse_args()
    if args.eval_every < 1:
        ap.error("--eval-every must be at least 1")

    import torch
    import transformers
    import trl
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from openberry.models.hf import tune_cpu_malloc

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    if not cuda:
        tune_cpu_malloc()  # as every berry command does on a CPU

    train_cfg = ArithmeticConfig(min_operands=args.min_operands, max_operands=args.max_operands)
    train = load_split("train", limit=args.train_limit, config=train_cfg, seed=DATA_SEED)
    dataset = Dataset.from_list(
        [{"prompt": solve_prompt(e.problem.question), "answer": e.answer} for e in train]
    )
    eval_sets = [("test", operands(defaults), load_split("test", limit=args.eval_limit))]
    if train_cfg != defaults:
        eval_sets.append(
            (
                "test",
                operands(train_cfg),
                load_split("test", limit=args.eval_limit, config=train_cfg, seed=DATA_SEED),
            )
        )

    path = resolve_model("berry-tiny")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    peft_config = None
    if args.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(
            task_type="CAUSAL_LM",
            r=args.lora_r,
            lora_alpha=args.lora_alpha,
            lora_dropout=0.0,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    callback = make_callback(args, tokenizer, eval_sets, args.out)
    extra = {} if args.beta is None else {"beta": args.beta}
    with tempfile.TemporaryDirectory(prefix="trl_grpo_") as tmp:
        config = GRPOConfig(
            output_dir=tmp,
            max_steps=args.steps,
            learning_rate=args.lr,
            warmup_steps=args.warmup_steps,
            per_device_train_batch_size=args.completions_per_step,
            gradient_accumulation_steps=1,
            num_generations=args.num_generations,
            max_completion_length=args.max_completion_length,
            temperature=args.temperature,
            logging_steps=max(1, min(10, args.eval_every)),
            save_strategy="no",
            report_to="none",
            use_cpu=not cuda,
            bf16=False,
            gradient_checkpointing=False,
            seed=args.seed,
            **extra,
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=correctness_reward,
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=[callback],
        )
        callback.model = trainer.model
        trainer.train()
        steps = int(trainer.state.global_step)
        beta = float(trainer.args.beta)
        loss_type = str(trainer.args.loss_type)

    row = {
        "arm": ARM,
        "seed": args.seed,
        "step": steps,
        "kind": "config",
        "wall_s": round(callback.train_s, 1),
        "eval_s": round(callback.eval_s, 1),
        "s_per_step": round(callback.train_s / max(1, steps), 3),
        "final": callback.final,
        "config": {
            **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "beta": beta,
            "loss_type": loss_type,
            "train_config": asdict(train_cfg),
            "data_seed": DATA_SEED,
            "device": "cuda" if cuda else "cpu",
            "threads": torch.get_num_threads(),
            "trl": trl.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        },
    }
    print(json.dumps(row), flush=True)
    with args.out.open("a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

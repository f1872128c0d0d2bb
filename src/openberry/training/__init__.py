"""Training: supervised fine-tuning / continued pretraining (`train_sft`), tokenizer training, the
pairwise judge (`train_pprm`) and the rating-token value (`train_value`).

Importing this package is light: torch, transformers, peft and trl are imported when training runs.
"""

from openberry.training.pprm import PPRMConfig, judge_accuracy, train_pprm
from openberry.training.sft import RECIPES, SFTConfig, SFTError, SFTResult, train_sft
from openberry.training.tokenizer import train_tokenizer
from openberry.training.value import ValueConfig, train_value

__all__ = [
    "RECIPES",
    "PPRMConfig",
    "SFTConfig",
    "SFTError",
    "SFTResult",
    "ValueConfig",
    "judge_accuracy",
    "train_pprm",
    "train_sft",
    "train_tokenizer",
    "train_value",
]

"""Training: supervised fine-tuning / continued pretraining (`train_sft`) and tokenizer training.

Importing this package is light: torch, transformers and peft are imported when training runs.
"""

from openberry.training.sft import RECIPES, SFTConfig, SFTError, SFTResult, train_sft
from openberry.training.tokenizer import train_tokenizer

__all__ = ["RECIPES", "SFTConfig", "SFTError", "SFTResult", "train_sft", "train_tokenizer"]

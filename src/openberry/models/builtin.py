"""Models that ship inside the package: `berry-tiny`, the default model of every command.

`resolve_model` maps a built-in name to its directory (``openberry/models/berry_tiny/``:
safetensors weights, config and tokenizer files) and leaves any other name or path unchanged, so
every place that loads a model by name (`HFPolicy.from_pretrained`, ``berry generate``, ``berry
serve``, ``berry train sft --model``) accepts ``berry-tiny`` offline.
"""

from __future__ import annotations

from pathlib import Path

from openberry.models.base import ModelError

__all__ = ["BUILTIN_MODELS", "DEFAULT_MODEL", "builtin_dir", "resolve_model"]

DEFAULT_MODEL = "berry-tiny"
"""The model commands use when none is named."""
BUILTIN_MODELS: dict[str, str] = {"berry-tiny": "berry_tiny"}
"""Built-in model name -> its directory under ``openberry/models/``."""


def builtin_dir(name: str) -> Path:
    """Directory of a built-in model (it may not exist in a source checkout without weights)."""
    return Path(__file__).resolve().parent / BUILTIN_MODELS[name]


def resolve_model(name_or_path: str) -> str:
    """The directory of a built-in model name, else `name_or_path` unchanged.

    Raises:
        ModelError: a built-in name whose weights are missing from the installation.
    """
    if name_or_path not in BUILTIN_MODELS:
        return name_or_path
    path = builtin_dir(name_or_path)
    if not (path / "model.safetensors").is_file():
        raise ModelError(
            f"{name_or_path} weights are missing from this installation ({path}); reinstall "
            f"openberry, or rebuild them with: berry train sft --recipe tiny"
        )
    return str(path)

"""Models that ship inside the package: `berry-tiny`, the default model of every command, and
`berry-tiny-rl`, a LoRA adapter on it trained by self-play RL (``berry train rl --recipe
tiny-rl``).

`resolve_model` maps a built-in name to its directory (``openberry/models/berry_tiny/``:
safetensors weights, config and tokenizer files; ``berry_tiny_rl/``: the adapter, whose config
names ``berry-tiny`` as its base), a named GGUF model (``smollm2-135m-instruct``, shipped by an
optional package: `openberry.models.gguf.GGUF_MODELS`) to its ``.gguf`` file, and leaves any other
name or path unchanged, so every place that loads a model by name (`HFPolicy.from_pretrained`,
``berry generate``, ``berry serve``, ``berry eval``, ``berry train``) accepts them offline.
"""

from __future__ import annotations

from pathlib import Path

from openberry.models.base import ModelError

__all__ = ["BUILTIN_MODELS", "DEFAULT_MODEL", "builtin_dir", "resolve_model"]

DEFAULT_MODEL = "berry-tiny"
"""The model commands use when none is named."""
BUILTIN_MODELS: dict[str, str] = {"berry-tiny": "berry_tiny", "berry-tiny-rl": "berry_tiny_rl"}
"""Built-in model name -> its directory under ``openberry/models/``."""


def builtin_dir(name: str) -> Path:
    """Directory of a built-in model (it may not exist in a source checkout without weights)."""
    return Path(__file__).resolve().parent / BUILTIN_MODELS[name]


def resolve_model(name_or_path: str) -> str:
    """The directory of a built-in model name, the ``.gguf`` file of a named GGUF model, else
    `name_or_path` unchanged.

    Raises:
        ModelError: a built-in name whose weights are missing from the installation, or a named
            GGUF model whose package is not installed (the message names the extra).
    """
    from openberry.models.gguf import GGUF_MODELS, named_gguf_path

    if name_or_path in GGUF_MODELS:
        return str(named_gguf_path(name_or_path))
    if name_or_path not in BUILTIN_MODELS:
        return name_or_path
    path = builtin_dir(name_or_path)
    if not any((path / f).is_file() for f in ("model.safetensors", "adapter_model.safetensors")):
        raise ModelError(
            f"{name_or_path} weights are missing from this installation ({path}); reinstall "
            f"openberry, or rebuild them with: berry train sft --recipe tiny"
        )
    return str(path)

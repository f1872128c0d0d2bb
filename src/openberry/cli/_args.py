"""Argument types shared by the `berry` subcommands (standard library only)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = [
    "GGUF_MODEL_HELP",
    "add_adapter_arg",
    "add_backend_args",
    "add_gguf_file_arg",
    "add_prefix_cache_arg",
    "add_prompts_arg",
    "add_role_args",
    "int_at_least",
    "join_gguf_file",
    "model_spec",
    "positive_float",
    "role_specs",
]


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` that accepts integers >= `minimum`, with a clear message otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = f"int_at_least_{minimum}"
    return parse


def positive_float(text: str) -> float:
    """An argparse ``type`` that accepts numbers > 0, with a clear message otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


GGUF_MODEL_HELP = (
    "a .gguf file (dequantized to float32; pip install 'openberry[gguf]'), or "
    "smollm2-135m-instruct (SmolLM2-135M-Instruct Q4_1 GGUF; pip install 'openberry[smollm2]')"
)
"""The part of a ``--model`` help that names the GGUF forms (`openberry.models.gguf`)."""


def add_backend_args(parser: Any) -> None:
    """Add the backend options shared by the commands that load a model (``--backend``,
    ``--base-url``, ``--timeout``, ``--max-retries``, ``--max-retry-time``, ``--device``,
    ``--dtype``, ``--chat-template``, ``--adapter``, ``--gguf-file``, ``--prefix-cache-mb``) to a
    parser or group."""
    from openberry.models.spec import DEFAULT_MAX_RETRIES, DEFAULT_REQUEST_TIMEOUT

    parser.add_argument("--backend", choices=("hf", "openai"), default="hf", help="default: hf")
    parser.add_argument("--base-url", metavar="URL", help="server URL (--backend openai)")
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_REQUEST_TIMEOUT,
        metavar="SECONDS",
        help="openai: seconds to wait for the answer to one request before retrying it "
        f"(default: {DEFAULT_REQUEST_TIMEOUT:g})",
    )
    parser.add_argument(
        "--max-retries",
        type=int_at_least(0),
        default=DEFAULT_MAX_RETRIES,
        metavar="N",
        help="openai: retries of a request that timed out, could not connect or got HTTP 429 or "
        f"5xx, with exponential backoff (default: {DEFAULT_MAX_RETRIES})",
    )
    parser.add_argument(
        "--max-retry-time",
        type=positive_float,
        metavar="SECONDS",
        help="openai: give up on a request this many seconds after its first attempt, retries "
        "and waits included (default: no bound but --timeout and --max-retries)",
    )
    parser.add_argument("--device", metavar="D", help="hf: cpu, cuda, cuda:1 ...")
    parser.add_argument("--dtype", metavar="T", help="hf: float32, bfloat16, auto ...")
    parser.add_argument(
        "--chat-template", action="store_true", help="hf: wrap prompts in the chat template"
    )
    add_adapter_arg(parser, "hf: ")
    add_gguf_file_arg(parser, "hf: ")
    add_prefix_cache_arg(parser, "hf: ")
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="hf: let a reward-head process reward model (--value-model with the prm-head "
        "scorer) whose head only its repository's code defines run that code (off: such a "
        "model is refused; recorded with the model's settings)",
    )


def add_gguf_file_arg(parser: Any, prefix: str = "") -> None:
    """Add ``--gguf-file NAME`` (the GGUF file inside the directory or hub repository
    ``--model``) to a parser or group."""
    parser.add_argument(
        "--gguf-file",
        metavar="NAME",
        help=f"{prefix}load the GGUF file NAME inside the directory or hub repository --model "
        "(same as --model DIR/NAME for a directory; dequantized to float32, needs "
        "pip install 'openberry[gguf]')",
    )


def join_gguf_file(model: str | None, gguf_file: str | None) -> str | None:
    """``--model DIR --gguf-file NAME`` as one path, ``DIR/NAME``, for the commands whose
    configs record a single model path (``berry train``); `model` unchanged without
    `gguf_file`.

    Raises:
        BerryError: `gguf_file` without a model, or with a model that is not a local directory.
    """
    from pathlib import Path

    from openberry.errors import BerryError

    if not gguf_file:
        return model
    if model is None:
        raise BerryError("--gguf-file needs --model, the directory that holds the file")
    if not Path(model).is_dir():
        raise BerryError(
            f"--gguf-file needs --model to be a local directory, got {model!r} (pass the "
            ".gguf file itself as --model)"
        )
    return str(Path(model) / gguf_file)


def add_adapter_arg(parser: Any, prefix: str = "") -> None:
    """Add ``--adapter DIR`` (a peft LoRA adapter loaded on top of the model) to a parser or
    group."""
    parser.add_argument(
        "--adapter",
        metavar="DIR",
        help=f"{prefix}peft (LoRA) adapter directory to load on top of --model (a --model that "
        "is an adapter directory loads its base model by itself)",
    )


def add_prefix_cache_arg(parser: Any, prefix: str = "") -> None:
    """Add ``--prefix-cache-mb`` (`HFPolicy`'s prefix store budget) to a parser or group."""
    from openberry.models.spec import DEFAULT_PREFIX_CACHE_MB

    parser.add_argument(
        "--prefix-cache-mb",
        type=float,
        default=DEFAULT_PREFIX_CACHE_MB,
        metavar="MB",
        help=f"{prefix}MiB of keys/values of earlier prompts kept for re-use, so tree search "
        "does not re-read a node's path at every call "
        f"(0: off; default: {DEFAULT_PREFIX_CACHE_MB:g})",
    )


_SPEC_OPTIONS = (
    "backend",
    "base_url",
    "timeout",
    "max_retries",
    "max_retry_time",
    "device",
    "dtype",
    "chat_template",
    "prefix_cache_mb",
    "trust_remote_code",
)
"""`ModelSpec` fields that have a command-line option of the same name."""


def model_spec(args: argparse.Namespace, model: str | None = None) -> Any:
    """The `openberry.models.spec.ModelSpec` of ``model`` (default ``args.model``) with the
    backend options of `add_backend_args`; options the command does not have keep the spec's
    defaults. ``--adapter`` and ``--gguf-file`` belong to ``args.model`` only: another `model`
    (a judge) gets none.
    """
    from openberry.models.spec import ModelSpec

    options = {name: getattr(args, name) for name in _SPEC_OPTIONS if hasattr(args, name)}
    if model is None:
        model = args.model
        options["adapter"] = getattr(args, "adapter", None)
        options["gguf_file"] = getattr(args, "gguf_file", None)
    return ModelSpec(model=model, **options)


def add_role_args(parser: Any) -> None:
    """Add ``--judge`` and ``--value-model`` (separate models for the judge and value roles of a
    search, loaded with the same backend options) to a parser or group."""
    parser.add_argument(
        "--judge",
        metavar="PATH_OR_ID",
        help="separate pairwise judge (PPRM) model, e.g. from 'berry train pprm', or any policy "
        "with --set scorer_config.judge_frame=likelihood (e.g. from 'berry train sft' on "
        "verified paths): sr-mcts, best-of-n with --set scorer=pprm (default: the policy judges)",
    )
    parser.add_argument(
        "--value-model",
        metavar="PATH_OR_ID",
        help="separate rating-token value model, e.g. from 'berry train value': step-mcts, "
        "beam, meta-mcts, the value scorer (default: the policy rates); or a process reward "
        "model for the prm scorer (a causal LM, Math-Shepherd style) or the prm-head scorer (a "
        "token or sequence classifier): --set scorer=prm-head, or step_scorer=prm-head for "
        "beam and step-mcts",
    )


def role_specs(args: argparse.Namespace) -> dict[str, Any]:
    """``{"judge": ModelSpec, "value": ModelSpec}`` for the role options given (see
    `add_role_args`)."""
    roles = {"judge": getattr(args, "judge", None), "value": getattr(args, "value_model", None)}
    return {role: model_spec(args, name) for role, name in roles.items() if name}


def prompt_profile(text: str) -> Any:
    """An argparse ``type``: ``--prompts NAME|FILE`` as an `openberry.formats.profiles`
    ``PromptChoice`` (``auto``, a built-in name, or the profile read and checked from a file),
    with the profile's error message otherwise."""
    from openberry.formats.profiles import ProfileError, prompt_choice

    try:
        return prompt_choice(text)
    except ProfileError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_prompts_arg(
    parser: Any,
    auto: str = "paper when the policy wraps prompts in its chat template (--chat-template), else "
    "tiny",
) -> None:
    """Add ``--prompts NAME|FILE`` (the role prompts of search, `openberry.formats.profiles`)
    to a parser or group; `auto` says what ``auto`` picks."""
    parser.add_argument(
        "--prompts",
        type=prompt_profile,
        default="auto",
        metavar="NAME|FILE",
        help="role prompts of the search (solve, critique, rewrite, self-evaluation, judge): "
        "tiny (berry-tiny's short frames), paper (the papers' instructions, rendered through "
        "the model's chat template), a TOML or JSON profile file (docs/prompts.md), or auto: "
        f"{auto} (default: auto)",
    )

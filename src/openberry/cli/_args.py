"""Argument types shared by the `berry` subcommands (standard library only)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = [
    "add_adapter_arg",
    "add_backend_args",
    "add_prefix_cache_arg",
    "add_role_args",
    "int_at_least",
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


def add_backend_args(parser: Any) -> None:
    """Add the backend options shared by the commands that load a model (``--backend``,
    ``--base-url``, ``--timeout``, ``--max-retries``, ``--max-retry-time``, ``--device``,
    ``--dtype``, ``--chat-template``, ``--adapter``, ``--prefix-cache-mb``) to a parser or
    group."""
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
    add_prefix_cache_arg(parser, "hf: ")


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
)
"""`ModelSpec` fields that have a command-line option of the same name."""


def model_spec(args: argparse.Namespace, model: str | None = None) -> Any:
    """The `openberry.models.spec.ModelSpec` of ``model`` (default ``args.model``) with the
    backend options of `add_backend_args`; options the command does not have keep the spec's
    defaults. ``--adapter`` belongs to ``args.model`` only: another `model` (a judge) gets none.
    """
    from openberry.models.spec import ModelSpec

    options = {name: getattr(args, name) for name in _SPEC_OPTIONS if hasattr(args, name)}
    if model is None:
        model = args.model
        options["adapter"] = getattr(args, "adapter", None)
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
        "beam, meta-mcts, the value scorer (default: the policy rates)",
    )


def role_specs(args: argparse.Namespace) -> dict[str, Any]:
    """``{"judge": ModelSpec, "value": ModelSpec}`` for the role options given (see
    `add_role_args`)."""
    roles = {"judge": getattr(args, "judge", None), "value": getattr(args, "value_model", None)}
    return {role: model_spec(args, name) for role, name in roles.items() if name}

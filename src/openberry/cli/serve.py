"""`berry serve`: serve a model over an OpenAI-compatible HTTP API (`openberry.serve.app`).

Only the standard library is imported at module level; torch, transformers, FastAPI and uvicorn are
imported when the command runs.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from openberry.cli._args import (
    GGUF_MODEL_HELP,
    add_adapter_arg,
    add_gguf_file_arg,
    add_prefix_cache_arg,
    add_prompts_arg,
    add_role_args,
    int_at_least,
    model_spec,
    role_specs,
)
from openberry.errors import BerryError
from openberry.models.builtin import DEFAULT_MODEL
from openberry.search.registry import DEFAULT_ROLLOUTS
from openberry.serve.search_models import MAX_SEARCH_ROLLOUTS

__all__ = ["LOOPBACK_HOSTS", "check_bind", "register"]

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
"""Hosts that may be bound without an API key."""

_EPILOG = """\
examples:
  berry serve                                   # berry-tiny on http://127.0.0.1:8000/v1
  berry serve --model ./checkpoints/sft --port 8000
  BERRY_API_KEY=secret berry serve --model ./ckpt --host 0.0.0.0 --port 8000
  berry serve --search-rollouts 8                # berry-mctsr etc. search with 8 rollouts
  berry serve --model smollm2-135m-instruct      # pip install 'openberry[smollm2]'

Search methods are served as models too (unless --no-search-methods): berry-greedy,
berry-self-consistency, berry-best-of-n, berry-beam, berry-mctsr, berry-sr-mcts, berry-meta-mcts.
A request naming one runs that search over the served model on the prompt (or the last user
message) and answers with the chosen solution; the extra request fields 'rollouts' (int) and
'search_config' (object of config overrides) tune it, and the response carries an 'openberry'
object with the answer, the chosen node ids and the search statistics. Example:
  curl http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' -d \\
    '{"model": "berry-mctsr", "rollouts": 2, "messages": [{"role": "user", "content": "Compute 2+3."}]}'

Binding to a host other than 127.0.0.1, localhost or ::1 needs an API key (--api-key or
BERRY_API_KEY).
"""


def register(subparsers: Any) -> None:
    """Add the ``serve`` subcommand.

    Args:
        subparsers: the ``add_subparsers`` object of the ``berry`` parser.
    """
    p = subparsers.add_parser(
        "serve",
        help="serve a model over an OpenAI-compatible HTTP API",
        description="Serve a Hugging Face causal LM (optionally with a LoRA adapter) over "
        "/v1/models, /v1/completions and /v1/chat/completions.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="PATH_OR_ID",
        help=f"model directory, hub id, built-in name (default: {DEFAULT_MODEL}), "
        f"{GGUF_MODEL_HELP}",
    )
    add_adapter_arg(p)
    add_gguf_file_arg(p)
    p.add_argument(
        "--name", metavar="NAME", help="model name clients pass as 'model' (default: --model)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to bind (default: 8000)")
    p.add_argument(
        "--api-key",
        metavar="KEY",
        help="require 'Authorization: Bearer KEY' (default: $BERRY_API_KEY, else no key)",
    )
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--dtype", default="float32", help="torch dtype (default: float32)")
    add_prefix_cache_arg(p)
    add_role_args(p)
    add_prompts_arg(p, auto="paper when the model's tokenizer has a chat template, else tiny")
    p.add_argument(
        "--search-methods",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also serve each search method as the model berry-<method> (default: on)",
    )
    p.add_argument(
        "--search-rollouts",
        type=int_at_least(1),
        default=DEFAULT_ROLLOUTS,
        metavar="N",
        help="search budget of requests that name no 'rollouts' "
        f"(default: {DEFAULT_ROLLOUTS}; at most {MAX_SEARCH_ROLLOUTS})",
    )
    g = p.add_argument_group("concurrency and limits")
    g.add_argument(
        "--max-active",
        type=int_at_least(1),
        default=64,
        metavar="N",
        help="most requests stepped together: their model calls share batches, and a new "
        "request joins at the next model call (1 serves one request at a time; default: 64)",
    )
    g.add_argument(
        "--max-queue",
        type=int_at_least(1),
        default=256,
        metavar="N",
        help="most requests in flight or waiting; more are answered 503 with Retry-After "
        "(default: 256)",
    )
    g.add_argument(
        "--max-body-kb",
        type=int_at_least(1),
        default=4096,
        metavar="KB",
        help="largest request body, in KiB; larger ones get 413 (default: 4096)",
    )
    g.add_argument(
        "--request-tokens",
        type=int_at_least(1),
        default=65536,
        metavar="N",
        help="most tokens one request may generate (prompts x n x max_tokens for sampling, "
        "everything a search generates) (default: 65536)",
    )
    p.set_defaults(func=run)


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to bind a non-loopback host without an API key.

    Args:
        host: the address to bind.
        api_key: the API key, or None.

    Raises:
        BerryError: `host` is not loopback and there is no key.
    """
    if host not in LOOPBACK_HOSTS and not api_key:
        raise BerryError(
            f"refusing to serve on {host!r} without an API key: anyone who can reach it could "
            "use the model. Set --api-key or BERRY_API_KEY, or bind to 127.0.0.1"
        )


def run(args: argparse.Namespace) -> int:
    """Run ``berry serve`` with parsed arguments (blocks until the server stops).

    Args:
        args: parsed command-line arguments.

    Returns:
        The exit code.
    """
    api_key = args.api_key or os.environ.get("BERRY_API_KEY") or None
    check_bind(args.host, api_key)
    if not 0 <= args.port <= 65535:
        raise BerryError(f"--port must be in 0..65535, got {args.port}")
    if args.prefix_cache_mb < 0:
        raise BerryError(f"--prefix-cache-mb must be >= 0, got {args.prefix_cache_mb}")
    if args.search_rollouts > MAX_SEARCH_ROLLOUTS:
        raise BerryError(f"--search-rollouts must be at most {MAX_SEARCH_ROLLOUTS}")
    try:
        import uvicorn

        from openberry.serve.app import create_app
        from openberry.serve.limits import ServeLimits
    except ImportError as exc:
        raise BerryError(
            f"berry serve needs the 'serve' extra (pip install 'openberry[serve]'): {exc}"
        ) from exc
    policy = model_spec(args).build()
    roles = {role: spec.build() for role, spec in role_specs(args).items()}
    name = args.name or args.model
    try:
        app = create_app(
            policy,
            model_name=name,
            api_key=api_key,
            search_methods=args.search_methods,
            search_rollouts=args.search_rollouts,
            roles=roles,
            max_active=args.max_active,
            max_queue=max(args.max_queue, args.max_active),
            limits=ServeLimits(
                max_body_bytes=max(1, args.max_body_kb) * 1024, request_tokens=args.request_tokens
            ),
            prompts=args.prompts,
        )
    except ValueError as exc:
        raise BerryError(str(exc)) from exc
    if args.search_methods:
        logger.info("search models: berry-<method>, %d rollouts by default", args.search_rollouts)
    logger.info(
        "serving %s on http://%s:%d/v1 (%s)",
        name,
        args.host,
        args.port,
        "API key required" if api_key else "no API key",
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", timeout_keep_alive=30)
    return 0

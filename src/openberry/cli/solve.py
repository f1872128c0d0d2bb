"""`berry solve`: run one search method on one problem and print the answer and the chosen path.

Only the standard library is imported at module level; the search engine, the model backend
(torch and transformers for ``--backend hf``) and the viewer are imported when the command runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from openberry.cli._args import (
    GGUF_MODEL_HELP,
    add_backend_args,
    add_prompts_arg,
    add_role_args,
    int_at_least,
    model_spec,
    role_specs,
)
from openberry.cli._config import add_config_file_option, method_settings
from openberry.models.builtin import DEFAULT_MODEL
from openberry.search.registry import DEFAULT_ROLLOUTS, REGISTRY

__all__ = ["key_value", "method_table", "register"]

logger = logging.getLogger(__name__)

DEFAULT_METHOD = "mctsr"


def method_table() -> str:
    """The methods of `openberry.search.registry`, and what ``--rollouts N`` sets for each."""
    width = max(len(m) for m in REGISTRY)
    lines = ["methods (--method):"]
    lines += [f"  {m:<{width}}  {spec.summary}" for m, spec in REGISTRY.items()]
    lines += ["", "what --rollouts N sets, per method:"]
    lines += [f"  {m:<{width}}  {spec.budget_help}" for m, spec in REGISTRY.items()]
    return "\n".join(lines)


def _description() -> str:
    return "\n".join(
        [
            "Search for a solution of PROBLEM with one method and print the answer, the chosen "
            "path",
            "and what the search cost (model calls, tokens, wall time, tree size).",
            "",
            method_table(),
            "",
            "Compare methods at equal generated tokens (printed in the stats line), not at "
            "equal N.",
        ]
    )


_EPILOG = """\
examples:
  berry solve "Compute 21 + 12 + 3."                                  # mctsr, berry-tiny
  berry solve "Compute 21 + 12 + 3." --method sr-mcts --rollouts 8 --out runs/solve
  berry solve "Compute 7 * 6 - 5." --method meta-mcts --set c_puct=2.0 --set noise=0.25 --json
  berry solve "What is 2+2?" --model ./ckpt --judge ./ckpt-pprm --method sr-mcts
  berry solve "What is 2+2?" --backend openai --base-url http://localhost:8000/v1 --model tiny
  berry solve "What is 2+2?" --model Qwen/Qwen2.5-Math-1.5B-Instruct --chat-template  # paper prompts

--set KEY=VALUE sets any field of the method's config by name (repeat it for several); an
unknown KEY is an error that lists the valid ones, and '--set help' lists them with their types,
defaults and meaning. --config FILE reads options from a TOML or YAML file (keys: the flags,
e.g. method = "sr-mcts", rollouts = 8, set = {c = 1.0}); flags given on the command line win.
--out DIR writes DIR/tree.json (open it again with 'berry view') and DIR/tree.html (the offline
tree viewer). The tree's info.config is the search's whole config, its prompt profile included.
--prompts picks the role prompts: tiny (berry-tiny's frames), paper (the papers' instructions
through the chat template) or a profile file; auto, the default, is paper with --chat-template.
"""

_HELP = "help"
"""``--set help``: list the settings of the method instead of running it."""


def key_value(text: str) -> tuple[str, str]:
    """An argparse ``type``: ``KEY=VALUE`` as ``(KEY, VALUE)``; ``help`` as ``("help", "")``."""
    if text.strip() == _HELP:
        return _HELP, ""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def register(subparsers: Any) -> None:
    """Add the ``solve`` command to the ``berry`` parser.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """
    p = subparsers.add_parser(
        "solve",
        help="solve one problem with a search method (mctsr, sr-mcts, meta-mcts...)",
        description=_description(),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("problem", metavar="PROBLEM", help="the problem statement ('-': stdin)")
    p.add_argument(
        "--method",
        choices=tuple(REGISTRY),
        default=DEFAULT_METHOD,
        metavar="M",
        help=f"search method: {', '.join(REGISTRY)} (default: {DEFAULT_METHOD})",
    )
    p.add_argument(
        "--rollouts",
        type=int_at_least(1),
        default=DEFAULT_ROLLOUTS,
        metavar="N",
        help=f"search budget, meaning per method above (default: {DEFAULT_ROLLOUTS})",
    )
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="PATH_OR_ID",
        help=f"policy: model directory, hub id, built-in name (default: {DEFAULT_MODEL}), "
        f"{GGUF_MODEL_HELP}",
    )
    add_role_args(p)
    add_backend_args(p)
    add_prompts_arg(p)
    p.add_argument("--seed", type=int, default=0, metavar="S", help="run seed (default: 0)")
    p.add_argument(
        "--set",
        dest="overrides",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a config field of the method (repeatable; '--set help' lists them)",
    )
    add_config_file_option(p)
    p.add_argument("--out", metavar="DIR", help="write DIR/tree.json and DIR/tree.html")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def _indent(text: str, prefix: str) -> str:
    return text.replace("\n", "\n" + " " * len(prefix))


def run(args: argparse.Namespace) -> int:
    """Run ``berry solve`` (see ``berry solve --help``).

    Args:
        args: Parsed arguments.

    Returns:
        The exit status (0).

    Raises:
        BerryError: A bad ``--set``, a model that cannot be loaded, a failed search, or an output
            directory that cannot be written.
    """
    if _HELP in dict(args.overrides):
        print(method_settings([args.method]))
        return 0
    question = sys.stdin.read() if args.problem == "-" else args.problem
    result = _search(args, question)
    files = _write_files(result.tree, args.out) if args.out else {}
    if args.json:
        print(json.dumps(_json_summary(args, question, result, files), ensure_ascii=False))
    else:
        _print_text(args.method, result, files)
    return 0


def _search(args: argparse.Namespace, question: str) -> Any:
    """Configure the search, load the models and search `question`; its `SearchResult`."""
    from openberry.errors import BerryError
    from openberry.formats.profiles import choose_profile, renders_chat
    from openberry.records import Problem
    from openberry.search import make_search, run_search
    from openberry.serve.search_models import PROBLEM_ID

    if not question.strip():
        raise BerryError("PROBLEM is empty")
    # Configure first: a bad --set fails before any model is loaded.
    search = make_search(args.method, args.rollouts, dict(args.overrides))

    logger.info("loading policy %s (%s backend)", args.model, args.backend)
    models = {"policy": model_spec(args).build()}
    for role, spec in role_specs(args).items():
        logger.info("loading %s %s (%s backend)", role, spec.model, spec.backend)
        models[role] = spec.build()

    prompts = choose_profile(args.prompts, renders_chat(models["policy"]))
    search = make_search(args.method, args.rollouts, dict(args.overrides), prompts)
    logger.info(
        "searching with %s, rollouts %d, seed %d, %s prompts",
        args.method,
        args.rollouts,
        args.seed,
        prompts.name,
    )
    problem = Problem(id=PROBLEM_ID, question=question, source="cli")
    (result,) = run_search(search, [problem], models, seed=args.seed)
    logger.info(
        "%s finished: answer %r, %d nodes, %.2f s",
        args.method,
        result.answer,
        len(result.tree),
        result.stats.wall_time,
    )
    return result


def _write_files(tree: Any, out_dir: str) -> dict[str, str]:
    """Write ``tree.json`` and the viewer's ``tree.html`` under `out_dir`; their paths."""
    from openberry.errors import BerryError
    from openberry.viewer import write_tree_html

    out = Path(out_dir)
    try:
        return {
            "tree": str(tree.save(out / "tree.json")),
            "html": str(write_tree_html(tree, out / "tree.html")),
        }
    except OSError as exc:
        raise BerryError(f"{out}: cannot write: {exc.strerror or exc}") from exc


def _json_summary(
    args: argparse.Namespace, question: str, result: Any, files: dict[str, str]
) -> dict[str, Any]:
    from openberry.serve.search_models import completion_text

    tree = result.tree
    chosen = [
        {
            "id": i,
            "meta_action": tree.nodes[i].meta_action,
            "text": tree.nodes[i].text,
            "answer": tree.nodes[i].answer,
        }
        for i in tree.chosen[1:]
    ]
    return {
        "problem": question,
        "method": args.method,
        "rollouts": args.rollouts,
        "seed": args.seed,
        "answer": result.answer,
        "text": completion_text(tree, args.method),
        "chosen": chosen,
        "stats": {**result.stats.to_dict(), "nodes": len(tree)},
        "config": tree.info["config"],
        **({"files": files} if files else {}),
    }


def _print_text(method: str, result: Any, files: dict[str, str]) -> None:
    tree, s = result.tree, result.stats
    print(f"Answer: {result.answer if result.answer is not None else '(none)'}")
    print(f"Chosen path ({method}, {len(tree.chosen) - 1 if tree.chosen else 0} node(s)):")
    for i in tree.chosen[1:]:
        node = tree.nodes[i]
        label = node.meta_action or ("answer (dummy)" if node.info.get("dummy") else "answer")
        head = f"[{i}] {label}: "
        print(head + _indent(node.text.strip(), head))
    print(
        f"Stats: {s.calls} calls, {s.generated_tokens} generated tokens, "
        f"{s.prompt_tokens} prompt tokens, {s.wall_time:.2f} s, {len(tree)} nodes"
    )
    if files:
        print(f"Tree: {files['tree']}")
        print(f"Viewer: {files['html']}")

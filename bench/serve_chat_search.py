"""Search models of ``berry serve`` asked through the official ``openai`` SDK, over a live
loopback server: what a served chat model's ``berry-<method>`` models answer, with which prompt
profile, in how many calls and tokens.

Serves ``--model`` (default: SmolLM2-135M-Instruct, needs ``make smollm2``) the way ``berry serve
--model M`` does, then asks each ``--method`` the ``--question`` as a chat completion and prints
one line per answer (BENCHMARKS.md, "SmolLM2-135M-Instruct from its GGUF")::

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python bench/serve_chat_search.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--question", default="Compute 12 + 7.")
    ap.add_argument(
        "--method",
        action="append",
        help="served model name, optionally with a scorer: berry-best-of-n:logprob "
        "(default: berry-greedy, berry-best-of-n, berry-best-of-n:logprob)",
    )
    args = ap.parse_args()

    import openai
    import uvicorn

    import openberry.cli.main as cli_main
    from models.tiny import live_server
    from openberry.models.builtin import resolve_model

    apps = []
    uvicorn.run = lambda app, **kw: apps.append(app)  # serve in this process instead
    cli_main._COMMAND_MODULES = ("openberry.cli.serve",)
    if cli_main.main(["serve", "--model", resolve_model(args.model)]) != 0:
        raise SystemExit("berry serve failed")
    methods = args.method or ["berry-greedy", "berry-best-of-n", "berry-best-of-n:logprob"]
    with live_server(apps[0]) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", timeout=900, max_retries=0)
        for entry in methods:
            model, _, scorer = entry.partition(":")
            extra = {"search_config": {"scorer": scorer}} if scorer else {}
            reply = client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": args.question}],
                extra_body=extra,
            )
            report = reply.model_extra["openberry"]
            stats = report["stats"]
            print(
                f"{entry}: answer {report['answer']!r}, prompts {report['config']['prompts']['name']}, "
                f"{stats['calls']} calls, {stats['generated_tokens']} generated tokens"
            )


if __name__ == "__main__":
    main()

"""`berry eval`: run search methods over a dataset, one durable record per problem.

A *run* is one method at one budget (``mctsr@8``); an eval directory holds one or more runs over
the same problems, model and seed (see docs/eval.md for the layout and the record format).

How a run proceeds:

- The problems are cut into fixed *chunks* of ``batch_size`` consecutive problems. A chunk is
  searched as one batch by the engine (`openberry.search.run_search`), so its model calls are
  shared; with ``samples`` K > 1 each problem is searched K times in the same batch.
- As each problem's last sample finishes, its answer is graded against the reference (the only
  place the reference is read: search gets `Problem` records, which have no answer field), every
  candidate solution in its trees gets the grader's verdict (`openberry.evaluation.verify`), its
  trees are written, and its record is appended to ``records.jsonl`` with one ``write`` and an
  ``fsync`` (`openberry.evaluation.store`).
- ``resume=True`` reads the records (repairing a torn last line left by ``kill -9``), and skips
  chunks whose problems all have records. A chunk that was cut short is searched again *whole*,
  with its original seed, and only its missing records are written: the batch, and so every
  sampled token, is the one the uninterrupted run had, so a resumed run writes the same records.
- ``workers`` > 1 or a ``ray_address`` sends chunks to Ray actors, each holding its own backend
  (or its own client to one OpenAI-compatible server). The driver grades and writes, so one
  process owns the files. Chunks and seeds are the same as in-process, so the records are too.

Seeds: chunk c of a run searches with seed ``derive(seed, c)`` (the engine derives every call's
seed and every problem's randomness from it), independent of which worker runs it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openberry.errors import BerryError
from openberry.evaluation.metrics import RunName
from openberry.evaluation.store import RecordFile
from openberry.evaluation.verify import dataset_tree, hinted_problem, verify_tree
from openberry.fileio import write_text_atomic
from openberry.formats.profiles import (
    AUTO,
    PromptChoice,
    choice_identity,
    choose_profile,
    renders_chat,
)
from openberry.models.builtin import DEFAULT_MODEL
from openberry.models.spec import ModelSpec
from openberry.records import Example, Problem
from openberry.search.engine import derive_seed
from openberry.search.registry import DEFAULT_ROLLOUTS

__all__ = [
    "RECORD_SCHEMA",
    "EvalConfig",
    "EvalError",
    "ModelSpec",
    "RunSpec",
    "evaluate",
    "plan_runs",
    "too_long",
]

logger = logging.getLogger(__name__)

RECORD_SCHEMA = "openberry.eval-record"
RECORD_VERSION = 1
RUN_SCHEMA = "openberry.eval-run"
RUN_VERSION = 1
"""The version of run.json this openberry writes; `berry report` refuses newer ones."""


class EvalError(BerryError, RuntimeError):
    """An evaluation cannot start or go on (bad options, an output directory in the way...)."""


@dataclass(frozen=True)
class EvalConfig:
    """One ``berry eval`` command: which problems, methods, budgets and models."""

    dataset: str
    """Dataset name (see 'berry data list') or a JSONL / JSON / parquet file."""
    out: str
    """Output directory."""
    methods: tuple[str, ...] = ("greedy",)
    """Search methods (see ``berry solve --help``)."""
    budgets: tuple[int, ...] = (DEFAULT_ROLLOUTS,)
    """Budgets (``--rollouts``) each method runs at; greedy runs once, at budget 1."""
    path: str | None = None
    """Read the dataset's rows from this file (JSONL, JSON array, parquet)."""
    split: str | None = None
    """Dataset split (default: the dataset's default split)."""
    question_field: str | None = None
    """Row field holding the question (default: the dataset's own, then
    problem/question/prompt)."""
    answer_field: str | None = None
    """Row field holding the reference answer (default: the dataset's own, then
    answer/expected_answer/final_answer/gold)."""
    limit: int | None = None
    """Evaluate the first N problems only."""
    samples: int = 1
    """Independent searches per problem (for maj@k and pass@k)."""
    seed: int = 0
    """Run seed."""
    overrides: tuple[tuple[str, str, str], ...] = ()
    """``(method or "", key, value)`` config overrides (``--set [METHOD:]KEY=VALUE``)."""
    batch_size: int = 64
    """Problems searched together in one batch (a chunk); fixed for the life of an evaluation
    (part of its identity)."""
    policy: ModelSpec = field(default_factory=lambda: ModelSpec(DEFAULT_MODEL))
    """The policy model."""
    judge: ModelSpec | None = None
    """A separate judge model (PPRM preferences); default: the policy judges."""
    value: ModelSpec | None = None
    """A separate value model (rating-token values); default: the policy rates."""
    hint_answer: bool = False
    """Append the reference answer to every question the search sees (`hinted_problem`). An
    oracle leak: for training-time collection only, off by default, recorded in run.json."""
    prompts: PromptChoice = AUTO
    """Role prompts (``--prompts``): ``auto`` (``paper`` when the policy wraps prompts in its
    chat template, else ``tiny``), ``tiny``, ``paper``, or a profile read from a file
    (`openberry.formats.profiles`)."""

    def __post_init__(self) -> None:
        if not self.methods:
            raise EvalError("no method given")
        if any(b < 1 for b in self.budgets) or not self.budgets:
            raise EvalError(f"budgets must be >= 1, got {list(self.budgets)}")
        if self.samples < 1:
            raise EvalError(f"samples must be >= 1, got {self.samples}")
        if self.batch_size < 1:
            raise EvalError(f"batch size must be >= 1, got {self.batch_size}")

    def identity(self) -> dict[str, Any]:
        """The fields a resumed run must share with the original (methods/budgets may grow)."""
        return {
            "dataset": self.dataset,
            "path": self.path,
            "split": self.split,
            # Left out when unset, so evaluations written before the options resume as they are.
            **({"question_field": self.question_field} if self.question_field else {}),
            **({"answer_field": self.answer_field} if self.answer_field else {}),
            "limit": self.limit,
            "samples": self.samples,
            "seed": self.seed,
            "overrides": [list(o) for o in self.overrides],
            "batch_size": self.batch_size,
            "policy": _spec_identity(self.policy),
            "judge": _spec_identity(self.judge) if self.judge else None,
            # Left out when unset, so evaluations written before the option resume as they are.
            **({"value": _spec_identity(self.value)} if self.value else {}),
            **({"hint_answer": True} if self.hint_answer else {}),
            **_prompts_identity(self.prompts, self.policy),
        }


def _prompts_identity(choice: PromptChoice, policy: ModelSpec) -> dict[str, Any]:
    """``{"prompts": ...}`` (`choice_identity`: a name, or a file profile's name and SHA-256);
    empty when `choice` is tiny for sure (``tiny``, or ``auto`` without ``--chat-template``),
    the prompts of every run written before the option, so those runs resume as they are."""
    if choice == "tiny" or (choice == AUTO and not policy.chat_template):
        return {}
    return {"prompts": choice_identity(choice)}


RESUMABLE_SPEC_FIELDS = ("prefix_cache_mb", "base_url", "timeout", "max_retries", "max_retry_time")
"""`ModelSpec` fields that do not change results, so `--resume` accepts new values (recorded in
run.json's ``settings`` and logged): the prefix cache changes only float rounding, and where a
server is and how long to wait for it change nothing it answers."""


def _spec_identity(spec: ModelSpec | Mapping[str, Any]) -> dict[str, Any]:
    """A model's settings that change results (all but `RESUMABLE_SPEC_FIELDS`). An unset
    adapter or GGUF file is left out, so runs written before models could carry one resume as
    they are.
    `spec` may also be an identity read from an older run.json (which held ``base_url``)."""
    out = dict(spec) if isinstance(spec, Mapping) else dataclasses.asdict(spec)
    for key in RESUMABLE_SPEC_FIELDS:
        out.pop(key, None)
    for key in ("adapter", "gguf_file"):  # unset: left out (runs from before the option)
        if out.get(key) is None:
            out.pop(key, None)
    if not out.get("trust_remote_code"):  # off: left out, as above
        out.pop("trust_remote_code", None)
    return out


def _spec_settings(spec: ModelSpec) -> dict[str, Any]:
    """A model's settings that do not change results (recorded, and free to change on resume)."""
    return {key: getattr(spec, key) for key in RESUMABLE_SPEC_FIELDS}


@dataclass(frozen=True)
class RunSpec:
    """One method at one budget."""

    method: str
    budget: int
    overrides: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        """The run's name and directory, ``METHOD@BUDGET`` (`RunName`)."""
        return str(RunName(self.method, self.budget))


def plan_runs(config: EvalConfig) -> list[RunSpec]:
    """The runs of a config, checking every method and override before any model loads."""
    from openberry.search import METHODS, make_search

    known = set(METHODS)
    for method in config.methods:
        if method not in known:
            raise EvalError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    for scope, _key, _value in config.overrides:
        if scope and scope not in config.methods:
            raise EvalError(
                f"--set {scope}:...: {scope!r} is not one of the methods being run "
                f"({', '.join(config.methods)})"
            )
    runs: list[RunSpec] = []
    for method in dict.fromkeys(config.methods):
        over = tuple((k, v) for scope, k, v in config.overrides if scope in ("", method))
        budgets = (1,) if method == "greedy" else tuple(dict.fromkeys(config.budgets))
        for budget in budgets:
            run = RunSpec(method, budget, over)
            try:
                make_search(method, budget, dict(over))
            except BerryError as exc:
                raise EvalError(f"{run.name}: {exc}") from exc
            runs.append(run)
    return runs


@dataclass(frozen=True)
class _Unit:
    """One chunk of one run: what a worker searches."""

    run: RunSpec
    chunk: int
    indices: tuple[int, ...]
    problems: tuple[Problem, ...]
    samples: int
    seed: int
    prompts: PromptChoice = AUTO


@dataclass
class _Finished:
    """One problem's searches, back from a worker (trees included)."""

    index: int
    results: list[Any]  # SearchResult per sample


def _search_unit(
    unit: _Unit, models: Mapping[str, Any], on_problem: Callable[[_Finished], None]
) -> None:
    """Search one chunk as one batch; call ``on_problem`` as each problem's samples finish."""
    from openberry.search import make_search, run_search

    prompts = choose_profile(unit.prompts, renders_chat(models["policy"]))
    search = make_search(unit.run.method, unit.run.budget, dict(unit.run.overrides), prompts)
    k = unit.samples
    batch: list[Problem] = []
    for p in unit.problems:
        if k == 1:
            batch.append(p)
        else:  # distinct ids give each sample its own randomness
            batch += [dataclasses.replace(p, id=f"{p.id}#s{j}") for j in range(k)]
    got: dict[int, dict[int, Any]] = {}

    def on_result(i: int, result: Any) -> None:
        pos, j = divmod(i, k)
        got.setdefault(pos, {})[j] = result
        if len(got[pos]) == k:
            done = got.pop(pos)
            on_problem(_Finished(unit.indices[pos], [done[s] for s in range(k)]))

    run_search(search, batch, models, seed=unit.seed, on_result=on_result)


class _Worker:
    """A Ray actor's body: builds its backends once, then searches chunks."""

    def __init__(self, config: EvalConfig) -> None:
        self.models = _build_models(config)

    def run(self, unit: _Unit) -> list[_Finished]:
        out: list[_Finished] = []
        _search_unit(unit, self.models, out.append)
        return out

    def too_long(self, problems: list[Problem]) -> str | None:
        return too_long(problems, self.models["policy"])


def _candidates(tree: Any) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for node in tree.nodes:
        if node.answer is None:
            continue
        c = found.setdefault(node.answer, {"answer": node.answer, "count": 0, "score": None})
        c["count"] += 1
        if node.value is not None and (c["score"] is None or node.value > c["score"]):
            c["score"] = node.value
    return list(found.values())


def _tree_file(index: int, sample: int) -> str:
    return f"trees/{index:06d}-s{sample}.json"


class _Writer:
    """Grades finished problems and writes their trees and records (driver side only)."""

    def __init__(
        self,
        run_dir: Path,
        run: RunSpec,
        examples: Sequence[Example],
        seed: int,
        grader: Any,
        hinted: bool = False,
    ) -> None:
        self.run_dir = run_dir
        self.hinted = hinted
        self.run = run
        self.examples = examples
        self.seed = seed
        self.grader = grader
        self.file = RecordFile(run_dir / "records.jsonl")
        self.done: set[str] = set()
        self.correct = 0
        self.count = 0

    def grade(self, pred: str | None, gold: str | None) -> tuple[bool, str]:
        if pred is None:
            return False, "no answer"
        v = self.grader.grade(pred, gold)
        return v.correct, "correct" if v.correct else (v.reason or "not equivalent")

    def write(self, finished: _Finished, chunk: int) -> bool:
        ex = self.examples[finished.index]
        if ex.id in self.done:
            return False
        samples = []
        verdicts: dict[str | None, tuple[bool, str]] = {}

        def verdict(answer: str | None) -> tuple[bool, str]:
            if answer not in verdicts:
                verdicts[answer] = self.grade(answer, ex.answer)
            return verdicts[answer]

        for j, result in enumerate(finished.results):
            tree = dataset_tree(result.tree, ex.problem, self.hinted)
            tree = verify_tree(tree, lambda a: verdict(a)[0])
            rel = _tree_file(finished.index, j)
            tree.save(self.run_dir / rel)
            cands = _candidates(tree)
            for c in cands:
                c["correct"] = verdict(c["answer"])[0]
            ok, why = verdict(result.answer)
            s = result.stats
            samples.append(
                {
                    "sample": j,
                    "answer": result.answer,
                    "correct": ok,
                    "verdict": why,
                    "generated_tokens": s.generated_tokens,
                    "prompt_tokens": s.prompt_tokens,
                    "scored_tokens": s.scored_tokens,
                    "calls": s.calls,
                    "rounds": s.rounds,
                    "wall_time": round(s.wall_time, 4),
                    "nodes": len(tree),
                    "tree": rel,
                    "candidates": cands,
                }
            )
        record = {
            "schema": RECORD_SCHEMA,
            "version": RECORD_VERSION,
            "run": self.run.name,
            "method": self.run.method,
            "budget": self.run.budget,
            "seed": self.seed,
            "index": finished.index,
            "chunk": chunk,
            "id": ex.id,
            "question": ex.problem.question,
            "reference": ex.answer,
            "answer": samples[0]["answer"],
            "correct": samples[0]["correct"],
            "verdict": samples[0]["verdict"],
            "samples": samples,
        }
        self.file.append(record)
        self.done.add(ex.id)
        self.count += 1
        self.correct += bool(samples[0]["correct"])
        return True


def _load_examples(config: EvalConfig) -> list[Example]:
    from openberry.data.datasets import load_examples

    result = load_examples(
        config.dataset,
        path=config.path,
        split=config.split,
        limit=config.limit,
        question_field=config.question_field,
        answer_field=config.answer_field,
    )
    examples = list(result.examples)
    if not examples:
        raise EvalError(f"{config.dataset}: no problems to evaluate")
    missing = [e.id for e in examples if e.answer is None]
    if missing:
        raise EvalError(
            f"{config.dataset}: {len(missing)} problem(s) have no reference answer "
            f"(first: {missing[0]}); evaluation needs one for every problem"
        )
    return examples


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("openberry", "torch", "transformers"):
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def _read_meta(config: EvalConfig, resume: bool) -> dict[str, Any] | None:
    """The run.json of the evaluation being resumed (None for a new one), after checking that
    ``config`` may write to ``config.out``; writes nothing.

    Raises:
        EvalError: an evaluation is there and `resume` is off, run.json is unreadable, the
            settings that change results differ, or ``--out`` is a non-empty directory.
    """
    out = Path(config.out)
    meta_path = out / "run.json"
    if not meta_path.is_file():
        if out.exists() and any(out.iterdir()) and not resume:
            raise EvalError(f"{out} exists and is not empty; choose another --out")
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvalError(f"{meta_path}: cannot read ({exc})") from exc
    if not resume:
        raise EvalError(
            f"{out} already holds an evaluation; pass --resume to continue it, or choose "
            "another --out"
        )
    version = meta.get("version") if isinstance(meta, dict) else None
    if isinstance(version, int) and version > RUN_VERSION:
        raise EvalError(
            f"{meta_path}: run.json version {version} is newer than this openberry writes "
            f"(version {RUN_VERSION}); upgrade openberry to resume it"
        )
    identity = config.identity()
    old = _comparable_identity(meta.get("identity", {}))
    diff = [k for k in {**identity, **old} if old.get(k) != identity.get(k)]
    if diff:
        lines = [f"  {k}: was {old.get(k)!r}, now {identity.get(k)!r}" for k in diff]
        raise EvalError(
            f"{out}: --resume with different settings would mix two evaluations:\n"
            + "\n".join(lines)
        )
    return meta


def _comparable_identity(identity: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded identity without the model settings that no longer belong to it (run.json
    files written before `RESUMABLE_SPEC_FIELDS` held ``base_url`` there)."""
    out = dict(identity)
    for role in ("policy", "judge", "value"):
        if isinstance(out.get(role), Mapping):
            out[role] = _spec_identity(out[role])
    return out


def _settings(config: EvalConfig, workers: int, ray_address: str | None) -> dict[str, Any]:
    """The settings that do not change results: recorded in run.json, free to change on
    resume."""
    roles = (("policy", config.policy), ("judge", config.judge), ("value", config.value))
    out: dict[str, Any] = {role: _spec_settings(spec) for role, spec in roles if spec}
    out.update({"workers": workers, "ray_address": ray_address})
    return out


def _log_changed_settings(meta: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
    """Log each setting that differs from the one recorded by the run being resumed."""
    old = dict(meta.get("settings") or {})
    recorded = meta.get("identity", {})
    for role in ("policy", "judge", "value"):  # run.json files from before "settings"
        if role not in old and isinstance(recorded.get(role), Mapping):
            old[role] = {k: v for k, v in recorded[role].items() if k in RESUMABLE_SPEC_FIELDS}
    for key, value in settings.items():
        if isinstance(value, Mapping):
            was = old.get(key) if isinstance(old.get(key), Mapping) else {}
            changed = [(f"{key} {k}", was[k], v) for k, v in value.items() if k in was]
        else:
            changed = [(key, old[key], value)] if key in old else []
        for name, before, after in changed:
            if before != after:
                logger.info("--resume: %s changed from %r to %r (recorded)", name, before, after)


def _write_meta(
    config: EvalConfig,
    runs: list[RunSpec],
    meta: dict[str, Any] | None,
    settings: dict[str, Any],
) -> dict[str, Any]:
    """Write run.json: a new one, or the resumed one (`meta`) with the runs added and the
    settings of this invocation."""
    if meta is not None:
        _log_changed_settings(meta, settings)
        names = list(dict.fromkeys([*meta.get("runs", []), *(r.name for r in runs)]))
        meta["identity"] = config.identity()
    else:
        meta = {
            "schema": RUN_SCHEMA,
            "version": RUN_VERSION,
            "identity": config.identity(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": _versions(),
            "oracle": (
                "HINT: every question the search sees ends with its reference answer"
                if config.hint_answer
                else "none: search sees Problem records only; references are read by grading"
            ),
        }
        names = [r.name for r in runs]
    meta.update(
        {
            "dataset": config.dataset,
            "split": config.split,
            "model": config.policy.model,
            "judge": config.judge.model if config.judge else None,
            "value_model": config.value.model if config.value else None,
            "backend": config.policy.backend,
            "samples": config.samples,
            "seed": config.seed,
            "batch_size": config.batch_size,
            "runs": names,
            "overrides": [list(o) for o in config.overrides],
            "settings": settings,
            "command": " ".join(sys.argv),
        }
    )
    write_text_atomic(
        Path(config.out) / "run.json", json.dumps(meta, indent=1) + "\n", durable=True
    )
    return meta


CHARS_PER_TOKEN_BOUND = 32
"""No text a model reads averages more characters per token: a question longer than this many
characters per token of the model's context is refused without being tokenized (tokenizing a
5 MB string takes minutes)."""


def _searched(config: EvalConfig, examples: Sequence[Example]) -> list[Problem]:
    """The problems search sees (with the reference appended under ``hint_answer``)."""
    return [hinted_problem(e) if config.hint_answer else e.problem for e in examples]


def too_long(problems: Sequence[Problem], policy: Any) -> str | None:
    """Why some problems cannot be searched: their question alone does not fit the policy's
    context (the message names them, their size and the limit); None when all fit or the policy
    does not say its context length (``max_context``; with the openai backend the server
    refuses instead).

    A question longer than `CHARS_PER_TOKEN_BOUND` characters per token of context is refused
    on its length; a shorter one that could still be too long (at most four tokens per
    character, template included) is counted with the policy's ``count_tokens`` when it has one.
    """
    limit = getattr(policy, "max_context", None)
    if not isinstance(limit, int) or limit <= 0:
        return None
    count = getattr(policy, "count_tokens", None)
    maybe = [p for p in problems if 4 * len(p.question) + 64 >= limit]
    exact = [p for p in maybe if len(p.question) <= limit * CHARS_PER_TOKEN_BOUND]
    tokens: dict[str, int] = {}
    if count is not None and exact:
        tokens = dict(zip((p.id for p in exact), count([p.question for p in exact]), strict=True))
    found = []
    for p in maybe:
        if len(p.question) > limit * CHARS_PER_TOKEN_BOUND:
            found.append(f"{p.id} ({len(p.question):,} characters)")
        elif tokens.get(p.id, 0) >= limit:
            found.append(f"{p.id} ({tokens[p.id]:,} tokens)")
    if not found:
        return None
    shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
    return (
        f"{len(found)} problem(s) have a question longer than the model's context of "
        f"{limit:,} tokens: {shown}; remove them from the dataset file or use a model with a "
        "longer context (nothing was searched)"
    )


def _units(
    config: EvalConfig, run: RunSpec, examples: Sequence[Example], done: set[str]
) -> Iterator[_Unit]:
    b = config.batch_size
    for chunk, lo in enumerate(range(0, len(examples), b)):
        part = examples[lo : lo + b]
        if all(e.id in done for e in part):
            continue
        yield _Unit(
            run=run,
            chunk=chunk,
            indices=tuple(range(lo, lo + len(part))),
            problems=tuple(hinted_problem(e) if config.hint_answer else e.problem for e in part),
            samples=config.samples,
            seed=derive_seed(config.seed, "chunk", chunk),
            prompts=config.prompts,
        )


@dataclass
class EvalSummary:
    """What `evaluate` did."""

    out: Path
    runs: list[str]
    written: int
    skipped: int
    wall_time: float


def evaluate(
    config: EvalConfig,
    *,
    resume: bool = False,
    workers: int = 1,
    ray_address: str | None = None,
    models: Mapping[str, Any] | None = None,
    progress: bool | None = None,
) -> EvalSummary:
    """Run every (method, budget) of ``config`` and write its records (see the module docstring).

    Args:
        config: What to evaluate.
        resume: Continue an evaluation in ``config.out`` (same settings; may add runs).
        workers: Ray actors to search with (1: in this process).
        ray_address: Join this Ray cluster instead of starting a local one.
        models: Ready backends ``{"policy": ..., "judge": ..., "value": ...}`` instead of
            building ``config.policy`` / ``config.judge`` / ``config.value`` (in-process only).
        progress: Show a progress bar (None: when stderr is a terminal).

    Raises:
        EvalError: Bad options, an output directory in the way, settings that differ from the
            evaluation being resumed, or questions longer than the model's context (`too_long`;
            checked before any search).
    """
    start = time.perf_counter()
    use_ray = workers > 1 or bool(ray_address)
    if use_ray and models is not None:
        raise EvalError("ready-made models cannot be sent to Ray workers")
    runs = plan_runs(config)
    examples = _load_examples(config)
    meta = _read_meta(config, resume)
    table: dict[str, Any] = {}
    if not use_ray:
        table = dict(models) if models is not None else _build_models(config)
        if (why := too_long(_searched(config, examples), table["policy"])) is not None:
            raise EvalError(why)
    _write_meta(config, runs, meta, _settings(config, workers, ray_address))

    from openberry.grading.grader import Grader

    grader = Grader()  # one pool of grading processes for every run; started on first need
    writers, todo, skipped = _open_writers(config, runs, examples, grader)
    pending = _log_plan(config, len(runs), examples, writers, todo, skipped)
    handle = _Progress(writers, _progress_bar(pending, progress))
    try:
        if use_ray:
            _run_ray(config, todo, workers, ray_address, handle)
        else:
            _run_in_process(todo, table, handle)
    finally:
        if handle.bar is not None:
            handle.bar.close()
        grader.close()
    return EvalSummary(
        out=Path(config.out),
        runs=[r.name for r in runs],
        written=handle.written,
        skipped=skipped,
        wall_time=time.perf_counter() - start,
    )


def _open_writers(
    config: EvalConfig, runs: Sequence[RunSpec], examples: Sequence[Example], grader: Any
) -> tuple[dict[str, _Writer], list[_Unit], int]:
    """A writer per run, knowing the problems its record file already holds (a torn last line
    is repaired), and the chunks still to search; also how many problems were already done."""
    out = Path(config.out)
    ids = {e.id for e in examples}
    writers: dict[str, _Writer] = {}
    todo: list[_Unit] = []
    skipped = 0
    for run in runs:
        writer = _Writer(out / run.name, run, examples, config.seed, grader, config.hint_answer)
        rows, _load_report = writer.file.load(repair=True)
        for row in rows:
            if row.get("id") in ids:
                writer.done.add(row["id"])
                writer.count += 1
                writer.correct += bool(row.get("correct"))
        skipped += len(writer.done)
        writers[run.name] = writer
        todo += list(_units(config, run, examples, writer.done))
    return writers, todo, skipped


def _log_plan(
    config: EvalConfig,
    n_runs: int,
    examples: Sequence[Example],
    writers: Mapping[str, _Writer],
    todo: Sequence[_Unit],
    skipped: int,
) -> int:
    """Log what is done and what is left; return the number of problems left to search."""
    pending = sum(
        sum(1 for i in u.indices if examples[i].id not in writers[u.run.name].done) for u in todo
    )
    logger.info(
        "%s: %d problem(s) x %d run(s); %d already recorded, %d to go in %d batch(es)",
        config.dataset,
        len(examples),
        n_runs,
        skipped,
        pending,
        len(todo),
    )
    return pending


@dataclass
class _Progress:
    """Hands each finished problem to its run's writer; counts the records written and moves the
    progress bar (driver side)."""

    writers: Mapping[str, _Writer]
    bar: Any
    written: int = 0

    def __call__(self, unit: _Unit, finished: _Finished) -> None:
        writer = self.writers[unit.run.name]
        if writer.write(finished, unit.chunk):
            self.written += 1
            if self.bar is not None:
                self.bar.set_postfix_str(
                    f"{unit.run.name} acc {100 * writer.correct / max(1, writer.count):.1f}%",
                    refresh=False,
                )
                self.bar.update(1)


def _run_in_process(todo: Sequence[_Unit], models: Mapping[str, Any], handle: _Progress) -> None:
    """Search the chunks one after another in this process; without a progress bar, log each
    finished batch."""
    for n, unit in enumerate(todo, start=1):
        _search_unit(unit, models, lambda f, u=unit: handle(u, f))
        if handle.bar is None:
            w = handle.writers[unit.run.name]
            logger.info(
                "batch %d/%d done (%s chunk %d): %s accuracy so far %.1f%% (%d problems)",
                n,
                len(todo),
                unit.run.name,
                unit.chunk,
                unit.run.name,
                100 * w.correct / max(1, w.count),
                w.count,
            )


def _build_models(config: EvalConfig) -> dict[str, Any]:
    table = {}
    for role, spec in (("policy", config.policy), ("judge", config.judge), ("value", config.value)):
        if spec is not None:
            logger.info("loading %s %s (%s backend)", role, spec.model, spec.backend)
            table[role] = spec.build()
    return table


def _progress_bar(total: int, show: bool | None) -> Any:
    if show is None:
        show = sys.stderr.isatty()
    if not show or total == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="problem", desc="eval", dynamic_ncols=True)


def _run_ray(
    config: EvalConfig,
    todo: list[_Unit],
    workers: int,
    address: str | None,
    handle: Callable[[_Unit, _Finished], None],
) -> None:
    try:
        import ray
    except ImportError as exc:
        raise EvalError("--workers/--ray-address need Ray: pip install 'openberry[ray]'") from exc
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False)
        started = True
    try:
        n = max(1, min(workers, len(todo)))
        actor = ray.remote(num_cpus=1)(_Worker)
        pool = [actor.remote(config) for _ in range(n)]
        problems = list({p.id: p for u in todo for p in u.problems}.values())
        why = ray.get(pool[0].too_long.remote(problems)) if problems else None
        if why is not None:
            raise EvalError(why)
        logger.info("searching %d batch(es) on %d Ray worker(s)", len(todo), n)
        queue = list(todo)
        running: dict[Any, tuple[Any, _Unit]] = {}
        for a in pool:
            if queue:
                u = queue.pop(0)
                running[a.run.remote(u)] = (a, u)
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            ref = ready[0]
            a, u = running.pop(ref)
            for finished in ray.get(ref):
                handle(u, finished)
            logger.debug("%s chunk %d done on a Ray worker", u.run.name, u.chunk)
            if queue:
                nxt = queue.pop(0)
                running[a.run.remote(nxt)] = (a, nxt)
    finally:
        if started:
            ray.shutdown()

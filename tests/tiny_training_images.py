"""Fixtures for the image trainer: a small set of pictures with captions, bad files, a tiny SD whose
tokenizer reads letters, and a tiny SDXL (two text encoders, added time ids) — all seeded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np


def picture(seed: int, width: int, height: int, *, hue: int = 0):
    """A seeded picture with structure (stripes and blobs of one colour family), so a LoRA has something to learn."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.array([[200, 60, 40], [40, 160, 200], [60, 180, 80]][hue % 3], dtype=np.float32)
    stripes = 0.5 + 0.5 * np.sin(x / (4 + seed % 5) + y / (7 + seed % 3))
    blobs = rng.normal(0, 12, (height // 8 + 1, width // 8 + 1)).repeat(8, 0).repeat(8, 1)[:height, :width]
    rgb = base[None, None, :] * stripes[..., None] + blobs[..., None]
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def build_image_set(folder: Path, *, count: int = 4, size: tuple[int, int] = (64, 64), captions: bool = True) -> Path:
    """``count`` PNG pictures with a ``.txt`` caption beside each (or none)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        picture(index, *size, hue=0).save(folder / f"pic{index}.png")
        if captions:
            (folder / f"pic{index}.txt").write_text(f"red stripes, blob {chr(97 + index)}\n")
    return folder


def training_files(folder: Path, trainer, *, caption_source: str = "txt"):
    """``TrainingFile``s for every picture in ``folder``, as the runtime gathers them (caption from the
    ``.txt`` beside a file), read through the trainer's ``inspect``."""
    from studio.core.files import file_sha256
    from studio.core.training import TrainingFile

    files = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in trainer.suffixes:
            continue
        seen = trainer.inspect(path)
        caption_file = path.with_suffix(".txt")
        caption = caption_file.read_text().strip() if caption_file.is_file() else ""
        files.append(
            TrainingFile(
                path=str(path),
                sha256=file_sha256(path),
                size_bytes=path.stat().st_size,
                medium="image",
                caption=caption,
                caption_source=caption_source if caption else "",
                width=seen.width,
                height=seen.height,
            )
        )
    return files


def build_tiny_sd_with_words(folder: Path) -> Path:
    """The tests' tiny SD with a tokenizer that reads letters (so captions and trigger words mean something)."""
    import tiny_adapters
    import tiny_models

    return tiny_adapters.give_words_to_tiny_sd(tiny_models.build_tiny_sd_pipeline(folder))


def build_tiny_sdxl(folder: Path, *, seed: int = 0) -> Path:
    """A StableDiffusionXLPipeline of diffusers' own test sizes: UNet (32, 64) with text-time added
    conditioning, two CLIP text encoders (the second with a projection), a letter tokenizer."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=4,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 4 + 16,
        cross_attention_dim=32,
        norm_num_groups=4,
    )
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        block_out_channels=(4, 8, 8, 8),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=2,
        layers_per_block=1,
        sample_size=32,
        scaling_factor=0.13025,
    )

    def clip(projection: bool):
        torch.manual_seed(seed)
        config = CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=16,
            intermediate_size=32,
            num_attention_heads=2,
            num_hidden_layers=2,
            vocab_size=1000,
            max_position_embeddings=77,
            projection_dim=16,
            hidden_act="gelu",
        )
        return CLIPTextModelWithProjection(config) if projection else CLIPTextModel(config)

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in "abcdefghijklmnopqrstuvwxyz":
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="leading"
    )
    pipe = StableDiffusionXLPipeline(
        unet=unet,
        vae=vae,
        text_encoder=clip(False),
        text_encoder_2=clip(True),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        scheduler=scheduler,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def build_transformer_pipeline_folder(folder: Path) -> Path:
    """A folder that names a transformer-based pipeline (only what the library and the trainer read:
    model_index.json and the component configs), for refusals made before anything loads."""
    folder.mkdir(parents=True, exist_ok=True)
    index = {
        "_class_name": "PixArtSigmaPipeline",
        "_diffusers_version": "0.42.1",
        "transformer": ["diffusers", "PixArtTransformer2DModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", "DPMSolverMultistepScheduler"],
        "text_encoder": ["transformers", "T5EncoderModel"],
        "tokenizer": ["transformers", "T5Tokenizer"],
    }
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


def write_bad_files(folder: Path, good_png: Path) -> dict[str, Path]:
    """A text file, a truncated PNG, a picture too small, and a text file named .png."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    text = folder / "notes.txt"
    text.write_text("a text file among the pictures\n")
    data = good_png.read_bytes()
    truncated = folder / "cut.png"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    small = folder / "tiny.png"
    Image.new("RGB", (32, 40), "white").save(small)
    fake = folder / "fake.png"
    fake.write_text("not a picture at all")
    return {"text": text, "truncated": truncated, "small": small, "fake": fake}


def copy_set(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst

"""Single-file Stable Diffusion checkpoints (original layout), told apart from LoRAs and embeddings
by their keys, and paired with a local diffusers folder of the same family for their configuration."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from studio.core.models import ModelSpec
from studio.engines.library.classify import is_model_folder, read_json, slug
from studio.engines.library.safetensors_files import file_size, header_dtype, safetensors_header
from studio.engines.library.upscalers import inspect_upscaler
from studio.engines.registry import DIFFUSERS_IMAGE

# Keys that only single-file Stable Diffusion checkpoints have, and where their text width shows.
_LDM_UNET = "model.diffusion_model."
_LDM_SDXL = "conditioner.embedders.1."
_LDM_CROSS_ATTENTION = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
_LDM_CROSS_ATTENTION_XL = "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight"
SINGLE_FILE_PIPELINES = {"sd": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline"}


def inspect_checkpoint(
    file: Path, configs: Iterable[ModelSpec] = (), *, model_id: str | None = None, source: str = "path"
) -> ModelSpec:
    """Classify a single-file ``.safetensors`` checkpoint (SD 1.x/2.x or SDXL, original layout).

    It runs with the configuration of an installed diffusers folder of the same family and text
    width (``configs``), since without the network there is nowhere else to read it from.
    """
    file = Path(file).expanduser()
    ident = model_id or slug(file.stem)
    facts: dict[str, Any] = {"single_file": True, "size_bytes": file_size(file)}
    header = safetensors_header(file)
    if header is None:
        return ModelSpec(
            ident, file.stem, "", "", file, source, False, f"{file.name} is damaged or not safetensors", facts
        )
    upscaler = inspect_upscaler(file, header, ident, source, facts)
    if upscaler is not None:
        return upscaler
    if not any(key.startswith(_LDM_UNET) for key in header):
        reason = f"{file.name} is not a Stable Diffusion checkpoint (a LoRA, an embedding or another kind of file?)"
        return ModelSpec(ident, file.stem, "", "", file, source, False, reason, facts)
    family = "sdxl" if any(key.startswith(_LDM_SDXL) for key in header) else "sd"
    entry = header.get(_LDM_CROSS_ATTENTION_XL if family == "sdxl" else _LDM_CROSS_ATTENTION, {})
    shape = entry.get("shape", []) if isinstance(entry, dict) else []
    width = int(shape[1]) if len(shape) > 1 else 0
    facts.update(cls=SINGLE_FILE_PIPELINES[family], cross_attention=width, dtype=header_dtype(header))
    facts["class"] = facts.pop("cls")
    for config in configs:
        if config.runnable and config.details.get("class") == facts["class"] and _cross_attention(config.path) == width:
            facts.update(config=str(config.path), native_size=config.details.get("native_size", 512))
            return ModelSpec(
                ident, file.stem, "image", family, file, source, True, details=facts, format=DIFFUSERS_IMAGE
            )
    what = {"sd": f"Stable Diffusion 1.x/2.x (text width {width})", "sdxl": "SDXL"}[family]
    example = "stable-diffusion-v1-5" if family == "sd" else "stable-diffusion-xl-base-1.0"
    reason = (
        f"a single-file {what} checkpoint needs the configuration of a diffusers model folder of the same "
        f"family, and none is installed: add one (for example {example} in diffusers format) with "
        "Models ▸ Add folder or 'studio models add'"
    )
    return ModelSpec(ident, file.stem, "image", family, file, source, False, reason, facts, format=DIFFUSERS_IMAGE)


def _cross_attention(folder: Path) -> int:
    config = read_json(folder / "unet" / "config.json") or {}
    value = config.get("cross_attention_dim")
    return int(value) if isinstance(value, int) else 0


def checkpoint_files(root: Path, depth: int = 6) -> list[Path]:
    """Loose ``.safetensors`` files (single-file checkpoints) outside model folders."""
    if not root.is_dir() or is_model_folder(root) or depth < 0:
        return []
    found: list[Path] = []
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix == ".safetensors":
            found.append(entry)
        elif entry.is_dir():
            found.extend(checkpoint_files(entry, depth - 1))
    return found

"""Upscaler model files (kind ``upscaler``, format ``upscaler``): told apart from checkpoints, LoRAs
and embeddings by the keys in their safetensors header, with their scale where the shapes say it.

The keys are the ones spandrel's own architecture detection looks for, so a file classified here
is one spandrel can load; which architecture exactly, and its hyper-parameters, spandrel decides
at load time (``studio.engines.upscaler``). No torch here: headers only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from studio.core.models import ModelSpec
from studio.engines.library.safetensors_files import file_size, header_dtype
from studio.engines.registry import UPSCALER

# (family, keys that must all be present), in the order spandrel tries them.
_SIGNATURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ESRGAN", ("model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight")),
    ("ESRGAN", ("conv_first.weight", "body.0.rdb1.conv1.weight")),
    ("ESRGAN", ("conv_first.weight", "RRDB_trunk.0.RDB1.conv1.weight")),
    ("Compact", ("body.0.weight", "body.1.weight")),
    ("SPAN", ("conv_1.sk.weight", "block_1.c1_r.sk.weight")),
    ("HAT", ("layers.0.residual_group.blocks.0.conv_block.cab.0.weight",)),
    ("SwinIR", ("layers.0.residual_group.blocks.0.norm1.weight", "conv_first.weight")),
    ("DAT", ("layers.0.blocks.0.attn.attns.0.pos.pos_proj.weight",)),
    ("OmniSR", ("residual_layer.0.residual_layer.0.layer.0.fn.0.weight",)),
    ("PLKSR", ("feats.0.weight", "feats.1.lk.conv.weight")),
    ("RealCUGAN", ("unet1.conv1.conv.0.weight",)),
    ("SwiftSRGAN", ("initial.cnn.depthwise.weight",)),
)

# Architectures whose code is licensed for non-commercial use only (spandrel keeps them apart, in
# spandrel_extra_arches, which Studio does not load); a model of one is named as such.
NON_COMMERCIAL_ARCHITECTURES = {
    "AdaCode": "CC BY-NC-SA 4.0",
    "CodeFormer": "S-Lab License 1.0",
    "DDColor": "academic and non-commercial use only",
    "FeMaSR": "CC BY-NC-SA 4.0",
    "M3SNet": "Academic Public License",
    "MAT": "CC BY-NC 4.0",
    "MIRNet2": "Academic Public License",
    "MPRNet": "Academic Public License",
    "Restormer": "Academic Public License",
    "SRFormer": "CC BY-NC 4.0",
}

_SCALE_IN_NAME = re.compile(r"(?:^|[^a-z0-9])(?:(\d)x|x(\d))(?:[^a-z0-9]|$)", re.IGNORECASE)


def upscaler_family(header: dict[str, Any]) -> str:
    """The architecture family the keys point to, or "" when they are not an upscaler's."""
    for family, keys in _SIGNATURES:
        if all(key in header for key in keys):
            return family
    return ""


def upscaler_scale(file: Path, header: dict[str, Any], family: str) -> int:
    """The scale the shapes (or else the file name, "4x-…", "…_x2") say; 0 when neither does."""
    if family == "Compact":
        last = max(int(k.split(".")[1]) for k in header if k.startswith("body.") and k.endswith(".bias"))
        out = _shape(header, f"body.{last}.bias")
        channels = _shape(header, "body.0.weight")
        if out and channels and len(channels) > 1:
            scale_sq = out[0] // channels[1]
            root = round(scale_sq**0.5)
            if root * root == scale_sq:
                return root
    if family == "ESRGAN" and "conv_first.weight" in header:
        ups = sum(1 for k in header if re.fullmatch(r"conv_up\d+\.weight", k))
        if ups:
            return 2**ups
    match = _SCALE_IN_NAME.search(file.stem)
    return int(match.group(1) or match.group(2)) if match else 0


def inspect_upscaler(
    file: Path, header: dict[str, Any], ident: str, source: str, facts: dict[str, Any]
) -> ModelSpec | None:
    """A ``ModelSpec`` of kind ``upscaler`` when the header's keys are an upscaler's, else None."""
    family = upscaler_family(header)
    if not family:
        return None
    scale = upscaler_scale(file, header, family)
    details = {**facts, "class": family, "scale": scale, "dtype": header_dtype(header), "single_file": True}
    details["size_bytes"] = details.get("size_bytes") or file_size(file)
    return ModelSpec(ident, file.stem, "upscaler", family, file, source, True, details=details, format=UPSCALER)


def _shape(header: dict[str, Any], key: str) -> list[int]:
    entry = header.get(key)
    shape = entry.get("shape") if isinstance(entry, dict) else None
    return [int(v) for v in shape] if isinstance(shape, list) else []

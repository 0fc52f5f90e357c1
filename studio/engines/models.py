"""Finding local models and saying what each one is, without loading any weights.

A folder is classified by its ``model_index.json`` (a diffusers pipeline) or ``config.json``
(a transformers model). Nothing here imports torch, so listing models is instant.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.errors import InvalidRequest, ModelError

MUSIC_ARCHITECTURES = {"MusicgenForConditionalGeneration", "MusicgenMelodyForConditionalGeneration"}
MUSIC_PIPELINES = {"StableAudioPipeline", "AudioLDM2Pipeline", "AudioLDMPipeline", "MusicLDMPipeline"}
PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl")


@dataclass(frozen=True)
class ModelSpec:
    """A model folder and what Studio knows of it."""

    id: str
    name: str
    kind: str  # "text", "image", "music" or "" when unknown
    family: str
    path: Path
    source: str  # "bundled", "folder" or "path"
    runnable: bool
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "family": self.family,
            "path": str(self.path),
            "source": self.source,
            "runnable": self.runnable,
            "reason": self.reason,
        }

    def provenance(self) -> dict[str, Any]:
        info = {"id": self.id, "name": self.name, "family": self.family, "path": str(self.path), "source": self.source}
        licence = model_card_licence(self.path)
        if licence:
            info["licence"] = licence
        if self.path.parent.name == "snapshots":  # a Hugging Face cache snapshot: its folder is the commit
            info["revision"] = self.path.name
        return info


def inspect_folder(path: Path, *, model_id: str | None = None, source: str = "path") -> ModelSpec:
    """Classify one folder; never raises for a bad folder, it says why in ``reason``."""
    path = Path(path).expanduser()
    name = path.name or str(path)
    ident = model_id or _slug(name)

    def refused(reason: str, kind: str = "", family: str = "") -> ModelSpec:
        return ModelSpec(ident, name, kind, family, path, source, False, reason)

    if not path.is_dir():
        return refused(f"{path} is not a folder")
    index_file, config_file = path / "model_index.json", path / "config.json"
    if index_file.is_file():
        data = _read_json(index_file)
        if data is None:
            return refused("model_index.json is not valid JSON")
        cls = str(data.get("_class_name", ""))
        kind = "music" if cls in MUSIC_PIPELINES else "image"
        family = _pipeline_family(cls)
        if not any(path.rglob("*.safetensors")):
            return refused(_no_safetensors(path), kind, family)
        details: dict[str, Any] = {"class": cls}
        if kind == "image":
            details["native_size"] = _native_image_size(path, family)
        return ModelSpec(ident, name, kind, family, path, source, True, details=details)
    if config_file.is_file():
        data = _read_json(config_file)
        if data is None:
            return refused("config.json is not valid JSON")
        architectures = data.get("architectures") or []
        arch = str(architectures[0]) if isinstance(architectures, list) and architectures else ""
        family = str(data.get("model_type", "")) or arch
        if "auto_map" in data:
            return refused("this model needs its own code to run (remote code), which Studio never executes")
        if arch in MUSIC_ARCHITECTURES:
            kind = "music"
        elif arch.endswith("ForCausalLM") or arch.endswith("LMHeadModel"):
            kind = "text"
        else:
            what = arch or family or "no architecture"
            return refused(f"config.json describes {what}, which is not a text, image or music model")
        if not any(path.glob("*.safetensors")):
            return refused(_no_safetensors(path), kind, family)
        return ModelSpec(ident, name, kind, family, path, source, True, details={"class": arch})
    contents = sorted(p.name for p in path.iterdir())[:5] if path.is_dir() else []
    found = ", ".join(contents) if contents else "nothing"
    return refused(f"no model_index.json or config.json here (found: {found})")


# The training resolution of families whose denoiser config does not say it.
_FAMILY_NATIVE_SIZE = {"sd": 512, "sdxl": 1024, "sd3": 1024, "flux": 1024, "pixartalpha": 1024, "pixartsigma": 1024}


def _native_image_size(path: Path, family: str) -> int:
    """The side, in pixels, that the pipeline was trained at: denoiser sample size × VAE scale."""
    vae = _read_json(path / "vae" / "config.json") or {}
    blocks = vae.get("block_out_channels")
    scale = 2 ** (len(blocks) - 1) if isinstance(blocks, list) and blocks else 8
    for part in ("unet", "transformer", "prior"):
        config = _read_json(path / part / "config.json")
        sample = config.get("sample_size") if config else None
        if isinstance(sample, list) and sample:
            sample = sample[0]
        if isinstance(sample, int) and sample > 0:
            return int(sample * scale)
    return _FAMILY_NATIVE_SIZE.get(family, 512)


def image_size_range(spec: ModelSpec) -> tuple[int, int]:
    """The smallest and largest side worth asking of this pipeline: a quarter to four times its native size."""
    native = int(spec.details.get("native_size") or 512)
    low = max(8, (native // 4) // 8 * 8)
    return low, native * 4


def check_image_size(spec: ModelSpec, width: int, height: int) -> None:
    """Refuse a size far outside what the model was trained for, before anything loads."""
    low, high = image_size_range(spec)
    native = spec.details.get("native_size", 512)
    for name, value in (("width", width), ("height", height)):
        if not low <= value <= high:
            raise InvalidRequest(
                name,
                f"{name} {value} is far from the {native}×{native} that {spec.name} was trained for; "
                f"use {low} to {high}",
            )


def safetensors_parameter_bytes(path: Path, bytes_per_parameter: int) -> int:
    """How much memory the weights under ``path`` take in a dtype of ``bytes_per_parameter``.

    Reads only the JSON header of each safetensors file (the first few kilobytes), not the weights.
    """
    total = 0
    files = sorted(path.rglob("*.safetensors"))
    names = {f.parent / f.name.replace(".fp16.", ".") for f in files if ".fp16." not in f.name}
    for file in files:
        if ".fp16." in file.name and file.parent / file.name.replace(".fp16.", ".") in names:
            continue  # the same weights in another precision: count them once
        try:
            with file.open("rb") as handle:
                size = int.from_bytes(handle.read(8), "little")
                if not 0 < size < 100_000_000:
                    continue
                header = json.loads(handle.read(size))
        except (OSError, ValueError):
            continue
        for name, entry in header.items():
            if name == "__metadata__" or not isinstance(entry, dict):
                continue
            count = 1
            for dim in entry.get("shape", []):
                count *= int(dim)
            total += count
    return total * bytes_per_parameter


def model_card_licence(path: Path) -> str:
    """The ``license:`` of a model card's front matter (README.md), or ""."""
    card = Path(path) / "README.md"
    try:
        with card.open(encoding="utf-8") as handle:
            if handle.readline().strip() != "---":
                return ""
            for _ in range(100):
                line = handle.readline(4096)
                if not line or line.strip() == "---":
                    return ""
                if line.lower().startswith("license:"):
                    return line.split(":", 1)[1].strip().strip("\"'")
    except (OSError, UnicodeDecodeError):
        return ""
    return ""


def _no_safetensors(path: Path) -> str:
    if any(p.suffix in PICKLE_SUFFIXES for p in path.rglob("*")):
        return "only pickle weights (.bin/.ckpt/.pt), which can run code when loaded; Studio loads safetensors only"
    return "no weights found (.safetensors files are missing)"


def _pipeline_family(cls: str) -> str:
    if cls.startswith("StableDiffusionXL"):
        return "sdxl"
    if cls.startswith("StableDiffusion3"):
        return "sd3"
    if cls.startswith("StableDiffusion"):
        return "sd"
    if cls.startswith("Flux"):
        return "flux"
    return re.sub(r"Pipeline$", "", cls).lower() or "unknown"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-").lower() or "model"


def _is_model_folder(path: Path) -> bool:
    return (path / "model_index.json").is_file() or (path / "config.json").is_file()


class ModelCatalog:
    """Bundled models plus the user's model folders, each searched a few levels deep."""

    def __init__(self, bundled_root: Path | None, user_folders: Iterable[str | Path] = ()) -> None:
        self.bundled_root = bundled_root
        self.user_folders = [Path(p).expanduser() for p in user_folders]

    def discover(self) -> list[ModelSpec]:
        specs: list[ModelSpec] = []
        seen_paths: set[Path] = set()
        used_ids: set[str] = set()
        roots: list[tuple[Path, str]] = []
        if self.bundled_root is not None:
            roots.append((self.bundled_root, "bundled"))
        roots.extend((folder, "folder") for folder in self.user_folders)
        for root, source in roots:
            for folder in _model_folders(root):
                resolved = folder.resolve()
                if resolved in seen_paths:
                    continue
                seen_paths.add(resolved)
                ident = _slug(folder.name)
                n = 2
                while ident in used_ids:
                    ident, n = f"{_slug(folder.name)}-{n}", n + 1
                used_ids.add(ident)
                specs.append(inspect_folder(folder, model_id=ident, source=source))
        return specs

    def resolve(self, ref: str) -> ModelSpec:
        """A model by folder path or by id; ``ModelError`` says what to do when neither fits."""
        candidate = Path(ref).expanduser()
        if candidate.is_dir():
            spec = inspect_folder(candidate)
            for known in self.discover():
                if known.path.resolve() == candidate.resolve():
                    spec = known
            return spec
        for spec in self.discover():
            if ref in (spec.id, spec.name):
                return spec
        if "/" in ref or "\\" in ref or candidate.exists():
            raise ModelError(f"model folder {ref} does not exist or is not a folder")
        raise ModelError(f"no model called {ref!r}: give a model folder or an id from 'studio models list'")


def _model_folders(root: Path, depth: int = 3) -> list[Path]:
    if not root.is_dir():
        return []
    if _is_model_folder(root):
        return [root]
    if depth == 0:
        return []
    found: list[Path] = []
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []
    for child in children:
        found.extend(_model_folders(child, depth - 1))
    return found

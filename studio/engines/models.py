"""Finding local models and saying what each one is, without loading any weights.

A folder is classified by its ``model_index.json`` (a diffusers pipeline) or ``config.json``
(a transformers model). Nothing here imports torch, so listing models is instant.
"""

from __future__ import annotations

import importlib
import json
import os
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
            "class": self.details.get("class", ""),
            "size_bytes": self.details.get("size_bytes", 0),
            "dtype": self.details.get("dtype", ""),
            "licence": self.details.get("licence", ""),
        }

    def provenance(self) -> dict[str, Any]:
        info = {"id": self.id, "name": self.name, "family": self.family, "path": str(self.path), "source": self.source}
        licence = self.details.get("licence") or model_card_licence(self.path)
        if licence:
            info["licence"] = licence
        if self.path.parent.name == "snapshots":  # a Hugging Face cache snapshot: its folder is the commit
            info["revision"] = self.path.name
        return info


def inspect_folder(
    path: Path, *, model_id: str | None = None, source: str = "path", allow_pickle: bool = False, name: str = ""
) -> ModelSpec:
    """Classify one folder; never raises for a bad folder, it says why in ``reason``.

    Reads only small files — configs, the model card, safetensors headers — never the weights.
    ``allow_pickle`` is the user's per-model consent to load .bin/.ckpt/.pt weights.
    """
    path = Path(path).expanduser()
    name = name or path.name or str(path)
    ident = model_id or _slug(name.replace("/", "--"))
    facts: dict[str, Any] = {}

    def refused(reason: str, kind: str = "", family: str = "") -> ModelSpec:
        return ModelSpec(ident, name, kind, family, path, source, False, reason, details=facts)

    if not path.is_dir():
        return refused(f"{path} is not a folder")
    facts.update(size_bytes=_size_on_disk(path), licence=model_card_licence(path))
    hint = model_card_field(path, "studio_hint")  # what the tabs say about this model (starter cards have one)
    if hint:
        facts["hint"] = hint
    index_file, config_file = path / "model_index.json", path / "config.json"
    manifest_file = path / STUDIO_MANIFEST
    if manifest_file.is_file():
        return _inspect_studio_format(path, manifest_file, ident, name, source, facts)
    if index_file.is_file():
        data = _read_json(index_file)
        if data is None:
            return refused("model_index.json is not valid JSON")
        cls = str(data.get("_class_name", ""))
        kind = "music" if cls in MUSIC_PIPELINES else "image"
        family = _pipeline_family(cls)
        facts["class"] = cls
        missing = [
            part
            for part, value in data.items()
            if not part.startswith("_")
            and isinstance(value, list)
            and value[0] is not None
            and not (path / part).is_dir()
        ]
        if missing:
            return refused(
                f"missing files: the pipeline names {', '.join(missing)} but those folders are not there", kind, family
            )
        problem = _weights_problem(path, recursive=True, allow_pickle=allow_pickle)
        if problem:
            return refused(problem, kind, family)
        facts["dtype"] = _weights_dtype(path, recursive=True)
        if kind == "image":
            facts["native_size"] = _native_image_size(path, family)
        if allow_pickle and not any(path.rglob("*.safetensors")):
            facts["pickle_allowed"] = True
        return ModelSpec(ident, name, kind, family, path, source, True, details=facts)
    if config_file.is_file():
        data = _read_json(config_file)
        if data is None:
            return refused("config.json is not valid JSON")
        architectures = data.get("architectures") or []
        arch = str(architectures[0]) if isinstance(architectures, list) and architectures else ""
        family = str(data.get("model_type", "")) or arch
        facts["class"] = arch
        if "auto_map" in data:
            return refused("this model needs its own code to run (remote code), which Studio never executes")
        if arch in MUSIC_ARCHITECTURES:
            kind = "music"
        elif arch.endswith("ForCausalLM") or arch.endswith("LMHeadModel"):
            kind = "text"
        else:
            what = arch or family or "no architecture"
            return refused(f"config.json describes {what}, which is not a text, image or music model")
        problem = _weights_problem(path, recursive=False, allow_pickle=allow_pickle)
        if problem:
            return refused(problem, kind, family)
        if not any((path / f).is_file() for f in _TOKENIZER_FILES):
            return refused("missing files: no tokenizer (tokenizer.json, tokenizer.model, vocab.json…)", kind, family)
        facts["dtype"] = str(data.get("torch_dtype") or data.get("dtype") or "") or _weights_dtype(
            path, recursive=False
        )
        if allow_pickle and not any(path.glob("*.safetensors")):
            facts["pickle_allowed"] = True
        return ModelSpec(ident, name, kind, family, path, source, True, details=facts)
    contents = sorted(p.name for p in path.iterdir())[:5] if path.is_dir() else []
    found = ", ".join(contents) if contents else "nothing"
    return refused(f"no model_index.json or config.json here (found: {found})")


# Studio's own formats, for models the libraries do not cover (the starter models): a
# ``studio_model.json`` manifest names the format, and the engine of that kind knows it.
STUDIO_MANIFEST = "studio_model.json"
STUDIO_FORMATS = {
    "studio-melody": "music",  # a LlamaForCausalLM over melody tokens + melody_vocab.json
    "studio-patterns": "image",  # a compositional pattern-producing network; no weights, no data
}


def _inspect_studio_format(
    path: Path, manifest_file: Path, ident: str, name: str, source: str, facts: dict[str, Any]
) -> ModelSpec:
    data = _read_json(manifest_file)
    fmt = str((data or {}).get("format", ""))
    kind = STUDIO_FORMATS.get(fmt, "")
    facts["class"] = fmt
    if data is None or not kind:
        reason = f"{STUDIO_MANIFEST} names the format {fmt!r}, which this Studio does not know"
        return ModelSpec(
            ident,
            name,
            kind,
            fmt,
            path,
            source,
            False,
            reason if data else f"{STUDIO_MANIFEST} is not valid JSON",
            details=facts,
        )
    if fmt == "studio-melody":
        problem = _weights_problem(path, recursive=False, allow_pickle=False)
        if problem:
            return ModelSpec(ident, name, kind, fmt, path, source, False, problem, details=facts)
        vocabulary = path / str(data.get("vocabulary", "melody_vocab.json"))
        if not vocabulary.is_file():
            reason = f"missing files: the melody vocabulary {vocabulary.name}"
            return ModelSpec(ident, name, kind, fmt, path, source, False, reason, details=facts)
        facts["dtype"] = _weights_dtype(path, recursive=False)
    return ModelSpec(ident, name, kind, fmt, path, source, True, details=facts)


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "tokenizer_config.json")
_SAFETENSORS_DTYPES = {
    "F16": "float16",
    "BF16": "bfloat16",
    "F32": "float32",
    "F64": "float64",
    "I8": "int8",
    "U8": "uint8",
}


def safetensors_header(file: Path) -> dict[str, Any] | None:
    """The JSON header of a safetensors file, or None when the file is damaged or truncated."""
    try:
        size = file.stat().st_size
        with file.open("rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            if not 2 <= length <= min(100_000_000, size - 8):
                return None
            header = json.loads(handle.read(length))
    except (OSError, ValueError):
        return None
    if not isinstance(header, dict):
        return None
    ends = [
        entry["data_offsets"][1]
        for key, entry in header.items()
        if key != "__metadata__" and isinstance(entry, dict) and "data_offsets" in entry
    ]
    if ends and 8 + length + max(ends) > size:
        return None  # the header promises more bytes than the file holds: cut short
    return header


def _weights_problem(path: Path, *, recursive: bool, allow_pickle: bool) -> str:
    files = sorted(path.rglob("*.safetensors") if recursive else path.glob("*.safetensors"))
    if not files:
        if allow_pickle and any(p.suffix in PICKLE_SUFFIXES for p in path.rglob("*")):
            return ""
        return _no_safetensors(path)
    for file in files:
        if safetensors_header(file) is None:
            return f"{file.relative_to(path)} is damaged (truncated, or not a safetensors file)"
    return ""


def _weights_dtype(path: Path, *, recursive: bool) -> str:
    for file in sorted(path.rglob("*.safetensors") if recursive else path.glob("*.safetensors"))[:3]:
        header = safetensors_header(file) or {}
        for key, entry in header.items():
            if key != "__metadata__" and isinstance(entry, dict):
                return _SAFETENSORS_DTYPES.get(str(entry.get("dtype")), str(entry.get("dtype", "")).lower())
    return ""


def _size_on_disk(path: Path) -> int:
    total = 0
    for file in path.rglob("*"):
        try:
            if file.is_file():  # follows the HF cache's symlinks to their blobs
                total += file.stat().st_size
        except OSError:
            continue
    return total


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
    files = [path] if path.is_file() else sorted(path.rglob("*.safetensors"))
    names = {f.parent / f.name.replace(".fp16.", ".") for f in files if ".fp16." not in f.name}
    for file in files:
        if ".fp16." in file.name and file.parent / file.name.replace(".fp16.", ".") in names:
            continue  # the same weights in another precision: count them once
        header = safetensors_header(file) or {}
        for name, entry in header.items():
            if name == "__metadata__" or not isinstance(entry, dict):
                continue
            count = 1
            for dim in entry.get("shape", []):
                count *= int(dim)
            total += count
    return total * bytes_per_parameter


def is_starter(spec: ModelSpec) -> bool:
    """A starter model that ships with Studio (its id says so)."""
    return "starter" in spec.id


def preferred_order(specs: Iterable[ModelSpec]) -> list[ModelSpec]:
    """Models in the order a tab or ``studio gen`` chooses among them: the user's own first,
    the starters that ship with Studio last (stable otherwise)."""
    return sorted(specs, key=is_starter)


def library_problem(spec: ModelSpec) -> str:
    """Why the installed diffusers / transformers cannot build this model's class, or "".

    Imports those libraries (and torch): call it on the worker thread or from the command line.
    """
    cls = str(spec.details.get("class", ""))
    if not spec.runnable or not cls or cls in STUDIO_FORMATS:
        return ""
    library = "diffusers" if (spec.path / "model_index.json").is_file() else "transformers"
    module = importlib.import_module(library)
    if getattr(module, cls, None) is None:
        version = getattr(module, "__version__", "?")
        return f"{cls} is not in the installed {library} {version}; a newer {library} may have it"
    return ""


def suggested_defaults(spec: ModelSpec) -> dict[str, float]:
    """Starting settings that distilled models need (their cards say so): few steps, little guidance."""
    name = f"{spec.name} {spec.path.name}".lower()
    if spec.kind != "image":
        return {}
    if "turbo" in name:
        return {"steps": 2, "guidance": 0.0}
    if "lightning" in name or "hyper" in name:
        return {"steps": 4, "guidance": 0.0}
    if "lcm" in name:
        return {"steps": 6, "guidance": 1.5}
    if "schnell" in name:
        return {"steps": 4, "guidance": 0.0}
    return {}


def model_card_licence(path: Path) -> str:
    """The ``license:`` of a model card's front matter (README.md), or ""."""
    return model_card_field(path, "license")


def model_card_field(path: Path, name: str) -> str:
    """One ``name: value`` line of a model card's YAML front matter (README.md), or ""."""
    card = Path(path) / "README.md"
    try:
        with card.open(encoding="utf-8") as handle:
            if handle.readline().strip() != "---":
                return ""
            for _ in range(100):
                line = handle.readline(4096)
                if not line or line.strip() == "---":
                    return ""
                if line.lower().startswith(f"{name}:"):
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
    return any((path / name).is_file() for name in ("model_index.json", "config.json", STUDIO_MANIFEST))


class ModelCatalog:
    """Bundled models, the Hugging Face hub cache, and the user's folders (searched recursively)."""

    def __init__(
        self,
        bundled_root: Path | None,
        user_folders: Iterable[str | Path] = (),
        *,
        hf_cache: Path | None = None,
        allow_pickle: Iterable[str | Path] = (),
    ) -> None:
        self.bundled_root = bundled_root
        self.user_folders = [Path(p).expanduser() for p in user_folders]
        self.hf_cache = hf_cache
        self.allow_pickle = {str(Path(p).expanduser().resolve()) for p in allow_pickle}

    def discover(self) -> list[ModelSpec]:
        specs: list[ModelSpec] = []
        seen_paths: set[Path] = set()
        used_ids: set[str] = set()
        found: list[tuple[Path, str, str]] = []  # (folder, source, display name)
        if self.bundled_root is not None:
            found += [(folder, "bundled", folder.name) for folder in _model_folders(self.bundled_root)]
        found += hf_cache_models(self.hf_cache)
        checkpoints: list[Path] = []
        for root in self.user_folders:
            found += [(folder, "folder", folder.name) for folder in _model_folders(root)]
            checkpoints += _checkpoint_files(root)
        for folder, source, name in found:
            resolved = folder.resolve()
            if resolved in seen_paths:
                continue
            seen_paths.add(resolved)
            base = _slug(name.replace("/", "--"))
            ident, n = base, 2
            while ident in used_ids:
                ident, n = f"{base}-{n}", n + 1
            used_ids.add(ident)
            allowed = str(resolved) in self.allow_pickle
            specs.append(inspect_folder(folder, model_id=ident, source=source, allow_pickle=allowed, name=name))
        folders = list(specs)
        for file in checkpoints:
            if file.resolve() in seen_paths:
                continue
            seen_paths.add(file.resolve())
            base = _slug(file.stem)
            ident, n = base, 2
            while ident in used_ids:
                ident, n = f"{base}-{n}", n + 1
            used_ids.add(ident)
            specs.append(inspect_checkpoint(file, folders, model_id=ident, source="folder"))
        return specs

    def resolve(self, ref: str) -> ModelSpec:
        """A model by folder path or by id; ``ModelError`` says what to do when neither fits."""
        candidate = Path(ref).expanduser()
        if candidate.is_file() and candidate.suffix == ".safetensors":
            known = self.discover()
            for spec in known:
                if spec.path.resolve() == candidate.resolve():
                    return spec
            return inspect_checkpoint(candidate, known)
        if candidate.is_dir():
            # Only this folder is inspected: every job resolves its model, and scanning every source
            # (the hub cache included) each time cost text generation several percent of its speed.
            name, source = self._identity(candidate)
            allowed = str(candidate.resolve()) in self.allow_pickle
            return inspect_folder(candidate, source=source, name=name, allow_pickle=allowed)
        for spec in self.discover():
            if ref in (spec.id, spec.name):
                return spec
        if "/" in ref or "\\" in ref or candidate.exists():
            raise ModelError(f"model folder {ref} does not exist or is not a folder")
        raise ModelError(f"no model called {ref!r}: give a model folder or an id from 'studio models list'")

    def _identity(self, folder: Path) -> tuple[str, str]:
        """(display name, source) of a model folder, as ``discover`` would name it."""
        resolved = folder.resolve()
        if resolved.parent.name == "snapshots" and resolved.parent.parent.name.startswith("models--"):
            return resolved.parent.parent.name.removeprefix("models--").replace("--", "/"), "hf-cache"
        if self.bundled_root is not None and self.bundled_root.resolve() in (resolved, *resolved.parents):
            return folder.name, "bundled"
        for root in self.user_folders:
            if root.resolve() in (resolved, *resolved.parents):
                return folder.name, "folder"
        return folder.name, "path"


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
    ident = model_id or _slug(file.stem)
    facts: dict[str, Any] = {"single_file": True, "size_bytes": _file_size(file)}
    header = safetensors_header(file)
    if header is None:
        return ModelSpec(
            ident, file.stem, "", "", file, source, False, f"{file.name} is damaged or not safetensors", facts
        )
    if not any(key.startswith(_LDM_UNET) for key in header):
        reason = f"{file.name} is not a Stable Diffusion checkpoint (a LoRA, an embedding or another kind of file?)"
        return ModelSpec(ident, file.stem, "", "", file, source, False, reason, facts)
    family = "sdxl" if any(key.startswith(_LDM_SDXL) for key in header) else "sd"
    entry = header.get(_LDM_CROSS_ATTENTION_XL if family == "sdxl" else _LDM_CROSS_ATTENTION, {})
    shape = entry.get("shape", []) if isinstance(entry, dict) else []
    width = int(shape[1]) if len(shape) > 1 else 0
    facts.update(cls=SINGLE_FILE_PIPELINES[family], cross_attention=width, dtype=_weights_dtype_of(header))
    facts["class"] = facts.pop("cls")
    for config in configs:
        if config.runnable and config.details.get("class") == facts["class"] and _cross_attention(config.path) == width:
            facts.update(config=str(config.path), native_size=config.details.get("native_size", 512))
            return ModelSpec(ident, file.stem, "image", family, file, source, True, details=facts)
    what = {"sd": f"Stable Diffusion 1.x/2.x (text width {width})", "sdxl": "SDXL"}[family]
    example = "stable-diffusion-v1-5" if family == "sd" else "stable-diffusion-xl-base-1.0"
    reason = (
        f"a single-file {what} checkpoint needs the configuration of a diffusers model folder of the same "
        f"family, and none is installed: add one (for example {example} in diffusers format) with "
        "Models ▸ Add folder or 'studio models add'"
    )
    return ModelSpec(ident, file.stem, "image", family, file, source, False, reason, facts)


def _cross_attention(folder: Path) -> int:
    config = _read_json(folder / "unet" / "config.json") or {}
    value = config.get("cross_attention_dim")
    return int(value) if isinstance(value, int) else 0


def _weights_dtype_of(header: dict[str, Any]) -> str:
    for key, entry in header.items():
        if key != "__metadata__" and isinstance(entry, dict):
            return _SAFETENSORS_DTYPES.get(str(entry.get("dtype")), str(entry.get("dtype", "")).lower())
    return ""


def _file_size(file: Path) -> int:
    try:
        return file.stat().st_size
    except OSError:
        return 0


def default_hf_cache(fallback: str) -> Path:
    """The hub cache as the environment names it now (HF_HUB_CACHE, else HF_HOME/hub), not at import."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(fallback)


def hf_cache_models(cache: Path | None) -> list[tuple[Path, str, str]]:
    """Model snapshots in the Hugging Face hub cache: (folder, "hf-cache", repo id).

    ``cache`` None means the hub's own setting (``HF_HUB_CACHE``, else ``HF_HOME``/hub). Takes the
    snapshot that ``main`` points to, else the newest. Reads the cache's folders only.
    """
    try:
        from huggingface_hub import constants, scan_cache_dir
        from huggingface_hub.errors import CacheNotFound
    except ImportError:
        return []
    folder = Path(cache) if cache is not None else default_hf_cache(constants.HF_HUB_CACHE)
    if not folder.is_dir():
        return []
    try:
        info = scan_cache_dir(folder)
    except (CacheNotFound, OSError, ValueError):
        return []
    models = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        revisions = sorted(repo.revisions, key=lambda r: ("main" in r.refs, r.last_modified), reverse=True)
        models.append((Path(revisions[0].snapshot_path), "hf-cache", repo.repo_id))
    return models


def _checkpoint_files(root: Path, depth: int = 6) -> list[Path]:
    """Loose ``.safetensors`` files (single-file checkpoints) outside model folders."""
    if not root.is_dir() or _is_model_folder(root) or depth < 0:
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
            found.extend(_checkpoint_files(entry, depth - 1))
    return found


def _model_folders(root: Path, depth: int = 6) -> list[Path]:
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

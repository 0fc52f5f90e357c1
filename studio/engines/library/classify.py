"""Saying what a model folder is, from its small files only: ``studio_model.json`` (Studio's own
formats), ``model_index.json`` (a diffusers pipeline) or ``config.json`` (a transformers model).

Each recognised folder gets the ``format`` of the engine that runs it (``studio.engines.registry``).
Nothing here imports torch or the model libraries (``library_problem`` does, when called).
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

from studio.core.model_cards import model_card_field, model_card_licence
from studio.core.models import ModelSpec
from studio.engines.library.safetensors_files import size_on_disk, weights_dtype, weights_problem
from studio.engines.library.training_cards import training_details
from studio.engines.registry import (
    ACE_STEP,
    DIFFUSERS_AUDIO,
    DIFFUSERS_IMAGE,
    LANCZOS,
    MELODY,
    MUSICGEN,
    PATTERNS,
    TRANSFORMERS_TEXT,
    kind_of,
)

# Which engine format a library class belongs to. Diffusers pipelines are image pipelines unless named
# here; transformers models are text models when they are causal LMs.
MUSIC_PIPELINES = {"StableAudioPipeline", "AudioLDM2Pipeline", "AudioLDMPipeline", "MusicLDMPipeline"}
MUSICGEN_CLASSES = {"MusicgenForConditionalGeneration", "MusicgenMelodyForConditionalGeneration"}
# Diffusers pipelines with an engine of their own (songs with lyrics, editing on the waveform).
PIPELINE_FORMATS = {"AceStepPipeline": ACE_STEP}


def inspect_folder(
    path: Path, *, model_id: str | None = None, source: str = "path", allow_pickle: bool = False, name: str = ""
) -> ModelSpec:
    """Classify one folder; never raises for a bad folder, it says why in ``reason``.

    Reads only small files — configs, the model card, safetensors headers — never the weights.
    ``allow_pickle`` is the user's per-model consent to load .bin/.ckpt/.pt weights.
    """
    path = Path(path).expanduser()
    name = name or path.name or str(path)
    ident = model_id or slug(name.replace("/", "--"))
    facts: dict[str, Any] = {}

    def refused(reason: str, fmt: str = "", family: str = "") -> ModelSpec:
        return ModelSpec(ident, name, kind_of(fmt), family, path, source, False, reason, details=facts, format=fmt)

    def accepted(fmt: str, family: str) -> ModelSpec:
        return ModelSpec(ident, name, kind_of(fmt), family, path, source, True, details=facts, format=fmt)

    if not path.is_dir():
        return refused(f"{path} is not a folder")
    facts.update(size_bytes=size_on_disk(path), licence=model_card_licence(path))
    training = training_details(path)  # a model Studio trained: what it learned from
    if training is not None:
        facts["training"] = training
        name = training["name"] if name == path.name else name  # the name the artist gave it
    hint = model_card_field(path, "studio_hint")  # what the tabs say about this model (starter cards have one)
    if hint:
        facts["hint"] = hint
    index_file, config_file = path / "model_index.json", path / "config.json"
    manifest_file = path / STUDIO_MANIFEST
    if manifest_file.is_file():
        return _inspect_studio_format(path, manifest_file, ident, name, source, facts)
    if index_file.is_file():
        data = read_json(index_file)
        if data is None:
            return refused("model_index.json is not valid JSON")
        cls = str(data.get("_class_name", ""))
        fmt = DIFFUSERS_AUDIO if cls in MUSIC_PIPELINES else DIFFUSERS_IMAGE
        fmt = PIPELINE_FORMATS.get(cls, fmt)
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
                f"missing files: the pipeline names {', '.join(missing)} but those folders are not there", fmt, family
            )
        problem = weights_problem(path, recursive=True, allow_pickle=allow_pickle)
        if problem:
            return refused(problem, fmt, family)
        facts["dtype"] = weights_dtype(path, recursive=True)
        if fmt == DIFFUSERS_IMAGE:
            facts["native_size"] = _native_image_size(path, family)
        if allow_pickle and not any(path.rglob("*.safetensors")):
            facts["pickle_allowed"] = True
        return accepted(fmt, family)
    if config_file.is_file():
        data = read_json(config_file)
        if data is None:
            return refused("config.json is not valid JSON")
        architectures = data.get("architectures") or []
        arch = str(architectures[0]) if isinstance(architectures, list) and architectures else ""
        family = str(data.get("model_type", "")) or arch
        facts["class"] = arch
        if "auto_map" in data:
            return refused("this model needs its own code to run (remote code), which Studio never executes")
        if arch in MUSICGEN_CLASSES:
            fmt = MUSICGEN
        elif arch.endswith("ForCausalLM") or arch.endswith("LMHeadModel"):
            fmt = TRANSFORMERS_TEXT
        else:
            what = arch or family or "no architecture"
            return refused(f"config.json describes {what}, which is not a text, image or music model")
        problem = weights_problem(path, recursive=False, allow_pickle=allow_pickle)
        if problem:
            return refused(problem, fmt, family)
        if not any((path / f).is_file() for f in _TOKENIZER_FILES):
            return refused("missing files: no tokenizer (tokenizer.json, tokenizer.model, vocab.json…)", fmt, family)
        facts["dtype"] = str(data.get("torch_dtype") or data.get("dtype") or "") or weights_dtype(path, recursive=False)
        if allow_pickle and not any(path.glob("*.safetensors")):
            facts["pickle_allowed"] = True
        return accepted(fmt, family)
    contents = sorted(p.name for p in path.iterdir())[:5] if path.is_dir() else []
    found = ", ".join(contents) if contents else "nothing"
    return refused(f"no model_index.json or config.json here (found: {found})")


# Studio's own formats, for models the libraries do not cover (the starter models): a
# ``studio_model.json`` manifest names the format, and the engine of that kind knows it.
STUDIO_MANIFEST = "studio_model.json"


# On-disk format name → the engine format that runs it.
STUDIO_FORMATS = {
    "studio-melody": MELODY,  # a LlamaForCausalLM over melody tokens + melody_vocab.json
    "studio-patterns": PATTERNS,  # a compositional pattern-producing network; no weights, no data
    "studio-lanczos": LANCZOS,  # Lanczos resampling: the upscaler when no upscaler model is installed
}


def _inspect_studio_format(
    path: Path, manifest_file: Path, ident: str, name: str, source: str, facts: dict[str, Any]
) -> ModelSpec:
    data = read_json(manifest_file)
    on_disk = str((data or {}).get("format", ""))
    fmt = STUDIO_FORMATS.get(on_disk, "")
    facts["class"] = on_disk

    def spec(runnable: bool, reason: str = "") -> ModelSpec:
        # The family is the on-disk format name: it is what the model's record calls it.
        kind = kind_of(fmt)
        return ModelSpec(ident, name, kind, on_disk, path, source, runnable, reason, details=facts, format=fmt)

    if data is None:
        return spec(False, f"{STUDIO_MANIFEST} is not valid JSON")
    if not fmt:
        return spec(False, f"{STUDIO_MANIFEST} names the format {on_disk!r}, which this Studio does not know")
    if fmt == MELODY:
        problem = weights_problem(path, recursive=False, allow_pickle=False)
        if problem:
            return spec(False, problem)
        vocabulary = path / str(data.get("vocabulary", "melody_vocab.json"))
        if not vocabulary.is_file():
            return spec(False, f"missing files: the melody vocabulary {vocabulary.name}")
        facts["dtype"] = weights_dtype(path, recursive=False)
    elif fmt == PATTERNS:
        facts["dtype"] = "float32"  # no weight files: drawn from the seed as float32 when it paints
    return spec(True)


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "tokenizer_config.json")


# The training resolution of families whose denoiser config does not say it.
_FAMILY_NATIVE_SIZE = {"sd": 512, "sdxl": 1024, "sd3": 1024, "flux": 1024, "pixartalpha": 1024, "pixartsigma": 1024}


def _native_image_size(path: Path, family: str) -> int:
    """The side, in pixels, that the pipeline was trained at: denoiser sample size × VAE scale."""
    vae = read_json(path / "vae" / "config.json") or {}
    blocks = vae.get("block_out_channels")
    scale = 2 ** (len(blocks) - 1) if isinstance(blocks, list) and blocks else 8
    for part in ("unet", "transformer", "prior"):
        config = read_json(path / part / "config.json")
        sample = config.get("sample_size") if config else None
        if isinstance(sample, list) and sample:
            sample = sample[0]
        if isinstance(sample, int) and sample > 0:
            return int(sample * scale)
    return _FAMILY_NATIVE_SIZE.get(family, 512)


# The library whose classes a format's models name (Studio's own formats need none).
LIBRARY_OF_FORMAT = {
    DIFFUSERS_IMAGE: "diffusers",
    DIFFUSERS_AUDIO: "diffusers",
    ACE_STEP: "diffusers",
    TRANSFORMERS_TEXT: "transformers",
    MUSICGEN: "transformers",
}


def library_problem(spec: ModelSpec) -> str:
    """Why the installed diffusers / transformers cannot build this model's class, or "".

    Imports those libraries (and torch): call it on the worker thread or from the command line.
    """
    cls = spec.model_class
    library = LIBRARY_OF_FORMAT.get(spec.format)
    if not spec.runnable or not cls or library is None:
        return ""
    module = importlib.import_module(library)
    if getattr(module, cls, None) is None:
        version = getattr(module, "__version__", "?")
        return f"{cls} is not in the installed {library} {version}; a newer {library} may have it"
    return ""


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


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-").lower() or "model"


def is_model_folder(path: Path) -> bool:
    return any((path / name).is_file() for name in ("model_index.json", "config.json", STUDIO_MANIFEST))

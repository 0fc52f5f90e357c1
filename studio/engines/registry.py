"""Engines by model format: which engine runs a model, found by the format its files have.

Classification (``studio.engines.library``) gives each model a ``format``; the worker asks this
registry for the engine of that format and imports it on its own thread the first time. A new
format is one engine module (the ``Engine`` protocol in ``studio.engines.base``) plus one entry
here — and, when its files look like nothing Studio knows yet, a rule in ``library/classify.py``.
Nothing here imports torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from studio.core.errors import NotSupportedYet

DIFFUSERS_IMAGE = "diffusers-image"
PATTERNS = "patterns"
TRANSFORMERS_TEXT = "transformers-text"
MUSICGEN = "musicgen"
DIFFUSERS_AUDIO = "diffusers-audio"
MELODY = "melody"
UPSCALER = "upscaler"
LANCZOS = "lanczos"
GGUF = "gguf"
ACE_STEP = "ace-step"


@dataclass(frozen=True)
class EngineEntry:
    format: str
    kind: str  # the medium its models make: "text", "image" or "music" (or "upscaler": images made larger)
    engine: str  # "module:Class", imported when first needed
    what: str  # for people: what kind of model this is


_E = "studio.engines."
ENGINES: dict[str, EngineEntry] = {
    entry.format: entry
    for entry in (
        EngineEntry(DIFFUSERS_IMAGE, "image", _E + "diffusers_image:DiffusersImageEngine", "diffusers image pipeline"),
        EngineEntry(PATTERNS, "image", _E + "patterns:PatternEngine", "Studio pattern painter"),
        EngineEntry(TRANSFORMERS_TEXT, "text", _E + "transformers_text:TransformersTextEngine", "causal LM"),
        EngineEntry(MUSICGEN, "music", _E + "musicgen:MusicGenEngine", "MusicGen"),
        EngineEntry(DIFFUSERS_AUDIO, "music", _E + "diffusers_audio:DiffusersAudioEngine", "diffusers audio pipeline"),
        EngineEntry(MELODY, "music", _E + "melody:MelodyEngine", "Studio melody model"),
        EngineEntry(UPSCALER, "upscaler", _E + "upscaler:UpscalerEngine", "spandrel upscaler"),
        EngineEntry(LANCZOS, "upscaler", _E + "upscaler:LanczosEngine", "Lanczos resampling (no model)"),
        EngineEntry(GGUF, "text", _E + "gguf_text:GGUFTextEngine", "GGUF (llama.cpp)"),
        EngineEntry(ACE_STEP, "music", _E + "ace_step:AceStepEngine", "ACE-Step song model"),
    )
}


def kind_of(fmt: str) -> str:
    """The medium a format's models make, or "" for a format this Studio does not know."""
    entry = ENGINES.get(fmt)
    return entry.kind if entry else ""


def formats_of_kind(kind: str) -> list[str]:
    return [entry.format for entry in ENGINES.values() if entry.kind == kind]


def create_engine(fmt: str) -> Any:
    """A new engine for ``fmt`` (imports its module: torch and the model libraries)."""
    entry = ENGINES.get(fmt)
    if entry is None:
        raise NotSupportedYet(f"models of format {fmt or 'unknown'!r} are not supported yet in this version of Studio")
    module_name, class_name = entry.engine.split(":")
    return getattr(importlib.import_module(module_name), class_name)()

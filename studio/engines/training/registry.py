"""Trainers by medium: which module teaches a model of each medium, imported when first needed.

No torch at import: the summary before a run asks a trainer to ``inspect`` files, and that must
not load the model libraries on the side lane.
"""

from __future__ import annotations

import importlib
from typing import Any

from studio.core.errors import NotSupportedYet

_T = "studio.engines.training."
TRAINERS: dict[str, str] = {
    "text": _T + "text_trainer:TextTrainer",  # causal LMs: full fine-tune of the starter, LoRA through peft
    "music": _T + "melody_trainer:MelodyTrainer",  # the melody model: full fine-tune, LoRA
    "image": _T + "image_lora:ImageLoraTrainer",  # diffusers pipelines: UNet LoRA through peft
}

_created: dict[str, Any] = {}


def trainer_for(medium: str) -> Any:
    """The ``MediumTrainer`` of ``medium`` (one instance per process)."""
    found = _created.get(medium)
    if found is None:
        target = TRAINERS.get(medium)
        if target is None:
            raise NotSupportedYet(f"Studio cannot train {medium} models yet")
        module_name, _, class_name = target.partition(":")
        found = _created[medium] = getattr(importlib.import_module(module_name), class_name)()
    return found

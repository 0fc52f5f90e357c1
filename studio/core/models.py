"""A model on disk as Studio knows it (``ModelSpec``), and the rules for choosing among models.

Plain data: discovery and classification (which read the files) are in ``studio.engines.library``;
the tabs, the command line and the worker all pass these around.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.model_cards import model_card_licence

_GGUF_FACTS = ("quantisation", "parameters", "context_length", "chat")


@dataclass(frozen=True)
class ModelSpec:
    """A model folder (or single file) and what Studio knows of it.

    ``format`` names the engine that runs it (``studio.engines.registry``); ``kind`` is the
    medium it makes. ``details`` holds what classification read from the files: ``class``,
    ``size_bytes``, ``dtype``, ``licence``, ``native_size``, ``hint``, and for a single-file
    checkpoint ``single_file`` and the ``config`` folder it borrows.
    """

    id: str
    name: str
    kind: str  # "text", "image", "music" or "" when unknown
    family: str
    path: Path
    source: str  # "bundled", "folder", "hf-cache" or "path"
    runnable: bool
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    format: str = ""  # "diffusers-image", "transformers-text", "melody", …; "" when not recognised

    @property
    def model_class(self) -> str:
        return str(self.details.get("class", ""))

    def to_dict(self) -> dict[str, Any]:
        data = {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "format": self.format,
            "family": self.family,
            "path": str(self.path),
            "source": self.source,
            "runnable": self.runnable,
            "reason": self.reason,
            "class": self.model_class,
            "size_bytes": self.details.get("size_bytes", 0),
            "dtype": self.details.get("dtype", ""),
            "licence": self.details.get("licence", ""),
            # What a GGUF header says (studio.engines.library.gguf_files).
            **{k: self.details[k] for k in _GGUF_FACTS if k in self.details},
        }
        if self.kind in ("lora", "embedding"):  # adapters: the base they fit and what they carry
            data["base"] = self.details.get("base", "")
            for key in ("layout", "network", "rank", "width", "token", "trigger_words", "preview", "civitai"):
                if self.details.get(key):
                    data[key] = self.details[key]
        return data

    def provenance(self) -> dict[str, Any]:
        """The model as a provenance record names it."""
        info = {"id": self.id, "name": self.name, "family": self.family, "path": str(self.path), "source": self.source}
        if self.format:
            info["format"] = self.format
        licence = self.details.get("licence") or model_card_licence(self.path)
        if licence:
            info["licence"] = licence
        if self.path.parent.name == "snapshots":  # a Hugging Face cache snapshot: its folder is the commit
            info["revision"] = self.path.name
        return info


def is_starter(spec: ModelSpec) -> bool:
    """A starter model that ships with Studio (its id says so)."""
    return "starter" in spec.id


def preferred_order(specs: Iterable[ModelSpec]) -> list[ModelSpec]:
    """Models in the order a tab or ``studio gen`` chooses among them: the user's own first,
    the starters that ship with Studio last (stable otherwise)."""
    return sorted(specs, key=is_starter)


def suggested_defaults(spec: ModelSpec) -> dict[str, float]:
    """Starting settings that distilled image models need (their cards say so): few steps, little guidance."""
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


def starting_defaults(
    saved: Mapping[str, Mapping[str, float]], model: str, suggested: Mapping[str, float]
) -> dict[str, float]:
    """What a model starts with in a tab: the user's saved defaults for it (the ``model_defaults``
    setting, keyed by the model's path), else what its kind of model needs (``suggested``)."""
    own = saved.get(model) if model else None
    return dict(own) if own else dict(suggested)

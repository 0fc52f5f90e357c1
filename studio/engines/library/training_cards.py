"""What a trained model or adapter says it learned from: its ``studio_training.json``, read for the library.

The file sits beside the weights (a full model's folder, a peft adapter's folder, the folder an image
LoRA file was installed in). The library keeps a short form of it in ``ModelSpec.details["training"]``;
the worker copies its ``lineage`` into every record made with the model or adapter. No torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from studio.core.training import TRAINING_FILE, TrainingCard

# The largest training file read: a card lists every file with its hash (~200 bytes each), so
# 32 MiB is well over 100,000 files.
MAX_TRAINING_FILE_BYTES = 32 * 1024 * 1024


def training_details(folder: Path) -> dict[str, Any] | None:
    """The short form of ``folder/studio_training.json`` (None when there is none or it is not one).

    ``lineage`` is what outputs record; the rest is what the model manager and ``studio models list``
    can show without reading the card again."""
    file = Path(folder) / TRAINING_FILE
    try:
        stat = file.stat()
    except OSError:
        return None
    if stat.st_size > MAX_TRAINING_FILE_BYTES:
        return None
    key = (str(file), stat.st_size, stat.st_mtime_ns)
    if key not in _READ:  # every job classifies its model: a card listing a thousand files is read once
        if len(_READ) > 256:
            _READ.clear()
        _READ[key] = _read(file)
    found = _READ[key]
    return None if found is None else {**found, "lineage": dict(found["lineage"])}


_READ: dict[tuple[str, int, int], dict[str, Any] | None] = {}


def _read(file: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        card = TrainingCard.from_dict(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    lineage = dict(card.lineage)
    stored = data.get("lineage")
    if isinstance(stored, dict):
        # Who trained it is the card's own word: the starters' cards say "Studio", the artist's "user".
        lineage["trained_by"] = str(stored.get("trained_by") or lineage["trained_by"])
    return {
        "card": str(file),
        "name": card.name,
        "medium": card.medium,
        "method": card.method,
        "result_kind": card.result_kind,
        "base": dict(card.base),
        "steps": card.steps,
        "final_loss": card.final_loss,
        "best_loss": card.best_loss,
        "created_at": card.created_at,
        "data_digest": card.data.digest,
        "files": len(card.data.files),
        "rights": card.data.rights,
        "lineage": lineage,
    }


def training_lineage(details: dict[str, Any]) -> dict[str, Any] | None:
    """The lineage a record carries for a spec's ``details`` (None for a model nobody trained here)."""
    training = details.get("training")
    lineage = training.get("lineage") if isinstance(training, dict) else None
    return dict(lineage) if isinstance(lineage, dict) and lineage.get("data_digest") else None

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
        if not file.is_file() or file.stat().st_size > MAX_TRAINING_FILE_BYTES:
            return None
        data = json.loads(file.read_text(encoding="utf-8"))
        card = TrainingCard.from_dict(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    lineage = dict(card.lineage)
    stored = data.get("lineage")
    if isinstance(stored, dict):
        # Who trained it is the card's own word: the starters' cards say "Studio", the artist's "user".
        lineage["trained_by"] = str(stored.get("trained_by") or lineage["trained_by"])
    lineage["card"] = str(file)
    return {
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

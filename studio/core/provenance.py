"""The provenance record written for every output (schema ``studio.provenance/1``)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SCHEMA = "studio.provenance/1"
# Whether an output may be used to train AI (the ``ai_training`` setting, or an item's own choice).
AI_TRAINING_CHOICES = ("not_stated", "allowed", "not_allowed")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_item_id(now_ms: int | None = None) -> str:
    """A 26-character ULID: 48 bits of milliseconds then 80 random bits, so ids sort by time."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ProvenanceRecord:
    """Where one output came from. The sidecar JSON is exactly ``to_dict()``."""

    id: str
    kind: str
    created_at: str
    app: dict[str, Any]
    model: dict[str, Any]
    request: dict[str, Any]
    runtime: dict[str, Any]
    output: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None
    schema: str = SCHEMA
    # A derivative (an export in another format, a kept regeneration): {"id", "sha256", "operation": {...}}
    # of the item it was made from. None for an output made by a model.
    derived_from: dict[str, Any] | None = None
    # "allowed" / "not_allowed" / "not_stated" for AI training and data mining; "" when never decided.
    ai_training: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = self._base_dict()
        if self.derived_from is not None:
            data["derived_from"] = dict(self.derived_from)
        if self.ai_training:
            data["ai_training"] = self.ai_training
        return data

    def _base_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "id": self.id,
            "kind": self.kind,
            "created_at": self.created_at,
            "app": dict(self.app),
            "model": dict(self.model),
            "request": dict(self.request),
            "runtime": dict(self.runtime),
            "output": dict(self.output),
            "parent": self.parent,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProvenanceRecord:
        """Read a record; raises ``ValueError`` with the reason when it is not one."""
        if not isinstance(data, dict):
            raise ValueError("a provenance record must be a JSON object")
        schema = data.get("schema")
        if not isinstance(schema, str) or not schema.startswith("studio.provenance/"):
            raise ValueError(f"not a Studio provenance record (schema {schema!r})")
        for key in ("id", "kind", "created_at"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise ValueError(f"provenance record has no valid {key!r}")
        maps = {}
        for key in ("app", "model", "request", "runtime", "output"):
            value = data.get(key, {})
            if not isinstance(value, dict):
                raise ValueError(f"provenance record field {key!r} must be an object")
            maps[key] = value
        parent = data.get("parent")
        if parent is not None and not isinstance(parent, str):
            raise ValueError("provenance record field 'parent' must be text")
        derived = data.get("derived_from")
        if derived is not None and not isinstance(derived, dict):
            raise ValueError("provenance record field 'derived_from' must be an object")
        training = data.get("ai_training", "")
        if training not in ("", *AI_TRAINING_CHOICES):
            raise ValueError(f"provenance record field 'ai_training' must be one of {AI_TRAINING_CHOICES}")
        return cls(
            id=data["id"],
            kind=data["kind"],
            created_at=data["created_at"],
            parent=parent,
            schema=SCHEMA,
            derived_from=derived,
            ai_training=training,
            **maps,
        )

    @property
    def prompt(self) -> str:
        value = self.request.get("prompt", "")
        return value if isinstance(value, str) else ""

    @property
    def seed(self) -> int | None:
        value = self.request.get("seed")
        return value if isinstance(value, int) else None

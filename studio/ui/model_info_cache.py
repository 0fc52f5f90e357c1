"""The last description of each model, kept between launches: a tab shows its model's controls,
defaults and hint at once on a relaunch, before the worker has described it again (which takes
seconds while the model library is imported). The worker's answer always wins."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from studio.core.capabilities import ModelInfo
from studio.core.files import atomic_write_text

log = logging.getLogger(__name__)
_FILE = "model-descriptions.json"


class ModelInfoCache:
    def __init__(self, folder: Path) -> None:
        self.path = folder / _FILE

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, ref: str) -> ModelInfo | None:
        """The description last seen of ``ref``, or None (never seen, or not readable any more)."""
        entry = self._read().get(ref)
        if not isinstance(entry, dict):
            return None
        try:
            return ModelInfo.from_dict(entry)
        except (KeyError, TypeError, ValueError):
            return None

    def put(self, info: ModelInfo) -> None:
        if not info.ref:
            return
        data = self._read()
        entry = info.to_dict()
        if data.get(info.ref) == entry:
            return
        data[info.ref] = entry
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps(data, indent=1, sort_keys=True))
        except OSError:
            log.warning("could not keep the model's description", exc_info=True)

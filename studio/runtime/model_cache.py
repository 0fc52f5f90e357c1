"""Keeps the last-used model of each kind loaded, so the next job with it starts at once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class _Entry:
    key: Any
    model: Any
    unload: Callable[[Any], None]


class ModelCache:
    """One slot per kind; a different model of that kind replaces (and unloads) the old one."""

    def __init__(self) -> None:
        self._slots: dict[str, _Entry] = {}
        self.last_load_s = 0.0  # how long the last ``get`` spent loading: 0 when the model was here

    def get(self, kind: str, key: Any, load: Callable[[], Any], unload: Callable[[Any], None]) -> Any:
        entry = self._slots.get(kind)
        if entry is not None and entry.key == key:
            self.last_load_s = 0.0
            return entry.model
        if entry is not None:
            self._drop(kind)
        started = time.perf_counter()
        model = load()
        self.last_load_s = time.perf_counter() - started
        self._slots[kind] = _Entry(key, model, unload)
        return model

    def keys(self) -> dict[str, Any]:
        return {kind: entry.key for kind, entry in self._slots.items()}

    def clear(self) -> None:
        for kind in list(self._slots):
            self._drop(kind)

    def _drop(self, kind: str) -> None:
        entry = self._slots.pop(kind)
        try:
            entry.unload(entry.model)
        except Exception:  # unloading must never stop the next job
            log.exception("unloading the %s model failed", kind)

"""A model's weight fingerprint: the sha256 that provenance records and A1111's "Model hash" use.

Hashing gigabytes takes seconds, so each file's digest is cached by path, size and mtime in a
small JSON file; a changed file is hashed again. Only the weight files count (safetensors),
so editing a README does not change a model's identity.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path

from studio.core.files import atomic_write_text, file_sha256

__all__ = ["WeightFingerprints", "file_sha256"]  # the engines import file_sha256 from here

log = logging.getLogger(__name__)


class WeightFingerprints:
    """Digests of model folders, remembered across runs in ``cache_file``."""

    def __init__(self, cache_file: Path | None) -> None:
        self._cache_file = cache_file
        self._lock = threading.Lock()
        self._entries: dict[str, dict] = self._load()

    def of_model(self, folder: Path) -> str:
        """One sha256 for the folder: of the sorted "relative path  file digest" lines of its weights.

        A single weight file's fingerprint is that file's own sha256 (what A1111 and Civitai show).
        """
        folder = Path(folder)
        if folder.is_file():  # a single-file checkpoint
            return self.of_file(folder)
        files = sorted(p for p in folder.rglob("*.safetensors") if p.is_file())
        if not files and (folder / "studio_model.json").is_file():
            files = [folder / "studio_model.json"]  # a Studio format with no weights: its manifest is the model
        if not files:
            return ""
        digests = [(f.relative_to(folder).as_posix(), self.of_file(f)) for f in files]
        if len(digests) == 1:
            return digests[0][1]
        lines = "".join(f"{name}  {digest}\n" for name, digest in digests)
        return hashlib.sha256(lines.encode()).hexdigest()

    def of_file(self, path: Path) -> str:
        stat = path.stat()
        key = str(path.resolve())
        with self._lock:
            entry = self._entries.get(key)
        if entry and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
            return str(entry["sha256"])
        digest = file_sha256(path)
        with self._lock:
            self._entries[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
            self._save()
        return digest

    def _load(self) -> dict[str, dict]:
        if self._cache_file is None or not self._cache_file.is_file():
            return {}
        try:
            data = json.loads(self._cache_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log.warning("weight digest cache %s unreadable; hashing again", self._cache_file)
            return {}
        return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}

    def _save(self) -> None:
        if self._cache_file is None:
            return
        try:
            self._cache_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self._cache_file, json.dumps(self._entries), prefix=".digests-")
        except OSError:
            log.warning("could not save the weight digest cache", exc_info=True)

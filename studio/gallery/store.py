"""The gallery on disk: output files, a JSON sidecar each, and a SQLite index to search them.

The sidecar is the source of truth; the index is a cache that ``rebuild`` recreates from the
sidecars (or from the record embedded in a file whose sidecar is gone). Every save is
crash-safe: the file is written to a temporary name, synced and renamed; then the sidecar
the same way; then the index row in one transaction. A crash leaves no item or a whole one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.errors import StudioError
from studio.core.outputs import GeneratedOutput
from studio.core.provenance import ProvenanceRecord
from studio.gallery.metadata import encode, read_embedded_record

log = logging.getLogger(__name__)

INDEX_SCHEMA_VERSION = 1
_TMP_PREFIX = ".partial-"


@dataclass(frozen=True)
class GalleryItem:
    id: str
    kind: str
    path: Path
    record: ProvenanceRecord

    @property
    def sidecar(self) -> Path:
        return self.path.with_name(self.id + ".json")

    def to_dict(self) -> dict[str, Any]:
        """The summary the CLI prints with ``--json``."""
        return {
            "id": self.id,
            "kind": self.kind,
            "path": str(self.path),
            "seed": self.record.seed,
            "prompt": self.record.prompt,
            "model": self.record.model.get("id", ""),
            "created_at": self.record.created_at,
            "sha256": self.record.output.get("sha256", ""),
        }


class GalleryStore:
    """Saves outputs and finds them again. Safe to use from several threads."""

    def __init__(self, root: Path, *, embed_prompts: Callable[[], bool] = lambda: True) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.index_path = self.root / "index.sqlite3"
        self._embed_prompts = embed_prompts
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        with self._transaction() as db:
            _create_schema(db)

    # -- saving -------------------------------------------------------------

    def save(self, output: GeneratedOutput, record: ProvenanceRecord) -> GalleryItem:
        """Write one output with its metadata and sidecar, and index it."""
        folder = self.root / record.created_at[:10]
        encoded = encode(output, record, embed_prompt=self._embed_prompts())
        final = folder / f"{record.id}{encoded.suffix}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _atomic_write(final, encoded.write)
            digest, size = _sha256_of(final)
            full = ProvenanceRecord.from_dict(
                {
                    **record.to_dict(),
                    "output": {
                        **record.output,
                        "file": final.name,
                        "mime": encoded.mime,
                        "sha256": digest,
                        "bytes": size,
                        **encoded.facts,
                    },
                }
            )
            sidecar_text = json.dumps(full.to_dict(), indent=2, ensure_ascii=False, sort_keys=True)
            _atomic_write(final.with_name(record.id + ".json"), lambda p: p.write_text(sidecar_text, "utf-8"))
        except OSError as exc:
            raise StudioError(_describe_write_error(exc, folder)) from exc
        item = GalleryItem(record.id, record.kind, final, full)
        with self._transaction() as db:
            _insert(db, item, self.root)
        return item

    # -- reading ------------------------------------------------------------

    def get(self, item_id: str) -> GalleryItem | None:
        row = (
            self._db()
            .execute("SELECT id, kind, path, record FROM items WHERE id = ? AND deleted_at IS NULL", (item_id,))
            .fetchone()
        )
        return self._item(row) if row else None

    def list(self, kind: str | None = None, search: str | None = None, limit: int | None = None) -> list[GalleryItem]:
        """Items newest first, of one kind or all, matching ``search`` words when given."""
        sql = "SELECT items.id, kind, path, record FROM items"
        where = ["deleted_at IS NULL"]
        args: list[Any] = []
        if search and search.strip():
            sql += " JOIN items_fts ON items_fts.id = items.id"
            where.append("items_fts MATCH ?")
            args.append(_fts_query(search))
        if kind:
            where.append("kind = ?")
            args.append(kind)
        sql += " WHERE " + " AND ".join(where) + " ORDER BY items.id DESC"
        if limit:
            sql += " LIMIT ?"
            args.append(int(limit))
        return [self._item(row) for row in self._db().execute(sql, args)]

    def count(self) -> int:
        return self._db().execute("SELECT COUNT(*) FROM items WHERE deleted_at IS NULL").fetchone()[0]

    def _item(self, row: tuple[str, str, str, str]) -> GalleryItem:
        item_id, kind, rel_path, record_json = row
        return GalleryItem(item_id, kind, self.root / rel_path, ProvenanceRecord.from_dict(json.loads(record_json)))

    # -- repair -------------------------------------------------------------

    def rebuild(self) -> int:
        """Recreate the index from the sidecars (or embedded records); returns the item count."""
        items: dict[str, GalleryItem] = {}
        for path in sorted(self.root.rglob("*")):
            if not path.is_file() or path.name.startswith(".") or path.name == self.index_path.name:
                if path.name.startswith(_TMP_PREFIX):
                    path.unlink(missing_ok=True)  # a save that never finished
                continue
            if path.suffix == ".json" or path.parent == self.root:
                continue
            item = self._recover(path)
            if item is not None:
                items[item.id] = item
        with self._transaction() as db:
            db.execute("DELETE FROM items")
            db.execute("DELETE FROM items_fts")
            for item in items.values():
                _insert(db, item, self.root)
        return len(items)

    def _recover(self, path: Path) -> GalleryItem | None:
        sidecar = path.with_suffix(".json")
        data: Any = None
        if sidecar.exists():
            try:
                data = json.loads(sidecar.read_text("utf-8"))
            except (OSError, ValueError) as exc:
                log.warning("unreadable sidecar %s: %s", sidecar, exc)
        if data is None:
            data = read_embedded_record(path)
        try:
            record = ProvenanceRecord.from_dict(data)
        except ValueError as exc:
            log.warning("skipping %s: %s", path, exc)
            return None
        if record.id != path.stem:
            log.warning("skipping %s: its record names item %s", path, record.id)
            return None
        return GalleryItem(record.id, record.kind, path, record)

    # -- plumbing -----------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            # check_same_thread=False only so close() can close every thread's connection at shutdown.
            db = sqlite3.connect(self.index_path, timeout=30, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
            with self._connections_lock:
                self._connections.append(db)
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        """Close every thread's connection (call once no other thread uses the store)."""
        with self._connections_lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()


def _create_schema(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE IF NOT EXISTS items (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            created_at TEXT NOT NULL,
            path TEXT NOT NULL,
            prompt TEXT NOT NULL DEFAULT '',
            model TEXT NOT NULL DEFAULT '',
            seed INTEGER,
            sha256 TEXT NOT NULL DEFAULT '',
            record TEXT NOT NULL,
            deleted_at TEXT
        )"""
    )
    db.execute("CREATE INDEX IF NOT EXISTS items_kind ON items (kind, id)")
    db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS items_fts USING fts5(id UNINDEXED, prompt, model)")
    db.execute(f"PRAGMA user_version = {INDEX_SCHEMA_VERSION}")


def _insert(db: sqlite3.Connection, item: GalleryItem, root: Path) -> None:
    record = item.record
    model_words = " ".join(str(record.model.get(k, "")) for k in ("id", "name", "family"))
    db.execute(
        "INSERT OR REPLACE INTO items (id, kind, created_at, path, prompt, model, seed, sha256, record)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            item.id,
            item.kind,
            record.created_at,
            str(item.path.relative_to(root)),
            record.prompt,
            str(record.model.get("id", "")),
            record.seed,
            record.output.get("sha256", ""),
            json.dumps(record.to_dict(), ensure_ascii=False),
        ),
    )
    db.execute("DELETE FROM items_fts WHERE id = ?", (item.id,))
    db.execute("INSERT INTO items_fts (id, prompt, model) VALUES (?, ?, ?)", (item.id, record.prompt, model_words))


def _fts_query(text: str) -> str:
    """Each word as a quoted prefix term, so user text can never be FTS5 syntax."""
    words = [w.replace('"', '""') for w in text.split()]
    return " ".join(f'"{w}"*' for w in words if w)


def _atomic_write(final: Path, write: Callable[[Path], None]) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=final.suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(final.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not possible on every platform; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _sha256_of(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _describe_write_error(exc: OSError, folder: Path) -> str:
    import errno

    if exc.errno == errno.ENOSPC:
        return f"the disk is full: could not save into {folder}. Free some space and try again."
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write into {folder}: permission denied or read-only. Choose another data folder."
    return f"could not save into {folder}: {exc.strerror or exc}"

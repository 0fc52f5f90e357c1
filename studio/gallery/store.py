"""The gallery on disk: output files, a JSON sidecar each, and a SQLite index to search them.

The sidecar is the source of truth: the provenance record plus the user's annotations
(favourite, tags) under ``annotations``. The index is a cache that ``rebuild`` recreates from the
sidecars (or from the record embedded in a file whose sidecar is gone). Every save is
crash-safe: the file is written to a temporary name (metadata embedded, then C2PA-signed),
synced and renamed; then the sidecar the same way; then the index row in one transaction. A
crash leaves no item or a whole one. Deleting moves an item into ``trash/``, from where
``restore`` brings it back until ``empty_trash``.
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.errors import StudioError
from studio.core.files import atomic_write, file_sha256_and_size, fsync_folder
from studio.core.media_types import ATTACHMENT_MIME, KIND_BY_SUFFIX, MIME_TYPES, SIGNABLE_MIME
from studio.core.outputs import GeneratedOutput
from studio.core.provenance import AI_TRAINING_CHOICES, ProvenanceRecord, new_item_id, utc_now_iso
from studio.gallery.content import output_digest, read_text_body
from studio.gallery.credentials import ContentCredentials
from studio.gallery.foreign import read_foreign_metadata
from studio.gallery.metadata import encode, marking_for, read_embedded_record

log = logging.getLogger(__name__)

INDEX_SCHEMA_VERSION = 3
_TMP_PREFIX = ".partial-"
TRASH = "trash"


@dataclass(frozen=True)
class GalleryItem:
    id: str
    kind: str
    path: Path
    record: ProvenanceRecord
    favourite: bool = False
    tags: tuple[str, ...] = ()

    @property
    def sidecar(self) -> Path:
        return self.path.with_name(self.id + ".json")

    @property
    def attachments(self) -> list[Path]:
        """Companion files saved beside the output (a melody's MIDI file), from the record."""
        listed = self.record.output.get("attachments")
        if not isinstance(listed, list):
            return []
        names = [str(a.get("file", "")) for a in listed if isinstance(a, dict)]
        return [self.path.with_name(n) for n in names if n and Path(n).name == n and n.startswith(self.id)]

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
            "favourite": self.favourite,
            "tags": list(self.tags),
        }


class GalleryStore:
    """Saves outputs and finds them again. Safe to use from several threads."""

    def __init__(
        self,
        root: Path,
        *,
        embed_prompts: Callable[[], bool] = lambda: True,
        sign_outputs: Callable[[], bool] = lambda: False,
        credentials: ContentCredentials | None = None,
        ai_training: Callable[[], str] = lambda: "not_stated",
    ) -> None:
        self.root = Path(root)
        self._ai_training = ai_training
        self.root.mkdir(parents=True, exist_ok=True)
        self.index_path = self.root / "index.sqlite3"
        self._embed_prompts = embed_prompts
        self._sign_outputs = sign_outputs
        self.credentials = credentials
        self._local = threading.local()
        self._connections: builtins.list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        with self._transaction() as db:
            outdated = _create_schema(db)
        if outdated:
            log.info("gallery index is from an older version of Studio: rebuilding it from the sidecars")
            self.rebuild()

    # -- saving -------------------------------------------------------------

    def save(
        self, output: GeneratedOutput, record: ProvenanceRecord, *, parent_file: Path | None = None
    ) -> GalleryItem:
        """Write one output with its metadata and sidecar, and index it.

        ``parent_file`` is the source an edit was made from (``record.derived_from`` says how): it
        becomes the ``parentOf`` ingredient of the output's content credentials, its own manifest
        travelling along."""
        folder = self.root / record.created_at[:10]
        # Companion files are listed (with their hashes) before the output is encoded, so the
        # record embedded in the file names them too: an exported copy can bring its MIDI along.
        attachments = [
            {
                "file": f"{record.id}{suffix}",
                "mime": ATTACHMENT_MIME.get(suffix, "application/octet-stream"),
                "sha256": hashlib.sha256(data).hexdigest(),
                "bytes": len(data),
            }
            for suffix, data in output.attachments.items()
        ]
        if attachments:
            record = dataclasses.replace(record, output={**record.output, "attachments": attachments})
        if not record.ai_training:
            chosen = self._ai_training()
            record = dataclasses.replace(record, ai_training=chosen if chosen in AI_TRAINING_CHOICES else "not_stated")
        # What the file will show (pixels, samples, text), hashed: embedded and signed with the record, so
        # a copy re-encoded elsewhere, or regenerated, can be compared by content (gallery/content.py).
        record = dataclasses.replace(record, output={**record.output, "content_sha256": output_digest(output)})
        encoded = encode(output, record, embed_prompt=self._embed_prompts())
        final = folder / f"{record.id}{encoded.suffix}"
        credentials = "none"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write = encoded.write
            if self._should_sign(final):
                write, credentials = self._signed(encoded.write, record, parent_file), "c2pa"
            try:
                atomic_write(final, write, prefix=_TMP_PREFIX)
            except SigningFailed as exc:
                log.warning("content credentials could not be added to %s: %s", final.name, exc.__cause__)
                credentials = f"none (signing failed: {str(exc.__cause__)[:200]})"
                atomic_write(final, encoded.write, prefix=_TMP_PREFIX)
            for suffix, data in output.attachments.items():
                atomic_write(final.with_suffix(suffix), _bytes_writer(data), prefix=_TMP_PREFIX)
            digest, size = file_sha256_and_size(final)
            full = ProvenanceRecord.from_dict(
                {
                    **record.to_dict(),
                    "output": {
                        **record.output,
                        "file": final.name,
                        "mime": encoded.mime,
                        "sha256": digest,
                        "bytes": size,
                        "content_credentials": credentials,
                        **encoded.facts,
                        **({"attachments": attachments} if attachments else {}),
                    },
                }
            )
            item = GalleryItem(record.id, record.kind, final, full)
            _write_sidecar(item)
        except OSError as exc:
            raise StudioError(_describe_write_error(exc, folder)) from exc
        with self._transaction() as db:
            _insert(db, item, self.root)
        return item

    def _should_sign(self, final: Path) -> bool:
        return self.credentials is not None and self._sign_outputs() and final.suffix in SIGNABLE_MIME

    def _signed(
        self, write_plain: Callable[[Path], None], record: ProvenanceRecord, parent_file: Path | None = None
    ) -> Callable[[Path], None]:
        """A writer that embeds the plain metadata first, then signs: a tag added later would break it."""
        credentials = self.credentials
        assert credentials is not None
        embedded = marking_for(record, embed_prompt=self._embed_prompts()).record or {}
        operation = (record.derived_from or {}).get("operation")
        action = str(operation.get("action", "c2pa.edited")) if isinstance(operation, dict) else "c2pa.edited"
        # A parent the signer cannot read as media (gone, or a format C2PA does not carry) is named in
        # the record only; the output is then signed as created from it.
        if parent_file is not None and (not parent_file.is_file() or parent_file.suffix.lower() not in SIGNABLE_MIME):
            parent_file = None

        def write(path: Path) -> None:
            plain = path.with_name(_TMP_PREFIX + "plain-" + path.name.removeprefix(_TMP_PREFIX))
            try:
                write_plain(plain)
                try:
                    if parent_file is not None:
                        credentials.sign(plain, path, embedded, parent=parent_file, action=action)
                    else:
                        credentials.sign(plain, path, embedded)
                except Exception as exc:  # c2pa raises its own types; the output must not be lost
                    raise SigningFailed() from exc
            finally:
                plain.unlink(missing_ok=True)

        return write

    # -- importing ------------------------------------------------------------

    def import_file(self, source: Path) -> GalleryItem:
        """Copy a file into the gallery. A Studio file keeps its record (and id) when its content
        still matches it; any other file gets a new record from what it states (A1111, ComfyUI…)."""
        source = Path(source)
        suffix = source.suffix.lower()
        kind = KIND_BY_SUFFIX.get(suffix)
        if kind is None or not source.is_file():
            raise StudioError(f"cannot import {source.name}: not an image, audio or text file Studio reads")
        digest, size = file_sha256_and_size(source)
        record = self._own_record(source, digest)
        if record is not None and self.get(record.id, include_deleted=True) is not None:
            existing = self.get(record.id, include_deleted=True)
            assert existing is not None
            return existing
        if record is None:
            record = _record_for_foreign(source, kind, suffix)
        final = self.root / record.created_at[:10] / f"{record.id}{'.jpg' if suffix == '.jpeg' else suffix}"
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(final, lambda p: shutil.copyfile(source, p), prefix=_TMP_PREFIX)
            output = {**record.output, "file": final.name, "mime": MIME_TYPES[suffix], "sha256": digest, "bytes": size}
            companions = _import_companions(source, final, record.output.get("attachments"))
            if companions:
                output["attachments"] = companions
            else:
                output.pop("attachments", None)
            record = ProvenanceRecord.from_dict({**record.to_dict(), "output": {**output, **_facts(final, kind)}})
            item = GalleryItem(record.id, record.kind, final, record)
            _write_sidecar(item)
        except OSError as exc:
            raise StudioError(_describe_write_error(exc, final.parent)) from exc
        with self._transaction() as db:
            _insert(db, item, self.root)
        return item

    def _own_record(self, source: Path, digest: str) -> ProvenanceRecord | None:
        data: Any = None
        sidecar = source.with_suffix(".json")
        if sidecar.is_file() and sidecar.stat().st_size < 16 * 1024 * 1024:
            try:
                data = json.loads(sidecar.read_text("utf-8"))
            except (OSError, ValueError):
                data = None
        if data is None:
            data = read_embedded_record(source)
        try:
            record = ProvenanceRecord.from_dict(data)
        except ValueError:
            return None
        stated = record.output.get("sha256")
        if stated and stated != digest:
            log.info("%s was changed after Studio saved it: importing it as a new item", source.name)
            return None
        if not re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", record.id):
            return None  # an id that is not ours could not name a file safely
        return record

    # -- annotations, trash --------------------------------------------------

    def annotate(
        self, item_id: str, *, favourite: bool | None = None, tags: builtins.list[str] | None = None
    ) -> GalleryItem:
        """Mark an item as a favourite or set its tags; kept in its sidecar, so rebuild keeps them."""
        item = self.get(item_id, include_deleted=True)
        if item is None:
            raise StudioError(f"no gallery item {item_id}")
        clean_tags = tuple(dict.fromkeys(t.strip() for t in (tags if tags is not None else item.tags) if t.strip()))
        updated = dataclasses.replace(
            item, favourite=item.favourite if favourite is None else bool(favourite), tags=clean_tags
        )
        try:
            _write_sidecar(updated)
        except OSError as exc:
            raise StudioError(_describe_write_error(exc, item.path.parent)) from exc
        with self._transaction() as db:
            _insert(db, updated, self.root, deleted=self._is_deleted(db, item_id))
        return updated

    def set_ai_training(self, item_id: str, choice: str) -> GalleryItem:
        """This item's own answer to "may it train AI?": the file is written again with the new
        marking (XMP PLUS DataMining, the C2PA assertion, re-signed) — the same pixels, samples or
        text, so its content digest stays; its file hash changes and the record says so."""
        if choice not in AI_TRAINING_CHOICES:
            raise StudioError(f"AI training must be one of {', '.join(AI_TRAINING_CHOICES)}, not {choice!r}")
        item = self.get(item_id, include_deleted=True)
        if item is None:
            raise StudioError(f"no gallery item {item_id}")
        suffix = item.path.suffix.lower()
        if suffix not in (".png", ".flac", ".wav", ".md"):
            raise StudioError(
                f"{item.path.name} is a {suffix} file: rewriting it would re-encode it with loss. Export it "
                "after changing the setting instead."
            )
        record = dataclasses.replace(item.record, ai_training=choice)
        # What the file embeds cannot state the file's own hash: as at saving, the record without it.
        saved_facts = ("file", "sha256", "bytes", "content_credentials")
        unsaved = {k: v for k, v in record.output.items() if k not in saved_facts}
        embedded = dataclasses.replace(record, output=unsaved)
        output = _decoded_output(item)
        encoded = encode(output, embedded, embed_prompt=self._embed_prompts())
        write = encoded.write
        credentials = "none"
        if self._should_sign(item.path):
            write, credentials = self._signed(encoded.write, embedded), "c2pa"
        try:
            try:
                atomic_write(item.path, write, prefix=_TMP_PREFIX)
            except SigningFailed as exc:
                credentials = f"none (signing failed: {str(exc.__cause__)[:200]})"
                atomic_write(item.path, encoded.write, prefix=_TMP_PREFIX)
            digest, size = file_sha256_and_size(item.path)
            full = dataclasses.replace(
                record,
                output={**record.output, "sha256": digest, "bytes": size, "content_credentials": credentials},
            )
            updated = dataclasses.replace(item, record=full)
            _write_sidecar(updated)
        except OSError as exc:
            raise StudioError(_describe_write_error(exc, item.path.parent)) from exc
        with self._transaction() as db:
            _insert(db, updated, self.root, deleted=self._is_deleted(db, item_id))
        return updated

    def delete(self, item_ids: builtins.list[str]) -> builtins.list[str]:
        """Move items to the trash; returns the ids moved (for undo)."""
        moved = []
        for item_id in item_ids:
            item = self.get(item_id)
            if item is None:
                continue
            target = self.root / TRASH / item.path.name
            try:
                _move_item(item, target)
            except OSError as exc:
                raise StudioError(_describe_write_error(exc, target.parent)) from exc
            with self._transaction() as db:
                db.execute(
                    "UPDATE items SET deleted_at = ?, path = ? WHERE id = ?",
                    (utc_now_iso(), str(target.relative_to(self.root)), item_id),
                )
            moved.append(item_id)
        return moved

    def restore(self, item_ids: builtins.list[str]) -> builtins.list[str]:
        """Bring items back from the trash (undo a delete)."""
        restored = []
        for item_id in item_ids:
            item = self.get(item_id, include_deleted=True)
            if item is None or item.path.parent != self.root / TRASH:
                continue
            target = self.root / item.record.created_at[:10] / item.path.name
            try:
                _move_item(item, target)
            except OSError as exc:
                raise StudioError(_describe_write_error(exc, target.parent)) from exc
            with self._transaction() as db:
                db.execute(
                    "UPDATE items SET deleted_at = NULL, path = ? WHERE id = ?",
                    (str(target.relative_to(self.root)), item_id),
                )
            restored.append(item_id)
        return restored

    def trash(self) -> builtins.list[GalleryItem]:
        rows = self._db().execute(f"SELECT {_COLUMNS} FROM items WHERE deleted_at IS NOT NULL ORDER BY deleted_at DESC")
        return [self._item(row) for row in rows]

    def empty_trash(self) -> int:
        """Delete the trash for good; returns how many items went."""
        gone = self.trash()
        for item in gone:
            for companion in item.attachments:
                companion.unlink(missing_ok=True)
            item.path.unlink(missing_ok=True)
            item.sidecar.unlink(missing_ok=True)
        with self._transaction() as db:
            for item in gone:
                _delete_row(db, item.id)
        return len(gone)

    def _is_deleted(self, db: sqlite3.Connection, item_id: str) -> bool:
        row = db.execute("SELECT deleted_at FROM items WHERE id = ?", (item_id,)).fetchone()
        return bool(row and row[0])

    # -- reading ------------------------------------------------------------

    def source_of(self, path: str | Path, item_id: str | None = None) -> tuple[dict[str, Any], Path | None]:
        """What an edit's record says of its source, and the source file to sign it with.

        The source is a gallery item when ``item_id`` names one, or when the file is one (by its
        path in the gallery, else by its sha256: a copy dragged back in is still that item); then
        the record names the item, its hashes and whether it was generated. Any other file (a
        dropped photo) is named by file name and sha256, and counts as not generated, so the edit
        is marked a composite with AI-made parts rather than wholly AI-made."""
        source = Path(path)
        item = self.get(item_id) if item_id else None
        digest = ""
        if item is None and source.is_file():
            try:
                relative = str(source.resolve().relative_to(self.root.resolve()))
            except ValueError:
                relative = ""
            row = None
            if relative:
                row = (
                    self._db()
                    .execute(f"SELECT {_COLUMNS} FROM items WHERE path = ? AND deleted_at IS NULL", (relative,))
                    .fetchone()
                )
            if row is None:
                digest = file_sha256_and_size(source)[0]
                row = (
                    self._db()
                    .execute(
                        f"SELECT {_COLUMNS} FROM items WHERE sha256 = ? AND deleted_at IS NULL ORDER BY id LIMIT 1",
                        (digest,),
                    )
                    .fetchone()
                )
            item = self._item(row) if row else None
        if item is not None:
            record = item.record
            imported_plain = bool(record.runtime.get("imported_from")) and not (
                record.model.get("name") or record.model.get("id")
            )
            described: dict[str, Any] = {
                "id": item.id,
                "sha256": str(record.output.get("sha256", "")),
                "content_sha256": str(record.output.get("content_sha256", "")),
                "file": item.path.name,
                "generated": not imported_plain,
            }
            return described, item.path if item.path.is_file() else (source if source.is_file() else None)
        if not source.is_file():
            return {"file": source.name, "generated": False}, None
        return {"file": source.name, "sha256": digest or file_sha256_and_size(source)[0], "generated": False}, source

    def get(self, item_id: str, *, include_deleted: bool = False) -> GalleryItem | None:
        where = "id = ?" if include_deleted else "id = ? AND deleted_at IS NULL"
        row = self._db().execute(f"SELECT {_COLUMNS} FROM items WHERE {where}", (item_id,)).fetchone()
        return self._item(row) if row else None

    # This method shadows the builtin inside the class body: annotations here write builtins.list.
    def list(
        self,
        kind: str | None = None,
        search: str | None = None,
        limit: int | None = None,
        *,
        offset: int = 0,
        model: str | None = None,
        favourites: bool = False,
        since: str | None = None,
    ) -> builtins.list[GalleryItem]:
        """Items newest first: of one kind or all, matching ``search`` words (prompt, model, tags),
        of one model id, favourites only, or made on or after the date ``since`` (YYYY-MM-DD)."""
        sql, args = self._query(f"SELECT {_COLUMNS} FROM items", kind, search, model, favourites, since)
        sql += " ORDER BY items.id DESC"
        if limit:
            sql += " LIMIT ? OFFSET ?"
            args += [int(limit), int(offset)]
        return [self._item(row) for row in self._db().execute(sql, args)]

    def ids(
        self,
        kind: str | None = None,
        search: str | None = None,
        *,
        model: str | None = None,
        favourites: bool = False,
        since: str | None = None,
    ) -> builtins.list[str]:
        """Only the ids, newest first: what a virtual list needs to know its length and order."""
        sql, args = self._query("SELECT items.id FROM items", kind, search, model, favourites, since)
        return [row[0] for row in self._db().execute(sql + " ORDER BY items.id DESC", args)]

    def get_many(self, item_ids: builtins.list[str]) -> dict[str, GalleryItem]:
        if not item_ids:
            return {}
        marks = ",".join("?" * len(item_ids))
        rows = self._db().execute(f"SELECT {_COLUMNS} FROM items WHERE id IN ({marks})", item_ids)
        return {row[0]: self._item(row) for row in rows}

    def batch_keys(self, plan: str) -> dict[str, str]:
        """The job keys of a batch plan already in the gallery (not in the trash), each with its item
        id: what ``studio batch --resume`` skips."""
        rows = self._db().execute(
            "SELECT json_extract(record, '$.runtime.batch.key'), id FROM items"
            " WHERE deleted_at IS NULL AND json_extract(record, '$.runtime.batch.plan') = ?",
            (plan,),
        )
        return {str(key): str(item_id) for key, item_id in rows if key}

    def models(self) -> builtins.list[str]:
        rows = self._db().execute("SELECT DISTINCT model FROM items WHERE deleted_at IS NULL AND model != ''")
        return sorted(row[0] for row in rows)

    def _query(
        self,
        select: str,
        kind: str | None,
        search: str | None,
        model: str | None,
        favourites: bool,
        since: str | None,
    ) -> tuple[str, builtins.list[Any]]:
        sql = select
        where = ["items.deleted_at IS NULL"]
        args: builtins.list[Any] = []
        if search and search.strip():
            sql += " JOIN items_fts ON items_fts.rowid = items.rowid"
            where.append("items_fts MATCH ?")
            args.append(_fts_query(search))
        if kind:
            where.append("items.kind = ?")
            args.append(kind)
        if model:
            where.append("items.model = ?")
            args.append(model)
        if favourites:
            where.append("items.favourite = 1")
        if since:
            where.append("items.created_at >= ?")
            args.append(since)
        return sql + " WHERE " + " AND ".join(where), args

    def count(self) -> int:
        return int(self._db().execute("SELECT COUNT(*) FROM items WHERE deleted_at IS NULL").fetchone()[0])

    def _item(self, row: tuple[Any, ...]) -> GalleryItem:
        item_id, kind, rel_path, record_json, favourite, tags = row
        record = ProvenanceRecord.from_dict(json.loads(record_json))
        tag_list = tuple(t for t in str(tags or "").split("\n") if t)
        return GalleryItem(item_id, kind, self.root / rel_path, record, bool(favourite), tag_list)

    # -- repair -------------------------------------------------------------

    def rebuild(self) -> int:
        """Recreate the index from the sidecars (or embedded records); returns the item count."""
        items: dict[str, GalleryItem] = {}
        for path in sorted(self.root.rglob("*")):
            if not path.is_file() or path.name.startswith(".") or path.name == self.index_path.name:
                if path.name.startswith(_TMP_PREFIX):
                    path.unlink(missing_ok=True)  # a save that never finished
                continue
            if path.suffix in (".json", *ATTACHMENT_MIME) or path.parent == self.root:
                continue  # sidecars and companion files belong to the item they sit beside
            if path.name.startswith("index.sqlite3"):
                continue
            item = self._recover(path)
            if item is not None:
                items[item.id] = item
        with self._transaction() as db:
            db.execute("DELETE FROM items")
            db.execute("DELETE FROM items_fts")
            for item in items.values():
                _insert(db, item, self.root, deleted=item.path.parent == self.root / TRASH)
        return sum(1 for item in items.values() if item.path.parent != self.root / TRASH)

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
        notes = data.get("annotations") if isinstance(data, dict) else None
        notes = notes if isinstance(notes, dict) else {}
        tags = (
            tuple(str(t) for t in notes.get("tags", []) if isinstance(t, str))
            if isinstance(notes.get("tags"), list)
            else ()
        )
        return GalleryItem(record.id, record.kind, path, record, bool(notes.get("favourite")), tags)

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


_COLUMNS = "items.id, items.kind, items.path, items.record, items.favourite, items.tags"


def _create_schema(db: sqlite3.Connection) -> bool:
    """Create the tables; True when an older index was dropped and must be rebuilt."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    outdated = 0 < version < INDEX_SCHEMA_VERSION
    if outdated:
        db.execute("DROP TABLE IF EXISTS items")
        db.execute("DROP TABLE IF EXISTS items_fts")
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
            favourite INTEGER NOT NULL DEFAULT 0,
            tags TEXT NOT NULL DEFAULT '',
            deleted_at TEXT
        )"""
    )
    db.execute("CREATE INDEX IF NOT EXISTS items_kind ON items (kind, id)")
    db.execute("CREATE INDEX IF NOT EXISTS items_model ON items (model, id)")
    # The search table shares the items' rowids: updating or deleting one item's words is a lookup,
    # not a scan (keyed by the text id, every save scanned the whole table).
    db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS items_fts USING fts5(prompt, model, tags)")
    db.execute(f"PRAGMA user_version = {INDEX_SCHEMA_VERSION}")
    return outdated


def _insert(db: sqlite3.Connection, item: GalleryItem, root: Path, *, deleted: bool = False) -> None:
    record = item.record
    model_words = " ".join(str(record.model.get(k, "")) for k in ("id", "name", "family"))
    _delete_row(db, item.id)
    cursor = db.execute(
        "INSERT INTO items (id, kind, created_at, path, prompt, model, seed, sha256, record,"
        " favourite, tags, deleted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            int(item.favourite),
            "\n".join(item.tags),
            utc_now_iso() if deleted else None,
        ),
    )
    db.execute(
        "INSERT INTO items_fts (rowid, prompt, model, tags) VALUES (?, ?, ?, ?)",
        (cursor.lastrowid, record.prompt, model_words, " ".join(item.tags)),
    )


def _delete_row(db: sqlite3.Connection, item_id: str) -> None:
    row = db.execute("SELECT rowid FROM items WHERE id = ?", (item_id,)).fetchone()
    if row is not None:
        db.execute("DELETE FROM items_fts WHERE rowid = ?", (row[0],))
        db.execute("DELETE FROM items WHERE rowid = ?", (row[0],))


def _write_sidecar(item: GalleryItem) -> None:
    data = item.record.to_dict()
    if item.favourite or item.tags:
        data["annotations"] = {"favourite": item.favourite, "tags": list(item.tags)}
    text = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True)
    atomic_write(item.sidecar, lambda p: p.write_text(text, "utf-8"), prefix=_TMP_PREFIX)


def _import_companions(source: Path, final: Path, listed: Any) -> list[dict[str, Any]]:
    """Copy the companion files a record lists (a melody's MIDI) when they sit beside the imported
    file — named like it, as export writes them — and still match their hashes."""
    copied = []
    for entry in listed if isinstance(listed, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            continue
        suffix = Path(entry["file"]).suffix.lower()
        companion = source.with_suffix(suffix)
        if suffix not in ATTACHMENT_MIME or not companion.is_file():
            continue
        if file_sha256_and_size(companion)[0] != entry.get("sha256"):
            continue
        target = final.with_suffix(suffix)
        atomic_write(target, _copier(companion), prefix=_TMP_PREFIX)
        copied.append({**entry, "file": target.name})
    return copied


def _move_item(item: GalleryItem, target: Path) -> None:
    """Move the file and its sidecar; the file last in, first out, so a crash leaves it findable."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for companion in item.attachments:
        if companion.exists():
            os.replace(companion, target.with_name(companion.name))
    if item.sidecar.exists():
        os.replace(item.sidecar, target.with_name(item.id + ".json"))
    os.replace(item.path, target)
    fsync_folder(target.parent)


def _record_for_foreign(source: Path, kind: str, suffix: str) -> ProvenanceRecord:
    """A record for a file made elsewhere: what it states about itself, marked as imported. What
    sd-parsers read is mapped onto the request's fields (so Reuse settings works) and kept whole."""
    foreign = read_foreign_metadata(source) or {}
    settings = foreign.get("settings", {}) if isinstance(foreign.get("settings"), dict) else {}
    mapped = foreign.get("request") if isinstance(foreign.get("request"), dict) else None
    if mapped is not None:
        request: dict[str, Any] = {**mapped, "kind": kind}
    else:
        seed = str(settings.get("Seed") or settings.get("seed") or "")
        request = {"kind": kind, "prompt": str(foreign.get("prompt", ""))}
        if foreign.get("negative"):
            request["negative"] = str(foreign["negative"])
        if seed.isdigit():
            request["seed"] = int(seed)
    model_name = str(settings.get("Model") or settings.get("model") or "")
    model: dict[str, Any] = {"name": model_name} if model_name else {}
    if foreign.get("model_hash"):
        model["hash"] = str(foreign["model_hash"])  # the tool's short hash (A1111's first 10 hex digits)
    runtime: dict[str, Any] = {"imported_from": source.name, "stated_settings": settings}
    if foreign.get("reader"):
        runtime["read_by"] = foreign["reader"]
    if isinstance(foreign.get("stated"), dict):
        runtime["stated"] = foreign["stated"]
    return ProvenanceRecord(
        id=new_item_id(),
        kind=kind,
        created_at=utc_now_iso(),
        app={"name": str(foreign.get("tool") or "unknown")},
        model=model,
        request=request,
        runtime=runtime,
    )


def _decoded_output(item: GalleryItem) -> GeneratedOutput:
    """An item's content read back from its file, to write it again (lossless formats only)."""
    if item.kind == "text":
        return GeneratedOutput("text", read_text_body(item.path))
    if item.kind == "image":
        import numpy as np
        from PIL import Image

        with Image.open(item.path) as image:
            return GeneratedOutput("image", np.asarray(image.convert("RGB")))
    import soundfile

    samples, rate = soundfile.read(str(item.path), dtype="int16", always_2d=True)  # ints: written back exactly
    return GeneratedOutput("music", samples, {"sample_rate": rate})


def _facts(path: Path, kind: str) -> dict[str, Any]:
    try:
        if kind == "image":
            from PIL import Image

            with Image.open(path) as image:
                return {"width": image.width, "height": image.height}
        if kind == "music":
            import soundfile

            info = soundfile.info(str(path))
            return {"sample_rate": info.samplerate, "channels": info.channels, "duration_s": round(info.duration, 4)}
    except Exception:  # facts are a courtesy; an odd file still imports
        return {}
    return {}


class SigningFailed(Exception):
    """C2PA signing failed; the cause is chained. The output is then saved without credentials."""


def _fts_query(text: str) -> str:
    """Each word as a quoted prefix term, so user text can never be FTS5 syntax."""
    words = [w.replace('"', '""') for w in text.split()]
    return " ".join(f'"{w}"*' for w in words if w)


def _copier(source: Path) -> Callable[[Path], object]:
    return lambda target: shutil.copyfile(source, target)


def _bytes_writer(data: bytes) -> Callable[[Path], object]:
    return lambda target: target.write_bytes(data)


def _describe_write_error(exc: OSError, folder: Path) -> str:
    import errno

    if exc.errno == errno.ENOSPC:
        return f"the disk is full: could not save into {folder}. Free some space and try again."
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write into {folder}: permission denied or read-only. Choose another data folder."
    return f"could not save into {folder}: {exc.strerror or exc}"

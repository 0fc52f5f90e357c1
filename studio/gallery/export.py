"""Exporting gallery items: another format, with their metadata or stripped for sharing, under
file names made from a pattern and safe on every operating system."""

from __future__ import annotations

import re
import shutil
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studio.core.errors import StudioError
from studio.core.media_types import EXPORT_FORMATS, MIME_TYPES, SIGNABLE_MIME
from studio.core.provenance import ProvenanceRecord, new_item_id, utc_now_iso
from studio.gallery.content import file_digest, read_text_body
from studio.gallery.credentials import ContentCredentials
from studio.gallery.metadata import Marking, marking_for, write_audio, write_image, write_text

if TYPE_CHECKING:
    from studio.gallery.store import GalleryItem

FORMATS = EXPORT_FORMATS  # the export dialog imports it from here
DEFAULT_PATTERN = "{date}_{prompt}_{seed}"
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{n}" for n in range(1, 10)), *(f"LPT{n}" for n in range(1, 10))}
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]+')
_MAX_NAME_BYTES = 255


@dataclass(frozen=True)
class ExportOptions:
    folder: Path
    suffix: str = ""  # "" keeps each item's own format
    with_metadata: bool = True
    pattern: str = DEFAULT_PATTERN
    sign: bool = True  # sign converted files again (with metadata only)


def safe_filename(stem: str, suffix: str = "") -> str:
    """A file name that cannot leave its folder or trip any OS: no separators, no ``..``, no control
    characters or NUL, no Windows device names or trailing dots, at most 255 bytes with ``suffix``."""
    text = unicodedata.normalize("NFC", stem)
    text = _UNSAFE.sub("_", text).strip(" .")
    text = re.sub(r"\.{2,}", "_", text)  # no "..", even where it is harmless
    text = re.sub(r"\s+", " ", text).strip(" .")
    text = re.sub(r"_+", "_", text)
    if not text or set(text) <= {".", "_", " "}:
        text = "untitled"
    if text.split(".")[0].upper() in _WINDOWS_RESERVED:
        text = "_" + text
    limit = _MAX_NAME_BYTES - len(suffix.encode("utf-8"))
    encoded = text.encode("utf-8")[:limit]
    text = encoded.decode("utf-8", "ignore").rstrip(" .") or "untitled"
    return text + suffix


def render_name(pattern: str, item: GalleryItem) -> str:
    """Fill ``{date}``, ``{time}``, ``{prompt}``, ``{seed}``, ``{model}``, ``{id}``, ``{kind}`` from an item."""
    record = item.record
    prompt = " ".join(record.prompt.split())[:80]
    values = {
        "date": record.created_at[:10],
        "time": record.created_at[11:19].replace(":", "-"),
        "prompt": prompt or record.kind,
        "seed": "" if record.seed is None else str(record.seed),
        "model": str(record.model.get("name") or record.model.get("id") or ""),
        "id": item.id,
        "kind": item.kind,
    }
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), pattern or DEFAULT_PATTERN)


def export_items(
    items: Iterable[GalleryItem], options: ExportOptions, credentials: ContentCredentials | None = None
) -> list[Path]:
    """Write each item into ``options.folder``; returns the files written. Nothing lands half-written."""
    folder = Path(options.folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StudioError(f"cannot create the export folder {folder}: {exc.strerror or exc}") from exc
    written: list[Path] = []
    for item in items:
        suffix = options.suffix or item.path.suffix.lower()
        if suffix not in FORMATS.get(item.kind, ()):
            raise StudioError(f"{item.kind} cannot be exported as {suffix}; choose {', '.join(FORMATS[item.kind])}")
        target = _unique(folder, safe_filename(render_name(options.pattern, item), suffix))
        temp = target.with_name(f".export-{target.name}")
        try:
            _write(item, temp, suffix, options, credentials)
            temp.replace(target)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise StudioError(f"could not export into {folder}: {exc.strerror or exc}") from exc
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        written.append(target)
        for companion in getattr(item, "attachments", []):  # a melody's MIDI file, named like its audio
            if companion.is_file():
                beside = target.with_suffix(companion.suffix)
                try:
                    shutil.copyfile(companion, beside)
                except OSError as exc:
                    raise StudioError(f"could not export into {folder}: {exc.strerror or exc}") from exc
                written.append(beside)
    return written


def _write(
    item: GalleryItem, dest: Path, suffix: str, options: ExportOptions, credentials: ContentCredentials | None
) -> None:
    if options.with_metadata and suffix == item.path.suffix.lower():
        shutil.copyfile(item.path, dest)  # the very file: its record, hash and credentials stay valid
        return
    strip = not options.with_metadata
    sign = options.with_metadata and options.sign and credentials is not None and suffix in SIGNABLE_MIME
    plain = dest.with_name(dest.name + ".plain" + suffix) if sign else dest
    try:
        if strip:
            _encode(item, plain, suffix, marking_for(item.record, strip=True))
            return
        # Another format is a derivative with a record of its own: made from the item (its id and
        # sha256), by which operation, and what the new file shows (its content digest, read back
        # from a first encoding: a lossy encoder decides the pixels or samples).
        derived = derivative_record(item, suffix, dest.name)
        _encode(item, plain, suffix, marking_for(derived))
        content = file_digest(plain)
        if content:
            derived = _with_output(derived, content_sha256=content)
            _encode(item, plain, suffix, marking_for(derived))
        if sign:
            assert credentials is not None
            credentials.sign(plain, dest, marking_for(derived).record or {}, parent=item.path)
    finally:
        if plain != dest:
            plain.unlink(missing_ok=True)


def derivative_record(item: GalleryItem, suffix: str, file_name: str) -> ProvenanceRecord:
    """The record of an exported copy in another format: parent, operation, the original's hashes."""
    record = item.record
    attachments = [
        {**entry, "file": Path(file_name).with_suffix(Path(str(entry.get("file", ""))).suffix).name}
        for entry in record.output.get("attachments", []) or []
        if isinstance(entry, dict) and isinstance(entry.get("file"), str)
    ]
    kept = ("width", "height", "sample_rate", "channels", "duration_s", "characters", "index")
    output: dict[str, Any] = {k: record.output[k] for k in kept if k in record.output}
    output["mime"] = MIME_TYPES.get(suffix, "application/octet-stream")
    if attachments:
        output["attachments"] = attachments
    return ProvenanceRecord(
        id=new_item_id(),
        kind=record.kind,
        created_at=utc_now_iso(),
        app=dict(record.app),
        model=dict(record.model),
        request=dict(record.request),
        runtime=dict(record.runtime),
        output=output,
        parent=item.id,
        derived_from={
            "id": item.id,
            "sha256": str(record.output.get("sha256", "")),
            "content_sha256": str(record.output.get("content_sha256", "")),
            "file": item.path.name,
            "operation": {
                "action": "c2pa.transcoded",
                "format": suffix.lstrip("."),
                "from_format": item.path.suffix.lower().lstrip("."),
                "metadata": "kept",
            },
        },
        ai_training=record.ai_training,
    )


def _with_output(record: ProvenanceRecord, **values: Any) -> ProvenanceRecord:
    return ProvenanceRecord.from_dict({**record.to_dict(), "output": {**record.output, **values}})


def _encode(item: GalleryItem, dest: Path, suffix: str, marking: Marking) -> None:
    if item.kind == "image":
        from PIL import Image

        with Image.open(item.path) as image:
            image.load()
            if marking.record is not None:
                record = ProvenanceRecord.from_dict(marking.record)
                marking = marking_for(record, image_size=image.size)
            write_image(image, dest, marking, suffix)
    elif item.kind == "music":
        import soundfile

        # 16-bit integers, not floats: libsndfile reads int16 / 32768 but writes floats × 32767, so a
        # float round trip would change every loud sample of a lossless copy.
        samples, rate = soundfile.read(item.path, dtype="int16", always_2d=True)
        write_audio(samples, rate, dest, marking, suffix)
    else:
        write_text(text_body(item.path), dest, marking, suffix)


def text_body(path: Path) -> str:
    """A Markdown output's text without its front matter."""
    return read_text_body(path)


def _unique(folder: Path, name: str) -> Path:
    target = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    counter = 2
    while target.exists():
        target = folder / safe_filename(f"{stem}-{counter}", suffix)
        counter += 1
    return target

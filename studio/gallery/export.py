"""Exporting gallery items: another format, with their metadata or stripped for sharing, under
file names made from a pattern and safe on every operating system."""

from __future__ import annotations

import re
import shutil
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from studio.core.errors import StudioError
from studio.gallery.credentials import SIGNABLE_MIME, ContentCredentials
from studio.gallery.metadata import marking_for, write_audio, write_image, write_text

FORMATS = {"image": (".png", ".jpg", ".webp"), "music": (".flac", ".wav", ".ogg", ".mp3"), "text": (".md", ".txt")}
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


def render_name(pattern: str, item) -> str:
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


def export_items(items: Iterable, options: ExportOptions, credentials: ContentCredentials | None = None) -> list[Path]:
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


def _write(item, dest: Path, suffix: str, options: ExportOptions, credentials: ContentCredentials | None) -> None:
    if options.with_metadata and suffix == item.path.suffix.lower():
        shutil.copyfile(item.path, dest)  # the very file: its record, hash and credentials stay valid
        return
    strip = not options.with_metadata
    marking = marking_for(item.record, strip=strip)
    sign = options.with_metadata and options.sign and credentials is not None and suffix in SIGNABLE_MIME
    plain = dest.with_name(dest.name + ".plain" + suffix) if sign else dest
    try:
        if item.kind == "image":
            from PIL import Image

            with Image.open(item.path) as image:
                image.load()
                marking = marking_for(item.record, strip=strip, image_size=image.size)
                write_image(image, plain, marking, suffix)
        elif item.kind == "music":
            import soundfile

            samples, rate = soundfile.read(item.path, dtype="float32", always_2d=True)
            write_audio(samples, rate, plain, marking, suffix)
        else:
            write_text(text_body(item.path), plain, marking, suffix)
        if sign:
            assert credentials is not None
            credentials.sign(plain, dest, marking.record or {})
    finally:
        if plain != dest:
            plain.unlink(missing_ok=True)


def text_body(path: Path) -> str:
    """A Markdown output's text without its front matter."""
    text = path.read_text(encoding="utf-8")
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end != -1:
            return text[end + 5 :].lstrip("\n")
    return text


def _unique(folder: Path, name: str) -> Path:
    target = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    counter = 2
    while target.exists():
        target = folder / safe_filename(f"{stem}-{counter}", suffix)
        counter += 1
    return target

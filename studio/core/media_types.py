"""Which file suffixes Studio reads and writes, their MIME types and kinds.

Declared once, here: the gallery saves, imports, exports and signs by these tables, and the
window takes dropped pictures by them. Plain Python, so every layer may import it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MediaType:
    suffix: str  # lower case, with the dot
    mime: str
    kind: str  # "image", "music" or "text": the kind of output it holds
    exported: bool = True  # Studio writes it on export; ".jpeg" is read (imported) but written as ".jpg"
    signable: bool = False  # C2PA can embed a manifest in it; OGG and text are covered by the sidecar only


MEDIA_TYPES: tuple[MediaType, ...] = (
    MediaType(".png", "image/png", "image", signable=True),
    MediaType(".jpg", "image/jpeg", "image", signable=True),
    MediaType(".jpeg", "image/jpeg", "image", exported=False, signable=True),
    MediaType(".webp", "image/webp", "image", signable=True),
    MediaType(".flac", "audio/flac", "music", signable=True),
    MediaType(".wav", "audio/wav", "music", signable=True),
    MediaType(".ogg", "audio/ogg", "music"),
    MediaType(".mp3", "audio/mpeg", "music", signable=True),
    MediaType(".md", "text/markdown", "text"),
    MediaType(".txt", "text/plain", "text"),
)

# The suffixes of every file Studio reads as an output (import, verify), with their MIME types.
MIME_TYPES: dict[str, str] = {t.suffix: t.mime for t in MEDIA_TYPES}
KIND_BY_SUFFIX: dict[str, str] = {t.suffix: t.kind for t in MEDIA_TYPES}
# What each kind can be exported as, in the order the export dialog offers them.
EXPORT_FORMATS: dict[str, tuple[str, ...]] = {
    kind: tuple(t.suffix for t in MEDIA_TYPES if t.kind == kind and t.exported)
    for kind in dict.fromkeys(t.kind for t in MEDIA_TYPES)
}
# Formats C2PA can embed a manifest in, with the MIME type c2pa is told.
SIGNABLE_MIME: dict[str, str] = {t.suffix: t.mime for t in MEDIA_TYPES if t.signable}
IMAGE_SUFFIXES: frozenset[str] = frozenset(t.suffix for t in MEDIA_TYPES if t.kind == "image")
# Companion files an output may carry (a melody's MIDI), saved beside it as ``<id><suffix>``.
# An edit's mask: a greyscale PNG named ``<id>.mask`` (one suffix: never taken for the item's own picture).
ATTACHMENT_MIME: dict[str, str] = {".mid": "audio/midi", ".mask": "image/png"}
# Pictures the image tab takes as a starting image: the gallery's, and others Pillow reads.
INPUT_IMAGE_SUFFIXES: frozenset[str] = IMAGE_SUFFIXES | {".bmp", ".tif", ".tiff", ".gif"}

"""Write outputs as files with their provenance embedded, and read it back from such files.

Every format is written with a maintained library — Pillow (PNG, JPEG, WebP), soundfile and
mutagen (FLAC, OGG, WAV, MP3) — or as plain text (Markdown front matter). Each keeps the full
record so a file dragged out of the app still says where it came from. The AI-generated marking
(IPTC digital source type) is always written, also in files stripped for sharing; the prompt
only when the user allows it. C2PA signing comes after this, as the last step (credentials.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.outputs import GeneratedOutput
from studio.core.provenance import ProvenanceRecord
from studio.gallery.a1111 import adapter_hash_fields, format_parameters, prompt_with_lora_tags
from studio.gallery.xmp import (
    DIGITAL_SOURCE_TYPE,
    ai_training_from_xmp,
    build_xmp,
    digital_source_type,
    read_xmp_fields,
    record_from_xmp,
)

RECORD_KEY = "studio_provenance"
_STATED = ("allowed", "not_allowed")
_FRONT_MATTER_PREFIX = f"{RECORD_KEY}: "
_TAG = RECORD_KEY.upper()

# EXIF UserComment with this 8-byte prefix is UTF-16 text: how A1111 stores its parameters in JPEG/WebP.
_EXIF_UNICODE = b"UNICODE\x00"
_EXIF_IFD, _USER_COMMENT, _SOFTWARE = 0x8769, 0x9286, 0x0131

__all__ = [
    "DIGITAL_SOURCE_TYPE",
    "RECORD_KEY",
    "EncodedFormat",
    "Marking",
    "encode",
    "marking_for",
    "read_embedded_record",
    "read_marking",
    "write_audio",
    "write_image",
    "write_text",
]


@dataclass(frozen=True)
class EncodedFormat:
    suffix: str
    mime: str
    write: Callable[[Path], None]
    facts: dict[str, Any]


@dataclass(frozen=True)
class Marking:
    """What goes into a file besides its content. ``record`` None: stripped for sharing."""

    record: dict[str, Any] | None
    parameters: str = ""  # the A1111 text, for images
    app: str = "Studio"
    model_name: str = ""
    model_version: str = ""
    ai_training: str = ""  # "allowed" / "not_allowed" are written (also when stripped); "not_stated" is not

    @property
    def record_json(self) -> str:
        return json.dumps(self.record, ensure_ascii=False, sort_keys=True) if self.record is not None else ""

    @property
    def prompt(self) -> str:
        request = (self.record or {}).get("request", {})
        return str(request.get("prompt", "")) if isinstance(request, dict) else ""

    @property
    def lyrics(self) -> str:
        """The lyrics sung, for a song: what the model read (``runtime.lyrics_sung``, when it kept
        only part of them), else what was asked."""
        record = self.record or {}
        request, runtime = record.get("request", {}), record.get("runtime", {})
        if not isinstance(request, dict) or not request.get("lyrics"):
            return ""
        sung = runtime.get("lyrics_sung") if isinstance(runtime, dict) else None
        return str(sung if isinstance(sung, str) else request.get("lyrics", ""))


def marking_for(
    record: ProvenanceRecord,
    *,
    embed_prompt: bool = True,
    strip: bool = False,
    image_size: tuple[int, int] | None = None,
) -> Marking:
    """The marking for ``record``: the full record (prompts blanked unless allowed), or source type only."""
    app = f"{record.app.get('name', 'Studio')} {record.app.get('version', '')}".strip()
    model_name = str(record.model.get("name") or record.model.get("id") or "")
    model_version = str(record.model.get("revision") or (record.model.get("sha256") or "")[:12])
    training = record.ai_training
    if strip:
        return Marking(None, app=app, ai_training=training)
    data = record.to_dict()
    parameters = ""
    if not embed_prompt:
        request = dict(data["request"])
        for key in ("prompt", "negative", "system", "lyrics"):
            if key in request:
                request[key] = ""
        data["request"] = request
        data["prompt_embedded"] = False
    elif record.kind == "image":
        parameters = _a1111_parameters(record, image_size)
    return Marking(data, parameters, app, model_name, model_version, training)


def _a1111_parameters(record: ProvenanceRecord, image_size: tuple[int, int] | None) -> str:
    request = record.request
    width, height = image_size or (request.get("width"), request.get("height"))
    size = f"{width}x{height}" if width and height else ""
    fields = [
        ("Steps", request.get("steps")),
        ("Sampler", request.get("scheduler") or record.runtime.get("scheduler")),
        ("CFG scale", request.get("guidance")),
        ("Seed", request.get("seed")),
        ("Size", size),
        ("Model hash", (record.model.get("sha256") or "")[:10]),
        ("Model", record.model.get("name")),
        ("Denoising strength", request.get("strength") if request.get("init_image") else None),
        *adapter_hash_fields(record.model.get("adapters")),
        ("Version", f"{record.app.get('name', 'Studio')} {record.app.get('version', '')}".strip()),
    ]
    prompt = prompt_with_lora_tags(request.get("prompt", ""), record.model.get("adapters"))
    return format_parameters(prompt, request.get("negative", ""), fields)


def encode(output: GeneratedOutput, record: ProvenanceRecord, embed_prompt: bool = True) -> EncodedFormat:
    """How to save ``output`` in the gallery: PNG, FLAC or Markdown, with ``record`` embedded."""
    if output.kind == "text":
        marking = marking_for(record, embed_prompt=embed_prompt)
        text = str(output.data)
        return EncodedFormat(".md", "text/markdown", lambda p: write_text(text, p, marking), {"characters": len(text)})
    if output.kind == "image":
        from PIL import Image

        image = output.data if isinstance(output.data, Image.Image) else Image.fromarray(output.data)
        marking = marking_for(record, embed_prompt=embed_prompt, image_size=image.size)
        facts: dict[str, Any] = {"width": image.width, "height": image.height}
        return EncodedFormat(".png", "image/png", lambda p: write_image(image, p, marking, ".png"), facts)
    if output.kind == "music":
        marking = marking_for(record, embed_prompt=embed_prompt)
        samples, rate = output.data, int(output.info["sample_rate"])
        frames = len(samples)
        channels = 1 if getattr(samples, "ndim", 1) == 1 else int(samples.shape[1])
        facts = {"sample_rate": rate, "channels": channels, "duration_s": round(frames / rate, 4)}
        return EncodedFormat(".flac", "audio/flac", lambda p: write_audio(samples, rate, p, marking, ".flac"), facts)
    raise ValueError(f"no file format for outputs of kind {output.kind!r}")


# -- writing -------------------------------------------------------------------------


def write_text(text: str, path: Path, marking: Marking, suffix: str = ".md") -> None:
    if suffix == ".txt":
        with path.open("w", encoding="utf-8", newline="") as handle:  # written as generated, no newline translation
            handle.write(text)  # plain text has nowhere to put metadata: the sidecar does
        return
    lines = ["---"]
    if marking.record is not None:
        lines.append(f"{_FRONT_MATTER_PREFIX}{marking.record_json}")
    lines.append(f"digital_source_type: {digital_source_type(marking.record)}")
    if marking.ai_training in _STATED:
        lines.append(f"ai_training: {marking.ai_training}")
    lines += ["---", "", ""]
    with path.open("w", encoding="utf-8", newline="") as handle:  # the text exactly as generated
        handle.write("\n".join(lines) + text + ("" if text.endswith("\n") else "\n"))


def write_image(image: Any, path: Path, marking: Marking, suffix: str = ".png", quality: int = 92) -> None:
    from PIL import Image, PngImagePlugin

    xmp = build_xmp(
        marking.record,
        app=marking.app,
        model_name=marking.model_name,
        model_version=marking.model_version,
        ai_training=marking.ai_training,
    )
    if suffix == ".png":
        info = PngImagePlugin.PngInfo()
        if marking.parameters:
            # tEXt (latin-1) is what Civitai reads; Pillow falls back to iTXt for other characters.
            info.add_text("parameters", marking.parameters)
        if marking.record is not None:
            info.add_itxt(RECORD_KEY, marking.record_json, zip=True)
        info.add_text("DigitalSourceType", digital_source_type(marking.record))
        info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"))
        image.save(path, format="PNG", pnginfo=info)
        return
    exif = Image.Exif()
    exif[_SOFTWARE] = marking.app
    if marking.parameters:
        exif.get_ifd(_EXIF_IFD)[_USER_COMMENT] = _EXIF_UNICODE + marking.parameters.encode("utf-16-be")
    rgb = image.convert("RGB")
    if suffix == ".jpg":
        rgb.save(path, format="JPEG", quality=quality, exif=exif, xmp=xmp)
    elif suffix == ".webp":
        rgb.save(path, format="WEBP", quality=quality, exif=exif, xmp=xmp)
    else:
        raise ValueError(f"no image format for {suffix}")


def write_audio(samples: Any, rate: int, path: Path, marking: Marking, suffix: str = ".flac") -> None:
    import soundfile

    formats = {".flac": ("FLAC", "PCM_16"), ".wav": ("WAV", "PCM_16"), ".ogg": ("OGG", "VORBIS"), ".mp3": ("MP3", None)}
    if suffix not in formats:
        raise ValueError(f"no audio format for {suffix}")
    container, subtype = formats[suffix]
    soundfile.write(path, samples, rate, format=container, subtype=subtype)
    fields = {"DIGITAL_SOURCE_TYPE": digital_source_type(marking.record), "ENCODER": marking.app}
    if marking.ai_training in _STATED:
        fields["AI_TRAINING"] = marking.ai_training
    if marking.record is not None:
        fields[_TAG] = marking.record_json
        fields["STUDIO_ID"] = str(marking.record.get("id", ""))
        if marking.model_name:
            fields["AI_SYSTEM"] = marking.model_name
        if marking.prompt:
            fields["DESCRIPTION"] = marking.prompt
        if marking.lyrics:
            fields["LYRICS"] = marking.lyrics  # the Vorbis field players show; ID3 has its own frame (USLT)
    if suffix in (".flac", ".ogg"):
        _write_vorbis_comments(path, suffix, fields)
    else:
        _write_id3(path, suffix, fields)


def _open_audio(path: Path, suffix: str) -> Any:
    """mutagen's file object for an audio file Studio writes, by ``suffix``. Typed Any: mutagen's
    classes are not annotated, and it types a FLAC file's tags as possibly a bare metadata block."""
    from mutagen.flac import FLAC
    from mutagen.mp3 import MP3
    from mutagen.oggvorbis import OggVorbis
    from mutagen.wave import WAVE

    # mutagen.File() gives None for a plain WAV: each format is opened by its own class.
    classes: dict[str, Callable[[Path], Any]] = {".flac": FLAC, ".ogg": OggVorbis, ".wav": WAVE, ".mp3": MP3}
    return classes[suffix](path)


def _write_vorbis_comments(path: Path, suffix: str, fields: dict[str, str]) -> None:
    audio = _open_audio(path, suffix)
    if audio.tags is None:
        audio.add_tags()
    for key, value in fields.items():
        audio[key] = value
    audio.save()


def _write_id3(path: Path, suffix: str, fields: dict[str, str]) -> None:
    from mutagen.id3 import TSSE, TXXX, USLT

    # mutagen's frame classes are not annotated: constructors taking keywords.
    encoder_frame: Callable[..., Any] = TSSE
    text_frame: Callable[..., Any] = TXXX
    lyrics_frame: Callable[..., Any] = USLT
    audio = _open_audio(path, suffix)
    if audio.tags is None:
        audio.add_tags()
    for key, value in fields.items():
        if key == "ENCODER":
            audio.tags.add(encoder_frame(encoding=3, text=[value]))
        elif key == "LYRICS":
            audio.tags.add(lyrics_frame(encoding=3, lang="und", desc="", text=value))
        else:
            audio.tags.add(text_frame(encoding=3, desc=key, text=[value]))
    audio.save()


# -- reading -------------------------------------------------------------------------


def read_embedded_record(path: Path) -> dict[str, Any] | None:
    """The Studio record embedded in ``path``, or None when there is none or it is unreadable."""
    readers = {
        ".md": _read_markdown,
        ".png": _read_image,
        ".jpg": _read_image,
        ".jpeg": _read_image,
        ".webp": _read_image,
        ".flac": _read_vorbis,
        ".ogg": _read_vorbis,
        ".wav": _read_id3,
        ".mp3": _read_id3,
    }
    reader = readers.get(Path(path).suffix.lower())
    if reader is None:
        return None
    try:
        return reader(Path(path))
    except Exception:  # every reader meets malformed files; they raise their own types
        return None


def _read_markdown(path: Path) -> dict[str, Any] | None:
    with path.open("r", encoding="utf-8") as handle:
        if handle.readline().rstrip("\n") != "---":
            return None
        for _ in range(64):
            line = handle.readline(8 * 1024 * 1024)
            if not line or line.rstrip("\n") == "---":
                return None
            if line.startswith(_FRONT_MATTER_PREFIX):
                return _as_dict(json.loads(line[len(_FRONT_MATTER_PREFIX) :]))
    return None


def _read_image(path: Path) -> dict[str, Any] | None:
    from PIL import Image

    with Image.open(path) as image:
        text = dict(getattr(image, "text", {}) or {}) if image.format == "PNG" else {}
        raw = text.get(RECORD_KEY)
        if raw:
            return _as_dict(json.loads(raw))
        packet = text.get("XML:com.adobe.xmp") or image.info.get("xmp")
    return record_from_xmp(packet) if packet else None


def _read_vorbis(path: Path) -> dict[str, Any] | None:
    audio = _open_audio(path, path.suffix.lower())
    values = audio.tags.get(_TAG) if audio.tags else None
    return _as_dict(json.loads(values[0])) if values else None


def _read_id3(path: Path) -> dict[str, Any] | None:
    audio = _open_audio(path, path.suffix.lower())
    frame = audio.tags.get(f"TXXX:{_TAG}") if audio.tags else None
    return _as_dict(json.loads(frame.text[0])) if frame else None


def _as_dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def read_marking(path: Path) -> dict[str, str]:
    """The plain marking a file carries besides any record — what a stripped export keeps:
    ``digital_source_type``, ``creator_tool`` and ``ai_training`` (``not_stated`` when absent)."""
    found: dict[str, str] = {}
    suffix = Path(path).suffix.lower()
    try:
        if suffix in (".png", ".jpg", ".jpeg", ".webp"):
            from PIL import Image

            with Image.open(path) as image:
                text = dict(getattr(image, "text", {}) or {}) if image.format == "PNG" else {}
                packet = text.get("XML:com.adobe.xmp") or image.info.get("xmp")
            fields = read_xmp_fields(packet) if packet else {}
            found["digital_source_type"] = fields.get("Iptc4xmpExt:DigitalSourceType", "")
            found["creator_tool"] = fields.get("xmp:CreatorTool", "")
            found["ai_training"] = ai_training_from_xmp(fields)
        elif suffix in (".flac", ".ogg"):
            tags = _open_audio(Path(path), suffix).tags or {}
            for key, name in (("DIGITAL_SOURCE_TYPE", "digital_source_type"), ("ENCODER", "creator_tool")):
                values = tags.get(key)
                found[name] = str(values[0]) if values else ""
            values = tags.get("AI_TRAINING")
            found["ai_training"] = str(values[0]) if values else ""
        elif suffix in (".wav", ".mp3"):
            tags = _open_audio(Path(path), suffix).tags
            frame = tags.get("TXXX:DIGITAL_SOURCE_TYPE") if tags else None
            found["digital_source_type"] = str(frame.text[0]) if frame else ""
            frame = tags.get("TSSE") if tags else None
            found["creator_tool"] = str(frame.text[0]) if frame else ""
            frame = tags.get("TXXX:AI_TRAINING") if tags else None
            found["ai_training"] = str(frame.text[0]) if frame else ""
        elif suffix == ".md":
            with Path(path).open("r", encoding="utf-8") as handle:
                if handle.readline().rstrip("\n") == "---":
                    for _ in range(64):
                        line = handle.readline(8 * 1024 * 1024).rstrip("\n")
                        if not line or line == "---":
                            break
                        key, _sep, value = line.partition(": ")
                        if key in ("digital_source_type", "ai_training"):
                            found[key] = value
    except Exception:  # malformed files from outside: nothing to report
        return {}
    if found.get("ai_training") not in _STATED:
        found["ai_training"] = "not_stated"
    return {k: v for k, v in found.items() if v}

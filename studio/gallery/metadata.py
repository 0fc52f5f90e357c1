"""Write outputs as files with their provenance embedded, and read it back from such files.

Embedding is done with Pillow (PNG), soundfile + mutagen (FLAC) and plain text (Markdown);
each format keeps the full record so a file dragged out of the app still says where it
came from. The AI-generated marking (IPTC digital source type) is always written; the
prompt only when the user allows it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio.core.outputs import GeneratedOutput
from studio.core.provenance import ProvenanceRecord
from studio.gallery.a1111 import format_parameters

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
RECORD_KEY = "studio_provenance"
_FRONT_MATTER_PREFIX = f"{RECORD_KEY}: "


@dataclass(frozen=True)
class EncodedFormat:
    suffix: str
    mime: str
    write: Callable[[Path], None]
    facts: dict[str, Any]


def encode(output: GeneratedOutput, record: ProvenanceRecord, embed_prompt: bool = True) -> EncodedFormat:
    """How to write ``output`` as a file that embeds ``record``."""
    embedded = _embedded_record(record, embed_prompt)
    if output.kind == "text":
        return _encode_markdown(output.data, embedded)
    if output.kind == "image":
        return _encode_png(output.data, embedded, record, embed_prompt)
    if output.kind == "music":
        return _encode_flac(output.data, int(output.info["sample_rate"]), embedded)
    raise ValueError(f"no file format for outputs of kind {output.kind!r}")


def _embedded_record(record: ProvenanceRecord, embed_prompt: bool) -> dict[str, Any]:
    data = record.to_dict()
    if not embed_prompt:
        request = dict(data["request"])
        for key in ("prompt", "negative", "system"):
            if key in request:
                request[key] = ""
        data["request"] = request
        data["prompt_embedded"] = False
    return data


def _encode_markdown(text: str, embedded: dict[str, Any]) -> EncodedFormat:
    front = (
        "---\n"
        f"{_FRONT_MATTER_PREFIX}{json.dumps(embedded, ensure_ascii=False, sort_keys=True)}\n"
        f"digital_source_type: {DIGITAL_SOURCE_TYPE}\n"
        "---\n\n"
    )
    body = front + text + ("" if text.endswith("\n") else "\n")

    def write(path: Path) -> None:
        path.write_text(body, encoding="utf-8")

    return EncodedFormat(".md", "text/markdown", write, {"characters": len(text)})


def _encode_png(pixels: Any, embedded: dict[str, Any], record: ProvenanceRecord, embed_prompt: bool) -> EncodedFormat:
    from PIL import Image, PngImagePlugin

    image = Image.fromarray(pixels) if not isinstance(pixels, Image.Image) else pixels
    info = PngImagePlugin.PngInfo()
    if embed_prompt:
        request = record.request
        fields = [
            ("Steps", request.get("steps")),
            ("Sampler", request.get("scheduler") or record.runtime.get("scheduler")),
            ("CFG scale", request.get("guidance")),
            ("Seed", request.get("seed")),
            ("Size", f"{image.width}x{image.height}"),
            ("Model hash", (record.model.get("sha256") or "")[:10]),
            ("Model", record.model.get("name")),
            ("Version", f"{record.app.get('name', 'Studio')} {record.app.get('version', '')}".strip()),
        ]
        params = format_parameters(request.get("prompt", ""), request.get("negative", ""), fields)
        # tEXt (latin-1) is what Civitai reads; Pillow falls back to iTXt for other characters.
        info.add_text("parameters", params)
    info.add_itxt(RECORD_KEY, json.dumps(embedded, ensure_ascii=False, sort_keys=True), zip=True)
    info.add_text("DigitalSourceType", DIGITAL_SOURCE_TYPE)

    def write(path: Path) -> None:
        image.save(path, format="PNG", pnginfo=info)

    return EncodedFormat(".png", "image/png", write, {"width": image.width, "height": image.height})


def _encode_flac(samples: Any, sample_rate: int, embedded: dict[str, Any]) -> EncodedFormat:
    import soundfile
    from mutagen.flac import FLAC

    frames = len(samples)
    channels = 1 if getattr(samples, "ndim", 1) == 1 else samples.shape[1]

    def write(path: Path) -> None:
        soundfile.write(path, samples, sample_rate, format="FLAC", subtype="PCM_16")
        tags = FLAC(path)
        tags[RECORD_KEY.upper()] = json.dumps(embedded, ensure_ascii=False, sort_keys=True)
        tags["DIGITAL_SOURCE_TYPE"] = DIGITAL_SOURCE_TYPE
        if embedded["request"].get("prompt"):
            tags["DESCRIPTION"] = embedded["request"]["prompt"]
        tags["ENCODER"] = f"{embedded['app'].get('name')} {embedded['app'].get('version')}"
        tags.save()

    facts = {"sample_rate": sample_rate, "channels": channels, "duration_s": round(frames / sample_rate, 4)}
    return EncodedFormat(".flac", "audio/flac", write, facts)


def read_embedded_record(path: Path) -> dict[str, Any] | None:
    """The Studio record embedded in ``path``, or None when there is none or it is unreadable."""
    try:
        suffix = path.suffix.lower()
        if suffix == ".md":
            return _read_markdown(path)
        if suffix == ".png":
            return _read_png(path)
        if suffix == ".flac":
            return _read_flac(path)
    except (OSError, ValueError, SyntaxError, KeyError):
        return None
    except Exception:  # third-party readers raise their own types on malformed files
        return None
    return None


def _read_markdown(path: Path) -> dict[str, Any] | None:
    with path.open("r", encoding="utf-8") as handle:
        if handle.readline().rstrip("\n") != "---":
            return None
        for _ in range(64):
            line = handle.readline()
            if not line or line.rstrip("\n") == "---":
                return None
            if line.startswith(_FRONT_MATTER_PREFIX):
                return _as_dict(json.loads(line[len(_FRONT_MATTER_PREFIX) :]))
    return None


def _read_png(path: Path) -> dict[str, Any] | None:
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        text = getattr(image, "text", {}) or {}
        raw = text.get(RECORD_KEY)
    return _as_dict(json.loads(raw)) if raw else None


def _read_flac(path: Path) -> dict[str, Any] | None:
    from mutagen.flac import FLAC

    values = FLAC(path).tags.get(RECORD_KEY.upper()) if FLAC(path).tags else None
    return _as_dict(json.loads(values[0])) if values else None


def _as_dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None

"""What images from other tools say about themselves: A1111 / Forge, ComfyUI, Fooocus, InvokeAI, NovelAI.

sd-parsers reads them first (``import_readers.py``); the small hand-written reader below is the
fallback for what it does not claim. Read-only and defensive: these come from outside, so sizes are
bounded and malformed values give None rather than an error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from studio.core.media_types import IMAGE_SUFFIXES
from studio.gallery.a1111 import parse_parameters
from studio.gallery.import_readers import read_generation_metadata

_MAX_TEXT = 1_000_000
_EXIF_IFD, _USER_COMMENT = 0x8769, 0x9286


def read_foreign_metadata(path: Path) -> dict[str, Any] | None:
    """{"tool", "prompt", "negative", "settings"} from another tool's image, or None."""
    if Path(path).suffix.lower() not in IMAGE_SUFFIXES:
        return None
    read = read_generation_metadata(path)
    if read is not None:
        return read
    try:
        from PIL import Image

        with Image.open(path) as image:
            text = {k: v for k, v in (getattr(image, "text", {}) or {}).items() if isinstance(v, str)}
            comment = _user_comment(image)
    except Exception:  # a malformed file from outside: nothing to report
        return None
    parameters = text.get("parameters") or comment
    if parameters and len(parameters) <= _MAX_TEXT:
        parsed = parse_parameters(parameters)
        studio_made = str(parsed.get("settings", {}).get("Version", "")).startswith("Studio")
        return {"tool": "Studio" if studio_made else "A1111", **parsed}
    if "prompt" in text or "workflow" in text:
        return _comfyui(text.get("prompt", ""), text.get("workflow", ""))
    if "invokeai_metadata" in text:
        data = _json(text["invokeai_metadata"])
        if isinstance(data, dict):  # any JSON may stand there (found by tests/test_hostile_input.py)
            settings = {
                k: str(v) for k, v in data.items() if isinstance(v, (str, int, float)) and k != "positive_prompt"
            }
            return {
                "tool": "InvokeAI",
                "prompt": str(data.get("positive_prompt", "")),
                "negative": str(data.get("negative_prompt", "")),
                "settings": settings,
            }
    return None


def _comfyui(prompt_json: str, workflow_json: str) -> dict[str, Any] | None:
    graph = _json(prompt_json) or {}
    texts, settings = [], {}
    for node in graph.values() if isinstance(graph, dict) else []:
        if not isinstance(node, dict):
            continue
        inputs = node.get("inputs", {}) if isinstance(node.get("inputs"), dict) else {}
        kind = str(node.get("class_type", ""))
        if kind.startswith("CLIPTextEncode") and isinstance(inputs.get("text"), str):
            texts.append(inputs["text"])
        if kind.startswith("KSampler"):
            for key in ("seed", "steps", "cfg", "sampler_name", "scheduler", "denoise"):
                if isinstance(inputs.get(key), (str, int, float)):
                    settings[key] = str(inputs[key])
        if kind.startswith("CheckpointLoader") and isinstance(inputs.get("ckpt_name"), str):
            settings["model"] = inputs["ckpt_name"]
    if not texts and not settings and not _json(workflow_json):
        return None
    return {
        "tool": "ComfyUI",
        "prompt": texts[0] if texts else "",
        "negative": texts[1] if len(texts) > 1 else "",
        "settings": settings,
    }


def _user_comment(image: Any) -> str:
    try:
        raw = image.getexif().get_ifd(_EXIF_IFD).get(_USER_COMMENT)
    except Exception:
        return ""
    if not isinstance(raw, bytes) or len(raw) < 8:
        return ""
    prefix, body = raw[:8], raw[8:]
    if prefix.startswith(b"UNICODE"):
        # A1111 writes UTF-16 big-endian; some tools little-endian. Take whichever decodes cleanly.
        for codec in ("utf-16-be", "utf-16-le"):
            try:
                text = body.decode(codec)
            except UnicodeDecodeError:
                continue
            if text and text.replace("\n", "").isprintable():
                return text
        return ""
    return body.decode("latin-1", "replace").rstrip("\x00") if prefix.startswith(b"ASCII") else ""


def _json(text: str) -> Any:
    if not text or len(text) > _MAX_TEXT:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None

"""How a gallery item reads to a person: a card (prompt, then model, seed, steps, sampler, size, date,
device, adapters, parent) built from its record, and the full record as text for whoever wants it."""

from __future__ import annotations

import datetime
import html
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from studio.gallery.store import GalleryItem

_TRAINING = {"allowed": "allowed", "not_allowed": "not allowed", "not_stated": "not stated"}
_CREDENTIALS = {"c2pa": "signed (C2PA)", "none": "none"}


def local_time(stamp: str) -> str:
    """``2026-12-01T08:50:12.345Z`` as this computer's local date and time, in words a person reads."""
    try:
        when = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone()
    except ValueError:
        return stamp
    return when.strftime("%d %b %Y, %H:%M")


def card_rows(item: GalleryItem) -> list[tuple[str, str]]:
    """(label, value) for what an artist wants to know of ``item``; what is not known is left out."""
    record = item.record
    request: dict[str, Any] = record.request
    runtime: dict[str, Any] = record.runtime
    rows: list[tuple[str, str]] = []

    def add(label: str, value: Any) -> None:
        if value not in (None, "", [], {}):
            rows.append((label, str(value)))

    add("Model", record.model.get("name") or record.model.get("id"))
    add("Seed", record.seed)
    if item.kind == "image":
        add("Steps", request.get("steps"))
        add("Guidance", request.get("guidance"))
        add("Sampler", request.get("scheduler") or runtime.get("scheduler"))
        width, height = request.get("width"), request.get("height")
        if width and height:
            add("Size", f"{width} × {height}")
        add("Negative prompt", request.get("negative"))
        if request.get("init_image"):
            add("Strength", request.get("strength"))
    elif item.kind == "music":
        duration = request.get("duration")
        add("Length", f"{float(duration):.1f} s" if isinstance(duration, (int, float)) else duration)
        add("Guidance", request.get("guidance"))
        add("Temperature", request.get("temperature"))
    else:
        add("Temperature", request.get("temperature"))
        add("Max tokens", request.get("max_tokens"))
        add("System prompt", request.get("system"))
    adapters = request.get("adapters") or runtime.get("adapters")
    if isinstance(adapters, list) and adapters:
        add("Adapters", ", ".join(_adapter_name(a) for a in adapters))
    add("Made", local_time(record.created_at))
    seconds = runtime.get("seconds")
    if isinstance(seconds, (int, float)) and seconds > 0:
        add("Took", f"{seconds:.1f} s")
    device = runtime.get("name") or runtime.get("device")
    dtype = runtime.get("dtype")
    add("Device", f"{device} ({dtype})" if device and dtype else device)
    add("Made from", record.parent)
    credentials = str(record.output.get("content_credentials") or "none")
    add("Credentials", _CREDENTIALS.get(credentials, credentials))
    add("May train AI", _TRAINING.get(record.ai_training or "not_stated", record.ai_training))
    if item.tags:
        add("Tags", ", ".join(item.tags))
    return rows


def _adapter_name(adapter: Any) -> str:
    if isinstance(adapter, dict):
        name = adapter.get("name") or adapter.get("id") or "adapter"
        weight = adapter.get("weight") or adapter.get("scale")
        return f"{name} × {weight}" if weight not in (None, "") else str(name)
    return str(adapter)


def card_html(item: GalleryItem) -> str:
    """The card as Qt rich text: the prompt as its title, the rest as a two-column table."""
    prompt = html.escape(item.record.prompt or item.path.name)
    rows = "".join(
        f"<tr><td style='padding:2px 14px 2px 0; color:#8b8d96'>{html.escape(label)}</td>"
        f"<td style='padding:2px 0'>{html.escape(value)}</td></tr>"
        for label, value in card_rows(item)
    )
    star = "★ " if item.favourite else ""
    return (
        f"<p style='font-size:large; margin-bottom:8px'>{star}{prompt}</p>"
        f"<table cellspacing='0' cellpadding='0'>{rows}</table>"
    )


def record_text(item: GalleryItem) -> str:
    """Everything the record holds (hashes, library versions, schema), with where the file is."""
    data = {"file": str(item.path), **item.record.to_dict()}
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)

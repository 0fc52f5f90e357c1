"""What an engine hands back: the raw output of one generation, before it becomes a file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class GeneratedOutput:
    """One output of a job.

    ``data`` is a ``str`` for text, an RGB uint8 array (H, W, 3) for an image, and a float32
    array (frames, channels) in [-1, 1] for audio, with ``sample_rate`` in ``info``.
    ``info`` also carries facts for the record (token counts, a "stopped" flag, …).
    ``attachments`` are companion files saved beside the output, by suffix (a melody's ``.mid``).
    """

    kind: str
    data: Any
    info: dict[str, Any] = field(default_factory=dict)
    attachments: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class EngineResult:
    """Everything one job produced, plus what the provenance record needs to know."""

    outputs: list[GeneratedOutput]
    model: dict[str, Any]
    runtime: dict[str, Any]
    # An edit of a source (inpaint, upscale, repaint a region of a song…): what the engine did, for
    # the record's ``derived_from.operation`` — ``action`` is the C2PA action (``c2pa.edited``,
    # ``c2pa.resized``), ``task`` names it for people, the rest are its settings. Empty for a plain
    # generation; the worker fills in a default when the request names a source file anyway.
    operation: dict[str, Any] = field(default_factory=dict)

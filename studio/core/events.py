"""The one message type the worker sends about its jobs, and what each kind carries."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class EventKind(enum.StrEnum):
    QUEUED = "queued"
    STARTED = "started"
    PROGRESS = "progress"
    PREVIEW = "preview"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    ERROR = "error"
    # Not about a job: the worker describing its device once it has looked,
    # and what a model offers (its schedulers, native size…) when a panel asked.
    DEVICE = "device"
    MODEL_INFO = "model_info"
    # The summary of a training set (``studio.core.training.DataSummary`` as ``result``) a tab asked for.
    DATA_SUMMARY = "data_summary"
    # Where jobs run now (``studio.runtime.job_router``): ``result`` is {"where", "text"}; not about a job.
    RUNNER = "runner"


TERMINAL_KINDS = frozenset({EventKind.FINISHED, EventKind.CANCELLED, EventKind.ERROR})


@dataclass(frozen=True)
class JobEvent:
    """Something that happened to job ``job_id``.

    ``preview`` is a text chunk for text jobs and an RGB uint8 array (H, W, 3) for images;
    ``result`` holds the saved gallery items on ``finished`` (and the device description on
    ``device``); ``error`` is a message a person can act on, ``detail`` its traceback.
    """

    kind: EventKind
    job_id: str
    step: int = 0
    total: int = 0
    preview: Any = None
    result: Any = None
    error: str = ""
    detail: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def is_terminal(self) -> bool:
        return self.kind in TERMINAL_KINDS

"""What every engine provides, and the context through which a running job reports back."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from studio.core.errors import JobCancelled
from studio.core.events import EventKind, JobEvent
from studio.core.outputs import EngineResult


class RunContext:
    """Handed to an engine for one job: report progress and previews, poll for cancel."""

    def __init__(self, job_id: str, emit: Callable[[JobEvent], None], cancel_event: threading.Event) -> None:
        self.job_id = job_id
        self._emit = emit
        self._cancel_event = cancel_event

    @property
    def cancelled(self) -> bool:
        return self._cancel_event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._cancel_event.is_set():
            raise JobCancelled()

    def progress(self, step: int, total: int, **info: Any) -> None:
        self._emit(JobEvent(EventKind.PROGRESS, self.job_id, step=step, total=total, info=info))

    def preview(self, data: Any, step: int = 0, total: int = 0) -> None:
        self._emit(JobEvent(EventKind.PREVIEW, self.job_id, step=step, total=total, preview=data))


class Engine(Protocol):
    """One engine per medium. ``load`` and ``generate`` run on the worker thread only."""

    kind: str

    def load(self, spec: Any, device: Any) -> Any:
        """Load the model of ``spec`` onto ``device``; raise ``ModelError`` with the reason."""

    def generate(self, model: Any, request: Any, ctx: RunContext) -> EngineResult:
        """Run one request. On cancel, return what was made so far (``info['stopped']``) or raise."""

    def unload(self, model: Any) -> None:
        """Free what ``load`` took (GPU memory above all)."""

    # Optional: ``warm_up(self) -> None`` runs once at launch, on the worker, while the window
    # idles — one-time library set-up that would otherwise stall the window in the first job.

"""What every engine provides, and the context through which a running job reports back."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from studio.core.capabilities import Control, ModelInfo, unused_controls
from studio.core.errors import JobCancelled
from studio.core.events import EventKind, JobEvent
from studio.core.models import ModelSpec, suggested_defaults
from studio.core.outputs import EngineResult


class RunContext:
    """Handed to an engine for one job: report progress and previews, poll for cancel."""

    def __init__(
        self, job_id: str, emit: Callable[[JobEvent], None], cancel_event: threading.Event, adapters: Any = ()
    ) -> None:
        self.job_id = job_id
        self._emit = emit
        self._cancel_event = cancel_event
        # The LoRAs / embeddings the job applies, resolved and checked against its model by the worker
        # (``studio.engines.library.adapters.ResolvedAdapter``).
        self.adapters: list[Any] = list(adapters)

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
    """The engine of one model format (``studio.engines.registry``). Every method runs on a worker
    thread; ``check`` and ``describe`` read small files only and never load weights."""

    format: str
    kind: str

    def check(self, spec: ModelSpec, request: Any) -> None:
        """Refuse what cannot work before anything loads (sizes, input files, unused inputs):
        raise ``InvalidRequest`` naming the field."""

    def describe(self, spec: ModelSpec) -> ModelInfo:
        """What the model offers, from its config files: the controls it uses, limits, defaults."""

    def load(self, spec: ModelSpec, device: Any) -> Any:
        """Load the model of ``spec`` onto ``device``; raise ``ModelError`` with the reason."""

    def generate(self, model: Any, request: Any, ctx: RunContext) -> EngineResult:
        """Run one request. On cancel, return what was made so far (``info['stopped']``) or raise."""

    def unload(self, model: Any) -> None:
        """Free what ``load`` took (GPU memory above all)."""

    # Optional: ``warm_up(self) -> None`` runs once at launch, on the worker, while the window
    # idles — one-time library set-up that would otherwise stall the window in the first job.


def model_info(
    spec: ModelSpec, uses: Iterable[Control], reasons: Mapping[Control, str] | None = None, **facts: Any
) -> ModelInfo:
    """A ``ModelInfo`` for ``spec``: who it is (from the spec), which controls of its kind it uses
    (the rest get ``reasons`` or a plain sentence), and ``facts`` (native size, chat, window…)."""
    return ModelInfo(
        ref=str(spec.path),
        id=spec.id,
        name=spec.name,
        kind=spec.kind,
        format=spec.format,
        family=spec.family,
        path=str(spec.path),
        runnable=spec.runnable,
        reason=spec.reason,
        hint=str(spec.details.get("hint", "")),
        unused=unused_controls(spec.kind, uses, reasons, name=spec.name),
        suggested_defaults=suggested_defaults(spec),
        **facts,
    )

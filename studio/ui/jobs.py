"""The window's one record of jobs: what each tab submitted and where each job stands.

The worker reports events; ``JobQueue`` turns them into a ``Job`` per job with an explicit
state (queued → running → finished, cancelled or failed), so a tab asks "what of mine is
pending?" and the status bar "how many wait?" instead of each keeping its own lists. Modelled
on Krita AI Diffusion's ``JobQueue``: one queue, state changes as signals, ended jobs pruned to a
bounded history.

Model descriptions (``worker.describe_model``) and training-data summaries
(``worker.summarize_training``) are not jobs: their answers are passed on as ``model_described``
and ``data_summarized`` and never counted. A training run is a job (``submit_training``); it makes a
model, not gallery items, so its ``finished`` result is kept as ``Job.result``.
"""

from __future__ import annotations

import enum
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from PySide6.QtCore import QObject, Signal

from studio.core.capabilities import ModelInfo
from studio.core.events import EventKind, JobEvent
from studio.core.requests import Request

log = logging.getLogger(__name__)

HISTORY = 64  # ended jobs kept (the newest); pending ones are never pruned


class Worker(Protocol):
    """What the queue asks of the worker (``studio.runtime.worker.Worker``)."""

    def submit(self, request: Request, *, parent: str | None = None) -> str: ...

    def cancel(self, job_id: str) -> bool: ...

    def save_kept_output(self, job_id: str) -> str | None: ...

    def submit_training(self, request: Any) -> str: ...


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def done(self) -> bool:
        return self in _DONE


_DONE = frozenset({JobState.FINISHED, JobState.CANCELLED, JobState.FAILED})


@dataclass(eq=False)
class Job:
    """One job as the window knows it.

    ``owner`` is the tab that submitted it ("" for a job submitted elsewhere, e.g. straight to
    the worker); ``kind`` what it makes. A job that only saves another job's kept output (Keep
    in gallery, Retry saving) names that job in ``saves`` and is not a generation job.
    """

    id: str
    owner: str = ""
    kind: str = ""
    request: Request | None = None
    parent: str | None = None
    saves: str = ""
    state: JobState = JobState.QUEUED
    model: str = ""  # the request's model; the worker's ``started`` event confirms it
    queued_at: float = field(default_factory=time.time)
    started_at: float = 0.0
    finished_at: float = 0.0
    step: int = 0
    total: int = 0
    error: str = ""
    detail: str = ""  # the traceback behind ``error``, for a bug report
    items: list[Any] = field(default_factory=list)  # the saved gallery items, once finished
    partial: bool = False  # cancelled with its output kept in memory (stopped text): it can still be kept
    unsaved: bool = False  # failed to save; the output waits in memory for a retry
    info: dict[str, Any] = field(default_factory=dict)  # the last event's info
    result: Any = None  # a training run's ``finished`` result (``TrainedModel.to_dict()``)

    @property
    def is_generation(self) -> bool:
        return not self.saves

    @property
    def done(self) -> bool:
        return self.state.done

    @property
    def seconds(self) -> float:
        """How long it ran (0 until it has ended)."""
        if not self.started_at or not self.finished_at:
            return 0.0
        return self.finished_at - self.started_at


_TERMINAL_STATES = {
    EventKind.FINISHED: JobState.FINISHED,
    EventKind.CANCELLED: JobState.CANCELLED,
    EventKind.ERROR: JobState.FAILED,
}


class JobQueue(QObject):
    """Every job of this window, fed by the worker's events (``on_event``, from the bridge)."""

    # A job changed state (or was claimed by a tab): the Job.
    changed = Signal(object)
    # The worker's device or where jobs run changed (a ``device`` or ``runner`` JobEvent).
    worker_state = Signal(object)
    # The worker described a model (not a job): the ModelInfo.
    model_described = Signal(object)
    # The worker summarised a training set (not a job): the ``data_summary`` JobEvent (its
    # ``result`` a ``DataSummary``, or its ``error``).
    data_summarized = Signal(object)

    def __init__(self, worker: Worker, *, history: int = HISTORY, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._worker = worker
        self._history = history
        self._jobs: OrderedDict[str, Job] = OrderedDict()  # in submission order
        # Each tab's handler of its own jobs' events: called directly, not through a signal every
        # tab receives, so a token streaming in the Text tab costs the other tabs nothing.
        self._listeners: dict[str, Callable[[Job, JobEvent], None]] = {}

    @property
    def worker(self) -> Worker:
        """What runs the jobs: the worker, or the router that sends them to a cluster."""
        return self._worker

    # -- what the tabs do ------------------------------------------------------------

    def submit(self, owner: str, request: Request, parent: str | None = None) -> Job:
        """Queue ``request`` on the worker for the tab ``owner``."""
        job_id = self._worker.submit(request, parent=parent)
        return self._claim(job_id, owner=owner, kind=request.kind, request=request, parent=parent, model=request.model)

    def submit_training(self, owner: str, request: Any) -> Job:
        """Queue a training run (``studio.core.training.TrainRequest``) on the worker for ``owner``."""
        job_id = self._worker.submit_training(request)
        return self._claim(job_id, owner=owner, kind=request.kind, request=request, model=request.base)

    def claim_sweep(self, owner: str, cells: list[tuple[Request, str]], grids: list[str], kind: str) -> None:
        """The jobs of a sweep (queued by ``studio.runtime.sweeps``) belong to ``owner``: its cells and
        the grid made after them, so the tab shows each and Cancel stops them all."""
        for request, job_id in cells:
            self._claim(job_id, owner=owner, kind=request.kind, request=request, model=request.model)
        for job_id in grids:
            self._claim(job_id, owner=owner, kind=kind)

    def cancel(self, owner: str) -> list[Job]:
        """Cancel every pending job of ``owner`` (the running one stops at its next step)."""
        pending = self.pending(owner)
        for job in pending:
            self._worker.cancel(job.id)
        return pending

    def cancel_job(self, job_id: str) -> bool:
        job = self._jobs.get(job_id)
        return job is not None and not job.done and self._worker.cancel(job_id)

    def keep_partial(self, owner: str) -> Job | None:
        """Save the output ``owner``'s last job kept when it was stopped; the saving job, or None."""
        last = self.last(owner)
        if last is None or last.state is not JobState.CANCELLED or not last.partial:
            return None
        last.partial = False
        job_id = self._worker.save_kept_output(last.id)
        if not job_id:
            return None
        return self._claim(job_id, owner=owner, kind=last.kind, saves=last.id, parent=last.parent, model=last.model)

    def retry_save(self, job_id: str) -> Job | None:
        """Save again the output of ``job_id`` whose save failed; the saving job, or None."""
        failed = self._jobs.get(job_id)
        if failed is not None:
            failed.unsaved = False
        new_id = self._worker.save_kept_output(job_id)
        if not new_id:
            return None
        kind = failed.kind if failed is not None else ""
        return self._claim(new_id, owner="", kind=kind, saves=job_id)

    # -- queries -----------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def __iter__(self) -> Iterator[Job]:
        return iter(list(self._jobs.values()))

    def __len__(self) -> int:
        return len(self._jobs)

    def jobs(self, owner: str | None = None) -> list[Job]:
        """Every job known (pending and a bounded history), oldest first; of ``owner`` when given."""
        return [job for job in self._jobs.values() if owner is None or job.owner == owner]

    def pending(self, owner: str | None = None) -> list[Job]:
        """Generation jobs queued or running, in the order they run."""
        return [job for job in self.jobs(owner) if job.is_generation and not job.done]

    def queued(self, owner: str | None = None) -> list[Job]:
        """Generation jobs waiting for the worker."""
        return [job for job in self.jobs(owner) if job.is_generation and job.state is JobState.QUEUED]

    def running(self, owner: str | None = None) -> Job | None:
        """The generation job the worker runs now (of ``owner``, when given)."""
        for job in self.jobs(owner):
            if job.is_generation and job.state is JobState.RUNNING:
                return job
        return None

    def last(self, owner: str) -> Job | None:
        """The generation job ``owner`` submitted last, in whatever state."""
        for job in reversed(self._jobs.values()):
            if job.owner == owner and job.is_generation:
                return job
        return None

    def count_waiting(self) -> int:
        """Generation jobs waiting for the worker, from every tab (the status bar's count)."""
        return len(self.queued())

    # -- the worker's events -----------------------------------------------------------

    def listen(self, owner: str, handler: Callable[[Job, JobEvent], None]) -> None:
        """Call ``handler(job, event)`` for every event of a job ``owner`` submitted or claimed,
        after the Job was updated (one handler per owner: a tab)."""
        self._listeners[owner] = handler

    def on_events(self, events: list[JobEvent]) -> None:
        """A frame's events from the bridge, in order."""
        for event in events:
            self.on_event(event)

    def on_event(self, event: JobEvent) -> None:
        if event.kind in (EventKind.DEVICE, EventKind.RUNNER):
            self.worker_state.emit(event)
            return
        if event.kind is EventKind.MODEL_INFO:
            if isinstance(event.result, ModelInfo):
                self.model_described.emit(event.result)
            else:
                log.debug("model description %s is not a ModelInfo: %r", event.job_id, type(event.result))
            return
        if event.kind is EventKind.DATA_SUMMARY:
            self.data_summarized.emit(event)
            return
        job = self._jobs.get(event.job_id)
        new = job is None
        if job is None:
            if event.kind not in (EventKind.QUEUED, EventKind.STARTED):
                return  # the end of a job this window never saw start, or not a job at all
            # Submitted elsewhere (or reported before ``submit`` returned its id): known from now on.
            job = Job(event.job_id, kind=str(event.info.get("kind", "")), saves=str(event.info.get("keep_of", "")))
            self._jobs[job.id] = job
        changed = self._apply(job, event)
        if changed or new:
            self.changed.emit(job)
        handler = self._listeners.get(job.owner)
        if handler is not None:
            handler(job, event)
        if event.is_terminal:
            self._prune()

    def _apply(self, job: Job, event: JobEvent) -> bool:
        """Update ``job`` from ``event``; True when its state changed."""
        if event.info:
            job.info = dict(event.info)
        if event.kind is EventKind.QUEUED:
            return False
        if event.kind is EventKind.STARTED:
            job.state = JobState.RUNNING
            job.started_at = time.time()
            job.model = str(event.info.get("model") or job.model)
            job.kind = job.kind or str(event.info.get("kind", ""))
            return True
        if event.kind is EventKind.PROGRESS:
            job.step, job.total = event.step, event.total
            return False
        state = _TERMINAL_STATES.get(event.kind)
        if state is None or job.done:
            return False
        job.state = state
        job.finished_at = time.time()
        if state is JobState.FINISHED and job.kind == "train":
            job.result = event.result
        elif state is JobState.FINISHED:
            job.items = list(event.result or [])
        elif state is JobState.CANCELLED:
            job.partial = bool(event.info.get("partial"))
        else:
            job.error, job.detail = event.error, event.detail
            job.unsaved = bool(event.info.get("unsaved"))
        return True

    def _claim(self, job_id: str, *, owner: str, kind: str, **values: Any) -> Job:
        """The job ``job_id`` belongs to ``owner``; its events may already have arrived."""
        job = self._jobs.get(job_id)
        if job is None:
            job = Job(job_id)
            self._jobs[job_id] = job
        job.owner, job.kind = owner, kind
        for name, value in values.items():
            if name == "model" and job.model:
                continue  # the worker's word on the model, from its ``started`` event, wins
            setattr(job, name, value)
        self.changed.emit(job)
        return job

    def _prune(self) -> None:
        ended = [job_id for job_id, job in self._jobs.items() if job.done]
        for job_id in ended[: max(0, len(ended) - self._history)]:
            del self._jobs[job_id]

"""Moves worker events onto the GUI thread as one Qt signal a frame, the frame's events coalesced.

A text job streams a preview and a progress event per token, hundreds a second; handing each
across on its own made the GUI thread wake, dispatch, re-set labels and lay out the tab per token,
and with one interpreter lock on two cores the worker waited for it (docs/PERFORMANCE.md, "The
window"). So the worker only appends to a buffer, and posts one wake-up when the buffer was empty;
the GUI thread drains it at most once a frame and passes on what the buffer holds, coalesced
(``coalesce``): progress — the latest wins; an image preview — the latest wins; text chunks —
concatenated; every other event (queued, started, finished, cancelled, error, model_info, device,
and a training run's samples) passed on as is, in order, so a job's terminal event always comes
after its earlier ones. The frame's events go out as one list in one signal (``delivered``): a
signal into Python costs tens of microseconds with the interpreter lock held, so a frame pays for
one, not one per event and receiver.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from PySide6.QtCore import QObject, Qt, QTimer, Signal

from studio.core.events import EventKind, JobEvent

# The longest an event waits in the buffer while events stream: 30 drains a second. Each time the
# GUI thread (and the X server after it) wakes, it takes a core from torch's threads, and a thread
# descheduled inside a parallel region stalls the others at its barrier: on two cores a process
# waking 30 times a second to do 1 ms of work slowed a bare generate() by 6 % (docs/PERFORMANCE.md).
# Thirty text updates a second still read as live, and the first event after a pause is drained
# at once.
FRAME_MS = 33
# While only progress streams (music, image steps, training), with no text or image preview in a
# frame: ten updates a second move a bar and its time left smoothly, for a third of the wake-ups.
# A text chunk arriving meanwhile shortens the wait to the short frame: a slow model's tokens often
# decode to no whole character (progress, no chunk), and its next chunk must not wait 100 ms.
PROGRESS_FRAME_MS = 100
_MERGED = (EventKind.PROGRESS, EventKind.PREVIEW)


class Subscribable(Protocol):
    def subscribe(self, listener: Callable[[JobEvent], None]) -> Callable[[], None]: ...


def coalesce(events: Iterable[JobEvent]) -> list[JobEvent]:
    """``events`` with each job's run of progress and preview events merged, in order.

    Within a job, the progress and preview events between two of its other events become at most
    one of each, placed where the last of them was: the latest progress (with the ``recent`` loss
    points of a training run's progress it replaces); the latest preview, or for text (string
    chunks) all the chunks joined. Nothing else is merged, dropped or moved, so each
    job's events keep their order and its terminal event stays last.
    """
    out: list[JobEvent | None] = []
    slots: dict[str, dict[EventKind, int]] = {}  # job → kind → index in ``out`` of its merged event
    for event in events:
        # A training run's sample (a dict: step, prompt, data) is never merged: two prompts sampled
        # at the same step arrive together and each must be shown.
        if event.kind not in _MERGED or isinstance(event.preview, dict):
            slots.pop(event.job_id, None)  # a state change closes the job's run
            out.append(event)
            continue
        job_slots = slots.setdefault(event.job_id, {})
        index = job_slots.get(event.kind)
        merged = event
        if index is not None:
            earlier = out[index]
            out[index] = None
            if (
                event.kind is EventKind.PREVIEW
                and earlier is not None
                and isinstance(earlier.preview, str)
                and isinstance(event.preview, str)
            ):
                merged = dataclasses.replace(event, preview=earlier.preview + event.preview)
            elif event.kind is EventKind.PROGRESS and earlier is not None and earlier.info.get("recent"):
                merged = dataclasses.replace(event, info=_with_recent(earlier.info, event.info))
        job_slots[event.kind] = len(out)
        out.append(merged)
    return [event for event in out if event is not None]


def _with_recent(earlier: dict, later: dict) -> dict:
    """``later``'s info, its ``recent`` (step, loss) points joined with those of the progress it
    replaces: a training run's last loss points must survive a "checkpoint" or "saving" progress
    (which carries none) arriving in the same frame."""
    points = {int(point[0]): point for point in earlier.get("recent") or ()}
    points.update({int(point[0]): point for point in later.get("recent") or ()})
    return {**later, "recent": [points[step] for step in sorted(points)]}


class WorkerBridge(QObject):
    """Re-emits the worker's events on the GUI thread as ``delivered``: a frame's events, coalesced.

    The worker calls ``_relay`` on its own thread: it appends to a lock-protected buffer and, when
    no drain is due, posts a wake-up (a queued signal). The wake-up drains the buffer at once when
    the last drain is a frame ago or more (so the first token of a stream shows within a frame of
    arriving), else when that frame has passed. While events keep coming (a stream), each drain
    arms the next a frame later on the GUI thread's own timer and the worker posts nothing: the GUI
    thread wakes once a frame, not once per event plus once per frame. A frame is ``FRAME_MS`` after
    one that delivered text or a preview, ``PROGRESS_FRAME_MS`` after one of progress only, cut
    short to ``FRAME_MS`` by a text chunk arriving in it (the worker posts one wake-up). A drain
    that finds the buffer empty ends that; the next event wakes the GUI thread again. ``flush``
    drains now.
    (Not named ``event``: that would hide ``QObject.event``, through which Qt delivers every event.)
    """

    delivered = Signal(object)  # list[JobEvent], in order, never empty (object: passed as is, not converted)
    _wake = Signal()

    def __init__(
        self,
        worker: Subscribable,
        parent: QObject | None = None,
        *,
        frame_ms: int = FRAME_MS,
        progress_frame_ms: int = PROGRESS_FRAME_MS,
    ) -> None:
        super().__init__(parent)
        self._frame_s = frame_ms / 1000
        self._progress_frame_s = max(frame_ms, progress_frame_ms) / 1000
        self._next_frame_s = self._frame_s  # the frame after the last drain: by what it delivered
        self._lock = threading.Lock()
        self._buffer: list[JobEvent] = []
        self._drain_due = False  # a wake-up is posted, or the timer will drain: the worker posts nothing
        self._urgent = False  # a job's first preview is buffered: drained at once, not at the frame's end
        self._long_frame = False  # the next drain waits a progress frame: a text chunk shortens it
        self._previewed: set[str] = set()  # jobs whose first preview has been relayed (worker thread)
        self._last_drain = 0.0
        self._attached = True
        self._flushing = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self.flush)
        self._wake.connect(self._woken, Qt.ConnectionType.QueuedConnection)
        self._unsubscribe = worker.subscribe(self._relay)

    def _relay(self, event: JobEvent) -> None:
        """On the worker thread: buffer ``event``; wake the GUI thread when no drain is due."""
        with self._lock:
            if not self._attached:
                return
            self._buffer.append(event)
            # A job's first preview (its first token, its first image) and its end are shown the
            # moment they arrive; the frame's pacing is for the stream between them.
            first_preview = event.kind is EventKind.PREVIEW and event.job_id not in self._previewed
            if first_preview:
                self._previewed.add(event.job_id)
            elif event.is_terminal:
                self._previewed.discard(event.job_id)
            urgent = first_preview or event.is_terminal
            self._urgent = self._urgent or urgent
            chunk = self._long_frame and event.kind is EventKind.PREVIEW and isinstance(event.preview, str)
            if chunk:  # the GUI thread re-arms its timer for the short frame (once per long frame)
                self._long_frame = False
            if self._drain_due and not (urgent or chunk):
                return
            self._drain_due = True
        self._wake.emit()

    def _woken(self) -> None:
        with self._lock:
            urgent, self._urgent = self._urgent, False
            if not self._long_frame:  # a text chunk came during a progress frame (or none is armed)
                self._next_frame_s = self._frame_s
        wait = self._last_drain + self._next_frame_s - time.monotonic()
        if wait > 0 and not urgent:
            wait_ms = max(1, round(wait * 1000))
            if not self._timer.isActive() or self._timer.remainingTime() > wait_ms:
                self._timer.start(wait_ms)
            return
        self.flush()

    def flush(self) -> None:
        """Pass on everything buffered now (on the GUI thread)."""
        if self._flushing:  # a receiver ran the event loop: the rest of this batch goes first
            self._timer.start(max(1, round(self._frame_s * 1000)))
            return
        self._timer.stop()
        with self._lock:
            events, self._buffer = self._buffer, []
            # Something came since the last drain: more is likely on its way, and the timer drains
            # it a frame from now. Nothing came: the stream paused, and the next event wakes us.
            self._drain_due = bool(events)
            self._urgent = False
        if not events:
            return  # not a drain: the next event, a frame after the last one delivered, goes at once
        self._last_drain = time.monotonic()
        batch = coalesce(events)
        # Only progress and state changes this frame: the next can wait longer (a stream of text or
        # previews keeps the short frame; an event of any other kind comes at once after a quiet frame).
        only_progress = all(event.kind is not EventKind.PREVIEW for event in batch)
        self._next_frame_s = self._progress_frame_s if only_progress else self._frame_s
        with self._lock:
            self._long_frame = only_progress and self._progress_frame_s > self._frame_s
        self._timer.start(max(1, round(self._next_frame_s * 1000)))
        self._flushing = True
        try:
            self.delivered.emit(batch)
        finally:
            self._flushing = False

    def detach(self) -> None:
        """Stop relaying (before the bridge is destroyed); what is buffered is dropped. Safe twice."""
        with self._lock:
            if not self._attached:
                return
            self._attached = False
            self._buffer.clear()
        self._unsubscribe()
        self._timer.stop()

"""The worker → GUI bridge (studio.ui.bridge): events coalesced per frame, nothing lost, order kept.

``coalesce`` is tested on its own (pure), then the bridge with a fake worker that fires events
from a real second thread, as the worker does, while the GUI thread runs its event loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest
from PySide6.QtCore import Qt

from studio.core.events import EventKind, JobEvent
from studio.ui.bridge import WorkerBridge, coalesce

K = EventKind


def stream(job: str, chunks: list[str], *, end: EventKind = K.FINISHED) -> list[JobEvent]:
    """What a text job sends: started, a preview and a progress per token, then its end."""
    events = [JobEvent(K.STARTED, job)]
    for n, chunk in enumerate(chunks, 1):
        events.append(JobEvent(K.PREVIEW, job, step=n, total=len(chunks), preview=chunk))
        events.append(JobEvent(K.PROGRESS, job, step=n, total=len(chunks)))
    events.append(JobEvent(end, job, info={"tokens": len(chunks)}))
    return events


def text_of(events: list[JobEvent], job: str) -> str:
    return "".join(e.preview for e in events if e.job_id == job and e.kind is K.PREVIEW)


def test_a_text_stream_becomes_one_chunk_and_the_latest_progress_then_its_end():
    events = stream("a", ["The", " quiet", " harbour", "."])
    merged = coalesce(events)
    assert [e.kind for e in merged] == [K.STARTED, K.PREVIEW, K.PROGRESS, K.FINISHED]
    assert merged[1].preview == "The quiet harbour." and merged[1].step == 4
    assert (merged[2].step, merged[2].total) == (4, 4)
    assert merged[-1] is events[-1]  # terminal events pass as they are


def test_image_previews_and_progress_keep_only_the_latest():
    first, last = np.zeros((2, 2, 3), np.uint8), np.ones((2, 2, 3), np.uint8)
    events = [
        JobEvent(K.PROGRESS, "i", step=1, total=3),
        JobEvent(K.PREVIEW, "i", step=1, total=3, preview=first),
        JobEvent(K.PROGRESS, "i", step=2, total=3),
        JobEvent(K.PREVIEW, "i", step=2, total=3, preview=last),
        JobEvent(K.PROGRESS, "i", step=3, total=3),
    ]
    merged = coalesce(events)
    assert [(e.kind, e.step) for e in merged] == [(K.PREVIEW, 2), (K.PROGRESS, 3)]
    assert merged[0].preview is last


def test_nothing_crosses_a_state_change_and_other_jobs_keep_their_order():
    events = [
        *stream("a", ["x", "y"], end=K.CANCELLED),
        JobEvent(K.QUEUED, "b"),
        JobEvent(K.MODEL_INFO, "m"),
        *stream("b", ["p", "q", "r"], end=K.ERROR),
    ]
    merged = coalesce(events)
    kinds = [(e.kind, e.job_id) for e in merged]
    assert kinds == [
        (K.STARTED, "a"),
        (K.PREVIEW, "a"),
        (K.PROGRESS, "a"),
        (K.CANCELLED, "a"),
        (K.QUEUED, "b"),
        (K.MODEL_INFO, "m"),
        (K.STARTED, "b"),
        (K.PREVIEW, "b"),
        (K.PROGRESS, "b"),
        (K.ERROR, "b"),
    ]
    assert text_of(merged, "a") == "xy" and text_of(merged, "b") == "pqr"


def test_a_run_split_by_another_jobs_events_still_ends_before_its_terminal():
    events = [
        JobEvent(K.PROGRESS, "a", step=1, total=2),
        JobEvent(K.QUEUED, "b"),  # another job's event does not close a's run
        JobEvent(K.PROGRESS, "a", step=2, total=2),
        JobEvent(K.FINISHED, "a"),
    ]
    merged = coalesce(events)
    assert [(e.kind, e.job_id, e.step) for e in merged] == [
        (K.QUEUED, "b", 0),
        (K.PROGRESS, "a", 2),
        (K.FINISHED, "a", 0),
    ]


class ThreadedWorker:
    """Fires events from its own thread, as the real worker does."""

    def __init__(self) -> None:
        self.listeners: list[Callable[[JobEvent], None]] = []

    def subscribe(self, listener: Callable[[JobEvent], None]) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def fire(self, events: list[JobEvent], pause_every: int = 0) -> threading.Thread:
        def run() -> None:
            for n, event in enumerate(events, 1):
                for listener in list(self.listeners):
                    listener(event)
                if pause_every and n % pause_every == 0:
                    time.sleep(0.002)

        thread = threading.Thread(target=run, name="fake-worker")
        thread.start()
        return thread


@pytest.fixture
def bridge(qtbot):
    worker = ThreadedWorker()
    bridge = WorkerBridge(worker)
    received: list[JobEvent] = []
    bridge.delivered.connect(received.extend)
    yield worker, bridge, received
    bridge.detach()


def test_thousands_of_tokens_cross_in_a_few_batches_with_nothing_lost(bridge, qtbot):
    worker, _bridge, received = bridge
    chunks = [f"w{n} " for n in range(3000)]
    events = stream("a", chunks) + stream("b", ["only"], end=K.CANCELLED)
    started = time.monotonic()
    worker.fire(events, pause_every=50).join()
    qtbot.waitUntil(lambda: any(e.kind is K.CANCELLED for e in received), timeout=5000)
    elapsed = time.monotonic() - started
    assert text_of(received, "a") == "".join(chunks)  # every chunk, in order
    assert text_of(received, "b") == "only"
    for job in ("a", "b"):
        mine = [e for e in received if e.job_id == job]
        assert mine[0].kind is K.STARTED and mine[-1].is_terminal  # the end comes last
        assert sum(e.is_terminal for e in mine) == 1
    progress = [e for e in received if e.job_id == "a" and e.kind is K.PROGRESS]
    assert progress[-1].step == 3000  # the latest progress arrives
    assert [p.step for p in progress] == sorted(p.step for p in progress)
    # At most one batch per frame: far fewer deliveries than the 6,000 events sent.
    frames = elapsed / 0.016 + 2
    assert len(progress) <= frames, (len(progress), elapsed)
    assert len(received) < 1000


def test_the_first_event_after_a_quiet_spell_is_delivered_at_once(bridge, qtbot):
    worker, _bridge, received = bridge
    arrived: list[float] = []  # taken in the receiver: the test's own polling does not count
    _bridge.delivered.connect(lambda _batch: arrived.append(time.monotonic()))
    qtbot.wait(60)  # more than a frame since anything was drained
    sent = time.monotonic()
    worker.fire([JobEvent(K.PREVIEW, "a", preview="Hello")]).join()
    qtbot.waitUntil(lambda: bool(received), timeout=1000)
    assert arrived[0] - sent < 0.016 + 0.010  # within one frame (plus scheduling slack)


def test_flush_delivers_what_is_buffered_and_detach_stops_relaying(bridge, qtbot):
    worker, bridge_, received = bridge
    for listener in worker.listeners:
        listener(JobEvent(K.PROGRESS, "a", step=1, total=2))
        listener(JobEvent(K.PROGRESS, "a", step=2, total=2))
    bridge_.flush()
    assert [(e.kind, e.step) for e in received] == [(K.PROGRESS, 2)]
    bridge_.detach()
    assert not worker.listeners
    qtbot.wait(30)
    assert len(received) == 1


def test_while_a_stream_flows_the_worker_wakes_the_gui_thread_only_at_its_start(bridge, qtbot):
    """Each drain arms the next on the GUI thread's timer; the worker's posts would be extra wake-ups."""
    worker, bridge_, received = bridge
    wakes: list[int] = []
    bridge_._wake.connect(lambda: wakes.append(1), Qt.ConnectionType.DirectConnection)  # counted on the worker thread
    chunks = [f"w{n} " for n in range(400)]
    firing = worker.fire(stream("a", chunks), pause_every=10)  # ~0.2 s: several frames, the GUI draining
    qtbot.waitUntil(lambda: any(e.is_terminal for e in received), timeout=5000)
    firing.join()
    assert len([e for e in received if e.kind is K.PREVIEW]) >= 3  # it did span several drains
    assert text_of(received, "a") == "".join(chunks)
    assert len(wakes) <= 3, len(wakes)  # the stream's start (and a pause or two between bursts)
    qtbot.wait(120)  # the stream is over: a drain finds nothing and stops the timer
    assert not bridge_._timer.isActive()
    worker.fire([JobEvent(K.PREVIEW, "b", preview="again")]).join()
    qtbot.waitUntil(lambda: text_of(received, "b") == "again", timeout=1000)
    assert len(wakes) >= 2  # after the pause, the next event woke the GUI thread itself


def _preview_arrivals(bridge: WorkerBridge) -> dict[str, float]:
    """Each delivered preview (a text chunk) → when the receiver got it."""
    arrived: dict[str, float] = {}
    bridge.delivered.connect(
        lambda batch: arrived.update({e.preview: time.monotonic() for e in batch if e.kind is K.PREVIEW})
    )
    return arrived


def test_a_slow_stream_shows_each_token_as_it_comes_and_a_first_preview_never_waits(bridge, qtbot):
    """Tokens 40 ms apart (a big model): each is shown at once, not held for a frame after an empty
    drain; and a job's first token goes out at once even while a frame is being waited out."""
    worker, _bridge, _received = bridge
    arrived = _preview_arrivals(_bridge)
    sent: dict[str, float] = {}

    def slow() -> None:
        for n in range(6):
            sent[f"t{n}"] = time.monotonic()
            for listener in list(worker.listeners):
                listener(JobEvent(K.PREVIEW, "slow", step=n, preview=f"t{n}"))
            time.sleep(0.04)

    thread = threading.Thread(target=slow)
    thread.start()
    qtbot.waitUntil(lambda: len(arrived) == 6, timeout=3000)
    thread.join()
    lags = sorted(arrived[key] - sent[key] for key in sent)
    assert lags[4] < 0.010, lags  # nearly every token shown at once, not held for a frame
    for listener in worker.listeners:  # a frame is being waited out: progress of one job streams…
        listener(JobEvent(K.PROGRESS, "busy", step=1))
    _bridge.flush()
    first = time.monotonic()
    worker.fire([JobEvent(K.PREVIEW, "new", preview="first")]).join()
    qtbot.waitUntil(lambda: "first" in arrived, timeout=1000)
    assert arrived["first"] - first < 0.015  # …and another job's first token did not wait for it


def test_progress_alone_is_drained_ten_times_a_second_and_a_job_s_end_at_once(bridge, qtbot):
    """Music and image steps: a bar needs no 30 updates a second; the result must not wait."""
    worker, _bridge, received = bridge
    drains: list[float] = []
    _bridge.delivered.connect(lambda batch: drains.append(time.monotonic()))

    def steps() -> None:
        for n in range(1, 61):  # 0.6 s of progress, 100 a second
            for listener in list(worker.listeners):
                listener(JobEvent(K.PROGRESS, "music", step=n, total=61))
            time.sleep(0.01)

    thread = threading.Thread(target=steps)
    thread.start()
    qtbot.waitUntil(lambda: not thread.is_alive(), timeout=3000)
    thread.join()
    qtbot.wait(150)
    assert 4 <= len(drains) <= 10, len(drains)  # ~0.6 s at 10 a second, not 18 at 30
    assert max(e.step for e in received if e.kind is K.PROGRESS) == 60  # the latest always arrives
    for listener in list(worker.listeners):
        listener(JobEvent(K.PROGRESS, "music", step=61, total=61))
    _bridge.flush()  # a progress frame is now being waited out…
    ended = time.monotonic()
    worker.fire([JobEvent(K.FINISHED, "music")]).join()
    qtbot.waitUntil(lambda: any(e.is_terminal for e in received), timeout=1000)
    assert drains[-1] - ended < 0.015  # …and the job's end did not wait for it


def test_a_text_chunk_cuts_a_progress_frame_short(bridge, qtbot):
    """A slow model, a token every 40 ms, two in three decoding to no whole character (progress,
    no chunk): a frame of progress alone must not make the next chunk wait a progress frame."""
    worker, _bridge, _received = bridge
    arrived = _preview_arrivals(_bridge)
    sent: dict[str, float] = {}

    def slow() -> None:
        for n in range(24):
            for listener in list(worker.listeners):
                if n % 3 == 0:
                    sent[f"t{n}"] = time.monotonic()
                    listener(JobEvent(K.PREVIEW, "slow", step=n, preview=f"t{n}"))
                listener(JobEvent(K.PROGRESS, "slow", step=n, total=24))
            time.sleep(0.04)

    thread = threading.Thread(target=slow)
    thread.start()
    qtbot.waitUntil(lambda: len(arrived) == 8, timeout=5000)
    thread.join()
    lags = sorted(arrived[key] - sent[key] for key in sent)
    assert lags[-1] < 0.060, lags  # a 33 ms frame at most (and scheduling), never a 100 ms one

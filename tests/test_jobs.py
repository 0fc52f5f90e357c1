"""The window's job model (studio.ui.jobs): explicit states from the worker's events, per-tab
queries, the status bar's count (generation jobs only), a bounded history."""

from __future__ import annotations

import pytest
from helpers import show_active

from studio.core.capabilities import ModelInfo
from studio.core.events import EventKind, JobEvent
from studio.core.requests import ImageRequest, Request, TextRequest
from studio.ui.jobs import JobQueue, JobState


class FakeWorker:
    """Answers like the real worker: ``submit`` reports ``queued`` before it returns the id."""

    def __init__(self) -> None:
        self.queue: JobQueue | None = None
        self.submitted: list[tuple[str, Request, str | None]] = []
        self.cancelled: list[str] = []
        self.kept: list[str] = []

    def submit(self, request: Request, *, parent: str | None = None) -> str:
        job_id = f"job{len(self.submitted) + 1}"
        self.submitted.append((job_id, request, parent))
        assert self.queue is not None
        self.queue.on_event(JobEvent(EventKind.QUEUED, job_id, info={"position": 1, "kind": request.kind}))
        return job_id

    def cancel(self, job_id: str) -> bool:
        self.cancelled.append(job_id)
        return True

    def save_kept_output(self, job_id: str) -> str | None:
        self.kept.append(job_id)
        return f"save-of-{job_id}"


@pytest.fixture
def queue(qtbot):
    worker = FakeWorker()
    jobs = JobQueue(worker, history=3)
    worker.queue = jobs
    return jobs


def _text(prompt: str = "hello") -> TextRequest:
    return TextRequest(prompt=prompt, model="/models/lm")


def _image(prompt: str = "a fox") -> ImageRequest:
    return ImageRequest(prompt=prompt, model="/models/sd")


def test_states_follow_the_events_queued_running_then_finished(queue):
    changes = []
    queue.changed.connect(lambda job: changes.append((job.id, job.state)))
    job = queue.submit("text", _text(), parent="parent-item")
    assert job.state is JobState.QUEUED and job.owner == "text" and job.kind == "text"
    assert job.parent == "parent-item" and job.model == "/models/lm" and job.request == _text()
    assert queue.pending("text") == [job] and queue.queued("text") == [job] and queue.running() is None
    queue.on_event(JobEvent(EventKind.STARTED, job.id, info={"kind": "text", "model": "/models/lm", "seed": 3}))
    assert job.state is JobState.RUNNING and job.started_at > 0
    assert queue.running("text") is job and queue.queued() == [] and queue.pending("text") == [job]
    queue.on_event(JobEvent(EventKind.PROGRESS, job.id, step=2, total=5))
    assert (job.step, job.total) == (2, 5)
    queue.on_event(JobEvent(EventKind.FINISHED, job.id, result=["item"], info={"kind": "text"}))
    assert job.state is JobState.FINISHED and job.done and job.items == ["item"] and job.finished_at >= job.started_at
    assert queue.pending() == [] and queue.last("text") is job
    assert (job.id, JobState.RUNNING) in changes and changes[-1] == (job.id, JobState.FINISHED)


def test_cancelled_and_failed_jobs(queue):
    stopped = queue.submit("text", _text())
    queue.on_event(JobEvent(EventKind.STARTED, stopped.id, info={"kind": "text"}))
    queue.on_event(JobEvent(EventKind.CANCELLED, stopped.id, info={"partial": "once upon"}))
    assert stopped.state is JobState.CANCELLED and stopped.partial
    broken = queue.submit("image", _image())
    queue.on_event(JobEvent(EventKind.STARTED, broken.id, info={"kind": "image"}))
    queue.on_event(JobEvent(EventKind.ERROR, broken.id, error="out of memory", detail="Traceback …"))
    assert broken.state is JobState.FAILED and broken.error == "out of memory" and broken.detail == "Traceback …"
    assert not broken.unsaved
    late = JobEvent(EventKind.FINISHED, broken.id)  # nothing moves a job out of an end state
    queue.on_event(late)
    assert broken.state is JobState.FAILED


def test_counts_per_owner_and_cancel_reaches_only_that_tab(queue):
    images = [queue.submit("image", _image(str(n))) for n in range(3)]
    music = queue.submit("music", _text("not really music"))  # the owner is the tab, whatever it sends
    queue.on_event(JobEvent(EventKind.STARTED, images[0].id, info={"kind": "image"}))
    assert len(queue.pending("image")) == 3 and len(queue.queued("image")) == 2
    assert queue.pending("music") == [music] and queue.pending("text") == []
    assert queue.count_waiting() == 3  # two images and the music job wait; the running one does not
    cancelled = queue.cancel("image")
    assert [job.id for job in cancelled] == [job.id for job in images]
    assert queue._worker.cancelled == [job.id for job in images]
    assert music.id not in queue._worker.cancelled


def test_model_descriptions_are_not_jobs(queue):
    described = []
    queue.model_described.connect(described.append)
    job = queue.submit("image", _image())
    info = ModelInfo("/models/sd", kind="image")
    queue.on_event(JobEvent(EventKind.MODEL_INFO, "describe-1", result=info))
    queue.on_event(JobEvent(EventKind.MODEL_INFO, "describe-2", result=info))
    queue.on_event(JobEvent(EventKind.DEVICE, "probe", result={"name": "CPU"}))
    assert described == [info, info]
    assert queue.get("describe-1") is None and len(queue) == 1
    assert queue.count_waiting() == 1 and queue.pending() == [job]


def test_jobs_submitted_elsewhere_are_known_but_belong_to_no_tab(queue):
    queue.on_event(JobEvent(EventKind.QUEUED, "direct", info={"kind": "image"}))
    job = queue.get("direct")
    assert job is not None and job.owner == "" and job.kind == "image" and job.state is JobState.QUEUED
    assert queue.count_waiting() == 1 and queue.pending("image") == []
    queue.on_event(JobEvent(EventKind.FINISHED, "never-seen"))  # an end without a start: ignored
    assert queue.get("never-seen") is None


def test_keeping_a_stopped_text_is_a_saving_job_not_a_generation(queue):
    job = queue.submit("text", _text())
    queue.on_event(JobEvent(EventKind.STARTED, job.id, info={"kind": "text"}))
    queue.on_event(JobEvent(EventKind.CANCELLED, job.id, info={"partial": "the text so far"}))
    saving = queue.keep_partial("text")
    assert saving is not None and saving.saves == job.id and saving.owner == "text" and not saving.is_generation
    assert queue._worker.kept == [job.id] and not job.partial
    assert queue.keep_partial("text") is None  # kept once
    assert queue.pending("text") == [] and queue.count_waiting() == 0  # saving is not generating
    queue.on_event(JobEvent(EventKind.STARTED, saving.id, info={"kind": "text", "keep_of": job.id}))
    assert queue.running("text") is None
    queue.on_event(JobEvent(EventKind.FINISHED, saving.id, result=["item"], info={"keep_of": job.id}))
    assert saving.state is JobState.FINISHED and saving.items == ["item"]
    queue.submit("text", _text("next"))
    assert queue.keep_partial("text") is None  # only the last job's text can be kept


def test_a_failed_save_can_be_retried(queue):
    job = queue.submit("image", _image())
    queue.on_event(JobEvent(EventKind.STARTED, job.id, info={"kind": "image"}))
    queue.on_event(JobEvent(EventKind.ERROR, job.id, error="the disk is full.", info={"unsaved": True}))
    assert job.unsaved
    retry = queue.retry_save(job.id)
    assert retry is not None and retry.saves == job.id and not job.unsaved and retry.kind == "image"


def test_ended_jobs_are_pruned_to_the_history_pending_ones_never(queue):
    waiting = queue.submit("image", _image("waits"))
    ended = []
    for n in range(6):
        job = queue.submit("text", _text(str(n)))
        queue.on_event(JobEvent(EventKind.CANCELLED, job.id))
        ended.append(job)
    assert queue.get(waiting.id) is waiting
    assert [job.id for job in queue.jobs("text")] == [job.id for job in ended[-3:]]


def test_the_status_bar_counts_generation_jobs_only(qtbot, services):
    from studio.ui.main_window import MainWindow

    window = MainWindow(services)
    qtbot.addWidget(window)
    show_active(qtbot, window)
    try:
        jobs = window.jobs
        jobs.on_event(JobEvent(EventKind.QUEUED, "waiting-1", info={"kind": "image"}))
        jobs.on_event(JobEvent(EventKind.QUEUED, "waiting-2", info={"kind": "music"}))
        assert window.queue_label.text() == "Queue: 2"
        for n in range(3):  # descriptions (the tabs ask one per model change) are no jobs
            jobs.on_event(JobEvent(EventKind.MODEL_INFO, f"describe-{n}", result=ModelInfo(f"/m/{n}")))
        jobs.on_event(JobEvent(EventKind.STARTED, "waiting-1", info={"kind": "image", "model": "/m/sd"}))
        assert window.queue_label.text() == "Queue: 1"
        jobs.on_event(JobEvent(EventKind.CANCELLED, "waiting-2"))
        assert window.queue_label.text() == "Queue: 0"
        jobs.on_event(JobEvent(EventKind.FINISHED, "waiting-1"))
        assert window.queue_label.text() == "Queue: 0"
    finally:
        window.shutdown()


def test_the_window_remembers_the_model_a_job_ran_with(qtbot, services):
    from studio.ui.main_window import MainWindow

    window = MainWindow(services)
    qtbot.addWidget(window)
    try:
        shown = window.text_panel.model_picker.current_model()
        jobs = window.jobs
        jobs.on_event(JobEvent(EventKind.QUEUED, "j", info={"kind": "text"}))
        jobs.on_event(JobEvent(EventKind.STARTED, "j", info={"kind": "text", "model": "/models/the-jobs-own"}))
        assert services.settings.get("last_models")["text"] == "/models/the-jobs-own" != shown
    finally:
        window.shutdown()

"""The worker with stand-in engines: order, cancel, errors, the model cache, shutdown."""

import threading
import time
from pathlib import Path

import pytest
from helpers import EventLog

from studio.core.errors import ModelError
from studio.core.models import ModelSpec
from studio.core.outputs import EngineResult, GeneratedOutput
from studio.core.requests import TextRequest
from studio.gallery.store import GalleryStore
from studio.runtime.worker import Worker


class FakeCatalog:
    def resolve(self, ref):
        if ref == "missing":
            raise ModelError("no model called 'missing'")
        kind, fmt = ("image", "diffusers-image") if ref.startswith("img") else ("text", "transformers-text")
        return ModelSpec(ref, ref, kind, "fake", Path("/models") / ref, "path", True, format=fmt)


class FakeTextEngine:
    """Writes one word per step; honours cancel; can be told to fail."""

    kind = "text"

    def __init__(self, steps=5, step_time=0.0):
        self.steps = steps
        self.step_time = step_time
        self.loads = []
        self.step_started = threading.Event()

    def check(self, spec, request):
        pass

    def describe(self, spec):
        from studio.core.capabilities import Control
        from studio.engines.base import model_info

        return model_info(spec, [c for c in Control if c is not Control.SYSTEM_PROMPT], chat=False)

    def load(self, spec, device):
        self.loads.append(spec.id)
        return {"spec": spec}

    def unload(self, model):
        pass

    def generate(self, model, request, ctx):
        if request.prompt == "explode":
            raise ZeroDivisionError("deep inside a library")
        if request.prompt == "oom":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        words = []
        for step in range(1, self.steps + 1):
            self.step_started.set()
            if ctx.cancelled:
                break
            time.sleep(self.step_time)
            words.append(f"w{step}")
            ctx.preview(f"w{step} ", step, self.steps)
            ctx.progress(step, self.steps)
        info = {"stopped": ctx.cancelled}
        return EngineResult(
            [GeneratedOutput("text", " ".join(words), info)], model["spec"].provenance(), {"device": "cpu"}
        )


@pytest.fixture
def make_worker(tmp_path):
    made = []

    def make(engine=None):
        store = GalleryStore(tmp_path / "gallery")
        worker = Worker(store=store, catalog=FakeCatalog(), engines={"transformers-text": engine or FakeTextEngine()})
        made.append((worker, store))
        return worker, EventLog(worker), store

    yield make
    for worker, store in made:
        assert worker.shutdown(5)
        store.close()


def test_jobs_run_in_order_and_report_every_stage(make_worker):
    worker, log, store = make_worker()
    first = worker.submit(TextRequest(prompt="one", model="m"))
    second = worker.submit(TextRequest(prompt="two", model="m"))
    log.wait_end(second)
    assert log.kinds(first)[:2] == ["queued", "started"]
    assert log.kinds(first)[-1] == "finished"
    assert [e.step for e in log.of(first) if e.kind.value == "progress"] == [1, 2, 3, 4, 5]
    started = [e.job_id for e in log.events if e.kind.value == "started"]
    assert started == [first, second]
    finished = log.of(first)[-1]
    assert finished.result[0].path.exists()
    assert len(store.list()) == 2


def test_missing_seed_becomes_a_concrete_recorded_seed(make_worker):
    worker, log, _ = make_worker()
    job = worker.submit(TextRequest(prompt="x", model="m"))
    item = log.wait_end(job).result[0]
    assert isinstance(item.record.seed, int)
    assert item.record.request["seed"] == item.record.seed


def test_same_model_is_loaded_once(make_worker):
    engine = FakeTextEngine()
    worker, log, _ = make_worker(engine)
    for prompt in ("a", "b", "c"):
        log.wait_end(worker.submit(TextRequest(prompt=prompt, model="m")))
    assert engine.loads == ["m"]
    log.wait_end(worker.submit(TextRequest(prompt="d", model="other")))
    log.wait_end(worker.submit(TextRequest(prompt="e", model="other")))
    assert engine.loads == ["m", "other"]


def test_an_exception_becomes_an_error_and_the_worker_goes_on(make_worker, caplog):
    worker, log, _ = make_worker()
    bad = worker.submit(TextRequest(prompt="explode", model="m"))
    good = worker.submit(TextRequest(prompt="fine", model="m"))
    error = log.wait_end(bad)
    assert error.kind.value == "error"
    assert "ZeroDivisionError" in error.error and "deep inside a library" in error.error
    assert "Traceback" in error.detail
    logged = [r for r in caplog.records if r.exc_info and r.name == "studio.runtime.worker"]
    assert logged and logged[0].exc_info[0] is ZeroDivisionError
    assert log.wait_end(good).kind.value == "finished"


def test_unknown_model_and_wrong_kind_are_clear_errors(make_worker):
    worker, log, _ = make_worker()
    missing = log.wait_end(worker.submit(TextRequest(prompt="x", model="missing")))
    assert missing.kind.value == "error" and "missing" in missing.error
    wrong = log.wait_end(worker.submit(TextRequest(prompt="x", model="img-model")))
    assert "image model" in wrong.error


def test_out_of_memory_says_what_to_try(make_worker):
    worker, log, _ = make_worker()
    error = log.wait_end(worker.submit(TextRequest(prompt="oom", model="m")))
    assert error.kind.value == "error" and "out of memory" in error.error and "try" in error.error
    assert worker.cache.keys() == {}  # loaded models were freed
    assert log.wait_end(worker.submit(TextRequest(prompt="ok", model="m"))).kind.value == "finished"


def test_not_supported_kind_is_an_error_not_a_crash(make_worker, monkeypatch):
    from studio.core.requests import ImageRequest
    from studio.engines import registry

    monkeypatch.delitem(registry.ENGINES, "diffusers-image")
    worker, log, _ = make_worker()
    event = log.wait_end(worker.submit(ImageRequest(prompt="x", model="img-model")))
    assert event.kind.value == "error" and "not supported yet" in event.error


def test_cancel_a_queued_job_removes_it_at_once(make_worker):
    engine = FakeTextEngine(steps=50, step_time=0.01)
    worker, log, _store = make_worker(engine)
    running = worker.submit(TextRequest(prompt="long", model="m"))
    queued = worker.submit(TextRequest(prompt="never", model="m"))
    assert worker.cancel(queued)
    assert log.kinds(queued) == ["queued", "cancelled"]
    log.wait_end(running)
    assert "started" not in log.kinds(queued)


def test_cancel_a_running_job_stops_within_a_step_and_saves_nothing(make_worker):
    engine = FakeTextEngine(steps=1000, step_time=0.005)
    worker, log, store = make_worker(engine)
    job = worker.submit(TextRequest(prompt="long", model="m"))
    log.wait_for(lambda e: e.job_id == job and e.kind.value == "progress" and e.step >= 3)
    assert worker.cancel(job)
    cancelled_at = len([e for e in log.of(job) if e.kind.value == "progress"])
    end = log.wait_end(job, timeout=5)
    assert end.kind.value == "cancelled"
    steps_after = len([e for e in log.of(job) if e.kind.value == "progress"]) - cancelled_at
    assert steps_after <= 1
    assert store.list() == []
    assert end.info["partial"].startswith("w1 w2 w3")


def test_a_stopped_text_can_be_kept_on_request(make_worker):
    engine = FakeTextEngine(steps=1000, step_time=0.005)
    worker, log, _store = make_worker(engine)
    job = worker.submit(TextRequest(prompt="long", model="m"))
    log.wait_for(lambda e: e.job_id == job and e.kind.value == "progress" and e.step >= 2)
    worker.cancel(job)
    partial = log.wait_end(job).info["partial"]
    keep = worker.save_kept_output(job)
    kept = log.wait_end(keep)
    assert kept.kind.value == "finished"
    assert kept.result[0].path.read_text().rstrip("\n").endswith(partial)
    assert worker.save_kept_output(job) is None  # kept once


def test_shutdown_cancels_and_joins(tmp_path):
    engine = FakeTextEngine(steps=100000, step_time=0.001)
    store = GalleryStore(tmp_path / "g")
    worker = Worker(store=store, catalog=FakeCatalog(), engines={"transformers-text": engine})
    log = EventLog(worker)
    running = worker.submit(TextRequest(prompt="long", model="m"))
    queued = worker.submit(TextRequest(prompt="later", model="m"))
    engine.step_started.wait(5)
    assert worker.shutdown(timeout=5)
    assert not worker.alive
    assert log.kinds(queued)[-1] == "cancelled"
    assert log.kinds(running)[-1] == "cancelled"
    assert store.list() == []
    store.close()
    with pytest.raises(RuntimeError):
        worker.submit(TextRequest(prompt="after", model="m"))


def test_a_failing_listener_does_not_break_the_job(make_worker):
    worker, log, _ = make_worker()

    def broken(_event):
        raise ValueError("listener bug")

    worker.subscribe(broken)
    assert log.wait_end(worker.submit(TextRequest(prompt="x", model="m"))).kind.value == "finished"


def test_an_output_whose_save_failed_is_kept_for_a_retry(tmp_path, monkeypatch):
    from studio.core.errors import StudioError

    store = GalleryStore(tmp_path / "gallery")
    worker = Worker(store=store, catalog=FakeCatalog(), engines={"transformers-text": FakeTextEngine(steps=3)})
    log = EventLog(worker)
    original = store.save
    monkeypatch.setattr(store, "save", lambda *a, **k: (_ for _ in ()).throw(StudioError("the disk is full.")))
    job = worker.submit(TextRequest(prompt="keep me", model="lm"))
    end = log.wait_end(job)
    assert end.kind.value == "error" and end.info["unsaved"] and "kept in memory" in end.error
    retry = worker.save_kept_output(job)
    failed_again = log.wait_end(retry)  # still full: still kept
    assert failed_again.kind.value == "error" and failed_again.info["unsaved"]
    monkeypatch.setattr(store, "save", original)
    saved = log.wait_end(worker.save_kept_output(retry))
    assert saved.kind.value == "finished" and saved.info["keep_of"] == retry
    assert [i.record.prompt for i in store.list()] == ["keep me"]
    assert worker.shutdown()
    store.close()


def test_launch_probe_reports_the_device_then_preloads_every_engine(tmp_path):
    store = GalleryStore(tmp_path / "gallery")
    worker = Worker(store=store, catalog=FakeCatalog())
    log = EventLog(worker)
    job = worker.probe_device(preload_engines=True)
    device = log.wait_for(lambda e: e.job_id == job and e.kind.value == "device", timeout=120)
    assert device.result["device"] in ("cpu", "cuda", "mps") and worker.device_info == device.result
    deadline = time.monotonic() + 120
    while worker.busy and time.monotonic() < deadline:
        time.sleep(0.05)
    from studio.engines import registry

    assert set(worker._engines) == set(registry.ENGINES)  # one engine per model format
    assert worker.shutdown()
    store.close()


def test_describing_a_model_does_not_wait_for_a_running_job(make_worker):
    """Model descriptions run on a side lane: a tab's controls follow the picker during a render."""
    from studio.core.capabilities import Control, ModelInfo

    engine = FakeTextEngine(steps=100000, step_time=0.001)
    worker, log, _store = make_worker(engine)
    running = worker.submit(TextRequest(prompt="long", model="m"))
    waiting = worker.submit(TextRequest(prompt="next", model="m"))
    log.wait_for(lambda e: e.job_id == running and e.kind.value == "progress")
    asked = worker.describe_model("other")
    info = log.wait_for(lambda e: e.job_id == asked and e.kind.value == "model_info", timeout=5).result
    assert isinstance(info, ModelInfo) and info.ref == "other" and info.format == "transformers-text"
    assert not info.uses(Control.SYSTEM_PROMPT) and info.why_unused(Control.SYSTEM_PROMPT)
    assert log.kinds(running)[-1] == "progress"  # the render is still going
    assert worker.queued_count == 1  # the waiting job; the description was never in the queue
    assert log.kinds(asked) == ["model_info"]  # no queued/started events for a description
    worker.cancel_all()
    assert log.wait_end(waiting).kind.value == "cancelled"


def test_a_model_that_cannot_be_described_says_why(make_worker):
    worker, log, _store = make_worker()
    asked = worker.describe_model("missing")
    info = log.wait_for(lambda e: e.job_id == asked).result
    assert info.ref == "missing" and not info.runnable and "no model called" in info.reason


def test_the_start_event_names_the_jobs_own_model(make_worker):
    worker, log, _store = make_worker()
    job = worker.submit(TextRequest(prompt="hi", model="m"))
    log.wait_end(job)
    started = next(e for e in log.of(job) if e.kind.value == "started")
    assert started.info["model"] == "m" and isinstance(started.info["seed"], int)

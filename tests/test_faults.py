"""Faults while working: each gives a clear message, loses nothing, and the next job works."""

import shutil
import threading

from helpers import EventLog

from studio.core.requests import ImageRequest, TextRequest


def test_a_model_folder_deleted_after_it_was_listed(services, tiny_lm, tmp_path):
    copy = tmp_path / "doomed-lm"
    shutil.copytree(tiny_lm, copy)
    log = EventLog(services.worker)
    first = log.wait_end(services.worker.submit(TextRequest(prompt="a", model=str(copy), max_tokens=2)))
    assert first.kind.value == "finished"
    services.worker.cache.clear()
    shutil.rmtree(copy)
    gone = log.wait_end(services.worker.submit(TextRequest(prompt="b", model=str(copy), max_tokens=2)))
    assert gone.kind.value == "error" and "does not exist" in gone.error
    again = log.wait_end(services.worker.submit(TextRequest(prompt="c", model=str(tiny_lm), max_tokens=2)))
    assert again.kind.value == "finished"
    assert len(services.store.list()) == 2


def test_closing_while_a_job_runs_cancels_it_saves_nothing_and_leaves_no_thread(paths, tiny_sd):
    from studio.runtime.services import open_services

    services = open_services(paths)
    log = EventLog(services.worker)
    job = services.worker.submit(ImageRequest(prompt="x", model=str(tiny_sd), width=64, height=64, steps=400, seed=1))
    log.wait_for(lambda e: e.job_id == job and e.kind.value == "progress", timeout=120)
    assert services.close(timeout=30)
    assert log.wait_end(job).kind.value == "cancelled"
    assert not [t for t in threading.enumerate() if t.name.startswith("studio-")]
    assert not [p for p in paths.gallery.rglob("*") if p.is_file() and p.suffix in (".png", ".json")]

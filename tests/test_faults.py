"""Faults while working: each gives a clear message, loses nothing, and the next job works."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
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


def _read_only_mode() -> str | None:
    """How this machine can make a folder read-only for real: root ignores file modes, so as root
    a private mount namespace with a read-only bind mount; otherwise by taking the write bits away."""
    if os.geteuid() != 0:
        return "chmod"
    if shutil.which("unshare") and shutil.which("mount"):
        probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], check=False, capture_output=True)
        if probe.returncode == 0:
            return "mount"
    return None


@pytest.mark.skipif(_read_only_mode() is None, reason="root without the right to make a private mount namespace")
def test_the_data_folder_becoming_read_only(tiny_lm, tmp_path):
    from studio.core.paths import StudioPaths
    from studio.gallery.store import GalleryStore

    mode = _read_only_mode()
    data = tmp_path / "data"
    command = [sys.executable, str(Path(__file__).parent / "read_only_session.py"), str(data), str(tiny_lm), mode]
    if mode == "mount":
        command = ["unshare", "-m", "--propagation", "private", *command]
    environment = {**os.environ, "STUDIO_DATA_DIR": str(data)}
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300, env=environment)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])

    assert report["before"]["kind"] == "finished" and report["really_read_only"]
    refused = report["while_read_only"]
    assert refused["kind"] == "error" and refused["unsaved"]
    assert "read-only" in refused["error"] and "kept in memory" in refused["error"]
    assert report["listed_while_read_only"] == ["saved before"]  # the gallery still reads
    assert report["retry_while_read_only"]["kind"] == "error"  # still read-only: still kept
    assert report["retry_when_writable"]["kind"] == "finished"
    assert report["after"]["kind"] == "finished" and report["alive"] and report["closed"]
    assert report["prompts"] == ["made while read-only", "saved after", "saved before"]

    store = GalleryStore(StudioPaths.under(data).gallery)
    try:
        items = store.list()
        assert len(items) == 3
        for item in items:
            assert hashlib.sha256(item.path.read_bytes()).hexdigest() == item.record.output["sha256"]
        assert not list(StudioPaths.under(data).gallery.rglob(".partial-*"))
    finally:
        store.close()

"""The window's queue on a Ray cluster: the "Run on" settings page, the router that sends jobs to a
cluster (connecting off the GUI thread) with its fallback or stop when the cluster is out of reach or
lost, and the real window on a local Ray cluster (one Ray start for this module)."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
from helpers import EventLog

from studio.core.errors import StudioError
from studio.core.events import EventKind, JobEvent
from studio.core.requests import ImageRequest
from studio.runtime.cluster import ClusterJob
from studio.runtime.job_router import ClusterTarget, JobRouter

PATTERNS = str(Path(__file__).parents[1] / "resources" / "models" / "studio-starter-patterns")


def _fox(seed: int) -> ImageRequest:
    return ImageRequest(prompt="a red fox", model=PATTERNS, width=16, height=16, seed=seed)


class FakeCluster:
    """Takes jobs and runs none; ``lose()`` hands them back as a cluster gone mid-queue does."""

    def __init__(self, store, target, on_lost) -> None:
        self.on_lost, self.jobs, self.listeners, self.down = on_lost, [], [], False

    size = 2

    def nodes(self):
        return [{"host": "gpu-box", "name": "node-1"}, {"host": "gpu-box", "name": "node-2"}]

    def subscribe(self, listener):
        self.listeners.append(listener)
        return lambda: None

    def submit(self, request, *, parent=None, record_runtime=None, job_id=None):
        self.jobs.append(ClusterJob(job_id, request, dict(record_runtime or {}), parent))
        return job_id

    def submit_task(self, work, *, kind, info=None, job_id=None):
        self.jobs.append(ClusterJob(job_id, None, task=work, task_info={"kind": kind, **(info or {})}))
        return job_id

    def cancel(self, job_id):
        return True

    def lose(self):
        self.on_lost("the Ray cluster at ray://gpu-box:10001 is gone: ConnectionError", list(self.jobs))

    def shutdown(self):
        self.down = True


def test_the_settings_have_a_cluster_page(window, qtbot):
    from studio.ui.settings_dialog import PAGES

    dialog = window.settings_dialog()
    qtbot.addWidget(dialog)
    assert PAGES["Cluster"] == ("run_on", "cluster_address", "cluster_workers", "cluster_if_lost")
    run_on, address = dialog.controls["run_on"], dialog.controls["cluster_address"]
    assert run_on.currentData() == "this_machine" and address.text() == "local"
    run_on.setCurrentIndex(run_on.findData("cluster"))
    address.setText("ray://gpu-box")  # no port
    assert not dialog.apply() and "Ray cluster address" in dialog.error.text()
    address.setText("ray://gpu-box:10001")
    dialog.controls["cluster_workers"].setValue(3)
    dialog.controls["cluster_if_lost"].setCurrentIndex(dialog.controls["cluster_if_lost"].findData("stop"))
    opened = []
    window.runner._open_cluster = lambda store, target, on_lost: (
        opened.append(target) or FakeCluster(store, target, on_lost)
    )
    assert dialog.apply()
    settings = window.services.settings
    assert [settings.get(n) for n in PAGES["Cluster"]] == ["cluster", "ray://gpu-box:10001", 3, "stop"]
    qtbot.waitUntil(lambda: window.runner.where == "cluster", timeout=5000)
    assert opened[0].address == "ray://gpu-box:10001" and opened[0].if_lost == "stop"
    qtbot.waitUntil(lambda: "gpu-box:10001 · 2 workers on 1 machine" in window.runs_on_label.toolTip(), timeout=5000)
    window.runner.configure(None)
    qtbot.waitUntil(lambda: window.runs_on_label.text() == "Runs on: this machine", timeout=5000)


def test_without_a_cluster_the_window_opens_no_socket(window, qtbot, monkeypatch):
    attempts = []

    def refuse(sock, address, *args, **kwargs):
        attempts.append(address)
        raise OSError("network access is forbidden in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    assert window.runner.where == "local" and window.runs_on_label.text() == "Runs on: this machine"
    job = window.jobs.submit("image", _fox(1))
    qtbot.waitUntil(lambda: job.done, timeout=60000)
    assert job.state.value == "finished" and "node" not in job.items[0].record.runtime
    assert attempts == []


def _router(services, if_lost, open_cluster):
    target = ClusterTarget("ray://gpu-box:10001", if_lost=if_lost, lost_after=1)
    return JobRouter(services.worker, services.store, target=target, open_cluster=open_cluster)


def test_a_cluster_out_of_reach_falls_back_or_stops_as_chosen(services):
    gate = threading.Event()
    calls = []

    def unreachable(store, target, on_lost):
        calls.append(target)
        gate.wait(10)  # connecting takes a while: jobs submitted meanwhile wait in the router
        raise StudioError("could not reach the Ray cluster at ray://gpu-box:10001: Connection refused")

    router = _router(services, "fall_back", unreachable)
    log = EventLog(router)
    assert router.where == "connecting"
    waiting = [router.submit(_fox(seed)) for seed in (1, 2)]
    gate.set()
    ends = [log.wait_end(job, 60) for job in waiting]
    assert [e.kind for e in ends] == [EventKind.FINISHED] * 2 and services.store.count() == 2
    assert router.where == "local" and "Connection refused" in router.status_text
    stopping = _router(services, "stop", unreachable)
    log = EventLog(stopping)
    failed = log.wait_end(stopping.submit(_fox(3)), 30)
    assert failed.kind is EventKind.ERROR and "The queue stopped" in failed.error and failed.info["cluster_lost"]
    assert stopping.where == "lost"
    # Job 3 may have been held by the router's first attempt or have started a second one (when that
    # attempt had already failed): either way the next job tries the cluster once more.
    tried = len(calls)
    again = log.wait_end(stopping.submit(_fox(4)), 30)  # the next job tries the cluster again
    assert again.kind is EventKind.ERROR and len(calls) == tried + 1
    assert services.store.count() == 2


def test_a_cluster_lost_mid_queue_hands_its_jobs_to_this_machine_once(services):
    made: list[FakeCluster] = []

    def fake(store, target, on_lost):
        made.append(FakeCluster(store, target, on_lost))
        return made[-1]

    router = _router(services, "fall_back", fake)
    router.connect()
    assert router.where == "cluster"
    log = EventLog(router)
    jobs = [router.submit(_fox(seed)) for seed in (1, 2, 3)]
    grid = router.submit_task(lambda: ["grid"], kind="grid", info={"sweep_grid": 0})
    assert len(made[0].jobs) == 4 and services.store.count() == 0
    made[0].lose()  # the cluster's thread reports what it had not finished
    ends = [log.wait_end(job, 60) for job in [*jobs, grid]]
    assert [e.kind for e in ends] == [EventKind.FINISHED] * 4
    assert ends[3].result == ["grid"]  # the grid ran after its cells, under its own id
    assert services.store.count() == 3 and router.where == "local" and "jobs run here" in router.status_text
    assert sum(1 for e in log.events if e.is_terminal) == 4  # one end each: nothing twice
    deadline = time.monotonic() + 5
    while not made[0].down and time.monotonic() < deadline:
        time.sleep(0.02)
    assert made[0].down
    stopping = _router(services, "stop", fake)
    stopping.connect()
    log = EventLog(stopping)
    job = stopping.submit(_fox(9))
    made[-1].lose()
    end = log.wait_end(job, 10)
    assert end.kind is EventKind.ERROR and "is gone" in end.error and services.store.count() == 3
    stopping.close_cluster()
    router.close_cluster()


ray = pytest.importorskip("ray")


def test_the_window_queue_runs_on_a_local_ray_cluster(qtbot, services):
    from studio.ui.main_window import MainWindow

    settings = services.settings
    settings.set("run_on", "cluster")
    settings.set("cluster_address", "local")
    settings.set("cluster_workers", 1)
    started = time.monotonic()
    main = MainWindow(services)
    built_s = time.monotonic() - started
    qtbot.addWidget(main)
    main.show()
    assert built_s < 5 and main.runner.where == "connecting"  # Ray starts on a thread of its own
    assert main.runs_on_label.text().startswith("Runs on: connecting")
    panel = main.image_panel
    panel.model_picker.setCurrentIndex(panel.model_picker.findData(PATTERNS))
    qtbot.keyClicks(panel.prompt, "a red fox")
    panel.width_box.setValue(64)
    panel.height_box.setValue(64)
    saved = []
    panel.items_saved.connect(saved.extend)
    events: list[JobEvent] = []
    main.bridge.delivered.connect(events.extend)
    qtbot.waitUntil(panel.generate_button.isEnabled, timeout=20000)
    panel.generate_button.click()  # queued while Ray starts: it waits for the cluster
    qtbot.waitUntil(lambda: len(saved) == 1, timeout=240000)
    item = saved[0]
    assert item.record.runtime["node"]["name"] == "node-1" and item.record.runtime["node"]["pid"] > 0
    assert "Ray cluster on this machine · 1 worker" in main.runs_on_label.text()
    assert any(e.kind is EventKind.PROGRESS for e in events)  # progress streamed back from the node
    assert services.store.count() == 1 and services.store.get(item.id) is not None
    main.shutdown()
    assert not ray.is_initialized()


def test_studio_batch_with_a_cluster_out_of_reach_stops_or_falls_back(data_dir, tmp_path):
    from test_cli import studio_cli

    plan = tmp_path / "two.toml"
    plan.write_text(
        f'[[job]]\nkind = "image"\nmodel = "{PATTERNS}"\nprompt = "a fox"\nwidth = 16\nheight = 16\nseeds = [1]\n'
    )
    nowhere = "ray://127.0.0.1:1"
    stopped = studio_cli("batch", str(plan), "--cluster", nowhere, "--if-lost", "stop", data_dir=data_dir)
    assert stopped.returncode == 1 and stopped.stderr.count(f"could not reach the Ray cluster at {nowhere}") >= 1
    assert f"could not reach the Ray cluster at {nowhere}: could not reach" not in stopped.stderr  # said once
    assert "0 made" not in stopped.stderr  # refused before any job
    fell_back = studio_cli("batch", str(plan), "--cluster", nowhere, "--json", data_dir=data_dir)
    assert fell_back.returncode == 0, fell_back.stderr
    assert "jobs run on this machine (could not reach" in fell_back.stderr
    item = json.loads(fell_back.stdout.splitlines()[-1])
    assert item["kind"] == "image"

"""Batch plans on a local Ray cluster: actors run Studio's engines, the local gallery saves each output once."""

import os
import signal
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from studio.core.errors import StudioError  # noqa: E402
from studio.core.events import EventKind  # noqa: E402
from studio.core.requests import ImageRequest, MusicRequest, TextRequest  # noqa: E402
from studio.runtime import cluster  # noqa: E402
from studio.runtime.batch import load_plan, run_plan  # noqa: E402

MODELS = Path(__file__).parents[1] / "resources" / "models"
PATTERNS, TEXT, MELODY = (str(MODELS / f"studio-starter-{n}") for n in ("patterns", "text", "melody"))


@pytest.fixture(scope="module")
def local_ray():
    """One Ray start for the module (it is the slow part): two CPUs, bound to loopback."""
    ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False,
             object_store_memory=256 * 1024 * 1024)  # fmt: skip
    yield
    ray.shutdown()


@pytest.fixture
def nodes(local_ray, services, data_dir):
    runner = cluster.ClusterWorker(services.store, address="local", workers=2, data_dir=str(data_dir))
    yield runner
    runner.shutdown()


def _ends(runner, jobs, timeout=240):
    ends, deadline = {}, time.monotonic() + timeout
    seen = []
    runner.subscribe(seen.append)
    while len(ends) < len(jobs) and time.monotonic() < deadline:
        for event in list(seen):
            if event.job_id in jobs and event.is_terminal:
                ends[event.job_id] = event
        time.sleep(0.05)
    return ends


def test_a_plan_of_text_image_and_music_runs_on_two_actors(nodes, services, tmp_path):
    plan_file = tmp_path / "mixed.toml"
    plan_file.write_text(
        f"""
[[job]]
kind = "image"
model = "{PATTERNS}"
prompt = "a red fox"
width = 32
height = 32
seeds = [1, 2, 3]
[[job]]
kind = "text"
model = "{TEXT}"
prompt = "In the beginning"
max_tokens = 6
seeds = [4]
[[job]]
kind = "music"
model = "{MELODY}"
prompt = "a jig"
duration = 2
seeds = [5]
"""
    )
    plan = load_plan(plan_file, default_model=lambda kind: "")
    items = []
    outcome = run_plan(
        plan, nodes, services.store, resume=False, on_item=lambda job, item, skipped: items.append(item),
        on_failure=lambda job, why: pytest.fail(why),
    )  # fmt: skip
    assert outcome.made == 5 and not outcome.failed
    assert sorted(item.kind for item in items) == ["image", "image", "image", "music", "text"]
    assert services.store.count() == 5
    nodes_used = {item.record.runtime["node"]["name"] for item in items}
    assert nodes_used <= {"node-1", "node-2"} and all(i.record.runtime["node"]["pid"] != os.getpid() for i in items)
    assert all(item.record.runtime["batch"]["plan"] == "mixed" for item in items)
    # The same seed on a node gives the same image as on this machine.
    local = services.worker.submit(ImageRequest(prompt="a red fox", model=PATTERNS, width=32, height=32, seed=1))
    from helpers import EventLog

    here = EventLog(services.worker).wait_end(local, 120).result[0]
    remote = next(i for i in items if i.kind == "image" and i.record.seed == 1)
    assert here.record.output["content_sha256"] == remote.record.output["content_sha256"]


def test_an_actor_killed_mid_job_is_replaced_and_the_job_saved_once(nodes, services):
    pids = nodes.node_pids()  # before the job: an actor answers one call at a time
    seen = []
    nodes.subscribe(seen.append)
    slow = nodes.submit(ImageRequest(prompt="a fox", model=PATTERNS, width=1536, height=1536, seed=9))
    deadline = time.monotonic() + 60
    while not any(e.job_id == slow and e.kind is EventKind.STARTED for e in seen) and time.monotonic() < deadline:
        time.sleep(0.05)
    started = next(e for e in seen if e.job_id == slow and e.kind is EventKind.STARTED)
    pid = pids[started.info["node"]]
    deadline = time.monotonic() + 60
    while not any(e.job_id == slow and e.kind is EventKind.PROGRESS for e in seen) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)  # inside the job: it has begun painting
    assert not any(e.job_id == slow and e.is_terminal for e in seen)
    deadline = time.monotonic() + 240
    while not any(e.job_id == slow and e.is_terminal for e in seen) and time.monotonic() < deadline:
        time.sleep(0.05)
    end = next(e for e in seen if e.job_id == slow and e.is_terminal)
    assert end.kind is EventKind.FINISHED, end.error
    assert services.store.count() == 1  # run again elsewhere, saved once
    assert end.result[0].record.runtime["node"]["pid"] != pid


def test_a_node_without_the_model_fails_that_job_and_the_others_finish(nodes, services, tmp_path):
    missing = nodes.submit(TextRequest(prompt="hi", model=str(tmp_path / "no-such-model")))
    fine = nodes.submit(MusicRequest(prompt="a reel", model=MELODY, duration=1, seed=2))
    ends = _ends(nodes, {missing, fine})
    assert ends[missing].kind is EventKind.ERROR and "no-such-model" in ends[missing].error
    assert ends[fine].kind is EventKind.FINISHED


def test_without_ray_the_cluster_option_names_the_extra(monkeypatch, services):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError
    with pytest.raises(StudioError, match=r"studio\[cluster\]"):
        cluster.ClusterWorker(services.store, address="local")

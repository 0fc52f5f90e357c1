"""A real multi-node Ray cluster on this machine (``ray.cluster_utils.Cluster``): a head that runs no job
and two worker nodes, each a Studio worker with its own data folder and model folders. A node lacking a
model passes the job on; a node removed mid-job → the job completes on the other, saved once; the whole
cluster gone mid-queue → the router falls back to this machine. One cluster for the module.

The 200-job plan of issue 25's "Done when" (a killed worker and a killed client, then ``--resume``) runs
``studio batch`` as a subprocess against this cluster (about 40 s on two cores, with tiny pictures).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from helpers import EventLog

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from studio.core.events import EventKind  # noqa: E402
from studio.core.requests import ImageRequest  # noqa: E402
from studio.core.settings import Settings  # noqa: E402
from studio.runtime.cluster import ClusterWorker  # noqa: E402
from studio.runtime.job_router import ClusterTarget, JobRouter  # noqa: E402

PATTERNS = Path(__file__).parents[1] / "resources" / "models" / "studio-starter-patterns"


def _node_home(root: Path, name: str, models: list[str]) -> Path:
    """A node's own data folder whose model folder holds copies of the pattern painter, by name."""
    home, folder = root / name, root / name / "models"
    for model in models:
        shutil.copytree(PATTERNS, folder / model)
    settings = Settings(home / "config" / "settings.json")
    settings.set("model_folders", [str(folder)])
    settings.save()
    return home


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("nodes")
    homes = {
        "a": _node_home(root, "node-a", ["patterns-everywhere", "patterns-only-on-a"]),
        "b": _node_home(root, "node-b", ["patterns-everywhere"]),
    }
    head = {"num_cpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False}
    made = Cluster(initialize_head=True, head_node_args=head)

    def add(name: str):
        env = {"STUDIO_DATA_DIR": str(homes[name])}
        return made.add_node(num_cpus=1, node_ip_address="127.0.0.1", env_vars=env)

    nodes = {"a": add("a"), "b": add("b")}
    made.wait_for_nodes()
    from studio.runtime.cluster import _loopback_stays_loopback

    with _loopback_stays_loopback(True):  # the cluster listens on loopback only: join it there
        ray.init(address=made.address, _node_ip_address="127.0.0.1", log_to_driver=False, logging_level="WARNING")
    yield {"cluster": made, "nodes": nodes, "add": add, "homes": homes}
    ray.shutdown()
    made.shutdown()


def _both_ready(runner) -> None:
    deadline = time.monotonic() + 120
    while len(runner.nodes()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.fixture
def queue(cluster, services):
    runner = ClusterWorker(services.store, address=cluster["cluster"].address, lost_after=30)
    _both_ready(runner)
    yield runner
    runner.shutdown()


def _node_of(item) -> str:
    return item.record.runtime["node"]["node_id"]


def test_each_node_is_a_worker_of_its_own(queue, cluster):
    nodes = queue.nodes()
    assert len(nodes) == 2 and {n["node_id"] for n in nodes} == {cluster["nodes"][k].node_id for k in "ab"}


def test_a_node_without_the_model_passes_the_job_on_and_none_having_it_fails_that_job(queue, services, cluster):
    log = EventLog(queue)
    only_a = [queue.submit(ImageRequest(prompt="a fox", model="patterns-only-on-a", width=16, height=16, seed=s))
              for s in range(4)]  # fmt: skip
    both = [queue.submit(ImageRequest(prompt="a fox", model="patterns-everywhere", width=16, height=16, seed=s))
            for s in range(2)]  # fmt: skip
    nowhere = queue.submit(ImageRequest(prompt="a fox", model="patterns-nowhere", width=16, height=16, seed=1))
    ends = {job: log.wait_end(job, 180) for job in [*only_a, *both, nowhere]}
    assert all(ends[job].kind is EventKind.FINISHED for job in only_a + both), [e.error for e in ends.values()]
    node_a = cluster["nodes"]["a"].node_id
    assert {_node_of(ends[job].result[0]) for job in only_a} == {node_a}  # only the node that has it made them
    error = ends[nowhere].error
    assert ends[nowhere].kind is EventKind.ERROR and "no node of the cluster has the model" in error
    assert error.count("patterns-nowhere") == 2 and "node-1" in error and "node-2" in error  # each node said why
    assert services.store.count() == 6


def test_a_node_removed_mid_job_its_job_completes_on_the_other_saved_once(queue, services, cluster):
    log = EventLog(queue)
    slow = queue.submit(ImageRequest(prompt="a fox", model=str(PATTERNS), width=1536, height=1536, seed=9))
    started = log.wait_for(lambda e: e.job_id == slow and e.kind is EventKind.STARTED, 60)
    log.wait_for(lambda e: e.job_id == slow and e.kind is EventKind.PROGRESS, 120)  # it has begun painting
    running_on = next(n for n in queue.nodes() if n["name"] == started.info["node"])["node_id"]
    key = next(k for k, node in cluster["nodes"].items() if node.node_id == running_on)
    cluster["cluster"].remove_node(cluster["nodes"][key])  # the node and every process on it
    end = log.wait_end(slow, 300)
    assert end.kind is EventKind.FINISHED, end.error
    assert _node_of(end.result[0]) != running_on and services.store.count() == 1
    assert sum(1 for e in log.of(slow) if e.is_terminal) == 1
    cluster["nodes"][key] = cluster["add"](key)  # the cluster whole again for the next tests
    cluster["cluster"].wait_for_nodes()


def test_the_cluster_gone_mid_queue_falls_back_to_this_machine(services, cluster):
    target = ClusterTarget(cluster["cluster"].address, if_lost="fall_back", lost_after=3)
    router = JobRouter(services.worker, services.store, target=target)
    router.connect()
    assert router.where == "cluster", router.status_text
    log = EventLog(router)
    jobs = [router.submit(ImageRequest(prompt="a fox", model=str(PATTERNS), width=512, height=512, seed=s))
            for s in range(6)]  # fmt: skip
    log.wait_for(lambda e: e.kind is EventKind.PROGRESS, 120)
    for key in ("a", "b"):  # every worker node gone: nothing can run there any more
        cluster["cluster"].remove_node(cluster["nodes"][key])
    ends = {job: log.wait_end(job, 300) for job in jobs}
    assert all(e.kind is EventKind.FINISHED for e in ends.values()), [e.error for e in ends.values()]
    assert router.where == "local" and "jobs run here" in router.status_text
    ids = [e.result[0].id for e in ends.values()]
    assert len(set(ids)) == 6 and services.store.count() == 6  # each job once, wherever it ended
    here = [e for e in ends.values() if "node" not in e.result[0].record.runtime]
    assert here, "some jobs ran on this machine after the cluster was gone"
    router.close_cluster()
    for key in ("a", "b"):
        cluster["nodes"][key] = cluster["add"](key)
    cluster["cluster"].wait_for_nodes()


def _studio_batch(data_dir: Path, plan: Path, address: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "STUDIO_DATA_DIR": str(data_dir)}
    return subprocess.Popen(
        [sys.executable, "-m", "studio", "batch", str(plan), "--cluster", address, "--json", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def _actor_pids() -> list[int]:
    """The processes of Studio's node actors (Ray titles them ``ray::StudioNode…``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"StudioNode" in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.mark.timeout(900)
def test_a_200_job_plan_survives_a_killed_worker_and_a_killed_client(cluster, data_dir, tmp_path):
    plan = tmp_path / "two-hundred.toml"
    seeds = ", ".join(str(n) for n in range(200))
    plan.write_text(
        f'name = "two-hundred"\n[[job]]\nkind = "image"\nmodel = "{PATTERNS}"\nprompt = "a red fox"\n'
        f"width = 16\nheight = 16\nseeds = [{seeds}]\n"
    )
    address = cluster["cluster"].address
    client = _studio_batch(data_dir, plan, address)
    lines: list[str] = []
    killed_worker = False
    while client.poll() is None:
        line = client.stdout.readline()
        if line.startswith("{"):
            lines.append(line)
        if len(lines) == 20 and not killed_worker:
            os.kill(_actor_pids()[0], signal.SIGKILL)  # a worker, mid-plan
            killed_worker = True
        if len(lines) >= 80:
            client.kill()  # the client, mid-plan: SIGKILL, nothing gets to tidy up
            break
    client.wait(60)
    assert killed_worker and len(lines) >= 80
    again = _studio_batch(data_dir, plan, address, "--resume")
    out, err = again.communicate(timeout=1500)
    assert again.returncode == 0, err[-3000:]
    items = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(items) == 200 and sum(1 for i in items if i["batch"]["skipped"]) >= 80
    from studio.core.paths import StudioPaths
    from studio.runtime.services import open_services

    services = open_services(StudioPaths.under(data_dir))
    try:
        keys = Counter(key for key in services.store.batch_keys("two-hundred"))
        assert len(keys) == 200 and services.store.count() == 200  # every output once
        nodes = Counter(services.store.get(i["id"]).record.runtime["node"]["node_id"] for i in items)
        assert set(nodes) <= {node.node_id for node in cluster["nodes"].values()} and len(nodes) == 2
    finally:
        services.close()

"""One queue across many machines, with Ray: Studio's engines in a Ray actor per GPU (or CPU worker).

``ClusterWorker`` stands in for the local ``Worker`` wherever a queue of jobs runs (batch plans,
sweeps): the same ``submit`` / ``submit_task`` / ``cancel`` / ``subscribe`` and the same events.
Each actor (``_node_class``) runs a whole Studio worker of its own — its own model cache, catalog
and weight fingerprints — over a store that hands the outputs back instead of writing them; the
outputs travel back as arrays and are saved here, in the *local* gallery, each record naming the
node and its device (``runtime.node``). Saving happens only here, after an actor returned, so a
lost actor or node never leaves half an item and a job run again elsewhere is saved once.

Faults: an actor is given jobs only once it has answered (a replacement that cannot be placed
never takes one); a node that lacks a job's model says so and the job moves to a node not yet
tried (only when none has it is that job's error final); an actor or node lost mid-job is replaced
and the job runs again elsewhere. The cluster itself gone (Ray raises something other than a lost
actor, or no actor can run for ``lost_after`` seconds) ends this ClusterWorker: ``on_lost`` gets
every job not yet ended, in order (``studio.runtime.job_router`` falls back to this machine or
stops, as the user chose), or without one each of them fails saying so.

Ray is an optional extra (``studio[cluster]``); nothing here imports it until a cluster is asked
for. Studio connects only to the address the user gives (``ray://HOST:PORT``, Ray Client; or the
``HOST:PORT`` of a cluster this machine is a node of) or starts one whose node address is
127.0.0.1 (``local``); it opens no listening socket itself. (Ray's own servers of a local cluster
still listen on every interface — Ray 2.60 cannot bind them to loopback; docs/BATCH.md says so.)
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import logging
import os
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.errors import StudioError
from studio.core.events import EventKind, JobEvent
from studio.core.files import first_line
from studio.core.outputs import GeneratedOutput
from studio.core.provenance import ProvenanceRecord
from studio.core.requests import Request, request_from_dict, source_file
from studio.gallery.store import GalleryStore

log = logging.getLogger(__name__)

RAY_MISSING = (
    "running on a Ray cluster needs Ray, which is an optional extra: pip install 'studio[cluster]' "
    "(or pip install 'ray>=2.9'), then run again"
)
# A job whose actor died is run again on another actor this many times before it fails.
MAX_ATTEMPTS = 3
# How long the cluster may have no actor able to run before it counts as gone (seconds).
LOST_AFTER_S = 60.0
# Progress and previews from a node: at most this often (each is a call to the queue actor).
_STREAM_EVERY_S = 0.1
Listener = Callable[[JobEvent], None]


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise StudioError(RAY_MISSING) from exc
    return ray


@contextlib.contextmanager
def _loopback_stays_loopback(active: bool) -> Iterator[None]:
    """Joining a cluster at 127.0.0.1:PORT (one on this machine bound to loopback), Ray replaces the
    127.0.0.1 by this machine's routable address (``ray._private.services.resolve_ip_for_localhost``)
    and then cannot reach a cluster that listens on loopback only. While joining, this machine's
    address as Ray sees it is loopback. Ray's private helper: without it, Ray's own behaviour."""
    services = sys.modules.get("ray._private.services")
    original = getattr(services, "node_ip_address_from_perspective", None)
    if not active or original is None:
        yield
        return
    services.node_ip_address_from_perspective = lambda address=None: "127.0.0.1"  # type: ignore[union-attr]
    try:
        yield
    finally:
        services.node_ip_address_from_perspective = original  # type: ignore[union-attr]


class _ReturningStore:
    """The node's store: records what would be saved and hands it back, writing nothing."""

    def save(self, output: GeneratedOutput, record: ProvenanceRecord, *, parent_file: Path | None = None) -> Any:
        return {"output": output, "record": record.to_dict()}

    def source_of(self, path: str | Path, item_id: str | None = None) -> tuple[dict[str, Any], Path | None]:
        return {"file": Path(path).name, "generated": False}, None  # the client knows better: it re-derives


def _node_class(ray: Any) -> Any:
    @ray.remote
    class StudioNode:
        """A Studio worker on a Ray node: it resolves models from its own folders and cache."""

        def __init__(self, data_dir: str, name: str) -> None:
            from studio.core.paths import StudioPaths
            from studio.core.settings import Settings
            from studio.engines.fingerprint import WeightFingerprints
            from studio.runtime.services import _LiveCatalog
            from studio.runtime.worker import Worker

            # The node's own data folder: the client's when it is this machine (``local``), else the
            # node's (its STUDIO_DATA_DIR or the platform's), with its own model folders and settings.
            paths = StudioPaths.resolve(data_dir or None)
            paths.ensure()
            settings = Settings.load(paths.settings_file)
            self.name = name
            self.catalog = _LiveCatalog(settings)
            self.fingerprints = WeightFingerprints(paths.cache / "weight-digests.json")
            self.worker = Worker(
                store=_ReturningStore(),
                catalog=self.catalog,
                runtime_options=lambda: {
                    key: settings.get(key) for key in ("device", "memory_mode", "compile_models", "precision")
                },
                fingerprints=self.fingerprints,
            )
            self.events: collections.deque[JobEvent] = collections.deque()
            self.worker.subscribe(self.events.append)

        def describe(self) -> dict[str, Any]:
            node_id = ray.get_runtime_context().get_node_id()
            return {"name": self.name, "host": socket.gethostname(), "pid": os.getpid(), "node_id": node_id}

        def run(
            self, request_data: dict[str, Any], progress: Any, job_id: str, identity: dict[str, Any] | None = None
        ) -> dict[str, Any]:
            from studio.runtime.model_identity import find_model

            model = str(request_data.get("model", ""))
            request = request_from_dict(request_data)
            try:
                if model and not Path(model).exists():
                    # Another machine: the model by what it is (repo id, name, weights' sha256), found
                    # in this node's own library.
                    kinds = getattr(request, "model_kinds", (request.kind,))
                    found = find_model(self.catalog, self.fingerprints, identity or {"name": Path(model).name}, kinds)
                    request = request_from_dict({**request_data, "model": found})
                self.catalog.resolve(request.model)
            except StudioError as exc:  # another node may have it: the client decides
                return {"kind": "missing_model", "error": str(exc), "saved": [], "node": self.describe()}
            job = self.worker.submit(request)
            stream = _NodeStream(progress, self.name, job_id)
            while True:
                while self.events:
                    event = self.events.popleft()
                    if event.job_id != job:
                        continue
                    stream.add(event)
                    if event.is_terminal:
                        stream.flush()
                        saved = event.result if event.kind is EventKind.FINISHED else []
                        device = saved[0]["record"]["runtime"].get("device", "") if saved else ""
                        return {
                            "kind": event.kind.value,
                            "error": event.error,
                            "saved": saved,
                            "node": {**self.describe(), "device": str(device)},
                        }
                stream.flush_if_due()
                time.sleep(0.01)

    return StudioNode


class _NodeStream:
    """A node's progress and previews for one job, sent to the client at most every 0.1 s: the
    latest progress and image preview win, text chunks are joined (the bridge does the same)."""

    def __init__(self, queue: Any, node: str, job_id: str) -> None:
        self._queue, self._node, self._job = queue, node, job_id
        self._progress: tuple[int, int] | None = None
        self._preview: Any = None
        self._sent_at = 0.0

    def add(self, event: JobEvent) -> None:
        if event.kind is EventKind.PROGRESS:
            self._progress = (event.step, event.total)
        elif event.kind is EventKind.PREVIEW:
            if isinstance(event.preview, str) and isinstance(self._preview, str):
                self._preview += event.preview
            else:
                self._preview = event.preview

    def flush_if_due(self) -> None:
        if time.monotonic() - self._sent_at >= _STREAM_EVERY_S:
            self.flush()

    def flush(self) -> None:
        if self._queue is None or (self._progress is None and self._preview is None):
            return
        self._sent_at = time.monotonic()
        message = (self._node, self._job, self._progress, self._preview)
        self._progress, self._preview = None, None
        try:
            self._queue.put_nowait(message)
        except Exception:  # the client's queue is gone or full: progress is a courtesy, the job goes on
            log.debug("progress not sent", exc_info=True)


_SEQUENCE = itertools.count()


@dataclass
class ClusterJob:
    """A job of the cluster's queue: a request for an actor, or a task run here (a sweep's grid)."""

    id: str
    request: Request | None
    record_runtime: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None
    task: Callable[[], list[Any]] | None = None
    task_info: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    # Nodes (Ray node ids) that said they lack the model, with what they said.
    lacking: dict[str, str] = field(default_factory=dict)
    started: bool = False
    # What the model is (name, weights' sha256, hub repo id): a node finds it in its own library by it.
    identity: dict[str, str] | None = None
    seq: int = field(default_factory=lambda: next(_SEQUENCE))


@dataclass
class _Actor:
    name: str
    handle: Any
    ping: Any  # the first describe() call while the actor starts; None once it answered
    node: dict[str, Any] = field(default_factory=dict)
    job: ClusterJob | None = None
    ref: Any = None

    @property
    def ready(self) -> bool:
        return self.ping is None


LostHandler = Callable[[str, list[ClusterJob]], None]


class ClusterWorker:
    """A queue of jobs run by Ray actors, saved in the local gallery; the ``Worker``'s interface."""

    def __init__(
        self,
        store: GalleryStore,
        *,
        address: str,
        workers: int = 2,
        data_dir: str = "",
        lost_after: float = LOST_AFTER_S,
        on_lost: LostHandler | None = None,
    ) -> None:
        ray = _import_ray()
        self._ray = ray
        self._store = store
        self.address = address
        self._lost_after = lost_after
        self._on_lost = on_lost
        self._listeners: list[Listener] = []
        self._queue: collections.deque[ClusterJob] = collections.deque()
        self._cond = threading.Condition()
        self._cancelled: set[str] = set()
        self._stopping = False
        self._started_ray = False
        self.lost = ""  # why the cluster is gone, once it is
        # The weights' digests of this machine's models, for the identity each job carries to a node
        # (kept in memory: the local worker's cache file belongs to it).
        from studio.engines.fingerprint import WeightFingerprints

        self._fingerprints = WeightFingerprints(None)
        self._identities: dict[str, dict[str, str]] = {}
        if not ray.is_initialized():
            self._init_ray(address, workers)
            self._started_ray = True
        try:
            self._start_actors(address, workers, data_dir)
        except BaseException:
            if self._started_ray:
                ray.shutdown()
            raise
        self._thread = threading.Thread(target=self._loop, name="studio-cluster", daemon=True)
        self._thread.start()

    def _init_ray(self, address: str, workers: int) -> None:
        ray = self._ray
        quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
        if address == "local":
            # A cluster on this machine, addressed on loopback (Ray's servers still bind every interface).
            ray.init(
                num_cpus=workers,
                _node_ip_address="127.0.0.1",
                object_store_memory=256 * 1024 * 1024,
                include_dashboard=False,
                **quiet,
            )
            return
        if not (address.startswith("ray://") or re.fullmatch(r"[\w.\-\[\]:]+:\d+", address)):
            raise StudioError(f"a cluster address is 'local', ray://HOST:PORT or HOST:PORT, got {address!r}")
        host = address.removeprefix("ray://").rsplit(":", 1)[0]
        loopback = not address.startswith("ray://") and host in ("127.0.0.1", "localhost")
        if loopback:
            quiet = {**quiet, "_node_ip_address": "127.0.0.1"}
        try:
            with _loopback_stays_loopback(loopback):
                ray.init(address=address, **quiet)
        except Exception as exc:  # Ray Client raises ConnectionError, grpc errors, …
            raise StudioError(f"could not reach the Ray cluster at {address}: {first_line(exc)}") from exc

    def _start_actors(self, address: str, workers: int, data_dir: str) -> None:
        from ray.util.queue import Queue
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray = self._ray
        here = ray.get_runtime_context().get_node_id()
        # Progress travels back through a queue actor on this (the driver's) node, so losing a worker
        # node never loses it, and it takes no CPU a node actor needs.
        self._progress = Queue(
            actor_options={"num_cpus": 0, "scheduling_strategy": NodeAffinitySchedulingStrategy(here, soft=True)}
        )
        self._node = _node_class(ray)
        resources = ray.cluster_resources()
        self._gpus = int(resources.get("GPU", 0))
        if address == "local":
            count = workers
        else:
            count = self._gpus or int(resources.get("CPU", 1))
        # The client's data folder only for actors on this machine: another machine has its own.
        self._data_dir = data_dir if address == "local" else ""
        self._actors: dict[str, _Actor] = {}
        for index in range(max(1, count)):
            self._spawn(f"node-{index + 1}")
        deadline = time.monotonic() + self._lost_after
        while not any(a.ready for a in self._actors.values()):
            if time.monotonic() > deadline:
                raise StudioError(
                    f"the Ray cluster at {address} started no Studio worker within {self._lost_after:.0f} s "
                    "(is Studio installed on its nodes, with a CPU or GPU free?)"
                )
            self._check_starting(timeout=0.5)
        self._last_ready = time.monotonic()

    def _spawn(self, name: str) -> None:
        options: dict[str, Any] = {
            "num_cpus": 1,
            "max_restarts": 0,
            "name": f"studio-{name}-{uuid.uuid4().hex[:6]}",
            "scheduling_strategy": "SPREAD",  # one per node before two on one
        }
        if self._gpus >= 1:
            options = {**options, "num_gpus": 1, "num_cpus": 0}
        handle = self._node.options(**options).remote(self._data_dir, name)
        self._actors[name] = _Actor(name, handle, handle.describe.remote())

    def _check_starting(self, timeout: float = 0.0) -> None:
        """Actors that answered their first call become ready; one that died starting is replaced."""
        starting = {a.ping: a for a in self._actors.values() if a.ping is not None}
        if not starting:
            return
        done, _ = self._ray.wait(list(starting), num_returns=len(starting), timeout=timeout)
        for ref in done:
            actor = starting[ref]
            try:
                actor.node = dict(self._ray.get(ref))
            except self._ray.exceptions.RayActorError as exc:
                log.warning("cluster actor %s failed to start: %s", actor.name, first_line(exc))
                self._spawn(actor.name)
                continue
            actor.ping = None

    # -- the Worker's interface ------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def submit(
        self,
        request: Request,
        *,
        parent: str | None = None,
        record_runtime: dict[str, Any] | None = None,
        job_id: str | None = None,
    ) -> str:
        job = ClusterJob(job_id or uuid.uuid4().hex, request, dict(record_runtime or {}), parent)
        with self._cond:
            lost = self.lost
            if not lost:
                self._queue.append(job)
                self._cond.notify_all()
            position = len(self._queue)
        self._emit(JobEvent(EventKind.QUEUED, job.id, info={"kind": request.kind, "position": position}))
        if lost:
            self._emit(JobEvent(EventKind.ERROR, job.id, error=self._lost_message(), info={"cluster_lost": True}))
        return job.id

    def submit_task(
        self, work: Callable[[], list[Any]], *, kind: str, info: dict[str, Any] | None = None, job_id: str | None = None
    ) -> str:
        job = ClusterJob(job_id or uuid.uuid4().hex, None, task=work, task_info={"kind": kind, **(info or {})})
        with self._cond:
            lost = self.lost
            if not lost:
                self._queue.append(job)
                self._cond.notify_all()
        if lost:
            self._emit(JobEvent(EventKind.ERROR, job.id, error=self._lost_message(), info=job.task_info))
        return job.id

    def cancel(self, job_id: str) -> bool:
        with self._cond:
            for job in self._queue:
                if job.id == job_id:
                    self._queue.remove(job)
                    break
            else:
                job = None
            self._cancelled.add(job_id)
        if job is not None:
            self._emit(JobEvent(EventKind.CANCELLED, job_id))
        return True

    def node_pids(self) -> dict[str, int]:
        """Each ready actor's process id (for tests and for people diagnosing a node)."""
        return {name: int(a.node["pid"]) for name, a in self._actors.items() if a.ready}

    @property
    def size(self) -> int:
        """How many actors this cluster queue runs (ready or starting)."""
        return len(self._actors)

    def nodes(self) -> list[dict[str, Any]]:
        """What each ready actor said of itself: name, host, pid, Ray node id."""
        return [dict(a.node) for a in self._actors.values() if a.ready]

    def shutdown(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(30)
        for actor in self._actors.values():
            try:
                self._ray.kill(actor.handle)
            except Exception:
                log.debug("actor already gone", exc_info=True)
        try:
            self._progress.shutdown()
        except Exception:
            log.debug("progress queue already gone", exc_info=True)
        if self._started_ray:
            try:
                self._ray.shutdown()
            except Exception:
                log.debug("ray shut down already", exc_info=True)

    # -- the scheduling thread --------------------------------------------------------

    def _emit(self, event: JobEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s", event.kind.value)

    def _lost_message(self) -> str:
        return f"the Ray cluster at {self.address} is gone: {self.lost}"

    def _loop(self) -> None:
        try:
            while self._step():
                pass
        except Exception as exc:  # Ray itself failed: the connection or the cluster is gone
            log.warning("the Ray cluster at %s is gone", self.address, exc_info=True)
            self._lose(f"{type(exc).__name__}: {first_line(exc)}")

    def _step(self) -> bool:
        """One round of scheduling; False once stopping."""
        started: list[ClusterJob] = []
        self._identify_queued()
        with self._cond:
            if self._stopping:
                return False
            running = [a for a in self._actors.values() if a.job is not None]
            if not self._queue and not running:
                self._cond.wait(0.5)
                if self._stopping:
                    return False
            head = self._queue[0] if self._queue else None
            # A task (a sweep's grid) runs after every job queued before it has ended.
            task = None
            if head is not None and head.task is not None and not running:
                task = self._queue.popleft()
            else:
                started = self._assign()
        for first in started:
            assert first.request is not None
            self._emit(
                JobEvent(
                    EventKind.STARTED, first.id, info={"kind": first.request.kind, "node": first.task_info["node"]}
                )
            )
        if task is not None:
            self._run_task(task)
            return True
        self._check_starting()
        self._drain_progress()
        busy = {a.ref: a for a in self._actors.values() if a.job is not None}
        if any(a.ready for a in self._actors.values()):
            self._last_ready = time.monotonic()
        elif (self._queue or busy) and time.monotonic() - self._last_ready > self._lost_after:
            self._lose(f"no worker of the cluster could run for {self._lost_after:.0f} s")
            return False
        if not busy:
            time.sleep(0.05)
            return True
        done, _ = self._ray.wait(list(busy), num_returns=1, timeout=0.2)
        if done:
            self._drain_progress()  # a job's last progress, sent just before it returned
        for ref in done:
            actor = busy[ref]
            job = actor.job
            assert job is not None
            actor.job, actor.ref = None, None
            try:
                answer = self._ray.get(ref)
            except self._ray.exceptions.RayActorError as exc:
                self._actor_lost(actor, job, exc)
                continue
            except self._ray.exceptions.RayTaskError as exc:
                self._emit(JobEvent(EventKind.ERROR, job.id, error=f"the cluster failed: {first_line(exc)}"))
                continue
            if answer["kind"] == "missing_model":
                self._lacks_model(job, answer)
                continue
            self._finish(job, answer)
        return True

    def _identify_queued(self) -> None:
        """Name the model of each newly queued job by what it is, outside the lock (hashing weights the
        first time takes a while; ``submit`` is called from the window)."""
        from studio.runtime.model_identity import model_identity

        with self._cond:
            unnamed = [job for job in self._queue if job.request is not None and job.identity is None]
        for job in unnamed:
            assert job.request is not None
            ref = job.request.model
            if ref not in self._identities:
                self._identities[ref] = model_identity(ref, self._fingerprints)
            job.identity = self._identities[ref]

    def _assign(self) -> list[ClusterJob]:
        """Give each free, ready actor the first queued job (up to the next task) its node may run.
        Called holding the lock; returns the jobs started for the first time."""
        started = []
        for actor in self._actors.values():
            if not actor.ready or actor.job is not None:
                continue
            for job in self._queue:
                if job.task is not None:
                    break
                if actor.node.get("node_id") in job.lacking or job.identity is None:
                    continue
                self._queue.remove(job)
                assert job.request is not None
                actor.job = job
                actor.ref = actor.handle.run.remote(job.request.to_dict(), self._progress, job.id, job.identity)
                if not job.started:
                    job.started = True
                    job.task_info = {"node": actor.name}
                    started.append(job)
                break
        return started

    def _drain_progress(self) -> None:
        by_job = {a.job.id: a.job for a in self._actors.values() if a.job is not None}
        while True:
            try:
                _, job_id, progress, preview = self._progress.get_nowait()
            except Exception:  # ray.util.queue.Empty
                return
            if job_id not in by_job:
                continue  # a job already ended (or run again elsewhere)
            if progress is not None:
                self._emit(JobEvent(EventKind.PROGRESS, job_id, step=progress[0], total=progress[1]))
            if preview is not None:
                self._emit(JobEvent(EventKind.PREVIEW, job_id, preview=preview))

    def _actor_lost(self, actor: _Actor, job: ClusterJob, exc: BaseException) -> None:
        """The actor (or its node) died mid-job: a fresh actor takes its place and the job runs again."""
        log.warning("cluster actor %s was lost during job %s: %s", actor.name, job.id, first_line(exc))
        self._spawn(actor.name)
        job.attempts += 1
        if job.attempts >= MAX_ATTEMPTS:
            self._emit(JobEvent(EventKind.ERROR, job.id, error=f"lost {job.attempts} cluster workers running it"))
            return
        with self._cond:
            self._queue.appendleft(job)

    def _lacks_model(self, job: ClusterJob, answer: dict[str, Any]) -> None:
        """A node without the job's model: another node may have it; when none has, the job fails."""
        node = answer.get("node", {})
        job.lacking[str(node.get("node_id", ""))] = (
            f"{node.get('name', 'a node')} ({node.get('host', '?')}): {answer.get('error')}"
        )
        nodes = {str(a.node.get("node_id", "")) for a in self._actors.values() if a.ready}
        if nodes <= set(job.lacking):
            said = "; ".join(job.lacking.values())
            error = f"no node of the cluster has the model: {said}"
            kind = job.request.kind if job.request is not None else ""
            self._emit(JobEvent(EventKind.ERROR, job.id, error=error, info={"kind": kind}))
            return
        with self._cond:
            self._queue.appendleft(job)

    def _lose(self, reason: str) -> None:
        """The cluster is gone: hand over every job not yet ended (oldest first), or fail each."""
        with self._cond:
            if self.lost:
                return
            self.lost = reason
            self._stopping = True
            running = [a.job for a in self._actors.values() if a.job is not None]
            for actor in self._actors.values():
                actor.job, actor.ref = None, None
            unfinished = [job for job in running if job.id not in self._cancelled]
            unfinished += [job for job in self._queue if job.id not in self._cancelled]
            self._queue.clear()
        unfinished.sort(key=lambda job: job.seq)  # as submitted: a sweep's grid after its cells
        log.warning("the Ray cluster at %s is gone (%s): %d job(s) not done", self.address, reason, len(unfinished))
        if self._on_lost is not None:
            self._on_lost(self._lost_message(), unfinished)
            return
        for job in unfinished:
            info = job.task_info if job.task is not None else {"kind": job.request.kind if job.request else ""}
            self._emit(
                JobEvent(EventKind.ERROR, job.id, error=self._lost_message(), info={**info, "cluster_lost": True})
            )

    def _finish(self, job: ClusterJob, answer: dict[str, Any]) -> None:
        assert job.request is not None
        kind = job.request.kind
        if job.id in self._cancelled:
            self._emit(JobEvent(EventKind.CANCELLED, job.id, info={"kind": kind}))
            return
        if answer["kind"] != "finished":
            node = answer.get("node", {}).get("name", "a node")
            error = f"on {node}: {answer.get('error') or answer['kind']}"
            self._emit(JobEvent(EventKind.ERROR, job.id, error=error, info={"kind": kind}))
            return
        items = []
        try:
            for saved in answer["saved"]:
                record = ProvenanceRecord.from_dict(saved["record"])
                runtime = {**record.runtime, **job.record_runtime, "node": answer["node"]}
                record, parent_file = self._local_derivation(dataclasses.replace(record, runtime=runtime), job)
                items.append(self._store.save(saved["output"], record, parent_file=parent_file))
        except StudioError as exc:
            self._emit(JobEvent(EventKind.ERROR, job.id, error=str(exc), info={"kind": kind}))
            return
        self._emit(JobEvent(EventKind.FINISHED, job.id, result=items, info={"kind": kind, "node": answer["node"]}))

    def _local_derivation(self, record: ProvenanceRecord, job: ClusterJob) -> tuple[ProvenanceRecord, Path | None]:
        """A node cannot see this gallery: the parent of an edit is found here, where it is saved."""
        assert job.request is not None
        _, source = source_file(job.request)
        if record.derived_from is None or not source:
            return record, None
        described, parent_file = self._store.source_of(source, job.parent)
        derived = {**described, "operation": record.derived_from.get("operation", {})}
        parent = str(described["id"]) if described.get("id") else record.parent
        return dataclasses.replace(record, derived_from=derived, parent=parent), parent_file

    def _run_task(self, job: ClusterJob) -> None:
        assert job.task is not None
        if job.id in self._cancelled:
            self._emit(JobEvent(EventKind.CANCELLED, job.id, info=job.task_info))
            return
        try:
            items = job.task()
        except StudioError as exc:
            self._emit(JobEvent(EventKind.ERROR, job.id, error=str(exc), info=job.task_info))
            return
        except Exception as exc:
            log.exception("cluster task %s failed", job.id)
            self._emit(JobEvent(EventKind.ERROR, job.id, error=f"{type(exc).__name__}: {first_line(exc)}"))
            return
        self._emit(JobEvent(EventKind.FINISHED, job.id, result=items, info=job.task_info))

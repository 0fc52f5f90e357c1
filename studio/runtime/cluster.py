"""One queue across many machines, with Ray: Studio's engines in a Ray actor per GPU (or CPU worker).

``ClusterWorker`` stands in for the local ``Worker`` wherever a queue of jobs runs (batch plans,
sweeps): the same ``submit`` / ``submit_task`` / ``cancel`` / ``subscribe`` and the same events.
Each actor (``_node_class``) runs a whole Studio worker of its own — its own model cache, catalog
and weight fingerprints — over a store that hands the outputs back instead of writing them; the
outputs travel back as arrays and are saved here, in the *local* gallery, each record naming the
node and its device (``runtime.node``). Saving happens only here, after an actor returned, so a
lost actor or node never leaves half an item and a job run again elsewhere is saved once.

Ray is an optional extra (``studio[cluster]``); nothing here imports it until a cluster is asked
for. Studio connects only to the address the user gives (``ray://HOST:PORT``, Ray Client) or
starts a cluster bound to 127.0.0.1 (``local``); it never listens on a public interface itself.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
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
Listener = Callable[[JobEvent], None]


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise StudioError(RAY_MISSING) from exc
    return ray


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

            paths = StudioPaths.resolve(data_dir or None)
            paths.ensure()
            settings = Settings.load(paths.settings_file)
            self.name = name
            self.worker = Worker(
                store=_ReturningStore(),
                catalog=_LiveCatalog(settings),
                runtime_options=lambda: {
                    key: settings.get(key) for key in ("device", "memory_mode", "compile_models", "precision")
                },
                fingerprints=WeightFingerprints(paths.cache / "weight-digests.json"),
            )
            self.events: collections.deque[JobEvent] = collections.deque()
            self.worker.subscribe(self.events.append)

        def describe(self) -> dict[str, Any]:
            return {"name": self.name, "host": socket.gethostname(), "pid": os.getpid()}

        def run(self, request_data: dict[str, Any], progress: Any) -> dict[str, Any]:
            model = str(request_data.get("model", ""))
            if model and not Path(model).exists():
                # Another machine: the model by its folder or file name, from this node's own library.
                request_data = {**request_data, "model": Path(model).name}
            request = request_from_dict(request_data)
            job = self.worker.submit(request)
            while True:
                while self.events:
                    event = self.events.popleft()
                    if event.job_id != job:
                        continue
                    if event.kind is EventKind.PROGRESS and progress is not None:
                        progress.put_nowait((self.name, event.step, event.total))
                    if event.is_terminal:
                        saved = event.result if event.kind is EventKind.FINISHED else []
                        device = saved[0]["record"]["runtime"].get("device", "") if saved else ""
                        return {
                            "kind": event.kind.value,
                            "error": event.error,
                            "saved": saved,
                            "node": {**self.describe(), "device": str(device)},
                        }
                time.sleep(0.01)

    return StudioNode


@dataclass
class _ClusterJob:
    id: str
    request: Request | None
    record_runtime: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None
    task: Callable[[], list[Any]] | None = None
    task_info: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0


class ClusterWorker:
    """A queue of jobs run by Ray actors, saved in the local gallery; the ``Worker``'s interface."""

    def __init__(self, store: GalleryStore, *, address: str, workers: int = 2, data_dir: str = "") -> None:
        ray = _import_ray()
        self._ray = ray
        self._store = store
        self._listeners: list[Listener] = []
        self._queue: collections.deque[_ClusterJob] = collections.deque()
        self._cond = threading.Condition()
        self._cancelled: set[str] = set()
        self._stopping = False
        self._started_ray = False
        if not ray.is_initialized():
            quiet = {"log_to_driver": False, "logging_level": logging.WARNING, "include_dashboard": False}
            if address == "local":
                # A cluster on this machine, bound to loopback: nothing listens on a public interface.
                ray.init(
                    num_cpus=workers,
                    _node_ip_address="127.0.0.1",
                    object_store_memory=256 * 1024 * 1024,
                    **quiet,
                )
            elif address.startswith("ray://"):
                try:
                    ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
                except Exception as exc:  # Ray Client raises ConnectionError, grpc errors, …
                    raise StudioError(f"could not reach the Ray cluster at {address}: {first_line(exc)}") from exc
            else:
                raise StudioError(f"a cluster address is 'local' or ray://HOST:PORT, got {address!r}")
            self._started_ray = True
        from ray.util.queue import Queue

        # Progress travels back through a queue actor that must not take a CPU a node actor needs.
        self._progress = Queue(actor_options={"num_cpus": 0})
        self._node = _node_class(ray)
        count = workers if address == "local" else max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._data_dir = data_dir
        self._actors: dict[str, Any] = {}
        for index in range(max(1, count)):
            self._spawn(f"node-{index + 1}")
        self._thread = threading.Thread(target=self._loop, name="studio-cluster", daemon=True)
        self._thread.start()

    def _spawn(self, name: str) -> None:
        options = {"num_cpus": 1, "max_restarts": 0, "name": f"studio-{name}-{uuid.uuid4().hex[:6]}"}
        if self._ray.cluster_resources().get("GPU", 0) >= 1:
            options = {**options, "num_gpus": 1, "num_cpus": 0}
        self._actors[name] = self._node.options(**options).remote(self._data_dir, name)

    # -- the Worker's interface ------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def submit(
        self, request: Request, *, parent: str | None = None, record_runtime: dict[str, Any] | None = None
    ) -> str:
        job = _ClusterJob(uuid.uuid4().hex, request, dict(record_runtime or {}), parent)
        with self._cond:
            self._queue.append(job)
            self._cond.notify_all()
        self._emit(JobEvent(EventKind.QUEUED, job.id, info={"kind": request.kind, "position": len(self._queue)}))
        return job.id

    def submit_task(self, work: Callable[[], list[Any]], *, kind: str, info: dict[str, Any] | None = None) -> str:
        job = _ClusterJob(uuid.uuid4().hex, None, task=work, task_info={"kind": kind, **(info or {})})
        with self._cond:
            self._queue.append(job)
            self._cond.notify_all()
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
        """Each actor's process id (for tests and for people diagnosing a node)."""
        return {name: int(self._ray.get(actor.describe.remote())["pid"]) for name, actor in self._actors.items()}

    def shutdown(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(30)
        for actor in self._actors.values():
            try:
                self._ray.kill(actor)
            except Exception:
                log.debug("actor already gone", exc_info=True)
        try:
            self._progress.shutdown()
        except Exception:
            log.debug("progress queue already gone", exc_info=True)
        if self._started_ray:
            self._ray.shutdown()

    # -- the scheduling thread --------------------------------------------------------

    def _emit(self, event: JobEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s", event.kind.value)

    def _loop(self) -> None:
        running: dict[Any, tuple[str, _ClusterJob]] = {}  # object ref → (actor name, job)
        free = list(self._actors)
        while True:
            with self._cond:
                if self._stopping:
                    return
                while not self._queue and not running and not self._stopping:
                    self._cond.wait(0.5)
                if self._stopping:
                    return
                head = self._queue[0] if self._queue else None
                # A task (a sweep's grid) runs after every job queued before it has ended.
                if head is not None and head.task is not None and not running:
                    self._queue.popleft()
                    task = head
                else:
                    task = None
                while free and self._queue and self._queue[0].task is None:
                    job = self._queue.popleft()
                    name = free.pop(0)
                    assert job.request is not None
                    ref = self._actors[name].run.remote(job.request.to_dict(), self._progress)
                    running[ref] = (name, job)
                    if job.attempts == 0:
                        self._emit(JobEvent(EventKind.STARTED, job.id, info={"kind": job.request.kind, "node": name}))
            if task is not None:
                self._run_task(task)
                continue
            self._drain_progress(running)
            if not running:
                continue
            done, _ = self._ray.wait(list(running), num_returns=1, timeout=0.2)
            for ref in done:
                name, job = running.pop(ref)
                try:
                    answer = self._ray.get(ref)
                except self._ray.exceptions.RayActorError as exc:
                    self._actor_lost(name, job, exc)
                    free.append(name)
                    continue
                except Exception as exc:
                    free.append(name)
                    self._emit(JobEvent(EventKind.ERROR, job.id, error=f"the cluster failed: {first_line(exc)}"))
                    continue
                free.append(name)
                self._finish(job, answer)

    def _drain_progress(self, running: dict[Any, tuple[str, _ClusterJob]]) -> None:
        by_node = {name: job for name, job in running.values()}
        while True:
            try:
                name, step, total = self._progress.get_nowait()
            except Exception:  # ray.util.queue.Empty
                return
            job = by_node.get(name)
            if job is not None:
                self._emit(JobEvent(EventKind.PROGRESS, job.id, step=step, total=total))

    def _actor_lost(self, name: str, job: _ClusterJob, exc: BaseException) -> None:
        """The actor (or its node) died mid-job: a fresh actor takes its place and the job runs again."""
        log.warning("cluster actor %s was lost during job %s: %s", name, job.id, first_line(exc))
        self._spawn(name)
        job.attempts += 1
        if job.attempts >= MAX_ATTEMPTS:
            self._emit(JobEvent(EventKind.ERROR, job.id, error=f"lost {job.attempts} cluster workers running it"))
            return
        with self._cond:
            self._queue.appendleft(job)

    def _finish(self, job: _ClusterJob, answer: dict[str, Any]) -> None:
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

    def _local_derivation(self, record: ProvenanceRecord, job: _ClusterJob) -> tuple[ProvenanceRecord, Path | None]:
        """A node cannot see this gallery: the parent of an edit is found here, where it is saved."""
        assert job.request is not None
        _, source = source_file(job.request)
        if record.derived_from is None or not source:
            return record, None
        described, parent_file = self._store.source_of(source, job.parent)
        derived = {**described, "operation": record.derived_from.get("operation", {})}
        parent = str(described["id"]) if described.get("id") else record.parent
        return dataclasses.replace(record, derived_from=derived, parent=parent), parent_file

    def _run_task(self, job: _ClusterJob) -> None:
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

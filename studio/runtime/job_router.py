"""Where jobs run: this machine's worker, or a Ray cluster with what to do when it is gone.

``JobRouter`` has the worker's interface and is what the window's queue (and ``studio batch
--cluster``) submits to. Without a cluster it passes everything to the local ``Worker`` and never
imports Ray, so nothing opens a socket (the offline guarantee). With one (``ClusterTarget``, from
the settings' "Run on" page or the command line) generation jobs and a sweep's grids go to a
``ClusterWorker``; model descriptions, device reports and saving kept outputs stay here.

Connecting takes seconds (starting Ray, placing actors), so it happens on a thread of its own,
which then stays until the cluster is left: Ray ties the processes of a cluster it starts to the
thread that started them (they get the parent's death signal when that thread ends), so the thread
that called ``ray.init`` is also the one that shuts Ray down. Jobs submitted while it connects
wait here, in order, and go to the cluster once it answers — or, when it
cannot be reached, to this machine (``if_lost = "fall_back"``) or fail with the reason
(``"stop"``). The same choice holds when the cluster is lost mid-queue: every job it had not
finished runs here under its own id (the cluster saves only after an actor answered, on the thread
that reports the loss, so nothing is saved twice) or fails saying the queue stopped. After a stop,
the next job tries to connect again. Each change of where jobs run is a ``runner`` event.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from studio.core.errors import StudioError
from studio.core.events import EventKind, JobEvent
from studio.core.requests import Request
from studio.core.settings import Settings
from studio.runtime.worker import Worker

log = logging.getLogger(__name__)

Listener = Callable[[JobEvent], None]
IF_LOST_CHOICES = ("fall_back", "stop")


@dataclass(frozen=True)
class ClusterTarget:
    """A Ray cluster to run on and what to do when it is gone."""

    address: str
    workers: int = 2  # actors of a ``local`` cluster
    if_lost: str = "fall_back"  # or "stop"
    data_dir: str = ""  # this machine's data folder, for the actors of a ``local`` cluster
    lost_after: float = 60.0

    @property
    def label(self) -> str:
        return "a Ray cluster on this machine" if self.address == "local" else f"the Ray cluster at {self.address}"


def cluster_target(settings: Settings, data_dir: str = "") -> ClusterTarget | None:
    """The settings' choice: None to run on this machine."""
    if settings.get("run_on") != "cluster":
        return None
    return ClusterTarget(
        address=str(settings.get("cluster_address")),
        workers=int(settings.get("cluster_workers")),
        if_lost=str(settings.get("cluster_if_lost")),
        data_dir=data_dir,
    )


@dataclass
class _Held:
    """A job submitted while the cluster was connecting."""

    id: str
    request: Request | None
    parent: str | None = None
    record_runtime: dict[str, Any] | None = None
    task: Callable[[], list[Any]] | None = None
    kind: str = ""
    info: dict[str, Any] | None = None


def _open_cluster(store: Any, target: ClusterTarget, on_lost: Callable[[str, list[Any]], None]) -> Any:
    from studio.runtime.cluster import ClusterWorker

    return ClusterWorker(
        store,
        address=target.address,
        workers=target.workers,
        data_dir=target.data_dir,
        lost_after=target.lost_after,
        on_lost=on_lost,
    )


class JobRouter:
    """The worker's interface over this machine's worker and, when configured, a Ray cluster."""

    def __init__(
        self,
        local: Worker,
        store: Any,
        *,
        target: ClusterTarget | None = None,
        open_cluster: Callable[..., Any] = _open_cluster,
    ) -> None:
        self.local = local
        self._store = store
        self._open_cluster = open_cluster
        self._listeners: list[Listener] = []
        self._lock = threading.RLock()
        self._target: ClusterTarget | None = None
        self._cluster: Any = None
        self._unsubscribe_cluster: Callable[[], None] = lambda: None
        self._connecting: threading.Thread | None = None
        self._settled = threading.Event()  # set once a connection attempt has ended either way
        self._settled.set()
        self._hosts: dict[int, tuple[threading.Event, threading.Thread]] = {}  # cluster → its release, thread
        self._held: list[_Held] = []
        self._on_cluster: set[str] = set()
        self._generation = 0  # bumped by each configure: a connection finishing late is dropped
        self.where = "local"
        self.status_text = "this machine"
        self._closed = False
        local.subscribe(self._emit)
        if target is not None:
            self.configure(target)

    # -- where jobs run -----------------------------------------------------------------

    def configure(self, target: ClusterTarget | None) -> None:
        """Run on ``target`` from now on (None: this machine); connects in the background."""
        with self._lock:
            if target == self._target and (self._cluster is not None or self._connecting is not None):
                return
            self._generation += 1
            self._target = target
            old, self._cluster = self._cluster, None
            self._unsubscribe_cluster()
            self._unsubscribe_cluster = lambda: None
        if old is not None:
            self._close_later(old)
        if target is None:
            self._set_status("local", "this machine")
            return
        self._connect_in_background()

    def connect(self, timeout: float = 300.0) -> None:
        """Wait for the connection started by ``configure`` to succeed or fail (for the command line)."""
        self._settled.wait(timeout)

    def _connect_in_background(self) -> None:
        with self._lock:
            target, generation = self._target, self._generation
            if target is None or self._connecting is not None:
                return
            self._set_status("connecting", f"connecting to {target.label}…")
            thread = threading.Thread(
                target=self._connect, args=(target, generation), name="studio-cluster-connect", daemon=True
            )
            self._connecting = thread
            self._settled.clear()
        thread.start()

    def _connect(self, target: ClusterTarget, generation: int) -> None:
        opened: list[Any] = []  # the cluster, for its loss handler (called only once it runs)
        try:
            cluster = self._open_cluster(
                self._store, target, lambda why, jobs: self._cluster_lost(opened[0], why, jobs)
            )
            opened.append(cluster)
        except Exception as exc:  # StudioError, or Ray failing in a way of its own
            why = str(exc) if isinstance(exc, StudioError) else f"{type(exc).__name__}: {exc}"
            log.warning("could not connect to %s: %s", target.label, why)
            with self._lock:
                self._connecting = None
                stale = generation != self._generation
                held, self._held = ([], self._held) if stale else (self._held, [])
            if not stale:
                said = why if why.startswith("could not reach") else f"could not reach {target.label}: {why}"
                self._gone(target, said, held)
            self._settled.set()
            return
        release = threading.Event()
        with self._lock:
            self._connecting = None
            late = generation != self._generation or self._closed
            if not late:
                self._cluster = cluster
                self._unsubscribe_cluster = cluster.subscribe(self._from_cluster)
                self._hosts[id(cluster)] = (release, threading.current_thread())
                held, self._held = self._held, []
        if late:
            self._settled.set()
            cluster.shutdown()
            return
        count, hosts = cluster.size, {node.get("host") for node in cluster.nodes()}
        self._set_status(
            "cluster",
            f"{target.label} · {count} worker{'s' * (count != 1)} on {len(hosts)} machine" + ("s" * (len(hosts) != 1)),
        )
        for job in held:
            self._to_cluster(cluster, job)
        self._settled.set()
        release.wait()  # this thread holds the cluster's processes: it stays until the cluster is left
        cluster.shutdown()

    def _cluster_lost(self, cluster: Any, why: str, jobs: list[Any]) -> None:
        """Called on the cluster's thread with every job it had not finished, oldest first."""
        with self._lock:
            if cluster is not self._cluster:
                return
            target = self._target
            self._cluster = None
            self._unsubscribe_cluster()
            self._unsubscribe_cluster = lambda: None
            self._on_cluster.difference_update(job.id for job in jobs)
        held = [
            _Held(job.id, job.request, job.parent, job.record_runtime, job.task, str(job.task_info.get("kind", "")),
                  {k: v for k, v in job.task_info.items() if k != "kind"})
            for job in jobs
        ]  # fmt: skip
        assert target is not None
        self._gone(target, why, held)
        self._close_later(cluster)

    def _gone(self, target: ClusterTarget, why: str, jobs: list[_Held]) -> None:
        """The cluster cannot run ``jobs``: this machine runs them, or each fails, as the user chose."""
        if target.if_lost == "fall_back":
            self._set_status("local", f"this machine ({why}; jobs run here)")
            for job in jobs:
                self._to_local(job)
            return
        self._set_status("lost", f"stopped: {why}")
        message = f"{why}. The queue stopped, as the settings ask; the next job tries the cluster again"
        for job in jobs:
            info = {"kind": job.kind or (job.request.kind if job.request else ""), "cluster_lost": True}
            self._emit(JobEvent(EventKind.ERROR, job.id, error=message, info=info))

    def _to_cluster(self, cluster: Any, job: _Held) -> None:
        with self._lock:
            self._on_cluster.add(job.id)
        if job.request is not None:
            cluster.submit(job.request, parent=job.parent, record_runtime=job.record_runtime, job_id=job.id)
        else:
            assert job.task is not None
            cluster.submit_task(job.task, kind=job.kind, info=job.info, job_id=job.id)

    def _to_local(self, job: _Held) -> None:
        if job.request is not None:
            self.local.submit(job.request, parent=job.parent, record_runtime=job.record_runtime, job_id=job.id)
        else:
            assert job.task is not None
            self.local.submit_task(job.task, kind=job.kind, info=job.info, job_id=job.id)

    def _place(self, job: _Held) -> str:
        """Send ``job`` where jobs run now (holding it while the cluster connects)."""
        with self._lock:
            cluster = self._cluster
            hold = cluster is None and self._target is not None and self.where in ("connecting", "lost")
            if hold:
                self._held.append(job)
            reconnect = hold and self.where == "lost"
            held = hold
        if reconnect:
            self._connect_in_background()
        if held:
            return job.id
        if cluster is not None:
            self._to_cluster(cluster, job)
        else:
            self._to_local(job)
        return job.id

    def _close_later(self, cluster: Any) -> threading.Thread | None:
        """Let the thread holding ``cluster`` shut it down; that thread (to wait for), if any."""
        with self._lock:
            host = self._hosts.pop(id(cluster), None)
        if host is None:
            return None
        host[0].set()
        return host[1]

    def _set_status(self, where: str, text: str) -> None:
        with self._lock:
            self.where, self.status_text = where, text
        self._emit(JobEvent(EventKind.RUNNER, "", result={"where": where, "text": text}))

    # -- events -------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _emit(self, event: JobEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s", event.kind.value)

    def _from_cluster(self, event: JobEvent) -> None:
        if event.is_terminal:
            with self._lock:
                self._on_cluster.discard(event.job_id)
        self._emit(event)

    # -- the worker's interface ------------------------------------------------------------

    def submit(
        self,
        request: Request,
        *,
        parent: str | None = None,
        record_runtime: dict[str, Any] | None = None,
        job_id: str | None = None,
    ) -> str:
        job = _Held(job_id or uuid.uuid4().hex, request, parent, dict(record_runtime or {}))
        return self._place(job)

    def submit_task(
        self, work: Callable[[], list[Any]], *, kind: str, info: dict[str, Any] | None = None, job_id: str | None = None
    ) -> str:
        return self._place(_Held(job_id or uuid.uuid4().hex, None, task=work, kind=kind, info=dict(info or {})))

    def cancel(self, job_id: str) -> bool:
        with self._lock:
            held = next((job for job in self._held if job.id == job_id), None)
            if held is not None:
                self._held.remove(held)
            cluster = self._cluster if job_id in self._on_cluster else None
        if held is not None:
            self._emit(JobEvent(EventKind.CANCELLED, job_id))
            return True
        if cluster is not None:
            return bool(cluster.cancel(job_id))
        return self.local.cancel(job_id)

    def describe_model(self, ref: str) -> str:
        return self.local.describe_model(ref)

    def probe_device(self, *, preload_engines: bool = False) -> str:
        return self.local.probe_device(preload_engines=preload_engines)

    def save_kept_output(self, job_id: str) -> str | None:
        return self.local.save_kept_output(job_id)

    def summarize_training(self, request: Any) -> str:
        return self.local.summarize_training(request)

    def submit_training(self, request: Any) -> str:
        return self.local.submit_training(request)  # training stays on this machine

    @property
    def device_info(self) -> dict[str, Any] | None:
        return self.local.device_info

    @property
    def alive(self) -> bool:
        return self.local.alive

    def close_cluster(self) -> None:
        """Leave the cluster (the local worker is the services' to stop); waits for it to let go."""
        with self._lock:
            self._closed = True
            self._generation += 1
            cluster, self._cluster = self._cluster, None
            self._unsubscribe_cluster()
            held, self._held = self._held, []
        for job in held:
            self._emit(JobEvent(EventKind.CANCELLED, job.id))
        if cluster is not None:
            host = self._close_later(cluster)
            if host is not None and host is not threading.current_thread():
                host.join(60)

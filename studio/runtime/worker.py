"""One worker thread that runs jobs in order, one at a time, on the device it owns.

``submit`` returns a job id at once; events about the job reach every subscriber on the
worker thread (the Qt bridge moves them to the GUI thread). Engines — one per model format,
found through ``studio.engines.registry`` — are imported on this thread, so the window is up
before torch is touched. Every failure becomes an ``error`` event and the worker takes the next
job.

Describing a model (``describe_model``) reads config files only, so it runs on a side lane of its
own: picking another model during a long render updates the tab's controls at once.
"""

from __future__ import annotations

import collections
import dataclasses
import gc
import logging
import queue
import secrets
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import studio
from studio.core.capabilities import ModelInfo
from studio.core.errors import JobCancelled, ModelError, StudioError
from studio.core.events import EventKind, JobEvent
from studio.core.files import first_line
from studio.core.models import ModelSpec
from studio.core.outputs import EngineResult
from studio.core.provenance import ProvenanceRecord, new_item_id, utc_now_iso
from studio.core.requests import MAX_SEED, Request, TextRequest, default_task, source_file
from studio.engines import registry
from studio.engines.base import RunContext
from studio.runtime.model_cache import ModelCache

log = logging.getLogger(__name__)

Listener = Callable[[JobEvent], None]


class Catalog(Protocol):
    """Where the worker finds models (``studio.engines.library.ModelCatalog``, or a stand-in in tests)."""

    def resolve(self, ref: str) -> ModelSpec: ...


class Store(Protocol):
    """Where outputs are saved (``studio.gallery.store.GalleryStore``)."""

    def save(self, output: Any, record: ProvenanceRecord, *, parent_file: Path | None = None) -> Any: ...

    def source_of(self, path: str | Path, item_id: str | None = None) -> tuple[dict[str, Any], Path | None]: ...


class Fingerprints(Protocol):
    """The weights' sha256 (``studio.engines.fingerprint.WeightFingerprints``)."""

    def of_model(self, path: Path) -> str: ...


@dataclass
class _Job:
    id: str
    request: Request | None
    cancel: threading.Event = field(default_factory=threading.Event)
    parent: str | None = None
    task: Callable[[_Job], None] | None = None  # internal work instead of a request
    # Facts the caller adds to the record's ``runtime`` (a batch plan's job key, for --resume).
    record_runtime: dict[str, Any] = field(default_factory=dict)
    load_s: float = 0.0  # seconds spent loading its model (0 when it was loaded already)


class Worker:
    """The one background thread that owns the device and the loaded models."""

    def __init__(
        self,
        *,
        store: Store,
        catalog: Catalog,
        runtime_options: Callable[[], dict[str, Any]] = dict,
        engines: dict[str, Any] | None = None,
        log_file: str = "",
        fingerprints: Fingerprints | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self._store = store
        # The installation's data folder: training runs stage, checkpoint and install their models
        # under it (``studio.runtime.training``); None where no training is offered (some tests).
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self._catalog = catalog
        # Read before each job: "device", "memory_mode" and "compile_models", as the settings hold them.
        self._runtime_options = runtime_options
        self._fingerprints = fingerprints
        # Engines by model format; ``engines`` replaces some (tests).
        self._engines: dict[str, Any] = dict(engines or {})
        # Held while the model libraries may be imported for the first time — creating an engine,
        # checking and loading a model, describing one. diffusers and transformers replace their
        # module in ``sys.modules`` with a lazy one at the end of their first import; a second
        # thread importing from them meanwhile gets "cannot import name …". Generating runs outside it.
        self._library_lock = threading.RLock()
        self._log_file = log_file
        self._listeners: list[Listener] = []
        self._queue: collections.deque[_Job] = collections.deque()
        self._cond = threading.Condition()
        self._current: _Job | None = None
        self._stopping = False
        self._partials: collections.OrderedDict[str, tuple[EngineResult, Request, str | None]] = (
            collections.OrderedDict()
        )
        self.cache = ModelCache()
        self._device: Any = None
        self.device_info: dict[str, Any] | None = None  # the last device report, for late listeners
        self._side_tasks: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="studio-worker", daemon=True)
        self._side_lane = threading.Thread(target=self._side_loop, name="studio-side-lane", daemon=True)
        self._thread.start()
        self._side_lane.start()

    # -- called from any thread -------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every event (on the worker thread); returns an unsubscribe."""
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
        """Queue ``request``; its job id (``job_id`` when given: a job moved here from a lost cluster keeps its own)."""
        job = _Job(job_id or _new_job_id(), request, parent=parent, record_runtime=dict(record_runtime or {}))
        return self._enqueue(job)

    def submit_training(self, request: Any) -> str:
        """Queue a training run (``studio.core.training.TrainRequest``); events as for any job, their
        ``info`` as ``studio.core.training`` describes; ``finished`` carries the ``TrainedModel``."""
        return self._enqueue(_Job(_new_job_id(), cast(Any, request)))

    def probe_device(self, *, preload_engines: bool = False) -> str:
        """Ask the worker to report its device (a ``device`` event); imports torch there. With
        ``preload_engines`` it then imports every engine (transformers, diffusers) while the app is
        idle, so the first job of each kind does not hold the interpreter to import them."""
        return self._enqueue(_Job(_new_job_id(), None, task=lambda job: self._report_device(job, preload_engines)))

    def summarize_training(self, request: Any) -> str:
        """Ask what a training run would learn from (``studio.core.training.TrainRequest``): a
        ``data_summary`` event whose result is a ``DataSummary`` (or whose ``error`` says why not).
        Reads and hashes the files on the side lane, never behind a render."""
        job_id = _new_job_id()
        with self._cond:
            if self._stopping:
                raise RuntimeError("the worker has shut down")
        self._side_tasks.put(lambda: self._summarize_training(job_id, request))
        return job_id

    def describe_model(self, ref: str) -> str:
        """Ask what a model offers without loading its weights: a ``model_info`` event whose result
        is a ``ModelInfo``. Runs on the side lane, never behind a render."""
        job_id = _new_job_id()
        with self._cond:
            if self._stopping:
                raise RuntimeError("the worker has shut down")
        self._side_tasks.put(lambda: self._describe(job_id, ref))
        return job_id

    def save_kept_output(self, job_id: str) -> str | None:
        """Save what a job kept in memory — a stopped text the user wants, or an output whose save
        failed (full disk) — as a job of its own: its id (``finished`` with ``info['keep_of']``), or
        None if nothing is kept for ``job_id``."""
        with self._cond:
            if job_id not in self._partials:
                return None
        return self._enqueue(_Job(_new_job_id(), None, task=lambda job: self._save_partial(job, job_id)))

    def submit_task(
        self, work: Callable[[], list[Any]], *, kind: str, info: dict[str, Any] | None = None, job_id: str | None = None
    ) -> str:
        """Run ``work`` on the worker thread once every job queued before it has run — a sweep's grid
        after its cells. Its end is a ``finished`` event carrying what it returns (``info['kind']`` is
        ``kind``), or an ``error`` naming what went wrong; cancelled while queued like any job."""
        facts = {"kind": kind, **(info or {})}

        def task(job: _Job) -> None:
            if job.cancel.is_set():
                self._emit(JobEvent(EventKind.CANCELLED, job.id, info=facts))
                return
            try:
                items = work()
            except StudioError as exc:
                self._emit(JobEvent(EventKind.ERROR, job.id, error=str(exc), info=facts))
                return
            except Exception as exc:
                self._emit_unexpected(job, kind, exc)
                return
            self._emit(JobEvent(EventKind.FINISHED, job.id, result=items, info=facts))

        return self._enqueue(_Job(job_id or _new_job_id(), None, task=task))

    def cancel(self, job_id: str) -> bool:
        """Drop a queued job at once, or ask the running one to stop. False if unknown."""
        with self._cond:
            for job in self._queue:
                if job.id == job_id:
                    self._queue.remove(job)
                    break
            else:
                job = None
            current = self._current
        if job is not None:
            self._emit(JobEvent(EventKind.CANCELLED, job.id))
            return True
        if current is not None and current.id == job_id:
            current.cancel.set()
            return True
        return False

    def cancel_all(self) -> None:
        with self._cond:
            dropped = list(self._queue)
            self._queue.clear()
            current = self._current
        for job in dropped:
            self._emit(JobEvent(EventKind.CANCELLED, job.id))
        if current is not None:
            current.cancel.set()

    @property
    def queued_count(self) -> int:
        """Generation jobs waiting (not the worker's own tasks, not model descriptions)."""
        with self._cond:
            return sum(1 for job in self._queue if job.request is not None)

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._current is not None or bool(self._queue)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Cancel everything, stop the thread and wait for it; True if it ended in time."""
        with self._cond:
            self._stopping = True
        self.cancel_all()
        with self._cond:
            self._cond.notify_all()
        self._side_tasks.put(None)
        started = time.monotonic()
        self._thread.join(timeout)
        self._side_lane.join(max(0.1, timeout - (time.monotonic() - started)))
        return not self._thread.is_alive() and not self._side_lane.is_alive()

    # -- the worker thread --------------------------------------------------------

    def _enqueue(self, job: _Job) -> str:
        with self._cond:
            if self._stopping:
                raise RuntimeError("the worker has shut down")
            self._queue.append(job)
            position = len(self._queue)
            self._cond.notify()
        if job.request is not None:
            self._emit(JobEvent(EventKind.QUEUED, job.id, info={"position": position, "kind": job.request.kind}))
        return job.id

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    break
                job = self._queue.popleft()
                self._current = job
            try:
                if job.task is not None:
                    job.task(job)
                else:
                    self._run(job)
            except BaseException:  # nothing may kill the worker
                log.exception("unexpected failure around job %s", job.id)
            finally:
                with self._cond:
                    self._current = None
        try:
            self.cache.clear()
        except Exception:
            log.exception("freeing models at shutdown failed")

    def _run(self, job: _Job) -> None:
        assert job.request is not None
        request = job.request
        if request.kind == "train":  # makes a model in the library, not a gallery item
            from studio.runtime.training import run_training_job

            run_training_job(self, job, cast(Any, request))
            return
        if request.seed is None:
            request = dataclasses.replace(request, seed=secrets.randbelow(MAX_SEED + 1))
        kind = request.kind
        started = {"kind": kind, "seed": request.seed, "model": request.model}
        self._emit(JobEvent(EventKind.STARTED, job.id, info=started))
        try:
            if job.cancel.is_set():
                raise JobCancelled()
            result = self._generate(job, request)
            if job.record_runtime:
                result = dataclasses.replace(result, runtime={**result.runtime, **job.record_runtime})
            if job.cancel.is_set():
                self._remember_partial(job, result, request)
                raise JobCancelled()
            try:
                items = self._save(result, request, job.parent)
            except StudioError as exc:  # a full disk, a read-only folder: keep the output for a retry
                self._remember_partial(job, result, request, any_kind=True)
                log.info("job %s (%s) could not be saved: %s", job.id, kind, exc)
                message = f"{exc} The {kind} is kept in memory: retry saving once that is fixed."
                self._emit(JobEvent(EventKind.ERROR, job.id, error=message, info={"kind": kind, "unsaved": True}))
                return
            info = {**_summary(result, request), "load_s": round(job.load_s, 3)}
            self._emit(JobEvent(EventKind.FINISHED, job.id, result=items, info=info))
        except JobCancelled:
            partial = self._partials.get(job.id)
            info = {"partial": partial[0].outputs[0].data} if partial and partial[0].outputs else {}
            self._emit(JobEvent(EventKind.CANCELLED, job.id, info=info))
        except StudioError as exc:
            log.info("job %s (%s) failed: %s", job.id, kind, exc)
            self._emit(JobEvent(EventKind.ERROR, job.id, error=str(exc), info={"kind": kind}))
        except Exception as exc:
            self._emit_unexpected(job, kind, exc)

    def _generate(self, job: _Job, request: Request) -> EngineResult:
        from studio.engines.devices import free_device_memory, is_out_of_memory

        spec = self._catalog.resolve(request.model)
        if not spec.runnable:
            raise ModelError(f"cannot use {spec.name}: {spec.reason}")
        # A job runs on a model of its own kind, or of the kinds its request names (an upscale: an upscaler,
        # or an image model that re-renders at any size).
        model_kinds = getattr(request, "model_kinds", (request.kind,))
        if spec.kind not in model_kinds:
            wanted = " or ".join(model_kinds)
            raise ModelError(
                f"{spec.name} is a {spec.kind or 'unknown'} model; a {request.kind} job needs a {wanted} model"
            )
        with self._library_lock:
            engine = self._engine(spec)
            # Refused before anything loads: an input the model cannot take (from its capabilities),
            # then what the engine itself checks (sizes, unreadable files).
            engine.describe(spec).refuse_unused_inputs(request)
            engine.check(spec, request)
            adapters = self._adapters(spec, request)
            device = self._device_choice()
        ctx = RunContext(job.id, self._emit, job.cancel, adapters)
        try:
            with self._library_lock:
                model = self.cache.get(
                    request.kind, (str(spec.path), device.key), lambda: engine.load(spec, device), engine.unload
                )
            job.load_s = self.cache.last_load_s
            ctx.raise_if_cancelled()
            result: EngineResult = engine.generate(model, request, ctx)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            log.warning("out of memory in job %s", job.id, exc_info=True)
            self.cache.clear()
            free_device_memory()
            hint = (
                "try a smaller size or fewer images at once, or low memory mode (studio settings set memory_mode low)"
                if request.kind == "image"
                else "try a shorter length or a smaller model, or low memory mode (studio settings set memory_mode low)"
            )
            raise StudioError(f"out of memory on {device.name}: {hint}. Loaded models were freed.") from exc
        if self._fingerprints is not None and not job.cancel.is_set():
            digest = self._fingerprints.of_model(spec.path)
            if digest:
                result = dataclasses.replace(result, model={**result.model, "sha256": digest})
        lineage = _training_lineage(spec)
        if lineage is not None:  # a model trained in Studio: what it learned from, in every record
            result = dataclasses.replace(result, model={**result.model, "training": lineage})
        return result

    def _adapters(self, spec: ModelSpec, request: Request) -> list[Any]:
        """The job's LoRAs and embeddings, found and checked against its model before it loads."""
        from studio.engines.library.adapters import resolve_job_adapters

        return resolve_job_adapters(self._catalog, spec, request)

    def _engine(self, spec: ModelSpec) -> Any:
        return self._engine_of_format(spec.format)

    def _engine_of_format(self, fmt: str) -> Any:
        with self._library_lock:
            engine = self._engines.get(fmt)
            if engine is None:
                engine = self._engines[fmt] = registry.create_engine(fmt)
            return engine

    def _device_choice(self) -> Any:
        from studio.engines.devices import choose_device

        options = self._runtime_options()
        wanted = (
            str(options.get("device", "auto")),
            str(options.get("memory_mode", "auto")),
            bool(options.get("compile_models", False)),
            str(options.get("precision", "auto")),
        )
        if self._device is None or self._device[0] != wanted:
            chosen = choose_device(wanted[0], memory_mode=wanted[1], compile_models=wanted[2], precision=wanted[3])
            self._device = (wanted, chosen)
        return self._device[1]

    def _save(self, result: EngineResult, request: Request, parent: str | None) -> list[Any]:
        if isinstance(request, TextRequest) and request.conversation:  # a chat turn: into its conversation
            from studio.gallery.conversations import save_exchange

            return [save_exchange(cast(Any, self._store), request, result)]  # the gallery's store
        items = []
        derived_from, parent_file = self._derivation(result, request, parent)
        if derived_from is not None and derived_from.get("id"):
            parent = str(derived_from["id"])
        for output in result.outputs:
            record = ProvenanceRecord(
                id=new_item_id(),
                kind=output.kind,
                created_at=utc_now_iso(),
                app={"name": studio.APP_NAME, "version": studio.__version__},
                model=result.model,
                request=request.to_dict(),
                runtime=result.runtime,
                output=dict(output.info),
                parent=parent,
                derived_from=derived_from,
            )
            items.append(self._store.save(output, record, parent_file=parent_file))
        return items

    def _derivation(
        self, result: EngineResult, request: Request, parent: str | None
    ) -> tuple[dict[str, Any] | None, Path | None]:
        """An output made from a source (the request names one, or the engine says it edited one) is a
        derivative: its record names the source and what was done to it."""
        source_field, source = source_file(request)
        if not source and not result.operation:
            return None, None
        operation = dict(result.operation) or {"action": "c2pa.edited", "task": default_task(source_field)}
        operation.setdefault("action", "c2pa.edited")
        if not source:
            return {"operation": operation}, None
        described, parent_file = self._store.source_of(source, parent)
        return {**described, "operation": operation}, parent_file

    def _remember_partial(self, job: _Job, result: EngineResult, request: Request, *, any_kind: bool = False) -> None:
        """Keep a result that was not saved: stopped text (saved only if the user asks), or any
        output whose save failed (saved again by ``retry_save``)."""
        if not any_kind and not any(o.kind == "text" and o.data for o in result.outputs):
            return  # only text keeps a stopped result; half an image or song is discarded
        with self._cond:
            self._partials[job.id] = (result, request, job.parent)
            while len(self._partials) > 8:
                self._partials.popitem(last=False)

    def _save_partial(self, job: _Job, source_job_id: str) -> None:
        with self._cond:
            entry = self._partials.pop(source_job_id, None)
        if entry is None:
            return
        result, request, parent = entry
        self._emit(JobEvent(EventKind.STARTED, job.id, info={"kind": request.kind, "keep_of": source_job_id}))
        try:
            items = self._save(result, request, parent)
        except StudioError as exc:
            with self._cond:  # still not saved: keep it for another try, under the new job's id
                self._partials[job.id] = entry
            message = f"{exc} It is still kept in memory: retry saving once that is fixed."
            self._emit(JobEvent(EventKind.ERROR, job.id, error=message, info={"kind": request.kind, "unsaved": True}))
            return
        except Exception as exc:
            self._emit_unexpected(job, request.kind, exc)
            return
        self._emit(
            JobEvent(EventKind.FINISHED, job.id, result=items, info={"kind": request.kind, "keep_of": source_job_id})
        )

    def _report_device(self, job: _Job, preload_engines: bool = False) -> None:
        try:
            from studio.engines.devices import describe_device

            info = describe_device(self._device_choice())
        except Exception as exc:
            log.exception("probing the device failed")
            info = {"device": "unknown", "name": f"device unknown ({exc})"}
        self.device_info = info
        self._emit(JobEvent(EventKind.DEVICE, job.id, result=info))
        if preload_engines:
            started = time.perf_counter()
            for fmt in registry.ENGINES:
                try:
                    warm_up = getattr(self._engine_of_format(fmt), "warm_up", None)
                    if warm_up is not None:
                        warm_up()
                except Exception:  # a broken install shows up when that format is used, with its message
                    log.exception("preloading the %s engine failed", fmt)
            log.info("engines imported in %.1f s", time.perf_counter() - started)
            # Torch, transformers, diffusers and Qt leave ~450,000 long-lived objects; a full
            # collection walks them all (~0.25 s holding the interpreter: a visible freeze of the
            # window, found by the long-session test). They live as long as the app, so move them
            # out of the collector's sight; objects made later are collected as usual.
            gc.freeze()

    def _side_loop(self) -> None:
        while (task := self._side_tasks.get()) is not None:
            try:
                task()
            except BaseException:  # nothing may kill the lane
                log.exception("a side task failed")

    def _describe(self, job_id: str, ref: str) -> None:
        with self._library_lock:
            info = self._model_info(ref)
        self._emit(JobEvent(EventKind.MODEL_INFO, job_id, result=info))

    def _summarize_training(self, job_id: str, request: Any) -> None:
        from studio.runtime.training import summarize_training_data

        try:
            summary = summarize_training_data(self, request)
        except StudioError as exc:
            self._emit(JobEvent(EventKind.DATA_SUMMARY, job_id, error=str(exc)))
            return
        except Exception as exc:
            log.exception("summarising training data failed")
            self._emit(JobEvent(EventKind.DATA_SUMMARY, job_id, error=f"reading the data failed: {first_line(exc)}"))
            return
        self._emit(JobEvent(EventKind.DATA_SUMMARY, job_id, result=summary))

    def _model_info(self, ref: str) -> ModelInfo:
        try:
            from studio.engines.library import library_problem

            spec = self._catalog.resolve(ref)
            problem = library_problem(spec) if spec.runnable else ""
            if spec.runnable and not problem:
                info: ModelInfo = self._engine(spec).describe(spec)
            else:
                info = ModelInfo(
                    ref, spec.id, spec.name, spec.kind, spec.format, spec.family, str(spec.path), False,
                    problem or spec.reason, hint=str(spec.details.get("hint", "")),
                )  # fmt: skip
            return dataclasses.replace(info, ref=ref)
        except Exception as exc:  # a model that cannot be described still leaves the worker running
            log.info("describing %s failed: %s", ref, exc)
            return ModelInfo(ref, runnable=False, reason=first_line(exc))

    def _emit_unexpected(self, job: _Job, kind: str, exc: BaseException) -> None:
        log.error("job %s (%s) failed", job.id, kind, exc_info=exc)
        where = f" Details are in {self._log_file}." if self._log_file else ""
        message = f"{kind} generation failed: {type(exc).__name__}: {first_line(exc)}.{where}"
        detail = "".join(traceback.format_exception(exc))
        self._emit(JobEvent(EventKind.ERROR, job.id, error=message, detail=detail, info={"kind": kind}))

    def _emit(self, event: JobEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken listener must not break the job or the others
                log.exception("event listener failed on %s", event.kind.value)


def _summary(result: EngineResult, request: Request) -> dict[str, Any]:
    info: dict[str, Any] = {"kind": request.kind, "seed": request.seed}
    if result.outputs:
        info.update({k: v for k, v in result.outputs[0].info.items() if isinstance(v, (int, float, str, bool))})
    return info


def _training_lineage(spec: ModelSpec) -> dict[str, Any] | None:
    from studio.engines.library.training_cards import training_lineage

    return training_lineage(spec.details)


def _new_job_id() -> str:
    return uuid.uuid4().hex[:12]

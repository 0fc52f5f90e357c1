"""Batch plans: many jobs from one TOML file, run through the worker, resumable after a kill.

The schema (documented for users in docs/BATCH.md)::

    name = "foxes"                 # optional; the plan's name in the records (default: the file's stem)

    [defaults]                     # optional: any request field, for every job that has that field
    steps = 20

    [[job]]
    kind = "image"                 # text | image | music
    prompt = "a red fox"
    model = "…"                    # optional: as --model takes it (default: the first model of the kind)
    seeds = [1, 2, 3]              # or count = N (N jobs, random seeds, recorded)
    width = 64                     # any other request field by its name: steps, guidance, max_tokens, duration, …
    sweep = { x = "seed=1,2", y = "steps=10,20" }   # optional: a sweep; its cells are jobs, then its grid

Every job gets a **job key**: a digest of the plan's name and the job's request (with its seed, or
its place among the ``count`` when the seed is random). The key goes into the saved item's record
(``runtime.batch``); ``--resume`` skips every key already in the gallery, so after a kill nothing
is made twice and nothing is lost (an item is in the gallery whole or not at all).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import queue
import tomllib
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from studio.core.errors import InvalidRequest, StudioError
from studio.core.events import EventKind, JobEvent
from studio.core.requests import REQUEST_TYPES, SOURCE_FIELDS, Request
from studio.core.sweep import Axis, Cell, expand, parse_axis
from studio.gallery.store import GalleryItem, GalleryStore
from studio.runtime.sweeps import SweepJobs, save_grid

MAX_JOBS = 100_000
_PLAN_KEYS = {"kind", "seeds", "count", "sweep"}
_FILE_FIELDS = (*SOURCE_FIELDS, "melody")


@dataclass(frozen=True)
class PlannedJob:
    key: str
    request: Request
    label: str  # for people: "job 2 · seed 7"
    sweep: str = ""  # the key of the sweep this job is a cell of
    cell: Cell | None = None


@dataclass(frozen=True)
class PlannedGrid:
    key: str
    base: Request
    axes: list[Axis]
    cells: list[PlannedJob]
    label: str


@dataclass
class Plan:
    name: str
    jobs: list[PlannedJob] = field(default_factory=list)
    grids: list[PlannedGrid] = field(default_factory=list)


def _key(plan: str, request: Request, seed_slot: str) -> str:
    data = request.to_dict()
    data["seed"] = seed_slot
    canonical = json.dumps({"plan": plan, "request": data}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def _values(kind: str, raw: dict[str, Any], where: str, folder: Path) -> dict[str, Any]:
    cls = REQUEST_TYPES[kind]
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    values: dict[str, Any] = {}
    for name, given in raw.items():
        value = given
        if name not in names:
            known = ", ".join(sorted(names - {"seed"}))
            raise InvalidRequest(name, f"{where}: {kind} requests have no field {name!r} (fields: {known})")
        if isinstance(value, list) and "tuple" in str(hints.get(name, "")):
            # TOML has arrays, not tuples: a LoRA list is [[name, weight], …], a pair per LoRA.
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        if name in _FILE_FIELDS and isinstance(value, str) and value:
            value = str((folder / value).resolve())  # relative to the plan, as a user writes it
        values[name] = value
    return values


def load_plan(
    path: Path,
    *,
    default_model: Callable[[str], str],
    model_defaults: Callable[[str, str], dict[str, Any]] | None = None,
) -> Plan:
    """Read and validate a plan: every job becomes a checked request with its key, before any runs.

    ``default_model(kind)`` names the model for a job that names none; ``model_defaults(kind, model)``
    gives fields a job leaves out that follow the model (an image's native size)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StudioError(f"cannot read the plan {path}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest("plan", f"{path.name} is not valid TOML: {exc}") from exc
    name = str(data.get("name") or path.stem)
    defaults = data.get("defaults", {})
    raw_jobs = data.get("job", [])
    if not isinstance(defaults, dict) or not isinstance(raw_jobs, list) or not raw_jobs:
        raise InvalidRequest("plan", f"{path.name} has no [[job]] tables (see docs/BATCH.md for the schema)")
    plan = Plan(name)
    folder = path.parent
    for number, raw in enumerate(raw_jobs, 1):
        where = f"job {number}"
        if not isinstance(raw, dict):
            raise InvalidRequest("plan", f"{where} is not a table")
        kind = raw.get("kind")
        if kind not in REQUEST_TYPES:
            raise InvalidRequest("kind", f"{where}: kind must be text, image or music, got {kind!r}")
        names = {f.name for f in dataclasses.fields(REQUEST_TYPES[kind]) if f.init}
        shared = {k: v for k, v in defaults.items() if k in names}
        fields = {**shared, **{k: v for k, v in raw.items() if k not in _PLAN_KEYS}}
        if not fields.get("model"):
            fields["model"] = default_model(kind)
            if not fields["model"]:
                raise InvalidRequest("model", f"{where}: no {kind} model found; name one with model = …")
        if model_defaults is not None:
            fields = {**model_defaults(kind, str(fields["model"])), **fields}
        values = _values(kind, fields, where, folder)
        seeds, count = raw.get("seeds"), raw.get("count")
        if seeds is not None and count is not None:
            raise InvalidRequest("seeds", f"{where}: give seeds or count, not both")
        slots: list[tuple[int | None, str]]
        if seeds is not None:
            if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
                raise InvalidRequest("seeds", f"{where}: seeds must be a list of whole numbers")
            slots = [(s, str(s)) for s in seeds]
        elif count is not None:
            if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_JOBS:
                raise InvalidRequest("count", f"{where}: count must be a whole number from 1 to {MAX_JOBS}")
            slots = [(None, f"#{n}") for n in range(count)]
        else:
            seed = values.pop("seed", None)
            slots = [(seed, str(seed) if seed is not None else "#0")]
        values.pop("seed", None)
        try:
            base = typing.cast(Request, REQUEST_TYPES[kind](**values))
        except InvalidRequest as exc:
            raise InvalidRequest(exc.field, f"{where}: {exc}") from exc
        sweep = raw.get("sweep")
        for seed, slot in slots:
            request = dataclasses.replace(base, seed=seed) if seed is not None else base
            label = f"{where} · seed {seed}" if seed is not None else f"{where} · {slot}"
            if sweep is None:
                plan.jobs.append(PlannedJob(_key(name, request, slot), request, label))
                continue
            _add_sweep(plan, request, sweep, slot, label)
        if len(plan.jobs) > MAX_JOBS:
            raise InvalidRequest("plan", f"{path.name} makes more than {MAX_JOBS} jobs")
    return plan


def _add_sweep(plan: Plan, request: Request, sweep: Any, slot: str, label: str) -> None:
    if not isinstance(sweep, dict) or not sweep.get("x"):
        raise InvalidRequest("sweep", f"{label}: sweep is a table with x (and y, z) axes: sweep = {{ x = 'seed=1,2' }}")
    axes = [parse_axis(str(sweep[name]), request) for name in ("x", "y", "z") if sweep.get(name)]
    seeded = request
    if request.seed is None and not any(a.field == "seed" for a in axes):
        # One seed for every cell (only the axes vary); drawn from the job key so a resumed plan
        # makes the remaining cells with the same seed as the ones already made.
        digest = _key(plan.name, request, slot)
        seeded = dataclasses.replace(request, seed=int(digest[:8], 16))
    grid_key = _key(plan.name, seeded, slot + "/grid:" + json.dumps([a.to_dict() for a in axes]))
    cells = []
    for cell in expand(seeded, axes):
        cell_slot = slot if cell.request.seed is None else str(cell.request.seed)
        job = PlannedJob(
            _key(plan.name, cell.request, cell_slot + f"/cell{cell.index}"),
            cell.request,
            f"{label} · {', '.join(cell.labels)}",
            sweep=grid_key,
            cell=cell,
        )
        cells.append(job)
        plan.jobs.append(job)
    plan.grids.append(PlannedGrid(grid_key, seeded, axes, cells, f"{label} · grid"))


@dataclass
class BatchOutcome:
    made: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)


class JobRunner(Protocol):
    """What runs a plan's jobs: the local ``Worker``, or a ``ClusterWorker`` over Ray actors."""

    def submit(
        self, request: Request, *, parent: str | None = None, record_runtime: dict[str, Any] | None = None
    ) -> str: ...

    def submit_task(self, work: Callable[[], list[Any]], *, kind: str, info: dict[str, Any] | None = None) -> str: ...

    def cancel(self, job_id: str) -> bool: ...

    def subscribe(self, listener: Callable[[JobEvent], None]) -> Callable[[], None]: ...


def run_plan(
    plan: Plan,
    worker: JobRunner,
    store: GalleryStore,
    *,
    resume: bool,
    on_item: Callable[[PlannedJob | PlannedGrid, GalleryItem, bool], None],
    on_failure: Callable[[PlannedJob | PlannedGrid, str], None],
    on_progress: Callable[[int, int], None] = lambda done, total: None,
    events: queue.Queue[JobEvent] | None = None,
) -> BatchOutcome:
    """Run every job of ``plan`` not yet made (with ``resume``), then the grids of its sweeps.

    ``on_item(job, item, skipped)`` is called for each item (already made ones too, with
    ``skipped``), ``on_failure`` for each job that failed or was cancelled."""
    done = store.batch_keys(plan.name)
    if not resume and done:
        raise StudioError(
            f"the gallery already has {len(done)} item(s) of the plan {plan.name!r}: "
            "run with --resume to make only what is missing, or rename the plan"
        )
    outcome = BatchOutcome()
    own_queue = events is None
    events = events if events is not None else queue.Queue()
    unsubscribe = worker.subscribe(events.put) if own_queue else (lambda: None)
    made: dict[str, GalleryItem] = {}
    total = len(plan.jobs) + len(plan.grids)
    pending: dict[str, PlannedJob | PlannedGrid] = {}
    try:
        for job in plan.jobs:
            if job.key in done:
                item = store.get(done[job.key])
                if item is not None:
                    made[job.key] = item
                    outcome.skipped += 1
                    on_item(job, item, True)
                    continue
            batch = {"batch": {"plan": plan.name, "key": job.key}}
            pending[worker.submit(job.request, record_runtime=batch)] = job
        finished = outcome.skipped
        on_progress(finished, total)
        for (_, end), job in _ends(events, pending):
            finished += 1
            on_progress(finished, total)
            if end.kind is EventKind.FINISHED and end.result:
                item = end.result[0]
                made[job.key] = item
                outcome.made += 1
                on_item(job, item, False)
            else:
                why = end.error if end.kind is EventKind.ERROR else "cancelled"
                outcome.failed.append(f"{job.label}: {why}")
                on_failure(job, why or "failed")
        grid_jobs: dict[str, PlannedJob | PlannedGrid] = {}
        for grid in plan.grids:
            if grid.key in done and (item := store.get(done[grid.key])) is not None:
                outcome.skipped += 1
                finished += 1
                on_progress(finished, total)
                on_item(grid, item, True)
                continue
            sweep = SweepJobs(
                cells=[(job.cell, job.key) for job in grid.cells if job.cell is not None],
                grids=[],
                axes=grid.axes,
                outcome={job.key: made.get(job.key) or "not made" for job in grid.cells},
            )
            extra = {"batch": {"plan": plan.name, "key": grid.key}}
            for z in range(max(c.index[2] for c, _ in sweep.cells) + 1):
                task = worker.submit_task(
                    _grid_task(store, grid.base, sweep, z, extra), kind="grid", info={"sweep_grid": z}
                )
                grid_jobs[task] = grid
        for (_, end), grid in _ends(events, grid_jobs):
            finished += 1
            on_progress(finished, total)
            if end.kind is EventKind.FINISHED and end.result:
                outcome.made += 1
                on_item(grid, end.result[0], False)
            else:
                outcome.failed.append(f"{grid.label}: {end.error or 'cancelled'}")
                on_failure(grid, end.error or "cancelled")
    except BaseException:
        for job_id in list(pending):
            worker.cancel(job_id)
        raise
    finally:
        unsubscribe()
    return outcome


def _grid_task(
    store: GalleryStore, base: Request, sweep: SweepJobs, z: int, extra: dict[str, Any]
) -> Callable[[], list[Any]]:
    return lambda: [save_grid(store, base, sweep, z, runtime=extra)]


def _ends(events: queue.Queue[JobEvent], pending: dict[str, Any]) -> Iterator[tuple[tuple[str, JobEvent], Any]]:
    """(job id, its terminal event), planned job — as each job ends, until none is left."""
    waiting = dict(pending)
    while waiting:
        try:
            event = events.get(timeout=0.2)
        except queue.Empty:
            continue
        job = waiting.pop(event.job_id, None) if event.is_terminal else None
        if job is not None:
            yield (event.job_id, event), job

"""Running a sweep: its cells as ordinary jobs on the worker, then one grid item per Z value.

An image sweep's grid is an image (``studio.gallery.grid``); a text sweep's is a Markdown table of
the cells' texts (``studio.gallery.text_grid``); a music sweep is its cells alone.

The cells queue like any job (cancel one or all; each is a gallery item with its own record). The
grid of each Z value is a worker task queued after the cells, so it runs once they have all ended,
on the worker thread; it is a gallery item whose record lists its cells by id and the axes. A
sweep keeps one seed for every cell unless the seed is an axis (A1111's rule: only the axis varies).
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import studio
from studio.core.errors import StudioError
from studio.core.events import EventKind, JobEvent
from studio.core.outputs import GeneratedOutput
from studio.core.provenance import ProvenanceRecord, new_item_id, utc_now_iso
from studio.core.requests import MAX_SEED, ImageRequest, Request
from studio.core.sweep import Axis, Cell, describe, expand
from studio.gallery.content import read_text_body
from studio.gallery.grid import compose_grid
from studio.gallery.store import GalleryItem, GalleryStore
from studio.gallery.text_grid import compose_text_grid


class SweepRunner(Protocol):
    """What runs a sweep's jobs: the local ``Worker``, a ``ClusterWorker`` or the ``JobRouter``."""

    def submit(
        self, request: Request, *, parent: str | None = None, record_runtime: dict[str, Any] | None = None
    ) -> str: ...

    def submit_task(self, work: Callable[[], list[Any]], *, kind: str, info: dict[str, Any] | None = None) -> str: ...

    def subscribe(self, listener: Callable[[JobEvent], None]) -> Callable[[], None]: ...


# The kinds whose sweeps end with a grid item.
GRID_KINDS = ("image", "text")


@dataclass
class SweepJobs:
    """What a started sweep queued: each cell's job, and the grid job of each Z value."""

    cells: list[tuple[Cell, str]]
    grids: list[str]
    axes: list[Axis]
    # Filled in on the worker thread as cells end: job id → its item, or why there is none.
    outcome: dict[str, GalleryItem | str] = field(default_factory=dict)

    @property
    def job_ids(self) -> list[str]:
        return [job for _, job in self.cells] + self.grids


def prepare(base: Request, axes: list[Axis]) -> tuple[Request, list[Cell]]:
    """The sweep's base request (one concrete seed for all cells when the seed is no axis; one image
    per cell) and its cells, validated."""
    if isinstance(base, ImageRequest) and base.count != 1:
        base = dataclasses.replace(base, count=1)  # a cell is one image
    if base.seed is None and not any(a.field == "seed" for a in axes):
        base = dataclasses.replace(base, seed=secrets.randbelow(MAX_SEED + 1))
    return base, expand(base, axes)


def start_sweep(
    worker: SweepRunner,
    store: GalleryStore,
    base: Request,
    axes: list[Axis],
    *,
    on_cell: Callable[[Cell, JobEvent], None] | None = None,
) -> SweepJobs:
    """Queue every cell and the grids; returns at once. ``on_cell`` is called on the worker thread
    with each cell's terminal event."""
    base, cells = prepare(base, axes)
    jobs = SweepJobs(cells=[], grids=[], axes=list(axes))
    by_job: dict[str, Cell] = {}
    lock = threading.RLock()  # submit() emits "queued" on this thread, into listen()

    def listen(event: JobEvent) -> None:
        with lock:
            cell = by_job.get(event.job_id)
        if cell is None or not event.is_terminal:
            return
        if event.kind is EventKind.FINISHED and event.result:
            jobs.outcome[event.job_id] = event.result[0]
        elif event.kind is EventKind.CANCELLED:
            jobs.outcome[event.job_id] = "cancelled"
        else:
            jobs.outcome[event.job_id] = f"failed: {event.error}"
        if on_cell is not None:
            on_cell(cell, event)
        if base.kind not in GRID_KINDS and len(jobs.outcome) == len(by_job):
            unsubscribe()  # no grid to wait for

    unsubscribe = worker.subscribe(listen)
    try:
        with lock:
            for cell in cells:
                facts = {"sweep": {"cell": list(cell.index), "labels": list(cell.labels)}}
                job = worker.submit(cell.request, record_runtime=facts)
                by_job[job] = cell
                jobs.cells.append((cell, job))
        # A picture of pictures, or a table of texts: a music sweep is its cells alone.
        z_count = max(cell.index[2] for cell in cells) + 1 if base.kind in GRID_KINDS else 0
        remaining = [z_count]

        def grid_of(z: int) -> Callable[[], list[Any]]:
            def make() -> list[Any]:
                try:
                    return [save_grid(store, base, jobs, z)]
                finally:
                    remaining[0] -= 1
                    if remaining[0] == 0:
                        unsubscribe()

            return make

        for z in range(z_count):
            jobs.grids.append(worker.submit_task(grid_of(z), kind="grid", info={"sweep_grid": z}))
    except BaseException:
        unsubscribe()
        raise
    return jobs


def save_grid(
    store: GalleryStore, base: Request, jobs: SweepJobs, z: int, *, runtime: dict[str, Any] | None = None
) -> GalleryItem:
    """Compose and save the grid of Z value ``z`` from the cells' outcomes (an item, or why none)."""
    cells = [(cell, job) for cell, job in jobs.cells if cell.index[2] == z]
    columns = max(cell.index[0] for cell, _ in cells) + 1
    rows = max(cell.index[1] for cell, _ in cells) + 1
    tiles: list[list[Path | str | None]] = [[None] * columns for _ in range(rows)]
    ids: list[list[str | None]] = [[None] * columns for _ in range(rows)]
    made = [outcome for _, job in cells if isinstance(outcome := jobs.outcome.get(job), GalleryItem)]
    if not made:
        raise StudioError("no cell of this sweep was made, so there is no grid")
    for cell, job in cells:
        outcome = jobs.outcome.get(job, "not run")
        x, y = cell.index[0], cell.index[1]
        tiles[y][x] = outcome.path if isinstance(outcome, GalleryItem) else outcome
        ids[y][x] = outcome.id if isinstance(outcome, GalleryItem) else None
    x_axis = jobs.axes[0]
    y_axis = jobs.axes[1] if len(jobs.axes) > 1 else None
    z_axis = jobs.axes[2] if len(jobs.axes) > 2 else None
    title = z_axis.label(z_axis.values[z]) if z_axis else ""
    x_labels = [x_axis.label(v) for v in x_axis.values]
    y_labels = [y_axis.label(v) for v in y_axis.values] if y_axis else []
    grid = {"axes": describe(jobs.axes), "cells": ids, **({"z": title} if title else {})}
    first = made[0].record
    output: GeneratedOutput
    facts: dict[str, Any]
    if base.kind == "text":
        texts = [[_text_of(tile) for tile in row] for row in tiles]
        table = compose_text_grid(texts, x_labels, y_labels, title=title, prompt=base.prompt)
        output, facts = GeneratedOutput("text", table, {"grid": grid}), {"grid": grid}
    else:
        pixels = compose_grid(tiles, x_labels, y_labels, title=title)
        height, width = pixels.shape[:2]
        output, facts = (
            GeneratedOutput("image", pixels, {"grid": grid}),
            {"grid": grid, "width": width, "height": height},
        )
    record = ProvenanceRecord(
        id=new_item_id(),
        kind=base.kind,
        created_at=utc_now_iso(),
        app={"name": studio.APP_NAME, "version": studio.__version__},
        model=dict(first.model),
        request={**base.to_dict(), "sweep": describe(jobs.axes)},
        runtime={"grid": True, **(runtime or {})},
        output=facts,
    )
    return store.save(output, record)


def _text_of(tile: Path | str | None) -> str:
    """A text cell's words, or why it has none (in italics, so it never reads as the model's)."""
    if isinstance(tile, Path):
        return read_text_body(tile)
    return f"*{tile or 'not run'}*"

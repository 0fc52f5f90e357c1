"""A training run on the worker: what it learns from, the data summary, and the model it installs.

Everything around a medium's trainer (``studio.engines.training``): gathering the files (folders,
files, gallery items, the favourites, a gallery search), hashing them, exact duplicates, captions,
the most frequent words, the minimum a run needs; the base and name checks; the staging and
checkpoint folders; the card (``studio_training.json`` and a ``README.md`` model card); and the
install into the library by one rename, so a model is in the library whole or not at all.

Where things live (under the worker's data folder): a run named NAME stages in
``training/<slug>/staging/``, keeps its checkpoints in ``training/<slug>/checkpoint/`` (with
``run.json``: what they were trained on, checked by Resume), and is installed as
``models/trained/<slug>/``, a folder the catalog always searches.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import re
import shutil
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import studio
from studio.core.errors import InvalidRequest, JobCancelled, ModelError, StudioError
from studio.core.events import EventKind, JobEvent
from studio.core.files import atomic_write_text, file_sha256_and_size, first_line
from studio.core.media_types import KIND_BY_SUFFIX
from studio.core.model_cards import model_card_licence
from studio.core.models import ModelSpec, preferred_order
from studio.core.provenance import utc_now_iso
from studio.core.training import (
    TRAINING_FILE,
    DataSummary,
    TrainedModel,
    TrainingCard,
    TrainingFile,
    TrainRequest,
)
from studio.engines.library.classify import slug
from studio.engines.training.base import TrainContext, UnreadableData

if TYPE_CHECKING:
    from studio.runtime.worker import Worker, _Job

log = logging.getLogger(__name__)

TRAINED_FOLDER = Path("models") / "trained"
RUNS_FOLDER = "training"
RUN_FILE = "run.json"

# The least a run learns from, per medium (units as the trainer's ``inspect`` counts them). Fewer
# images than this cannot show a LoRA a style or a subject (kohya's guides start at 10–20); a text
# or tune set this small is learned by heart in a few steps rather than as a manner.
MINIMUM: dict[str, tuple[int, str]] = {"image": (4, "images"), "text": (2000, "characters"), "music": (200, "notes")}
# The base a run starts from when none is named (images: the first diffusers model in the library).
DEFAULT_BASES = {"text": "studio-starter-text", "music": "studio-starter-melody"}

GALLERY = "gallery:"
GALLERY_FAVOURITES = "gallery:favourites"
GALLERY_SEARCH = "gallery:search:"
# Captions are read beside images only: in a text set a .txt file is itself data.
_CAPTIONED = ("image",)
_GALLERY_CAPTIONS = ("image", "music")
_MAX_CAPTION_CHARS = 2000
CAPTION_WORDS = 20
_CURVE_POINTS = 500

# English function words, left out of the most frequent words (what a set is about shows only
# without them). A short list of our own: no stop-word library is among Studio's dependencies.
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most
    my myself no nor not now of off on once only or other our ours ourselves out over own same she should
    so some such than that the their theirs them themselves then there these they this those through to
    too under until up very was we were what when where which while who whom why will with would you your
    yours yourself yourselves s t don shall may might must upon also""".split()
)
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


@dataclass(frozen=True)
class RunFolders:
    """The folders of one named run."""

    root: Path  # <data>/training/<slug>
    staging: Path
    checkpoint: Path
    target: Path  # <data>/models/trained/<slug>

    @property
    def run_file(self) -> Path:
        return self.checkpoint / RUN_FILE


def training_slug(name: str) -> str:
    """The folder name of a run and its model: the name lower-cased, spaces → ``-`` (as the library ids are)."""
    return slug(name.strip())


def run_folders(data_dir: Path, name: str) -> RunFolders:
    key = training_slug(name)
    root = Path(data_dir) / RUNS_FOLDER / key
    return RunFolders(root, root / "staging", root / "checkpoint", Path(data_dir) / TRAINED_FOLDER / key)


def pending_checkpoint(data_dir: Path, name: str) -> Path | None:
    """The checkpoint a stopped run named ``name`` left (Resume continues from it), or None."""
    folder = run_folders(data_dir, name).checkpoint
    return folder if _has_checkpoint(folder) else None


def discard_checkpoint(data_dir: Path, name: str) -> bool:
    """Delete what a stopped run left, so a new run of that name starts over; True if there was one."""
    root = run_folders(data_dir, name).root
    if not root.exists():
        return False
    shutil.rmtree(root)
    return True


def _has_checkpoint(folder: Path) -> bool:
    try:
        return folder.is_dir() and any(p.name != RUN_FILE for p in folder.iterdir())
    except OSError:
        return False


# -- gathering ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    path: Path
    gallery_id: str = ""
    prompt: str = ""


def gather_sources(
    request: TrainRequest, store: Any, suffixes: Iterable[str]
) -> tuple[list[_Source], list[tuple[str, str]]]:
    """The files ``request.data`` names, in order, and (reference, why) for what names nothing.

    Folders are read recursively (hidden files and folders skipped; an image's caption ``.txt`` and
    a sidecar ``.json`` beside a file of the set are not files of the set); ``gallery:<id>`` is that
    item's file (a melody's MIDI when its audio is not what the trainer reads), ``gallery:favourites``
    the favourites and ``gallery:search:<words>`` the items a gallery search finds, of the run's medium."""
    readable = {s.lower() for s in suffixes}
    sources: list[_Source] = []
    missing: list[tuple[str, str]] = []
    for ref in request.data:
        if ref.startswith(GALLERY):
            items, problem = _gallery_items(ref, store, request.medium)
            if problem:
                missing.append((ref, problem))
            for item in items:
                sources.append(_Source(_gallery_file(item, readable), str(item.id), str(item.record.prompt or "")))
            continue
        path = Path(ref).expanduser()
        if path.is_dir():
            sources += [_Source(p) for p in _folder_files(path, request.medium, readable)]
        elif path.is_file():
            sources.append(_Source(path.resolve()))
        else:
            raise InvalidRequest("data", f"{ref} does not exist: give a folder, files or gallery items to learn from")
    return sources, missing


def _folder_files(root: Path, medium: str, readable: set[str]) -> list[Path]:
    found: list[Path] = []
    for folder, dirs, files in os.walk(root.resolve()):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        names = sorted(f for f in files if not f.startswith("."))
        stems = {Path(n).stem for n in names if Path(n).suffix.lower() in readable}
        for name in names:
            suffix = Path(name).suffix.lower()
            if Path(name).stem in stems and suffix not in readable:
                if suffix == ".json" or (suffix == ".txt" and medium in _CAPTIONED):
                    continue  # a caption or a sidecar of a file in the set, not a file of its own
            found.append(Path(folder) / name)
    return found


def _gallery_items(ref: str, store: Any, medium: str) -> tuple[list[Any], str]:
    if store is None or not hasattr(store, "get"):
        return [], "the gallery is not open"
    if ref == GALLERY_FAVOURITES:
        return list(store.list(kind=medium, favourites=True)), ""
    if ref.startswith(GALLERY_SEARCH):
        words = ref[len(GALLERY_SEARCH) :].strip()
        if not words:
            return [], "an empty gallery search"
        return list(store.list(kind=medium, search=words)), ""
    item = store.get(ref[len(GALLERY) :].strip())
    if item is None:
        return [], "no gallery item with this id (deleted, or in the trash)"
    return [item], ""


def _gallery_file(item: Any, readable: set[str]) -> Path:
    path = Path(item.path)
    if path.suffix.lower() in readable:
        return path
    for companion in getattr(item, "attachments", []) or []:  # a melody's MIDI beside its audio
        if Path(companion).suffix.lower() in readable and Path(companion).is_file():
            return Path(companion)
    return path


def unreadable_reason(path: Path, medium: str, suffixes: Iterable[str]) -> str:
    """Why a file of another kind is not learned from: "a PNG file in a text set: …"."""
    suffix = path.suffix.lower()
    wanted = ", ".join(sorted(suffixes))
    label = suffix.lstrip(".").upper() or "file without a suffix"
    what = f"{_letters_article(label)} {label} file" if suffix else "a file without a suffix"
    if medium == "music" and KIND_BY_SUFFIX.get(suffix) == "music":
        return (
            f"{_letters_article(label)} {label} recording in a music set: tunes are learned from their notes ({wanted})"
        )
    return f"{what} in {_article(medium)} {medium} set: this run learns from {wanted} files"


# -- the summary -------------------------------------------------------------------


def summarize_training_data(worker: Worker, request: TrainRequest) -> DataSummary:
    """What a run would learn from (the side lane's ``data_summary``): reads and hashes the files."""
    trainer = _trainer(worker, request.medium)
    summary = build_summary(request, trainer, worker._store)
    problem = data_problem(summary, request.data)
    if problem:
        summary = dataclasses.replace(summary, notes=(*summary.notes, problem))
    return summary


def build_summary(
    request: TrainRequest,
    trainer: Any,
    store: Any,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> DataSummary:
    """Hash and inspect every file; exact duplicates (only the first is kept), captions, words."""
    sources, unreadable = gather_sources(request, store, trainer.suffixes)
    captions = {str(key): str(text) for key, text in request.captions}
    files: list[TrainingFile] = []
    groups: dict[str, list[str]] = {}
    refused: dict[str, str] = {}  # sha256 → why, so every copy of an unreadable file says it
    words: Counter[str] = Counter()
    for index, source in enumerate(sources):
        if cancelled():
            raise JobCancelled()
        if progress is not None:
            progress(index, len(sources))
        path = source.path
        if path.suffix.lower() not in trainer.suffixes:
            unreadable.append((str(path), unreadable_reason(path, request.medium, trainer.suffixes)))
            continue
        try:
            sha256, size = file_sha256_and_size(path)
        except OSError as exc:
            unreadable.append((str(path), f"cannot be read: {exc.strerror or exc}"))
            continue
        if sha256 in refused:
            unreadable.append((str(path), refused[sha256]))
            continue
        if sha256 in groups:
            groups[sha256].append(str(path))
            continue
        try:
            inspected = trainer.inspect(path)
        except UnreadableData as exc:
            refused[sha256] = str(exc)
            unreadable.append((str(path), str(exc)))
            continue
        except OSError as exc:
            refused[sha256] = f"cannot be read: {exc.strerror or exc}"
            unreadable.append((str(path), refused[sha256]))
            continue
        groups[sha256] = [str(path)]
        caption, caption_source = _caption(source, captions, request.medium)
        words.update(content_words(caption or inspected.words_text))
        files.append(
            TrainingFile(
                path=str(path),
                sha256=sha256,
                size_bytes=size,
                medium=request.medium,
                caption=caption,
                caption_source=caption_source,
                width=inspected.width,
                height=inspected.height,
                units=inspected.units,
                gallery_id=source.gallery_id,
            )
        )
    if progress is not None:
        progress(len(sources), len(sources))
    duplicates = tuple(tuple(group) for group in groups.values() if len(group) > 1)
    notes: list[str] = []
    if duplicates:
        extra = sum(len(group) - 1 for group in duplicates)
        notes.append(
            f"{extra} exact duplicate{'s' if extra != 1 else ''} left out: only the first copy of each file is "
            "learned from"
        )
    near = tuple(tuple(group) for group in trainer.near_duplicates(files)) if files else ()
    notes += list(trainer.data_notes(files)) if files else []
    return DataSummary(
        medium=request.medium,
        files=tuple(files),
        unreadable=tuple(unreadable),
        duplicates=duplicates,
        near_duplicates=near,
        caption_words=tuple(words.most_common(CAPTION_WORDS)),
        notes=tuple(notes),
        rights=request.rights.strip(),
    )


def _caption(source: _Source, captions: dict[str, str], medium: str) -> tuple[str, str]:
    """The caption editor's text, else the gallery prompt, else a ``.txt`` beside an image."""
    keys = [str(source.path), str(source.path.resolve())]
    if source.gallery_id:
        keys.append(GALLERY + source.gallery_id)
    for key in keys:
        if key in captions:
            return captions[key].strip(), "editor"
    if source.prompt.strip() and medium in _GALLERY_CAPTIONS:
        return source.prompt.strip(), "gallery"
    beside = source.path.with_suffix(".txt")
    if medium in _CAPTIONED and beside.is_file():
        try:
            text = beside.read_text(encoding="utf-8", errors="replace")[:_MAX_CAPTION_CHARS]
        except OSError:
            return "", ""
        if text.strip():
            return " ".join(text.split()), "txt"
    return "", ""


def content_words(text: str) -> list[str]:
    """The words of ``text`` that say what it is about: lower case, no function words or numbers."""
    return [w for w in _WORD.findall(text.lower()) if len(w) > 1 and w not in STOP_WORDS]


def data_problem(summary: DataSummary, data: Iterable[str] = ()) -> str:
    """Why ``summary`` is too little to train on, or "" when it is enough (``MINIMUM``)."""
    count, unit = MINIMUM[summary.medium]
    if not summary.files:
        if summary.unreadable:
            shown = "; ".join(f"{Path(p).name}: {why}" for p, why in summary.unreadable[:3])
            more = f" (and {len(summary.unreadable) - 3} more)" if len(summary.unreadable) > 3 else ""
            return f"none of the {len(summary.unreadable)} files can be learned from — {shown}{more}"
        named = ", ".join(data) or "the data"
        return f"nothing to learn from: {named} holds no files"
    if summary.medium == "image":
        have = len(summary.files)
    else:
        have = sum(f.units for f in summary.files) or 0
        if have == 0:  # a trainer that does not count units: files, at least two
            have, count, unit = len(summary.files), 2, "files"
    if have < count:
        if summary.medium == "image":
            images = f"{have} image{'s' if have != 1 else ''}"
            return f"too little to learn from: {images}; give at least {count} (10–30 is typical)"
        return (
            f"too little to learn from: {have:,} {unit} in {len(summary.files)} file(s); give at least {count:,} {unit}"
        )
    return ""


# -- the job -----------------------------------------------------------------------


def run_training_job(worker: Worker, job: _Job, request: TrainRequest) -> None:
    """Run one training request on the worker thread: events as ``studio.core.training`` says; the
    worker survives every failure (each becomes an ``error`` or ``cancelled`` event)."""
    run: RunFolders | None = None
    prepared = False  # whether this run made its staging folder (only then is there anything to clean)
    state: dict[str, Any] = {"phase": "", "step": 0}
    facts: dict[str, Any] = {"kind": "train", "medium": request.medium, "name": request.name}
    plan: Any = None
    device: Any = None

    def forward(event: JobEvent) -> None:
        if event.kind is EventKind.PROGRESS:
            state.update(event.info, phase=event.info.get("phase", ""), step=event.step, total=event.total)
        worker._emit(event)

    def ended_info() -> dict[str, Any]:
        info = dict(facts)
        if run is not None and _has_checkpoint(run.checkpoint):
            info["checkpoint"] = str(run.checkpoint)
        return info

    try:
        if worker.data_dir is None:
            raise StudioError("this Studio has no data folder to keep trained models in")
        trainer = _trainer(worker, request.medium)
        base = resolve_base(worker, request)
        method = choose_method(trainer, base, request)
        request = dataclasses.replace(request, method=method)
        facts.update(base=base.name, method=method)
        worker._emit(JobEvent(EventKind.STARTED, job.id, info=dict(facts)))
        run = run_folders(worker.data_dir, request.name)
        check_name(worker, request, run)
        ctx = TrainContext(
            job.id,
            forward,
            job.cancel,
            output_dir=run.staging,
            checkpoint_dir=run.staging / "estimate-checkpoint" if request.estimate_only else run.checkpoint,
            resume=request.resume and not request.estimate_only,
            estimate_only=request.estimate_only,
        )
        summary = build_summary(
            request,
            trainer,
            worker._store,
            progress=lambda i, n: ctx.progress(i, n, phase="reading"),
            cancelled=job.cancel.is_set,
        )
        # What it learns from, before it learns: the command line prints it, the tab can show it.
        worker._emit(JobEvent(EventKind.DATA_SUMMARY, job.id, result=summary, info=dict(facts)))
        problem = data_problem(summary, request.data)
        if problem:
            raise InvalidRequest("data", problem)
        base_facts = _base_facts(worker, base)
        if request.resume and not request.estimate_only:
            check_resume(run, request, summary, base_facts)
        device = worker._device_choice()
        plan = trainer.plan(base, request, summary, device)
        ctx.raise_if_cancelled()
        prepared = True  # from here on a failure cleans up what this run made (a full disk may stop _prepare)
        _prepare(run, request, summary, base_facts)
        # Training needs the memory the loaded models hold: the next generation loads its model again.
        worker.cache.clear()
        _free_memory()
        started = time.monotonic()
        outcome = trainer.train(base, plan, summary, device, ctx)
        duration = round(time.monotonic() - started, 2)
        if request.estimate_only:  # nothing is installed, nothing kept
            _clean(run, prepared)
            prepared = False
            worker._emit(
                JobEvent(
                    EventKind.FINISHED, job.id, result=_estimate(state, plan, outcome, duration),
                    info={**facts, "estimate_only": True},
                )
            )  # fmt: skip
            return
        ctx.progress(plan.steps, plan.steps, phase="saving")
        card = TrainingCard(
            name=request.name.strip(),
            medium=request.medium,
            method=plan.method,
            result_kind=outcome.result_kind,
            base=base_facts,
            settings={k: v for k, v in plan.to_dict().items() if k != "notes"},
            steps=outcome.steps,
            final_loss=float(outcome.final_loss),
            best_loss=float(outcome.best_loss),
            duration_s=duration,
            device=outcome.device,
            data=dataclasses.replace(summary, notes=(*summary.notes, *plan.notes)),
            created_at=utc_now_iso(),
            app_version=studio.__version__,
            curve=thin_curve(outcome.curve, _CURVE_POINTS),
        )
        write_card(run.staging, card, base)
        install(run)
        shutil.rmtree(run.root, ignore_errors=True)  # the checkpoints of a finished run
        prepared = False
        model_id = _installed_id(worker, run.target, training_slug(request.name))
        result = TrainedModel(
            model=model_id,
            kind=outcome.result_kind,
            path=str(run.target),
            data_digest=summary.digest,
            files=len(summary.files),
            final_loss=card.final_loss,
            best_loss=card.best_loss,
            steps=card.steps,
            duration_s=duration,
        )
        worker._emit(JobEvent(EventKind.FINISHED, job.id, result=result.to_dict(), info={**facts, "model": model_id}))
    except JobCancelled:
        _clean(run, prepared)
        worker._emit(JobEvent(EventKind.CANCELLED, job.id, info=ended_info()))
    except StudioError as exc:
        _clean(run, prepared)
        log.info("training job %s failed: %s", job.id, exc)
        info = ended_info()
        if isinstance(exc, InvalidRequest):
            info["field"] = exc.field
        worker._emit(JobEvent(EventKind.ERROR, job.id, error=str(exc), info=info))
    except OSError as exc:
        _clean(run, prepared)
        log.warning("training job %s could not write: %s", job.id, exc, exc_info=True)
        message = disk_message(exc, str(state.get("phase", "")), run)
        worker._emit(JobEvent(EventKind.ERROR, job.id, error=message, info={**ended_info(), "unsaved": True}))
    except Exception as exc:
        _clean(run, prepared)
        from studio.engines.devices import is_out_of_memory

        detail = "".join(traceback.format_exception(exc))
        if is_out_of_memory(exc):
            log.warning("out of memory in training job %s", job.id, exc_info=True)
            worker.cache.clear()
            _free_memory()
            message = out_of_memory_message(request, plan, device)
        else:
            log.error("training job %s failed", job.id, exc_info=exc)
            where = f" Details are in {worker._log_file}." if worker._log_file else ""
            message = f"training failed: {type(exc).__name__}: {first_line(exc)}.{where}"
        worker._emit(JobEvent(EventKind.ERROR, job.id, error=message, detail=detail, info=ended_info()))


def _trainer(worker: Worker, medium: str) -> Any:
    from studio.engines.training.registry import trainer_for

    with worker._library_lock:  # its module may import the model libraries for the first time
        return trainer_for(medium)


def _free_memory() -> None:
    from studio.engines.devices import free_device_memory

    free_device_memory()


def resolve_base(worker: Worker, request: TrainRequest) -> ModelSpec:
    """The model the run starts from: ``request.base``, else the medium's default (``DEFAULT_BASES``;
    images: the first runnable diffusers model, the user's before a starter)."""
    ref = request.base.strip() or DEFAULT_BASES.get(request.medium, "")
    catalog: Any = worker._catalog
    if not ref:
        specs = catalog.discover() if hasattr(catalog, "discover") else []
        found = [
            s
            for s in preferred_order(specs)
            if s.kind == request.medium and s.format == "diffusers-image" and s.runnable
        ]
        if not found:
            raise ModelError(
                f"no {request.medium} model to train from: add a Stable Diffusion model ('studio models add FOLDER') "
                "or name one with --base"
            )
        ref = str(found[0].path)
    spec: ModelSpec = catalog.resolve(ref)
    if spec.kind in ("lora", "embedding"):
        raise InvalidRequest("base", f"{spec.name} is {_article(spec.kind)} {spec.kind}: train from the model it fits")
    if not spec.runnable:
        raise ModelError(f"cannot train {spec.name}: {spec.reason}")
    if spec.kind != request.medium:
        raise InvalidRequest(
            "base", f"{spec.name} is {_article(spec.kind or 'x')} {spec.kind or 'unknown'} model; "
            f"{_article(request.medium)} {request.medium} run needs {_article(request.medium)} {request.medium} model"
        )  # fmt: skip
    return spec


def choose_method(trainer: Any, base: ModelSpec, request: TrainRequest) -> str:
    """The request's method, else the base's default; refused with the methods the base takes."""
    methods = tuple(trainer.methods(base))  # a StudioError saying why for a base nobody can train
    if not methods:
        raise StudioError(f"{base.name} cannot be trained")
    method = request.method or methods[0]
    if method not in methods:
        raise InvalidRequest("method", f"{base.name} cannot be trained with {method}: it takes {' or '.join(methods)}")
    return method


def check_name(worker: Worker, request: TrainRequest, run: RunFolders) -> None:
    """Refuse a name the library already has (nothing is touched), and a Resume with nothing to resume."""
    name = request.name.strip()
    if run.target.exists():
        raise InvalidRequest(
            "name", f"a model named {name!r} is already in your library ({run.target}): choose another name"
        )
    catalog: Any = worker._catalog
    key = training_slug(name)
    for spec in catalog.discover() if hasattr(catalog, "discover") else []:
        if name.lower() in (spec.id.lower(), spec.name.lower()) or key == spec.id:
            raise InvalidRequest(
                "name", f"{name!r} already names {_article(spec.kind or 'm')} {spec.kind or ''} model in your library "
                f"({spec.path}): choose another name"
            )  # fmt: skip
    if request.estimate_only:
        return
    pending = _has_checkpoint(run.checkpoint)
    if request.resume and not pending:
        raise InvalidRequest("resume", f"nothing to resume: no run named {name!r} stopped at a checkpoint")
    if not request.resume and pending:
        raise InvalidRequest(
            "name",
            f"a run named {name!r} stopped at a checkpoint ({run.checkpoint}): resume it, or delete that folder "
            "to start over",
        )


def check_resume(run: RunFolders, request: TrainRequest, summary: DataSummary, base: dict[str, Any]) -> None:
    """A resumed run must learn from the same data and base as its checkpoint (cancel + resume = one run)."""
    try:
        stored = json.loads(run.run_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # a checkpoint from before run files: the trainer checks what it can
    if stored.get("data_digest") and stored["data_digest"] != summary.digest:
        raise InvalidRequest(
            "data",
            f"the data changed since the checkpoint (digest {str(stored['data_digest'])[:12]}… then, "
            f"{summary.digest[:12]}… now): resume with the same files, or start over under another name",
        )
    if stored.get("base_sha256") and base.get("sha256") and stored["base_sha256"] != base["sha256"]:
        raise InvalidRequest("base", f"the checkpoint was trained from another base ({stored.get('base_name', '?')})")
    if stored.get("method") and stored["method"] != request.method:
        raise InvalidRequest("method", f"the checkpoint was trained with {stored['method']}, not {request.method}")


def _base_facts(worker: Worker, base: ModelSpec) -> dict[str, Any]:
    fingerprints = worker._fingerprints
    digest = fingerprints.of_model(base.path) if fingerprints is not None else ""
    return {"id": base.id, "name": base.name, "sha256": digest, "format": base.format, "family": base.family}


def _prepare(run: RunFolders, request: TrainRequest, summary: DataSummary, base: dict[str, Any]) -> None:
    if run.staging.exists():  # left by a crash: never a model, only a half-written folder
        shutil.rmtree(run.staging)
    run.staging.mkdir(parents=True)
    if request.estimate_only:
        return
    run.checkpoint.mkdir(parents=True, exist_ok=True)
    record = {
        "name": request.name.strip(),
        "medium": request.medium,
        "method": request.method,
        "base_name": base.get("name", ""),
        "base_sha256": base.get("sha256", ""),
        "data_digest": summary.digest,
        "request": request.to_dict(),
    }
    atomic_write_text(run.run_file, json.dumps(record, indent=1))


def _clean(run: RunFolders | None, prepared: bool) -> None:
    """After a failure: the staging folder goes; the run folder too when no checkpoint is left to resume."""
    if run is None or not prepared:
        return
    shutil.rmtree(run.staging, ignore_errors=True)
    if not _has_checkpoint(run.checkpoint):
        shutil.rmtree(run.root, ignore_errors=True)


def install(run: RunFolders) -> None:
    """Move the finished staging folder into the library in one rename (never a half-written model there)."""
    if not any(run.staging.iterdir()):
        raise StudioError("the trainer wrote no model: nothing was added to your library")
    run.target.parent.mkdir(parents=True, exist_ok=True)
    if run.target.exists():
        raise InvalidRequest("name", f"a model named {run.target.name!r} appeared in your library meanwhile")
    try:
        os.rename(run.staging, run.target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        # The data folder spans two file systems: copy beside the target, then rename there.
        partial = run.target.with_name(".partial-" + run.target.name)
        shutil.rmtree(partial, ignore_errors=True)
        try:
            shutil.copytree(run.staging, partial)
            os.rename(partial, run.target)
        except OSError:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        shutil.rmtree(run.staging, ignore_errors=True)


def _installed_id(worker: Worker, target: Path, fallback: str) -> str:
    catalog: Any = worker._catalog
    if not hasattr(catalog, "discover"):
        return fallback
    resolved = target.resolve()
    for spec in catalog.discover():
        where = spec.path.resolve()
        if resolved in (where, where.parent):
            return str(spec.id)
    return fallback


def _estimate(state: dict[str, Any], plan: Any, outcome: Any, duration: float) -> dict[str, Any]:
    """What an estimate-only run measured: seconds a step and the whole run's time."""
    step, total, eta = int(state.get("step") or 0), int(state.get("total") or plan.steps), state.get("eta_s")
    if isinstance(eta, (int, float)) and total > step:
        per_step = float(eta) / (total - step)
    else:
        per_step = duration / max(1, int(outcome.steps or 1))
    return {
        "estimate_only": True,
        "steps": int(plan.steps),
        "seconds_per_step": round(per_step, 4),
        "estimated_s": round(per_step * int(plan.steps), 1),
        "device": outcome.device,
        "plan": plan.to_dict(),
    }


def thin_curve(curve: Iterable[tuple[int, float]], points: int) -> tuple[tuple[int, float], ...]:
    """At most ``points`` (step, loss) pairs, evenly spaced, the last one always kept."""
    full = [(int(s), float(v)) for s, v in curve]
    if len(full) <= points:
        return tuple(full)
    stride = len(full) / points
    chosen = [full[int(i * stride)] for i in range(points - 1)] + [full[-1]]
    return tuple(chosen)


def disk_message(exc: OSError, phase: str, run: RunFolders | None) -> str:
    """A write that failed during a run, as a person can act on it."""
    where = exc.filename or (run.root if run is not None else "the data folder")
    doing = {"checkpoint": "saving a checkpoint", "saving": "saving the model", "reading": "reading the data"}.get(
        phase, "training"
    )
    kept = run is not None and _has_checkpoint(run.checkpoint)
    after = " and resume: the last complete checkpoint is kept" if kept else " and train again"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk is full: {doing} needs more space in {Path(str(where)).parent}. Free some space{after}. " \
            "Nothing was added to your library."  # fmt: skip
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot write to {where} while {doing}: {exc.strerror}. Nothing was added to your library."
    return f"{doing} failed: {exc.strerror or exc} ({where}). Nothing was added to your library."


def out_of_memory_message(request: TrainRequest, plan: Any, device: Any) -> str:
    """Out of memory while training: what to lower, from the settings the run used."""
    batch = int(getattr(plan, "batch_size", request.batch_size) or request.batch_size)
    tips = [f"batch size 1 (now {batch})"] if batch > 1 else []
    if not (getattr(plan, "gradient_checkpointing", False) or request.gradient_checkpointing):
        tips.append("gradient checkpointing")
    if request.medium == "image":
        size = int(getattr(plan, "resolution", 0) or request.resolution)
        tips.append(f"a smaller resolution (now {size} px)" if size else "a smaller resolution")
    else:
        length = int(getattr(plan, "seq_len", 0) or request.seq_len)
        tips.append(f"a shorter sequence length (now {length} tokens)" if length else "a shorter sequence length")
    if request.method != "lora":
        tips.append("LoRA instead of a full fine-tune")
    name = getattr(device, "name", "the device")
    return f"out of memory on {name} while training: try {', '.join(tips)}. Loaded models were freed."


# -- the card ----------------------------------------------------------------------


def write_card(folder: Path, card: TrainingCard, base: ModelSpec) -> None:
    """``studio_training.json`` and ``README.md`` (a model card with YAML front matter) into ``folder``."""
    atomic_write_text(folder / TRAINING_FILE, json.dumps(card.to_dict(), indent=1, ensure_ascii=False))
    atomic_write_text(folder / "README.md", model_card_markdown(card, base))


def model_card_markdown(card: TrainingCard, base: ModelSpec) -> str:
    data = card.data
    count = len(data.files)
    files_word = f"{count} file{'s' if count != 1 else ''}"
    licence = model_card_licence(base.path) or "other"
    library = {"diffusers-image": "diffusers", "transformers-text": "transformers"}.get(base.format, "studio")
    if card.result_kind == "lora":
        what = f"A LoRA for {base.name}"
        library = "peft" if card.medium == "text" else library
    else:
        what = f"{base.name} fine-tuned"
    doing = {"text": "it continues what you write", "music": "it writes tunes", "image": "it paints"}[card.medium]
    hint = f"Trained by you in Studio: {base.name} fine-tuned on {files_word} of yours; {doing} in their manner."
    front = [
        "---",
        f"license: {licence}",
        f"base_model: {_yaml(base.name)}",
        f"base_model_sha256: {card.base.get('sha256', '')}",
        f"library_name: {library}",
        f"tags: [studio-trained, {card.medium}, {card.method}]",
        f"studio_data_digest: {data.digest}",
    ]
    if card.result_kind != "lora":
        front.append(f"studio_hint: {_yaml(hint)}")
    front.append("---")
    settings = "\n".join(
        f"| {key} | {_cell(value)} |" for key, value in card.settings.items() if value not in ("", (), [])
    )
    rows = "\n".join(
        f"| {_cell(Path(f.path).name)} | `{f.sha256}` | {f.size_bytes:,} | "
        f"{_cell(f.caption[:80]) + (f' ({f.caption_source})' if f.caption_source else '') if f.caption else ''} |"
        for f in data.files
    )
    words = ", ".join(f"{w} ({n})" for w, n in data.caption_words[:15]) or "—"
    extra = []
    if data.duplicates:
        extra.append(f"- exact duplicates left out: {sum(len(g) - 1 for g in data.duplicates)}")
    if data.near_duplicates:
        extra.append(f"- near duplicates (kept): {len(data.near_duplicates)} group(s)")
    if data.unreadable:
        extra += [f"- not learned from: {_cell(Path(p).name)} — {_cell(why)}" for p, why in data.unreadable[:50]]
    extra += [f"- {_cell(note)}" for note in data.notes]
    curve_rows = "\n".join(f"| {s} | {v:.4f} |" for s, v in thin_curve(card.curve, 12))
    minutes = card.duration_s / 60
    return "\n".join(
        [
            *front,
            "",
            f"# {card.name}",
            "",
            f"{what} by you in Studio {card.app_version} on {card.created_at[:10]}, from {files_word} "
            f"({data.total_bytes:,} bytes). Every output made with it records this card's data digest, and "
            "`studio verify` names it.",
            "",
            "## Training data",
            "",
            f"- data digest: `{data.digest}` (sha256 over the sorted, distinct file hashes, one per line)",
            f"- rights: {_cell(data.rights) or 'not stated'}",
            f"- most frequent words: {words}",
            *extra,
            "",
            "| file | sha256 | bytes | caption |",
            "|---|---|---|---|",
            rows,
            "",
            "## Training",
            "",
            f"- base: {base.name} ({base.format}, {base.family or '—'}), sha256 `{card.base.get('sha256', '')}`",
            f"- method: {card.method}; {card.steps} steps; final loss {card.final_loss:.4f}, best {card.best_loss:.4f}",
            f"- {minutes:.1f} minutes on {card.device}",
            "",
            "| setting | value |",
            "|---|---|",
            settings,
            "",
            "| step | loss |",
            "|---|---|",
            curve_rows,
            "",
        ]
    )


def _yaml(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid YAML scalar


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _letters_article(label: str) -> str:
    """ "an MD", "an MP3", "a PNG": a suffix is read letter by letter, except those said as words."""
    if label in ("FLAC", "WAV", "WEBP", "OPUS"):
        return "a"
    return "an" if label[:1] in "AEFHILMNORSX" else "a"


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"

"""Regenerate and prove: run an item's recorded request again with the recorded model and compare.

The model is found by its weights' sha256 (the recorded path first, then every model of the kind
in the library); a model that is gone or changed is named. The engine runs here, in the calling
thread, without the worker and without saving (the CLI runs it in its own process; the window on
a side thread). The comparison is of *content* — decoded pixels, 16-bit samples quantised by the
gallery's own writer, the text — since a file's bytes include its metadata and signature. The
answer is identical, or different and why: which of the library versions, device, dtype,
scheduler, adapters, inputs or the model hash differ between the record's runtime and now.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import studio
from studio.core.errors import InvalidRequest, ModelError, StudioError
from studio.core.events import JobEvent
from studio.core.models import ModelSpec
from studio.core.outputs import EngineResult, GeneratedOutput
from studio.core.provenance import ProvenanceRecord, new_item_id, utc_now_iso
from studio.core.requests import Request, request_from_dict
from studio.gallery.content import file_digest, output_digest

log = logging.getLogger(__name__)

# Runtime facts whose change can change an output, as a person names them.
_RUNTIME_FACTS = (
    ("device", "device"),
    ("dtype", "dtype"),
    ("memory_mode", "memory mode"),
    ("threads", "CPU threads"),
    ("scheduler", "scheduler"),
    ("pipeline", "pipeline"),
    ("model_class", "model class"),
    ("cpu_offload", "CPU offload"),
    ("compiled", "torch.compile"),
)
_INPUT_HASHES = (
    ("init_image", "init_image_sha256", "starting image"),
    ("audio_prompt", "audio_prompt_sha256", "continued clip"),
    ("melody", "melody_sha256", "melody"),
)


class Catalog(Protocol):
    def resolve(self, ref: str) -> ModelSpec: ...

    def discover(self) -> list[ModelSpec]: ...


class Fingerprints(Protocol):
    def of_model(self, path: Path) -> str: ...


class Store(Protocol):
    def save(self, output: GeneratedOutput, record: ProvenanceRecord) -> Any: ...


@dataclass
class Difference:
    what: str
    recorded: str
    now: str

    def to_dict(self) -> dict[str, str]:
        return {"what": self.what, "recorded": self.recorded, "now": self.now}

    def __str__(self) -> str:
        return f"{self.what}: {self.recorded or '(not recorded)'} then, {self.now or '(none)'} now"


@dataclass
class RegenerateReport:
    record: ProvenanceRecord
    original_path: Path
    identical: bool
    original_sha256: str  # content digest of the original file
    regenerated_sha256: str  # content digest of the new output, as the gallery would store it
    differences: list[Difference] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    output: GeneratedOutput | None = None
    kept: Any = None  # the gallery item saved with --keep
    recorded_content_sha256: str = ""
    result: EngineResult | None = None
    request: Any = None

    @property
    def explanation(self) -> str:
        word = {"image": "pixels", "music": "audio samples", "text": "text"}.get(self.record.kind, "content")
        if self.identical:
            also = f" (although {'; '.join(map(str, self.differences))})" if self.differences else ""
            return f"identical: the regenerated {word} match the original exactly{also}"
        if self.differences:
            return "different, because " + "; ".join(map(str, self.differences))
        return (
            f"different: the {word} differ though nothing recorded differs (same model hash, libraries, device, "
            "dtype and scheduler) — the engine is not deterministic on this machine"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "original_sha256": self.original_sha256,
            "regenerated_sha256": self.regenerated_sha256,
            "differences": [d.to_dict() for d in self.differences],
            "explanation": self.explanation,
            "item": self.record.id,
            "kind": self.record.kind,
            "original": str(self.original_path),
            "model": self.model,
            "kept": self.kept.to_dict() if self.kept is not None and hasattr(self.kept, "to_dict") else None,
        }


def find_model(record: ProvenanceRecord, catalog: Catalog, fingerprints: Fingerprints) -> tuple[ModelSpec, str]:
    """The model the record names, by its weights' sha256: (spec, its digest now). The recorded path
    is tried first, then every model of the kind. A changed model (same place, other weights) is
    returned with its new digest, so the difference can be named; a gone one raises ``ModelError``."""
    wanted = str(record.model.get("sha256") or "")
    name = str(record.model.get("name") or record.model.get("id") or "the recorded model")
    refs = [str(record.model.get("path") or ""), str(record.request.get("model") or ""), str(record.model.get("id"))]
    named: tuple[ModelSpec, str] | None = None
    for ref in dict.fromkeys(r for r in refs if r):
        try:
            spec = catalog.resolve(ref)
        except (ModelError, StudioError, OSError):
            continue
        digest = fingerprints.of_model(spec.path)
        if not wanted or digest == wanted:
            return spec, digest
        named = named or (spec, digest)
        break
    if wanted:
        for spec in catalog.discover():
            if spec.kind != record.kind or not spec.runnable:
                continue
            try:
                digest = fingerprints.of_model(spec.path)
            except OSError:
                continue
            if digest == wanted:
                return spec, digest
    if named is not None:
        log.info("%s changed since the record: %s now, %s recorded", name, named[1][:12], wanted[:12])
        return named
    short = f" (sha256 {wanted[:12]}…)" if wanted else ""
    raise ModelError(
        f"the model {name}{short} is not in the library any more: no model there has those weights. Add its "
        "folder with 'studio models add FOLDER'"
    )


def recorded_request(record: ProvenanceRecord, model_path: Path) -> Request:
    """The record's request, run with ``model_path``; inputs that are gone are named."""
    values = {**record.request, "model": str(model_path)}
    try:
        return request_from_dict(values)
    except InvalidRequest as exc:
        if exc.field in ("init_image", "audio_prompt", "melody"):
            raise StudioError(f"cannot regenerate {record.id}: {exc}") from exc
        raise


def differences(record: ProvenanceRecord, result: EngineResult, digest_now: str) -> list[Difference]:
    """What differs between the record's runtime and this run's, in the order that matters."""
    found: list[Difference] = []
    wanted = str(record.model.get("sha256") or "")
    if wanted and digest_now and wanted != digest_now:
        found.append(Difference("model weights sha256", wanted[:16], digest_now[:16]))
    then, now = record.runtime, result.runtime
    then_versions: dict[str, Any] = _mapping(then.get("versions"))
    now_versions: dict[str, Any] = _mapping(now.get("versions"))
    for library in sorted(set(then_versions) | set(now_versions)):
        a, b = str(then_versions.get(library, "")), str(now_versions.get(library, ""))
        if a != b:
            found.append(Difference(f"{library} version", a, b))
    for key, label in _RUNTIME_FACTS:
        if key in then or key in now:
            a, b = _text(then.get(key)), _text(now.get(key))
            if a != b:
                found.append(Difference(label, a, b))
    # The adapters applied are in the model's record (each with its hash); the request only names them.
    adapters_then, adapters_now = _adapters({}, then, record.model), _adapters({}, now, result.model)
    if adapters_then != adapters_now:
        found.append(Difference("adapters", adapters_then, adapters_now))
    for _field, key, label in _INPUT_HASHES:
        if key in then or key in now:
            a, b = str(then.get(key, ""))[:16], str(now.get(key, ""))[:16]
            if a != b:
                found.append(Difference(f"{label} sha256", a, b))
    app_then = str(record.app.get("version", ""))
    if app_then and app_then != studio.__version__:
        found.append(Difference(f"{studio.APP_NAME} version", app_then, studio.__version__))
    return found


def regenerate(
    record: ProvenanceRecord,
    original: Path,
    *,
    catalog: Catalog,
    fingerprints: Fingerprints,
    runtime_options: dict[str, Any] | None = None,
    store: Store | None = None,
    keep: bool = False,
    cancel: threading.Event | None = None,
    on_event: Callable[[JobEvent], None] | None = None,
    engines: dict[str, Any] | None = None,
) -> RegenerateReport:
    """Run ``record``'s request again and compare the new output with ``original`` (its file)."""
    from studio.engines import registry
    from studio.engines.base import RunContext
    from studio.engines.devices import choose_device

    if record.kind not in ("text", "image", "music"):
        raise StudioError(f"a {record.kind} item cannot be regenerated")
    operation = (record.derived_from or {}).get("operation")
    action = operation.get("action") if isinstance(operation, dict) else None
    # An edit ran a model on a source and can run again; an exported copy or a kept regeneration cannot.
    if record.derived_from is not None and action in ("c2pa.transcoded", "regenerate", None):
        raise StudioError(
            f"{record.id} is a derivative of {record.derived_from.get('id', 'another item')}: regenerate that one"
        )
    if record.output.get("grid"):
        raise StudioError(f"{record.id} is a sweep's grid, made of its cells: regenerate a cell")
    if record.runtime.get("imported_from"):
        raise StudioError(f"{record.id} was imported from another tool: Studio has no model run to repeat")
    spec, digest_now = find_model(record, catalog, fingerprints)
    if not spec.runnable:
        raise ModelError(f"cannot use {spec.name}: {spec.reason}")
    request = recorded_request(record, spec.path)
    engine = (engines or {}).get(spec.format) or registry.create_engine(spec.format)
    engine.check(spec, request)
    options = runtime_options or {}
    device = choose_device(
        str(options.get("device", "auto")),
        memory_mode=str(options.get("memory_mode", "auto")),
        compile_models=bool(options.get("compile_models", False)),
        precision=str(options.get("precision", "auto")),
    )
    from studio.engines.library.adapters import resolve_job_adapters

    adapters = resolve_job_adapters(catalog, spec, request)  # the same LoRAs / embeddings, found again
    ctx = RunContext(uuid.uuid4().hex[:12], on_event or (lambda _event: None), cancel or threading.Event(), adapters)
    model = engine.load(spec, device)
    try:
        ctx.raise_if_cancelled()
        result: EngineResult = engine.generate(model, request, ctx)
    finally:
        engine.unload(model)
    ctx.raise_if_cancelled()
    index = record.output.get("index", 0)
    outputs = result.outputs
    output = outputs[index] if isinstance(index, int) and 0 <= index < len(outputs) else outputs[0]
    original_content = file_digest(original)
    regenerated = output_digest(output)
    report = RegenerateReport(
        record=record,
        original_path=original,
        identical=bool(original_content) and original_content == regenerated,
        original_sha256=original_content,
        regenerated_sha256=regenerated,
        differences=differences(record, result, digest_now),
        model={"name": spec.name, "path": str(spec.path), "sha256": digest_now},
        output=output,
        recorded_content_sha256=str(record.output.get("content_sha256", "")),
        result=result,
        request=request,
    )
    if keep:
        if store is None:
            raise StudioError("keeping the regenerated output needs the gallery")
        report.kept = store.save(output, _kept_record(record, report, result, request, digest_now))
    return report


def _kept_record(
    record: ProvenanceRecord, report: RegenerateReport, result: EngineResult, request: Request, digest: str
) -> ProvenanceRecord:
    return ProvenanceRecord(
        id=new_item_id(),
        kind=record.kind,
        created_at=utc_now_iso(),
        app={"name": studio.APP_NAME, "version": studio.__version__},
        model={**result.model, **({"sha256": digest} if digest else {})},
        request=request.to_dict(),
        runtime=result.runtime,
        output=dict(report.output.info) if report.output is not None else {},
        parent=record.id,
        derived_from={
            "id": record.id,
            "sha256": str(record.output.get("sha256", "")),
            "content_sha256": report.original_sha256,
            "operation": {
                "action": "regenerate",
                "identical": report.identical,
                "differences": [d.to_dict() for d in report.differences],
            },
        },
        ai_training=record.ai_training,
    )


def load_record(ref: str, store: Any = None, credentials: Any = None) -> tuple[ProvenanceRecord, Path]:
    """A gallery item by id, or a file (its sidecar, embedded record or content credentials)."""
    if store is not None:
        item = store.get(ref, include_deleted=True)
        if item is not None:
            return item.record, Path(item.path)
    path = Path(ref).expanduser()
    if not path.is_file():
        raise InvalidRequest("item", f"no gallery item or file {ref} ('studio gallery list' shows the ids)")
    from studio.gallery.verify import verify_file

    verified = verify_file(path, credentials)
    if verified.record is None:
        raise StudioError(f"{path.name} has no Studio record to regenerate from")
    return verified.record, path


def original_hash_note(report: RegenerateReport) -> str:
    """Whether the original file still shows what its record says (its content digest)."""
    if report.recorded_content_sha256 and report.recorded_content_sha256 != report.original_sha256:
        return "note: the original file's content no longer matches its record's content digest"
    return ""


def _adapters(request: dict[str, Any], runtime: dict[str, Any], model: dict[str, Any]) -> str:
    found: list[str] = []
    for source in (request, runtime, model):
        for key in ("adapters", "loras", "lora"):
            value = source.get(key)
            if value:
                found.append(_text(value))
    return "; ".join(found)


def _mapping(value: Any) -> dict[str, Any]:
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_text(v)}" for k, v in sorted(value.items()))
    return str(value)


def regenerate_with_services(
    record: ProvenanceRecord,
    original: Path,
    services: Any,
    *,
    keep: bool = False,
    cancel: threading.Event | None = None,
    on_event: Callable[[JobEvent], None] | None = None,
) -> RegenerateReport:
    """``regenerate`` with the catalog, weight digests, device settings and gallery of ``services``
    (what the window holds). Runs in the calling thread: never call it on the GUI thread."""
    from studio.engines.fingerprint import WeightFingerprints
    from studio.runtime.services import make_catalog

    settings = services.settings
    return regenerate(
        record,
        original,
        catalog=make_catalog(settings),
        fingerprints=WeightFingerprints(services.paths.cache / "weight-digests.json"),
        runtime_options={n: settings.get(n) for n in ("device", "memory_mode", "compile_models", "precision")},
        store=services.store,
        keep=keep,
        cancel=cancel,
        on_event=on_event,
    )


def keep_output(report: RegenerateReport, store: Store) -> Any:
    """Save a regenerated output (already compared) as a new item whose parent is the original."""
    if report.output is None or report.result is None:
        raise StudioError("there is no regenerated output to keep")
    return store.save(
        report.output,
        _kept_record(report.record, report, report.result, report.request, str(report.model.get("sha256", ""))),
    )

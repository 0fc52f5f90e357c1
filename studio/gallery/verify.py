"""Checking what a file says about itself: its provenance record, its content credentials (C2PA)
and whether it still matches them. Files from other tools report the parameters they carry.

Verify tells what a file *is* before judging it: an output as saved, an exported copy in another
format (a derivative with a record of its own), a companion file (a melody's MIDI), a copy stripped
for sharing, or Studio's parameters left in a file another program re-encoded. Only a file that
contradicts its own record or credentials is called changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.files import file_sha256
from studio.core.media_types import ATTACHMENT_MIME, KIND_BY_SUFFIX
from studio.core.provenance import ProvenanceRecord
from studio.gallery.content import file_digest
from studio.gallery.credentials import ContentCredentials, CredentialReport
from studio.gallery.foreign import read_foreign_metadata
from studio.gallery.metadata import read_embedded_record, read_marking

MAX_SIDECAR_BYTES = 16 * 1024 * 1024
_TRAINING_WORDS = {"allowed": "allowed", "not_allowed": "not allowed", "not_stated": "not stated"}


@dataclass
class VerifyReport:
    path: Path
    record: ProvenanceRecord | None = None
    record_source: str = ""  # "sidecar", "embedded", "content credentials" or ""
    expected_sha256: str = ""
    actual_sha256: str = ""
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # worth saying, not a sign of tampering
    credentials: CredentialReport | None = None
    foreign: dict[str, Any] | None = None  # what another tool's file states (A1111, ComfyUI, InvokeAI)
    summary: str = ""  # what the file is, in one line
    content_matches: bool | None = None  # the decoded content against the record's content digest
    marking: dict[str, str] = field(default_factory=dict)  # the plain AI marking (also in stripped copies)
    ai_training: str = "not_stated"
    stated_by_marking: bool = False  # a stripped Studio copy: only the AI marking says where it came from
    # What the models and adapters trained in Studio learned from, one phrase each:
    # "Harbour Voice, trained by you on 20 files (digest 1a2b3c4d5e6f…)".
    lineage: list[str] = field(default_factory=list)

    @property
    def hash_mismatch(self) -> bool:
        return bool(self.expected_sha256) and self.expected_sha256 != self.actual_sha256

    @property
    def tampered(self) -> bool:
        """Changed after it was saved or signed: by the record's hash, its content digest or the C2PA hash."""
        return (
            self.hash_mismatch
            or self.content_matches is False
            or (self.credentials is not None and self.credentials.state == "invalid")
        )

    @property
    def ok(self) -> bool:
        """Something to trust, and nothing contradicting it."""
        stated = self.record is not None or self.foreign is not None or self.stated_by_marking
        return stated and not self.tampered and not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "summary": self.summary,
            "record_source": self.record_source,
            "record": self.record.to_dict() if self.record else None,
            "expected_sha256": self.expected_sha256,
            "actual_sha256": self.actual_sha256,
            "hash_matches": bool(self.expected_sha256) and not self.hash_mismatch,
            "content_matches": self.content_matches,
            "content_credentials": self.credentials.to_dict() if self.credentials else None,
            "foreign": self.foreign,
            "marking": dict(self.marking),
            "ai_training": self.ai_training,
            "derived_from": self.record.derived_from if self.record else None,
            "tampered": self.tampered,
            "problems": list(self.problems),
            "notes": list(self.notes),
            "lineage": list(self.lineage),
            "ok": self.ok,
        }


def verify_file(path: Path, credentials: ContentCredentials | None = None) -> VerifyReport:
    """Read the record from the sidecar beside ``path`` or from the file, check its hash and its
    content credentials (trusting ``credentials``' local root when given)."""
    path = Path(path)
    report = VerifyReport(path)
    if not path.is_file():
        report.problems.append(f"{path} is not a file")
        return report
    report.actual_sha256 = file_sha256(path)
    if path.suffix.lower() in ATTACHMENT_MIME:
        return _verify_companion(path, report)

    report.record, report.record_source = _own_record(path, report.problems)
    report.credentials = (credentials or ContentCredentials(path.parent / ".no-local-root")).read(path)
    if report.credentials.state == "invalid":
        reasons = "; ".join(report.credentials.problems[:3]) or "the signature does not match the content"
        report.problems.append(f"content credentials are invalid: {reasons}")
    if report.credentials.state == "unreadable":
        report.problems.extend(report.credentials.problems)
    if report.record is None and report.credentials.record:
        try:
            report.record = ProvenanceRecord.from_dict(report.credentials.record)
            report.record_source = "content credentials"
        except ValueError:
            pass
    report.marking = read_marking(path)
    report.ai_training = _ai_training(report)
    if report.record is None:
        _without_record(path, report)
        return report
    record = report.record
    if report.record_source == "sidecar":
        expected = record.output.get("sha256", "")
        report.expected_sha256 = expected if isinstance(expected, str) else ""
    _check_content(path, report)
    if report.hash_mismatch:
        if report.content_matches:
            report.problems.append(
                f"the file changed since saving, but its {_content_word(record.kind)} is the same: "
                "it was re-encoded or its metadata was edited"
            )
        else:
            report.problems.append("the file's content differs from what its record states")
    _describe(path, report)
    _check_attachments(path, report)
    return report


def _own_record(path: Path, problems: list[str]) -> tuple[ProvenanceRecord | None, str]:
    """The record in the sidecar beside ``path``, else the one embedded in it."""
    sidecar = path.with_suffix(".json")
    if sidecar.is_file() and sidecar != path and sidecar.stat().st_size <= MAX_SIDECAR_BYTES:
        try:
            return ProvenanceRecord.from_dict(json.loads(sidecar.read_text("utf-8"))), "sidecar"
        except (OSError, ValueError) as exc:
            problems.append(f"sidecar {sidecar.name} is not a valid record: {exc}")
    embedded = read_embedded_record(path)
    if embedded is not None:
        try:
            return ProvenanceRecord.from_dict(embedded), "embedded"
        except ValueError as exc:
            problems.append(f"embedded record is not valid: {exc}")
    return None, ""


def _check_content(path: Path, report: VerifyReport) -> None:
    """The decoded pixels, samples or text against the record's content digest, where it has one."""
    assert report.record is not None
    stated = report.record.output.get("content_sha256")
    if not isinstance(stated, str) or not stated:
        return
    actual = file_digest(path)
    if not actual:
        return
    report.content_matches = actual == stated
    if report.content_matches is False and not report.hash_mismatch:
        report.problems.append(_changed_content(path, report.record))


def _changed_content(path: Path, record: ProvenanceRecord) -> str:
    word = _content_word(record.kind)
    if record.kind == "image":
        size = _image_size(path)
        recorded = (record.output.get("width"), record.output.get("height"))
        if size and all(isinstance(v, int) for v in recorded) and size != recorded:
            return (
                f"the {word} differs from its record: resized since ({size[0]}x{size[1]} now, "
                f"{recorded[0]}x{recorded[1]} recorded)"
            )
    return f"edited: its content ({word}) differs from its record"


def _describe(path: Path, report: VerifyReport) -> None:
    record = report.record
    assert record is not None
    state = report.credentials.state if report.credentials else "none"
    derived = record.derived_from
    if derived:
        operation = derived.get("operation", {}) if isinstance(derived.get("operation"), dict) else {}
        fmt = str(operation.get("format") or path.suffix.lstrip(".")).upper()
        base = f"an exported {fmt} copy of {derived.get('id', '?')}"
        if operation.get("action") == "regenerate":
            base = f"a regeneration of {derived.get('id', '?')}"
        elif operation.get("action") not in ("c2pa.transcoded", None):
            source = derived.get("id") or derived.get("file") or "?"
            base = f"{_an_output(record.kind)} made by {operation.get('task') or 'editing'} {source}"
        parent_sha = str(derived.get("sha256", ""))[:12]
        base += f" (original sha256 {parent_sha}…)" if parent_sha else ""
    else:
        model = record.model.get("name") or record.model.get("id") or "?"
        base = f"{_an_output(record.kind)} made with {model}"
    report.lineage = lineage_phrases(record)
    if report.lineage and not derived:
        base = f"{_an_output(record.kind)} made with {' and '.join(report.lineage)}"
    elif report.lineage:
        report.notes.append(f"made with {' and '.join(report.lineage)}")
    if report.tampered or report.problems:
        report.summary = f"{base}; CHANGED since"
        return
    checks = []
    if report.expected_sha256:
        checks.append("file hash")
    if report.content_matches:
        checks.append(_content_word(record.kind))
    if state in ("trusted", "valid"):
        checks.append(f"content credentials ({state})")
    report.summary = f"{base}; matches its {', '.join(checks)}" if checks else f"{base}; nothing to check it against"
    if state == "none" and path.suffix.lower() in _signable() and report.record_source != "sidecar":
        if record.output.get("content_credentials", "c2pa") == "c2pa":
            report.notes.append("no content credentials: signing was off, or the file was re-encoded since")


def lineage_phrases(record: ProvenanceRecord) -> list[str]:
    """The model, then each adapter, of a record as named for verification; those trained in Studio
    with what they learned from ("Harbour Voice, trained by you on 20 files (digest 1a2b3c4d5e6f…)").
    Empty when neither the model nor an adapter was trained in Studio."""
    model = record.model
    phrases = [_trained(str(model.get("name") or model.get("id") or "?"), model.get("training"))]
    trained = isinstance(model.get("training"), dict)
    for adapter in model.get("adapters") or []:
        if not isinstance(adapter, dict) or not isinstance(adapter.get("training"), dict):
            continue
        trained = True
        kind = "LoRA" if adapter.get("kind", "lora") == "lora" else str(adapter.get("kind"))
        phrases.append(f"the {kind} " + _trained(str(adapter.get("name") or adapter.get("file") or "?"),
                                                   adapter["training"]))  # fmt: skip
    return phrases if trained else []


def _trained(name: str, lineage: Any) -> str:
    if not isinstance(lineage, dict) or not lineage.get("data_digest"):
        return name
    files = int(lineage.get("files") or 0)
    who = "you" if lineage.get("trained_by", "user") == "user" else str(lineage.get("trained_by"))
    noun = "file" if files == 1 else "files"
    return f"{name}, trained by {who} on {files} {noun} (digest {str(lineage['data_digest'])[:12]}…)"


def _without_record(path: Path, report: VerifyReport) -> None:
    """No Studio record: another tool's parameters, Studio's own left in a re-encoded file, or a
    copy stripped for sharing that keeps only the AI marking."""
    report.foreign = read_foreign_metadata(path)
    studio_made = str(report.marking.get("creator_tool", "")).startswith("Studio")
    if report.foreign is not None and report.foreign.get("tool") == "Studio":
        credentials = report.credentials.state if report.credentials else "none"
        gone = "its content credentials are gone" if credentials == "none" else f"credentials {credentials}"
        report.summary = "Studio's parameters in a file re-encoded since by another program"
        report.notes.append(
            f"Studio's parameters (A1111 layout) are here but not its record: the file was re-encoded since; {gone}"
        )
        return
    if report.foreign is not None:
        report.summary = f"parameters written by {report.foreign.get('tool', 'another tool')}"
        return
    if report.marking.get("digital_source_type") and studio_made:
        report.stated_by_marking = True
        report.summary = (
            f"a copy stripped of its provenance for sharing, marked AI-generated by {report.marking['creator_tool']}"
        )
        return
    report.problems.append("no provenance found: no Studio record, content credentials or known parameters")


def _verify_companion(path: Path, report: VerifyReport) -> VerifyReport:
    """A companion file (a melody's MIDI) is checked against the hash its output's record lists."""
    suffix = path.suffix.lower()
    siblings = [path.with_suffix(s) for s in KIND_BY_SUFFIX if path.with_suffix(s).is_file()]
    sidecar = path.with_suffix(".json")
    candidates = ([sidecar] if sidecar.is_file() else []) + siblings
    for candidate in candidates:
        problems: list[str] = []
        if candidate.suffix == ".json":
            record, source = _own_record(candidate.with_suffix(suffix), problems)  # reads <id>.json
        else:
            record, source = _own_record(candidate, problems)
        if record is None:
            continue
        for entry in record.output.get("attachments", []) or []:
            if not isinstance(entry, dict) or Path(str(entry.get("file", ""))).suffix.lower() != suffix:
                continue
            report.record, report.record_source = record, source
            report.expected_sha256 = str(entry.get("sha256", ""))
            owner = candidate.name if candidate.suffix != ".json" else f"item {record.id}"
            what = {".mid": "MIDI"}.get(suffix, suffix.lstrip(".").upper())
            if report.hash_mismatch:
                report.summary = f"the {what} file of {owner}; CHANGED since"
                report.problems.append(f"{path.name} differs from what the record of {owner} states")
            else:
                report.summary = f"the {what} file of {owner}; matches its record"
            return report
    report.problems.append(f"no record lists {path.name}: its output's file or sidecar is not beside it")
    return report


def _check_attachments(path: Path, report: VerifyReport) -> None:
    """Companion files (a melody's MIDI) beside the file must match the hashes the record lists."""
    listed = report.record.output.get("attachments") if report.record else None
    for entry in listed if isinstance(listed, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            continue
        name = Path(entry["file"]).name
        companion = path.with_name(name)
        if not companion.is_file():
            companion = path.with_suffix(Path(name).suffix)  # an export names it like its audio
        if not companion.is_file():
            report.notes.append(f"{name} (listed in the record) is not beside the file")
            continue
        if file_sha256(companion) != entry.get("sha256"):
            report.problems.append(f"{companion.name} differs from what the record states")


def _ai_training(report: VerifyReport) -> str:
    """The training permission: the C2PA assertion first (signed), then the record, then the XMP/tags."""
    if report.credentials is not None and report.credentials.ai_training != "not_stated":
        return report.credentials.ai_training
    if report.record is not None and report.record.ai_training:
        return report.record.ai_training
    return report.marking.get("ai_training", "not_stated")


def record_source_words(source: str) -> str:
    """Where a record was read from, as a whole phrase: "the sidecar file", "the record embedded in the file"."""
    return _RECORD_SOURCE_WORDS.get(source, source or "nowhere")


_RECORD_SOURCE_WORDS = {
    "sidecar": "the sidecar file beside it",
    "embedded": "the record embedded in the file",
    "content credentials": "the file's content credentials (C2PA)",
}


def training_words(choice: str) -> str:
    return _TRAINING_WORDS.get(choice, choice)


def _content_word(kind: str) -> str:
    return {"image": "pixels", "music": "audio samples", "text": "text"}.get(kind, "content")


def _image_size(path: Path) -> tuple[int, int] | None:
    try:
        from PIL import Image

        with Image.open(path) as image:
            return (int(image.width), int(image.height))
    except Exception:
        return None


def _signable() -> tuple[str, ...]:
    from studio.core.media_types import SIGNABLE_MIME

    return tuple(SIGNABLE_MIME)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _an_output(kind: str) -> str:
    """How a summary names an output of ``kind``: "an image", "a text", "music" (not "a music")."""
    return kind if kind == "music" else f"{_article(kind)} {kind}"

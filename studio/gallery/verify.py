"""Checking what a file says about itself: its provenance record, its content credentials (C2PA)
and whether it still matches them. Files from other tools report the parameters they carry."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.provenance import ProvenanceRecord
from studio.gallery.credentials import ContentCredentials, CredentialReport
from studio.gallery.foreign import read_foreign_metadata
from studio.gallery.metadata import read_embedded_record

MAX_SIDECAR_BYTES = 16 * 1024 * 1024


@dataclass
class VerifyReport:
    path: Path
    record: ProvenanceRecord | None = None
    record_source: str = ""  # "sidecar", "embedded" or ""
    expected_sha256: str = ""
    actual_sha256: str = ""
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # worth saying, not a sign of tampering
    credentials: CredentialReport | None = None
    foreign: dict[str, Any] | None = None  # what another tool's file states (A1111, ComfyUI, InvokeAI)

    @property
    def hash_mismatch(self) -> bool:
        return bool(self.expected_sha256) and self.expected_sha256 != self.actual_sha256

    @property
    def tampered(self) -> bool:
        """Changed after it was saved or signed: by the record's hash or by the C2PA data hash."""
        return self.hash_mismatch or (self.credentials is not None and self.credentials.state == "invalid")

    @property
    def ok(self) -> bool:
        """Something to trust, and nothing contradicting it."""
        stated = self.record is not None or self.foreign is not None
        return stated and not self.tampered and not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "record_source": self.record_source,
            "record": self.record.to_dict() if self.record else None,
            "expected_sha256": self.expected_sha256,
            "actual_sha256": self.actual_sha256,
            "hash_matches": bool(self.expected_sha256) and not self.hash_mismatch,
            "content_credentials": self.credentials.to_dict() if self.credentials else None,
            "foreign": self.foreign,
            "tampered": self.tampered,
            "problems": list(self.problems),
            "notes": list(self.notes),
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
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    report.actual_sha256 = digest.hexdigest()

    sidecar = path.with_suffix(".json")
    if sidecar.is_file() and sidecar != path and sidecar.stat().st_size <= MAX_SIDECAR_BYTES:
        try:
            report.record = ProvenanceRecord.from_dict(json.loads(sidecar.read_text("utf-8")))
            report.record_source = "sidecar"
        except (OSError, ValueError) as exc:
            report.problems.append(f"sidecar {sidecar.name} is not a valid record: {exc}")
    if report.record is None:
        embedded = read_embedded_record(path)
        if embedded is not None:
            try:
                report.record = ProvenanceRecord.from_dict(embedded)
                report.record_source = "embedded"
            except ValueError as exc:
                report.problems.append(f"embedded record is not valid: {exc}")
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
    if report.record is None:
        report.foreign = read_foreign_metadata(path)
        if report.foreign is None:
            report.problems.append("no provenance found: no Studio record, content credentials or known parameters")
        return report
    expected = report.record.output.get("sha256", "")
    report.expected_sha256 = expected if isinstance(expected, str) else ""
    if report.hash_mismatch:
        report.problems.append("the file's content differs from what its record states: it was changed after saving")
    _check_attachments(path, report)
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
            report.notes.append(f"{name} (listed in the record) is not beside the file")
            continue
        if hashlib.sha256(companion.read_bytes()).hexdigest() != entry.get("sha256"):
            report.problems.append(f"{name} differs from what the record states: it was changed after saving")

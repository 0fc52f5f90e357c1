"""C2PA content credentials: signing each output with this installation's own key, and reading them.

On first use Studio makes a local certificate authority and an end-entity certificate signed by
it (ECDSA P-256). c2pa-rs accepts only this shape of signer: BasicConstraints CA:FALSE,
KeyUsage digitalSignature (critical), ExtendedKeyUsage emailProtection. The private keys stay in
the data folder with mode 0600 and are never logged. Verification trusts the local root, so an
unchanged file of this installation reads "Trusted"; another installation's reads "Valid"; any
byte changed after signing reads "Invalid".

Everything runs offline: no timestamp server, no remote manifests, no OCSP.
"""

from __future__ import annotations

import datetime
import io
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Formats c2pa can embed a manifest in; OGG and text are covered by the sidecar only.
SIGNABLE_MIME = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".mp3": "audio/mpeg",
}
RECORD_ASSERTION = "org.studio.provenance"
_OFFLINE = {
    "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
    "builder": {"thumbnail": {"enabled": False}},
}
_CERT_YEARS = 10


@dataclass
class CredentialReport:
    """What a file's content credentials say: ``state`` is trusted / valid / invalid / none / unreadable."""

    state: str
    problems: list[str] = field(default_factory=list)
    signer: str = ""
    record: dict[str, Any] | None = None
    source_type: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "problems": list(self.problems),
            "signer": self.signer,
            "source_type": self.source_type,
        }


class ContentCredentials:
    """Signs files with the installation key in ``folder`` (made on first use) and reads credentials."""

    def __init__(self, folder: Path, app_name: str = "Studio", app_version: str = "") -> None:
        self.folder = Path(folder)
        self.app_name = app_name
        self.app_version = app_version
        self._lock = threading.Lock()
        self._signer_parts: tuple[bytes, bytes] | None = None

    @property
    def root_certificate(self) -> Path:
        return self.folder / "root-ca.pem"

    # -- keys ---------------------------------------------------------------------

    def _ensure_keys(self) -> tuple[bytes, bytes]:
        """(certificate chain PEM, signer key PEM), made once per installation."""
        with self._lock:
            if self._signer_parts is not None:
                return self._signer_parts
            chain_file, key_file = self.folder / "signer-chain.pem", self.folder / "signer-key.pem"
            if not (chain_file.is_file() and key_file.is_file() and self.root_certificate.is_file()):
                self._make_keys(chain_file, key_file)
            self._signer_parts = (chain_file.read_bytes(), key_file.read_bytes())
            return self._signer_parts

    def _make_keys(self, chain_file: Path, key_file: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
        until = now + datetime.timedelta(days=365 * _CERT_YEARS)
        root_key = ec.generate_private_key(ec.SECP256R1())
        signer_key = ec.generate_private_key(ec.SECP256R1())
        root_name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{self.app_name} (this installation)"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{self.app_name} local root"),
            ]
        )
        root = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        signer = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{self.app_name} (this installation)"),
                        x509.NameAttribute(NameOID.COMMON_NAME, f"{self.app_name} content signer"),
                    ]
                )
            )
            .issuer_name(root_name)
            .public_key(signer_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        _write_private(
            key_file,
            signer_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        )
        _write_private(
            self.folder / "root-ca-key.pem",
            root_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        )
        chain_file.write_bytes(signer.public_bytes(pem) + root.public_bytes(pem))
        self.root_certificate.write_bytes(root.public_bytes(pem))
        log.info("made this installation's content-credential certificates in %s", self.folder)

    # -- signing ------------------------------------------------------------------

    def sign(self, source: Path, dest: Path, record: dict[str, Any]) -> None:
        """Write ``source`` signed to ``dest``: a created action (AI-generated), the model, the record."""
        import c2pa

        mime = SIGNABLE_MIME[source.suffix.lower()]
        chain, key = self._ensure_keys()
        model = record.get("model", {}) if isinstance(record.get("model"), dict) else {}
        app = f"{self.app_name} {self.app_version}".strip()
        manifest = {
            "claim_generator_info": [{"name": self.app_name, "version": self.app_version}],
            "title": source.name,
            "assertions": [
                {
                    "label": "c2pa.actions.v2",
                    "data": {
                        "actions": [
                            {
                                "action": "c2pa.created",
                                "digitalSourceType": (
                                    "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
                                ),
                                "softwareAgent": {"name": self.app_name, "version": self.app_version},
                                "description": f"generated with {app} from the model {model.get('name', '')}",
                            }
                        ]
                    },
                },
                {"label": RECORD_ASSERTION, "data": record},
            ],
        }
        context = c2pa.Context.from_dict(_OFFLINE)
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, key, None))
        try:
            with c2pa.Builder(manifest, context=context) as builder:
                ingredient = {
                    "title": str(model.get("name") or model.get("id") or "model"),
                    "relationship": "inputTo",
                    "format": "application/octet-stream",
                }
                if model.get("sha256"):
                    ingredient["instance_id"] = f"sha256:{model['sha256']}"
                builder.add_ingredient(json.dumps(ingredient), "application/octet-stream", io.BytesIO(b""))
                with source.open("rb") as src, dest.open("wb") as out:
                    builder.sign(signer, mime, src, out)
        finally:
            signer.close()

    # -- reading ------------------------------------------------------------------

    def read(self, path: Path) -> CredentialReport:
        """The validation state of ``path``'s manifest, trusting this installation's root."""
        mime = SIGNABLE_MIME.get(Path(path).suffix.lower())
        if mime is None:
            return CredentialReport("none", ["this format carries no content credentials (the sidecar covers it)"])
        try:
            import c2pa
        except ImportError as exc:
            return CredentialReport("unreadable", [f"c2pa is not installed: {exc}"])
        settings = json.loads(json.dumps(_OFFLINE))
        if self.root_certificate.is_file():
            settings["trust"] = {"user_anchors": self.root_certificate.read_text()}
        try:
            context = c2pa.Context.from_dict(settings)
            with Path(path).open("rb") as stream, c2pa.Reader(mime, stream, context=context) as reader:
                state = str(reader.get_validation_state() or "").lower()
                data = json.loads(reader.json())
        except Exception as exc:  # c2pa raises its own error types for files without a manifest
            text = str(exc)
            if "ManifestNotFound" in text or "no JUMBF" in text or "not found" in text.lower():
                return CredentialReport("none", ["the file has no content credentials"])
            return CredentialReport("unreadable", [f"content credentials could not be read: {text[:300]}"])
        return _report(state, data)


def _report(state: str, data: dict[str, Any]) -> CredentialReport:
    manifests = data.get("manifests", {})
    active = manifests.get(data.get("active_manifest", ""), {})
    problems = [
        f"{status.get('code', '')}: {status.get('explanation', '')}".strip(": ")
        for status in data.get("validation_status", []) or []
    ]
    report = CredentialReport(state or "invalid", problems)
    signature = active.get("signature_info", {}) or {}
    report.signer = str(signature.get("common_name") or signature.get("issuer") or "")
    for assertion in active.get("assertions", []):
        if assertion.get("label") == RECORD_ASSERTION:
            report.record = assertion.get("data")
        elif str(assertion.get("label", "")).startswith("c2pa.actions"):
            for action in assertion.get("data", {}).get("actions", []):
                if action.get("action") == "c2pa.created":
                    report.source_type = str(action.get("digitalSourceType", ""))
    return report


def _key_usage(*, cert_sign: bool):
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _write_private(path: Path, data: bytes) -> None:
    """Create the file readable by its owner only, before any byte of the key is written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)

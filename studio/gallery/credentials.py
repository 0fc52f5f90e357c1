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
from typing import TYPE_CHECKING, Any

from studio.core.media_types import SIGNABLE_MIME
from studio.gallery.xmp import digital_source_type

if TYPE_CHECKING:
    from cryptography import x509

log = logging.getLogger(__name__)

RECORD_ASSERTION = "org.studio.provenance"
# The training-and-data-mining assertion: C2PA 1.x had it as ``c2pa.training-mining``; since C2PA 2.0 it
# is the Creator Assertions Working Group's (CAWG 1.1), the label and entry names c2pa-rs passes through.
TRAINING_ASSERTION = "cawg.training-mining"
_LEGACY_TRAINING_ASSERTION = "c2pa.training-mining"
_TRAINING_USE = {"allowed": "allowed", "not_allowed": "notAllowed"}
_TRAINING_ENTRIES = {
    "allowed": ("cawg.ai_training", "cawg.ai_generative_training", "cawg.data_mining"),
    "not_allowed": ("cawg.ai_training", "cawg.ai_generative_training"),
}
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
    actions: list[str] = field(default_factory=list)  # c2pa.created, c2pa.opened, c2pa.transcoded …
    parents: list[str] = field(default_factory=list)  # titles of the parentOf ingredients
    ai_training: str = "not_stated"  # from the training-and-data-mining assertion
    # The models and adapters that went in (inputTo ingredients): title, hash and, for one trained
    # in Studio, what it learned from (``training``: its lineage).
    inputs: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "problems": list(self.problems),
            "signer": self.signer,
            "source_type": self.source_type,
            "actions": list(self.actions),
            "parents": list(self.parents),
            "ai_training": self.ai_training,
            "inputs": [dict(entry) for entry in self.inputs],
        }


# The ingredient metadata key under which a trained model's or adapter's lineage travels.
TRAINING_INGREDIENT = "org.studio.training"


def training_ingredient(lineage: Any) -> dict[str, Any]:
    """The fields that make a model's or adapter's ingredient say what it learned from: a sentence and,
    as ingredient metadata, its lineage (who trained it, on how many files, the data digest)."""
    if not isinstance(lineage, dict) or not lineage.get("data_digest"):
        return {}
    files = int(lineage.get("files") or 0)
    who = "you" if lineage.get("trained_by", "user") == "user" else str(lineage.get("trained_by"))
    described = (
        f"trained by {who} on {files} file{'s' if files != 1 else ''}, data digest sha256:{lineage['data_digest']}"
    )
    carried = {k: v for k, v in lineage.items() if k != "card"}  # a local path stays on this machine
    return {"description": described, "metadata": {TRAINING_INGREDIENT: carried}}


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

    def sign(
        self,
        source: Path,
        dest: Path,
        record: dict[str, Any],
        *,
        parent: Path | None = None,
        action: str = "c2pa.transcoded",
    ) -> None:
        """Write ``source`` signed to ``dest``: a created action (AI-generated), the model, the record,
        and the training permission the record states. With ``parent`` (a derivative: an export in
        another format) the original file is the ``parentOf`` ingredient — its own manifest travels
        along — and the actions are ``c2pa.opened`` (it) then ``action``."""
        import c2pa

        mime = SIGNABLE_MIME[source.suffix.lower()]
        chain, key = self._ensure_keys()
        model = record.get("model", {}) if isinstance(record.get("model"), dict) else {}
        app = f"{self.app_name} {self.app_version}".strip()
        agent = {"name": self.app_name, "version": self.app_version}
        operation = (record.get("derived_from") or {}).get("operation", {})
        operation = operation if isinstance(operation, dict) else {}
        source_type = digital_source_type(record)
        if parent is None:
            actions: list[dict[str, Any]] = [
                {
                    "action": "c2pa.created",
                    "digitalSourceType": source_type,
                    "softwareAgent": agent,
                    "description": f"generated with {app} from the model {model.get('name', '')}",
                }
            ]
        elif action == "c2pa.transcoded":
            what = operation.get("format", "")
            actions = [
                {"action": "c2pa.opened", "parameters": {"ingredientIds": ["parent"]}},
                {"action": action, "softwareAgent": agent, "description": f"exported by {app} as {what}".strip()},
            ]
        else:
            # An edit made by a model (inpaint, upscale, a repainted bar of a song): the parent opened,
            # then changed, the new parts AI-made.
            task = str(operation.get("task") or "edited")
            actions = [
                {"action": "c2pa.opened", "parameters": {"ingredientIds": ["parent"]}},
                {
                    "action": action,
                    "digitalSourceType": source_type,
                    "softwareAgent": agent,
                    "description": f"{task} with {app} using the model {model.get('name', '')}".strip(),
                },
            ]
        assertions: list[dict[str, Any]] = [
            {"label": "c2pa.actions.v2", "data": {"actions": actions}},
            {"label": RECORD_ASSERTION, "data": record},
        ]
        training = str(record.get("ai_training") or "")
        if training in _TRAINING_ENTRIES:
            use = {"use": _TRAINING_USE[training]}
            entries = {name: dict(use) for name in _TRAINING_ENTRIES[training]}
            assertions.append({"label": TRAINING_ASSERTION, "data": {"entries": entries}})
        manifest = {
            "claim_generator_info": [{"name": self.app_name, "version": self.app_version}],
            "title": source.name,
            "assertions": assertions,
        }
        context = c2pa.Context.from_dict(_OFFLINE)
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, key, None))
        try:
            with c2pa.Builder(manifest, context=context) as builder:
                if parent is not None:
                    parent_mime = SIGNABLE_MIME.get(parent.suffix.lower(), "application/octet-stream")
                    original = {"title": parent.name, "relationship": "parentOf", "label": "parent"}
                    with parent.open("rb") as stream:
                        builder.add_ingredient(json.dumps(original), parent_mime, stream)
                ingredient = {
                    "title": str(model.get("name") or model.get("id") or "model"),
                    "relationship": "inputTo",
                    "format": "application/octet-stream",
                }
                if model.get("sha256"):
                    ingredient["instance_id"] = f"sha256:{model['sha256']}"
                ingredient.update(training_ingredient(model.get("training")))
                builder.add_ingredient(json.dumps(ingredient), "application/octet-stream", io.BytesIO(b""))
                for adapter in model.get("adapters") or []:  # each LoRA / embedding, named with its hash
                    if isinstance(adapter, dict) and adapter.get("sha256"):
                        used = {
                            "title": str(adapter.get("file") or adapter.get("name") or adapter.get("kind")),
                            "relationship": "inputTo",
                            "format": "application/octet-stream",
                            "instance_id": f"sha256:{adapter['sha256']}",
                            **training_ingredient(adapter.get("training")),
                        }
                        builder.add_ingredient(json.dumps(used), "application/octet-stream", io.BytesIO(b""))
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
        label = str(assertion.get("label", ""))
        data = assertion.get("data")
        if label == RECORD_ASSERTION:
            report.record = data if isinstance(data, dict) else None
        elif label.startswith("c2pa.actions") and isinstance(data, dict):
            for action in data.get("actions", []):
                if not isinstance(action, dict):
                    continue
                report.actions.append(str(action.get("action", "")))
                if action.get("action") == "c2pa.created":
                    report.source_type = str(action.get("digitalSourceType", ""))
        elif label in (TRAINING_ASSERTION, _LEGACY_TRAINING_ASSERTION) and isinstance(data, dict):
            report.ai_training = _training_choice(data)
    for ingredient in active.get("ingredients", []) or []:
        if isinstance(ingredient, dict) and ingredient.get("relationship") == "parentOf":
            report.parents.append(str(ingredient.get("title", "")))
        elif isinstance(ingredient, dict) and ingredient.get("relationship") == "inputTo":
            metadata = ingredient.get("metadata")
            training = metadata.get(TRAINING_INGREDIENT) if isinstance(metadata, dict) else None
            entry: dict[str, Any] = {
                "title": str(ingredient.get("title", "")),
                "instance_id": str(ingredient.get("instance_id", "")),
            }
            if isinstance(training, dict):
                entry["training"] = training
            report.inputs.append(entry)
    return report


def _training_choice(data: dict[str, Any]) -> str:
    """``not_allowed`` when any AI-training entry says notAllowed, ``allowed`` when they allow it."""
    entries = data.get("entries", data)  # early writers put the entries at the top level
    uses = {
        str(name).split(".", 1)[-1]: str(value.get("use", ""))
        for name, value in (entries.items() if isinstance(entries, dict) else [])
        if isinstance(value, dict)
    }
    training = [uses.get(name, "") for name in ("ai_training", "ai_generative_training")]
    if "notAllowed" in training:
        return "not_allowed"
    if "allowed" in training:
        return "allowed"
    return "not_stated"


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
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

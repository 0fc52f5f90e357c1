"""A model named by what it is, not where it sits: how a cluster node finds the client's model.

A job's request names its model by a path on the client. Another machine has its own folders, so
the client sends the model's identity — its folder or file name, the weights' sha256 (Studio's
fingerprint, as every record carries it) and, for a model from the Hugging Face cache, its repo id
and revision — and the node looks it up in its own library (``find_model``): the same repo id or
name first, then anything of the job's kind with the same weights. A node whose model of that name
has other weights says so rather than running something else under the client's name.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from studio.core.errors import StudioError
from studio.core.models import ModelSpec


class Fingerprints(Protocol):
    def of_model(self, path: Path) -> str: ...


class Library(Protocol):
    def discover(self) -> list[ModelSpec]: ...


def model_identity(ref: str, fingerprints: Fingerprints | None) -> dict[str, str]:
    """What a node needs to find ``ref`` (a path or a library name on this machine) in its own library."""
    path = Path(ref)
    identity = {"name": path.name}
    if not path.exists():
        return identity  # a name: the node resolves it by that name, as this machine would
    repo_id, revision = hub_repo_of(path)
    if repo_id:
        identity.update(repo_id=repo_id, revision=revision)
    if fingerprints is not None:
        try:
            digest = fingerprints.of_model(path)
        except OSError:
            digest = ""
        if digest:
            identity["sha256"] = digest
    return identity


def hub_repo_of(path: Path) -> tuple[str, str]:
    """(repo id, revision) of a folder inside the Hugging Face cache (``models--org--name/snapshots/REV``)."""
    parts = path.resolve().parts
    for index, part in enumerate(parts):
        if part.startswith("models--") and index + 2 < len(parts) and parts[index + 1] == "snapshots":
            return part.removeprefix("models--").replace("--", "/"), parts[index + 2]
    return "", ""


def find_model(library: Library, fingerprints: Fingerprints, identity: dict[str, Any], kinds: Iterable[str]) -> str:
    """The path of the model ``identity`` names in ``library`` (this node's); ``StudioError`` saying
    why when there is none. Without a sha256 (the client named a model, not a file) the name decides."""
    name = str(identity.get("name", ""))
    repo_id = str(identity.get("repo_id", ""))
    sha256 = str(identity.get("sha256", "")).lower()
    wanted_kinds = set(kinds)
    specs = [spec for spec in library.discover() if spec.runnable and (not wanted_kinds or spec.kind in wanted_kinds)]

    def named(spec: ModelSpec) -> bool:
        return bool(repo_id and spec.id == repo_id) or name in (spec.path.name, spec.name, spec.id)

    same_name = [spec for spec in specs if named(spec)]
    if not sha256:
        if same_name:
            return str(same_name[0].path)
        raise StudioError(f"this node has no model named {name!r}")
    # The same name first (one digest to check, usually cached), then the rest of the job's kind.
    others = [spec for spec in specs if spec not in same_name]
    for spec in [*same_name, *others]:
        if fingerprints.of_model(spec.path) == sha256:
            return str(spec.path)
    if same_name:
        theirs = fingerprints.of_model(same_name[0].path)
        raise StudioError(
            f"this node's {name!r} has other weights (sha256 {theirs[:12]}…, the job's {sha256[:12]}…): "
            "copy the client's model there, or give it another name"
        )
    raise StudioError(f"this node has no model with the weights of {name!r} (sha256 {sha256[:12]}…)")

"""The model library: bundled starters, the Hugging Face cache and the user's folders, searched
recursively; a model found by id, name or path."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from studio.core.errors import ModelError
from studio.core.models import ModelSpec
from studio.engines.library.adapters import (
    ADAPTER_KINDS,
    PEFT_CONFIG,
    discover_adapters,
    is_adapter_file,
    resolve_adapter,
)
from studio.engines.library.checkpoints import checkpoint_files, inspect_checkpoint
from studio.engines.library.classify import inspect_folder, is_model_folder, slug
from studio.engines.library.gguf_files import FoundGGUF, app_gguf_models, gguf_files, inspect_gguf
from studio.engines.library.hf_cache import hf_cache_models


class ModelCatalog:
    """Bundled models, the Hugging Face hub cache, and the user's folders (searched recursively)."""

    def __init__(
        self,
        bundled_root: Path | None,
        user_folders: Iterable[str | Path] = (),
        *,
        hf_cache: Path | None = None,
        allow_pickle: Iterable[str | Path] = (),
        app_sources_off: Iterable[str] | None = None,
        home: Path | None = None,
    ) -> None:
        self.bundled_root = bundled_root
        self.user_folders = [Path(p).expanduser() for p in user_folders]
        self.hf_cache = hf_cache
        self.allow_pickle = {str(Path(p).expanduser().resolve()) for p in allow_pickle}
        # The GGUF models other apps keep (LM Studio, GPT4All, Jan, Ollama); None: not searched at all.
        self.app_sources_off = None if app_sources_off is None else set(app_sources_off)
        self.home = home

    def discover(self) -> list[ModelSpec]:
        specs: list[ModelSpec] = []
        seen_paths: set[Path] = set()
        used_ids: set[str] = set()
        found: list[tuple[Path, str, str]] = []  # (folder, source, display name)
        if self.bundled_root is not None:
            found += [(folder, "bundled", folder.name) for folder in model_folders(self.bundled_root)]
        found += hf_cache_models(self.hf_cache)
        checkpoints: list[Path] = []
        for root in self.user_folders:
            found += [(folder, "folder", folder.name) for folder in model_folders(root)]
            checkpoints += checkpoint_files(root)
        for folder, source, name in found:
            resolved = folder.resolve()
            if resolved in seen_paths:
                continue
            seen_paths.add(resolved)
            base = slug(name.replace("/", "--"))
            ident, n = base, 2
            while ident in used_ids:
                ident, n = f"{base}-{n}", n + 1
            used_ids.add(ident)
            allowed = str(resolved) in self.allow_pickle
            specs.append(inspect_folder(folder, model_id=ident, source=source, allow_pickle=allowed, name=name))
        folders = list(specs)
        for file in checkpoints:
            if file.resolve() in seen_paths or is_adapter_file(file) or _in_peft_folder(file):
                continue  # adapters are listed below, as their own kind
            seen_paths.add(file.resolve())
            base = slug(file.stem)
            ident, n = base, 2
            while ident in used_ids:
                ident, n = f"{base}-{n}", n + 1
            used_ids.add(ident)
            specs.append(inspect_checkpoint(file, folders, model_id=ident, source="folder"))
        for found_gguf in self._gguf_found():
            resolved = found_gguf.path.resolve() if found_gguf.path.exists() else found_gguf.path
            if resolved in seen_paths:
                continue
            seen_paths.add(resolved)
            base = slug(found_gguf.name.replace("/", "--").replace(":", "-"))
            ident, n = base, 2
            while ident in used_ids:
                ident, n = f"{base}-{n}", n + 1
            used_ids.add(ident)
            specs.append(
                inspect_gguf(
                    found_gguf.path,
                    model_id=ident,
                    source=found_gguf.source,
                    name=found_gguf.name,
                    problem=found_gguf.problem,
                )
            )
        specs += discover_adapters(self.user_folders, used_ids, seen_paths, self.allow_pickle)
        return specs

    def adapters(self) -> list[ModelSpec]:
        """The LoRAs and embeddings in the user's folders (only those folders are searched: a job
        resolving its adapters must not scan the hub cache)."""
        specs = discover_adapters(self.user_folders, set(), set(), self.allow_pickle)
        return [spec for spec in specs if spec.kind in ADAPTER_KINDS]

    def resolve_adapter(self, ref: str) -> ModelSpec:
        """An adapter by path (file or peft folder), id or name (a LoRA's file stem, as A1111 names it)."""
        return resolve_adapter(ref, self.adapters, self.allow_pickle)

    def _gguf_found(self) -> list[FoundGGUF]:
        found = [FoundGGUF(f, "folder", f.stem) for root in self.user_folders for f in gguf_files(root)]
        if self.app_sources_off is not None:
            found += app_gguf_models(self.home, self.app_sources_off)
        return found

    def resolve(self, ref: str) -> ModelSpec:
        """A model by folder path or by id; ``ModelError`` says what to do when neither fits."""
        candidate = Path(ref).expanduser()
        if candidate.is_file() and candidate.suffix == ".safetensors":
            known = self.discover()
            for spec in known:
                if spec.path.resolve() == candidate.resolve():
                    return spec
            return inspect_checkpoint(candidate, known)
        if candidate.is_file() and (candidate.suffix.lower() == ".gguf" or candidate.name.startswith("sha256-")):
            for found_gguf in self._gguf_found():  # named as its source names it (an Ollama blob by its tag)
                if found_gguf.path.resolve() == candidate.resolve():
                    return inspect_gguf(candidate, source=found_gguf.source, name=found_gguf.name)
            return inspect_gguf(candidate, source="path")
        if candidate.is_dir():
            # Only this folder is inspected: every job resolves its model, and scanning every source
            # (the hub cache included) each time cost text generation several percent of its speed.
            name, source = self._identity(candidate)
            allowed = str(candidate.resolve()) in self.allow_pickle
            return inspect_folder(candidate, source=source, name=name, allow_pickle=allowed)
        for spec in self.discover():
            if ref in (spec.id, spec.name):
                return spec
        if "/" in ref or "\\" in ref or candidate.exists():
            raise ModelError(f"model folder {ref} does not exist or is not a folder")
        raise ModelError(f"no model called {ref!r}: give a model folder or an id from 'studio models list'")

    def _identity(self, folder: Path) -> tuple[str, str]:
        """(display name, source) of a model folder, as ``discover`` would name it."""
        resolved = folder.resolve()
        if resolved.parent.name == "snapshots" and resolved.parent.parent.name.startswith("models--"):
            return resolved.parent.parent.name.removeprefix("models--").replace("--", "/"), "hf-cache"
        if self.bundled_root is not None and self.bundled_root.resolve() in (resolved, *resolved.parents):
            return folder.name, "bundled"
        for root in self.user_folders:
            if root.resolve() in (resolved, *resolved.parents):
                return folder.name, "folder"
        return folder.name, "path"


def _in_peft_folder(file: Path) -> bool:
    return (file.parent / PEFT_CONFIG).is_file()


def model_folders(root: Path, depth: int = 6) -> list[Path]:
    if not root.is_dir():
        return []
    if is_model_folder(root):
        return [root]
    if depth == 0:
        return []
    found: list[Path] = []
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []
    for child in children:
        found.extend(model_folders(child, depth - 1))
    return found

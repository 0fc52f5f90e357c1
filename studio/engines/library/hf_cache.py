"""Models in the Hugging Face hub cache, read from its folders (no network)."""

from __future__ import annotations

import os
from pathlib import Path


def default_hf_cache(fallback: str) -> Path:
    """The hub cache as the environment names it now (HF_HUB_CACHE, else HF_HOME/hub), not at import."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(fallback)


def hf_cache_models(cache: Path | None) -> list[tuple[Path, str, str]]:
    """Model snapshots in the Hugging Face hub cache: (folder, "hf-cache", repo id), by repo id.

    ``cache`` None means the hub's own setting (``HF_HUB_CACHE``, else ``HF_HOME``/hub). Takes the
    snapshot that ``refs/main`` points to, else the newest. Reads the cache's folders only.

    The hub's documented layout (``models--{org}--{name}/refs/main``, ``snapshots/{commit}/``) is
    read here rather than through ``huggingface_hub.scan_cache_dir``: that scan stats every blob of
    every repo to report sizes the library does not use, and importing it brings httpx, ~0.1 s of
    the window's start-up that listing the models waited for (docs/PERFORMANCE.md, "Start-up").
    """
    try:
        from huggingface_hub import constants  # a few ms: the constants only, not the client

        fallback = constants.HF_HUB_CACHE
    except ImportError:
        fallback = str(Path("~/.cache/huggingface/hub").expanduser())
    folder = Path(cache) if cache is not None else default_hf_cache(fallback)
    try:
        repos = sorted(entry for entry in folder.iterdir() if entry.name.startswith(_MODEL_PREFIX))
    except OSError:  # no cache yet, or one that cannot be read
        return []
    models = []
    for repo in repos:
        snapshot = _chosen_snapshot(repo)
        if snapshot is not None:
            models.append((snapshot, "hf-cache", repo.name[len(_MODEL_PREFIX) :].replace("--", "/")))
    return sorted(models, key=lambda model: model[2])


_MODEL_PREFIX = "models--"  # datasets and spaces share the cache as datasets--…, spaces--…


def _chosen_snapshot(repo: Path) -> Path | None:
    """The snapshot ``refs/main`` names when it is there, else the most recently written one."""
    snapshots = repo / "snapshots"
    try:
        revisions = [entry for entry in snapshots.iterdir() if entry.is_dir()]
    except OSError:
        return None
    if not revisions:
        return None
    try:
        main = (repo / "refs" / "main").read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        main = ""
    chosen = snapshots / main if main else None
    if chosen is not None and chosen in revisions:
        return chosen
    return max(revisions, key=_modified)


def _modified(folder: Path) -> float:
    try:
        return folder.stat().st_mtime
    except OSError:
        return 0.0

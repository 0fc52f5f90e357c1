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
    """Model snapshots in the Hugging Face hub cache: (folder, "hf-cache", repo id).

    ``cache`` None means the hub's own setting (``HF_HUB_CACHE``, else ``HF_HOME``/hub). Takes the
    snapshot that ``main`` points to, else the newest. Reads the cache's folders only.
    """
    try:
        from huggingface_hub import constants, scan_cache_dir
        from huggingface_hub.errors import CacheNotFound
    except ImportError:
        return []
    folder = Path(cache) if cache is not None else default_hf_cache(constants.HF_HUB_CACHE)
    if not folder.is_dir():
        return []
    try:
        info = scan_cache_dir(folder)
    except (CacheNotFound, OSError, ValueError):
        return []
    models = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        revisions = sorted(repo.revisions, key=lambda r: ("main" in r.refs, r.last_modified), reverse=True)
        models.append((Path(revisions[0].snapshot_path), "hf-cache", repo.repo_id))
    return models

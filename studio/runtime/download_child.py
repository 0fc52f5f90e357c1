"""Downloading a model from the Hugging Face Hub — only when the user turned online mode on.

Runs as its own process (``python -m studio.runtime.download_child REPO_ID``; the parent side is
``download_manager.py``) so the app process never opens a connection: the window and the command
line start it and read its progress, one JSON object per line on stdout. Only safetensors weights
and small text files are fetched; partial downloads resume; every weight blob is checked against
its sha256 after download.

``HF_ENDPOINT`` picks another hub (a mirror, or a local test server).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from studio.core.files import file_sha256, first_line

ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.md", "*.tiktoken", "tokenizer*", "*.jinja"]
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def _progress_class() -> type[Any]:
    from tqdm.auto import tqdm

    class JsonProgress(tqdm):  # type: ignore[misc]  # tqdm ships no type information: its class is Any
        """Reports bytes as JSON lines, at most ten times a second."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = False
            kwargs["file"] = open(os.devnull, "w")
            super().__init__(*args, **kwargs)
            self._last = 0.0

        def update(self, n: float | None = 1) -> bool | None:
            result: bool | None = super().update(n)
            now = time.monotonic()
            if now - self._last > 0.1 or (self.total and self.n >= self.total):
                self._last = now
                _emit(event="progress", what=str(self.desc or ""), done=int(self.n), total=int(self.total or 0))
            return result

    return JsonProgress


def verify_snapshot(snapshot: Path) -> list[str]:
    """Files whose content does not match the sha256 their blob is named after (LFS weights)."""
    bad = []
    for file in sorted(snapshot.rglob("*")):
        if not file.is_file():
            continue
        blob = file.resolve()
        if _SHA256.fullmatch(blob.name) and file_sha256(blob) != blob.name:
            bad.append(str(file.relative_to(snapshot)))
    return bad


def download(repo_id: str, revision: str | None = None, cache_dir: str | None = None) -> Path:
    os.environ["HF_HUB_OFFLINE"] = "0"  # this process exists to go online; the app's stays offline
    os.environ.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    from huggingface_hub import snapshot_download

    folder = snapshot_download(
        repo_id,
        revision=revision,
        cache_dir=cache_dir,
        allow_patterns=ALLOW_PATTERNS,
        tqdm_class=_progress_class(),
    )
    return Path(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Download a model from the Hugging Face Hub (online mode).")
    parser.add_argument("repo_id")
    parser.add_argument("--revision")
    parser.add_argument("--cache-dir")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", args.repo_id) or ".." in args.repo_id:
        _emit(event="error", message=f"{args.repo_id!r} is not a Hugging Face repo id (owner/name)")
        return 2
    try:
        folder = download(args.repo_id, args.revision, args.cache_dir)
    except Exception as exc:  # network, missing repo, disk: one clear line for the caller
        _emit(event="error", message=f"{type(exc).__name__}: {first_line(exc, empty='')}")
        return 1
    bad = verify_snapshot(folder)
    if bad:
        _emit(event="error", message=f"checksum mismatch in {', '.join(bad)}: delete them and download again")
        return 1
    _emit(event="done", path=str(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Starting a model download in its own process and following its progress (the child is
``download_child.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


class DownloadFailed(Exception):
    """The download process said why it failed (network, missing repo, checksum, disk)."""


DOWNLOAD_CHILD_ARG = "--download-child"  # how the installed (frozen) app starts its download child


def download_command(repo_id: str, revision: str | None = None) -> list[str]:
    if getattr(sys, "frozen", False):  # the PyInstaller build: sys.executable is Studio itself
        command = [sys.executable, DOWNLOAD_CHILD_ARG, repo_id]
    else:
        command = [sys.executable, "-m", "studio.runtime.download_child", repo_id]
    return [*command, "--revision", revision] if revision else command


def download_environment() -> dict[str, str]:
    """The child goes online; the parent's offline switches must not follow it there."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    return env


def parse_line(line: str) -> dict[str, Any] | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


def run_download(
    repo_id: str, revision: str | None = None, on_progress: Callable[[int, int], None] | None = None
) -> Path:
    """Download ``repo_id`` into the Hugging Face cache, reporting bytes; the snapshot folder."""
    process = subprocess.Popen(
        download_command(repo_id, revision),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=download_environment(),
    )
    assert process.stdout is not None
    result: Path | None = None
    error = ""
    for line in process.stdout:
        event = parse_line(line)
        if event is None:
            continue
        if event["event"] == "progress" and on_progress is not None:
            on_progress(int(event.get("done", 0)), int(event.get("total", 0)))
        elif event["event"] == "done":
            result = Path(str(event["path"]))
        elif event["event"] == "error":
            error = str(event.get("message", "unknown error"))
    stderr = process.stderr.read() if process.stderr else ""
    process.wait()
    if result is None:
        last_words = stderr.strip().splitlines()[-1] if stderr.strip() else "the download process gave no result"
        raise DownloadFailed(error or last_words)
    return result

"""A session whose data folder becomes read-only halfway, run as its own process by
``test_faults.py``: as root (CI) in a private mount namespace (``unshare -m``) where the data
folder is bind-mounted read-only for real; as a normal user by taking the write bits away.

    python tests/read_only_session.py DATA_DIR MODEL_DIR {mount|chmod}

Prints one JSON line with what happened at each stage.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from helpers import EventLog

from studio.core.paths import StudioPaths
from studio.core.requests import TextRequest
from studio.runtime.services import open_services


def make_read_only(data: Path, how: str) -> None:
    if how == "mount":
        subprocess.run(["mount", "--bind", str(data), str(data)], check=True)
        subprocess.run(["mount", "-o", "remount,ro,bind", str(data)], check=True)
    else:
        for path in [data, *data.rglob("*")]:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def make_writable(data: Path, how: str) -> None:
    if how == "mount":
        subprocess.run(["umount", str(data)], check=True)
    else:
        for path in [data, *data.rglob("*")]:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | stat.S_IWUSR)


def main(data: Path, model: Path, how: str) -> dict:
    services = open_services(StudioPaths.under(data).ensure())
    worker, log = services.worker, EventLog(services.worker)
    report: dict = {}

    def run(prompt: str) -> dict:
        end = log.wait_end(worker.submit(TextRequest(prompt=prompt, model=str(model), max_tokens=3, seed=7)), 120)
        return {"job": end.job_id, "kind": end.kind.value, "error": end.error, "unsaved": bool(end.info.get("unsaved"))}

    report["before"] = run("saved before")
    make_read_only(data, how)
    try:
        probe = data / "gallery" / "probe"
        try:
            probe.write_text("x")
            probe.unlink()
            report["really_read_only"] = False
        except OSError:
            report["really_read_only"] = True
        report["while_read_only"] = run("made while read-only")
        report["listed_while_read_only"] = [i.record.prompt for i in services.store.list()]
        report["retry_while_read_only"] = {
            "kind": log.wait_end(worker.save_kept_output(report["while_read_only"]["job"]), 60).kind.value
        }
    finally:
        make_writable(data, how)
    retried = [e for e in log.events if e.is_terminal][-1].job_id
    saved = log.wait_end(worker.save_kept_output(retried), 60)
    report["retry_when_writable"] = {"kind": saved.kind.value, "error": saved.error}
    report["after"] = run("saved after")
    report["prompts"] = sorted(i.record.prompt for i in services.store.list())
    report["alive"] = worker.alive
    report["closed"] = services.close(30)
    return report


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])))

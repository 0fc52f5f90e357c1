"""The real window on a real X server (Xvfb), not only offscreen: a missing system library of
Qt's xcb platform plugin fails here, as it would on an artist's fresh machine."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

XVFB = shutil.which("xvfb-run")
pytestmark = pytest.mark.skipif(
    XVFB is None and not os.environ.get("CI"), reason="Xvfb is not installed (apt install xvfb)"
)


def test_the_window_opens_on_an_x_server(tmp_path):
    assert XVFB is not None, "CI must run the real window under Xvfb: install xvfb (see .ci/run)"
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY")}
    env["STUDIO_DATA_DIR"] = str(tmp_path / "data")
    app = subprocess.Popen(
        [XVFB, "-a", "-s", "-screen 0 1280x800x24", sys.executable, "-m", "studio", "--debug"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # xvfb-run, the X server and the app: ended together below
    )
    log = tmp_path / "data" / "logs" / "studio.log"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and app.poll() is None:
            if log.is_file() and "engines imported" in log.read_text(errors="replace"):
                break
            time.sleep(0.25)
        running = app.poll() is None
    finally:
        _end_group(app.pid, signal.SIGTERM)
        try:
            output, _ = app.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            _end_group(app.pid, signal.SIGKILL)
            output, _ = app.communicate()
    assert running, f"the window did not stay up on the X server:\n{output[-3000:]}"
    assert "Could not load the Qt platform plugin" not in output, output[-3000:]
    assert "Traceback" not in Path(log).read_text(errors="replace")


def _end_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass

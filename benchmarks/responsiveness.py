"""Does the window stay responsive, how fast does it open, and how long do models take to load?

- ``gui_max_stall_ms`` / ``gui_p99_stall_ms``: a 5 ms heartbeat timer on the GUI thread records how
  late each beat fires while the window runs a job of each kind through its tab (the first job of
  a kind loads its model, imports included, on the worker thread). Per kind too.
- ``startup_window_s``: from starting a fresh ``python -m studio`` process to its window shown.
- ``model_load_cold_s`` / ``model_load_warm_s``: the worker's load time for the first job of a
  model and for the next one (a cache hit), from the ``finished`` event.

    python -m benchmarks.responsiveness [--json]

Uses the tiny test models, built into a temp folder (no download).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

HEARTBEAT_MS = 5


def startup_seconds(data_dir: Path, rounds: int) -> float:
    """Median seconds from process start to the window shown, through the real entry point
    (``python -m studio``'s ``main``, interpreter start-up included): ``benchmarks.window``'s
    start-up part, so both keys measure the launch an artist gets."""
    from benchmarks.window import measure_startup

    return float(measure_startup(argparse.Namespace(rounds=rounds), data_dir)["startup_app_window_s"])


def gui_stalls(models: dict[str, Path], data_dir: Path) -> dict:
    """Heartbeat lateness on the GUI thread while each tab runs a job; also the model load times."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from studio.core.paths import StudioPaths
    from studio.runtime.services import open_services
    from studio.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    services = open_services(StudioPaths.under(data_dir))
    services.settings.set("model_folders", sorted({str(path.parent) for path in models.values()}))
    window = MainWindow(services)
    window.show()
    # As studio.ui.launch does once the models are listed: torch and the engines load while the
    # window idles.
    probe = services.worker.probe_device(preload_engines=True)
    clock = QElapsedTimer()
    lateness: list[float] = []
    last = [0.0]

    def beat() -> None:
        now = clock.nsecsElapsed() / 1e6
        if last[0]:
            lateness.append(max(0.0, now - last[0] - HEARTBEAT_MS))
        last[0] = now

    timer = QTimer()
    timer.setInterval(HEARTBEAT_MS)
    timer.timeout.connect(beat)
    loads: dict[str, list[float]] = {}
    finished: list = []
    window.bridge.delivered.connect(lambda batch: finished.extend(e for e in batch if e.kind.value == "finished"))
    per_kind = {}
    # What is left of that loading once the window is up: measured on its own, as it happens before
    # any job, while the window idles.
    per_kind["launch_preload"] = _beats_while(
        app, timer, clock, lateness, last, finished, lambda: None, done=lambda: not services.worker.busy
    )
    del probe
    for kind, path in models.items():
        panel = window.panels[kind]
        panel.model_picker.setCurrentIndex(panel.model_picker.findData(str(path)))
        for _round in range(2):  # the first loads the model, the second finds it loaded
            _configure(panel, kind)  # each round: a chat model's Send empties the prompt box
            stats = _beats_while(app, timer, clock, lateness, last, finished, panel.generate)
            loads.setdefault(kind, []).append(float(finished[0].info.get("load_s", 0.0)))
            per_kind[f"{kind}_{'cold' if _round == 0 else 'warm'}"] = stats
    window.shutdown()
    window.deleteLater()
    app.processEvents()
    jobs = {k: v for k, v in per_kind.items() if k != "launch_preload"}
    all_max = max(v["max_ms"] for v in jobs.values())
    all_p99 = max(v["p99_ms"] for v in jobs.values())
    return {
        "gui_max_stall_ms": all_max,
        "gui_p99_stall_ms": all_p99,
        "gui_launch_max_stall_ms": per_kind["launch_preload"]["max_ms"],
        "gui_stalls": per_kind,
        "model_load_cold_s": round(max(v[0] for v in loads.values()), 3),
        "model_load_warm_s": round(max(v[1] for v in loads.values()), 4),
    }


def _beats_while(app, timer, clock, lateness, last, finished, start, done=None) -> dict:
    """Run ``start()`` and the event loop until a finished event (or ``done()``); heartbeat lateness stats."""
    from PySide6.QtCore import QEventLoop

    lateness.clear()
    finished.clear()
    last[0] = 0.0
    clock.start()
    timer.start()
    start()
    loop = QEventLoop()
    deadline = time.monotonic() + 300

    def over() -> bool:
        return done() if done is not None else bool(finished)

    while not over() and time.monotonic() < deadline:
        loop.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
    timer.stop()
    assert over(), "the job did not finish"
    samples = sorted(lateness)
    return {
        "max_ms": round(samples[-1], 1) if samples else 0.0,
        "p99_ms": round(samples[int(0.99 * (len(samples) - 1))], 1) if samples else 0.0,
        "beats": len(samples),
    }


def _configure(panel, kind: str) -> None:
    panel.prompt.setPlainText("a quiet harbour at dawn")
    if kind == "text":
        panel.max_tokens.setValue(48)
    elif kind == "image":
        panel.width_box.setValue(64)
        panel.height_box.setValue(64)
        panel.steps.setValue(8)
    else:
        panel.duration.setValue(1.0)


def measure(args: argparse.Namespace) -> dict:
    import tiny_models

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = {
            "text": tiny_models.build_tiny_causal_lm(root / "models" / "tiny-lm"),
            "image": tiny_models.build_tiny_sd_pipeline(root / "models" / "tiny-sd"),
            "music": tiny_models.build_tiny_musicgen(root / "models" / "tiny-musicgen"),
        }
        result = {"startup_window_s": round(startup_seconds(root / "startup-data", args.rounds), 3)}
        # In a fresh process, so the first job of each kind pays for importing torch and the model
        # libraries on the worker thread, as it does when an artist opens the app.
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.responsiveness",
                "--stalls",
                json.dumps({k: str(v) for k, v in models.items()}),
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=True,
            env={**os.environ, "STUDIO_DATA_DIR": str(root / "data")},
        )
        result.update(json.loads(child.stdout.strip().splitlines()[-1]))
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="start-up rounds")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--stalls", metavar="MODELS", help=argparse.SUPPRESS)  # the child process's job
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.stalls:
        models = {kind: Path(path) for kind, path in json.loads(args.stalls).items()}
        print(json.dumps(gui_stalls(models, Path(os.environ["STUDIO_DATA_DIR"]))))
        return 0
    from benchmarks.report import run_main

    return run_main(build_parser, measure, argv)


if __name__ == "__main__":
    sys.exit(main())

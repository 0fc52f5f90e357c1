"""Render each tab offscreen with the starter models and save the pictures the README shows.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Re-run it when the UI changes. The models are the starters that ship in resources/models, so the
pictures show what a fresh install makes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _wait(app, condition, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    from PySide6.QtWidgets import QApplication

    from studio.core.paths import StudioPaths
    from studio.runtime.services import open_services
    from studio.ui.main_window import MainWindow
    from studio.ui.theme import apply_theme

    app = QApplication([])
    apply_theme(app, "dark")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        services = open_services(StudioPaths.under(root / "data"))
        window = MainWindow(services)
        window.resize(1280, 800)
        window.show()
        prompts = {
            "text": "And the river",
            "image": "sunset waves over the sea",
            "music": "a lively jig on the fiddle in D",
        }
        for kind, panel in window.panels.items():
            window.tabs.setCurrentWidget(panel)
            panel.set_prompt(prompts[kind])  # each tab starts on its starter model
            if kind == "image":
                _wait(app, lambda p=panel: bool(p._model_info))
                panel.width_box.setValue(768)
                panel.height_box.setValue(512)
            if kind == "music":
                panel.duration.setValue(12.0)
            saved = []
            panel.items_saved.connect(saved.extend)
            panel.generate()
            _wait(app, lambda s=saved: bool(s))
            _wait(app, lambda: False, 0.5)
        window.tabs.setCurrentWidget(window.gallery_panel)
        window.gallery_panel.refresh()
        window.gallery_panel.view.setCurrentIndex(window.gallery_panel.model.index(0))
        _wait(app, lambda: window.gallery_panel.thumbnails.wait_idle(100), 10)
        _wait(app, lambda: False, 0.5)
        args.out.mkdir(parents=True, exist_ok=True)
        for index in range(window.tabs.count()):
            window.tabs.setCurrentIndex(index)
            _wait(app, lambda: False, 0.3)
            name = window.tabs.tabText(index).split()[0].lower()
            target = args.out / f"{name}.png"
            window.grab().save(str(target))
            print(target)
        window.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

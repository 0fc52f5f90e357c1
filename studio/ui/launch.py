"""Opening the window: QApplication, services, main window, and an orderly shutdown."""

from __future__ import annotations

import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

import studio
from studio.core.paths import StudioPaths
from studio.runtime.services import open_services, setup_logging
from studio.ui.main_window import MainWindow
from studio.ui.theme import apply_theme, icon


def run_gui(data_dir: str | None = None, *, debug: bool = False) -> int:
    paths = StudioPaths.resolve(data_dir).ensure()
    setup_logging(paths, verbose=debug)
    app = QApplication.instance() or QApplication(sys.argv)
    app.setApplicationName(studio.APP_NAME)
    app.setApplicationVersion(studio.__version__)
    services = open_services(paths)
    # Looking at the device imports torch on the worker thread, then the engines (transformers,
    # diffusers). Started now, it runs while the window is built and while it idles after: the window
    # still shows in well under a second, and no job later pays for those imports with a stalled
    # window (docs/PERFORMANCE.md, "Responsiveness").
    services.worker.probe_device(preload_engines=True)
    apply_theme(app, str(services.settings.get("theme")))
    app.setWindowIcon(icon("studio"))
    window = MainWindow(services)
    window.show()
    if not services.settings.get("welcome_shown"):
        services.settings.set("welcome_shown", True)
        QTimer.singleShot(0, window, window.show_welcome)
    try:
        return app.exec()
    finally:
        window.shutdown()

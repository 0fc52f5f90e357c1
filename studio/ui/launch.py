"""Opening the window: QApplication, services, main window, and an orderly shutdown."""

from __future__ import annotations

import sys
from typing import cast

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

import studio
from studio.core.paths import StudioPaths
from studio.runtime.services import open_services, setup_logging
from studio.ui.main_window import MainWindow
from studio.ui.quiet import quiet_qt_logging
from studio.ui.theme import apply_theme, icon


def run_gui(data_dir: str | None = None, *, debug: bool = False) -> int:
    quiet_qt_logging(debug)
    paths = StudioPaths.resolve(data_dir).ensure()
    setup_logging(paths, verbose=debug)
    # instance() is typed as the core application; in the window's process it is always a QApplication.
    app = cast(QApplication, QApplication.instance() or QApplication(sys.argv))
    app.setApplicationName(studio.APP_NAME)
    app.setApplicationVersion(studio.__version__)
    services = open_services(paths)
    apply_theme(app, str(services.settings.get("theme")))
    app.setWindowIcon(icon("studio"))
    window = MainWindow(services)
    window.show()
    # Looking at the device imports torch on the worker thread, then the engines (transformers,
    # diffusers). Asked for once the window is shown: started before, those imports held the
    # interpreter lock while the window was built and made it show 0.5 s later. They run while the
    # window idles (the prompt takes typing meanwhile), so no job later pays for them with a stalled
    # window (docs/PERFORMANCE.md, "Responsiveness" and "The window").
    services.worker.probe_device(preload_engines=True)
    if not services.settings.get("welcome_shown"):
        services.settings.set("welcome_shown", True)
        QTimer.singleShot(0, window, window.show_welcome)
    try:
        return app.exec()
    finally:
        window.shutdown()

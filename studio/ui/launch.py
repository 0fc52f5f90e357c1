"""Opening the window: QApplication, services, main window, and an orderly shutdown."""

from __future__ import annotations

import sys
from typing import cast

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

import studio
from studio.core.paths import StudioPaths
from studio.runtime.services import Services, open_services, setup_logging
from studio.ui.main_window import MainWindow
from studio.ui.quiet import quiet_qt_logging
from studio.ui.theme import icon, prepare_theme, stylesheet

# The engines are preloaded when the models are listed, or after this long if finding them takes
# longer (a big library on a network drive): a first job should not pay for the imports.
PRELOAD_AT_THE_LATEST_MS = 3000


def build_window(app: QApplication, services: Services) -> MainWindow:
    """The main window, themed, not shown yet; the tabs look for their models until
    ``window.find_models()``."""
    theme = prepare_theme(app, str(services.settings.get("theme")))
    window = MainWindow(services, models_now=False)
    # The stylesheet goes on once the window is built. Set before, Qt's stylesheet style polished
    # each widget again as it was added to its layout, and building the window took 0.35-0.6 s
    # instead of 0.11 s; set after, it polishes every widget once, in 0.05 s (docs/PERFORMANCE.md,
    # "Start-up"). Nothing shows in between.
    app.setStyleSheet(stylesheet(theme))
    window.fit_to_style()
    # Again: a splitter clamps the positions it restores to its panes' minimum widths, and those
    # were measured without the stylesheet's paddings; restored as measured now, a relaunch keeps
    # the split the user left.
    window.restore_window_state()
    return window


def run_gui(data_dir: str | None = None, *, debug: bool = False) -> int:
    quiet_qt_logging(debug)
    paths = StudioPaths.resolve(data_dir).ensure()
    setup_logging(paths, verbose=debug)
    # instance() is typed as the core application; in the window's process it is always a QApplication.
    app = cast(QApplication, QApplication.instance() or QApplication(sys.argv))
    app.setApplicationName(studio.APP_NAME)
    app.setApplicationVersion(studio.__version__)
    services = open_services(paths)
    app.setWindowIcon(icon("studio"))
    window = build_window(app, services)
    window.show()
    # The models are found on a thread once the window shows (studio.ui.model_discovery).
    # Looking at the device imports torch on the worker thread, then the engines (transformers,
    # diffusers). Asked for once the window is shown and its models are listed: started before,
    # those imports held the interpreter lock while the window was built and made it show 0.5 s
    # later, and while the models were being found, listed them 0.4 s later. They run while the
    # window idles (the prompt takes typing meanwhile), so no job later pays for them with a stalled
    # window (docs/PERFORMANCE.md, "Responsiveness", "The window" and "Start-up").
    probed = False

    def preload(*_args: object) -> None:
        nonlocal probed
        if not probed:
            probed = True
            services.worker.probe_device(preload_engines=True)

    window.model_discovery.found.connect(preload)
    QTimer.singleShot(PRELOAD_AT_THE_LATEST_MS, window, preload)  # a library on a slow drive
    window.find_models()
    if not services.settings.get("welcome_shown"):
        services.settings.set("welcome_shown", True)
        QTimer.singleShot(0, window, window.show_welcome)
    try:
        return app.exec()
    finally:
        window.shutdown()

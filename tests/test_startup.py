"""Opening the window fast: the models found on a thread after it shows, the stylesheet put on once
the window is built (docs/PERFORMANCE.md, "Start-up")."""

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from PySide6.QtWidgets import QApplication


def test_the_tabs_look_for_models_until_the_search_finds_them(services, qtbot, tiny_base_lm):
    from studio.ui.main_window import MainWindow

    services.settings.set("model_folders", [str(tiny_base_lm.parent)])
    window = MainWindow(services, models_now=False)
    qtbot.addWidget(window)
    try:
        for tab in (window.text_panel, window.image_panel, window.music_panel, window.train_panel):
            assert tab.model_picker.currentText() == "Looking for models…"
            assert not tab.model_picker.isEnabled() and not tab.model_picker.current_model()
            assert tab.hint.text() == "Looking for models…"
            assert not tab.generate_button.isEnabled()
        window.train_panel.medium.setCurrentIndex(1)  # another medium chosen meanwhile: still looking
        assert window.train_panel.model_picker.currentText() == "Looking for models…"

        with qtbot.waitSignal(window.model_discovery.found, timeout=30000):
            window.find_models()
        picker = window.text_panel.model_picker
        assert not picker.searching and picker.isEnabled()
        assert picker.findData(str(tiny_base_lm)) >= 0
        assert window.text_panel.hint.text() != "Looking for models…"
        assert window.train_panel.model_picker.currentText() != "Looking for models…"
    finally:
        window.shutdown()


def test_only_the_newest_search_answers(qtbot):
    from studio.ui.model_discovery import ModelDiscovery

    discovery = ModelDiscovery()
    answers: list[list] = []
    discovery.found.connect(answers.append)
    release = threading.Event()
    ran = threading.Event()

    def slow():  # an older library, still being searched when the next search starts
        ran.set()
        release.wait(10)
        return ["old"]

    discovery.start(slow)
    assert ran.wait(10)
    with qtbot.waitSignal(discovery.found, timeout=10000):
        discovery.start(lambda: ["new"])
    release.set()
    qtbot.wait(300)  # the old search answers now: dropped
    assert answers == [["new"]] and not discovery.running

    release.clear()
    ran.clear()
    discovery.start(slow)
    assert ran.wait(10)
    discovery.cancel()  # the window discovered synchronously meanwhile (the model manager)
    release.set()
    qtbot.wait(300)
    assert answers == [["new"]]


def test_a_search_that_fails_lists_no_models_instead_of_looking_forever(services, qtbot):
    from studio.ui.main_window import MainWindow

    window = MainWindow(services, models_now=False)
    qtbot.addWidget(window)

    def broken():
        raise PermissionError("a model folder that cannot be read")

    try:
        with qtbot.waitSignal(window.model_discovery.found, timeout=10000):
            window.model_discovery.start(broken)
        assert window.text_panel.model_picker.currentText() == "No text models found"
        assert window.text_panel.hint.text().startswith("No text model found")
    finally:
        window.shutdown()


def test_settings_columns_fit_their_controls_when_the_stylesheet_comes_last(services, qtbot):
    """As studio.ui.launch builds the window: the stylesheet's paddings apply after the tabs are
    built, and each tab's settings column is as wide as its controls then need (not clipped)."""
    from helpers import show_active

    from studio.ui.launch import build_window

    app = QApplication.instance()
    assert isinstance(app, QApplication)
    window = build_window(app, services)
    qtbot.addWidget(window)
    try:
        window.refresh_models()
        window.resize(1200, 760)
        show_active(qtbot, window)
        for tab in (window.text_panel, window.image_panel, window.music_panel, window.train_panel):
            window.tabs.setCurrentWidget(tab)
            qtbot.wait(50)
            scroll = tab.settings_scroll
            content = scroll.widget()
            assert content is not None
            assert scroll.viewport().width() >= content.minimumSizeHint().width(), type(tab).__name__
    finally:
        app.setStyleSheet("")
        window.shutdown()


def test_a_relaunch_keeps_the_split_the_user_left(services, qtbot):
    """The settings columns dragged as narrow as they go, then the app opened again: each comes
    back as it was (the splitters restore after the stylesheet's widths are measured)."""
    from PySide6.QtWidgets import QSplitter

    from studio.ui.launch import build_window

    app = QApplication.instance()
    assert isinstance(app, QApplication)
    services.settings.set("theme", "light")
    tabs = ("text_panel", "image_panel", "music_panel", "train_panel")
    try:
        first = build_window(app, services)
        qtbot.addWidget(first)
        first.refresh_models()
        first.resize(1400, 800)
        first.show()
        left: dict[str, int] = {}
        for name in tabs:
            first.tabs.setCurrentWidget(getattr(first, name))
            qtbot.wait(50)
            splitter = getattr(first, name).findChild(QSplitter)
            splitter.setSizes([splitter.widget(0).minimumSizeHint().width(), 2000])  # as narrow as it goes
            qtbot.wait(20)
            left[name] = splitter.sizes()[0]
        first.save_window_state()
        first.hide()
        second = build_window(app, services)
        qtbot.addWidget(second)
        second.refresh_models()
        second.show()
        for name in tabs:
            second.tabs.setCurrentWidget(getattr(second, name))
            qtbot.wait(50)
            assert abs(getattr(second, name).findChild(QSplitter).sizes()[0] - left[name]) <= 1, name
        second.shutdown()
    finally:
        app.setStyleSheet("")


def test_the_real_launch_shows_the_window_then_lists_the_models_then_loads_the_engines(tmp_path):
    # A fresh process through the entry point: the order of what happens after the window shows.
    script = textwrap.dedent(
        """
        import os, sys
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication
        app = QApplication([sys.argv[0]])
        seen = []
        def look():
            from studio.ui.main_window import MainWindow
            windows = [w for w in app.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
            if not windows:
                QTimer.singleShot(2, look)
                return
            window = windows[0]
            picker = window.text_panel.model_picker
            print("shown", picker.searching, window.services.worker.busy, flush=True)
            def listed():
                if picker.searching:
                    QTimer.singleShot(2, listed)
                    return
                print("listed", picker.count(), window.services.worker.busy, flush=True)
                os._exit(0)
            listed()
        QTimer.singleShot(0, look)
        sys.argv = ["studio", "--data-dir", sys.argv[1]]
        from studio.app import main
        main()
        """
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=120,
        check=False,
    )
    lines = [line.split() for line in run.stdout.splitlines()]
    assert lines[0][0] == "shown", run.stdout + run.stderr
    if lines[0][1] == "True":  # still looking for the models (nearly always): the engines wait
        assert lines[0][2] == "False", run.stdout
    assert lines[1][0] == "listed" and int(lines[1][1]) >= 1, run.stdout  # the bundled starter
    assert lines[1][2] == "True", run.stdout  # the engines load once the models are listed

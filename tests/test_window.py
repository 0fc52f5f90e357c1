"""The main window, offscreen, with the real worker and the tiny language model."""

import subprocess
import sys
import textwrap

from PySide6.QtCore import Qt


def test_window_has_the_tabs_menus_and_status_bar(window):
    tabs = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    assert tabs == ["Text", "Image", "Music", "Train", "Gallery"]
    menus = [action.text() for action in window.menuBar().actions()]
    assert menus == ["&File", "&View", "&Models", "&Help"]
    assert "0.1.0" in window.about_text()
    assert window.queue_label.text() == "Queue: 0"


def test_device_is_shown_once_the_worker_has_looked(window, qtbot):
    window.services.worker.probe_device()
    qtbot.waitUntil(lambda: "CPU" in window.device_label.text(), timeout=60000)


def test_window_shows_without_importing_torch(tmp_path):
    # A fresh process: the test session itself has imported torch long ago.
    script = textwrap.dedent(
        f"""
        import sys
        from PySide6.QtWidgets import QApplication
        from pathlib import Path
        from studio.core.paths import StudioPaths
        import studio.runtime.services
        from studio.runtime.services import open_services
        from studio.ui.main_window import MainWindow
        # No bundled models: describing one is the worker's job and imports torch on its thread,
        # which would hide whether the GUI imported it.
        studio.runtime.services.resources_dir = lambda: Path({str(tmp_path)!r}) / "no-resources"
        app = QApplication([])
        services = open_services(StudioPaths.under({str(tmp_path)!r}))
        window = MainWindow(services)
        window.show()
        for _ in range(20):
            app.processEvents()
        print("torch loaded:", "torch" in sys.modules)
        window.shutdown()
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "torch loaded: False" in result.stdout


def test_generate_streams_tokens_stop_button_follows_and_gallery_gets_the_item(window, qtbot, tiny_base_lm):
    tiny_lm = tiny_base_lm  # continuation mode (a chat model holds conversations: tests/test_chat_view.py)
    panel = window.text_panel
    window.services.settings.set("model_folders", [str(tiny_lm.parent)])
    window.refresh_models()
    index = panel.model_picker.findData(str(tiny_lm))
    assert index >= 0
    panel.model_picker.setCurrentIndex(index)
    assert not panel.generate_button.isEnabled()  # no prompt yet
    assert "prompt" in panel.hint.text().lower()
    qtbot.keyClicks(panel.prompt, "the painter")
    assert panel.generate_button.isEnabled() and not panel.stop_button.isEnabled()
    panel.max_tokens.setValue(40)
    qtbot.mouseClick(panel.generate_button, Qt.MouseButton.LeftButton)
    assert panel.stop_button.isEnabled() and not panel.generate_button.isEnabled()
    assert panel.hint.text() == "1 more queued in this tab"
    with qtbot.waitSignal(panel.items_saved, timeout=60000) as saved:
        qtbot.waitUntil(lambda: window.jobs.running("text") is not None or bool(panel.history.count()), timeout=60000)
        assert "queued" not in panel.hint.text()  # it runs now: no longer said to be waiting
    item = saved.args[0][0]
    assert panel.output.toPlainText()
    assert item.path.read_text("utf-8").rstrip("\n").endswith(panel.output.toPlainText())
    assert panel.generate_button.isEnabled() and not panel.stop_button.isEnabled()
    assert "tokens/s" in panel.stats.text()
    assert panel.history.count() == 1
    qtbot.waitUntil(lambda: window.gallery_panel.model.rowCount() == 1)
    assert window.services.settings.get("last_models")["text"] == str(tiny_lm)


def test_stop_keeps_the_text_and_offers_to_keep_it(window, qtbot, tiny_base_lm):
    tiny_lm = tiny_base_lm  # continuation mode
    panel = window.text_panel
    window.services.settings.set("model_folders", [str(tiny_lm.parent)])
    window.refresh_models()
    panel.model_picker.setCurrentIndex(panel.model_picker.findData(str(tiny_lm)))
    panel.prompt.setPlainText("a long story")
    panel.max_tokens.setValue(20000)  # clamped to the context; long enough to stop
    panel.generate()
    qtbot.waitUntil(lambda: bool(panel.output.toPlainText()), timeout=60000)
    qtbot.keyClick(panel.prompt, Qt.Key.Key_Escape)  # Esc stops, like the Stop button
    qtbot.waitUntil(lambda: panel.keep_button.isVisible() or "Cancelled" in panel.stopped_note.text(), timeout=30000)
    assert "Stopped" in panel.stopped_note.text()
    assert window.services.store.list() == []
    with qtbot.waitSignal(panel.items_saved, timeout=30000):
        qtbot.mouseClick(panel.keep_button, Qt.MouseButton.LeftButton)
    assert len(window.services.store.list()) == 1


def test_use_as_image_prompt_fills_the_image_tab(window, qtbot):
    panel = window.text_panel
    panel.output.setPlainText("a lighthouse in fog")
    panel._update_buttons()
    qtbot.mouseClick(panel.to_image, Qt.MouseButton.LeftButton)
    assert window.image_panel.prompt.toPlainText() == "a lighthouse in fog"
    assert window.tabs.currentWidget() is window.image_panel


def test_about_names_the_real_gallery_and_logs_folders(window):
    """Issue 22 #10: the logs are not in the data folder; About names each folder as it is."""
    paths, text = window.services.paths, window.about_text()
    assert str(window.services.store.root) in text and str(paths.logs) in text
    assert f"Outputs and logs: {paths.data}" not in text


def test_gui_launch_is_quiet_unless_debug(tmp_path):
    """Issue 22 #16: no Qt multimedia lines and no FFmpeg format dump on the terminal."""
    script = textwrap.dedent(
        f"""
        import os, sys
        import numpy as np, soundfile
        from studio.ui.quiet import quiet_qt_logging
        quiet_qt_logging(sys.argv[1] == "debug")
        from PySide6.QtCore import QEventLoop, QTimer
        from PySide6.QtWidgets import QApplication
        from studio.ui.widgets.audio_player import AudioPlayer
        app = QApplication([])
        clip = {str(tmp_path / "clip.flac")!r}
        soundfile.write(clip, np.zeros(8000, dtype=np.float32), 16000)
        player = AudioPlayer()
        player.load(clip)
        loop = QEventLoop(); QTimer.singleShot(1500, loop.quit); loop.exec()
        """
    )
    env = {**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"}
    env.pop("QT_LOGGING_RULES", None)
    run = [sys.executable, "-c", script]
    quiet = subprocess.run([*run, "quiet"], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert "qt.multimedia" not in quiet.stderr and "Input #0" not in quiet.stderr, quiet.stderr
    debug = subprocess.run([*run, "debug"], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert "qt.multimedia" in debug.stderr or "Input #0" in debug.stderr, debug.stderr


def test_quiet_logging_keeps_a_rule_the_user_set():
    from studio.ui.quiet import QUIET_QT_LOGGING_RULES, quiet_qt_logging

    environ: dict[str, str] = {}
    quiet_qt_logging(False, environ)
    assert environ["QT_LOGGING_RULES"] == QUIET_QT_LOGGING_RULES
    mine = {"QT_LOGGING_RULES": "qt.multimedia.debug=true"}
    quiet_qt_logging(False, mine)
    assert mine["QT_LOGGING_RULES"] == "qt.multimedia.debug=true"
    debug: dict[str, str] = {}
    quiet_qt_logging(True, debug)
    assert debug == {}

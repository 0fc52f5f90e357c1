"""Settings dialog, shortcuts, window state, welcome, theme, notifications and accessible names."""

import os
import subprocess
import sys
import textwrap

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QSplitter,
    QWidget,
)

from studio.core.settings import Settings
from studio.ui.main_window import MainWindow
from studio.ui.theme import apply_theme, icon
from studio.ui.welcome import welcome_text


def test_settings_dialog_round_trips_every_setting_and_refuses_invalid_ones(window, tmp_path):
    dialog = window.settings_dialog()
    shown = {s.name for s in Settings.declared() if not s.internal}
    assert set(dialog.controls) == shown
    dialog.controls["memory_mode"].setCurrentIndex(dialog.controls["memory_mode"].findData("low"))
    dialog.controls["embed_prompts"].setChecked(False)
    dialog.controls["model_folders"].setPlainText(f"{tmp_path}\n")
    dialog.controls["theme"].setCurrentIndex(dialog.controls["theme"].findData("light"))
    assert dialog.apply()
    reloaded = Settings.load(window.services.paths.settings_file)
    assert reloaded.get("memory_mode") == "low" and reloaded.get("embed_prompts") is False
    assert reloaded.get("model_folders") == [str(tmp_path)] and reloaded.get("theme") == "light"
    assert QApplication.instance().property("studio_theme") == "light"
    again = window.settings_dialog()
    for name in shown:  # a second dialog shows what was saved
        assert again.value_of(name) == window.services.settings.get(name)
    again.controls["model_folders"].setPlainText("")
    again.controls["allow_pickle_models"].setPlainText("")
    window.services.settings.set("model_folders", [])
    assert again.apply()
    apply_theme(QApplication.instance(), "dark")


def test_invalid_value_keeps_the_dialog_open(window, monkeypatch):
    dialog = window.settings_dialog()
    monkeypatch.setattr(
        dialog, "value_of", lambda name: "tpu" if name == "device" else window.services.settings.get(name)
    )
    assert not dialog.apply()
    assert "Device" in dialog.error.text() and window.services.settings.get("device") == "auto"


def test_tab_and_search_shortcuts(window, qtbot):
    panels = (window.text_panel, window.image_panel, window.music_panel, window.train_panel, window.gallery_panel)
    for number, panel in enumerate(panels):
        qtbot.keyClick(window, Qt.Key(Qt.Key.Key_1 + number), Qt.KeyboardModifier.ControlModifier)
        assert window.tabs.currentWidget() is panel
    window.tabs.setCurrentWidget(window.text_panel)
    qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert window.tabs.currentWidget() is window.gallery_panel
    assert window.gallery_panel.search.hasFocus()
    assert window.tab_actions[1].shortcut().toString() == "Ctrl+2"  # shown in the View menu


def test_window_state_is_restored(qtbot, services):
    first = MainWindow(services)
    qtbot.addWidget(first)
    first.show()
    first.resize(first.minimumSizeHint())  # the offscreen screen is small: restoring clamps to it
    first.image_panel.findChild(QSplitter).setSizes([200, 600])
    first.tabs.setCurrentIndex(2)
    qtbot.wait(50)
    first.save_window_state()
    second = MainWindow(services)
    qtbot.addWidget(second)
    second.show()
    assert second.tabs.currentIndex() == 2
    qtbot.waitUntil(lambda: second.size() == first.size())
    assert second.image_panel.findChild(QSplitter).sizes()[0] == first.image_panel.findChild(QSplitter).sizes()[0]
    first.shutdown()


def test_a_job_finishing_on_another_tab_marks_that_tab(window, qtbot, tiny_lm):
    from studio.core.requests import TextRequest

    window.services.settings.set("model_folders", [str(tiny_lm.parent)])
    window.refresh_models()
    panel = window.text_panel
    panel.model_picker.setCurrentIndex(panel.model_picker.findData(str(tiny_lm)))
    panel.submit_request(TextRequest(prompt="hello", model=str(tiny_lm), max_tokens=4))
    window.tabs.setCurrentWidget(window.gallery_panel)
    qtbot.waitUntil(lambda: window.tabs.tabText(0).endswith("●"), timeout=60000)
    assert "Text finished" in window.statusBar().currentMessage()
    window.tabs.setCurrentIndex(0)
    assert window.tabs.tabText(0) == "Text"


def test_welcome_names_the_models_found_and_where_outputs_go(services, tiny_sd):
    services.settings.set("model_folders", [str(tiny_sd.parent)])
    text = welcome_text(services)
    assert "tiny-sd" in text and str(services.paths.gallery) in text and "offline" in text


def test_welcome_shows_the_gallery_and_logs_folders_as_they_are(services):
    """Issue 22 #10: the gallery the store writes to and the logs folder, not a folder guessed from data."""
    text = welcome_text(services)
    assert str(services.store.root) in text and str(services.paths.logs) in text


def test_icons_are_svg_and_render(qtbot):
    for name in ("studio", "text", "image", "music", "gallery"):
        assert not icon(name).pixmap(32, 32).isNull(), name


def test_every_interactive_widget_has_an_accessible_name_and_a_tooltip(window):
    interactive = (
        QAbstractButton,
        QLineEdit,
        QPlainTextEdit,
        QComboBox,
        QAbstractSpinBox,
        QAbstractSlider,
        QAbstractItemView,
    )
    missing = []
    for widget in window.findChildren(QWidget):
        if not isinstance(widget, interactive) or _inside_a_qt_composite(widget):
            continue
        if not widget.accessibleName() or not widget.toolTip():
            label = widget.text() if hasattr(widget, "text") else ""
            missing.append(f"{type(widget).__name__} {widget.accessibleName()!r} {label}")
    assert missing == [], missing


def _inside_a_qt_composite(widget) -> bool:
    """Qt's own parts: spin box editors, combo box popups, scroll bars, a line edit's clear button."""
    if widget.objectName().startswith("qt_") or type(widget).__name__ == "QScrollBar":
        return True
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, (QAbstractSpinBox, QComboBox, QLineEdit)) or type(parent).__name__ == "QTabBar":
            return True
        parent = parent.parentWidget()
    return False


def test_errors_read_as_a_sentence_with_the_details_one_click_away(window, qtbot, tiny_sd, monkeypatch):
    from diffusers import UNet2DConditionModel

    def broken(self, *args, **kwargs):
        raise ZeroDivisionError("deep inside a library")

    monkeypatch.setattr(UNet2DConditionModel, "forward", broken)
    window.services.settings.set("model_folders", [str(tiny_sd.parent)])
    window.refresh_models()
    panel = window.image_panel
    panel.model_picker.setCurrentIndex(panel.model_picker.findData(str(tiny_sd)))
    panel.prompt.setPlainText("x")
    panel.width_box.setValue(32)
    panel.height_box.setValue(32)
    panel.generate()
    qtbot.waitUntil(lambda: "Could not generate" in panel.run_status.text(), timeout=60000)
    assert "ZeroDivisionError" in panel.run_status.text() and "Traceback" not in panel.run_status.text()
    assert not panel.details_button.isHidden()
    box = panel.show_error_details()
    assert "Traceback" in box.detailedText()
    box.close()


def test_the_window_fits_a_laptop_screen_at_200_percent(tmp_path):
    script = textwrap.dedent(
        f"""
        from PySide6.QtWidgets import QApplication
        from studio.core.paths import StudioPaths
        from studio.runtime.services import open_services
        from studio.ui.main_window import MainWindow
        from studio.ui.theme import apply_theme, icon
        app = QApplication([])
        apply_theme(app, "dark")
        services = open_services(StudioPaths.under({str(tmp_path)!r}))
        window = MainWindow(services)
        window.show()
        app.processEvents()
        hint = window.minimumSizeHint()
        crisp = icon("studio").pixmap(32, 32)
        print("ratio", window.devicePixelRatio(), "min", hint.width(), hint.height(), "icon", crisp.devicePixelRatio())
        window.shutdown()
        """
    )
    env = {**os.environ, "QT_SCALE_FACTOR": "2", "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    words = done.stdout.split()
    ratio, width, height, icon_ratio = float(words[1]), int(words[3]), int(words[4]), float(words[6])
    assert ratio == 2.0 and icon_ratio == 2.0  # SVG icons drawn at the screen's density
    assert width <= 1280 and height <= 720  # a 2560×1440 laptop panel at 200 % has 1280×720 to offer

"""The Music tab, offscreen, with the real worker, the tiny MusicGen and Qt Multimedia's player."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile
from helpers import show_active
from PySide6.QtCore import Qt

from studio.ui.main_window import MainWindow


@pytest.fixture
def window(qtbot, services, tiny_musicgen):
    services.settings.set("model_folders", [str(tiny_musicgen.parent)])
    main = MainWindow(services)
    qtbot.addWidget(main)
    show_active(qtbot, main)
    main.tabs.setCurrentWidget(main.music_panel)
    panel = main.music_panel
    panel.model_picker.setCurrentIndex(panel.model_picker.findData(str(tiny_musicgen)))
    qtbot.waitUntil(lambda: panel.model_info is not None, timeout=60000)
    yield main
    main.shutdown()


def _generate(panel, qtbot, prompt="calm piano", seconds=0.6):
    panel.prompt.setPlainText(prompt)
    panel.duration.setValue(seconds)
    with qtbot.waitSignal(panel.items_saved, timeout=60000) as saved:
        qtbot.keyClick(panel.prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    return saved.args[0][0]


def test_generate_loads_the_result_into_the_player_and_waveform(window, qtbot):
    panel = window.music_panel
    item = _generate(panel, qtbot)
    assert panel.history.count() == 1
    assert panel.player.path == item.path and panel.waveform.has_waveform()
    qtbot.waitUntil(lambda: abs(panel.player.duration_ms - 600) <= 30, timeout=10000)  # the player read the FLAC
    assert "0:00 / 0:00" in panel.player.clock.text()
    assert "Saved 0.6 s" in panel.run_status.text()
    if panel.player.no_output:  # no sound card here: says so, play stays off, everything else works
        assert "no audio output device" in panel.player.status.text()
        assert not panel.player.play_button.isEnabled()
    qtbot.waitUntil(lambda: window.gallery_panel.model.rowCount() == 1)


def test_continue_this_clip_makes_a_longer_child(window, qtbot):
    panel = window.music_panel
    first = _generate(panel, qtbot, seconds=0.5)
    qtbot.mouseClick(panel.continue_button, Qt.MouseButton.LeftButton)
    assert panel.continue_label.text() == first.path.name
    second = _generate(panel, qtbot, prompt="", seconds=0.5)
    assert second.record.parent == first.id
    assert abs(second.record.output["duration_s"] - 1.0) <= 0.02
    panel.clear_continuation()
    assert not panel.generate_button.isEnabled()  # no words and nothing to continue
    panel.prompt.setPlainText("strings")
    assert panel.build_request().audio_prompt == ""


def test_gallery_double_click_opens_music_in_the_player(window, qtbot, tmp_path):
    panel = window.music_panel
    item = _generate(panel, qtbot)
    panel.player.close_player()
    window.tabs.setCurrentWidget(window.gallery_panel)
    window.gallery_panel.refresh()
    gallery = window.gallery_panel
    gallery.view.doubleClicked.emit(gallery.model.index(0))
    assert window.tabs.currentWidget() is panel and panel.player.path == item.path


def test_escape_cancels_and_nothing_is_saved(window, qtbot):
    panel = window.music_panel
    panel.prompt.setPlainText("a long piece")
    panel.duration.setValue(300)
    panel.generate()
    qtbot.waitUntil(lambda: panel.progress.value() >= 3, timeout=60000)
    qtbot.keyClick(panel.prompt, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not window.jobs.pending("music"), timeout=30000)
    assert "Cancelled" in panel.run_status.text()
    assert window.services.store.list() == []


def test_player_teardown_does_not_crash(tmp_path):
    # In a child process: a crash in Qt Multimedia's teardown must fail this test, not kill the run.
    clip = tmp_path / "tone.flac"
    t = np.arange(16000) / 16000
    soundfile.write(clip, (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 16000)
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from PySide6.QtWidgets import QApplication
        from PySide6.QtCore import QEventLoop, QTimer
        from studio.ui.widgets.audio_player import AudioPlayer

        app = QApplication([])

        def spin(ms):
            loop = QEventLoop()
            QTimer.singleShot(ms, loop.quit)
            loop.exec()

        for round_index in range(8):
            player = AudioPlayer()
            player.show()
            player.load(Path({str(clip)!r}))
            spin(150)
            player.toggle()
            player.seek_fraction(0.5)
            spin(50)
            player.close_player()
            player.load(Path({str(clip)!r}))  # it can load again after a teardown
            player.close_player()
            player.deleteLater()
            spin(20)
        print("teardowns ok", player.unavailable or "multimedia available")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "teardowns ok" in result.stdout

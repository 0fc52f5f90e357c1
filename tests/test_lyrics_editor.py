"""The Music tab's song section and waveform editing, offscreen, with the real worker and a tiny
ACE-Step pipeline: the lyrics editor, the song fields shown only for models that sing, a region
dragged on the waveform and repainted into a new item that names its parent."""

import pytest
import soundfile
from helpers import show_active
from PySide6.QtCore import QPoint, Qt
from tiny_ace_step import build_tiny_ace_step

from studio.core.capabilities import Control
from studio.ui.main_window import MainWindow
from studio.ui.widgets.lyrics_editor import LyricsEditor, section_tags


@pytest.fixture(scope="session")
def tiny_ace(models_root):
    return build_tiny_ace_step(models_root / "songs" / "tiny-ace-step-turbo")


@pytest.fixture
def window(qtbot, services, tiny_ace, tiny_musicgen):
    services.settings.set("model_folders", [str(tiny_ace.parent), str(tiny_musicgen.parent)])
    main = MainWindow(services)
    qtbot.addWidget(main)
    show_active(qtbot, main)
    main.tabs.setCurrentWidget(main.music_panel)
    yield main
    main.shutdown()


def _choose(panel, qtbot, folder):
    panel.model_picker.setCurrentIndex(panel.model_picker.findData(str(folder)))
    qtbot.waitUntil(lambda: panel.model_info is not None and panel.model_info.ref == str(folder), timeout=60000)


def test_section_tags_are_highlighted_and_inserted_on_their_own_line(qtbot):
    editor = LyricsEditor()
    qtbot.addWidget(editor)
    editor.set_text("walking down the river")
    editor.insert_section("chorus")
    editor.editor.insertPlainText("we are young tonight")
    assert editor.text() == "walking down the river\n\n[chorus]\nwe are young tonight"
    assert section_tags(editor.text()) == ["chorus"]
    document = editor.editor.document()
    tag_block, plain_block = document.findBlockByNumber(2), document.findBlockByNumber(3)
    tag_formats = tag_block.layout().formats()
    assert tag_formats and tag_formats[0].format.fontWeight() > 400 and tag_formats[0].length == len("[chorus]")
    assert not plain_block.layout().formats()
    assert editor.count.text() == "1 section · 2 lines"
    editor.insert_box.activated.emit(editor.insert_box.findData("bridge"))
    assert editor.text().endswith("[bridge]\n") and editor.insert_box.currentIndex() == 0


def test_the_song_section_shows_only_for_models_that_sing(window, qtbot, tiny_ace, tiny_musicgen):
    panel = window.music_panel
    _choose(panel, qtbot, tiny_ace)
    assert panel.song_area.isVisible() and panel.song.lyrics.editor.isEnabled() and panel.editing_area.isVisible()
    assert panel.song.steps.isEnabled() and not panel.guidance.isEnabled()  # turbo: guidance distilled
    assert panel.song.steps.value() == 8 and panel.duration.value() == 30  # the model's suggested defaults
    _choose(panel, qtbot, tiny_musicgen)
    assert not panel.song_area.isVisible() and not panel.song.lyrics.editor.isEnabled()
    assert panel.song.lyrics.editor.toolTip() == panel.model_info.why_unused(Control.LYRICS)
    # MusicGen edits on the waveform too, but only by extending on the right
    assert panel.editing_area.isVisible() and not panel.editing.repaint_button.isEnabled()
    assert "cannot repaint a region" in panel.editing.repaint_button.toolTip()


def test_a_song_with_lyrics_then_a_dragged_region_repainted(window, qtbot, tiny_ace):
    panel = window.music_panel
    _choose(panel, qtbot, tiny_ace)
    panel.prompt.setPlainText("bright pop")
    panel.song.lyrics.set_text("[verse]\nwalking down the river\n[chorus]\nwe are young tonight")
    panel.song.bpm.setValue(100)
    panel.song.steps.setValue(2)
    panel.duration.setValue(2.0)
    with qtbot.waitSignal(panel.items_saved, timeout=120000) as saved:
        qtbot.mouseClick(panel.generate_button, Qt.MouseButton.LeftButton)
    song = saved.args[0][0]
    assert song.record.request["lyrics"].startswith("[verse]") and song.record.request["bpm"] == 100
    assert panel.player.path == song.path and panel.waveform.duration_s == pytest.approx(2.0)
    assert not panel.editing.repaint_button.isEnabled()  # no region yet

    wave = panel.waveform
    y = wave.height() // 2
    qtbot.mousePress(wave, Qt.MouseButton.LeftButton, pos=QPoint(wave.width() // 4, y))
    qtbot.mouseMove(wave, QPoint(wave.width() // 2, y))
    qtbot.mouseRelease(wave, Qt.MouseButton.LeftButton, pos=QPoint(wave.width() // 2, y))
    start, end = panel.editing.start.value(), panel.editing.end.value()
    assert start == pytest.approx(0.5, abs=0.02) and end == pytest.approx(1.0, abs=0.02)
    assert wave.region == (start, end)
    panel.editing.end.setValue(1.2)  # fine-tuned in the field: the waveform follows
    assert wave.region == (start, 1.2)
    assert panel.editing.repaint_button.isEnabled()

    with qtbot.waitSignal(panel.items_saved, timeout=120000) as saved:
        qtbot.mouseClick(panel.editing.repaint_button, Qt.MouseButton.LeftButton)
    repainted = saved.args[0][0]
    request = repainted.record.request
    assert request["edit"] == "repaint" and request["init_audio"] == str(song.path)
    assert (request["repaint_start"], request["repaint_end"]) == (start, 1.2)
    assert repainted.record.parent == song.id
    assert soundfile.info(repainted.path).frames == soundfile.info(song.path).frames  # the length stays

"""How Studio feels in the hand, offscreen: one test per defect a new user met (issue: an artist's
studio, not a developer tool). Each fails if its defect returns."""

import numpy as np
import pytest
from helpers import show_active
from PySide6.QtCore import QPoint, QPointF, QRect, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPixmap, QWheelEvent
from PySide6.QtWidgets import QAbstractScrollArea, QCheckBox, QFormLayout, QLabel, QStyle, QStyleOptionViewItem

from studio.core.outputs import GeneratedOutput
from studio.core.provenance import ProvenanceRecord, new_item_id, utc_now_iso
from studio.ui.gallery_model import ItemRole
from studio.ui.main_window import MainWindow, first_geometry
from studio.ui.model_card_view import front_matter_html, split_front_matter
from studio.ui.settings_dialog import GPU_ONLY, PAGES, SettingsDialog
from studio.ui.theme import apply_theme, stylesheet
from studio.ui.widgets.status_line import MessageTimeout
from studio.ui.widgets.thumbnail_icon import untinted_icon


def _save(services, kind, prompt, **request):
    record = ProvenanceRecord(
        id=new_item_id(),
        kind=kind,
        created_at=utc_now_iso(),
        app={"name": "Studio", "version": "test"},
        model={"id": "tiny", "name": "tiny-model", "sha256": "ab" * 32},
        request={"kind": kind, "prompt": prompt, "seed": 7, **request},
        runtime={"device": "cpu", "name": "CPU (x86_64)", "dtype": "float32", "seconds": 1.5},
    )
    if kind == "image":
        data = np.zeros((48, 64, 3), dtype=np.uint8)
        data[..., 0] = 200  # a red picture: a tint shows as a change of colour
        return services.store.save(GeneratedOutput("image", data), record)
    if kind == "music":
        t = np.arange(16000) / 16000
        samples = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[:, None]
        return services.store.save(GeneratedOutput("music", samples, {"sample_rate": 16000}), record)
    return services.store.save(GeneratedOutput("text", f"# {prompt}\n\nA **bold** line."), record)


def _inside_a_scroll_area(widget):
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QAbstractScrollArea):
            return True
        parent = parent.parentWidget()
    return False


def _fully_visible(widget):
    return widget.isVisible() and widget.visibleRegion().boundingRect().size() == widget.size()


# 1. At 1280×800 the controls needed to generate, the progress and the last message are in sight.
def test_every_tab_shows_generate_progress_and_message_at_a_1280x800_first_size(window, qtbot):
    first = first_geometry(QRect(0, 0, 1280, 800))
    assert QRect(0, 0, 1280, 800).contains(first) and first.width() >= 1100
    window.setGeometry(first)
    qtbot.wait(50)
    for panel in window.panels.values():
        window.tabs.setCurrentWidget(panel)
        panel.show_status("Saved 1 image in 2.0 s")
        qtbot.wait(30)
        footer = [panel.generate_button, panel.hint, panel.run_status]
        if hasattr(panel, "progress"):
            footer.append(panel.progress)
        for widget in footer:
            assert not _inside_a_scroll_area(widget), widget.accessibleName()  # never scrolled away
            assert _fully_visible(widget), widget.accessibleName()
        for widget in (panel.model_picker, panel.prompt):
            assert widget.visibleRegion().boundingRect().height() >= min(widget.height(), 24)
    big = first_geometry(QRect(0, 0, 1920, 1080))
    assert big.width() > first.width() and QRect(0, 0, 1920, 1080).contains(big)


# 6. "Stop at" shows two lines and its placeholder; opening More settings does not grow the window.
def test_more_settings_does_not_grow_the_window_and_stop_at_is_two_lines(window, qtbot):
    window.setGeometry(first_geometry(QRect(0, 0, 1280, 800)))
    text = window.text_panel
    window.tabs.setCurrentWidget(text)
    qtbot.wait(30)
    before = window.size()
    text.more_toggle.setChecked(True)
    qtbot.wait(50)
    assert window.size() == before
    box = text.stop_strings
    assert box.height() >= 2 * box.fontMetrics().lineSpacing() + 8


# 3. Messages belong to a job or an action.
def test_a_running_message_ends_with_its_job_and_an_error_with_the_next_action(window, qtbot):
    text = window.text_panel
    window.tabs.setCurrentWidget(text)
    qtbot.waitUntil(lambda: text.model_info is not None, timeout=60000)
    text.prompt.setPlainText("And the river")
    text.max_tokens.setValue(200)
    text.generate()
    qtbot.waitUntil(lambda: text.run_status.text() == "Writing…", timeout=60000)
    text.stop()
    qtbot.waitUntil(lambda: not text.busy(), timeout=30000)
    assert "Writing" not in text.run_status.text()

    image = window.image_panel

    class Failed:
        error, detail = "out of memory", "Traceback…"

    image.report_error(image.run_status, Failed())
    assert image.run_status.text().startswith("Could not generate")
    image.prompt.setPlainText("a new idea")  # the next action
    assert image.run_status.text() == "" and not image.details_button.isVisibleTo(image)


def test_an_action_message_times_out_unless_replaced(qtbot):
    label = QLabel()
    qtbot.addWidget(label)
    timeout = MessageTimeout(label, seconds=0.05)
    label.setText("Brought back 1 item(s).")
    timeout.start()
    qtbot.waitUntil(lambda: label.text() == "", timeout=2000)
    label.setText("first")
    timeout.start()
    label.setText("a newer message")
    qtbot.wait(150)
    assert label.text() == "a newer message"


def test_gallery_messages_fade(window, qtbot):
    gallery = window.gallery_panel
    item = _save(window.services, "image", "a fox")
    gallery.refresh()
    gallery.select_item(item.id)
    gallery.delete_selected()
    gallery.undo_delete()
    assert gallery.status.text().startswith("Brought back") and gallery.status_timeout.active()


# 4. Reuse settings shows the reused item, not the previous picture.
def test_reuse_settings_shows_the_item_in_the_image_tab(window, qtbot):
    item = _save(window.services, "image", "a red square", width=64, height=48)
    window.reuse_item(item)
    image = window.image_panel
    assert window.tabs.currentWidget() is image
    shown = image.strip.currentItem().data(Qt.ItemDataRole.UserRole)
    assert shown.id == item.id and image.prompt.toPlainText() == "a red square"


# 9, 17. The gallery: prompt on the tile and on hover, tile size, a card, the raw record behind a toggle.
def test_gallery_tile_shows_the_prompt_and_keeps_its_colours_when_selected(window, qtbot):
    gallery = window.gallery_panel
    window.tabs.setCurrentWidget(gallery)
    item = _save(window.services, "image", "a red square at dusk")
    gallery.refresh()
    index = gallery.model.index(gallery.model.row_of(item.id))
    assert "a red square at dusk" in index.data(Qt.ItemDataRole.ToolTipRole)
    qtbot.waitUntil(lambda: gallery.thumbnails.wait_idle(50) and index.data(ItemRole) is not None)
    qtbot.waitUntil(lambda: gallery.model.data(index, Qt.ItemDataRole.UserRole + 2) is not None, timeout=10000)

    def render(selected):
        cell = gallery.delegate.cell()
        picture = QImage(cell, QImage.Format.Format_RGB32)
        picture.fill(QColor("black"))
        option = QStyleOptionViewItem()
        option.rect = QRect(QPoint(0, 0), cell)
        option.palette = gallery.view.palette()
        option.state = QStyle.StateFlag.State_Enabled | (
            QStyle.StateFlag.State_Selected if selected else QStyle.StateFlag.State_None
        )
        painter = QPainter(picture)
        gallery.delegate.paint(painter, option, index)
        painter.end()
        return picture

    plain, chosen = render(False), render(True)
    centre = QPoint(plain.width() // 2, (gallery.delegate.side + 8) // 2)
    assert plain.pixelColor(centre) == chosen.pixelColor(centre)  # the thumbnail is not tinted
    assert plain.pixelColor(centre).red() > 150
    assert plain != chosen  # but the selection shows (a frame)
    # The caption is the prompt: text pixels in the caption band differ from a tile without one.
    band_y = gallery.delegate.side + 16
    caption = {plain.pixelColor(x, band_y).name() for x in range(8, plain.width() - 8)}
    assert len(caption) > 1


def test_tile_size_follows_the_slider_and_ctrl_wheel(window, qtbot):
    gallery = window.gallery_panel
    window.tabs.setCurrentWidget(gallery)
    start = gallery.view.gridSize()
    gallery.tile_size.setValue(gallery.tile_size.minimum())
    assert gallery.view.gridSize().width() < start.width()
    small = gallery.view.gridSize()
    viewport = gallery.view.viewport()
    wheel = QWheelEvent(
        QPointF(10, 10),
        QPointF(viewport.mapToGlobal(QPoint(10, 10))),
        QPoint(0, 0),
        QPoint(0, 240),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.ControlModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    assert gallery.eventFilter(viewport, wheel)
    assert gallery.view.gridSize().width() > small.width()


def test_detail_is_a_card_with_the_record_behind_a_toggle(window, qtbot):
    gallery = window.gallery_panel
    window.tabs.setCurrentWidget(gallery)
    image = _save(window.services, "image", "a fox", steps=12, scheduler="euler", width=64, height=48)
    gallery.refresh()
    gallery.select_item(image.id)
    card = gallery.card.toPlainText()
    for expected in ("a fox", "tiny-model", "Seed", "7", "12", "euler", "64 × 48", "CPU (x86_64)"):
        assert expected in card, expected
    assert "sha256" not in card and "schema" not in card
    if image.record.output.get("content_credentials") == "c2pa":
        assert "signed (C2PA)" in card
    assert gallery.about.currentWidget() is gallery.card
    gallery.raw_toggle.setChecked(True)
    assert gallery.about.currentWidget() is gallery.details and "sha256" in gallery.details.toPlainText()


def test_music_has_a_waveform_and_text_reads_as_markdown(window, qtbot):
    gallery = window.gallery_panel
    window.tabs.setCurrentWidget(gallery)
    music = _save(window.services, "music", "a jig", duration=1.0)
    text = _save(window.services, "text", "A title")
    gallery.refresh()
    gallery.select_item(music.id)
    assert gallery.preview.currentWidget() is gallery._music_page and gallery.waveform.has_waveform()
    gallery.select_item(text.id)
    shown = gallery.preview_text.toPlainText()
    assert "A bold line." in shown and "**" not in shown and "#" not in shown


def test_strip_thumbnails_keep_their_colours_when_selected(qtbot):
    pixmap = QPixmap(QSize(16, 16))
    pixmap.fill(QColor(200, 30, 30))
    icon = untinted_icon(pixmap)
    normal = icon.pixmap(QSize(16, 16), QIcon.Mode.Normal).toImage().pixelColor(8, 8)
    selected = icon.pixmap(QSize(16, 16), QIcon.Mode.Selected).toImage().pixelColor(8, 8)
    assert normal == selected


# 7. Model cards rendered, the Status column in sight, the pattern model's dtype.
def test_model_card_front_matter_is_a_table():
    pairs, body = split_front_matter("---\nlicense: apache-2.0\ntags: [a, b]\n---\n# Title\n\n**bold**")
    assert ("license", "apache-2.0") in pairs and ("tags", "a, b") in pairs and body.startswith("# Title")
    table = front_matter_html([("license", "mit"), ("pipeline_tag", "text-generation")])
    assert "Licence" in table and "Task" in table and "<table" in table


def test_model_manager_renders_cards_and_shows_status_and_dtype(window, qtbot):
    dialog = window.model_manager()
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.wait(50)
    header = [dialog.table.horizontalHeaderItem(c).text() for c in range(dialog.table.columnCount())]
    status = header.index("Status")
    assert dialog.table.columnViewportPosition(status) + 20 < dialog.table.viewport().width()
    rows = {dialog.table.item(r, 0).text(): r for r in range(dialog.table.rowCount())}
    patterns = rows["studio-starter-patterns"]
    assert dialog.table.item(patterns, header.index("Dtype")).text() == "float32"
    dialog.table.selectRow(patterns)
    shown = dialog.card.toPlainText()
    assert "apache-2.0" in shown or "Licence" in shown
    assert not shown.startswith("---") and "**" not in shown


# 8. Settings as pages; GPU-only options greyed out with the reason on a CPU; labels said once.
def test_settings_are_pages_with_gpu_options_greyed_on_a_cpu(window, qtbot):
    dialog = SettingsDialog(window.services.settings, window, device_info={"gpu_available": False})
    qtbot.addWidget(dialog)
    assert dialog.page_names == list(PAGES) and dialog.pages.count() == len(PAGES)
    for name in GPU_ONLY:
        control = dialog.controls[name]
        assert not control.isEnabled() and "no GPU" in control.toolTip()
    assert dialog.controls["device"].isEnabled()
    with_gpu = SettingsDialog(window.services.settings, window, device_info={"gpu_available": True})
    qtbot.addWidget(with_gpu)
    assert all(with_gpu.controls[name].isEnabled() for name in GPU_ONLY)
    # A check box is its own label: no form label repeats its text.
    for page in range(dialog.pages.count()):
        form = dialog.pages.widget(page).findChild(QFormLayout)
        labels = [w.text() for w in dialog.pages.widget(page).findChildren(QLabel)]
        for check in dialog.pages.widget(page).findChildren(QCheckBox):
            assert labels.count(check.text()) == 0, check.text()
        assert form is not None
    assert dialog.pages.indexOf(dialog.controls["theme"].parentWidget().parentWidget()) == 1


# 5. The themes draw spin-box arrows, check boxes and menus themselves; dialog buttons without icons.
@pytest.mark.parametrize("theme", ["dark", "light"])
def test_theme_draws_arrows_checks_and_menu_borders(qapp, qtbot, theme):
    sheet = stylesheet(theme)
    assert "@icons@" not in sheet
    for piece in (
        "::up-arrow",
        "::down-arrow",
        "QCheckBox::indicator",
        "QMenu {",
        "dialogbuttonbox-buttons-have-icons",
    ):
        assert piece in sheet, piece
    import re
    from pathlib import Path

    for url in re.findall(r"url\(([^)]+)\)", sheet):
        assert Path(url).is_file(), url
    previous = qapp.styleSheet()
    try:
        apply_theme(qapp, theme)
        from PySide6.QtWidgets import QDialogButtonBox

        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        qtbot.addWidget(box)
        box.show()
        assert box.button(QDialogButtonBox.StandardButton.Ok).icon().isNull()
    finally:
        qapp.setStyleSheet(previous)


# 12. A relaunch shows the last model's controls at once.
def test_relaunch_restores_the_model_description_at_once(services, qtbot):
    first = MainWindow(services)
    qtbot.addWidget(first)
    show_active(qtbot, first)
    qtbot.waitUntil(lambda: first.image_panel.model_info is not None, timeout=60000)
    first.close()
    second = MainWindow(_reopen(services))
    qtbot.addWidget(second)
    try:
        # Before any event is processed: no worker answer yet, the remembered description is there.
        assert second.image_panel.model_info is not None
        assert not second.image_panel.steps.isEnabled()  # the starter paints in one pass: no steps
    finally:
        second.shutdown()


def _reopen(services):
    from studio.runtime.services import open_services

    return open_services(services.paths)


# 8. A gallery-location setting that moves or adopts the gallery safely.
def test_gallery_moves_to_an_empty_folder_at_the_next_start_every_file_checked(paths, tmp_path):
    from studio.runtime.services import open_services

    services = open_services(paths)
    item = _save(services, "image", "a fox")
    relative = item.path.relative_to(services.store.root)
    old_root = services.store.root
    dialog_target = tmp_path / "elsewhere" / "gallery"
    services.settings.set("gallery_folder", str(dialog_target))
    services.settings.set("gallery_move_from", str(old_root))
    services.settings.save()
    services.close()

    moved = open_services(paths)
    try:
        assert moved.store.root == dialog_target
        assert (dialog_target / relative).is_file() and not (old_root / relative).exists()
        assert moved.store.get(item.id) is not None  # the index came along and still finds it
        assert moved.settings.get("gallery_move_from") == ""
    finally:
        moved.close()


def test_choosing_a_gallery_folder_adopts_moves_or_refuses(window, tmp_path, qtbot):
    from studio.core.errors import StudioError
    from studio.gallery.relocate import choose_gallery_folder, move_gallery

    current = window.services.store.root
    dialog = window.settings_dialog()
    qtbot.addWidget(dialog)
    empty = tmp_path / "new-gallery"
    assert dialog.choose_gallery_folder(empty).action == "move"
    other = tmp_path / "papers"
    other.mkdir()
    (other / "letter.txt").write_text("hello")
    assert dialog.choose_gallery_folder(other) is None and "other files" in dialog.gallery_note.text()
    existing = tmp_path / "old-gallery"
    existing.mkdir()
    (existing / "index.sqlite3").write_bytes(b"")
    assert choose_gallery_folder(current, existing).action == "adopt"
    assert dialog.choose_gallery_folder(existing).action == "adopt"
    assert dialog.apply()
    settings = window.services.settings
    assert settings.get("gallery_folder") == str(existing.resolve()) and settings.get("gallery_move_from") == ""
    with pytest.raises(StudioError):
        choose_gallery_folder(current, current / "inside")
    # A copy that cannot be made leaves the source whole.
    source = tmp_path / "source"
    (source / "day").mkdir(parents=True)
    (source / "day" / "a.png").write_bytes(b"png")
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the folder should be")
    with pytest.raises(StudioError):
        move_gallery(source, blocked)
    assert (source / "day" / "a.png").read_bytes() == b"png"

"""The mask editor paints, erases, inverts, undoes and redoes at any zoom, takes a PNG's transparency or a
separate mask, and the Image tab sends what was painted as an inpaint the worker runs."""

import numpy as np
import pytest
from helpers import EventLog
from PIL import Image
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QImage

from studio.core.capabilities import Control
from studio.ui.widgets.mask_editor import MaskEditor


@pytest.fixture
def picture(tmp_path):
    path = tmp_path / "picture.png"
    Image.fromarray(np.full((60, 80, 3), 120, np.uint8)).save(path)
    return str(path)


@pytest.fixture
def editor(qtbot, picture):
    widget = MaskEditor()
    qtbot.addWidget(widget)
    widget.resize(400, 300)
    widget.show()
    assert widget.load_image(picture)
    return widget


def test_the_editor_paints_erases_inverts_undoes_and_redoes(editor):
    canvas = editor.canvas
    canvas.brush_size, canvas.softness = 10, 0.0
    assert not canvas.has_mask()
    canvas.stroke([QPointF(20, 30), QPointF(40, 30)])
    assert canvas.mask_value(30, 30) == 255 and canvas.mask_value(30, 50) == 0 and canvas.has_mask()
    editor.set_erasing(True)
    canvas.stroke([QPointF(30, 30)])
    assert canvas.mask_value(30, 30) == 0 and canvas.mask_value(21, 30) == 255
    canvas.invert()
    assert canvas.mask_value(30, 50) == 255 and canvas.mask_value(21, 30) == 0
    canvas.undo()
    assert canvas.mask_value(30, 50) == 0 and canvas.mask_value(21, 30) == 255
    canvas.undo()
    assert canvas.mask_value(30, 30) == 255  # the eraser's stroke undone
    canvas.redo()
    assert canvas.mask_value(30, 30) == 0
    canvas.clear()
    assert not canvas.has_mask()
    canvas.undo()
    assert canvas.has_mask()


def test_soft_brushes_fade_at_their_edge(editor):
    canvas = editor.canvas
    canvas.brush_size, canvas.softness = 30, 1.0
    canvas.stroke([QPointF(40, 30)])
    assert canvas.mask_value(40, 30) > 200 and 0 < canvas.mask_value(52, 30) < canvas.mask_value(44, 30)


def test_painting_with_the_mouse_lands_at_the_picture_pixel_at_any_zoom(qtbot, editor):
    canvas = editor.canvas
    canvas.brush_size, canvas.softness = 4, 0.0
    for zoom in (0.5, 3.0):
        canvas.clear()
        editor._zoom_by(zoom / canvas.scale())
        qtbot.wait(10)
        target = QPointF(50, 20)
        origin = canvas._origin()
        at = QPoint(round(origin.x() + target.x() * canvas.scale()), round(origin.y() + target.y() * canvas.scale()))
        qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=at)
        qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=at)
        assert canvas.mask_value(50, 20) == 255 and canvas.mask_value(10, 50) == 0, zoom


def test_keys_change_the_brush_and_undo(qtbot, editor):
    editor.canvas.setFocus()
    size = editor.brush_size_box.value()
    qtbot.keyClick(editor.canvas, Qt.Key.Key_BracketRight)
    assert editor.brush_size_box.value() > size and editor.canvas.brush_size == editor.brush_size_box.value()
    qtbot.keyClick(editor.canvas, Qt.Key.Key_BracketLeft)
    qtbot.keyClick(editor.canvas, Qt.Key.Key_BracketLeft)
    assert editor.brush_size_box.value() < size
    editor.canvas.stroke([QPointF(10, 10)])
    qtbot.keyClick(editor.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not editor.canvas.has_mask()
    qtbot.keyClick(editor.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert editor.canvas.has_mask()


def test_a_transparent_hole_or_a_mask_file_is_the_mask(qtbot, tmp_path, editor):
    rgba = QImage(80, 60, QImage.Format.Format_ARGB32)
    rgba.fill(QColor(10, 20, 30, 255))
    for x in range(10, 20):
        for y in range(10, 20):
            rgba.setPixelColor(x, y, QColor(0, 0, 0, 0))
    rgba.save(str(tmp_path / "hole.png"))
    assert editor.load_image(str(tmp_path / "hole.png"))
    assert editor.canvas.mask_value(15, 15) == 255 and editor.canvas.mask_value(40, 40) == 0
    small = np.zeros((30, 40), np.uint8)
    small[:, 20:] = 255
    Image.fromarray(small).save(tmp_path / "mask.png")
    notes = []
    editor.status.connect(notes.append)
    assert editor.load_mask(str(tmp_path / "mask.png"))
    assert editor.canvas.mask_value(70, 30) == 255 and editor.canvas.mask_value(5, 30) == 0
    assert notes and "scaled" in notes[-1]
    editor.save_mask(str(tmp_path / "saved.png"))
    with Image.open(tmp_path / "saved.png") as saved:
        assert saved.mode == "L" and saved.size == (80, 60)


def test_the_image_tab_inpaints_what_was_painted(qtbot, window, services, tiny_sd, tmp_path):
    panel = window.image_panel
    source = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(source)
    panel.model_picker.addItem("tiny", str(tiny_sd))
    panel.model_picker.setCurrentIndex(panel.model_picker.count() - 1)
    qtbot.waitUntil(lambda: panel._model_info is not None and panel._model_info.ref == str(tiny_sd), timeout=60000)
    assert panel.uses(Control.MASK) and panel.edits.paint_mask.isEnabled()
    panel.set_start_image(str(source))
    panel.edits.paint_mask.setChecked(True)
    assert not panel.edits.editor.isHidden() and panel.view.isHidden()
    panel.edits.editor.canvas.brush_size = 20
    panel.edits.editor.canvas.stroke([QPointF(20, 32), QPointF(44, 32)])
    panel.prompt.setPlainText("a red ball")
    panel.steps.setValue(2)
    request = panel.build_request()
    assert request.mask and request.init_image == str(source)
    log = EventLog(services.worker)
    job = panel.submit_request(request)
    end = log.wait_end(job, 120)
    assert end.kind.value == "finished", end.error
    assert end.result[0].record.derived_from["operation"]["task"] == "inpaint"

"""The Image tab, offscreen, with the real worker and the tiny Stable Diffusion pipeline."""

import numpy as np
import pytest
from helpers import show_active
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from studio.ui.image_panel import preset_sizes
from studio.ui.main_window import MainWindow


@pytest.fixture
def window(qtbot, services, tiny_sd, monkeypatch):
    from studio.engines import diffusers_image as image_engine

    monkeypatch.setattr(image_engine, "PREVIEW_INTERVAL_S", 0.0)
    services.settings.set("model_folders", [str(tiny_sd.parent)])
    main = MainWindow(services)
    qtbot.addWidget(main)
    show_active(qtbot, main)
    main.tabs.setCurrentWidget(main.image_panel)
    panel = main.image_panel
    panel.model_picker.setCurrentIndex(panel.model_picker.findData(str(tiny_sd)))
    qtbot.waitUntil(lambda: panel.scheduler.count() > 2, timeout=60000)  # the worker described the model
    yield main
    main.shutdown()


def test_presets_keep_the_native_pixel_count():
    sizes = {label.split(" ·")[0]: (w, h) for label, w, h in preset_sizes(1024)}
    assert sizes["Square"] == (1024, 1024)
    assert sizes["Portrait 2:3"] == (832, 1280) and sizes["Landscape 3:2"] == (1280, 832)
    assert all(w % 64 == 0 and h % 64 == 0 for w, h in sizes.values())


def test_model_description_fills_schedulers_and_sizes(window):
    panel = window.image_panel
    names = [panel.scheduler.itemData(i) for i in range(panel.scheduler.count())]
    assert names[0] == "" and "Euler" in panel.scheduler.itemText(0)
    assert "DDIMScheduler" in names
    assert (panel.width_box.value(), panel.height_box.value()) == (64, 64)  # the tiny model's native size
    assert panel.width_box.maximum() == 256 and panel.width_box.minimum() == 16


def test_generate_shows_previews_then_the_result_in_the_strip_and_gallery(window, qtbot):
    panel = window.image_panel
    previews = []
    window.bridge.delivered.connect(lambda batch: previews.extend(e for e in batch if e.kind.value == "preview"))
    qtbot.keyClicks(panel.prompt, "a red fox")
    panel.steps.setValue(6)
    panel.seed.lock(42)
    panel.scheduler.setCurrentIndex(panel.scheduler.findData("DDIMScheduler"))
    with qtbot.waitSignal(panel.items_saved, timeout=60000) as saved:
        qtbot.keyClick(panel.prompt, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    item = saved.args[0][0]
    assert previews, "no preview arrived"
    assert panel.strip.count() == 1 and not panel.view.pixmap().isNull()
    assert panel.view.pixmap().size().width() == 64
    assert item.record.request["seed"] == 42 and item.record.runtime["scheduler"] == "DDIMScheduler"
    assert "Saved 1 image" in panel.run_status.text()
    qtbot.waitUntil(lambda: window.gallery_panel.model.rowCount() == 1)
    assert window.services.settings.get("last_models")["image"] == panel.model_picker.current_model()


def test_jobs_queue_and_vary_and_reuse_work_from_the_strip(window, qtbot):
    panel = window.image_panel
    panel.prompt.setPlainText("hills at dawn")
    panel.steps.setValue(2)
    panel.generate()
    panel.generate()  # pressed again while the first runs: queued, not refused
    assert len(window.jobs.pending("image")) == 2
    qtbot.waitUntil(lambda: panel.strip.count() == 2 and not window.jobs.pending("image"), timeout=60000)
    assert window.queue_label.text() == "Queue: 0"
    panel.strip.setCurrentRow(1)
    first = panel._selected_item()
    with qtbot.waitSignal(panel.items_saved, timeout=60000) as saved:
        qtbot.mouseClick(panel.vary_button, Qt.MouseButton.LeftButton)
    varied = saved.args[0][0]
    assert varied.record.parent == first.id and varied.record.seed != first.record.seed
    assert varied.record.request["prompt"] == "hills at dawn"
    panel.prompt.setPlainText("something else")
    panel.steps.setValue(9)
    panel.strip.setCurrentRow(panel.strip.count() - 1)
    panel.reuse()
    assert panel.prompt.toPlainText() == "hills at dawn" and panel.steps.value() == 2
    assert panel.seed.value() == first.record.seed


def test_dropping_an_image_starts_from_it(window, qtbot, tmp_path):
    panel = window.image_panel
    start = tmp_path / "start.png"
    Image.fromarray(np.full((40, 80, 3), 200, dtype=np.uint8)).save(start)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(start))])
    drop = QDropEvent(
        QPointF(QPoint(5, 5)), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    panel.dropEvent(drop)
    assert panel._start_image == str(start)
    assert abs(panel.width_box.value() / panel.height_box.value() - 2) < 0.25  # the starting image's shape
    panel.prompt.setPlainText("repaint")
    panel.steps.setValue(4)
    with qtbot.waitSignal(panel.items_saved, timeout=60000) as saved:
        panel.generate()
    record = saved.args[0][0].record
    assert record.request["init_image"] == str(start)
    assert record.runtime["pipeline"] == "StableDiffusionImg2ImgPipeline"
    panel.clear_start_image()
    assert panel.build_request().init_image == ""


def test_escape_cancels_and_saves_nothing(window, qtbot):
    panel = window.image_panel
    panel.prompt.setPlainText("a long one")
    panel.steps.setValue(400)
    panel.generate()
    qtbot.waitUntil(lambda: panel.progress.value() >= 1, timeout=60000)
    assert "left" in panel.progress.format() or panel.progress.value() == 1
    qtbot.keyClick(panel.prompt, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not window.jobs.pending("image"), timeout=30000)
    assert "Cancelled" in panel.run_status.text()
    assert window.services.store.list() == []

"""The Gallery tab, offscreen: the virtual grid, thumbnails, filters, detail actions, trash, drag and drop."""

import numpy as np
import pytest
from helpers import EventLog, show_active
from PIL import Image, PngImagePlugin
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from studio.core.outputs import GeneratedOutput
from studio.core.provenance import ProvenanceRecord, new_item_id, utc_now_iso
from studio.core.requests import ImageRequest
from studio.gallery.a1111 import format_parameters
from studio.gallery.xmp import record_from_xmp
from studio.ui.export_dialog import ExportDialog
from studio.ui.gallery_model import ItemRole, ThumbnailRole
from studio.ui.main_window import MainWindow


def _save(services, kind, prompt, **request):
    record = ProvenanceRecord(
        id=new_item_id(),
        kind=kind,
        created_at=utc_now_iso(),
        app={"name": "Studio", "version": "test"},
        model={"id": "tiny", "name": "tiny"},
        request={"kind": kind, "prompt": prompt, "seed": 7, **request},
        runtime={"device": "cpu"},
    )
    if kind == "image":
        data = np.random.default_rng(len(prompt)).integers(0, 255, (24, 32, 3), dtype=np.uint8)
        return services.store.save(GeneratedOutput("image", data), record)
    if kind == "music":
        t = np.arange(8000) / 16000
        samples = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[:, None]
        return services.store.save(GeneratedOutput("music", samples, {"sample_rate": 16000}), record)
    return services.store.save(GeneratedOutput("text", f"{prompt}, the text"), record)


@pytest.fixture
def window(qtbot, services):
    main = MainWindow(services)
    qtbot.addWidget(main)
    show_active(qtbot, main)
    main.tabs.setCurrentWidget(main.gallery_panel)
    yield main
    main.shutdown()


def test_grid_shows_items_with_thumbnails_and_filters(window, qtbot):
    services, gallery = window.services, window.gallery_panel
    image = _save(services, "image", "a red fox")
    music = _save(services, "music", "calm piano")
    _save(services, "text", "a poem about rain")
    gallery.refresh()
    assert gallery.model.rowCount() == 3
    qtbot.waitUntil(lambda: gallery.model.index(gallery.model.row_of(image.id)).data(ThumbnailRole) is not None)
    qtbot.waitUntil(lambda: gallery.model.index(gallery.model.row_of(music.id)).data(ThumbnailRole) is not None)
    assert (services.paths.cache / "thumbnails" / f"{image.id}.png").is_file()  # cached on disk
    gallery.search.setText("fox")
    assert gallery.model.rowCount() == 1 and gallery.model.index(0).data(ItemRole).id == image.id
    gallery.search.clear()
    gallery.kind_filter.setCurrentIndex(gallery.kind_filter.findData("music"))
    assert gallery.model.rowCount() == 1
    gallery.kind_filter.setCurrentIndex(0)
    gallery.select_item(image.id)
    qtbot.mouseClick(gallery.favourite_button, Qt.MouseButton.LeftButton)
    gallery.favourites.setChecked(True)
    assert gallery.model.rowCount() == 1
    assert "a red fox" in gallery.details.toPlainText() and "sha256" in gallery.details.toPlainText()


def test_drag_out_gives_file_urls_and_the_image(window):
    services, gallery = window.services, window.gallery_panel
    first = _save(services, "image", "one")
    second = _save(services, "text", "two")
    gallery.refresh()
    rows = [gallery.model.index(gallery.model.row_of(i.id)) for i in (first, second)]
    mime = gallery.model.mimeData(rows)
    assert [url.toLocalFile() for url in mime.urls()] == [str(first.path), str(second.path)]
    single = gallery.model.mimeData(rows[:1])
    assert single.hasImage() and single.imageData().width() == 32


def test_delete_and_undo_with_the_keyboard(window, qtbot):
    services, gallery = window.services, window.gallery_panel
    kept = _save(services, "text", "kept")
    gone = _save(services, "text", "gone")
    gallery.refresh()
    gallery.select_item(gone.id)
    gallery.view.setFocus()
    qtbot.keyClick(gallery.view, Qt.Key.Key_Delete)
    assert gallery.model.rowCount() == 1 and services.store.trash()[0].id == gone.id
    qtbot.keyClick(gallery.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert gallery.model.rowCount() == 2 and gallery.current_item().id == gone.id
    assert {i.id for i in services.store.list()} == {kept.id, gone.id}


def test_dropping_files_imports_them(window, tmp_path):
    gallery = window.gallery_panel
    png = tmp_path / "castle.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", format_parameters("a castle", "", [("Steps", 20), ("Seed", 3)]))
    Image.new("RGB", (16, 16)).save(png, pnginfo=info)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(png))])
    event = QDropEvent(
        QPointF(QPoint(4, 4)), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    gallery.dropEvent(event)
    assert gallery.model.rowCount() == 1
    item = gallery.current_item()
    assert item.record.request["prompt"] == "a castle" and item.record.app["name"] == "A1111"


def test_reuse_and_use_as_input_fill_the_image_tab(window, qtbot):
    services, gallery = window.services, window.gallery_panel
    item = _save(services, "image", "hills at dawn", steps=9, guidance=4.5, width=32, height=24)
    gallery.refresh()
    gallery.select_item(item.id)
    qtbot.mouseClick(gallery.reuse_button, Qt.MouseButton.LeftButton)
    panel = window.image_panel
    assert window.tabs.currentWidget() is panel
    assert panel.prompt.toPlainText() == "hills at dawn" and panel.steps.value() == 9
    assert panel.seed.value() == 7
    window.tabs.setCurrentWidget(gallery)
    qtbot.mouseClick(gallery.input_button, Qt.MouseButton.LeftButton)
    assert panel._start_image == str(item.path) and panel._start_parent == item.id


def test_vary_from_the_gallery_makes_a_child(window, qtbot, tiny_sd):
    services, gallery = window.services, window.gallery_panel
    log = EventLog(services.worker)
    job = services.worker.submit(ImageRequest(prompt="a boat", model=str(tiny_sd), width=32, height=32, steps=2))
    parent = log.wait_end(job).result[0]
    gallery.refresh()
    gallery.select_item(parent.id)
    with qtbot.waitSignal(window.image_panel.items_saved, timeout=60000) as saved:
        qtbot.mouseClick(gallery.vary_button, Qt.MouseButton.LeftButton)
    child = saved.args[0][0]
    assert child.record.parent == parent.id and child.record.seed != parent.record.seed


def test_verify_and_export_from_the_gallery(window, tmp_path):
    services, gallery = window.services, window.gallery_panel
    item = _save(services, "image", "export me")
    gallery.refresh()
    gallery.select_item(item.id)
    assert "Unchanged" in gallery.verify_current() and "trusted" in gallery.status.text()
    dialog = ExportDialog([item], services.store.credentials, services.settings, gallery)
    dialog.folder.setText(str(tmp_path / "out"))
    dialog.format.setCurrentIndex(dialog.format.findData(".jpg"))
    dialog.pattern.setText("{prompt}-{seed}")
    assert dialog.example.text() == "export me-7.jpg"
    dialog.run()
    assert [p.name for p in dialog.written] == ["export me-7.jpg"]
    with Image.open(dialog.written[0]) as exported:
        assert exported.format == "JPEG"
        derived = record_from_xmp(exported.info["xmp"])  # a JPEG copy is a derivative with its own record
        assert derived["parent"] == item.id and derived["derived_from"]["id"] == item.id


def test_verify_of_an_edited_item_says_changed_once(window):
    """Issue 22 #11: "changed" once, then what differs (no "… it was changed after saving" again)."""
    services, gallery = window.services, window.gallery_panel
    item = _save(services, "image", "edit me")
    gallery.refresh()
    gallery.select_item(item.id)
    with Image.open(item.path) as image:
        edited = image.convert("RGB")
    edited.putpixel((0, 0), (255, 0, 0))
    edited.save(item.path)
    changed = gallery.verify_current()
    assert changed.startswith("Changed after it was saved: ") and changed.lower().count("changed") == 1, changed


def test_retry_saving_after_a_failed_save(window, qtbot, tiny_lm, monkeypatch):
    from studio.core.errors import StudioError
    from studio.core.requests import TextRequest

    store = window.services.store
    original = store.save
    monkeypatch.setattr(store, "save", lambda *a, **k: (_ for _ in ()).throw(StudioError("the disk is full.")))
    window.services.worker.submit(TextRequest(prompt="precious", model=str(tiny_lm), max_tokens=4))
    qtbot.waitUntil(window.retry_button.isVisible, timeout=60000)
    monkeypatch.setattr(store, "save", original)
    qtbot.mouseClick(window.retry_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.gallery_panel.model.rowCount() == 1, timeout=30000)
    assert not window.retry_button.isVisible()

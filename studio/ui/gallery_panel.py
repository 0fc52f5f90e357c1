"""The Gallery tab: a virtual grid of every output with search and filters, a detail view with
its provenance and actions, delete with undo, drag-and-drop out and in, and export."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt, QUrl, Signal, SignalInstance
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QDragEnterEvent,
    QDropEvent,
    QImage,
    QKeySequence,
    QPainter,
    QPixmap,
    QShortcut,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QMessageBox,
    QPlainTextEdit,
    QSplitter,
    QStackedWidget,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from studio.core.errors import StudioError
from studio.gallery.verify import verify_file
from studio.ui.export_dialog import ExportDialog
from studio.ui.gallery_model import GalleryModel, ItemRole, ThumbnailRole
from studio.ui.thumbnails import THUMB_SIDE, ThumbnailCache
from studio.ui.widgets.audio_player import AudioPlayer
from studio.ui.widgets.controls import button
from studio.ui.widgets.image_view import ImageView, scaled

if TYPE_CHECKING:
    from studio.gallery.store import GalleryItem
    from studio.runtime.services import Services

_CELL = QSize(THUMB_SIDE + 16, THUMB_SIDE + 40)
_DATES = (("Any time", None), ("Today", 0), ("Last 7 days", 7), ("Last 30 days", 30))


class GalleryDelegate(QStyledItemDelegate):
    """A tile: the thumbnail (or the first lines of a text), a star for favourites, the kind."""

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        return _CELL

    def paint(
        self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        item: GalleryItem | None = index.data(ItemRole)
        painter.save()
        palette = option.palette
        rect = option.rect.adjusted(4, 4, -4, -4)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        app = QApplication.instance()
        light = app is not None and app.property("studio_theme") == "light"
        # Tile colours follow the theme (a stylesheet does not reach the palette a delegate paints with).
        tile, ink = (QColor("#ffffff"), QColor("#1d1e22")) if light else (QColor("#262830"), QColor("#e6e6e9"))
        painter.fillRect(rect, palette.highlight() if selected else tile)
        if item is not None:
            picture_area = QRect(rect.left() + 4, rect.top() + 4, rect.width() - 8, THUMB_SIDE)
            image = index.data(ThumbnailRole)
            if image is not None and not image.isNull():
                pixmap = scaled(QPixmap.fromImage(image), picture_area.size())
                x = picture_area.left() + (picture_area.width() - pixmap.width()) // 2
                y = picture_area.top() + (picture_area.height() - pixmap.height()) // 2
                painter.drawPixmap(x, y, pixmap)
            else:
                painter.setPen(ink)
                text = item.record.prompt if item.kind != "text" else _first_lines(item)
                flags = Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft | Qt.TextFlag.TextWordWrap
                painter.drawText(picture_area, flags, text[:300])
            caption = QRect(rect.left() + 4, rect.bottom() - 30, rect.width() - 8, 28)
            painter.setPen(palette.highlightedText().color() if selected else ink)
            star = "★ " if item.favourite else ""
            label = f"{star}{item.kind} · {item.record.created_at[5:16].replace('T', ' ')}"
            painter.drawText(caption, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, label)
        painter.restore()


def _first_lines(item: GalleryItem) -> str:
    try:
        with item.path.open(encoding="utf-8") as handle:
            text = handle.read(4000)
    except OSError:
        return item.record.prompt
    if text.startswith("---\n") and "\n---\n" in text:
        text = text.split("\n---\n", 1)[1]
    return text.strip()


class GalleryPanel(QWidget):
    # The user opened an item (double-click); the window decides where it shows.
    open_requested = Signal(object)
    reuse_requested = Signal(object)  # fill the tab that made it
    vary_requested = Signal(object)  # same settings, new seed
    input_requested = Signal(object)  # start from it: image-to-image, continue the clip or the text

    def __init__(self, services: Services, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.services = services
        self.store = services.store
        self.thumbnails = ThumbnailCache(services.paths.cache / "thumbnails", self)
        self.model = GalleryModel(self.store, self.thumbnails, self)
        self._last_deleted: list[str] = []
        self._build()
        self.refresh()

    # -- layout -----------------------------------------------------------------

    def _build(self) -> None:
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search prompts, models and tags (Ctrl+F)")
        self.search.setAccessibleName("search gallery")
        self.search.setToolTip("Words from a prompt, a model name or a tag")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.refresh)
        self.kind_filter = _combo("kind filter", "Show one kind of output")
        for label, value in (("All", ""), ("Text", "text"), ("Images", "image"), ("Music", "music")):
            self.kind_filter.addItem(label, value)
        self.model_filter = _combo("model filter", "Show the outputs of one model")
        self.date_filter = _combo("date filter", "Show recent outputs only")
        for label, days in _DATES:
            self.date_filter.addItem(label, days)
        self.favourites = QCheckBox("★ Favourites")
        self.favourites.setAccessibleName("favourites only")
        self.favourites.setToolTip("Show favourites only")
        for signal in (self.kind_filter.currentIndexChanged, self.model_filter.currentIndexChanged):
            signal.connect(self.refresh)
        self.date_filter.currentIndexChanged.connect(self.refresh)
        self.favourites.toggled.connect(self.refresh)
        self.count_label = QLabel()
        self.count_label.setAccessibleName("item count")
        self.import_button = button(
            "Import…", "import files", "Add files to the gallery (or drop them here)", self._import_dialog
        )
        self.export_button = button("Export…", "export", "Export the selected items", self.export_selected)
        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        for widget in (self.kind_filter, self.model_filter, self.date_filter, self.favourites, self.count_label):
            top.addWidget(widget)
        top.addWidget(self.import_button)
        top.addWidget(self.export_button)

        self.view = QListView()
        self.view.setModel(self.model)
        self.view.setItemDelegate(GalleryDelegate(self.view))
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setUniformItemSizes(True)  # the view lays out 100,000 tiles without asking each one
        self.view.setLayoutMode(QListView.LayoutMode.Batched)
        self.view.setBatchSize(500)
        self.view.setGridSize(_CELL)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.view.setDragEnabled(True)
        self.view.setAccessibleName("gallery items")
        self.view.setToolTip(
            "Saved outputs, newest first. Drag them out; double-click opens one; Delete moves to trash"
        )
        self.view.selectionModel().currentChanged.connect(self._current_changed)
        self.view.doubleClicked.connect(lambda index: self.open_requested.emit(index.data(ItemRole)))

        self.preview_image = ImageView()
        self.preview_image.setAccessibleName("item preview")
        self.preview_image.setToolTip("The selected image: fitted, or pixel for pixel with Fit off")
        self.fit = QCheckBox("Fit")
        self.fit.setChecked(True)
        self.fit.setAccessibleName("fit image")
        self.fit.setToolTip("Fit the image to the view; off shows it at 1:1 to zoom in on details")
        self.fit.toggled.connect(self.preview_image.set_fit)
        self.preview_text = QPlainTextEdit()
        self.preview_text.setReadOnly(True)
        self.preview_text.setAccessibleName("item text")
        self.preview_text.setToolTip("The selected text")
        self.player = AudioPlayer()
        self.preview = QStackedWidget()
        for page in (self.preview_image, self.preview_text, self.player):
            self.preview.addWidget(page)
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setAccessibleName("item details")
        self.details.setToolTip("Where the selected output came from: its full provenance")
        self.tags = QLineEdit()
        self.tags.setPlaceholderText("tags, separated by commas")
        self.tags.setAccessibleName("tags")
        self.tags.setToolTip("Tags for the selected item (press Enter to save); search finds them")
        self.tags.returnPressed.connect(self._save_tags)
        self.favourite_button = button(
            "★ Favourite", "favourite", "Mark or unmark as a favourite", self.toggle_favourite
        )
        self.reuse_button = button(
            "Reuse settings", "reuse settings", "Fill the tab that made it", self._emit(self.reuse_requested)
        )
        self.vary_button = button("Vary", "vary", "Make it again with a new seed", self._emit(self.vary_requested))
        self.input_button = button(
            "Use as input",
            "use as input",
            "Start from it: image-to-image, continue the music or text",
            self._emit(self.input_requested),
        )
        self.verify_button = button(
            "Verify", "verify", "Check its provenance and content credentials", self.verify_current
        )
        self.compare_button = button(
            "Regenerate and compare",
            "regenerate and compare",
            "Run its recorded settings again with the same model and show whether the result is identical",
            self.regenerate_current,
        )
        self.delete_button = button(
            "Delete", "delete", "Move the selected items to the trash (Delete)", self.delete_selected
        )
        self.open_folder_button = button(
            "Show file", "show file", "Open the folder that holds the file", self._show_file
        )
        self.undo_button = button(
            "Undo delete", "undo delete", "Bring back what was just deleted (Ctrl+Z)", self.undo_delete
        )
        self.undo_button.setVisible(False)
        self.trash_button = button("Empty trash…", "empty trash", "Delete the trash for good", self.empty_trash)
        actions = QHBoxLayout()
        for action in (self.reuse_button, self.vary_button, self.input_button, self.verify_button, self.fit):
            actions.addWidget(action)
        actions.addWidget(self.compare_button)
        more = QHBoxLayout()
        for action in (
            self.favourite_button,
            self.delete_button,
            self.open_folder_button,
            self.undo_button,
            self.trash_button,
        ):
            more.addWidget(action)
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.addWidget(self.preview, 3)
        side_layout.addLayout(actions)
        side_layout.addWidget(self.tags)
        side_layout.addLayout(more)
        side_layout.addWidget(self.details, 2)
        self.status = QLabel()
        self.status.setAccessibleName("gallery status")
        self.status.setWordWrap(True)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.view)
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.status)
        self.setAcceptDrops(True)

        QShortcut(QKeySequence.StandardKey.Find, self).activated.connect(self.focus_search)
        delete = QShortcut(QKeySequence(Qt.Key.Key_Delete), self.view)
        delete.setContext(Qt.ShortcutContext.WidgetShortcut)
        delete.activated.connect(self.delete_selected)
        QShortcut(QKeySequence.StandardKey.Undo, self).activated.connect(self.undo_delete)
        self._show_item(None)

    def _emit(self, signal: SignalInstance) -> Callable[[], None]:
        """A slot that sends the current item with ``signal`` (for the tabs to act on)."""

        def fire() -> None:
            item = self.current_item()
            if item is not None:
                signal.emit(item)

        return fire

    # -- queries ------------------------------------------------------------------

    def refresh(self, *_args: object) -> None:
        current = self.current_item()
        days = self.date_filter.currentData()
        since = None
        if days is not None:
            since = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=days)).date().isoformat()
        self._refresh_models()
        self.model.set_query(
            kind=self.kind_filter.currentData() or None,
            search=self.search.text() or None,
            model=self.model_filter.currentData() or None,
            favourites=self.favourites.isChecked(),
            since=since,
        )
        self.count_label.setText(f"{self.model.rowCount()} shown")
        row = self.model.row_of(current.id) if current is not None else -1
        if row >= 0:
            self.view.setCurrentIndex(self.model.index(row))
        else:
            self._show_item(None)

    def _refresh_models(self) -> None:
        chosen = self.model_filter.currentData()
        models = self.store.models()
        known = [self.model_filter.itemData(i) for i in range(self.model_filter.count())]
        if known == ["", *models]:
            return
        self.model_filter.blockSignals(True)
        self.model_filter.clear()
        self.model_filter.addItem("All models", "")
        for name in models:
            self.model_filter.addItem(name, name)
        self.model_filter.setCurrentIndex(max(0, self.model_filter.findData(chosen)))
        self.model_filter.blockSignals(False)

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def current_item(self) -> GalleryItem | None:
        index = self.view.currentIndex()
        item: GalleryItem | None = index.data(ItemRole) if index.isValid() else None
        return item

    def selected_items(self) -> list[GalleryItem]:
        rows = sorted({index.row() for index in self.view.selectionModel().selectedIndexes()})
        items = [self.model.item_at(row) for row in rows]
        if not items and self.current_item() is not None:
            items = [self.current_item()]
        return [item for item in items if item is not None]

    def select_item(self, item_id: str) -> bool:
        row = self.model.row_of(item_id)
        if row >= 0:
            self.view.setCurrentIndex(self.model.index(row))
        return row >= 0

    # -- the detail view ------------------------------------------------------------

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self._show_item(current.data(ItemRole) if current.isValid() else None)

    def _show_item(self, item: GalleryItem | None) -> None:
        has = item is not None
        for widget in (
            self.reuse_button,
            self.vary_button,
            self.input_button,
            self.verify_button,
            self.compare_button,
            self.favourite_button,
            self.delete_button,
            self.open_folder_button,
            self.tags,
        ):
            widget.setEnabled(has)
        if item is None:
            self.details.clear()
            self.tags.clear()
            self.preview_image.clear()
            self.preview.setCurrentWidget(self.preview_image)
            return
        record = item.record
        self.favourite_button.setText("★ Unfavourite" if item.favourite else "★ Favourite")
        self.tags.setText(", ".join(item.tags))
        if item.kind == "image":
            image = QImage(str(item.path))
            if image.isNull():
                self.preview_image.clear(f"Cannot show {item.path.name}")
            else:
                self.preview_image.set_image(image)
            self.preview.setCurrentWidget(self.preview_image)
        elif item.kind == "music":
            self.player.load(item.path)
            self.preview.setCurrentWidget(self.player)
        else:
            self.preview_text.setPlainText(_first_lines(item))
            self.preview.setCurrentWidget(self.preview_text)
        lines = [
            f"Prompt: {record.prompt}",
            f"Model: {record.model.get('name', '')} ({record.model.get('family', '')})",
            f"Model sha256: {record.model.get('sha256', '')}",
            f"Seed: {record.seed}",
            f"Made: {record.created_at} with {record.app.get('name', '')} {record.app.get('version', '')}",
            f"Device: {record.runtime.get('name', '')} ({record.runtime.get('dtype', '')})",
            f"File: {item.path}",
            f"File sha256: {record.output.get('sha256', '')}",
            f"Content credentials: {record.output.get('content_credentials', 'none')}",
            "May train AI: " + (record.ai_training or "not_stated").replace("_", " "),
        ]
        if record.parent:
            lines.append(f"Made from: {record.parent}")
        settings = {k: v for k, v in record.request.items() if k not in ("prompt", "model", "seed", "kind")}
        lines += [f"{key}: {value}" for key, value in settings.items() if value not in ("", [], None)]
        versions = record.runtime.get("versions", {})
        if isinstance(versions, dict) and versions:
            lines.append("Libraries: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
        self.details.setPlainText("\n".join(lines))

    # -- actions ------------------------------------------------------------------

    def toggle_favourite(self) -> None:
        item = self.current_item()
        if item is None:
            return
        self._annotate(item, favourite=not item.favourite)

    def _save_tags(self) -> None:
        item = self.current_item()
        if item is not None:
            self._annotate(item, tags=[t.strip() for t in self.tags.text().split(",")])

    def _annotate(self, item: GalleryItem, *, favourite: bool | None = None, tags: list[str] | None = None) -> None:
        try:
            updated = self.store.annotate(item.id, favourite=favourite, tags=tags)
        except StudioError as exc:
            self.status.setText(str(exc))
            return
        self.model.forget(item.id)
        self._show_item(updated)

    def delete_selected(self) -> None:
        items = self.selected_items()
        if not items:
            return
        self.player.close_player()
        try:
            self._last_deleted = self.store.delete([item.id for item in items])
        except StudioError as exc:
            self.status.setText(str(exc))
            return
        self.refresh()
        self.status.setText(f"Moved {len(self._last_deleted)} item(s) to the trash. Ctrl+Z brings them back.")
        self.undo_button.setVisible(True)

    def undo_delete(self) -> None:
        if not self._last_deleted:
            return
        try:
            restored = self.store.restore(self._last_deleted)
        except StudioError as exc:
            self.status.setText(str(exc))
            return
        self._last_deleted = []
        self.undo_button.setVisible(False)
        self.refresh()
        if restored:
            self.select_item(restored[0])
        self.status.setText(f"Brought back {len(restored)} item(s).")

    def empty_trash(self) -> None:
        count = len(self.store.trash())
        if not count:
            self.status.setText("The trash is empty.")
            return
        answer = QMessageBox.question(self, "Empty trash", f"Delete {count} item(s) in the trash for good?")
        if answer == QMessageBox.StandardButton.Yes:
            self.store.empty_trash()
            self._last_deleted = []
            self.undo_button.setVisible(False)
            self.status.setText(f"Deleted {count} item(s) for good.")

    def regenerate_current(self) -> QDialog | None:
        """Open "Regenerate and compare" for the selected item (the run is on a pool thread)."""
        from studio.ui.compare_dialog import CompareDialog

        item = self.current_item()
        if item is None:
            return None
        dialog = CompareDialog(item, self.services, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        dialog.start()
        return dialog

    def verify_current(self) -> str:
        item = self.current_item()
        if item is None:
            return ""
        report = verify_file(item.path, self.store.credentials)
        credentials = report.credentials.state if report.credentials else "none"
        if report.tampered:
            text = "Changed after it was saved: " + "; ".join(report.problems) + "."
        elif report.ok:
            text = f"Unchanged since it was saved. Content credentials: {credentials}."
        else:
            text = " ".join(report.problems)
        self.status.setText(f"Verify {item.path.name}: {text}")
        return text

    def _show_file(self) -> None:
        item = self.current_item()
        if item is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(item.path.parent)))

    def export_selected(self) -> None:
        items = self.selected_items()
        if not items:
            self.status.setText("Select the items to export first.")
            return
        dialog = ExportDialog(items, self.store.credentials, self.services.settings, self)
        if dialog.exec():
            self.status.setText(dialog.summary)

    # -- importing -------------------------------------------------------------------

    def import_files(self, paths: list[Path]) -> list[GalleryItem]:
        imported: list[GalleryItem] = []
        problems: list[str] = []
        for path in paths:
            try:
                imported.append(self.store.import_file(path))
            except StudioError as exc:
                problems.append(str(exc))
        self.refresh()
        if imported:
            self.select_item(imported[-1].id)
        message = f"Imported {len(imported)} file(s)."
        self.status.setText(" ".join([message, *problems[:3]]))
        return imported

    def _import_dialog(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        paths, _ = QFileDialog.getOpenFileNames(
            self,
            "Import into the gallery",
            "",
            "Outputs (*.png *.jpg *.jpeg *.webp *.flac *.wav *.ogg *.mp3 *.md *.txt)",
        )
        if paths:
            self.import_files([Path(p) for p in paths])

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and event.source() is not self.view:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.import_files(paths)

    def shutdown(self) -> None:
        self.player.close_player()
        self.thumbnails.shutdown()


def _combo(name: str, tip: str) -> QComboBox:
    box = QComboBox()
    box.setAccessibleName(name)
    box.setToolTip(tip)
    return box

"""The Gallery tab: a virtual grid of every output with search and filters, a detail view with
its provenance and actions, delete with undo, drag-and-drop out and in, and export."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import (
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QSize,
    Qt,
    QUrl,
    Signal,
    SignalInstance,
)
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QDragEnterEvent,
    QDropEvent,
    QImage,
    QKeySequence,
    QPainter,
    QPen,
    QPixmap,
    QShortcut,
    QWheelEvent,
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
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QSlider,
    QSplitter,
    QStackedWidget,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from studio.core.errors import StudioError
from studio.gallery.verify import verify_file
from studio.ui.export_dialog import ExportDialog
from studio.ui.gallery_model import GalleryModel, ItemRole, ThumbnailRole
from studio.ui.item_card import card_html, local_time, record_text
from studio.ui.thumbnails import THUMB_SIDE, ThumbnailCache
from studio.ui.widgets.audio_player import AudioPlayer
from studio.ui.widgets.controls import button
from studio.ui.widgets.image_view import ImageView, scaled
from studio.ui.widgets.status_line import MessageTimeout
from studio.ui.widgets.waveform import WaveformView

if TYPE_CHECKING:
    from studio.gallery.store import GalleryItem
    from studio.runtime.services import Services

_DATES = (("Any time", None), ("Today", 0), ("Last 7 days", 7), ("Last 30 days", 30))
TILE_SIZES = (96, THUMB_SIDE)  # the tile-size slider's range: a tile's picture side in pixels
_TILE_DEFAULT = 176
_CAPTION = 40  # two lines under the picture: the prompt, then the kind and date


class GalleryDelegate(QStyledItemDelegate):
    """A tile: the thumbnail (or the first lines of a text) kept in its own colours, under it the
    prompt and the kind and date; a selected tile is framed in the accent colour, never tinted."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.side = _TILE_DEFAULT

    def cell(self) -> QSize:
        return QSize(self.side + 16, self.side + _CAPTION + 16)

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        return self.cell()

    def paint(
        self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        item: GalleryItem | None = index.data(ItemRole)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = option.rect.adjusted(4, 4, -4, -4)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        hovered = bool(option.state & QStyle.StateFlag.State_MouseOver)
        app = QApplication.instance()
        light = app is not None and app.property("studio_theme") == "light"
        # Tile colours follow the theme (a stylesheet does not reach the palette a delegate paints with).
        tile, ink, faint = (
            (QColor("#eceef3"), QColor("#1d1e22"), QColor("#6b6d75"))
            if light
            else (QColor("#262830"), QColor("#e6e6e9"), QColor("#9a9ca6"))
        )
        if hovered and not selected:
            tile = tile.darker(106) if light else tile.lighter(118)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(tile)
        painter.drawRoundedRect(rect, 6, 6)
        if item is not None:
            picture_area = QRect(rect.left() + 4, rect.top() + 4, rect.width() - 8, self.side)
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
                painter.drawText(picture_area.adjusted(4, 4, -4, -4), flags, text[:300])
            metrics = painter.fontMetrics()
            line = metrics.height()
            top = rect.bottom() - _CAPTION + 2
            width = rect.width() - 10
            star = "★ " if item.favourite else ""
            prompt = " ".join(item.record.prompt.split()) or item.path.name
            painter.setPen(ink)
            painter.drawText(
                QRect(rect.left() + 5, top, width, line),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                metrics.elidedText(star + prompt, Qt.TextElideMode.ElideRight, width),
            )
            painter.setPen(faint)
            when = local_time(item.record.created_at)
            painter.drawText(
                QRect(rect.left() + 5, top + line, width, line),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                metrics.elidedText(f"{item.kind} · {when}", Qt.TextElideMode.ElideRight, width),
            )
        if selected:
            accent = QColor("#3d63d6") if light else QColor("#4a7dff")
            painter.setPen(QPen(accent, 3))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(rect.adjusted(1, 1, -1, -1), 6, 6)
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
    # Learn from items: (source — "selection", "favourites" or "search" —, the item ids).
    train_requested = Signal(str, list)

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
        self.tile_size = QSlider(Qt.Orientation.Horizontal)
        self.tile_size.setRange(*TILE_SIZES)
        self.tile_size.setValue(_TILE_DEFAULT)
        self.tile_size.setFixedWidth(120)
        self.tile_size.setAccessibleName("tile size")
        self.tile_size.setToolTip("Size of the tiles (Ctrl+wheel over the gallery)")
        self.tile_size.valueChanged.connect(self.set_tile_side)
        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        for widget in (self.kind_filter, self.model_filter, self.date_filter, self.favourites, self.count_label):
            top.addWidget(widget)
        top.addWidget(self.tile_size)
        top.addWidget(self.import_button)
        top.addWidget(self.export_button)

        self.view = QListView()
        self.view.setModel(self.model)
        self.delegate = GalleryDelegate(self.view)
        self.view.setItemDelegate(self.delegate)
        self.view.setMouseTracking(True)  # the hovered tile lightens
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setUniformItemSizes(True)  # the view lays out 100,000 tiles without asking each one
        self.view.setLayoutMode(QListView.LayoutMode.Batched)
        self.view.setBatchSize(500)
        self.view.setGridSize(self.delegate.cell())
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.view.setDragEnabled(True)
        self.view.setAccessibleName("gallery items")
        self.view.setToolTip(
            "Saved outputs, newest first. Drag them out; double-click opens one; Delete moves to trash"
        )
        self.view.selectionModel().currentChanged.connect(self._current_changed)
        self.view.doubleClicked.connect(lambda index: self.open_requested.emit(index.data(ItemRole)))
        self.view.viewport().installEventFilter(self)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._context_menu)

        self.preview_image = ImageView()
        self.preview_image.setAccessibleName("item preview")
        self.preview_image.setToolTip("The selected image: fitted, or pixel for pixel with Fit off")
        self.fit = QCheckBox("Fit")
        self.fit.setChecked(True)
        self.fit.setAccessibleName("fit image")
        self.fit.setToolTip("Fit the image to the view; off shows it at 1:1 to zoom in on details")
        self.fit.toggled.connect(self.preview_image.set_fit)
        self.preview_text = QTextBrowser()
        self.preview_text.setOpenExternalLinks(False)
        self.preview_text.setAccessibleName("item text")
        self.preview_text.setToolTip("The selected text, as its Markdown reads")
        self.waveform = WaveformView()
        self.player = AudioPlayer()
        self.player.position_changed.connect(self.waveform.set_position)
        self.waveform.seek_requested.connect(self.player.seek_fraction)
        music_page = QWidget()
        music_layout = QVBoxLayout(music_page)
        music_layout.setContentsMargins(0, 0, 0, 0)
        music_layout.addWidget(self.waveform, 1)
        music_layout.addWidget(self.player)
        self.preview = QStackedWidget()
        for page in (self.preview_image, self.preview_text, music_page):
            self.preview.addWidget(page)
        self._music_page = music_page
        # The card reads like a label in a museum; the full record (hashes, versions) waits behind a toggle.
        self.card = QTextBrowser()
        self.card.setAccessibleName("item card")
        self.card.setToolTip("What made the selected output: model, seed, settings, date and device")
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setAccessibleName("item record")
        self.details.setToolTip("The selected output's full provenance record, as saved beside it")
        self.about = QStackedWidget()
        self.about.addWidget(self.card)
        self.about.addWidget(self.details)
        self.raw_toggle = QCheckBox("Full record")
        self.raw_toggle.setAccessibleName("show full record")
        self.raw_toggle.setToolTip("Show everything the record holds: hashes, library versions, the file")
        self.raw_toggle.toggled.connect(lambda raw: self.about.setCurrentWidget(self.details if raw else self.card))
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
        self.train_button = button(
            "Train on selected…",
            "train on selected",
            "Open the Train tab with the selected items as what to learn from",
            lambda: self.train_on("selection"),
        )
        actions = QHBoxLayout()
        for action in (self.reuse_button, self.vary_button, self.input_button, self.verify_button):
            actions.addWidget(action)
        actions.addWidget(self.compare_button)
        actions.addStretch(1)
        actions.addWidget(self.fit)
        more = QHBoxLayout()
        for action in (
            self.favourite_button,
            self.delete_button,
            self.open_folder_button,
            self.undo_button,
            self.trash_button,
            self.train_button,
        ):
            more.addWidget(action)
        more.addStretch(1)
        more.addWidget(self.raw_toggle)
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.addWidget(self.preview, 3)
        side_layout.addLayout(actions)
        side_layout.addWidget(self.tags)
        side_layout.addLayout(more)
        side_layout.addWidget(self.about, 2)
        self.status = QLabel()
        self.status.setAccessibleName("gallery status")
        self.status.setWordWrap(True)
        self.status_timeout = MessageTimeout(self.status)

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
            self.train_button,
        ):
            widget.setEnabled(has)
        if item is None:
            self.details.clear()
            self.card.setHtml("<p style='color:#8b8d96'>Select an output to see how it was made.</p>")
            self.tags.clear()
            self.preview_image.clear()
            self.preview.setCurrentWidget(self.preview_image)
            return
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
            try:
                self.waveform.set_file(item.path)
            except (OSError, RuntimeError, ValueError):
                self.waveform.set_file(None)
            self.preview.setCurrentWidget(self._music_page)
        else:
            self.preview_text.setMarkdown(_first_lines(item))
            self.preview.setCurrentWidget(self.preview_text)
        self.card.setHtml(card_html(item))
        self.details.setPlainText(record_text(item))

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
            self._say(str(exc))
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
            self._say(str(exc))
            return
        self.refresh()
        self._say(f"Moved {len(self._last_deleted)} item(s) to the trash. Ctrl+Z brings them back.")
        self.undo_button.setVisible(True)

    def undo_delete(self) -> None:
        if not self._last_deleted:
            return
        try:
            restored = self.store.restore(self._last_deleted)
        except StudioError as exc:
            self._say(str(exc))
            return
        self._last_deleted = []
        self.undo_button.setVisible(False)
        self.refresh()
        if restored:
            self.select_item(restored[0])
        self._say(f"Brought back {len(restored)} item(s).")

    def empty_trash(self) -> None:
        count = len(self.store.trash())
        if not count:
            self._say("The trash is empty.")
            return
        answer = QMessageBox.question(self, "Empty trash", f"Delete {count} item(s) in the trash for good?")
        if answer == QMessageBox.StandardButton.Yes:
            self.store.empty_trash()
            self._last_deleted = []
            self.undo_button.setVisible(False)
            self._say(f"Deleted {count} item(s) for good.")

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
        if report.lineage:  # what its trained model or adapter learned from, as `studio verify` says it
            text += f" Made with {' and '.join(report.lineage)}."
        self._say(f"Verify {item.path.name}: {text}")
        return text

    def train_ids(self, source: str) -> list[str]:
        """The items "Train on …" hands the Train tab: the selection, every favourite, or every item
        the current search finds (within the kind filter)."""
        if source == "selection":
            return [item.id for item in self.selected_items()]
        kind = self.kind_filter.currentData() or None
        if source == "favourites":
            return self.store.ids(kind=kind, favourites=True)
        words = self.search.text().strip()
        return self.store.ids(kind=kind, search=words) if words else []

    def train_on(self, source: str) -> None:
        ids = self.train_ids(source)
        if not ids:
            self._say("Nothing to train on: select items, mark favourites or search first.")
            return
        self.train_requested.emit(source, ids)

    def context_menu(self) -> QMenu:
        """The items' menu: the current item's actions and training on the selection, favourites or search."""
        menu = QMenu(self)
        has = self.current_item() is not None
        for text, slot in (
            ("Reuse settings", self._emit(self.reuse_requested)),
            ("Vary", self._emit(self.vary_requested)),
            ("Use as input", self._emit(self.input_requested)),
        ):
            menu.addAction(text, slot).setEnabled(has)
        menu.addSeparator()
        selected = len(self.selected_items())
        train = menu.addAction(f"Train on selected ({selected})…", lambda: self.train_on("selection"))
        train.setEnabled(selected > 0)
        menu.addAction("Train on favourites…", lambda: self.train_on("favourites"))
        words = self.search.text().strip()
        search = menu.addAction(f"Train on this search ({words[:24]})…" if words else "Train on this search…")
        search.triggered.connect(lambda _checked=False: self.train_on("search"))
        search.setEnabled(bool(words))
        menu.addSeparator()
        menu.addAction("Delete", self.delete_selected).setEnabled(has)
        return menu

    def _context_menu(self, position: QPoint) -> None:
        index = self.view.indexAt(position)
        if index.isValid() and not self.view.selectionModel().isSelected(index):
            self.view.setCurrentIndex(index)
        self.context_menu().popup(self.view.viewport().mapToGlobal(position))

    def _say(self, text: str) -> None:
        """A message about the last action; it goes after a while (or with the next one)."""
        self.status.setText(text)
        self.status_timeout.start()

    def set_tile_side(self, side: int) -> None:
        """Tiles with pictures ``side`` pixels across (the slider, Ctrl+wheel)."""
        side = max(TILE_SIZES[0], min(TILE_SIZES[1], side))
        if self.tile_size.value() != side:
            self.tile_size.setValue(side)  # comes back here through valueChanged
            return
        self.delegate.side = side
        self.view.setGridSize(self.delegate.cell())
        self.view.doItemsLayout()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            watched is self.view.viewport()
            and event.type() == QEvent.Type.Wheel
            and isinstance(event, QWheelEvent)
            and event.modifiers() & Qt.KeyboardModifier.ControlModifier
        ):
            steps = event.angleDelta().y() / 120
            self.set_tile_side(self.tile_size.value() + round(steps * 16))
            return True
        return super().eventFilter(watched, event)

    def _show_file(self) -> None:
        item = self.current_item()
        if item is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(item.path.parent)))

    def export_selected(self) -> None:
        items = self.selected_items()
        if not items:
            self._say("Select the items to export first.")
            return
        dialog = ExportDialog(items, self.store.credentials, self.services.settings, self)
        if dialog.exec():
            self._say(dialog.summary)

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
        self._say(" ".join([message, *problems[:3]]))
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

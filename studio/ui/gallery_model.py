"""The gallery as a virtual list: only the ids of the current query are held; items are read
from the index a page at a time as the view scrolls to them, so 100,000 items open at once."""

from __future__ import annotations

from PySide6.QtCore import QAbstractListModel, QMimeData, QModelIndex, QObject, QPersistentModelIndex, Qt, QUrl

from studio.ui.thumbnails import ThumbnailCache

ItemRole = Qt.ItemDataRole.UserRole + 1
ThumbnailRole = Qt.ItemDataRole.UserRole + 2
_PAGE = 256
_MAX_PAGES = 64


class GalleryModel(QAbstractListModel):
    def __init__(self, store, thumbnails: ThumbnailCache, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.thumbnails = thumbnails
        self._ids: list[str] = []
        self._rows: dict[str, int] = {}
        self._pages: dict[int, dict[str, object]] = {}
        self.query: dict = {}
        thumbnails.ready.connect(self._thumbnail_ready)

    def set_query(self, **query) -> None:
        """Re-run the search (kind, search, model, favourites, since) and reset the view."""
        self.beginResetModel()
        self.query = query
        self._ids = self.store.ids(**query)
        self._rows = {item_id: row for row, item_id in enumerate(self._ids)}
        self._pages.clear()
        self.endResetModel()

    def refresh(self) -> None:
        self.set_query(**self.query)

    def forget(self, item_id: str) -> None:
        """Drop a cached item (after it changed) so the next read is fresh."""
        row = self._rows.get(item_id)
        if row is not None:
            self._pages.pop(row // _PAGE, None)
            index = self.index(row)
            self.dataChanged.emit(index, index)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._ids)

    def item_at(self, row: int):
        if not 0 <= row < len(self._ids):
            return None
        page_number = row // _PAGE
        page = self._pages.get(page_number)
        if page is None:
            ids = self._ids[page_number * _PAGE : (page_number + 1) * _PAGE]
            page = dict(self.store.get_many(ids))
            self._pages[page_number] = page
            if len(self._pages) > _MAX_PAGES:
                self._pages.pop(next(iter(self._pages)))
        return page.get(self._ids[row])

    def row_of(self, item_id: str) -> int:
        return self._rows.get(item_id, -1)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        item = self.item_at(index.row()) if index.isValid() else None
        if item is None:
            return None
        if role == ItemRole:
            return item
        if role == Qt.ItemDataRole.DisplayRole:
            return " ".join(item.record.prompt.split())[:120] or item.path.name
        if role == Qt.ItemDataRole.ToolTipRole:
            record = item.record
            return (
                f"{record.prompt[:200]}\n{record.model.get('name', '')} · seed {record.seed} · {record.created_at[:16]}"
            )
        if role == ThumbnailRole:
            return self.thumbnails.get(item)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{item.kind}: {item.record.prompt[:80]}"
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        base = super().flags(index)
        return base | Qt.ItemFlag.ItemIsDragEnabled if index.isValid() else base

    def mimeTypes(self) -> list[str]:
        return ["text/uri-list"]

    def mimeData(self, indexes) -> QMimeData:
        """File URLs of the dragged items (metadata intact), and the picture itself for one image."""
        items = [self.item_at(index.row()) for index in indexes if index.isValid()]
        items = [item for item in items if item is not None and item.path.is_file()]
        mime = QMimeData()
        # A melody's MIDI file goes along with its audio: drop both into a DAW.
        files = [path for item in items for path in (item.path, *item.attachments) if path.is_file()]
        mime.setUrls([QUrl.fromLocalFile(str(path)) for path in files])
        if len(items) == 1 and items[0].kind == "image":
            from PySide6.QtGui import QImage

            image = QImage(str(items[0].path))
            if not image.isNull():
                mime.setImageData(image)
        return mime

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction

    def _thumbnail_ready(self, item_id: str) -> None:
        row = self._rows.get(item_id)
        if row is not None:
            index = self.index(row)
            self.dataChanged.emit(index, index, [ThumbnailRole])

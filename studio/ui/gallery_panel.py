"""The Gallery tab: every saved output, newest first, with search."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

_PAGE = 500  # items listed at once; the full virtualised grid is the gallery issue's


class GalleryPanel(QWidget):
    # The user opened an item (double-click); the window decides where it shows.
    open_requested = Signal(object)

    def __init__(self, services, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.services = services
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search prompts and models")
        self.search.setAccessibleName("search gallery")
        self.search.setToolTip("Words from a prompt or a model name")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self.refresh)
        self.kind = QComboBox()
        self.kind.setAccessibleName("kind filter")
        self.kind.setToolTip("Show one kind of output")
        for label, value in (("All", ""), ("Text", "text"), ("Images", "image"), ("Music", "music")):
            self.kind.addItem(label, value)
        self.kind.currentIndexChanged.connect(self.refresh)
        self.items = QListWidget()
        self.items.setAccessibleName("gallery items")
        self.items.setToolTip("Saved outputs, newest first; double-click opens one (music plays in the Music tab)")
        self.items.currentItemChanged.connect(self._show_details)
        self.items.itemDoubleClicked.connect(self._open)
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setAccessibleName("item details")
        self.details.setToolTip("Where the selected output came from")
        self.count_label = QLabel()
        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.kind)
        top.addWidget(self.count_label)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.items)
        splitter.addWidget(self.details)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(splitter, 1)
        self.refresh()

    def refresh(self, *_args: object) -> None:
        found = self.services.store.list(
            kind=self.kind.currentData() or None, search=self.search.text() or None, limit=_PAGE
        )
        self.items.clear()
        for item in found:
            prompt = item.record.prompt.replace("\n", " ")
            entry = QListWidgetItem(f"{item.kind:<5}  {item.record.created_at[:16].replace('T', ' ')}  {prompt[:80]}")
            entry.setData(Qt.ItemDataRole.UserRole, item)
            entry.setToolTip(str(item.path))
            self.items.addItem(entry)
        self.count_label.setText(f"{len(found)} shown")

    def _show_details(self, current: QListWidgetItem | None, _previous: object = None) -> None:
        if current is None:
            self.details.clear()
            return
        item = current.data(Qt.ItemDataRole.UserRole)
        record = item.record
        lines = [
            f"Prompt: {record.prompt}",
            f"Model: {record.model.get('name', '')} ({record.model.get('family', '')})",
            f"Seed: {record.seed}",
            f"Made: {record.created_at}",
            f"Device: {record.runtime.get('name', '')} ({record.runtime.get('dtype', '')})",
            f"File: {item.path}",
        ]
        settings = {k: v for k, v in record.request.items() if k not in ("prompt", "model", "seed", "kind")}
        lines += [f"{key}: {value}" for key, value in settings.items() if value not in ("", [], None)]
        self.details.setPlainText("\n".join(lines))

    def _open(self, entry: QListWidgetItem) -> None:
        self.open_requested.emit(entry.data(Qt.ItemDataRole.UserRole))

"""The files a training run would learn from, and for images the caption editor: each picture's
caption as the summary found it (the gallery prompt, a ``.txt`` beside the file, the file name),
editable; the edits go into ``TrainRequest.captions`` and win over every other source."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QImageReader, QPalette, QPixmap
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QPlainTextEdit, QVBoxLayout, QWidget

from studio.core.training import DataSummary, TrainingFile

_PATH_ROLE = Qt.ItemDataRole.UserRole
PICTURE = 150  # the side of the selected picture above its caption
_SOURCES = {
    "editor": "typed here",
    "gallery": "from the gallery prompt",
    "txt": "from the .txt beside the file",
    "filename": "from the file name",
    "": "none yet",
}


class CaptionEditor(QWidget):
    """The list of files and, when ``captions_shown``, the caption of the selected one."""

    # A caption was edited: the request changes (the summary need not be read again).
    edited = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._files: dict[str, TrainingFile] = {}
        self.edits: dict[str, str] = {}  # path → caption typed here
        self._current = ""
        self._filling = False
        self.title = QLabel("Files")
        self.list = QListWidget()
        self.list.setAccessibleName("training files")
        self.list.setToolTip("The files the run learns from; those that cannot be read are greyed, with why")
        self.list.currentItemChanged.connect(self._selected)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.picture = QLabel()
        self.picture.setAccessibleName("selected picture")
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setFixedHeight(PICTURE + 8)
        self.caption_label = QLabel("Caption")
        self.caption = QPlainTextEdit()
        self.caption.setAccessibleName("caption")
        self.caption.setToolTip("What this picture shows, in the words you will prompt with; your edit wins")
        self.caption.setPlaceholderText("Select a picture to see and edit its caption")
        self.caption.setFixedHeight(self.caption.fontMetrics().lineSpacing() * 4 + 14)
        self.caption.textChanged.connect(self._caption_changed)
        self.caption.setEnabled(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.picture)
        layout.addWidget(self.caption_label)
        layout.addWidget(self.caption)
        self.set_captions_shown(False)

    def set_captions_shown(self, shown: bool) -> None:
        self.picture.setVisible(shown)
        self.caption_label.setVisible(shown)
        self.caption.setVisible(shown)

    def show_summary(self, summary: DataSummary | None) -> None:
        """List the summary's files (and those left out, greyed); edits of files still listed stay."""
        self._filling = True
        self.list.clear()
        self._files = {f.path: f for f in summary.files} if summary is not None else {}
        self.edits = {path: text for path, text in self.edits.items() if path in self._files}
        if summary is not None:
            for file in summary.files:
                entry = QListWidgetItem(self._label(file))
                entry.setData(_PATH_ROLE, file.path)
                entry.setToolTip(file.path)
                self.list.addItem(entry)
            grey = self.palette().color(QPalette.ColorRole.PlaceholderText)
            for path, why in summary.unreadable:
                entry = QListWidgetItem(f"{Path(path).name} — {why}")
                entry.setData(_PATH_ROLE, "")
                entry.setToolTip(f"{path}: {why}")
                entry.setForeground(QColor(grey))
                entry.setFlags(entry.flags() & ~Qt.ItemFlag.ItemIsSelectable)
                self.list.addItem(entry)
        count = len(self._files)
        _set_text(self.title, f"Files · {count}" if count else "Files")
        self._filling = False
        self._current = ""
        self.caption.blockSignals(True)
        self.caption.clear()
        self.caption.blockSignals(False)
        self.caption.setEnabled(False)
        if count:
            self.list.setCurrentRow(0)

    def _label(self, file: TrainingFile) -> str:
        name = Path(file.path).name
        if file.width and file.height:
            name += f" · {file.width}×{file.height}"
        elif file.units:
            name += f" · {file.units:,} {'notes' if file.medium == 'music' else 'characters'}"
        caption = self.edits.get(file.path, file.caption)
        if self.caption.isVisible() or caption:
            name += f" — {caption[:60]}" if caption else " — no caption"
        return name

    def select(self, path: str) -> bool:
        for row in range(self.list.count()):
            if self.list.item(row).data(_PATH_ROLE) == path:
                self.list.setCurrentRow(row)
                return True
        return False

    def _selected(self, current: QListWidgetItem | None, _previous: object = None) -> None:
        if self._filling:
            return
        path = str(current.data(_PATH_ROLE) or "") if current is not None else ""
        self._current = path
        file = self._files.get(path)
        self.caption.blockSignals(True)
        self.caption.setPlainText(self.edits.get(path, file.caption) if file is not None else "")
        self.caption.blockSignals(False)
        self.caption.setEnabled(file is not None)
        self._show_picture(path if file is not None and file.medium == "image" else "")
        source = "editor" if path in self.edits else (file.caption_source if file is not None else "")
        _set_text(self.caption_label, f"Caption · {_SOURCES.get(source, source)}" if file is not None else "Caption")

    def _show_picture(self, path: str) -> None:
        """The selected picture, read at its shown size (one small decode, as the gallery's preview)."""
        if not path or not self.picture.isVisible():
            self.picture.clear()
            return
        reader = QImageReader(path)
        size = reader.size()
        if size.isValid() and (size.width() > PICTURE or size.height() > PICTURE):
            reader.setScaledSize(size.scaled(QSize(PICTURE, PICTURE), Qt.AspectRatioMode.KeepAspectRatio))
        image = reader.read()
        if image.isNull():
            self.picture.setText(f"Cannot show {Path(path).name}")
        else:
            self.picture.setPixmap(QPixmap.fromImage(image))

    def _caption_changed(self) -> None:
        file = self._files.get(self._current)
        if file is None:
            return
        text = self.caption.toPlainText()
        if text == file.caption:
            self.edits.pop(file.path, None)
        else:
            self.edits[file.path] = text
        current = self.list.currentItem()
        if current is not None:
            label = self._label(file)
            if current.text() != label:
                current.setText(label)
        source = "editor" if file.path in self.edits else file.caption_source
        _set_text(self.caption_label, f"Caption · {_SOURCES.get(source, source)}")
        self.edited.emit()

    def captions(self) -> tuple[tuple[str, str], ...]:
        """The captions typed here, by file path (for ``TrainRequest.captions``)."""
        return tuple(sorted(self.edits.items()))


def _set_text(label: QLabel, text: str) -> None:
    if label.text() != text:
        label.setText(text)

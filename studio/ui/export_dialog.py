"""The export dialog: folder, format, with metadata or stripped, and a file-name pattern."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QWidget,
)

from studio.core.errors import StudioError
from studio.gallery.export import DEFAULT_PATTERN, FORMATS, ExportOptions, export_items, render_name, safe_filename
from studio.ui.widgets.controls import button


class ExportDialog(QDialog):
    def __init__(self, items: list, credentials, settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Export {len(items)} item(s)")
        self.items = items
        self.credentials = credentials
        self.settings = settings
        self.summary = ""
        self.written: list[Path] = []
        self.folder = QLineEdit(str(Path.home() / "Pictures" if len({i.kind for i in items}) == 1 else Path.home()))
        self.folder.setAccessibleName("export folder")
        self.folder.setToolTip("Where the files go")
        choose = button("Choose…", "choose export folder", "Pick the folder", self._choose)
        self.format = QComboBox()
        self.format.setAccessibleName("export format")
        self.format.setToolTip("Keep each file's own format, or convert")
        self.format.addItem("Keep each file's format", "")
        kinds = {item.kind for item in items}
        if len(kinds) == 1:
            for suffix in FORMATS[kinds.pop()]:
                self.format.addItem(suffix.lstrip(".").upper(), suffix)
        self.metadata = QCheckBox("Keep metadata (prompt, settings, provenance, content credentials)")
        self.metadata.setChecked(True)
        self.metadata.setAccessibleName("keep metadata")
        self.metadata.setToolTip("Off strips everything but the AI-generated marking, for sharing")
        self.pattern = QLineEdit(DEFAULT_PATTERN)
        self.pattern.setAccessibleName("file name pattern")
        self.pattern.setToolTip("{date} {time} {prompt} {seed} {model} {id} {kind}")
        self.example = QLabel()
        self.example.setAccessibleName("file name example")
        self.pattern.textChanged.connect(self._show_example)
        self.format.currentIndexChanged.connect(self._show_example)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(choose)
        form = QFormLayout(self)
        form.addRow("Folder", row)
        form.addRow("Format", self.format)
        form.addRow("", self.metadata)
        form.addRow("File names", self.pattern)
        form.addRow("", self.example)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.run)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.error = QLabel()
        self.error.setWordWrap(True)
        form.addRow(self.error)
        self._show_example()

    def options(self) -> ExportOptions:
        return ExportOptions(
            folder=Path(self.folder.text()).expanduser(),
            suffix=str(self.format.currentData() or ""),
            with_metadata=self.metadata.isChecked(),
            pattern=self.pattern.text() or DEFAULT_PATTERN,
            sign=bool(self.settings.get("sign_outputs")),
        )

    def run(self) -> None:
        try:
            self.written = export_items(self.items, self.options(), self.credentials)
        except StudioError as exc:
            self.error.setText(str(exc))
            return
        self.summary = f"Exported {len(self.written)} file(s) to {self.options().folder}."
        self.accept()

    def _choose(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export to", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def _show_example(self, *_args: object) -> None:
        item = self.items[0]
        suffix = self.format.currentData() or item.path.suffix
        self.example.setText(safe_filename(render_name(self.pattern.text(), item), suffix))

"""The model manager: every model Studio can find, what it is, whether it can run and why not;
add or remove folders, read the model card, allow pickle weights, and set per-model defaults."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QProcess, QProcessEnvironment, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QMessageBox,
    QProgressBar,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from studio.core.models import ModelSpec, starting_defaults, suggested_defaults
from studio.core.requests import REQUEST_TYPES, field_limit
from studio.core.settings import Settings
from studio.runtime.download_manager import download_command, download_environment, parse_line
from studio.runtime.services import make_catalog
from studio.ui.model_card_view import show_card
from studio.ui.model_sources import ModelSourcesBox
from studio.ui.widgets.adapter_list import AdapterPreview, adapter_summary, models_then_adapters
from studio.ui.widgets.controls import button, double_spin_for

if TYPE_CHECKING:
    from studio.runtime.services import Services

# The parameters a model can start with, by kind; their ranges, steps and labels are the
# limits the requests declare (``studio.core.requests``).
DEFAULT_PARAMETERS: dict[str, tuple[str, ...]] = {
    "image": ("steps", "guidance"),
    "text": ("temperature", "max_tokens"),
    "music": ("duration", "guidance"),
}
# Status right after the name: whether a model can run is the first thing to see, never off-screen.
_COLUMNS = ("Name", "Status", "Kind", "Family", "Size", "Dtype", "Licence", "Source")


def format_size(size: int) -> str:
    amount = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if amount < 1024 or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GB"


def model_defaults(settings: Settings, spec: ModelSpec) -> dict[str, float]:
    """What a model starts with: the user's saved defaults, else what its kind of model needs."""
    return starting_defaults(settings.get("model_defaults"), str(spec.path), suggested_defaults(spec))


def default_editor(kind: str, name: str, value: float | None = None) -> QDoubleSpinBox:
    """The editor of one per-model default: the range, step and label the request of ``kind`` declares
    for ``name``, with one step below the lowest value meaning "not set" (the tab keeps its own)."""
    request_cls = REQUEST_TYPES[kind]
    declared = field_limit(request_cls, name)
    decimals = 0 if declared.integer else 2
    label = declared.label.lower() + (f" ({declared.unit})" if declared.unit else "")
    box = double_spin_for(
        request_cls,
        name,
        f"The {label} this model starts with (lowest = leave the tab's own)",
        decimals=decimals,
        name=f"default {label}",
    )
    box.setSpecialValueText("tab's own")  # the minimum means "not set": the tab keeps its value
    box.setMinimum(box.minimum() - declared.step)
    box.setValue(box.minimum() if value is None else float(value))
    return box


class ModelManager(QDialog):
    models_changed = Signal()

    def __init__(self, services: Services, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.resize(1180, 680)
        self.services = services
        self.settings = services.settings
        self.specs: list[ModelSpec] = []
        self.table = QTableWidget(0, len(_COLUMNS))
        self.table.setHorizontalHeaderLabels(_COLUMNS)
        self.table.setAccessibleName("models")
        self.table.setToolTip("Every model Studio found: bundled, in the Hugging Face cache and in your folders")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        # A long "cannot run: …" would push every other column off-screen: the status column keeps a
        # fixed width, and the whole reason is in its tooltip and under the table.
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)
        self.table.setColumnWidth(1, 150)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        self.table.currentCellChanged.connect(lambda *_: self._show_selected())
        self.add_button = button("Add folder…", "add model folder", "Search another folder for models", self.add_folder)
        self.remove_button = button(
            "Remove folder",
            "remove model folder",
            "Stop searching the folder holding this model",
            self.remove_folder,
        )
        self.reveal_button = button("Reveal", "reveal model", "Open the model folder in the file manager", self.reveal)
        self.pickle_button = button(
            "Allow pickle weights…",
            "allow pickle weights",
            "Load its .bin/.ckpt weights anyway",
            self.toggle_pickle,
        )
        self.download_button = button(
            "Download…", "download model", "Download a model from Hugging Face (online mode only)", self.ask_download
        )
        self.download_progress = QProgressBar()
        self.download_progress.setAccessibleName("download progress")
        self.download_progress.setToolTip("Bytes of the current file")
        self.download_progress.setVisible(False)
        self._download: QProcess | None = None
        self._download_buffer = ""
        self._download_result = ""
        self._download_error = ""
        self.card = QTextBrowser()
        self.card.setOpenExternalLinks(True)
        self.card.setAccessibleName("model card")
        self.card.setToolTip("The model card (README.md): its data, licence and intended use")
        self.defaults_box = QGroupBox("Starts with")
        self.defaults_form = QFormLayout(self.defaults_box)
        self.default_fields: dict[str, QDoubleSpinBox] = {}
        self.save_defaults_button = button(
            "Save defaults",
            "save model defaults",
            "Use these whenever this model is chosen",
            self.save_defaults,
        )
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setAccessibleName("model status")
        buttons = QHBoxLayout()
        for widget in (
            self.add_button,
            self.remove_button,
            self.reveal_button,
            self.pickle_button,
            self.download_button,
        ):
            buttons.addWidget(widget)
        buttons.addWidget(self.download_progress, 1)
        buttons.addStretch(1)
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.addWidget(self.status)
        self.adapter_preview = AdapterPreview()
        side_layout.addWidget(self.adapter_preview)
        side_layout.addWidget(self.defaults_box)
        side_layout.addWidget(self.save_defaults_button)
        self.sources_box = ModelSourcesBox(self.settings, self.refresh)
        side_layout.addWidget(self.sources_box)
        side_layout.addWidget(QLabel("Model card"))
        side_layout.addWidget(self.card, 1)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.table)
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([700, 460])
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(splitter, 1)
        self.refresh()

    # -- listing ------------------------------------------------------------------

    def refresh(self) -> None:
        self.specs = models_then_adapters(make_catalog(self.settings).discover())
        self.table.setRowCount(len(self.specs))
        for row, spec in enumerate(self.specs):
            status = "ready" if spec.runnable else f"cannot run: {spec.reason}"
            values = (
                spec.name,
                status,
                spec.kind or "?",
                spec.family,
                format_size(int(spec.details.get("size_bytes", 0))),
                str(spec.details.get("dtype", "")),
                str(spec.details.get("licence", "")),
                spec.source,
            )
            for column, value in enumerate(values):
                cell = QTableWidgetItem(value)
                cell.setToolTip(f"{spec.path}\n{status}")
                self.table.setItem(row, column, cell)
        if self.specs and self.table.currentRow() < 0:
            self.table.selectRow(0)
        self._show_selected()

    def selected(self) -> ModelSpec | None:
        row = self.table.currentRow()
        return self.specs[row] if 0 <= row < len(self.specs) else None

    def select_path(self, path: Path) -> None:
        for row, spec in enumerate(self.specs):
            if spec.path == Path(path):
                self.table.selectRow(row)
                return

    def _show_selected(self) -> None:
        spec = self.selected()
        has = spec is not None
        self.reveal_button.setEnabled(has)
        self.remove_button.setEnabled(has and self._user_folder_of(spec) is not None)
        allowed = bool(spec is not None and spec.details.get("pickle_allowed"))
        self.pickle_button.setEnabled(allowed or (spec is not None and "pickle" in spec.reason))
        self.pickle_button.setText("Refuse pickle weights" if allowed else "Allow pickle weights…")
        self._build_defaults(spec)
        self.adapter_preview.show_spec(spec)
        if spec is None:
            self.card.clear()
            self.status.setText("No models found yet: Add folder… or put models in the Hugging Face cache.")
            return
        self.status.setText(
            f"{spec.name}: {spec.kind or 'unknown'} model ({spec.family}), "
            + ("ready to use." if spec.runnable else f"cannot run: {spec.reason}.")
            + f"\n{spec.path}"
            + (f"\n{adapter_summary(spec)}" if adapter_summary(spec) else "")
            + (f"\n{training_summary(spec)}" if training_summary(spec) else "")
        )
        show_card(self.card, spec.path)

    def _build_defaults(self, spec: ModelSpec | None) -> None:
        while self.defaults_form.rowCount():
            self.defaults_form.removeRow(0)
        self.default_fields = {}
        parameters = DEFAULT_PARAMETERS.get(spec.kind, ()) if spec is not None else ()
        values = model_defaults(self.settings, spec) if spec is not None else {}
        for name in parameters:
            assert spec is not None
            box = default_editor(spec.kind, name, values.get(name))
            declared = field_limit(REQUEST_TYPES[spec.kind], name)
            self.defaults_form.addRow(declared.label + (f" ({declared.unit})" if declared.unit else ""), box)
            self.default_fields[name] = box
        self.defaults_box.setEnabled(bool(parameters))
        self.save_defaults_button.setEnabled(bool(parameters))

    # -- actions ------------------------------------------------------------------

    def add_folder(self, folder: str | None = None) -> None:
        folder = folder or QFileDialog.getExistingDirectory(self, "Add a folder of models")
        if not folder:
            return
        folders = self.settings.get("model_folders")
        resolved = str(Path(folder).expanduser().resolve())
        if resolved not in folders:
            folders.append(resolved)
            self._save("model_folders", folders)
        self.refresh()
        found = [s for s in self.specs if str(s.path).startswith(resolved)]
        self.status.setText(f"Added {resolved}: {len(found)} model(s) found.")

    def remove_folder(self) -> None:
        folder = self._user_folder_of(self.selected())
        if folder is None:
            return
        self._save("model_folders", [f for f in self.settings.get("model_folders") if f != folder])
        self.refresh()
        self.status.setText(f"Studio no longer searches {folder} (nothing was deleted).")

    def reveal(self) -> None:
        spec = self.selected()
        if spec is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(spec.path)))

    def toggle_pickle(self, confirmed: bool = False) -> None:
        spec = self.selected()
        if spec is None:
            return
        allowed = self.settings.get("allow_pickle_models")
        path = str(spec.path.resolve())
        if path in allowed:
            self._save("allow_pickle_models", [p for p in allowed if p != path])
        else:
            if not confirmed:
                answer = QMessageBox.warning(
                    self,
                    "Allow pickle weights?",
                    f"{spec.name} has only pickle weights (.bin/.ckpt/.pt). Loading a pickle file can run any "
                    "program on this computer. Allow it only for a model from a source you trust.",
                    QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                    QMessageBox.StandardButton.No,
                )
                if answer != QMessageBox.StandardButton.Yes:
                    return
            self._save("allow_pickle_models", [*allowed, path])
        self.refresh()
        self.select_path(spec.path)

    def save_defaults(self) -> None:
        spec = self.selected()
        if spec is None:
            return
        request_cls = REQUEST_TYPES[spec.kind]
        values: dict[str, float] = {}
        for name, box in self.default_fields.items():
            if box.value() < box.minimum() + box.singleStep() / 2:  # the minimum means "not set"
                continue
            values[name] = round(box.value()) if field_limit(request_cls, name).integer else box.value()
        defaults = self.settings.get("model_defaults")
        defaults[str(spec.path)] = values
        if not values:
            defaults.pop(str(spec.path))
        self._save("model_defaults", defaults)
        self.status.setText(f"{spec.name} starts with {values or 'the tab settings'}.")

    # -- downloads (online mode) ----------------------------------------------------

    def ask_download(self) -> None:
        if not self.settings.get("online"):
            self.status.setText(
                "Online mode is off, so Studio opens no connection. Turn it on in the settings to download models."
            )
            return
        repo_id, ok = QInputDialog.getText(self, "Download from Hugging Face", "Repo id (owner/name):")
        if ok and repo_id.strip():
            self.start_download(repo_id.strip())

    def start_download(self, repo_id: str) -> None:
        if self._download is not None or not self.settings.get("online"):
            return
        command = download_command(repo_id)
        process = QProcess(self)
        environment = QProcessEnvironment()
        for key, value in download_environment().items():
            environment.insert(key, value)
        process.setProcessEnvironment(environment)
        process.readyReadStandardOutput.connect(self._download_output)
        process.finished.connect(lambda *_: self._download_finished(repo_id))
        self._download, self._download_buffer, self._download_result, self._download_error = process, "", "", ""
        self.download_button.setEnabled(False)
        self.download_progress.setVisible(True)
        self.download_progress.setRange(0, 0)
        self.status.setText(f"Downloading {repo_id}…")
        process.start(command[0], command[1:])

    def _download_output(self) -> None:
        assert self._download is not None
        self._download_buffer += bytes(self._download.readAllStandardOutput().data()).decode("utf-8", "replace")
        *lines, self._download_buffer = self._download_buffer.split("\n")
        for line in lines:
            event = parse_line(line)
            if event is None:
                continue
            if event["event"] == "progress" and int(event.get("total", 0)) > 0:
                total = int(event["total"])
                scale = max(1, total // 1_000_000)  # a progress bar holds an int: count in megabytes when big
                self.download_progress.setRange(0, total // scale)
                self.download_progress.setValue(int(event.get("done", 0)) // scale)
                self.download_progress.setFormat(f"{event.get('what', '')} %p%")
            elif event["event"] == "done":
                self._download_result = str(event.get("path", ""))
            elif event["event"] == "error":
                self._download_error = str(event.get("message", ""))

    def _download_finished(self, repo_id: str) -> None:
        self._download_output()
        self._download = None
        self.download_button.setEnabled(True)
        self.download_progress.setVisible(False)
        if self._download_result:
            self.refresh()
            self.select_path(Path(self._download_result))
            self.models_changed.emit()
            self.status.setText(f"Downloaded {repo_id}; it is in the Hugging Face cache and ready.")
        else:
            self.status.setText(f"Download of {repo_id} failed: {self._download_error or 'no result'}")

    def _user_folder_of(self, spec: ModelSpec | None) -> str | None:
        if spec is None or spec.source != "folder":
            return None
        for folder in self.settings.get("model_folders"):
            if spec.path == Path(folder) or Path(folder) in spec.path.parents:
                return str(folder)
        return None

    def _save(self, name: str, value: Any) -> None:
        self.settings.set(name, value)
        try:
            self.settings.save()
        except OSError as exc:
            self.status.setText(f"Could not save the settings: {exc}")
        self.models_changed.emit()


def training_summary(spec: ModelSpec) -> str:
    """What a model or adapter trained in Studio learned from, as its card says: one line, or ""."""
    training = spec.details.get("training")
    if not isinstance(training, dict) or not training.get("data_digest"):
        return ""
    lineage: dict[str, Any] = training["lineage"] if isinstance(training.get("lineage"), dict) else {}
    who = "you" if lineage.get("trained_by", "user") == "user" else str(lineage.get("trained_by"))
    files = int(training.get("files") or 0)
    base: dict[str, Any] = training["base"] if isinstance(training.get("base"), dict) else {}
    noun = "file" if files == 1 else "files"
    line = f"Trained by {who} on {files:,} {noun} (data digest {str(training['data_digest'])[:12]}…)"
    if base.get("name"):
        line += f" from {base['name']}"
    if training.get("rights"):
        line += f"; rights: {training['rights']}"
    return line + "."

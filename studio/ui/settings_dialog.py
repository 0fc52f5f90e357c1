"""Settings, built from the declared settings: pages of them (General, Appearance, Generation &
device, Privacy & provenance, Models, Online), one control per setting with its description.

Values are checked by the same rule that loading uses; an invalid one is named and the dialog
stays open. The app's own state (window state, last models…) is not shown. Options that only a
GPU uses are greyed out, with the reason, on a computer without one.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from studio.core.errors import StudioError
from studio.core.settings import Setting, Settings
from studio.gallery.relocate import GalleryChoice, choose_gallery_folder
from studio.ui.widgets.controls import button

if TYPE_CHECKING:
    from studio.core.paths import StudioPaths

# Which page each setting is on, in the order the pages show; a new setting with no page goes on General.
PAGES: dict[str, tuple[str, ...]] = {
    "General": (),
    "Appearance": ("theme",),
    "Generation & device": ("device", "memory_mode", "precision", "compile_models"),
    "Privacy & provenance": ("embed_prompts", "sign_outputs", "ai_training"),
    "Models": ("model_folders", "allow_pickle_models"),
    "Online": ("online",),
    "Cluster": ("run_on", "cluster_address", "cluster_workers", "cluster_if_lost"),
}
# Settings only a GPU uses: greyed out on a computer without one.
GPU_ONLY = ("memory_mode", "precision", "compile_models")
NO_GPU_REASON = "This computer has no GPU that Studio can use, so models run on the CPU and this does not apply."


class SettingsDialog(QDialog):
    applied = Signal(list)  # names of the settings that changed

    def __init__(
        self,
        settings: Settings,
        parent: QWidget | None = None,
        *,
        device_info: dict[str, Any] | None = None,
        paths: StudioPaths | None = None,
        gallery_root: Path | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.resize(760, 520)
        self.settings = settings
        self.controls: dict[str, QWidget] = {}
        self.gallery_root = gallery_root or (paths.gallery if paths is not None else None)
        self.gallery_choice: GalleryChoice | None = None
        self.page_names = list(PAGES)
        self.sections = QListWidget()
        self.sections.setAccessibleName("settings pages")
        self.sections.setToolTip("Pages of settings")
        self.sections.addItems(self.page_names)
        self.sections.setFixedWidth(190)
        self.pages = QStackedWidget()
        forms: dict[str, QFormLayout] = {}
        for name in self.page_names:
            page = QWidget()
            column = QVBoxLayout(page)
            title = QLabel(f"<h3>{name}</h3>")
            column.addWidget(title)
            form = QFormLayout()
            column.addLayout(form)
            column.addStretch(1)
            forms[name] = form
            self.pages.addWidget(page)
        self.sections.currentRowChanged.connect(self.pages.setCurrentIndex)
        if paths is not None:
            self._folders_rows(forms["General"], paths)
        page_of = {setting: page for page, names in PAGES.items() for setting in names}
        # Known to have no GPU only once the worker said so: before that, nothing is greyed out.
        no_gpu = device_info is not None and device_info.get("gpu_available") is False
        for setting in sorted(
            (s for s in Settings.declared() if not s.internal),
            key=lambda s: PAGES.get(page_of.get(s.name, "General"), ()).index(s.name) if s.name in page_of else 99,
        ):
            control = self._control(setting)
            control.setAccessibleName(setting.label)
            control.setToolTip(setting.description)
            self.controls[setting.name] = control
            description = QLabel(setting.description)
            description.setWordWrap(True)
            description.setAccessibleName(f"{setting.label} description")
            description.setObjectName("settingDescription")
            box = QWidget()
            column = QVBoxLayout(box)
            column.setContentsMargins(0, 0, 0, 8)
            column.addWidget(control)
            column.addWidget(description)
            if no_gpu and setting.name in GPU_ONLY:
                control.setEnabled(False)
                control.setToolTip(NO_GPU_REASON)
            form = forms[page_of.get(setting.name, "General")]
            if isinstance(control, QCheckBox):
                form.addRow(box)  # the check box carries the label itself: said once
            else:
                form.addRow(setting.label, box)
        if no_gpu:  # said once, above the options it greys out
            note = QLabel(NO_GPU_REASON.replace("this does not apply", "the GPU options below do not apply"))
            note.setWordWrap(True)
            note.setAccessibleName("no GPU")
            forms["Generation & device"].insertRow(0, note)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setAccessibleName("settings error")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.apply)
        buttons.rejected.connect(self.reject)
        body = QHBoxLayout()
        body.addWidget(self.sections)
        body.addWidget(self.pages, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(body, 1)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.sections.setCurrentRow(0)

    def show_page(self, number_or_name: int | str) -> None:
        number = self.page_names.index(number_or_name) if isinstance(number_or_name, str) else number_or_name
        self.sections.setCurrentRow(number)

    def _folders_rows(self, form: QFormLayout, paths: StudioPaths) -> None:
        """Where Studio keeps things, each with a button that opens the folder."""
        gallery_row = QHBoxLayout()
        self.gallery_label = QLabel(str(self.gallery_root))
        self.gallery_label.setWordWrap(True)
        self.gallery_label.setAccessibleName("gallery folder")
        self.gallery_note = QLabel()
        self.gallery_note.setWordWrap(True)
        self.gallery_note.setAccessibleName("gallery folder change")
        gallery_row.addWidget(self.gallery_label, 1)
        gallery_row.addWidget(
            button(
                "Change…",
                "change gallery folder",
                "Move the gallery to an empty folder, or use a folder that already holds a Studio gallery",
                self._ask_gallery_folder,
            )
        )
        gallery = self.gallery_root
        if gallery is not None:
            gallery_row.addWidget(
                button("Open", "open gallery folder", "Open the gallery folder", partial(_open_folder, gallery))
            )
        form.addRow("Gallery", gallery_row)
        form.addRow("", self.gallery_note)
        for label, folder in (
            ("Logs", paths.logs),
            ("Settings", paths.config),
            ("Cache", paths.cache),
        ):
            row = QHBoxLayout()
            shown = QLabel(str(folder))
            shown.setWordWrap(True)
            shown.setAccessibleName(f"{label} folder")
            row.addWidget(shown, 1)
            row.addWidget(
                button(
                    "Open",
                    f"open {label.lower()} folder",
                    f"Open the {label.lower()} folder in the file manager",
                    partial(_open_folder, folder),
                )
            )
            form.addRow(label, row)

    def _ask_gallery_folder(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        folder = QFileDialog.getExistingDirectory(self, "Where the gallery goes")
        if folder:
            self.choose_gallery_folder(Path(folder))

    def choose_gallery_folder(self, target: Path) -> GalleryChoice | None:
        """Say what choosing ``target`` does (move there, or adopt the gallery there); it happens
        at the next start, when nothing has the gallery open. None (and why) when refused."""
        if self.gallery_root is None:
            return None
        try:
            choice = choose_gallery_folder(self.gallery_root, target)
        except StudioError as exc:
            self.gallery_choice = None
            self.gallery_note.setText(str(exc))
            return None
        self.gallery_choice = None if choice.action == "same" else choice
        notes = {
            "same": "That is where the gallery is now.",
            "move": f"When Studio starts next, the gallery moves to {choice.target}: every file is copied and "
            "checked before the old ones are removed.",
            "adopt": f"{choice.target} holds a Studio gallery: Studio uses it from the next start. The current "
            f"gallery stays in {self.gallery_root}.",
        }
        self.gallery_note.setText(notes[choice.action])
        return choice

    def _control(self, setting: Setting) -> QWidget:
        value = self.settings.get(setting.name)
        if setting.choices:
            combo = QComboBox()
            for choice in setting.choices:
                combo.addItem(str(choice).replace("_", " "), choice)
            combo.setCurrentIndex(max(0, combo.findData(value)))
            return combo
        if isinstance(setting.default, bool):
            check = QCheckBox(setting.label)
            check.setChecked(bool(value))
            return check
        if isinstance(setting.default, list):
            edit = QPlainTextEdit("\n".join(str(v) for v in value))
            edit.setPlaceholderText("one per line")
            edit.setMaximumHeight(90)
            return edit
        if isinstance(setting.default, int):
            spin = QSpinBox()
            spin.setRange(1, 64)
            spin.setValue(int(value))
            return spin
        if isinstance(setting.default, str):
            line = QLineEdit(str(value))
            line.setPlaceholderText(str(setting.default))
            return line
        raise TypeError(f"no control for setting {setting.name}")

    def value_of(self, name: str) -> Any:
        control = self.controls[name]
        if isinstance(control, QComboBox):
            return control.currentData()
        if isinstance(control, QCheckBox):
            return control.isChecked()
        if isinstance(control, QPlainTextEdit):
            return [line.strip() for line in control.toPlainText().splitlines() if line.strip()]
        if isinstance(control, QSpinBox):
            return control.value()
        if isinstance(control, QLineEdit):
            return control.text().strip()
        raise TypeError(name)

    def apply(self) -> bool:
        """Check every value, then save them all; False (and the reason shown) when one is invalid."""
        by_name = {s.name: s for s in Settings.declared()}
        values = {name: self.value_of(name) for name in self.controls}
        for name, value in values.items():
            if not by_name[name].accepts(value):
                self.error.setText(f"{by_name[name].label}: {value!r} is not a valid value.")
                return False
        if self.gallery_choice is not None and self.gallery_root is not None:
            values["gallery_folder"] = str(self.gallery_choice.target)
            values["gallery_move_from"] = str(self.gallery_root) if self.gallery_choice.action == "move" else ""
        changed = [name for name, value in values.items() if self.settings.get(name) != value]
        for name in changed:
            self.settings.set(name, values[name])
        try:
            self.settings.save()
        except OSError as exc:
            self.error.setText(f"Could not save the settings: {exc}")
            return False
        self.applied.emit(changed)
        self.accept()
        return True


def _open_folder(folder: Path) -> None:
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

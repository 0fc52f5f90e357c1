"""Settings, built from the declared settings: one control per setting, with its description.

Values are checked by the same rule that loading uses; an invalid one is named and the dialog
stays open. The app's own state (window state, last models…) is not shown.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QPlainTextEdit,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from studio.core.settings import Settings


class SettingsDialog(QDialog):
    applied = Signal(list)  # names of the settings that changed

    def __init__(self, settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.resize(640, 620)
        self.settings = settings
        self.controls: dict[str, QWidget] = {}
        form_widget = QWidget()
        form = QFormLayout(form_widget)
        for setting in Settings.declared():
            if setting.internal:
                continue
            control = self._control(setting)
            control.setAccessibleName(setting.label)
            control.setToolTip(setting.description)
            self.controls[setting.name] = control
            description = QLabel(setting.description)
            description.setWordWrap(True)
            description.setAccessibleName(f"{setting.label} description")
            box = QWidget()
            column = QVBoxLayout(box)
            column.setContentsMargins(0, 0, 0, 6)
            column.addWidget(control)
            column.addWidget(description)
            form.addRow(setting.label, box)
        scroll = QScrollArea()
        scroll.setWidget(form_widget)
        scroll.setWidgetResizable(True)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setAccessibleName("settings error")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.apply)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

    def _control(self, setting) -> QWidget:
        value = self.settings.get(setting.name)
        if setting.choices:
            combo = QComboBox()
            for choice in setting.choices:
                combo.addItem(str(choice), choice)
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
        raise TypeError(f"no control for setting {setting.name}")

    def value_of(self, name: str):
        control = self.controls[name]
        if isinstance(control, QComboBox):
            return control.currentData()
        if isinstance(control, QCheckBox):
            return control.isChecked()
        if isinstance(control, QPlainTextEdit):
            return [line.strip() for line in control.toPlainText().splitlines() if line.strip()]
        raise TypeError(name)

    def apply(self) -> bool:
        """Check every value, then save them all; False (and the reason shown) when one is invalid."""
        by_name = {s.name: s for s in Settings.declared()}
        values = {name: self.value_of(name) for name in self.controls}
        for name, value in values.items():
            if not by_name[name].accepts(value):
                self.error.setText(f"{by_name[name].label}: {value!r} is not a valid value.")
                return False
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

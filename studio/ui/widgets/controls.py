"""Small, named controls the generation panels share: every one has an accessible name and a tooltip."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from PySide6.QtCore import QRegularExpression
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import QCheckBox, QDoubleSpinBox, QHBoxLayout, QLineEdit, QPushButton, QSpinBox, QWidget

from studio.core.requests import MAX_SEED


def spin(low: int, high: int, value: int, name: str, tip: str, step: int = 1) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setValue(value)
    box.setAccessibleName(name)
    box.setToolTip(tip)
    return box


def double_spin(low: float, high: float, value: float, step: float, name: str, tip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setDecimals(2)
    box.setValue(value)
    box.setAccessibleName(name)
    box.setToolTip(tip)
    return box


def button(text: str, name: str, tip: str, slot: Callable[[], object]) -> QPushButton:
    widget = QPushButton(text)
    widget.setAccessibleName(name)
    widget.setToolTip(tip)
    widget.clicked.connect(lambda _checked=False: slot())
    return widget


class SeedField(QWidget):
    """A seed and a "Random" switch. A line edit, not a spin box: seeds go past a QSpinBox's int range."""

    def __init__(self, what: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.edit = QLineEdit("0")
        self.edit.setValidator(QRegularExpressionValidator(QRegularExpression(r"\d{1,10}")))
        self.edit.setAccessibleName("seed")
        self.edit.setToolTip(f"The random seed (0 to {MAX_SEED}); the same seed and settings give the same {what}.")
        self.random = QCheckBox("Random")
        self.random.setChecked(True)
        self.random.setAccessibleName("random seed")
        self.random.setToolTip("Pick a new seed for each generation (it is saved with the result).")
        self.random.toggled.connect(lambda on: self.edit.setEnabled(not on))
        self.edit.setEnabled(False)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.random)

    def value(self) -> int | None:
        """The locked seed, or None when each generation picks its own."""
        if self.random.isChecked():
            return None
        return min(int(self.edit.text() or 0), MAX_SEED)

    def lock(self, seed: int) -> None:
        self.edit.setText(str(seed))
        self.random.setChecked(False)

    @staticmethod
    def fresh() -> int:
        return secrets.randbelow(MAX_SEED + 1)

"""Small, named controls the generation panels share: every one has an accessible name and a tooltip.

``spin_for`` and ``double_spin_for`` build the editor of a request parameter from the limit the
request declares for it (``studio.core.requests.field_limit``): its range, step and default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QRegularExpression
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import QCheckBox, QDoubleSpinBox, QHBoxLayout, QLineEdit, QPushButton, QSpinBox, QWidget

from studio.core.requests import MAX_SEED, Limit, field_limit

_INT_MAX = 2**31 - 1  # a QSpinBox holds a C int


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


def editor_range(declared: Limit, decimals: int = 0) -> tuple[float, float]:
    """The lowest and highest value an editor should offer for ``declared``: its bounds, except that
    a limit excluding its low end starts one shown unit above it (one, or 10**-decimals)."""
    low = declared.low
    if declared.above_low:
        low += 1 if declared.integer else 10.0**-decimals
    return low, declared.high


def accessible_name_of(field_name: str) -> str:
    """The accessible name of a parameter's editor: its field name in words ("max_tokens" → "max tokens")."""
    return field_name.replace("_", " ")


def _field_default(request_cls: type[Any], field_name: str) -> Any:
    for item in dataclasses.fields(request_cls):
        if item.name == field_name:
            return item.default
    raise KeyError(field_name)


def spin_for(
    request_cls: type[Any],
    field_name: str,
    /,
    tip: str,
    *,
    value: int | None = None,
    name: str | None = None,
) -> QSpinBox:
    """A spin box for the whole-number parameter ``field_name`` of ``request_cls``, with the range,
    step and default (unless ``value``) its declaration gives. ``name`` overrides the accessible name."""
    declared = field_limit(request_cls, field_name)
    if not declared.integer:
        raise TypeError(f"{request_cls.__name__}.{field_name} is not a whole number: use double_spin_for")
    low, high = editor_range(declared)
    if low < -_INT_MAX - 1 or high > _INT_MAX:
        raise ValueError(f"{request_cls.__name__}.{field_name} goes past what a spin box holds")
    start = _field_default(request_cls, field_name) if value is None else value
    if not isinstance(start, int):
        raise ValueError(f"{request_cls.__name__}.{field_name} has no default: pass value=")
    return spin(int(low), int(high), start, name or accessible_name_of(field_name), tip, step=int(declared.step))


def double_spin_for(
    request_cls: type[Any],
    field_name: str,
    /,
    tip: str,
    *,
    value: float | None = None,
    step: float | None = None,
    decimals: int = 2,
    name: str | None = None,
) -> QDoubleSpinBox:
    """A decimal spin box for the parameter ``field_name`` of ``request_cls``, with the range, step
    (unless ``step``) and default (unless ``value``) its declaration gives, showing ``decimals`` places.
    ``name`` overrides the accessible name."""
    declared = field_limit(request_cls, field_name)
    low, high = editor_range(declared, decimals)
    start = _field_default(request_cls, field_name) if value is None else value
    if isinstance(start, bool) or not isinstance(start, (int, float)):
        raise ValueError(f"{request_cls.__name__}.{field_name} has no default: pass value=")
    box = double_spin(
        low, high, float(start), declared.step if step is None else step, name or accessible_name_of(field_name), tip
    )
    box.setDecimals(decimals)
    box.setRange(low, high)  # again: setDecimals rounds the range to the places shown
    box.setValue(float(start))
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

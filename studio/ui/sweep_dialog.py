"""The Sweep dialog: up to three axes over the current request, checked as they are typed.

Each axis is a field and its values, written as ``studio sweep`` takes them (``1,2,3``, ranges
``1-5``, ``1-10 (+3)``, ``1-2 [5]``; for *Prompt S/R* the first value is the text searched for).
Each adapter the request uses (an image's LoRAs, in the list or as ``<lora:…>`` tags; a text
job's LoRA) is one more field: its weight. The dialog says how many jobs the sweep makes, or
what is wrong, before anything is queued.
"""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from studio.core.errors import InvalidRequest
from studio.core.prompt_syntax import lora_tags
from studio.core.requests import ImageRequest, Request, TextRequest
from studio.core.sweep import ADAPTER_AXIS, Axis, adapter_label, expand, parse_axis

# (field, label, an example of values) — the fields an artist sweeps most, first.
_FIELDS = {
    "image": [
        ("seed", "Seed", "1-4"),
        ("guidance", "Guidance", "3, 5, 7.5"),
        ("steps", "Steps", "10, 20, 30"),
        ("prompt", "Prompt S/R", "red, blue, golden"),
        ("scheduler", "Scheduler", "EulerDiscreteScheduler, DPMSolverMultistepScheduler"),
        ("size", "Size", "512x512, 768x512"),
        ("strength", "Strength", "0.3, 0.5, 0.7"),
        ("negative", "Negative prompt", "blurry, text"),
        ("model", "Model", "a folder or id, another"),
    ],
    "text": [
        ("seed", "Seed", "1-3"),
        ("temperature", "Temperature", "0.5, 0.8, 1.1"),
        ("top_p", "Top p", "0.8, 0.95"),
        ("prompt", "Prompt S/R", "dawn, dusk"),
        ("model", "Model", "a folder or id"),
    ],
    "music": [
        ("seed", "Seed", "1-3"),
        ("temperature", "Temperature", "0.8, 1.0, 1.2"),
        ("guidance", "Guidance", "1, 3, 5"),
        ("duration", "Duration", "4, 8"),
        ("prompt", "Prompt S/R", "jig, reel"),
    ],
}


# What a kind's sweep ends with, besides its cells.
_GRID_WORDS = {"image": ("a grid", "grids"), "text": ("a table of the texts", "tables")}


def adapter_fields(base: Request) -> list[tuple[str, str, str]]:
    """One field per adapter ``base`` uses: (``lora:NAME``, "LoRA weight: NAME", an example)."""
    names: list[str] = []
    if isinstance(base, ImageRequest):
        names = [ref for ref, _ in base.loras]
        try:
            names += [tag.name for tag in lora_tags(base.prompt)]
        except ValueError:
            pass  # a malformed tag: the request's own check names it
    elif isinstance(base, TextRequest) and base.lora:
        names = [base.lora]
    fields, seen = [], set()
    for name in names:
        label = adapter_label(ADAPTER_AXIS + name).removeprefix("lora ")
        if label not in seen:
            seen.add(label)
            fields.append((ADAPTER_AXIS + name, f"LoRA weight: {label}", "0.2, 0.6, 1.0"))
    return fields


class SweepDialog(QDialog):
    """Choose a sweep's axes over ``base``; ``axes()`` once accepted."""

    def __init__(self, base: Request, parent: QWidget | None = None, *, unused: dict[str, str] | None = None) -> None:
        """``unused``: fields the model does not read (field → why): offered greyed out, with the reason."""
        super().__init__(parent)
        self.setWindowTitle("Sweep")
        seed = base.seed if base.seed is not None else 1
        self._base = dataclasses.replace(base, seed=seed)
        self._axes: list[Axis] = []
        fields = _FIELDS.get(base.kind, []) + adapter_fields(base)
        self._fields = fields
        form = QFormLayout()
        self._rows: list[tuple[QComboBox, QLineEdit]] = []
        for index, name in enumerate(("X", "Y", "Z")):
            field = QComboBox()
            field.setAccessibleName(f"{name} axis field")
            field.view().setMinimumWidth(240)  # the list shows whole names ("Negative prompt")
            field.addItem("—", "")
            for key, label, _ in fields:
                field.addItem(label, key)
                why = (unused or {}).get(key)
                if why:  # a sweep over a setting the model ignores would make the same image N times
                    position = field.count() - 1
                    field.model().item(position).setEnabled(False)  # type: ignore[attr-defined]
                    field.setItemData(position, why, Qt.ItemDataRole.ToolTipRole)
            values = QLineEdit()
            values.setAccessibleName(f"{name} axis values")
            values.setToolTip("Values separated by commas; ranges 1-5, 1-10 (+3), 1-2 [5]")
            if index == 0:
                field.setCurrentIndex(1)
                values.setText(f"{seed}-{seed + 3}")
            field.currentIndexChanged.connect(lambda _i, f=field, v=values: self._field_changed(f, v))
            values.textChanged.connect(self._check)
            row = QHBoxLayout()
            row.addWidget(field)
            row.addWidget(values, 1)
            form.addRow(f"{name} axis", row)
            self._rows.append((field, values))
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setAccessibleName("sweep summary")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Queue sweep")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        ends = {"image": ", and a grid with the values is one more", "text": ", and a table of them all is one more"}
        intro = QLabel(f"Vary up to three settings; every cell is an item{ends.get(base.kind, '')}.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.summary)
        layout.addWidget(self.buttons)
        self.resize(560, self.sizeHint().height())
        self._check()

    def _field_changed(self, field: QComboBox, values: QLineEdit) -> None:
        example = {key: hint for key, _, hint in self._fields}.get(field.currentData(), "")
        values.setPlaceholderText(example)
        if field.currentData() == "prompt":
            values.setPlaceholderText("the words to replace first, then what replaces them: red, blue, golden")
        self._check()

    def _check(self) -> None:
        self._axes = []
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        try:
            for field, values in self._rows:
                if field.currentData() and values.text().strip():
                    self._axes.append(parse_axis(f"{field.currentData()}={values.text()}", self._base))
            if not self._axes:
                raise InvalidRequest("sweep", "choose a field and its values for the X axis")
            cells = expand(self._base, self._axes)
        except InvalidRequest as exc:
            self.summary.setText(str(exc))
            ok.setEnabled(False)
            return
        shape = " × ".join(str(len(axis.values)) for axis in self._axes)
        grids = len(self._axes[2].values) if len(self._axes) > 2 else 1
        jobs = f"{shape} = {len(cells)}" if len(self._axes) > 1 else str(len(cells))
        one, many = _GRID_WORDS.get(self._base.kind, ("", ""))
        grid_words = one if grids == 1 else f"{grids} {many} (one per Z value)"
        then = f", then {grid_words}" if one else ""
        self.summary.setText(f"{jobs} {self._base.kind} jobs{then}")
        ok.setEnabled(True)

    def axes(self) -> list[Axis]:
        return list(self._axes)

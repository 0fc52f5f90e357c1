"""Editing the loaded clip: the region (from a drag on the waveform, fine-tuned here) and the
edits a model offers — Repaint, Extend, Cover, Add layer, Extract stem."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QGridLayout, QGroupBox, QLabel, QPushButton, QWidget

from studio.core.capabilities import Control
from studio.core.requests import MusicRequest
from studio.ui.widgets.controls import button, double_spin_for

STEMS = ("vocals", "drums", "bass", "guitar", "keyboard", "strings", "synth", "percussion", "brass", "woodwinds")


class EditBar(QGroupBox):
    """``edit_requested(edit)`` with one of ``MUSIC_EDITS``; ``edit_fields(edit)`` gives its request fields."""

    edit_requested = Signal(str)
    region_edited = Signal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Edit this clip", parent)
        self.start = double_spin_for(MusicRequest, "repaint_start", "Where the region starts (drag on the waveform)")
        self.end = double_spin_for(MusicRequest, "repaint_end", "Where the region ends (drag on the waveform)")
        for box in (self.start, self.end):
            box.setSuffix(" s")
            box.valueChanged.connect(self._region_typed)
        self.extend_left = double_spin_for(MusicRequest, "extend_left", "Seconds to add before the clip")
        self.extend_right = double_spin_for(MusicRequest, "extend_right", "Seconds to add after the clip", value=10.0)
        for box in (self.extend_left, self.extend_right):
            box.setSuffix(" s")
        self.strength = double_spin_for(
            MusicRequest, "cover_strength", "How much of the source a cover keeps", value=0.7
        )
        self.track = QComboBox()
        self.track.setEditable(True)
        self.track.setAccessibleName("stem")
        self.track.setToolTip("The stem to add or extract")
        self.track.addItems(STEMS)
        self.repaint_button = self._button("Repaint", "repaint", "Repaint the region with the prompt, lyrics and seed")
        self.extend_button = self._button("Extend", "extend", "Add the seconds given before and after the clip")
        self.cover_button = self._button("Cover", "cover", "Restyle the whole clip from the prompt")
        self.layer_button = self._button("Add layer", "layer", "Generate the stem to go with the clip")
        self.extract_button = self._button("Extract stem", "extract", "Take the stem out of the mix")
        grid = QGridLayout(self)
        grid.addWidget(QLabel("Region"), 0, 0)
        grid.addWidget(self.start, 0, 1)
        grid.addWidget(self.end, 0, 2)
        grid.addWidget(self.repaint_button, 0, 3)
        grid.addWidget(QLabel("Add"), 1, 0)
        grid.addWidget(self.extend_left, 1, 1)
        grid.addWidget(self.extend_right, 1, 2)
        grid.addWidget(self.extend_button, 1, 3)
        grid.addWidget(QLabel("Strength"), 2, 0)
        grid.addWidget(self.strength, 2, 1)
        grid.addWidget(self.cover_button, 2, 3)
        grid.addWidget(QLabel("Stem"), 3, 0)
        grid.addWidget(self.track, 3, 1)
        grid.addWidget(self.layer_button, 3, 2)
        grid.addWidget(self.extract_button, 3, 3)

    def _button(self, text: str, edit: str, tip: str) -> QPushButton:
        return button(text, text.lower(), tip, lambda: self.edit_requested.emit(edit))

    def capability_widgets(self) -> dict[Control, list[QWidget]]:
        return {
            Control.REPAINT: [self.start, self.end, self.repaint_button],
            Control.EXTEND: [self.extend_left, self.extend_right, self.extend_button],
            Control.COVER: [self.strength, self.cover_button],
            Control.STEMS: [self.track, self.layer_button, self.extract_button],
        }

    def conditions(self, has_clip: bool) -> dict[QWidget, bool]:
        """The edit buttons need a clip in the player (and Repaint a region)."""
        return {
            self.repaint_button: has_clip and self.end.value() > self.start.value(),
            self.extend_button: has_clip,
            self.cover_button: has_clip,
            self.layer_button: has_clip,
            self.extract_button: has_clip,
        }

    def set_clip_length(self, seconds: float) -> None:
        for box in (self.start, self.end):
            box.blockSignals(True)
            box.setMaximum(max(0.01, seconds))
            box.blockSignals(False)
        self.set_region(0.0, 0.0)

    def set_region(self, start_s: float, end_s: float) -> None:
        for box, value in ((self.start, start_s), (self.end, end_s)):
            box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(False)
        self.region_edited.emit(self.start.value(), self.end.value())

    def _region_typed(self) -> None:
        self.region_edited.emit(self.start.value(), self.end.value())

    def edit_fields(self, edit: str) -> dict[str, Any]:
        """The request fields of ``edit`` (the clip itself is the panel's ``init_audio``)."""
        fields: dict[str, Any] = {"edit": edit}
        if edit == "repaint":
            fields.update(repaint_start=self.start.value(), repaint_end=self.end.value())
        elif edit == "extend":
            fields.update(extend_left=self.extend_left.value(), extend_right=self.extend_right.value())
        elif edit == "cover":
            fields["cover_strength"] = self.strength.value()
        else:
            fields["track"] = self.track.currentText().strip()
        return fields

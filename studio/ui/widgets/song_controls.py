"""The Music tab's song section, for models that sing (ACE-Step): lyrics, their language, BPM,
key and scale, time signature, steps and shift. Shown only for models that take lyrics."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QComboBox, QGridLayout, QGroupBox, QLabel, QVBoxLayout, QWidget

from studio.core.capabilities import Control
from studio.core.requests import MusicRequest
from studio.ui.widgets.controls import double_spin_for, spin_for
from studio.ui.widgets.lyrics_editor import LyricsEditor

# A few of ACE-Step's 50+ languages; the box takes any code typed.
LANGUAGES = ("en", "zh", "ja", "ko", "es", "fr", "de", "it", "pt", "ru", "ar", "hi", "nl", "pl", "sv", "tr", "vi")
_NOTES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
KEYS = tuple(f"{note} {scale}" for scale in ("major", "minor") for note in _NOTES)
BEATS = (2, 3, 4, 6)


class SongControls(QGroupBox):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Song", parent)
        self.lyrics = LyricsEditor()
        self.language = QComboBox()
        self.language.setEditable(True)
        self.language.setAccessibleName("language")
        self.language.setToolTip("The language the lyrics are sung in (a code: en, ja, zh…)")
        self.language.addItems(LANGUAGES)
        self.bpm = spin_for(MusicRequest, "bpm", "Beats per minute; 0 lets the model choose")
        self.bpm.setSpecialValueText("auto")
        self.key = QComboBox()
        self.key.setEditable(True)
        self.key.setAccessibleName("key")
        self.key.setToolTip('Key and scale ("D major"); empty lets the model choose')
        self.key.addItem("")
        self.key.addItems(KEYS)
        self.time_signature = QComboBox()
        self.time_signature.setAccessibleName("time signature")
        self.time_signature.setToolTip("Beats per bar")
        self.time_signature.addItem("auto", 0)
        for beats in BEATS:
            self.time_signature.addItem(f"{beats}/4", beats)
        self.steps = spin_for(MusicRequest, "steps", "Denoising steps; 0 is the model's own default")
        self.steps.setSpecialValueText("default")
        self.shift = double_spin_for(MusicRequest, "shift", "Timestep shift; 0 is the model's own default")
        self.shift.setSpecialValueText("default")
        # Two label–field pairs a row: the section must not push the tab's run controls off screen.
        grid = QGridLayout()
        pairs = [
            ("Language", self.language),
            ("BPM", self.bpm),
            ("Key", self.key),
            ("Time", self.time_signature),
            ("Steps", self.steps),
            ("Shift", self.shift),
        ]
        for index, (text, widget) in enumerate(pairs):
            row, column = divmod(index, 2)
            label = QLabel(text)
            label.setBuddy(widget)
            grid.addWidget(label, row, 2 * column)
            grid.addWidget(widget, row, 2 * column + 1)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.lyrics, 1)
        layout.addLayout(grid)

    def capability_widgets(self) -> dict[Control, list[QWidget]]:
        return {
            Control.LYRICS: [self.lyrics.editor, self.lyrics.insert_box, self.language],
            Control.SONG_FIELDS: [self.bpm, self.key, self.time_signature],
            Control.STEPS: [self.steps],
            Control.SHIFT: [self.shift],
        }

    def request_spins(self) -> dict[str, Any]:
        return {"bpm": self.bpm, "steps": self.steps, "shift": self.shift}

    def request_fields(self, uses: Any) -> dict[str, Any]:
        """The request fields of this section; those of controls the model does not use stay at
        their defaults. ``uses(control)`` says whether the model uses a control."""
        fields: dict[str, Any] = {}
        if uses(Control.LYRICS):
            fields.update(lyrics=self.lyrics.text(), language=self.language.currentText().strip())
        if uses(Control.SONG_FIELDS):
            fields.update(
                bpm=self.bpm.value(),
                key=self.key.currentText().strip(),
                time_signature=int(self.time_signature.currentData() or 0),
            )
        if uses(Control.STEPS):
            fields["steps"] = self.steps.value()
        if uses(Control.SHIFT):
            fields["shift"] = self.shift.value()
        return fields

    def set_request(self, request: MusicRequest) -> None:
        self.lyrics.set_text(request.lyrics)
        self.language.setCurrentText(request.language or "en")
        self.bpm.setValue(request.bpm)
        self.key.setCurrentText(request.key)
        index = self.time_signature.findData(request.time_signature)
        self.time_signature.setCurrentIndex(max(0, index))
        self.steps.setValue(request.steps)
        self.shift.setValue(request.shift)

"""The Music tab: prompt, duration and sampling in; progress, a player and a waveform out."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from studio.core.capabilities import Control
from studio.core.errors import InvalidRequest
from studio.core.events import EventKind, JobEvent
from studio.core.requests import MusicRequest, Request
from studio.ui.jobs import Job, JobQueue
from studio.ui.panel_base import GenerationPanel, SpinBox
from studio.ui.widgets.audio_player import AudioPlayer
from studio.ui.widgets.controls import SeedField, button, double_spin_for, spin_for
from studio.ui.widgets.edit_bar import EditBar
from studio.ui.widgets.model_picker import ModelPicker
from studio.ui.widgets.song_controls import SongControls
from studio.ui.widgets.waveform_selection import SelectableWaveform

if TYPE_CHECKING:
    from studio.gallery.store import GalleryItem
    from studio.runtime.services import Services

_AUDIO_FILTER = "Audio (*.flac *.wav *.ogg *.mp3)"


class MusicPanel(GenerationPanel):
    kind = "music"
    what = "piece"

    def __init__(self, services: Services, jobs: JobQueue, parent: QWidget | None = None) -> None:
        super().__init__(services, jobs, parent)
        self._continue_from = ""
        self._continue_parent: str | None = None
        self._melody = ""
        self._current_item: GalleryItem | None = None
        self._build()
        self._update_buttons()

    # -- layout -----------------------------------------------------------------

    def _build(self) -> None:
        self.model_picker = ModelPicker("music")
        self.model_picker.model_changed.connect(self._model_changed)
        self.prompt = QPlainTextEdit()
        self.prompt.setPlaceholderText("Describe the music… (Ctrl+Enter generates)")
        self.prompt.setAccessibleName("prompt")
        self.prompt.setToolTip("Genre, instruments, mood, tempo. Ctrl+Enter generates.")
        self.prompt.textChanged.connect(self._update_buttons)
        self.duration = double_spin_for(MusicRequest, "duration", "Seconds of new music")
        self.duration.setSuffix(" s")
        self.guidance = double_spin_for(MusicRequest, "guidance", "How closely to follow the prompt (0 turns it off)")
        self.temperature = double_spin_for(MusicRequest, "temperature", "Higher is more surprising; 0 is greedy")
        self.top_k = spin_for(MusicRequest, "top_k", "Sample from the k likeliest codes; 0 is off")
        self.seed = SeedField("music")
        self.continue_label = QLabel("—")
        self.continue_label.setAccessibleName("continues")
        self.continue_label.setToolTip("The clip this generation continues (set with 'Continue this clip')")
        self.clear_continue = button(
            "Clear", "stop continuing", "Generate a new piece instead", self.clear_continuation
        )
        self.melody_label = QLabel("—")
        self.melody_label.setAccessibleName("melody")
        self.melody_button = button(
            "Choose…", "choose melody", "A melody to follow (MusicGen Melody)", self._choose_melody
        )
        self.clear_melody = button("Clear", "clear melody", "Do not follow a melody", lambda: self._set_melody(""))

        form = QFormLayout()
        form.addRow("Model", self.model_picker)
        form.addRow("Duration", self.duration)
        form.addRow("Guidance", self.guidance)
        form.addRow("Temperature", self.temperature)
        form.addRow("Top k", self.top_k)
        form.addRow("Seed", self.seed)
        continue_row = QHBoxLayout()
        continue_row.addWidget(self.continue_label, 1)
        continue_row.addWidget(self.clear_continue)
        form.addRow("Continues", continue_row)
        melody_row = QHBoxLayout()
        melody_row.addWidget(self.melody_label, 1)
        melody_row.addWidget(self.melody_button)
        melody_row.addWidget(self.clear_melody)
        form.addRow("Melody", melody_row)

        buttons = self.build_run_controls()
        self.sweep_button = button(
            "Sweep…", "sweep", "Vary up to three settings (X/Y/Z): a piece per cell", self.open_sweep
        )
        buttons.insertWidget(2, self.sweep_button)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(QLabel("Prompt"))
        left_layout.addWidget(self.prompt, 2)
        left_layout.addLayout(form)
        self.song = SongControls()
        self.song.lyrics.changed.connect(self._update_buttons)
        # The column scrolls as a whole (controls_column); the song fields are part of it.
        self.song_area = self.song
        left_layout.addWidget(self.song_area, 3)
        left_layout.addStretch(1)
        column = self.controls_column(left, buttons)

        self.now_playing = QLabel("Nothing loaded")
        self.now_playing.setWordWrap(True)
        self.now_playing.setAccessibleName("loaded clip")
        self.waveform = SelectableWaveform()
        self.player = AudioPlayer()
        self.player.position_changed.connect(self.waveform.set_position)
        self.waveform.seek_requested.connect(self.player.seek_fraction)
        self.editing = EditBar()
        self.waveform.region_selected.connect(self.editing.set_region)
        self.editing.region_edited.connect(self._region_edited)
        self.editing.edit_requested.connect(self.edit_clip)
        self.continue_button = button(
            "Continue this clip",
            "continue this clip",
            "Generate more music that follows this clip",
            self.continue_loaded,
        )
        self.open_button = button(
            "Open file…", "open audio file", "Load an audio file into the player", self._open_file
        )
        self.history = QListWidget()
        self.history.setAccessibleName("session clips")
        self.history.setToolTip("This session's music; click one to load it")
        self.history.currentItemChanged.connect(self._history_selected)
        actions = QHBoxLayout()
        actions.addWidget(self.continue_button)
        actions.addWidget(self.open_button)
        actions.addStretch(1)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addWidget(self.now_playing)
        right_layout.addWidget(self.waveform, 2)
        right_layout.addWidget(self.player)
        self.editing_area = _scrolling(self.editing)
        right_layout.addWidget(self.editing_area)
        right_layout.addLayout(actions)
        right_layout.addWidget(QLabel("This session"))
        right_layout.addWidget(self.history, 1)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(column)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            QShortcut(QKeySequence(keys), self).activated.connect(self.generate)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self).activated.connect(self.cancel)

    # -- models -------------------------------------------------------------------

    def capability_widgets(self) -> dict[Control, list[QWidget]]:
        return {
            Control.GUIDANCE: [self.guidance],
            Control.TEMPERATURE: [self.temperature],
            Control.TOP_K: [self.top_k],
            Control.AUDIO_INPUT: [self.continue_label, self.clear_continue, self.continue_button],
            Control.MELODY_INPUT: [self.melody_label, self.melody_button, self.clear_melody],
            **self.song.capability_widgets(),
            **self.editing.capability_widgets(),
        }

    def conditions(self) -> dict[QWidget, bool]:
        return {
            self.clear_continue: bool(self._continue_from),
            self.continue_button: self.player.path is not None,
            self.clear_melody: bool(self._melody),
            **self.editing.conditions(self.player.path is not None),
        }

    def request_spins(self) -> dict[str, SpinBox]:
        return {
            "duration": self.duration,
            "guidance": self.guidance,
            "temperature": self.temperature,
            "top_k": self.top_k,
            **self.song.request_spins(),
        }

    # -- inputs -------------------------------------------------------------------

    def continue_loaded(self) -> None:
        if self.player.path is None:
            return
        if not self.uses(Control.AUDIO_INPUT):
            self.run_status.setText(self.why_unused(Control.AUDIO_INPUT))
            return
        item = self._current_item
        self._continue_from = str(self.player.path)
        self._continue_parent = item.id if item is not None and item.path == self.player.path else None
        self.continue_label.setText(self.player.path.name)
        self._update_buttons()

    def clear_continuation(self) -> None:
        self._continue_from = ""
        self._continue_parent = None
        self.continue_label.setText("—")
        self._update_buttons()

    def _set_melody(self, path: str) -> None:
        self._melody = path
        self.melody_label.setText(Path(path).name if path else "—")
        self._update_buttons()

    def _choose_melody(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Melody", "", _AUDIO_FILTER)
        if path:
            self._set_melody(path)

    def _open_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open audio", "", _AUDIO_FILTER)
        if path:
            self.load_file(Path(path))

    def build_request(self) -> MusicRequest:
        """The request the controls describe; what the model does not use is left at its default."""
        use = self.used_value
        return MusicRequest(
            prompt=self.prompt.toPlainText(),
            model=self.model_picker.current_model(),
            seed=self.seed.value(),
            duration=self.duration.value(),
            guidance=use(Control.GUIDANCE, self.guidance.value(), MusicRequest.guidance),
            temperature=use(Control.TEMPERATURE, self.temperature.value(), MusicRequest.temperature),
            top_k=use(Control.TOP_K, self.top_k.value(), MusicRequest.top_k),
            audio_prompt=self._continuation(),
            melody=use(Control.MELODY_INPUT, self._melody, MusicRequest.melody),
            **self.song.request_fields(self.uses),
        )

    def edit_clip(self, edit: str) -> None:
        """Repaint, extend, cover… the clip in the player: a new item whose parent is that clip."""
        if self.player.path is None:
            return
        try:
            fields = self.editing.edit_fields(edit)
            request = dataclasses.replace(
                self.build_request(), audio_prompt="", init_audio=str(self.player.path), **fields
            )
        except InvalidRequest as exc:
            self.run_status.setText(str(exc))
            return
        item = self._current_item
        self.submit_request(request, parent=item.id if item is not None and item.path == self.player.path else None)

    def _region_edited(self, start_s: float, end_s: float) -> None:
        self.waveform.set_region(start_s, end_s)
        self._update_buttons()

    def _continuation(self) -> str:
        """The clip this generation continues, when the model continues clips."""
        return str(self.used_value(Control.AUDIO_INPUT, self._continue_from, MusicRequest.audio_prompt))

    def set_prompt(self, text: str) -> None:
        self.prompt.setPlainText(text)

    # -- jobs ---------------------------------------------------------------------

    def generate(self) -> None:
        if not self.generate_button.isEnabled():
            return
        try:
            request = self.build_request()
        except InvalidRequest as exc:
            self.run_status.setText(str(exc))
            return
        self.submit_request(request, parent=self._continue_parent if request.audio_prompt else None)

    def submit_request(self, request: Request, parent: str | None = None) -> str | None:
        job = self.submit(request, parent)
        self.show_waiting()
        self._update_buttons()
        return job.id

    def set_request(self, request: Request, parent: str | None) -> None:
        assert isinstance(request, MusicRequest)
        self.prompt.setPlainText(request.prompt)
        if request.seed is not None:
            self.seed.lock(request.seed)
        if request.audio_prompt:
            self._continue_from, self._continue_parent = request.audio_prompt, parent
            self.continue_label.setText(Path(request.audio_prompt).name)
        else:
            self.clear_continuation()
        self._set_melody(request.melody)
        self.song.set_request(request)

    def handle_event(self, job: Job, event: JobEvent) -> None:
        self.show_progress(event)
        if event.kind is EventKind.STARTED:
            self.run_status.setText("")
        elif event.is_terminal:
            self._job_ended(job, event)

    def _job_ended(self, job: Job, event: JobEvent) -> None:
        if event.kind is EventKind.FINISHED:
            items = job.items
            for item in items:
                task = (item.record.derived_from or {}).get("operation", {}).get("task", "")
                label = f"{item.record.prompt[:50] or '(continuation)'} · {item.path.name}"
                entry = QListWidgetItem(f"{task}: {label}" if task else label)
                entry.setData(Qt.ItemDataRole.UserRole, item)
                entry.setToolTip(str(item.path))
                self.history.insertItem(0, entry)
            if items:
                self.history.setCurrentRow(0)  # loads it into the player
                seconds = items[0].record.output.get("duration_s", 0)
                self.run_status.setText(f"Saved {seconds:.1f} s of music.")
            self.items_saved.emit(list(items))
        elif event.kind is EventKind.CANCELLED:
            self.run_status.setText("Cancelled; nothing was saved.")
        elif event.kind is EventKind.ERROR:
            self.report_error(self.run_status, job)

    # -- the player -------------------------------------------------------------------

    def load_item(self, item: GalleryItem) -> None:
        """Load a gallery item (this session's or any other) into the player."""
        self._current_item = item
        self.load_file(item.path, title=item.record.prompt or item.path.name)

    def load_file(self, path: Path, title: str = "") -> None:
        if self._current_item is not None and self._current_item.path != path:
            self._current_item = None
        self.player.load(path)
        try:
            self.waveform.set_file(path)
        except (OSError, RuntimeError, ValueError) as exc:
            self.waveform.set_file(None)
            self.run_status.setText(f"Cannot read {path.name}: {exc}")
        self.editing.set_clip_length(self.waveform.duration_s)
        self.now_playing.setText(title or path.name)
        self._update_buttons()

    def _history_selected(self, current: QListWidgetItem | None, _previous: object = None) -> None:
        if current is not None:
            self.load_item(current.data(Qt.ItemDataRole.UserRole))

    def shutdown(self) -> None:
        self.player.close_player()

    def update_controls(self) -> None:
        self._update_buttons()

    def _update_buttons(self) -> None:
        has_prompt = bool(self.prompt.toPlainText().strip()) or bool(self._continuation())
        has_model = bool(self.model_picker.current_model())
        self.generate_button.setEnabled(has_prompt and has_model and self.runnable())
        self.sweep_button.setEnabled(self.generate_button.isEnabled())
        self.cancel_button.setEnabled(self.busy())
        self.apply_capabilities()
        described = self.model_info is not None
        self.song_area.setVisible(described and self.uses(Control.LYRICS))  # only for models that sing
        edits = (Control.REPAINT, Control.EXTEND, Control.COVER, Control.STEMS)
        self.editing_area.setVisible(described and any(self.uses(control) for control in edits))
        self.update_hint(
            has_prompt=has_prompt,
            ask="Describe the music to generate it.",
            no_model="No music model found: add a MusicGen folder with 'studio models add FOLDER'.",
        )


def _scrolling(widget: QWidget) -> QScrollArea:
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return area

"""The Music tab: prompt, duration and sampling in; progress, a player and a waveform out."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from studio.core.errors import InvalidRequest
from studio.core.events import EventKind, JobEvent
from studio.core.requests import MusicRequest
from studio.ui.panel_base import GenerationPanel
from studio.ui.widgets.audio_player import AudioPlayer
from studio.ui.widgets.controls import SeedField, button, double_spin, spin
from studio.ui.widgets.model_picker import ModelPicker
from studio.ui.widgets.waveform import WaveformView

_AUDIO_FILTER = "Audio (*.flac *.wav *.ogg *.mp3)"


class MusicPanel(GenerationPanel):
    kind = "music"

    def __init__(self, services, parent: QWidget | None = None) -> None:
        super().__init__(services, parent)
        self._running = ""
        self._info_job = ""
        self._model_info: dict = {}
        self._continue_from = ""
        self._continue_parent: str | None = None
        self._melody = ""
        self._current_item = None
        self._build()
        self._apply_model_info({})
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
        self.duration = double_spin(0.5, 600.0, MusicRequest.duration, 1.0, "duration", "Seconds of new music")
        self.duration.setSuffix(" s")
        self.guidance = double_spin(
            0.0, 30.0, MusicRequest.guidance, 0.5, "guidance", "How closely to follow the prompt (0 turns it off)"
        )
        self.temperature = double_spin(
            0.0,
            5.0,
            MusicRequest.temperature,
            0.05,
            "temperature",
            "Higher is more surprising; 0 is greedy",
        )
        self.top_k = spin(0, 100000, MusicRequest.top_k, "top k", "Sample from the k likeliest codes; 0 is off")
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

        buttons = self.build_run_controls("piece")
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(QLabel("Prompt"))
        left_layout.addWidget(self.prompt, 2)
        left_layout.addLayout(form)
        left_layout.addLayout(buttons)
        left_layout.addWidget(self.progress)
        left_layout.addWidget(self.hint)
        left_layout.addWidget(self.run_status)
        left_layout.addWidget(self.details_button)
        left_layout.addStretch(1)

        self.now_playing = QLabel("Nothing loaded")
        self.now_playing.setWordWrap(True)
        self.now_playing.setAccessibleName("loaded clip")
        self.waveform = WaveformView()
        self.player = AudioPlayer()
        self.player.position_changed.connect(self.waveform.set_position)
        self.waveform.seek_requested.connect(self.player.seek_fraction)
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
        right_layout.addLayout(actions)
        right_layout.addWidget(QLabel("This session"))
        right_layout.addWidget(self.history, 1)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            QShortcut(QKeySequence(keys), self).activated.connect(self.generate)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self).activated.connect(self.cancel)

    # -- models -------------------------------------------------------------------

    def refresh_models(self, specs: list, preferred: str = "") -> None:
        self.model_picker.set_models(specs, preferred)
        self._update_buttons()

    def _model_changed(self, model: str) -> None:
        self._apply_model_info({})
        if model:
            self._info_job = self.services.worker.describe_model(model)
            self.track(self._info_job)
        self._update_buttons()

    def _apply_model_info(self, info: dict) -> None:
        self._model_info = info
        if info:
            defaults = self.model_defaults(self.model_picker.current_model())
            if "duration" in defaults:
                self.duration.setValue(float(defaults["duration"]))
            if "guidance" in defaults:
                self.guidance.setValue(float(defaults["guidance"]))
        self.guidance.setEnabled(not info.get("symbolic"))  # a melody model samples notes: no guidance
        melody = bool(info.get("melody"))
        for widget in (self.melody_button, self.melody_label):
            widget.setEnabled(melody)
        if not melody and self._melody:
            self._set_melody("")
        self._update_buttons()

    # -- inputs -------------------------------------------------------------------

    def continue_loaded(self) -> None:
        if self.player.path is None:
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
        return MusicRequest(
            prompt=self.prompt.toPlainText(),
            model=self.model_picker.current_model(),
            seed=self.seed.value(),
            duration=self.duration.value(),
            guidance=self.guidance.value(),
            temperature=self.temperature.value(),
            top_k=self.top_k.value(),
            audio_prompt=self._continue_from,
            melody=self._melody,
        )

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

    def submit_request(self, request, parent: str | None = None) -> str | None:
        job = self.services.worker.submit(request, parent=parent)
        self.track(job)
        self._queued.append(job)
        if not self._running:
            self.progress.waiting("Waiting for the worker…")
        self._update_buttons()
        return job

    def show_status(self, text: str) -> None:
        self.run_status.setText(text)

    def apply_request(self, request: dict, parent: str | None = None) -> None:
        self.prompt.setPlainText(str(request.get("prompt", "")))
        index = self.model_picker.findData(str(request.get("model", "")))
        if index >= 0:
            self.model_picker.setCurrentIndex(index)
        self.duration.setValue(float(request.get("duration", MusicRequest.duration)))
        self.guidance.setValue(float(request.get("guidance", MusicRequest.guidance)))
        self.temperature.setValue(float(request.get("temperature", MusicRequest.temperature)))
        self.top_k.setValue(int(request.get("top_k", MusicRequest.top_k)))
        if isinstance(request.get("seed"), int):
            self.seed.lock(request["seed"])
        clip = str(request.get("audio_prompt", ""))
        if clip and Path(clip).is_file():
            self._continue_from, self._continue_parent = clip, parent
            self.continue_label.setText(Path(clip).name)
        else:
            self.clear_continuation()
        melody = str(request.get("melody", ""))
        self._set_melody(melody if melody and Path(melody).is_file() else "")

    def handle_event(self, event: JobEvent) -> None:
        if event.kind is EventKind.MODEL_INFO:
            self._jobs.discard(event.job_id)
            info = event.result or {}
            if event.job_id == self._info_job and info.get("path") == self.model_picker.current_model():
                self._apply_model_info(info)
            return
        if event.kind is EventKind.STARTED:
            self._running = event.job_id
            self.progress.waiting("Loading the model…")
            self.run_status.setText("")
        elif event.kind is EventKind.PROGRESS:
            self.progress.step(event.step, event.total)
        elif event.is_terminal:
            self._job_ended(event)
        self._update_buttons()

    def _job_ended(self, event: JobEvent) -> None:
        if event.job_id in self._queued:
            self._queued.remove(event.job_id)
        if event.job_id == self._running:
            self._running = ""
        if event.kind is EventKind.FINISHED:
            items = list(event.result or [])
            for item in items:
                entry = QListWidgetItem(f"{item.record.prompt[:50] or '(continuation)'} · {item.path.name}")
                entry.setData(Qt.ItemDataRole.UserRole, item)
                entry.setToolTip(str(item.path))
                self.history.insertItem(0, entry)
            if items:
                self.history.setCurrentRow(0)  # loads it into the player
                seconds = items[0].record.output.get("duration_s", 0)
                self.run_status.setText(f"Saved {seconds:.1f} s of music.")
            self.items_saved.emit(items)
        elif event.kind is EventKind.CANCELLED:
            self.run_status.setText("Cancelled; nothing was saved.")
        elif event.kind is EventKind.ERROR:
            self.report_error(self.run_status, event)
        if not self._running:
            self.progress.idle() if not self._queued else self.progress.waiting("Waiting for the worker…")

    # -- the player -------------------------------------------------------------------

    def load_item(self, item) -> None:
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
        self.now_playing.setText(title or path.name)
        self._update_buttons()

    def _history_selected(self, current: QListWidgetItem | None, _previous: object = None) -> None:
        if current is not None:
            self.load_item(current.data(Qt.ItemDataRole.UserRole))

    def shutdown(self) -> None:
        self.player.close_player()

    def _update_buttons(self) -> None:
        has_prompt = bool(self.prompt.toPlainText().strip()) or bool(self._continue_from)
        has_model = bool(self.model_picker.current_model())
        self.generate_button.setEnabled(has_prompt and has_model)
        self.cancel_button.setEnabled(bool(self._queued))
        can_continue = self._model_info.get("continuation", True)
        self.continue_button.setEnabled(self.player.path is not None and can_continue)
        self.clear_continue.setEnabled(bool(self._continue_from))
        self.clear_melody.setEnabled(bool(self._melody))
        waiting = len(self._queued) - (1 if self._running else 0)
        if not has_model:
            self.hint.setText("No music model found: add a MusicGen folder with 'studio models add FOLDER'.")
        elif waiting > 0:
            self.hint.setText(f"{waiting} more queued in this tab")
        elif not has_prompt:
            self.hint.setText(
                " ".join(["Describe the music to generate it.", self._model_info.get("hint", "")]).strip()
            )
        else:
            self.hint.setText(self._model_info.get("hint", ""))

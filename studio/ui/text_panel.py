"""The Text tab: prompt, system prompt and sampling settings in; streamed text out."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication, QKeySequence, QShortcut, QTextCursor
from PySide6.QtWidgets import (
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.errors import InvalidRequest
from studio.core.events import EventKind, JobEvent
from studio.core.requests import TextRequest
from studio.ui.panel_base import GenerationPanel
from studio.ui.widgets.controls import SeedField, button, double_spin, spin
from studio.ui.widgets.model_picker import ModelPicker

_STREAM_FLUSH_MS = 30  # streamed text is appended in batches, not once per token


class TextPanel(GenerationPanel):
    kind = "text"

    def __init__(self, services, parent: QWidget | None = None) -> None:
        super().__init__(services, parent)
        self._running_job = ""
        self._stopped_job = ""
        self._pending_text: list[str] = []
        self._started_at = 0.0
        self._first_token_at = 0.0
        self._tokens = 0
        self._last_request: TextRequest | None = None
        self._build()
        self._flush_timer = QTimer(self)
        self._flush_timer.setInterval(_STREAM_FLUSH_MS)
        self._flush_timer.timeout.connect(self._flush_stream)
        self._update_buttons()

    # -- layout -----------------------------------------------------------------

    def _build(self) -> None:
        self.model_picker = ModelPicker("text")
        self.model_picker.model_changed.connect(self._model_changed)
        self.prompt = QPlainTextEdit()
        self.prompt.setPlaceholderText("Write a prompt… (Ctrl+Enter generates)")
        self.prompt.setAccessibleName("prompt")
        self.prompt.setToolTip("What the model should write about. Ctrl+Enter generates.")
        self.prompt.textChanged.connect(self._update_buttons)
        self.system = QPlainTextEdit()
        self.system.setPlaceholderText("System prompt (optional): how the assistant should behave")
        self.system.setAccessibleName("system prompt")
        self.system.setToolTip("Instructions for chat models. Base models get it before the prompt.")
        self.system.setMaximumHeight(70)

        self.max_tokens = spin(1, 32768, TextRequest.max_tokens, "max tokens", "The most tokens to write.")
        self.temperature = double_spin(
            0.0,
            5.0,
            TextRequest.temperature,
            0.05,
            "temperature",
            "Higher is more surprising; 0 always picks the likeliest token.",
        )
        self.top_p = double_spin(
            0.01,
            1.0,
            TextRequest.top_p,
            0.01,
            "top p",
            "Sample only from the tokens making up this share of probability.",
        )
        self.top_k = spin(0, 100000, TextRequest.top_k, "top k", "Sample only from the k likeliest tokens; 0 is off.")
        self.repetition_penalty = double_spin(
            0.5,
            3.0,
            TextRequest.repetition_penalty,
            0.05,
            "repetition penalty",
            "Above 1 discourages repeating what was written.",
        )
        self.seed = SeedField("text")
        self.stop_strings = QPlainTextEdit()
        self.stop_strings.setAccessibleName("stop strings")
        self.stop_strings.setToolTip("Generation stops when the text contains one of these (one per line).")
        self.stop_strings.setPlaceholderText("one per line")
        self.stop_strings.setMaximumHeight(50)

        common = QFormLayout()
        common.addRow("Model", self.model_picker)
        common.addRow("Max tokens", self.max_tokens)
        common.addRow("Temperature", self.temperature)
        common.addRow("Top p", self.top_p)
        self.more_toggle = QToolButton()
        self.more_toggle.setText("More settings")
        self.more_toggle.setCheckable(True)
        self.more_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.more_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.more_toggle.setAccessibleName("more settings")
        self.more_toggle.setToolTip("Show top k, repetition penalty, seed and stop strings.")
        self.more = QGroupBox()
        more_form = QFormLayout(self.more)
        more_form.addRow("Top k", self.top_k)
        more_form.addRow("Repetition penalty", self.repetition_penalty)
        more_form.addRow("Seed", self.seed)
        more_form.addRow("Stop at", self.stop_strings)
        self.more.setVisible(False)
        self.more_toggle.toggled.connect(self._toggle_more)

        self.generate_button = QPushButton("Generate")
        self.generate_button.setAccessibleName("generate")
        self.generate_button.setToolTip("Generate text (Ctrl+Enter)")
        self.generate_button.setDefault(True)
        self.generate_button.clicked.connect(self.generate)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setAccessibleName("stop")
        self.stop_button.setToolTip("Stop writing; the text so far is kept (Esc)")
        self.stop_button.clicked.connect(self.stop)
        self.hint = QLabel()
        self.hint.setAccessibleName("hint")
        self.hint.setWordWrap(True)
        self.run_status = QLabel()
        self.run_status.setAccessibleName("status")
        self.run_status.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(QLabel("Prompt"))
        left_layout.addWidget(self.prompt, 2)
        left_layout.addWidget(self.system)
        left_layout.addLayout(common)
        left_layout.addWidget(self.more_toggle)
        left_layout.addWidget(self.more)
        left_layout.addLayout(buttons)
        left_layout.addWidget(self.hint)
        left_layout.addWidget(self.run_status)
        left_layout.addWidget(self.details_button)

        self.output = QPlainTextEdit()
        self.output.setReadOnly(True)
        self.output.setAccessibleName("generated text")
        self.output.setToolTip("The generated text; it streams in as the model writes.")
        self.output.setPlaceholderText("Generated text appears here as it is written.")
        self.stats = QLabel("")
        self.stats.setAccessibleName("speed")
        self.stats.setToolTip("Tokens written and tokens per second")
        self.stopped_note = QLabel("")
        self.keep_button = QPushButton("Keep in gallery")
        self.keep_button.setAccessibleName("keep in gallery")
        self.keep_button.setToolTip("Save the stopped text to the gallery anyway")
        self.keep_button.clicked.connect(self.keep_stopped)
        self.keep_button.setVisible(False)
        self.continue_button = button("Continue", "continue", "Generate more from the current text", self.continue_text)
        self.copy_button = button("Copy", "copy", "Copy the generated text", self.copy_output)
        self.to_image = button(
            "Use as image prompt",
            "use as image prompt",
            "Fill the Image tab's prompt",
            lambda: self.prompt_for.emit("image", self.output.toPlainText().strip()),
        )
        self.to_music = button(
            "Use as music prompt",
            "use as music prompt",
            "Fill the Music tab's prompt",
            lambda: self.prompt_for.emit("music", self.output.toPlainText().strip()),
        )
        actions = QHBoxLayout()
        for widget in (self.continue_button, self.copy_button, self.to_image, self.to_music):
            actions.addWidget(widget)
        actions.addStretch(1)
        stopped_row = QHBoxLayout()
        stopped_row.addWidget(self.stopped_note)
        stopped_row.addWidget(self.keep_button)
        stopped_row.addStretch(1)
        self.history = QListWidget()
        self.history.setAccessibleName("history")
        self.history.setToolTip("This session's texts; click one to show it again")
        self.history.setMaximumHeight(110)
        self.history.itemClicked.connect(self._show_history_item)

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addWidget(self.output, 1)
        right_layout.addLayout(stopped_row)
        right_layout.addWidget(self.stats)
        right_layout.addLayout(actions)
        right_layout.addWidget(QLabel("This session"))
        right_layout.addWidget(self.history)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)

        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.activated.connect(self.generate)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self).activated.connect(self.stop)

    def _toggle_more(self, shown: bool) -> None:
        self.more.setVisible(shown)
        self.more_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)

    # -- requests -----------------------------------------------------------------

    def build_request(self, continue_from: str = "") -> TextRequest:
        stops = tuple(line for line in self.stop_strings.toPlainText().splitlines() if line)
        return TextRequest(
            prompt=self.prompt.toPlainText(),
            model=self.model_picker.current_model(),
            seed=self.seed.value(),
            system=self.system.toPlainText(),
            max_tokens=self.max_tokens.value(),
            temperature=self.temperature.value(),
            top_p=self.top_p.value(),
            top_k=self.top_k.value(),
            repetition_penalty=self.repetition_penalty.value(),
            stop=stops,
            continue_from=continue_from,
        )

    def generate(self) -> None:
        self._submit(continue_from="")

    def continue_text(self) -> None:
        self._submit(continue_from=self.output.toPlainText())

    def _submit(self, continue_from: str) -> None:
        if self._running_job or not self.generate_button.isEnabled():
            return
        try:
            request = self.build_request(continue_from)
        except InvalidRequest as exc:
            self.run_status.setText(str(exc))
            return
        self.submit_request(request)

    def submit_request(self, request, parent: str | None = None) -> str | None:
        if self._running_job:
            self.run_status.setText("Wait for the current text to finish (or stop it) first.")
            return None
        if not request.continue_from:
            self.output.clear()
        self._reset_run_state()
        self._last_request = request
        self._running_job = self.services.worker.submit(request, parent=parent)
        self.track(self._running_job)
        self.run_status.setText("Queued…")
        self._update_buttons()
        return self._running_job

    def show_status(self, text: str) -> None:
        self.run_status.setText(text)

    def apply_request(self, request: dict, parent: str | None = None) -> None:
        self.prompt.setPlainText(str(request.get("prompt", "")))
        self.system.setPlainText(str(request.get("system", "")))
        index = self.model_picker.findData(str(request.get("model", "")))
        if index >= 0:
            self.model_picker.setCurrentIndex(index)
        self.max_tokens.setValue(int(request.get("max_tokens", TextRequest.max_tokens)))
        self.temperature.setValue(float(request.get("temperature", TextRequest.temperature)))
        self.top_p.setValue(float(request.get("top_p", TextRequest.top_p)))
        self.top_k.setValue(int(request.get("top_k", TextRequest.top_k)))
        self.repetition_penalty.setValue(float(request.get("repetition_penalty", TextRequest.repetition_penalty)))
        stops = request.get("stop", [])
        self.stop_strings.setPlainText(
            "\n".join(s for s in stops if isinstance(s, str)) if isinstance(stops, list) else ""
        )
        if isinstance(request.get("seed"), int):
            self.seed.lock(request["seed"])

    def continue_from_text(self, text: str) -> None:
        """Show ``text`` as the output, ready for Continue (the gallery's "Use as input")."""
        if not self._running_job:
            self.output.setPlainText(text)
            self._update_buttons()

    def stop(self) -> None:
        if self._running_job:
            self.services.worker.cancel(self._running_job)

    def keep_stopped(self) -> None:
        if self._stopped_job:
            job = self.services.worker.keep_partial(self._stopped_job)
            if job:
                self.track(job)
            self._stopped_job = ""
            self.keep_button.setVisible(False)
            self.stopped_note.setText("Stopped — saving to the gallery…")

    def copy_output(self) -> None:
        QGuiApplication.clipboard().setText(self.output.toPlainText())

    def set_prompt(self, text: str) -> None:
        self.prompt.setPlainText(text)

    def refresh_models(self, specs: list, preferred: str = "") -> None:
        self.model_picker.set_models(specs, preferred)
        self._update_buttons()

    def _model_changed(self, model: str) -> None:
        defaults = self.model_defaults(model) if model else {}
        if "temperature" in defaults:
            self.temperature.setValue(float(defaults["temperature"]))
        if "max_tokens" in defaults:
            self.max_tokens.setValue(int(defaults["max_tokens"]))
        self._update_buttons()

    # -- events -------------------------------------------------------------------

    def handle_event(self, event: JobEvent) -> None:
        if event.kind is EventKind.STARTED and event.job_id == self._running_job:
            self._started_at = time.perf_counter()
            self.run_status.setText("Writing…")
            self._flush_timer.start()
        elif event.kind is EventKind.PREVIEW:
            if not self._first_token_at:
                self._first_token_at = time.perf_counter()
            self._pending_text.append(event.preview)
        elif event.kind is EventKind.PROGRESS:
            self._tokens = event.step
            self._show_speed(running=True)
        elif event.kind is EventKind.FINISHED:
            self._flush_stream()
            if event.job_id == self._running_job:
                self._finish_run()
                self.run_status.setText(" ".join(f"Note: {n}." for n in event.info.get("notes", [])))
                self._show_speed(running=False, info=event.info)
            else:
                self.stopped_note.setText("Stopped — kept in the gallery")
            for item in event.result or []:
                self._add_history(item, self.output.toPlainText())
            self.items_saved.emit(list(event.result or []))
        elif event.kind is EventKind.CANCELLED:
            self._flush_stream()
            if event.job_id == self._running_job:
                self._finish_run()
                self._show_speed(running=False)
                if event.info.get("partial"):
                    self._stopped_job = event.job_id
                    self.stopped_note.setText("Stopped — not saved.")
                    self.keep_button.setVisible(True)
                else:
                    self.stopped_note.setText("Cancelled before any text was written.")
        elif event.kind is EventKind.ERROR:
            self._flush_stream()
            if event.job_id == self._running_job:
                self._finish_run()
            self.report_error(self.run_status, event)

    def _reset_run_state(self) -> None:
        self._pending_text.clear()
        self._started_at = time.perf_counter()
        self._first_token_at = 0.0
        self._tokens = 0
        self._stopped_job = ""
        self.keep_button.setVisible(False)
        self.stopped_note.setText("")
        self.stats.setText("")
        self.run_status.setText("")

    def _finish_run(self) -> None:
        self._running_job = ""
        self._flush_timer.stop()
        self._update_buttons()

    def _flush_stream(self) -> None:
        if not self._pending_text:
            return
        chunk = "".join(self._pending_text)
        self._pending_text.clear()
        cursor = self.output.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(chunk)
        self.output.setTextCursor(cursor)
        self.output.ensureCursorVisible()

    def _show_speed(self, running: bool, info: dict | None = None) -> None:
        info = info or {}
        tokens = int(info.get("tokens", self._tokens) or 0)
        rate = info.get("tokens_per_s")
        if rate is None:
            elapsed = time.perf_counter() - (self._started_at or time.perf_counter())
            rate = tokens / elapsed if elapsed > 0 else 0.0
        text = f"{tokens} tokens · {float(rate):.1f} tokens/s"
        first = info.get("first_token_ms")
        if first is None and self._first_token_at and self._started_at:
            first = (self._first_token_at - self._started_at) * 1000
        if first is not None:
            text += f" · first token {float(first):.0f} ms"
        self.stats.setText(text + (" …" if running else ""))

    def _add_history(self, item, body: str) -> None:
        entry = QListWidgetItem(f"{item.record.prompt[:40]!s} → {body[:60]!s}".replace("\n", " "))
        entry.setData(Qt.ItemDataRole.UserRole, body)
        entry.setToolTip(str(item.path))
        self.history.insertItem(0, entry)

    def _show_history_item(self, entry: QListWidgetItem) -> None:
        if not self._running_job:
            self.output.setPlainText(str(entry.data(Qt.ItemDataRole.UserRole)))

    def _update_buttons(self) -> None:
        running = bool(self._running_job)
        has_prompt = bool(self.prompt.toPlainText().strip())
        has_model = bool(self.model_picker.current_model())
        has_output = bool(self.output.toPlainText().strip())
        self.generate_button.setEnabled(has_prompt and has_model and not running)
        self.stop_button.setEnabled(running)
        self.continue_button.setEnabled(has_prompt and has_model and has_output and not running)
        for widget in (self.copy_button, self.to_image, self.to_music):
            widget.setEnabled(has_output and not running)
        if not has_model:
            self.hint.setText("No text model found: add a model folder with 'studio models add FOLDER'.")
        elif not has_prompt:
            self.hint.setText(" ".join(["Write a prompt to generate.", self.model_picker.current_hint()]).strip())
        else:
            self.hint.setText(self.model_picker.current_hint())

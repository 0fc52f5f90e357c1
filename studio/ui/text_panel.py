"""The Text tab: prompt, system prompt and sampling settings in; streamed text out."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication, QKeySequence, QShortcut
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
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from studio.core.capabilities import Control
from studio.core.errors import InvalidRequest
from studio.core.events import EventKind, JobEvent
from studio.core.models import ModelSpec
from studio.core.requests import Request, TextRequest
from studio.ui.chat_view import ChatView
from studio.ui.jobs import Job, JobQueue
from studio.ui.panel_base import GenerationPanel, SpinBox, set_text
from studio.ui.widgets.adapter_list import TextLoraPicker
from studio.ui.widgets.controls import SeedField, button, double_spin_for, spin_for
from studio.ui.widgets.model_picker import ModelPicker
from studio.ui.widgets.readout import Readout
from studio.ui.widgets.streaming_text import StreamingTextEdit

if TYPE_CHECKING:
    from studio.gallery.store import GalleryItem
    from studio.runtime.services import Services
    from studio.runtime.sweeps import SweepJobs

# The speed readout while text streams: at most this often (the text itself shows every batch the
# bridge hands over, once a frame at most). A label whose text changes asks for a new layout.
_SPEED_EVERY_S = 0.25


class TextPanel(GenerationPanel):
    kind = "text"

    def __init__(self, services: Services, jobs: JobQueue, parent: QWidget | None = None) -> None:
        super().__init__(services, jobs, parent)
        self._started_at = 0.0
        self._speed_shown_at = 0.0
        self._first_token_at = 0.0
        self._tokens = 0
        self._build()
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
        self.system.setToolTip("Instructions for chat models: how the assistant should behave.")
        self.system.setMaximumHeight(70)

        self.max_tokens = spin_for(TextRequest, "max_tokens", "The most tokens to write.")
        self.temperature = double_spin_for(
            TextRequest, "temperature", "Higher is more surprising; 0 always picks the likeliest token."
        )
        self.top_p = double_spin_for(
            TextRequest, "top_p", "Sample only from the tokens making up this share of probability."
        )
        self.top_k = spin_for(TextRequest, "top_k", "Sample only from the k likeliest tokens; 0 is off.")
        self.repetition_penalty = double_spin_for(
            TextRequest, "repetition_penalty", "Above 1 discourages repeating what was written."
        )
        self.seed = SeedField("text")
        self.stop_strings = QPlainTextEdit()
        self.stop_strings.setAccessibleName("stop strings")
        self.stop_strings.setToolTip("Generation stops when the text contains one of these (one per line).")
        self.stop_strings.setPlaceholderText("one per line")
        # Two lines and the frame: the placeholder is never clipped.
        self.stop_strings.setFixedHeight(self.stop_strings.fontMetrics().lineSpacing() * 2 + 20)

        common = QFormLayout()
        common.addRow("Model", self.model_picker)
        self.lora_picker = TextLoraPicker()
        common.addRow("LoRA", self.lora_picker)
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
        self.sweep_button = button(
            "Sweep…",
            "sweep",
            "Vary up to three settings (X/Y/Z): a text per cell, then a table of them all (single prompts, "
            "not turns of a conversation)",
            self.open_sweep,
        )
        self._sweep_grids: set[str] = set()
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.sweep_button)
        buttons.addStretch(1)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        self.chat = ChatView(self, self.services.store)  # conversations, for chat models
        left_layout.addWidget(self.chat.mode_label)
        left_layout.addWidget(QLabel("Prompt"))
        left_layout.addWidget(self.prompt, 2)
        left_layout.addWidget(self.system)
        left_layout.addLayout(common)
        left_layout.addWidget(self.more_toggle)
        left_layout.addWidget(self.more)
        column = self.controls_column(left, buttons)

        self.output = StreamingTextEdit()  # chunks are laid out by Qt with the interpreter lock free
        self.output.setAccessibleName("generated text")
        self.output.setToolTip("The generated text; it streams in as the model writes.")
        self.output.setPlaceholderText("Generated text appears here as it is written.")
        self.stats = Readout("")  # re-set 4×/s while text streams: must not relayout the window
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
        splitter.addWidget(column)
        self.output_stack = QStackedWidget()  # continuation output, or the chat for chat models
        self.continuation_page = right
        self.output_stack.addWidget(right)
        self.output_stack.addWidget(self.chat)
        splitter.addWidget(self.output_stack)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)

        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.activated.connect(self.generate)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self).activated.connect(self.stop)

    def apply_model_info(self, info: Any, *, apply_defaults: bool) -> None:
        chat = bool(info is not None and info.chat)
        if info is not None:
            self.chat.set_mode(chat)
            self.output_stack.setCurrentWidget(self.chat if chat else self.continuation_page)
            self.generate_button.setText("Send" if chat else "Generate")

    def _toggle_more(self, shown: bool) -> None:
        self.more.setVisible(shown)
        self.more_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)

    # -- models -------------------------------------------------------------------

    def capability_widgets(self) -> dict[Control, list[QWidget]]:
        return {
            Control.SYSTEM_PROMPT: [self.system],
            Control.TEMPERATURE: [self.temperature],
            Control.TOP_P: [self.top_p],
            Control.TOP_K: [self.top_k],
            Control.REPETITION_PENALTY: [self.repetition_penalty],
            Control.STOP: [self.stop_strings],
        }

    def request_spins(self) -> dict[str, SpinBox]:
        return {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "repetition_penalty": self.repetition_penalty,
        }

    # -- requests -----------------------------------------------------------------

    def build_request(self, continue_from: str = "", prompt: str | None = None) -> TextRequest:
        """The request the controls describe; what the model does not use is left at its default."""
        use = self.used_value
        stops = tuple(line for line in self.stop_strings.toPlainText().splitlines() if line)
        return TextRequest(
            prompt=self.prompt.toPlainText() if prompt is None else prompt,
            model=self.model_picker.current_model(),
            seed=self.seed.value(),
            system=use(Control.SYSTEM_PROMPT, self.system.toPlainText(), TextRequest.system),
            max_tokens=self.max_tokens.value(),
            temperature=use(Control.TEMPERATURE, self.temperature.value(), TextRequest.temperature),
            top_p=use(Control.TOP_P, self.top_p.value(), TextRequest.top_p),
            top_k=use(Control.TOP_K, self.top_k.value(), TextRequest.top_k),
            repetition_penalty=use(
                Control.REPETITION_PENALTY, self.repetition_penalty.value(), TextRequest.repetition_penalty
            ),
            stop=use(Control.STOP, stops, TextRequest.stop),
            continue_from=continue_from,
            lora=self.lora_picker.current(),
            lora_weight=round(self.lora_picker.weight.value(), 2),
        )

    def generate(self) -> None:
        self._submit(continue_from="")

    def continue_text(self) -> None:
        self._submit(continue_from=self.output.toPlainText())

    def _submit(self, continue_from: str) -> None:
        if self.busy() or not self.generate_button.isEnabled():
            return
        try:
            request = self.build_request(continue_from)
        except InvalidRequest as exc:
            self.run_status.setText(str(exc))
            return
        if self.chat.active:  # the prompt box is the next message of the conversation
            request = self.chat.prepare(request)
        self.submit_request(request)

    def open_sweep(self) -> SweepJobs | None:
        """A sweep's cells stream into the text pane one after another (also for a chat model: they
        are single prompts, not turns), then the table of them all shows there."""
        if self.busy():
            return None
        jobs = super().open_sweep()
        if jobs is not None:
            self._sweep_grids.update(jobs.grids)
            self.output.clear()
            self.output_stack.setCurrentWidget(self.continuation_page)
        return jobs

    def submit_request(self, request: Request, parent: str | None = None) -> str | None:
        if self.busy():
            self.run_status.setText("Wait for the current text to finish (or stop it) first.")
            return None
        if not isinstance(request, TextRequest) or not request.continue_from:
            self.output.clear()
        self._reset_run_state()
        job = self.submit(request, parent)
        if isinstance(request, TextRequest) and request.conversation:
            self.output_stack.setCurrentWidget(self.chat)  # back from a sweep's texts
            self.chat.started(request)
        self.run_status.setText("Queued…")
        self._update_buttons()
        return job.id

    def set_request(self, request: Request, parent: str | None) -> None:
        assert isinstance(request, TextRequest)
        self.prompt.setPlainText(request.prompt)
        self.system.setPlainText(request.system)
        self.stop_strings.setPlainText("\n".join(request.stop))
        if request.seed is not None:
            self.seed.lock(request.seed)
        missing = self.lora_picker.set_from_request(request.lora, request.lora_weight)
        if missing:  # after the reuse's own status line
            QTimer.singleShot(0, self, lambda: self.show_status(f"{missing[0]} is not in your library."))

    def refresh_models(self, specs: list[ModelSpec], preferred: str = "") -> None:
        self.lora_picker.set_library(specs)
        super().refresh_models(specs, preferred)

    def open_conversation(self, item: GalleryItem) -> bool:
        """A conversation from the gallery, reopened with its model to continue; False for other items."""
        if not self.chat.is_conversation(item):
            return False
        model = str(item.record.model.get("path", ""))
        index = self.model_picker.findData(model) if model else -1
        if index >= 0:
            self.model_picker.setCurrentIndex(index)
        self.chat.open(item.id)
        self.output_stack.setCurrentWidget(self.chat)
        return True

    def continue_from_text(self, text: str) -> None:
        """Show ``text`` as the output, ready for Continue (the gallery's "Use as input")."""
        if not self.busy():
            self.output.setPlainText(text)
            self._update_buttons()

    def stop(self) -> None:
        self.cancel()

    def keep_stopped(self) -> None:
        """Save the stopped text after all."""
        saving = self.jobs.keep_partial(self.kind)
        self.keep_button.setVisible(False)
        if saving is not None:
            self.stopped_note.setText("Stopped — saving to the gallery…")

    def copy_output(self) -> None:
        QGuiApplication.clipboard().setText(self.output.toPlainText())

    def set_prompt(self, text: str) -> None:
        self.prompt.setPlainText(text)

    # -- events -------------------------------------------------------------------

    def handle_event(self, job: Job, event: JobEvent) -> None:
        if not job.is_generation:  # saving a stopped text
            if event.kind is EventKind.FINISHED:
                self.stopped_note.setText("Stopped — kept in the gallery")
                self._saved(job)
            elif event.kind is EventKind.ERROR:
                self.report_error(self.run_status, job)
            return
        if job.id in self._sweep_grids:
            if event.is_terminal:
                self._sweep_table_ended(job, event)
            return
        if event.kind is EventKind.STARTED:
            self._started_at = time.perf_counter()
            if self._sweep_grids:  # a sweep's next cell: its own text, its own speed
                self.output.clear()
                self._first_token_at, self._tokens, self._speed_shown_at = 0.0, 0, 0.0
            set_text(self.run_status, "Writing…")
        elif event.kind is EventKind.PREVIEW:
            if not self._first_token_at:
                self._first_token_at = time.perf_counter()
            self._append_stream(str(event.preview))
        elif event.kind is EventKind.PROGRESS:
            self._tokens = event.step
            if time.perf_counter() - self._speed_shown_at >= _SPEED_EVERY_S:
                self._show_speed(running=True)
        elif event.is_terminal:
            self.output.stream.end()
            self.chat.stream_ended()
            self._finish_run()
            if event.kind is EventKind.FINISHED:
                self.run_status.setText(" ".join(f"Note: {n}." for n in event.info.get("notes", [])))
                self._show_speed(running=False, info=event.info)
                self._saved(job)
            elif event.kind is EventKind.CANCELLED:
                self._show_speed(running=False)
                self.chat.stopped(job.partial)
                if job.partial:
                    self.stopped_note.setText("Stopped — not saved.")
                    self.keep_button.setVisible(True)
                else:
                    self.stopped_note.setText("Cancelled before any text was written.")
            else:
                self.report_error(self.run_status, job)
                self.chat.failed(job.error or "the reply failed")

    def _sweep_table_ended(self, job: Job, event: JobEvent) -> None:
        self._sweep_grids.discard(job.id)
        self._finish_run()
        if event.kind is EventKind.FINISHED and job.items:
            from studio.gallery.content import read_text_body

            table = read_text_body(job.items[0].path)
            self.output.setPlainText(table)
            self._add_history(job.items[0], table)
            self.run_status.setText("Sweep done: the table of its texts is in the gallery")
            self.items_saved.emit(list(job.items))
        elif event.kind is EventKind.ERROR:
            self.report_error(self.run_status, job)

    def _saved(self, job: Job) -> None:
        if self.chat.saved(job.items):  # a conversation's turn: the chat shows it
            self.items_saved.emit(list(job.items))
            return
        for item in job.items:
            self._add_history(item, self.output.toPlainText())
        self.items_saved.emit(list(job.items))

    def _reset_run_state(self) -> None:
        self._started_at = time.perf_counter()
        self._first_token_at = 0.0
        self._tokens = 0
        self._speed_shown_at = 0.0
        self.keep_button.setVisible(False)
        self.stopped_note.setText("")
        self.stats.setText("")
        self.run_status.setText("")

    def _finish_run(self) -> None:
        self._update_buttons()

    def _append_stream(self, chunk: str) -> None:
        """Add streamed text at the end (the bridge has joined a frame's chunks into one)."""
        if not chunk or self.chat.append(chunk):
            return
        self.output.stream.append(chunk)  # queued: Qt inserts it from its event loop

    def _show_speed(self, running: bool, info: dict[str, Any] | None = None) -> None:
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
        self._speed_shown_at = time.perf_counter()
        self.stats.setText(text + (" …" if running else ""))  # repaints only when the text changed

    def _add_history(self, item: GalleryItem, body: str) -> None:
        entry = QListWidgetItem(f"{item.record.prompt[:40]!s} → {body[:60]!s}".replace("\n", " "))
        entry.setData(Qt.ItemDataRole.UserRole, body)
        entry.setToolTip(str(item.path))
        self.history.insertItem(0, entry)

    def _show_history_item(self, entry: QListWidgetItem) -> None:
        if not self.busy():
            self.output.setPlainText(str(entry.data(Qt.ItemDataRole.UserRole)))

    def update_controls(self) -> None:
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.busy()
        has_prompt = bool(self.prompt.toPlainText().strip())
        has_model = bool(self.model_picker.current_model())
        has_output = bool(self.output.toPlainText().strip())
        can_run = has_prompt and has_model and self.runnable() and not running
        self.generate_button.setEnabled(can_run)
        self.stop_button.setEnabled(running)
        self.continue_button.setEnabled(can_run and has_output)
        self.sweep_button.setEnabled(can_run)
        for widget in (self.copy_button, self.to_image, self.to_music):
            widget.setEnabled(has_output and not running)
        self.apply_capabilities()
        self.update_hint(
            has_prompt=has_prompt,
            ask="Write a prompt to generate.",
            no_model="No text model found: add a model folder with 'studio models add FOLDER'.",
        )

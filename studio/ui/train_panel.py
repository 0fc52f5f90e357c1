"""The Train tab: learn from the artist's own work — what to learn from and its summary, how to
train, the run (loss curve, samples, time left, cancel and resume) and the new model, ready to use.

Everything slow happens on the worker: the data summary (``worker.summarize_training``, answered by
a ``data_summary`` event), the estimate (a run with ``estimate_only``) and the run itself (a job
through the ``JobQueue``). The tab reads nothing but the small card of a finished model.
"""

from __future__ import annotations

import dataclasses
import html
import json
import logging
import re
import secrets
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QKeySequence, QShortcut, QStandardItemModel
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
    QSplitter,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from studio.core.errors import InvalidRequest
from studio.core.events import EventKind, JobEvent
from studio.core.models import ModelSpec
from studio.core.requests import MAX_SEED, Request, field_limit
from studio.core.training import TRAINING_FILE, DataSummary, TrainingCard, TrainRequest
from studio.ui.jobs import Job, JobQueue, JobState
from studio.ui.panel_base import GenerationPanel, set_text, set_usable
from studio.ui.widgets.caption_editor import CaptionEditor
from studio.ui.widgets.controls import SeedField, button, double_spin_for, spin_for
from studio.ui.widgets.data_summary_view import DataSummaryView, format_bytes
from studio.ui.widgets.job_progress import format_seconds
from studio.ui.widgets.loss_curve import LossCurve
from studio.ui.widgets.model_picker import ModelPicker
from studio.ui.widgets.sample_strip import SampleStrip

if TYPE_CHECKING:
    from studio.runtime.services import Services
    from studio.ui.gallery_panel import GalleryPanel

log = logging.getLogger(__name__)

# (label, medium, the gallery kind of its items, the formats Studio can train, words for the set)
MEDIA = (
    ("Images", "image", "image", ("diffusers-image",), "images"),
    ("Texts", "text", "text", ("transformers-text",), "texts"),
    ("Tunes", "music", "music", ("melody",), "tunes"),
)
SOURCES = (
    ("Gallery selection", "selection"),
    ("Gallery favourites", "favourites"),
    ("Gallery search", "search"),
    ("A folder", "folder"),
)
# How ``TrainRequest.data`` names gallery items (``studio.runtime.training.gather_sources``).
GALLERY_ITEM = "gallery:"
GALLERY_FAVOURITES = "gallery:favourites"
GALLERY_SEARCH = "gallery:search:"
# The bases TRAINING.md names as each medium's default (the starters for text and music).
DEFAULT_BASES = {"text": "studio-starter-text", "music": "studio-starter-melody"}
_HOW_TO_ADD = {
    "image": " Add a Stable Diffusion model (a diffusers folder) in Models ▸ Model manager to train a LoRA on it.",
    "text": " Add a transformers text model in Models ▸ Model manager.",
}
FULL_ONLY_REASON = "A full fine-tune trains every weight: rank and alpha are for a LoRA."
NO_FULL_IMAGE = "Diffusion models are trained as a LoRA here: a full fine-tune needs far more memory and data."
# A diffusers base this large is a real Stable Diffusion model: on a CPU it needs a GPU to train.
_GPU_SIZE_BYTES = 300 * 2**20
_SLUG = re.compile(r"[^a-z0-9._-]+")


def _medium_row(medium: str) -> tuple[str, str, str, tuple[str, ...], str]:
    return next(row for row in MEDIA if row[1] == medium)


def trainable(spec: ModelSpec, medium: str) -> bool:
    """Whether Studio's trainer of ``medium`` can train ``spec`` (by its format, as the trainers do)."""
    return spec.runnable and spec.kind == _medium_row(medium)[2] and spec.format in _medium_row(medium)[3]


def default_method(spec: ModelSpec | None) -> str:
    """The method a base starts with: a full fine-tune for the small bundled starters, else a LoRA."""
    if spec is None:
        return "lora"
    if spec.format == "melody" or (spec.source == "bundled" and spec.kind == "text"):
        return "full"
    return "lora"


def slug(name: str) -> str:
    """The folder a run named ``name`` installs into (the runtime's rule: lower case, spaces → -)."""
    return _SLUG.sub("-", name.strip().lower().replace(" ", "-"))


def needs_gpu(spec: ModelSpec | None, device_info: dict[str, Any] | None) -> bool:
    """A real Stable Diffusion base on a machine without a GPU: the run would take many hours."""
    if spec is None or spec.format != "diffusers-image":
        return False
    info = device_info or {}
    on_cpu = not info.get("gpu_available") and str(info.get("device", "cpu")) in ("cpu", "")
    return on_cpu and int(spec.details.get("size_bytes", 0) or 0) >= _GPU_SIZE_BYTES


class TrainPanel(GenerationPanel):
    """The Train tab (``kind`` "train": its jobs in the queue are training runs)."""

    kind = "train"
    what = "training run"
    # A run installed a model or adapter: every model picker should list it now.
    models_changed = Signal()
    # "Use it": the finished run (``TrainedModel.to_dict()`` plus ``medium``, ``name`` and ``base``).
    use_requested = Signal(object)

    def __init__(
        self, services: Services, jobs: JobQueue, gallery: GalleryPanel | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(services, jobs, parent)
        self.gallery = gallery
        self._specs: list[ModelSpec] = []
        self._searching = False  # the window is still finding the models: no base to offer yet
        self._folder = ""
        self._gallery_refs: tuple[str, ...] = ()
        self._gallery_note = ""
        self._gallery_count = 0
        self._summary_job = ""
        self._summary_for: tuple[str, tuple[str, ...]] = ("", ())
        self._estimate_job = ""
        self._run_job = ""
        self._last_run: TrainRequest | None = None
        self._checkpoint = ""
        self._result: dict[str, Any] | None = None
        self._suggested_name = ""
        self._estimate_total = 0
        self._trained_step = 0  # the last step the running job trained (not read, not saved)
        self._summary_timer = QTimer(self)
        self._summary_timer.setSingleShot(True)
        self._summary_timer.setInterval(300)
        self._summary_timer.timeout.connect(self.request_summary)
        self._build()
        jobs.data_summarized.connect(self._data_summarized)
        self._medium_changed()

    # -- layout -------------------------------------------------------------------------

    def _build(self) -> None:
        # What to learn from.
        self.medium = QComboBox()
        self.medium.setAccessibleName("medium")
        self.medium.setToolTip("What the new model makes: images (a LoRA), texts or tunes")
        for label, medium, *_rest in MEDIA:
            self.medium.addItem(label, medium)
        self.medium.setCurrentIndex(self.medium.findData("text"))
        self.medium.currentIndexChanged.connect(self._medium_changed)
        self.source = QComboBox()
        self.source.setAccessibleName("source")
        self.source.setToolTip("Learn from gallery items (the selection, favourites, the current search) or a folder")
        for label, value in SOURCES:
            self.source.addItem(label, value)
        self.source.setCurrentIndex(self.source.findData("folder"))
        self.source.activated.connect(lambda _index: self._source_chosen())
        self.folder_button = button(
            "Folder…", "choose folder", "Choose a folder of your own work to learn from", self.choose_folder
        )
        self.source_label = QLabel("No folder chosen")
        self.source_label.setWordWrap(True)
        self.source_label.setAccessibleName("chosen data")
        self.source_label.setToolTip("What the run learns from")
        self.name = QLineEdit()
        self.name.setAccessibleName("name")
        self.name.setToolTip("The new model's name in the library (letters, digits, spaces, . _ -)")
        self.name.setMaxLength(64)
        self.name.textChanged.connect(self._settings_changed)
        self.rights = QLineEdit()
        self.rights.setAccessibleName("rights statement")
        self.rights.setPlaceholderText("my own work · licensed CC-BY from …")
        self.rights.setToolTip("Whose work this is and on what terms: kept with the model and in what it makes")
        what = QFormLayout()
        what.addRow("Medium", self.medium)
        source_row = QHBoxLayout()
        source_row.addWidget(self.source, 1)
        source_row.addWidget(self.folder_button)
        what.addRow("From", source_row)
        what.addRow("", self.source_label)
        what.addRow("Name", self.name)
        what.addRow("Rights", self.rights)
        what_box = QGroupBox("What to learn")
        what_box.setLayout(what)

        # How.
        self.model_picker = ModelPicker("text")
        self.model_picker.setAccessibleName("base model")
        self.model_picker.setToolTip("The model the new one starts from")
        self.model_picker.model_changed.connect(self._base_changed)
        self.method = QComboBox()
        self.method.setAccessibleName("method")
        self.method.setToolTip("A LoRA: a small adapter over the base. A full fine-tune: a new copy of the model")
        self.method.addItem("LoRA", "lora")
        self.method.addItem("Full fine-tune", "full")
        self.method.currentIndexChanged.connect(self._method_changed)
        self.steps = self._spin("steps", "Optimiser steps (0: the trainer's default for this base)")
        self.epochs = self._spin("epochs", "Passes over the data; when set, it decides the steps")
        self.learning_rate = double_spin_for(
            TrainRequest, "learning_rate", "How big each step is (0: the default for this base)", decimals=5
        )
        self.learning_rate.setSpecialValueText("default")
        self.rank = self._spin("rank", "The LoRA's rank: higher learns more detail, and is larger")
        self.alpha = double_spin_for(TrainRequest, "alpha", "The LoRA's scale (0: the rank)", decimals=0)
        self.alpha.setSpecialValueText("= rank")
        self.batch_size = self._spin("batch_size", "Examples per step: 1 fits the smallest memory")
        self.resolution = self._spin("resolution", "The pictures' side while training (0: the base's native size)")
        self.resolution.setSuffix(" px")
        self.seq_len = self._spin("seq_len", "Tokens per example (0: the default)")
        self.trigger = QLineEdit()
        self.trigger.setAccessibleName("trigger word")
        self.trigger.setPlaceholderText("e.g. mystyle")
        self.trigger.setToolTip("A word added to every caption: put it in a prompt to call up what was learned")
        self.prompt = QPlainTextEdit()
        self.prompt.setAccessibleName("sample prompts")
        self.prompt.setPlaceholderText("One prompt per line: samples made with them while it trains")
        self.prompt.setToolTip("Fixed prompts sampled every few steps, so you can see the model change")
        self.prompt.setFixedHeight(self.prompt.fontMetrics().lineSpacing() * 3 + 14)
        self.sample_every = self._spin("sample_every", "Make samples every this many steps (0: four times a run)")
        self.sample_every.setSuffix(" steps")
        self.seed = SeedField("run")
        self.seed.lock(0)
        self.seed.random.setToolTip("Draw a new seed for the run (it is kept on the model's card)")
        self.seed.edit.setToolTip("The seed of the run: the same seed, data and settings train the same model")
        self.gradient_checkpointing = QCheckBox("Save memory (gradient checkpointing)")
        self.gradient_checkpointing.setAccessibleName("gradient checkpointing")
        self.gradient_checkpointing.setToolTip("Slower steps, much less memory: try it when a run runs out of memory")
        self.estimate_label = QLabel()
        self.estimate_label.setWordWrap(True)
        self.estimate_label.setAccessibleName("estimate")
        self.estimate_label.setToolTip("How long the run would take, measured on its first steps")
        self.how = QFormLayout()
        self.how.addRow("Base", self.model_picker)
        self.how.addRow("Method", self.method)
        self.how.addRow("Steps", self.steps)
        self.how.addRow("Epochs", self.epochs)
        self.how.addRow("Learning rate", self.learning_rate)
        self.how.addRow("Rank", self.rank)
        self.how.addRow("Alpha", self.alpha)
        self.how.addRow("Batch", self.batch_size)
        self.how.addRow("Resolution", self.resolution)
        self.how.addRow("Sequence", self.seq_len)
        self.how.addRow("Trigger", self.trigger)
        self.how.addRow("Samples of", self.prompt)
        self.how.addRow("Sample", self.sample_every)
        self.how.addRow("Seed", self.seed)
        self.how.addRow("", self.gradient_checkpointing)
        # Shown only where a run would need a GPU (a real-size image base on a CPU): without it the run
        # stops after timing its first steps and says how long it would take.
        self.allow_cpu = QCheckBox("Train on the CPU anyway")
        self.allow_cpu.setAccessibleName("train on the CPU anyway")
        self.allow_cpu.setToolTip("Hours on a CPU where a GPU takes minutes; Estimate says how long")
        self.allow_cpu.setVisible(False)
        self.how.addRow("", self.allow_cpu)
        how_box = QGroupBox("How")
        how_box.setLayout(self.how)
        for widget in (self.steps, self.epochs, self.rank, self.batch_size, self.resolution, self.seq_len):
            widget.valueChanged.connect(self._settings_changed)

        buttons = self.build_run_controls()
        self.generate_button.setText("Train")
        self.generate_button.setAccessibleName("train")
        self.generate_button.setToolTip("Start training (Ctrl+Enter)")
        self.cancel_button.setToolTip("Stop the run; its last checkpoint is kept and Resume continues it (Esc)")
        self.estimate_button = button(
            "Estimate", "estimate", "Time the first few steps and say how long the run would take", self.estimate
        )
        self.resume_button = button(
            "Resume", "resume", "Continue the stopped run from its last checkpoint", self.resume
        )
        self.start_over_button = button(
            "Start over",
            "start over",
            "Delete the stopped run's checkpoint, so Train starts this name from the beginning",
            self.start_over,
        )
        buttons.insertWidget(1, self.estimate_button)
        buttons.insertWidget(3, self.resume_button)
        buttons.insertWidget(4, self.start_over_button)
        self.progress.idle()
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(what_box)
        left_layout.addWidget(how_box)
        left_layout.addStretch(1)
        column = self.controls_column(left, buttons)
        # The estimate stays in sight under the progress, not at the end of the settings.
        self.footer.insertWidget(self.footer.indexOf(self.progress) + 1, self.estimate_label)
        self.estimate_label.setVisible(False)

        # The data, the run and the result, each a page.
        self.summary_view = DataSummaryView()
        self.files = CaptionEditor()
        self.files.edited.connect(self._settings_changed)
        data_split = QSplitter(Qt.Orientation.Horizontal)
        data_split.addWidget(self.files)
        data_split.addWidget(self.summary_view)
        data_split.setStretchFactor(0, 1)
        data_split.setStretchFactor(1, 1)
        self.run_line = QLabel("Not started")
        self.run_line.setWordWrap(True)
        self.run_line.setAccessibleName("run")
        self.run_line.setToolTip("The phase of the run, its step, the loss and the time left")
        self.curve = LossCurve()
        self.samples = SampleStrip(self.services.paths.cache / "training-samples")
        run_split = QSplitter(Qt.Orientation.Horizontal)
        run_split.addWidget(self.curve)
        run_split.addWidget(self.samples)
        run_split.setStretchFactor(0, 3)
        run_split.setStretchFactor(1, 2)
        run_page = QWidget()
        run_layout = QVBoxLayout(run_page)
        run_layout.addWidget(self.run_line)
        run_layout.addWidget(run_split, 1)
        self.card = QTextBrowser()
        self.card.setAccessibleName("trained model card")
        self.card.setToolTip("What the new model is: its base, the files it learned from, its loss and time")
        self.card.setHtml("<p>The new model's card appears here when a run finishes.</p>")
        self.use_button = button(
            "Use it", "use trained model", "Open the new model (or LoRA) in its tab, selected", self.use_result
        )
        self.use_button.setDefault(True)
        self.show_button = button(
            "Show folder", "show model folder", "Open the folder the new model was installed in", self._show_folder
        )
        result_actions = QHBoxLayout()
        result_actions.addWidget(self.use_button)
        result_actions.addWidget(self.show_button)
        result_actions.addStretch(1)
        result_page = QWidget()
        result_layout = QVBoxLayout(result_page)
        result_layout.addWidget(self.card, 1)
        result_layout.addLayout(result_actions)
        self.pages = QTabWidget()
        self.pages.setAccessibleName("training pages")
        self.pages.addTab(data_split, "Data")
        self.pages.addTab(run_page, "Run")
        self.pages.addTab(result_page, "Result")
        self.data_page, self.run_page, self.result_page = data_split, run_page, result_page

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(column)
        splitter.addWidget(self.pages)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            QShortcut(QKeySequence(keys), self).activated.connect(self.generate)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self).activated.connect(self.cancel)

    def _spin(self, field_name: str, tip: str) -> QSpinBox:
        box = spin_for(TrainRequest, field_name, tip)
        if field_limit(TrainRequest, field_name).low == 0:
            box.setSpecialValueText("default" if field_name != "epochs" else "steps decide")
        return box

    # -- what to learn from ----------------------------------------------------------------

    def current_medium(self) -> str:
        return str(self.medium.currentData())

    def current_source(self) -> str:
        return str(self.source.currentData())

    def set_medium(self, medium: str) -> None:
        index = self.medium.findData(medium)
        if index >= 0 and index != self.medium.currentIndex():
            self.medium.setCurrentIndex(index)

    def _medium_changed(self, *_args: object) -> None:
        self._apply_medium()
        if self.current_source() != "folder":
            self._take_gallery(self.current_source())
        self._schedule_summary()
        self.update_controls()

    def _apply_medium(self) -> None:
        """Show the settings of the chosen medium and list its bases."""
        medium = self.current_medium()
        images = medium == "image"
        for widget, shown in ((self.resolution, images), (self.trigger, images), (self.seq_len, not images)):
            self.how.setRowVisible(widget, shown)
        self.files.set_captions_shown(images)
        self.model_picker.kind = _medium_row(medium)[2]
        self._fill_bases()
        self._suggest_name()

    def _source_chosen(self) -> None:
        source = self.current_source()
        if source == "folder":
            if not self._folder:
                self.choose_folder()
        else:
            self._take_gallery(source)
        self._show_source()
        self._schedule_summary()
        self.update_controls()

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Learn from a folder", self._folder or str(Path.home()))
        if folder:
            self.set_folder(folder)

    def set_folder(self, folder: str) -> None:
        """Learn from ``folder`` (as if chosen with Folder…)."""
        self._folder = str(folder)
        self._summary_for = ("", ())  # chosen again: read it again (files may have changed)
        self.source.setCurrentIndex(self.source.findData("folder"))
        self._show_source()
        self._schedule_summary()
        self.update_controls()

    def _take_gallery(self, source: str) -> None:
        """The gallery items of ``source`` of this medium: the selection now (``gallery:<id>`` each),
        the favourites (``gallery:favourites``) or the current search (``gallery:search:<words>``) —
        the last two as the runtime reads them, so the card says what was chosen."""
        kind = _medium_row(self.current_medium())[2]
        if source == "selection":
            items = self.gallery.selected_items() if self.gallery is not None else []
            self._set_gallery(source, [item.id for item in items if item.kind == kind])
        else:
            self._set_gallery(source, [])

    def _set_gallery(self, source: str, ids: list[str], left_out: int = 0) -> None:
        store = self.services.store
        kind = _medium_row(self.current_medium())[2]
        note = f"({left_out} of another kind left out)" if left_out else ""
        if source == "favourites":
            self._gallery_refs = (GALLERY_FAVOURITES,)
            self._gallery_count = len(store.ids(kind=kind, favourites=True))
        elif source == "search":
            words = self.gallery.search.text().strip() if self.gallery is not None else ""
            self._gallery_refs = (GALLERY_SEARCH + words,) if words else ()
            self._gallery_count = len(store.ids(kind=kind, search=words)) if words else 0
            note = f"matching “{words}” {note}".strip() if words else "(the gallery has no search)"
        else:
            self._gallery_refs = tuple(GALLERY_ITEM + item_id for item_id in ids)
            self._gallery_count = len(ids)
        self._gallery_note = note

    def train_on(self, source: str, item_ids: list[str]) -> None:
        """The gallery's "Train on …": learn from these items (of their most common kind)."""
        items = self.services.store.get_many(list(item_ids))
        kinds = Counter(item.kind for item in items.values())
        if not kinds:
            self.show_status("None of those gallery items can be found.")
            return
        medium_kind = kinds.most_common(1)[0][0]
        medium = next((m for _l, m, k, _f, _w in MEDIA if k == medium_kind), "text")
        chosen = [item_id for item_id in item_ids if item_id in items and items[item_id].kind == medium_kind]
        source = source if source in dict(SOURCES).values() and source != "folder" else "selection"
        self.source.setCurrentIndex(self.source.findData(source))
        self.medium.blockSignals(True)
        self.set_medium(medium)
        self.medium.blockSignals(False)
        self._apply_medium()
        self._set_gallery(source, chosen, left_out=len(item_ids) - len(chosen))
        self._summary_for = ("", ())
        self._schedule_summary()
        self.update_controls()
        self.pages.setCurrentWidget(self.data_page)

    def data_refs(self) -> tuple[str, ...]:
        """What the run learns from, as ``TrainRequest.data`` takes it."""
        if self.current_source() == "folder":
            return (self._folder,) if self._folder else ()
        return self._gallery_refs

    def _show_source(self) -> None:
        source = self.current_source()
        words = _medium_row(self.current_medium())[4]
        if source == "folder":
            text = self._folder or "No folder chosen"
        else:
            count = self._gallery_count
            label = dict((v, k) for k, v in SOURCES)[source].lower()
            what = words[:-1] if count == 1 else words
            text = f"{count} {what} from the {label}" if count else f"No {words} in the {label}"
            if self._gallery_note:
                text += f" {self._gallery_note}"
        set_text(self.source_label, text)
        self.folder_button.setVisible(source == "folder")

    # -- the summary -------------------------------------------------------------------------

    def _schedule_summary(self) -> None:
        self._show_source()
        if not self.data_refs():
            self._summary_job = ""
            self._summary_for = ("", ())
            self.summary_view.clear()
            self.files.show_summary(None)
            return
        if self._summary_for == (self.current_medium(), self.data_refs()) and self.summary_view.summary is not None:
            return
        self.summary_view.waiting()
        self._summary_timer.start()

    def request_summary(self) -> str:
        """Ask the worker what the chosen data holds; the answer comes as a ``data_summary`` event."""
        refs = self.data_refs()
        if not refs:
            return ""
        try:
            request = TrainRequest(
                medium=self.current_medium(),
                data=refs,
                name="summary",  # the summary does not depend on the name (a half-typed one may be invalid)
                rights=self.rights.text().strip(),
                captions=self.files.captions() if self.current_medium() == "image" else (),
            )
        except InvalidRequest as exc:
            self.summary_view.show_error(str(exc))
            return ""
        try:
            self._summary_job = self.services.worker.summarize_training(request)
        except RuntimeError:  # the worker shut down (the window is closing)
            return ""
        self._summary_for = (request.medium, refs)
        return self._summary_job

    def _data_summarized(self, event: JobEvent) -> None:
        if event.job_id == self._run_job and isinstance(event.result, DataSummary):
            # The run read its data again: this is exactly what it learns from.
            self.summary_view.show_summary(event.result)
            return
        if event.job_id != self._summary_job:
            return  # an answer about a set no longer chosen
        if event.error or not isinstance(event.result, DataSummary):
            self.summary_view.show_error(event.error or "no summary came back")
            self.files.show_summary(None)
        else:
            self.summary_view.show_summary(event.result)
            self.files.show_summary(event.result)
        self.update_controls()

    @property
    def summary(self) -> DataSummary | None:
        return self.summary_view.summary

    # -- bases and methods ------------------------------------------------------------------------

    def refresh_models(self, specs: list[ModelSpec], preferred: str = "") -> None:
        self._specs = list(specs)
        self._searching = False
        self._fill_bases(preferred)
        self._suggest_name()
        self.update_controls()

    def looking_for_models(self) -> None:
        self._searching = True
        super().looking_for_models()

    def _fill_bases(self, preferred: str = "") -> None:
        if self._searching:  # a medium chosen before the models are found: still looking
            self.model_picker.set_searching()
            return
        medium = self.current_medium()
        chosen = preferred or self.model_picker.current_model() or ""
        fitting = [spec for spec in self._specs if trainable(spec, medium)]
        default = DEFAULT_BASES.get(medium, "")
        if not chosen or not any(chosen in (str(s.path), s.id, s.name) for s in fitting):
            chosen = next((str(s.path) for s in fitting if default in (s.id, s.name)), "")
        self.model_picker.set_models(fitting, chosen)
        if not fitting:
            self.model_picker.setItemText(0, f"No {_medium_row(medium)[4][:-1]} model that Studio can train")

    def base_spec(self) -> ModelSpec | None:
        path = self.model_picker.current_model()
        return next((spec for spec in self._specs if str(spec.path) == path), None) if path else None

    def _base_changed(self, _model: str = "") -> None:
        spec = self.base_spec()
        model = self.method.model()
        full = model.item(1) if isinstance(model, QStandardItemModel) else None
        if full is not None:
            image = self.current_medium() == "image"
            full.setEnabled(not image)
            full.setToolTip(NO_FULL_IMAGE if image else "")
        self.method.setCurrentIndex(self.method.findData(default_method(spec)))
        self._method_changed()

    def _method_changed(self, *_args: object) -> None:
        lora = self.method.currentData() == "lora"
        for widget in (self.rank, self.alpha):
            set_usable(widget, lora, FULL_ONLY_REASON)
        self.update_controls()

    def _suggest_name(self) -> None:
        """A free name for the result ("My tunes 2"), unless the artist typed their own."""
        current = self.name.text().strip()
        if current and current != self._suggested_name:
            return
        taken = {spec.name.lower() for spec in self._specs} | {slug(spec.name) for spec in self._specs}
        words = _medium_row(self.current_medium())[4]
        number = 1
        while f"my {words} {number}" in taken or slug(f"My {words} {number}") in taken:
            number += 1
        self._suggested_name = f"My {words} {number}"
        self.name.setText(self._suggested_name)

    def _settings_changed(self, *_args: object) -> None:
        estimating = self.jobs.get(self._estimate_job) if self._estimate_job else None
        if estimating is None or estimating.done:
            self._say_estimate("")  # it spoke of other settings
        self.action_taken()
        self.update_controls()

    # -- the request ---------------------------------------------------------------------------------

    def build_request(self) -> TrainRequest:  # type: ignore[override]
        """The run the controls describe; what the medium or method does not use stays at its default."""
        medium = self.current_medium()
        images = medium == "image"
        lora = self.method.currentData() == "lora"
        seed = self.seed.value()
        prompts = tuple(line.strip() for line in self.prompt.toPlainText().splitlines() if line.strip())
        return TrainRequest(
            medium=medium,
            data=self.data_refs(),
            name=self.name.text().strip(),
            base=self.model_picker.current_model(),
            method=str(self.method.currentData()),
            steps=self.steps.value(),
            epochs=self.epochs.value(),
            rank=self.rank.value() if lora else TrainRequest.rank,
            alpha=float(self.alpha.value()) if lora else TrainRequest.alpha,
            learning_rate=float(self.learning_rate.value()),
            batch_size=self.batch_size.value(),
            resolution=self.resolution.value() if images else 0,
            seq_len=0 if images else self.seq_len.value(),
            trigger=self.trigger.text().strip() if images else "",
            rights=self.rights.text().strip(),
            captions=self.files.captions() if images else (),
            seed=secrets.randbelow(MAX_SEED + 1) if seed is None else seed,
            sample_every=self.sample_every.value(),
            sample_prompts=prompts,
            gradient_checkpointing=self.gradient_checkpointing.isChecked(),
            allow_cpu=not self.allow_cpu.isHidden() and self.allow_cpu.isChecked(),
        )

    def set_request(self, request: Request, parent: str | None) -> None:
        raise NotImplementedError("a training run is not reused from a gallery item")

    def submit_request(self, request: Any, parent: str | None = None) -> str | None:
        job = self.jobs.submit_training(self.kind, request)
        if request.estimate_only:
            self._estimate_job = job.id
            self._say_estimate("Estimating: timing the first steps…")
        else:
            self._run_job = job.id
            self._last_run = request
            if not request.resume:
                self.curve.clear()
                self.samples.clear()
            self._checkpoint = ""
            self._trained_step = 0
            self.pages.setCurrentWidget(self.run_page)
            set_text(self.run_line, "Waiting for the worker…")
        self.progress.waiting("Waiting for the worker…")
        self.update_controls()
        return job.id

    def generate(self) -> None:
        """Train (the Train button, Ctrl+Enter)."""
        if not self.generate_button.isEnabled():
            return
        try:
            request = self.build_request()
        except InvalidRequest as exc:
            self.run_status.setText(str(exc))
            return
        self.submit_request(request)

    def estimate(self) -> None:
        if not self.estimate_button.isEnabled():
            return
        try:
            request = dataclasses.replace(self.build_request(), estimate_only=True)
        except InvalidRequest as exc:
            self.run_status.setText(str(exc))
            return
        self.submit_request(request)

    def resume(self) -> None:
        """Continue the stopped run from its checkpoint: this session's run as it was asked, or (a run
        stopped in an earlier session) the one the controls describe, by its name."""
        if not self.resume_button.isEnabled():
            return
        last = self._last_run
        if last is None or last.name != self.name.text().strip():
            try:
                last = self.build_request()
            except InvalidRequest as exc:
                self.run_status.setText(str(exc))
                return
        self.submit_request(dataclasses.replace(last, resume=True, estimate_only=False))

    def pending_checkpoint(self) -> Path | None:
        """The checkpoint a stopped run of the name in the Name field left (in any session), or None."""
        from studio.runtime.training import pending_checkpoint

        data_dir = getattr(self.services.worker, "data_dir", None)
        name = self.name.text().strip()
        if data_dir is None or not name:
            return None
        try:
            return pending_checkpoint(Path(data_dir), name)
        except (OSError, ValueError):
            return None

    def start_over(self) -> None:
        """Discard the stopped run's checkpoint (the next Train of this name starts from step 0)."""
        from studio.runtime.training import discard_checkpoint

        data_dir = getattr(self.services.worker, "data_dir", None)
        if data_dir is None or self.busy():
            return
        try:
            discard_checkpoint(Path(data_dir), self.name.text().strip())
        except OSError as exc:
            self.run_status.setText(f"Could not delete the checkpoint: {exc}")
            return
        self._checkpoint = ""
        self.show_status(f"The checkpoint of {self.name.text().strip()} is gone: Train starts it from the beginning.")
        self.update_controls()

    # -- the run's events --------------------------------------------------------------------------

    def handle_event(self, job: Job, event: JobEvent) -> None:
        if job.id == self._estimate_job:
            self._estimate_event(job, event)
        elif job.id == self._run_job:
            self._run_event(job, event)
        if event.is_terminal and not self.busy():
            self.progress.idle()

    def _run_event(self, job: Job, event: JobEvent) -> None:
        if event.kind is EventKind.STARTED:
            self.progress.waiting("Reading the data…")
            set_text(self.run_line, "Reading the data…")
        elif event.kind is EventKind.PROGRESS:
            self._show_run_progress(event)
        elif event.kind is EventKind.PREVIEW and isinstance(event.preview, dict):
            self.samples.add(event.preview)
        elif event.kind is EventKind.FINISHED:
            self._finished(job)
        elif event.kind in (EventKind.CANCELLED, EventKind.ERROR):
            self._stopped(job, event)

    def _show_run_progress(self, event: JobEvent) -> None:
        info = event.info or {}
        phase = str(info.get("phase", "training"))
        if phase != "reading":  # reading counts files, not steps
            self.curve.set_total(event.total)
        self.curve.merge(info.get("recent") or ())
        if "loss" in info and event.step:
            self.curve.merge([(event.step, info["loss"])])
        if phase == "training":
            self._trained_step = event.step
        parts = [phase.capitalize(), f"step {event.step:,} / {event.total:,}"]
        if info.get("epoch") is not None:
            parts.append(f"epoch {info['epoch']}")
        if info.get("loss") is not None:
            parts.append(f"loss {float(info['loss']):.4f}")
        if info.get("learning_rate") is not None:
            parts.append(f"lr {float(info['learning_rate']):.2g}")
        left = info.get("eta_s")
        if left is not None and event.step < event.total:
            parts.append(f"{format_seconds(float(left))} left")
        set_text(self.run_line, " · ".join(parts))
        total = max(1, event.total)
        if self.progress.maximum() != total:
            self.progress.setRange(0, total)
        self.progress.setValue(min(event.step, total))
        bar = f"{phase.capitalize()} {event.step}/{event.total}"
        if left is not None and event.step < event.total:
            bar += f" · {format_seconds(float(left))} left"
        self.progress.setFormat(bar)

    def _finished(self, job: Job) -> None:
        result = dict(job.result) if isinstance(job.result, dict) else {}
        request = self._last_run
        result.setdefault("medium", request.medium if request is not None else self.current_medium())
        result.setdefault("name", request.name if request is not None else "")
        result.setdefault("base", request.base if request is not None else "")
        self._result = result
        self._checkpoint = ""
        self.card.setHtml(self.card_html(result))
        self.pages.setCurrentWidget(self.result_page)
        final = result.get("final_loss")
        loss = f", final loss {float(final):.4f}" if isinstance(final, (int, float)) else ""
        seconds = float(result.get("duration_s") or job.seconds)
        self.run_status.setText(f"Trained {result.get('name') or 'the model'} in {format_seconds(seconds)}{loss}.")
        set_text(self.run_line, f"Done · {result.get('steps', job.step)} steps{loss}")
        self.models_changed.emit()

    def _stopped(self, job: Job, event: JobEvent) -> None:
        self._checkpoint = str((event.info or {}).get("checkpoint") or "")
        if self._checkpoint:
            kept = " The last checkpoint is kept: Resume continues from it."
        elif self._trained_step:
            kept = " No checkpoint was written yet: Train starts it again."
        else:
            kept = ""
        if event.kind is EventKind.CANCELLED:
            at = f" at step {self._trained_step}" if self._trained_step else ""
            self.run_status.setText(f"Cancelled{at}.{kept}")
            set_text(self.run_line, f"Cancelled at step {self._trained_step:,} / {job.total:,}" if at else "Cancelled")
        else:
            self.report_error(self.run_status, job)
            self.run_status.setText(f"Training stopped: {job.error}{kept}")
            set_text(self.run_line, "Stopped by an error")

    def _estimate_event(self, job: Job, event: JobEvent) -> None:
        info = event.info or {}
        if event.kind is EventKind.STARTED:
            self.progress.waiting("Estimating…")
        elif event.kind is EventKind.PROGRESS:
            self._estimate_total = event.total
            self.progress.setRange(0, max(1, event.total))
            self.progress.setValue(min(event.step, event.total))
            self.progress.setFormat(f"Estimating · step {event.step}")
            if info.get("eta_s") is not None:
                job.info["estimate_eta_s"] = info["eta_s"]
        elif event.kind is EventKind.FINISHED:
            self._say_estimate(self.estimate_text(job))
        elif event.kind is EventKind.ERROR:
            self.report_error(self.run_status, job)
            self.run_status.setText(f"Could not estimate: {job.error}")
            self._say_estimate("")
        elif event.kind is EventKind.CANCELLED:
            self._say_estimate("Estimate cancelled.")

    def _say_estimate(self, text: str) -> None:
        set_text(self.estimate_label, text)
        self.estimate_label.setVisible(bool(text))

    def estimate_text(self, job: Job) -> str:
        """What the finished estimate says: the time for the whole run, measured on the first steps;
        on a CPU with a real Stable Diffusion base, that it needs a GPU."""
        result = job.result if isinstance(job.result, dict) else {}
        seconds = result.get("estimated_s", job.info.get("estimate_eta_s"))
        steps = int(result.get("steps") or self._estimate_total or job.total)
        measured = job.step
        per_step = result.get("seconds_per_step")
        device = str(result.get("device") or (self.services.worker.device_info or {}).get("name", ""))
        if not isinstance(seconds, (int, float)):
            return "The first steps ran, but no time came back to estimate from."
        text = f"About {format_seconds(float(seconds))} for {steps:,} steps"
        if measured:
            text += f" (measured on the first {measured}"
            text += f", {float(per_step):.2g} s a step)" if isinstance(per_step, (int, float)) else ")"
        if device:
            text += f" on {device}"
        text += ", plus the samples."
        if needs_gpu(self.base_spec(), self.services.worker.device_info):
            text = (
                f"This needs a GPU: {text[0].lower()}{text[1:]} "
                "Train it on a machine with one, or choose a smaller base."
            )
        return text

    # -- the result --------------------------------------------------------------------------------

    def card_html(self, result: dict[str, Any]) -> str:
        """The new model's card, as the tab shows it: from the run's result and its training file."""
        card = read_training_card(Path(str(result.get("path", ""))))
        rows: list[tuple[str, str]] = [("Name", str(result.get("name") or (card.name if card else "")))]
        kind = str(result.get("kind", ""))
        rows.append(("Kind", "LoRA (an adapter)" if kind == "lora" else f"a {kind} model (full fine-tune)"))
        if card is not None:
            rows.append(("Base", f"{card.base.get('name', '')} · sha256 {str(card.base.get('sha256', ''))[:12]}…"))
            rows.append(("Device", card.device))
            if card.data.rights:
                rows.append(("Rights", card.data.rights))
            rows.append(("Data", f"{len(card.data.files)} files · {format_bytes(card.data.total_bytes)}"))
        else:
            rows.append(("Base", Path(str(result.get("base", ""))).name or "the default"))
            rows.append(("Data", f"{result.get('files', 0)} files"))
        rows.append(("Data digest", str(result.get("data_digest", ""))))
        for key, label in (("final_loss", "Final loss"), ("best_loss", "Best loss")):
            if isinstance(result.get(key), (int, float)):
                rows.append((label, f"{float(result[key]):.4f}"))
        rows.append(("Steps", f"{int(result.get('steps', 0)):,}"))
        rows.append(("Duration", format_seconds(float(result.get("duration_s", 0.0)))))
        rows.append(("Library id", str(result.get("model", ""))))
        rows.append(("Folder", str(result.get("path", ""))))
        body = "".join(
            f"<tr><td style='padding-right:14px;color:#8b8d96'>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
            for k, v in rows
        )
        return f"<h3>{html.escape(rows[0][1])}</h3><table>{body}</table>"

    def use_result(self) -> None:
        if self._result:
            self.use_requested.emit(dict(self._result))

    def _show_folder(self) -> None:
        if self._result and self._result.get("path"):
            path = Path(str(self._result["path"]))
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(path if path.is_dir() else path.parent)))

    # -- the buttons -------------------------------------------------------------------------------

    def resumable(self) -> bool:
        """A stopped run of this name left a checkpoint: this session's, or one found on disk."""
        last = self.jobs.get(self._run_job) if self._run_job else None
        if (
            last is not None
            and last.state in (JobState.CANCELLED, JobState.FAILED)
            and bool(self._checkpoint)
            and self._last_run is not None
            and self._last_run.name == self.name.text().strip()
        ):
            return True
        return self.pending_checkpoint() is not None

    def update_controls(self) -> None:
        if not hasattr(self, "estimate_button"):
            return  # still being built
        busy = self.busy()
        resumable = not busy and self.resumable()
        has_data = bool(self.data_refs())
        has_base = bool(self.model_picker.current_model())
        summary = self.summary
        readable = summary is None or bool(summary.files)
        named = bool(self.name.text().strip())
        ready = has_data and has_base and readable and named and not busy
        # A name with a stopped run's checkpoint continues (Resume) or starts over; Train would be refused.
        self.generate_button.setEnabled(ready and not resumable)
        self.estimate_button.setEnabled(ready)
        self.cancel_button.setEnabled(busy)
        self.resume_button.setEnabled(resumable)
        self.resume_button.setVisible(resumable or (busy and bool(self._last_run and self._last_run.resume)))
        self.start_over_button.setVisible(resumable)
        self.use_button.setEnabled(self._result is not None)
        self.show_button.setEnabled(self._result is not None)
        gpu_wanted = needs_gpu(self.base_spec(), self.services.worker.device_info)
        if self.allow_cpu.isHidden() == gpu_wanted:
            self.allow_cpu.setVisible(gpu_wanted)
        words = _medium_row(self.current_medium())[4]
        if self._searching:
            hint = "Looking for models…"
        elif not has_base:
            hint = f"No {words[:-1]} model that Studio can train is in the library." + _HOW_TO_ADD.get(
                self.current_medium(), ""
            )
        elif not has_data:
            hint = "Choose what to learn from: a folder of your own work, or gallery items."
        elif summary is not None and not summary.files:
            hint = f"None of these files can be learned from as {words}: see the Data page for why."
        elif resumable:
            hint = (
                f"A run named {self.name.text().strip()!r} stopped at a checkpoint: Resume continues it, "
                "Start over deletes it."
            )
        elif needs_gpu(self.base_spec(), self.services.worker.device_info):
            hint = (
                "Training a LoRA on this model needs a GPU; Estimate says how long it would take on this CPU "
                "(or tick Train on the CPU anyway)."
            )
        elif busy:
            hint = "Training runs on the worker: the window stays free. Cancel keeps a checkpoint."
        else:
            hint = "Estimate times the first steps; Train starts the run."
        set_text(self.hint, hint)

    def shutdown(self) -> None:
        self.samples.shutdown()


def read_training_card(path: Path) -> TrainingCard | None:
    """The training file beside a trained model or adapter (a folder, or a file in one), or None."""
    for folder in (path, path.parent):
        candidate = folder / TRAINING_FILE
        try:
            if candidate.is_file():
                return TrainingCard.from_dict(json.loads(candidate.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("cannot read the training card %s", candidate, exc_info=True)
            return None
    return None


def _find_spec(specs: list[ModelSpec], *refs: str) -> ModelSpec | None:
    """The library entry a run's result or base names (by id, path, name or folder name)."""
    wanted = {ref for ref in refs if ref}
    resolved = set()
    for ref in wanted:
        try:
            resolved.add(str(Path(ref).resolve()))
        except (OSError, ValueError):
            pass
    for spec in specs:
        try:
            spec_path = str(spec.path.resolve())
        except OSError:
            spec_path = str(spec.path)
        if wanted & {spec.id, spec.name, str(spec.path)} or spec_path in resolved:
            return spec
    return None


def _select_model(panel: Any, spec: ModelSpec | None) -> bool:
    picker = getattr(panel, "model_picker", None)
    if spec is None or picker is None:
        return False
    index = picker.findData(str(spec.path))
    if index >= 0:
        picker.setCurrentIndex(index)
    return index >= 0


def use_trained(trained: dict[str, Any], specs: list[ModelSpec], panels: dict[str, Any]) -> Any:
    """Select a finished run's result in its medium's tab: a full model in the model picker; a LoRA
    in the Image tab's adapters (over its base) or the Text tab's LoRA picker. The tab, or None."""
    medium = str(trained.get("medium", ""))
    panel = panels.get(medium)
    if panel is None:
        return None
    names = (str(trained.get(key, "")) for key in ("model", "path", "name"))
    result = _find_spec(specs, *names)
    if trained.get("kind") != "lora":
        _select_model(panel, result)
        return panel
    base_ref = str(trained.get("base", "")) or DEFAULT_BASES.get(medium, "")
    _select_model(panel, _find_spec([s for s in specs if s.kind == medium], base_ref))
    if result is None:
        return panel
    adapters = getattr(panel, "adapter_list", None)
    if adapters is not None and medium == "image":
        row = next((row for row in adapters.rows if row.spec.path == result.path), None) or adapters.add(result)
        panel.bring_into_view(row)  # the adapters sit low in the settings: show the artist where it went
    lora_picker = getattr(panel, "lora_picker", None)
    if lora_picker is not None and medium == "text":
        lora_picker.set_from_request(result.name, 1.0)
    return panel

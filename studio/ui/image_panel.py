"""The Image tab: prompt and settings in; live previews, the result and this session's strip out."""

from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QIcon, QImage, QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QScrollArea,
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from studio.core.errors import InvalidRequest
from studio.core.events import EventKind, JobEvent
from studio.core.requests import ImageRequest
from studio.ui.panel_base import GenerationPanel
from studio.ui.widgets.controls import SeedField, button, double_spin, spin
from studio.ui.widgets.image_view import ImageView, StartImageBox, dropped_image_path, qimage_from_array
from studio.ui.widgets.model_picker import ModelPicker

# Aspect ratios offered as presets; each keeps about the model's native pixel count.
_ASPECTS = (
    ("Square", 1, 1),
    ("Portrait 2:3", 2, 3),
    ("Landscape 3:2", 3, 2),
    ("Wide 16:9", 16, 9),
    ("Tall 9:16", 9, 16),
)
_THUMB = 96


def preset_sizes(native: int) -> list[tuple[str, int, int]]:
    """(label, width, height) for each aspect, about ``native``² pixels, sides in multiples of 64 (8 if tiny)."""
    step = 64 if native >= 256 else 8
    sizes = []
    for label, aw, ah in _ASPECTS:
        height = math.sqrt(native * native * ah / aw)
        width = height * aw / ah
        w, h = max(step, round(width / step) * step), max(step, round(height / step) * step)
        sizes.append((f"{label} · {w}×{h}", w, h))
    return sizes


class ImagePanel(GenerationPanel):
    kind = "image"

    def __init__(self, services, parent: QWidget | None = None) -> None:
        super().__init__(services, parent)
        self._running = ""
        self._info_job = ""
        self._model_info: dict = {}
        self._start_image = ""
        self._start_parent: str | None = None
        self._build()
        self._apply_model_info({})
        self._update_buttons()

    # -- layout -----------------------------------------------------------------

    def _build(self) -> None:
        self.model_picker = ModelPicker("image")
        self.model_picker.model_changed.connect(self._model_changed)
        self.prompt = QPlainTextEdit()
        self.prompt.setPlaceholderText("Describe the image… (Ctrl+Enter generates)")
        self.prompt.setAccessibleName("prompt")
        self.prompt.setToolTip("What the image should show. Ctrl+Enter generates.")
        self.prompt.textChanged.connect(self._update_buttons)
        self.negative = QPlainTextEdit()
        self.negative.setPlaceholderText("Negative prompt (optional): what to keep out")
        self.negative.setAccessibleName("negative prompt")
        self.negative.setToolTip("What the image should not show (for models that take a negative prompt).")
        self.negative.setMaximumHeight(56)

        self.start_box = StartImageBox()
        self.start_box.dropped.connect(self.set_start_image)
        self.choose_start = button("Choose…", "choose starting image", "Pick a starting image", self._choose_start)
        self.clear_start = button("Clear", "clear starting image", "Generate from noise again", self.clear_start_image)
        self.strength = QSlider(Qt.Orientation.Horizontal)
        self.strength.setRange(1, 100)
        self.strength.setValue(round(ImageRequest.strength * 100))
        self.strength.setAccessibleName("strength")
        self.strength.setToolTip("How much of the starting image is repainted: low keeps it, high changes it.")
        self.strength_label = QLabel()
        self.strength.valueChanged.connect(lambda v: self.strength_label.setText(f"{v}%"))
        self.strength_label.setText(f"{self.strength.value()}%")

        self.size_preset = QComboBox()
        self.size_preset.setAccessibleName("size preset")
        self.size_preset.setToolTip("Sizes near the model's training size, by shape")
        self.size_preset.activated.connect(self._preset_chosen)
        self.width_box = spin(16, 4096, ImageRequest.width, "width", "Width in pixels (a multiple of 8)", step=8)
        self.height_box = spin(16, 4096, ImageRequest.height, "height", "Height in pixels (a multiple of 8)", step=8)
        for box in (self.width_box, self.height_box):
            box.valueChanged.connect(self._size_edited)
        self.steps = spin(1, 500, ImageRequest.steps, "steps", "Denoising steps: more is slower and often finer")
        self.guidance = double_spin(
            0.0, 50.0, ImageRequest.guidance, 0.5, "guidance", "How closely to follow the prompt (CFG scale)"
        )
        self.scheduler = QComboBox()
        self.scheduler.setAccessibleName("scheduler")
        self.scheduler.setToolTip("The sampler; the choices are those that fit this model")
        self.seed = SeedField("image")
        self.count = spin(1, 16, 1, "count", "How many images to make at once (each is saved)")

        form = QFormLayout()
        form.addRow("Model", self.model_picker)
        size_row = QHBoxLayout()
        size_row.addWidget(self.width_box)
        size_row.addWidget(QLabel("×"))
        size_row.addWidget(self.height_box)
        form.addRow("Shape", self.size_preset)
        form.addRow("Size", size_row)
        form.addRow("Steps", self.steps)
        form.addRow("Guidance", self.guidance)
        form.addRow("Scheduler", self.scheduler)
        form.addRow("Seed", self.seed)
        form.addRow("Count", self.count)
        start_buttons = QVBoxLayout()
        start_buttons.addWidget(self.choose_start)
        start_buttons.addWidget(self.clear_start)
        start_row = QHBoxLayout()
        start_row.addWidget(self.start_box, 1)
        start_row.addLayout(start_buttons)
        strength_row = QHBoxLayout()
        strength_row.addWidget(self.strength, 1)
        strength_row.addWidget(self.strength_label)
        form.addRow("Start from", start_row)
        form.addRow("Strength", strength_row)

        buttons = self.build_run_controls("image")

        controls = QWidget()
        left = QVBoxLayout(controls)
        left.addWidget(QLabel("Prompt"))
        left.addWidget(self.prompt, 2)
        left.addWidget(self.negative)
        left.addLayout(form)
        left.addLayout(buttons)
        left.addWidget(self.progress)
        left.addWidget(self.hint)
        left.addWidget(self.run_status)
        left.addWidget(self.details_button)
        left.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(controls)
        scroll.setWidgetResizable(True)
        # Scroll down when the window is short, never sideways: the controls keep their full width.
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(controls.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width() + 4)

        self.view = ImageView()
        self.fit = QCheckBox("Fit")
        self.fit.setChecked(True)
        self.fit.setAccessibleName("fit to view")
        self.fit.setToolTip("Fit the image to the view; off shows it pixel for pixel (1:1)")
        self.fit.toggled.connect(self.view.set_fit)
        self.vary_button = button("Vary", "vary", "Make this image again with a new seed", self.vary)
        self.reuse_button = button(
            "Reuse settings", "reuse settings", "Put this image's prompt and settings back in the controls", self.reuse
        )
        self.as_start_button = button(
            "Start from this", "start from this", "Use this image as the starting image", self.start_from_selected
        )
        self.strip = QListWidget()
        self.strip.setAccessibleName("session images")
        self.strip.setToolTip("This session's images; click one to show it")
        self.strip.setViewMode(QListView.ViewMode.IconMode)
        self.strip.setFlow(QListView.Flow.LeftToRight)
        self.strip.setWrapping(False)
        self.strip.setIconSize(QSize(_THUMB, _THUMB))
        self.strip.setFixedHeight(_THUMB + 28)
        self.strip.currentItemChanged.connect(self._show_strip_item)
        actions = QHBoxLayout()
        for widget in (self.fit, self.vary_button, self.reuse_button, self.as_start_button):
            actions.addWidget(widget)
        actions.addStretch(1)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addWidget(self.view, 1)
        right_layout.addLayout(actions)
        right_layout.addWidget(self.strip)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(scroll)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)
        self.setAcceptDrops(True)

        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            QShortcut(QKeySequence(keys), self).activated.connect(self.generate)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self).activated.connect(self.cancel)

    # -- models -------------------------------------------------------------------

    def refresh_models(self, specs: list, preferred: str = "") -> None:
        self.model_picker.set_models(specs, preferred)
        self._update_buttons()

    def _model_changed(self, model: str) -> None:
        self._apply_model_info({})  # until the worker has described the new model
        if model:
            self._info_job = self.services.worker.describe_model(model)
            self.track(self._info_job)
        self._update_buttons()

    def _apply_model_info(self, info: dict) -> None:
        self._model_info = info
        native = int(info.get("native_size") or 512)
        low, high = info.get("size_range") or (16, 4096)
        for box in (self.width_box, self.height_box):
            box.blockSignals(True)
            box.setRange(int(low), int(high))
            box.blockSignals(False)
        self.size_preset.clear()
        for label, width, height in preset_sizes(native):
            self.size_preset.addItem(label, (width, height))
        self.size_preset.addItem("Custom", None)
        if info:
            self._set_size(*self.size_preset.itemData(0))
        self._sync_preset()
        current = self.scheduler.currentData()
        self.scheduler.clear()
        default = info.get("default_scheduler", "")
        self.scheduler.addItem(f"Default ({default})" if default else "Default", "")
        for name in info.get("schedulers", []):
            if name != default:
                self.scheduler.addItem(name, name)
        index = self.scheduler.findData(current)
        self.scheduler.setCurrentIndex(max(index, 0))
        self.negative.setEnabled(info.get("negative_prompt", True))
        if info:
            defaults = self.model_defaults(self.model_picker.current_model(), info.get("suggested_defaults"))
            if "steps" in defaults:
                self.steps.setValue(int(defaults["steps"]))
            if "guidance" in defaults:
                self.guidance.setValue(float(defaults["guidance"]))
        start_ok = info.get("image_to_image", True)
        for widget in (self.start_box, self.choose_start, self.strength):
            widget.setEnabled(start_ok)
        if not start_ok and self._start_image:
            self.clear_start_image()
        procedural = bool(info.get("procedural"))  # the pattern painter: no steps, guidance or scheduler
        for widget in (self.steps, self.guidance, self.scheduler):
            widget.setEnabled(not procedural)
        self._update_hint()

    def _set_size(self, width: int, height: int) -> None:
        for box, value in ((self.width_box, width), (self.height_box, height)):
            box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(False)

    def _preset_chosen(self, index: int) -> None:
        size = self.size_preset.itemData(index)
        if size:
            self._set_size(*size)

    def _size_edited(self, _value: int) -> None:
        self._sync_preset()

    def _sync_preset(self) -> None:
        wanted = (self.width_box.value(), self.height_box.value())
        for index in range(self.size_preset.count()):
            if self.size_preset.itemData(index) == wanted:
                self.size_preset.setCurrentIndex(index)
                return
        self.size_preset.setCurrentIndex(self.size_preset.count() - 1)

    # -- starting image ---------------------------------------------------------------

    def set_start_image(self, path: str, parent_id: str | None = None) -> None:
        self._start_image = path
        self._start_parent = parent_id
        self.start_box.show_image(Path(path))
        self.clear_start.setEnabled(True)
        image = QImage(path)
        if not image.isNull():  # keep the shape of the starting image, near the model's size
            native = int(self._model_info.get("native_size") or 512)
            scale = math.sqrt(native * native / max(1, image.width() * image.height()))
            self._set_size(max(8, round(image.width() * scale / 8) * 8), max(8, round(image.height() * scale / 8) * 8))
            self._sync_preset()

    def clear_start_image(self) -> None:
        self._start_image = ""
        self._start_parent = None
        self.start_box.clear_image()
        self.clear_start.setEnabled(False)

    def _choose_start(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Starting image", "", "Images (*.png *.jpg *.jpeg *.webp *.bmp)")
        if path:
            self.set_start_image(path)

    def start_from_selected(self) -> None:
        item = self._selected_item()
        if item is not None:
            self.set_start_image(str(item.path), item.id)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if dropped_image_path(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        path = dropped_image_path(event.mimeData())
        if path is not None:
            event.acceptProposedAction()
            self.set_start_image(str(path))

    # -- requests -----------------------------------------------------------------

    def build_request(self) -> ImageRequest:
        return ImageRequest(
            prompt=self.prompt.toPlainText(),
            model=self.model_picker.current_model(),
            seed=self.seed.value(),
            negative=self.negative.toPlainText() if self.negative.isEnabled() else "",
            width=self.width_box.value(),
            height=self.height_box.value(),
            steps=self.steps.value(),
            guidance=self.guidance.value(),
            scheduler=str(self.scheduler.currentData() or ""),
            count=self.count.value(),
            init_image=self._start_image,
            strength=self.strength.value() / 100,
        )

    def generate(self) -> None:
        if not self.generate_button.isEnabled():
            return
        try:
            request = self.build_request()
        except InvalidRequest as exc:
            self.run_status.setText(str(exc))
            return
        self._submit(request, parent=self._start_parent if request.init_image else None)

    def _submit(self, request: ImageRequest, parent: str | None = None) -> str:
        job = self.services.worker.submit(request, parent=parent)
        self.track(job)
        self._queued.append(job)
        if not self._running:
            self.progress.waiting("Waiting for the worker…")
        self._show_queue()
        self._update_buttons()
        return job

    def submit_request(self, request, parent: str | None = None) -> str | None:
        return self._submit(request, parent)

    def show_status(self, text: str) -> None:
        self.run_status.setText(text)

    def vary(self) -> None:
        item = self._selected_item()
        if item is not None:
            self.vary_item(item)

    def reuse(self) -> None:
        item = self._selected_item()
        if item is not None:
            self.apply_request(item.record.request, item.record.parent)

    def apply_request(self, request: dict, parent: str | None = None) -> None:
        self.prompt.setPlainText(str(request.get("prompt", "")))
        self.negative.setPlainText(str(request.get("negative", "")))
        index = self.model_picker.findData(str(request.get("model", "")))
        if index >= 0:
            self.model_picker.setCurrentIndex(index)
        self._set_size(int(request.get("width", 512)), int(request.get("height", 512)))
        self._sync_preset()
        self.steps.setValue(int(request.get("steps", ImageRequest.steps)))
        self.guidance.setValue(float(request.get("guidance", ImageRequest.guidance)))
        scheduler = self.scheduler.findData(str(request.get("scheduler", "")))
        self.scheduler.setCurrentIndex(max(scheduler, 0))
        if isinstance(request.get("seed"), int):
            self.seed.lock(request["seed"])
        self.count.setValue(1)
        start = str(request.get("init_image", ""))
        if start and Path(start).is_file():
            self.set_start_image(start, parent)
            self.strength.setValue(round(float(request.get("strength", ImageRequest.strength)) * 100))
        else:
            self.clear_start_image()

    def set_prompt(self, text: str) -> None:
        self.prompt.setPlainText(text)

    # -- events -------------------------------------------------------------------

    def handle_event(self, event: JobEvent) -> None:
        if event.kind is EventKind.MODEL_INFO:
            self._jobs.discard(event.job_id)
            info = event.result or {}
            if event.job_id == self._info_job and info.get("path") == self.model_picker.current_model():
                self._apply_model_info(info)
            return
        if event.kind is EventKind.QUEUED:
            self._show_queue()
        elif event.kind is EventKind.STARTED:
            self._running = event.job_id
            self.progress.waiting("Loading the model…")
            self.run_status.setText("")
            self._show_queue()
        elif event.kind is EventKind.PROGRESS:
            self.progress.step(event.step, event.total)
        elif event.kind is EventKind.PREVIEW and event.preview is not None:
            self.view.set_image(qimage_from_array(event.preview))
        elif event.is_terminal:
            self._job_ended(event)

    def _job_ended(self, event: JobEvent) -> None:
        if event.job_id in self._queued:
            self._queued.remove(event.job_id)
        if event.job_id == self._running:
            self._running = ""
        if event.kind is EventKind.FINISHED:
            items = list(event.result or [])
            for item in items:
                self._add_to_strip(item)
            if items:
                self.strip.setCurrentRow(0)
            seconds = (items[0].record.runtime.get("seconds") if items else None) or 0
            self.run_status.setText(
                f"Saved {len(items)} image{'s' if len(items) != 1 else ''}"
                + (f" in {seconds:.1f} s" if seconds else "")
            )
            self.items_saved.emit(items)
        elif event.kind is EventKind.CANCELLED:
            self.run_status.setText("Cancelled; nothing was saved.")
        elif event.kind is EventKind.ERROR:
            self.report_error(self.run_status, event)
        if not self._running:
            self.progress.idle() if not self._queued else self.progress.waiting("Waiting for the worker…")
        self._show_queue()
        self._update_buttons()

    def _add_to_strip(self, item) -> None:
        pixmap = QPixmap(str(item.path))
        entry = QListWidgetItem(
            QIcon(
                pixmap.scaled(
                    _THUMB, _THUMB, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
                )
            ),
            "",
        )
        entry.setData(Qt.ItemDataRole.UserRole, item)
        entry.setToolTip(f"{item.record.prompt[:80]}\nseed {item.record.seed} · {item.path.name}")
        self.strip.insertItem(0, entry)

    def _show_strip_item(self, current: QListWidgetItem | None, _previous: object = None) -> None:
        item = current.data(Qt.ItemDataRole.UserRole) if current is not None else None
        if item is not None:
            image = QImage(str(item.path))
            if not image.isNull():
                self.view.set_image(image)
        self._update_buttons()

    def _selected_item(self):
        current = self.strip.currentItem()
        return current.data(Qt.ItemDataRole.UserRole) if current is not None else None

    def _show_queue(self) -> None:
        waiting = len(self._queued) - (1 if self._running else 0)
        if waiting > 0:
            self.hint.setText(f"{waiting} more queued in this tab")
        else:
            self._update_hint()

    def _update_hint(self) -> None:
        if not self.model_picker.current_model():
            self.hint.setText("No image model found: add a diffusers model folder with 'studio models add FOLDER'.")
        elif not self.prompt.toPlainText().strip():
            self.hint.setText(
                " ".join(["Describe the image to generate it.", self._model_info.get("hint", "")]).strip()
            )
        else:
            self.hint.setText(self._model_info.get("hint", ""))

    def _update_buttons(self) -> None:
        has_prompt = bool(self.prompt.toPlainText().strip())
        has_model = bool(self.model_picker.current_model())
        selected = self._selected_item() is not None
        self.generate_button.setEnabled(has_prompt and has_model)
        self.cancel_button.setEnabled(bool(self._queued))
        for widget in (self.vary_button, self.reuse_button, self.as_start_button):
            widget.setEnabled(selected)
        self.clear_start.setEnabled(bool(self._start_image))
        if len(self._queued) <= (1 if self._running else 0):
            self._update_hint()

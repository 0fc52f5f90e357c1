"""The Image tab: prompt and settings in; live previews, the result and this session's strip out."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage, QKeySequence, QPixmap, QShortcut
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
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from studio.core.capabilities import Control, ModelInfo
from studio.core.errors import InvalidRequest
from studio.core.events import EventKind, JobEvent
from studio.core.models import ModelSpec
from studio.core.requests import ImageRequest, Request, UpscaleRequest, field_limit
from studio.ui.image_edits import ImageEdits
from studio.ui.jobs import Job, JobQueue
from studio.ui.panel_base import GenerationPanel, SpinBox
from studio.ui.widgets.adapter_list import AdapterList, missing_prompt_loras
from studio.ui.widgets.controls import SeedField, button, double_spin_for, editor_range, spin_for
from studio.ui.widgets.image_view import ImageView, StartImageBox, dropped_image_path, qimage_from_array
from studio.ui.widgets.model_picker import ModelPicker
from studio.ui.widgets.thumbnail_icon import untinted_icon

if TYPE_CHECKING:
    from studio.gallery.store import GalleryItem
    from studio.runtime.services import Services

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
    what = "image"

    def __init__(self, services: Services, jobs: JobQueue, parent: QWidget | None = None) -> None:
        super().__init__(services, jobs, parent)
        self._start_image = ""
        self._start_parent: str | None = None
        self._build()
        self.apply_model_info(None, apply_defaults=False)
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
        self.strength.setValue(round(ImageRequest.strength * 100))  # a percentage of the request's 0.01–1
        self.strength.setAccessibleName("strength")
        self.strength.setToolTip("How much of the starting image is repainted: low keeps it, high changes it.")
        self.strength_label = QLabel()
        self.strength.valueChanged.connect(lambda v: self.strength_label.setText(f"{v}%"))
        self.strength_label.setText(f"{self.strength.value()}%")

        self.size_preset = QComboBox()
        self.size_preset.setAccessibleName("size preset")
        self.size_preset.setToolTip("Sizes near the model's training size, by shape")
        self.size_preset.activated.connect(self._preset_chosen)
        self.width_box = spin_for(ImageRequest, "width", "Width in pixels (a multiple of 8)")
        self.height_box = spin_for(ImageRequest, "height", "Height in pixels (a multiple of 8)")
        for box in (self.width_box, self.height_box):
            box.valueChanged.connect(self._size_edited)
        self.steps = spin_for(ImageRequest, "steps", "Denoising steps: more is slower and often finer")
        self.guidance = double_spin_for(ImageRequest, "guidance", "How closely to follow the prompt (CFG scale)")
        self.scheduler = QComboBox()
        self.scheduler.setAccessibleName("scheduler")
        self.scheduler.setToolTip("The sampler; the choices are those that fit this model")
        self.seed = SeedField("image")
        self.count = spin_for(ImageRequest, "count", "How many images to make at once (each is saved)")
        self.adapter_list = AdapterList()
        self.adapter_list.insert_requested.connect(self._insert_in_prompt)
        self.model_picker.model_changed.connect(self._adapters_for_model)

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
        form.addRow("Adapters", self.adapter_list)
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

        self.edits = ImageEdits(self.services.paths.data / "masks")
        self.edits.upscale_requested.connect(self.upscale)

        buttons = self.build_run_controls()
        self.edits.editor.status.connect(self.run_status.setText)
        self.sweep_button = button(
            "Sweep…", "sweep", "Vary up to three settings (X/Y/Z): a job per cell and a labelled grid", self.open_sweep
        )
        buttons.insertWidget(2, self.sweep_button)

        controls = QWidget()
        left = QVBoxLayout(controls)
        left.addWidget(QLabel("Prompt"))
        left.addWidget(self.prompt, 2)
        left.addWidget(self.negative)
        left.addLayout(form)
        left.addWidget(self.edits)
        left.addStretch(1)
        column = self.controls_column(controls, buttons)

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
        right_layout.addWidget(self.edits.editor, 1)  # in the view's place while a mask is painted
        self.edits.editing_toggled.connect(lambda on: self.view.setVisible(not on))
        self.items_saved.connect(self.edits.job_saved)  # show what was made; an outpaint is done
        right_layout.addLayout(actions)
        right_layout.addWidget(self.strip)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(column)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)
        self.setAcceptDrops(True)

        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            QShortcut(QKeySequence(keys), self).activated.connect(self.generate)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self).activated.connect(self.cancel)

    # -- models -------------------------------------------------------------------

    def capability_widgets(self) -> dict[Control, list[QWidget]]:
        return {
            Control.NEGATIVE_PROMPT: [self.negative],
            Control.STEPS: [self.steps],
            Control.GUIDANCE: [self.guidance],
            Control.SCHEDULER: [self.scheduler],
            Control.IMAGE_INPUT: [self.strength, self.strength_label]
            + ([] if self._mask_source() else self._source_widgets()),
            Control.MASK: self.edits.mask_widgets() + (self._source_widgets() if self._mask_source() else []),
        }

    def _source_widgets(self) -> list[QWidget]:
        return [self.start_box, self.choose_start, self.clear_start, self.as_start_button]

    def _mask_source(self) -> bool:
        """A model that repaints masked regions but cannot start from an image (the pattern painter)
        still takes the picture the mask is about."""
        return self.uses(Control.MASK) and not self.uses(Control.IMAGE_INPUT)

    def conditions(self) -> dict[QWidget, bool]:
        return {self.clear_start: bool(self._start_image), self.as_start_button: self._selected_item() is not None}

    def request_spins(self) -> dict[str, SpinBox]:
        return {
            "width": self.width_box,
            "height": self.height_box,
            "steps": self.steps,
            "guidance": self.guidance,
            "count": self.count,
        }

    def _native_size(self) -> int:
        return self._model_info.native_size if self._model_info is not None and self._model_info.native_size else 512

    def apply_model_info(self, info: ModelInfo | None, *, apply_defaults: bool) -> None:
        """Sizes near the model's own and the schedulers that fit it; with ``apply_defaults`` the
        size goes to the model's square."""
        low, high = editor_range(field_limit(ImageRequest, "width"))
        if info is not None and info.size_range[1] > 0:
            low, high = info.size_range
        for box in (self.width_box, self.height_box):
            box.blockSignals(True)
            box.setRange(int(low), int(high))
            box.blockSignals(False)
        self.size_preset.clear()
        for label, width, height in preset_sizes(self._native_size()):
            self.size_preset.addItem(label, (width, height))
        self.size_preset.addItem("Custom", None)
        if info is not None and apply_defaults:
            self._set_size(*self.size_preset.itemData(0))
        self._sync_preset()
        current = self.scheduler.currentData()
        self.scheduler.clear()
        default = info.default_scheduler if info is not None else ""
        self.scheduler.addItem(f"Default ({default})" if default else "Default", "")
        for name in info.schedulers if info is not None else ():
            if name != default:
                self.scheduler.addItem(name, name)
        index = self.scheduler.findData(current)
        self.scheduler.setCurrentIndex(max(index, 0))

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
        self.edits.set_source(path)
        self._update_buttons()
        if not self.uses(Control.IMAGE_INPUT) and not self.uses(Control.MASK):
            self.run_status.setText(self.why_unused(Control.IMAGE_INPUT))
        image = QImage(path)
        if not image.isNull():  # keep the shape of the starting image, near the model's size
            native = self._native_size()
            scale = math.sqrt(native * native / max(1, image.width() * image.height()))
            self._set_size(max(8, round(image.width() * scale / 8) * 8), max(8, round(image.height() * scale / 8) * 8))
            self._sync_preset()

    def clear_start_image(self) -> None:
        self._start_image = ""
        self._start_parent = None
        self.start_box.clear_image()
        self.edits.clear_source()
        self._update_buttons()

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
        """The request the controls describe; what the model does not use is left at its default."""
        use = self.used_value
        edits = self.edits.request_fields(self.uses(Control.MASK), bool(self._start_image))
        editing = "mask" in edits or "outpaint" in edits
        strength = self.strength.value() / 100
        start = self._start_image if editing else use(Control.IMAGE_INPUT, self._start_image, ImageRequest.init_image)
        return ImageRequest(
            prompt=self.prompt.toPlainText(),
            model=self.model_picker.current_model(),
            seed=self.seed.value(),
            negative=use(Control.NEGATIVE_PROMPT, self.negative.toPlainText(), ImageRequest.negative),
            width=self.width_box.value(),
            height=self.height_box.value(),
            steps=use(Control.STEPS, self.steps.value(), ImageRequest.steps),
            guidance=use(Control.GUIDANCE, self.guidance.value(), ImageRequest.guidance),
            scheduler=use(Control.SCHEDULER, str(self.scheduler.currentData() or ""), ImageRequest.scheduler),
            count=self.count.value(),
            init_image=start,
            strength=strength if editing else use(Control.IMAGE_INPUT, strength, ImageRequest.strength),
            **edits,
            loras=self.adapter_list.loras(),
            embeddings=self.adapter_list.embeddings(),
        )

    def upscale(self) -> None:
        """Upscale the image shown (else the starting image): a new item whose parent it is."""
        item = self._selected_item()
        source, parent = (str(item.path), item.id) if item is not None else (self._start_image, self._start_parent)
        if not source:
            self.run_status.setText("Make or choose an image to upscale first")
            return
        try:
            request = UpscaleRequest(
                prompt="", model=self.edits.upscaler_model(), init_image=source, scale=self.edits.upscale_scale.value()
            )
        except InvalidRequest as exc:
            self.run_status.setText(str(exc))
            return
        self.submit_request(request, parent=parent)

    def generate(self) -> None:
        if not self.generate_button.isEnabled():
            return
        try:
            request = self.build_request()
        except InvalidRequest as exc:
            self.run_status.setText(str(exc))
            return
        self.submit_request(request, parent=self._start_parent if request.init_image else None)

    def submit_request(self, request: Request, parent: str | None = None) -> str | None:
        job = self.submit(request, parent)
        self.show_waiting()
        self._update_buttons()
        return job.id

    def vary(self) -> None:
        item = self._selected_item()
        if item is not None:
            self.vary_item(item)

    def reuse(self) -> None:
        item = self._selected_item()
        if item is not None:
            self.apply_request(item.record.request, item.record.parent)

    def set_request(self, request: Request, parent: str | None) -> None:
        if isinstance(request, UpscaleRequest):  # an upscale's settings: its source, to upscale again
            self.set_start_image(request.init_image, parent)
            return
        assert isinstance(request, ImageRequest)
        self.prompt.setPlainText(request.prompt)
        self.negative.setPlainText(request.negative)
        self._sync_preset()
        scheduler = self.scheduler.findData(request.scheduler)
        self.scheduler.setCurrentIndex(max(scheduler, 0))
        if request.seed is not None:
            self.seed.lock(request.seed)
        self.count.setValue(1)
        if request.init_image:
            self.set_start_image(request.init_image, parent)
            self.strength.setValue(round(request.strength * 100))
        else:
            self.clear_start_image()
        self._restore_adapters(request)

    # -- adapters (LoRAs and embeddings) -------------------------------------------------

    def refresh_models(self, specs: list[ModelSpec], preferred: str = "") -> None:
        self._adapter_specs = {str(spec.path): spec for spec in specs}
        self.adapter_list.set_library(specs)
        super().refresh_models(specs, preferred)
        self.edits.set_upscalers(specs)

    def _adapters_for_model(self, model: str) -> None:
        spec = getattr(self, "_adapter_specs", {}).get(model)
        self.adapter_list.set_model_family(spec.family if spec is not None else "")

    def _insert_in_prompt(self, words: str) -> None:
        text = self.prompt.toPlainText().rstrip()
        self.prompt.setPlainText(f"{text}, {words}" if text else words)

    def _restore_adapters(self, request: ImageRequest) -> None:
        """Reused settings bring their adapters back by name; one not in the library is named in a
        note (after the reuse's own status line), never dropped silently."""
        missing = self.adapter_list.set_from_request(request.loras, request.embeddings)
        missing += missing_prompt_loras(request.prompt, self.adapter_list)
        if missing:
            note = f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not in your library."
            QTimer.singleShot(0, self, lambda: self.show_status(note))

    def set_prompt(self, text: str) -> None:
        self.prompt.setPlainText(text)

    # -- events -------------------------------------------------------------------

    def handle_event(self, job: Job, event: JobEvent) -> None:
        self.show_progress(event)
        if event.kind is EventKind.STARTED:
            self.run_status.setText("")
        elif event.kind is EventKind.PREVIEW and event.preview is not None:
            self.view.set_image(qimage_from_array(event.preview))
        elif event.is_terminal:
            self._job_ended(job, event)

    def _job_ended(self, job: Job, event: JobEvent) -> None:
        if event.kind is EventKind.FINISHED:
            items = job.items
            for item in items:
                self._add_to_strip(item)
            if items:
                self.strip.setCurrentRow(0)
            seconds = (items[0].record.runtime.get("seconds") if items else None) or 0
            self.run_status.setText(
                f"Saved {len(items)} image{'s' if len(items) != 1 else ''}"
                + (f" in {seconds:.1f} s" if seconds else "")
            )
            self.items_saved.emit(list(items))
        elif event.kind is EventKind.CANCELLED:
            self.run_status.setText("Cancelled; nothing was saved.")
        elif event.kind is EventKind.ERROR:
            self.report_error(self.run_status, job)

    def _add_to_strip(self, item: GalleryItem) -> None:
        pixmap = QPixmap(str(item.path))
        entry = QListWidgetItem(
            untinted_icon(
                pixmap.scaled(
                    _THUMB, _THUMB, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
                )
            ),
            "",
        )
        entry.setData(Qt.ItemDataRole.UserRole, item)
        entry.setToolTip(f"{item.record.prompt[:80]}\nseed {item.record.seed} · {item.path.name}")
        self.strip.insertItem(0, entry)

    def show_output(self, item: GalleryItem) -> None:
        self._add_to_strip(item)
        self.strip.setCurrentRow(0)

    def _show_strip_item(self, current: QListWidgetItem | None, _previous: object = None) -> None:
        item = current.data(Qt.ItemDataRole.UserRole) if current is not None else None
        if item is not None:
            image = QImage(str(item.path))
            if not image.isNull():
                self.view.set_image(image)
        self._update_buttons()

    def _selected_item(self) -> GalleryItem | None:
        current = self.strip.currentItem()
        if current is None:
            return None
        item: GalleryItem | None = current.data(Qt.ItemDataRole.UserRole)
        return item

    def update_controls(self) -> None:
        self._update_buttons()

    def _update_buttons(self) -> None:
        has_prompt = bool(self.prompt.toPlainText().strip())
        has_model = bool(self.model_picker.current_model())
        selected = self._selected_item() is not None
        self.generate_button.setEnabled(has_prompt and has_model and self.runnable())
        self.sweep_button.setEnabled(self.generate_button.isEnabled())
        self.cancel_button.setEnabled(self.busy())
        for widget in (self.vary_button, self.reuse_button):
            widget.setEnabled(selected)
        self.apply_capabilities()
        self.update_hint(
            has_prompt=has_prompt,
            ask="Describe the image to generate it.",
            no_model="No image model found: add a diffusers model folder with 'studio models add FOLDER'.",
        )

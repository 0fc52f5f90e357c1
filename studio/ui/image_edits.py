"""The Image tab's editing section: the mask editor over the starting image (inpaint), the outpaint
margins, the hires fix, and Upscale. ``ImagePanel`` adds it with a few calls; the fields it gives
are ``ImageRequest``'s editing fields, and Upscale queues an ``UpscaleRequest``.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QPushButton,
    QSpinBox,
    QWidget,
)

from studio.core.edits import MASK_FILLS, MAX_OUTPAINT, OUTPAINT_SIDES
from studio.core.models import ModelSpec, preferred_order
from studio.core.requests import ImageRequest, UpscaleRequest
from studio.ui.widgets.controls import button, double_spin_for, spin_for
from studio.ui.widgets.mask_editor import MaskEditor

_EXTEND_STEP = 64


class ImageEdits(QGroupBox):
    """Mask, outpaint, hires fix and upscale controls; ``editor`` is shown in place of the image view."""

    editing_toggled = Signal(bool)
    upscale_requested = Signal()

    def __init__(self, masks_folder: Path, parent: QWidget | None = None) -> None:
        super().__init__("Edit", parent)
        self._masks_folder = masks_folder
        self._upscaler_formats: dict[str, str] = {}
        self.editor = MaskEditor()
        self.editor.hide()
        self.paint_mask = QPushButton("Paint a mask")
        self.paint_mask.setCheckable(True)
        self.paint_mask.setAccessibleName("paint a mask")
        self.paint_mask.setToolTip("Paint over the starting image what to repaint (white); the rest stays as it is")
        self.paint_mask.toggled.connect(self._toggle_editor)
        self.load_mask = button(
            "Mask file…", "load mask", "Use a mask image (white or transparent repaints)", self._choose_mask
        )
        self.mask_blur = spin_for(ImageRequest, "mask_blur", "Feather the mask's edge by this many pixels")
        self.only_masked = QCheckBox("Only masked")
        self.only_masked.setToolTip("Repaint a crop around the mask at the chosen size, then paste it back")
        self.only_masked.setAccessibleName("only masked")
        self.padding = spin_for(ImageRequest, "only_masked_padding", "Pixels of context around the mask")
        self.fill = QComboBox()
        for name in MASK_FILLS:
            self.fill.addItem(name.capitalize(), name)
        self.fill.setAccessibleName("masked area fill")
        self.fill.setToolTip("What the masked area starts from: the picture, noise, or the colours around it")
        self.outpaint: dict[str, QSpinBox] = {}
        outpaint_row = QHBoxLayout()
        for side in OUTPAINT_SIDES:
            box = QSpinBox()
            box.setRange(0, MAX_OUTPAINT)
            box.setSingleStep(8)
            box.setAccessibleName(f"outpaint {side}")
            box.setToolTip(f"Pixels to add on the {side} (outpaint)")
            self.outpaint[side] = box
            extend = QPushButton({"left": "◀", "top": "▲", "right": "▶", "bottom": "▼"}[side])
            extend.setAccessibleName(f"extend {side}")
            extend.setToolTip(f"Extend the canvas {_EXTEND_STEP} pixels on the {side}")
            extend.setMaximumWidth(32)
            extend.clicked.connect(lambda _=False, b=box: b.setValue(b.value() + _EXTEND_STEP))
            outpaint_row.addWidget(extend)
            outpaint_row.addWidget(box)
        self.hires_scale = double_spin_for(
            ImageRequest, "hires_scale", "Hires fix: generate, upscale by this, repaint (1: off)"
        )
        self.hires_strength = double_spin_for(ImageRequest, "hires_strength", "How much the hires pass repaints")
        self.upscaler = QComboBox()
        self.upscaler.setAccessibleName("upscaler")
        self.upscaler.setToolTip("The upscaler for Upscale and the hires fix (Lanczos needs no model)")
        self.upscale_scale = double_spin_for(UpscaleRequest, "scale", "How many times larger Upscale makes the image")
        self.upscale_button = button(
            "Upscale", "upscale", "Make the shown image larger with the chosen upscaler", self.upscale_requested.emit
        )
        mask_row = QHBoxLayout()
        mask_row.addWidget(self.paint_mask)
        mask_row.addWidget(self.load_mask)
        crop_row = QHBoxLayout()
        crop_row.addWidget(self.only_masked)
        crop_row.addWidget(self.padding)
        hires_row = QHBoxLayout()
        hires_row.addWidget(self.hires_scale)
        hires_row.addWidget(self.hires_strength)
        upscale_row = QHBoxLayout()
        upscale_row.addWidget(self.upscaler, 1)
        upscale_row.addWidget(self.upscale_scale)
        upscale_row.addWidget(self.upscale_button)
        form = QFormLayout(self)
        form.addRow("Mask", mask_row)
        form.addRow("Mask blur", self.mask_blur)
        form.addRow("Crop", crop_row)
        form.addRow("Fill", self.fill)
        form.addRow("Outpaint", outpaint_row)
        form.addRow("Hires fix", hires_row)
        form.addRow("Upscaler", upscale_row)

    def mask_widgets(self) -> list[QWidget]:
        """What a model that cannot use a mask greys out."""
        return [
            self.paint_mask, self.load_mask, self.mask_blur, self.only_masked, self.padding, self.fill,
            *self.outpaint.values(),
        ]  # fmt: skip

    # -- the source ---------------------------------------------------------------------

    def set_source(self, path: str) -> None:
        if path and self.editor.load_image(path):
            return
        self.paint_mask.setChecked(False)

    def clear_source(self) -> None:
        self.paint_mask.setChecked(False)
        self.editor.canvas.set_image(self.editor.canvas.image().__class__())

    def _toggle_editor(self, on: bool) -> None:
        self.editor.setVisible(on)
        self.editing_toggled.emit(on)

    def _choose_mask(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Mask image", "", "Images (*.png *.jpg *.jpeg *.webp *.bmp)")
        if path and self.editor.load_mask(path):
            self.paint_mask.setChecked(True)

    # -- upscalers ----------------------------------------------------------------------

    def set_upscalers(self, specs: list[ModelSpec]) -> None:
        current = self.upscaler.currentData()
        self.upscaler.clear()
        self._upscaler_formats.clear()
        for spec in preferred_order(specs):
            if spec.kind == "upscaler" and spec.runnable:
                scale = spec.details.get("scale")
                self.upscaler.addItem(spec.name + (f" · {scale}×" if scale else ""), str(spec.path))
                self._upscaler_formats[str(spec.path)] = spec.format
        index = self.upscaler.findData(current)
        self.upscaler.setCurrentIndex(max(0, index))

    def upscaler_model(self) -> str:
        """The chosen upscaler's path (the Lanczos folder when that is chosen), for an upscale job."""
        return str(self.upscaler.currentData() or "")

    def upscaler_file(self) -> str:
        """The chosen upscaler as the hires fix names it: a model file, or "" for Lanczos."""
        path = self.upscaler_model()
        return path if self._upscaler_formats.get(path) == "upscaler" else ""

    # -- the request --------------------------------------------------------------------

    def request_fields(self, mask_allowed: bool, has_source: bool) -> dict[str, Any]:
        """The editing fields of the request the controls describe (the painted mask saved to a file)."""
        fields: dict[str, Any] = {
            "hires_scale": self.hires_scale.value(),
            "hires_strength": self.hires_strength.value(),
            "upscaler": self.upscaler_file() if self.hires_scale.value() > 1 else "",
        }
        if not (mask_allowed and has_source):
            return fields
        outpaint = tuple(self.outpaint[side].value() for side in OUTPAINT_SIDES)
        if any(outpaint):
            fields["outpaint"] = outpaint
        elif self.paint_mask.isChecked() and self.editor.canvas.has_mask():
            self._masks_folder.mkdir(parents=True, exist_ok=True)
            path = self._masks_folder / f"{uuid.uuid4().hex}.png"
            self.editor.save_mask(str(path))
            fields["mask"] = str(path)
        if "mask" in fields or "outpaint" in fields:
            fields.update(
                mask_blur=self.mask_blur.value(),
                only_masked=self.only_masked.isChecked(),
                only_masked_padding=self.padding.value(),
                mask_fill=str(self.fill.currentData()),
            )
        return fields

    def job_saved(self, _items: object = None) -> None:
        """After a job: the result shows in the view again, and an outpaint is not repeated by accident."""
        self.paint_mask.setChecked(False)
        for box in self.outpaint.values():
            box.setValue(0)

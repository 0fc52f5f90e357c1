"""A mask editor over a picture: brush and eraser with a size (``[`` ``]``) and softness, invert,
clear, undo/redo of strokes (Ctrl+Z / Ctrl+Shift+Z), the mask as a tinted overlay at any zoom, and
a dropped PNG's transparency or a separate mask image as the mask.

The mask is kept at the picture's own resolution (white repaints, black keeps) whatever the zoom,
so what is painted is what the engine gets (``save_mask``).
"""

from __future__ import annotations

import itertools
from typing import cast

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QRadialGradient,
    QShortcut,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSlider,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

MIN_BRUSH, MAX_BRUSH = 1, 512
_UNDO_LIMIT = 40
_TINT = QColor(255, 40, 90)


def mask_from_transparency(image: QImage) -> QImage | None:
    """The transparent part of ``image`` as a mask (an erased hole repaints), or None if it has none."""
    if not image.hasAlphaChannel():
        return None
    alpha = image.convertToFormat(QImage.Format.Format_Alpha8)
    grey = QImage(
        alpha.constBits(), alpha.width(), alpha.height(), alpha.bytesPerLine(), QImage.Format.Format_Grayscale8
    ).copy()
    grey.invertPixels()
    return grey.convertToFormat(QImage.Format.Format_RGB32) if _any_set(grey) else None


def _any_set(grey: QImage) -> bool:
    width = grey.width()
    return any(any(bytes(cast(memoryview, grey.constScanLine(y)))[:width]) for y in range(grey.height()))


class MaskCanvas(QWidget):
    """The picture with its mask; paint with the left button."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image = QImage()
        self._mask = QImage()
        self._overlay = QImage()
        self._zoom = 1.0
        self._fit = True
        self.brush_size = 32
        self.softness = 0.3  # 0: a hard edge; 1: soft all the way from the centre
        self.erasing = False
        self._undo: list[QImage] = []
        self._redo: list[QImage] = []
        self._last: QPointF | None = None
        self.setMouseTracking(True)
        self.setAccessibleName("mask canvas")
        self.setToolTip("Paint what to repaint (white); the eraser keeps it. [ and ] change the brush size.")
        self.setCursor(Qt.CursorShape.CrossCursor)

    # -- the picture and the mask ---------------------------------------------------------

    def set_image(self, image: QImage) -> None:
        self._image = image.convertToFormat(QImage.Format.Format_RGB32)
        self._mask = QImage(self._image.size(), QImage.Format.Format_RGB32)
        self._mask.fill(QColor(0, 0, 0))
        self._undo.clear()
        self._redo.clear()
        self._refresh()

    def image(self) -> QImage:
        return self._image

    def set_mask(self, mask: QImage) -> bool:
        """Use ``mask`` (scaled to the picture when its size differs); True when it was scaled."""
        if self._image.isNull():
            return False
        scaled = mask.size() != self._image.size()
        if scaled:
            mask = mask.scaled(
                self._image.size(), Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation
            )
        self._remember()
        self._mask = mask.convertToFormat(QImage.Format.Format_Grayscale8).convertToFormat(QImage.Format.Format_RGB32)
        self._refresh()
        return scaled

    def mask_image(self) -> QImage:
        """The mask as 8-bit grey at the picture's size (white repaints)."""
        return self._mask.convertToFormat(QImage.Format.Format_Grayscale8)

    def mask_value(self, x: int, y: int) -> int:
        return QColor(self._mask.pixel(x, y)).red()

    def has_mask(self) -> bool:
        if self._mask.isNull():
            return False
        return _any_set(self.mask_image())

    # -- editing ----------------------------------------------------------------------------

    def invert(self) -> None:
        if self._mask.isNull():
            return
        self._remember()
        self._mask.invertPixels()
        self._refresh()

    def clear(self) -> None:
        if self._mask.isNull():
            return
        self._remember()
        self._mask.fill(QColor(0, 0, 0))
        self._refresh()

    def undo(self) -> None:
        if self._undo:
            self._redo.append(self._mask)
            self._mask = self._undo.pop()
            self._refresh()

    def redo(self) -> None:
        if self._redo:
            self._undo.append(self._mask)
            self._mask = self._redo.pop()
            self._refresh()

    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def _remember(self) -> None:
        self._undo.append(self._mask.copy())
        del self._undo[:-_UNDO_LIMIT]
        self._redo.clear()

    def stroke(self, points: list[QPointF]) -> None:
        """One stroke through ``points`` (picture coordinates): one undo step."""
        if self._mask.isNull() or not points:
            return
        self._remember()
        self._dab_line(points[0], points[0])
        for a, b in itertools.pairwise(points):
            self._dab_line(a, b)
        self._refresh()

    def _dab_line(self, a: QPointF, b: QPointF) -> None:
        radius = self.brush_size / 2
        colour = QColor(0, 0, 0) if self.erasing else QColor(255, 255, 255)
        painter = QPainter(self._mask)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        distance = max(abs(b.x() - a.x()), abs(b.y() - a.y()))
        spacing = max(1.0, radius / 4)
        count = max(1, int(distance / spacing))
        for i in range(count + 1):
            t = i / count
            centre = QPointF(a.x() + (b.x() - a.x()) * t, a.y() + (b.y() - a.y()) * t)
            gradient = QRadialGradient(centre, radius)
            solid, clear = QColor(colour), QColor(colour)
            clear.setAlpha(0)
            gradient.setColorAt(0.0, solid)
            gradient.setColorAt(max(0.0, min(0.999, 1 - self.softness)), solid)
            gradient.setColorAt(1.0, clear)
            painter.setBrush(gradient)
            painter.drawEllipse(centre, radius, radius)
        painter.end()

    # -- zoom -------------------------------------------------------------------------------

    def set_fit(self, fit: bool) -> None:
        self._fit = fit
        self.updateGeometry()
        self.adjustSize()
        self.update()

    def set_zoom(self, zoom: float) -> None:
        self._zoom = max(0.1, min(16.0, zoom))
        self._fit = False
        self.updateGeometry()
        self.adjustSize()
        self.update()

    def scale(self) -> float:
        if self._image.isNull():
            return 1.0
        if self._fit:
            parent = self.parentWidget()
            area = parent.size() if parent is not None else self.size()
            return max(0.05, min(area.width() / self._image.width(), area.height() / self._image.height()))
        return self._zoom

    def sizeHint(self) -> QSize:
        if self._image.isNull() or self._fit:
            return QSize(256, 256)
        return QSize(round(self._image.width() * self._zoom), round(self._image.height() * self._zoom))

    def _origin(self) -> QPointF:
        s = self.scale()
        return QPointF(
            max(0.0, (self.width() - self._image.width() * s) / 2),
            max(0.0, (self.height() - self._image.height() * s) / 2),
        )

    def to_image(self, point: QPointF) -> QPointF:
        """A widget position in picture pixels (at any zoom)."""
        origin, s = self._origin(), self.scale()
        return QPointF((point.x() - origin.x()) / s, (point.y() - origin.y()) / s)

    # -- Qt events --------------------------------------------------------------------------

    def _refresh(self) -> None:
        if not self._mask.isNull():
            overlay = QImage(self._mask.size(), QImage.Format.Format_ARGB32)
            overlay.fill(_TINT)
            overlay.setAlphaChannel(self.mask_image())
            self._overlay = overlay
        self.update()
        self.changed.emit()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        if self._image.isNull():
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Choose a starting image to paint a mask on it")
            return
        origin, s = self._origin(), self.scale()
        target = QRectF(origin.x(), origin.y(), self._image.width() * s, self._image.height() * s)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, s < 1)
        painter.drawImage(target, self._image)
        painter.setOpacity(0.55)
        painter.drawImage(target, self._overlay)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and not self._image.isNull():
            self._stroke = [self.to_image(event.position())]
            self._remember()
            self._dab_line(self._stroke[0], self._stroke[0])
            self._refresh()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if event.buttons() & Qt.MouseButton.LeftButton and getattr(self, "_stroke", None):
            point = self.to_image(event.position())
            self._dab_line(self._stroke[-1], point)
            self._stroke.append(point)
            self._refresh()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._stroke = []


class MaskEditor(QWidget):
    """The canvas with its tools."""

    changed = Signal()
    status = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas = MaskCanvas()
        self.canvas.changed.connect(self._changed)
        self.scroll_area = QScrollArea()
        self.scroll_area.setWidget(self.canvas)
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setAlignment(Qt.AlignmentFlag.AlignCenter)

        def tool(text: str, tip: str, slot, *, checkable: bool = False) -> QToolButton:
            widget = QToolButton()
            widget.setText(text)
            widget.setToolTip(tip)
            widget.setAccessibleName(text.lower())
            widget.setCheckable(checkable)
            widget.clicked.connect(slot)
            return widget

        self.brush_button = tool("Brush", "Paint what to repaint (B)", lambda: self.set_erasing(False), checkable=True)
        self.eraser_button = tool(
            "Eraser", "Take paint away: keep it (E)", lambda: self.set_erasing(True), checkable=True
        )
        self.brush_button.setChecked(True)
        self.brush_size_box = QSpinBox()
        self.brush_size_box.setRange(MIN_BRUSH, MAX_BRUSH)
        self.brush_size_box.setValue(self.canvas.brush_size)
        self.brush_size_box.setAccessibleName("brush size")
        self.brush_size_box.setToolTip("Brush size in picture pixels ([ smaller, ] larger)")
        self.brush_size_box.valueChanged.connect(lambda v: setattr(self.canvas, "brush_size", v))
        self.softness = QSlider(Qt.Orientation.Horizontal)
        self.softness.setRange(0, 100)
        self.softness.setValue(round(self.canvas.softness * 100))
        self.softness.setAccessibleName("brush softness")
        self.softness.setToolTip("How soft the brush's edge is")
        self.softness.valueChanged.connect(lambda v: setattr(self.canvas, "softness", v / 100))
        self.invert_button = tool("Invert", "Repaint everything but what is painted", self.canvas.invert)
        self.clear_button = tool("Clear", "Remove the whole mask", self.canvas.clear)
        self.undo_button = tool("Undo", "Undo the last stroke (Ctrl+Z)", self.canvas.undo)
        self.redo_button = tool("Redo", "Redo (Ctrl+Shift+Z)", self.canvas.redo)
        self.fit = QCheckBox("Fit")
        self.fit.setChecked(True)
        self.fit.setToolTip("Fit the picture to the view; off: zoom with Ctrl++ and Ctrl+-")
        self.fit.setAccessibleName("fit the mask editor to the view")
        self.fit.toggled.connect(self._fit_toggled)
        self.zoom_in = tool("+", "Zoom in (Ctrl++)", lambda: self._zoom_by(1.5))
        self.zoom_out = tool("−", "Zoom out (Ctrl+-)", lambda: self._zoom_by(1 / 1.5))

        # Two rows, so the tools never widen the view they sit over.
        brush_row, edit_row = QHBoxLayout(), QHBoxLayout()
        tools: tuple[QWidget, ...] = (
            self.brush_button, self.eraser_button, QLabel("Size"), self.brush_size_box, QLabel("Soft"),
        )  # fmt: skip
        for tool_widget in tools:
            brush_row.addWidget(tool_widget)
        brush_row.addWidget(self.softness, 1)
        edits: tuple[QWidget, ...] = (self.invert_button, self.clear_button, self.undo_button, self.redo_button)
        for edit_widget in edits:
            edit_row.addWidget(edit_widget)
        edit_row.addStretch(1)
        views: tuple[QWidget, ...] = (self.fit, self.zoom_out, self.zoom_in)
        for view_widget in views:
            edit_row.addWidget(view_widget)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(brush_row)
        layout.addLayout(edit_row)
        layout.addWidget(self.scroll_area, 1)

        for keys, slot in (
            ("[", lambda: self.brush_size_box.setValue(max(MIN_BRUSH, round(self.brush_size_box.value() / 1.25)))),
            ("]", lambda: self.brush_size_box.setValue(min(MAX_BRUSH, round(self.brush_size_box.value() * 1.25) + 1))),
            (QKeySequence.StandardKey.Undo, self.canvas.undo),
            ("Ctrl+Shift+Z", self.canvas.redo),
            ("B", lambda: self.set_erasing(False)),
            ("E", lambda: self.set_erasing(True)),
            ("Ctrl++", lambda: self._zoom_by(1.5)),
            ("Ctrl+=", lambda: self._zoom_by(1.5)),
            ("Ctrl+-", lambda: self._zoom_by(1 / 1.5)),
        ):
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)
        self._changed()

    def set_erasing(self, erasing: bool) -> None:
        self.canvas.erasing = erasing
        self.brush_button.setChecked(not erasing)
        self.eraser_button.setChecked(erasing)

    def _fit_toggled(self, fit: bool) -> None:
        self.scroll_area.setWidgetResizable(fit)
        self.canvas.set_fit(fit)

    def _zoom_by(self, factor: float) -> None:
        zoom = self.canvas.scale() * factor
        self.fit.blockSignals(True)
        self.fit.setChecked(False)
        self.fit.blockSignals(False)
        self.scroll_area.setWidgetResizable(False)
        self.canvas.set_zoom(zoom)

    def _changed(self) -> None:
        self.undo_button.setEnabled(self.canvas.can_undo())
        self.redo_button.setEnabled(self.canvas.can_redo())
        self.changed.emit()

    # -- files ------------------------------------------------------------------------------

    def load_image(self, path: str) -> bool:
        """Show the picture at ``path``; a transparent part of it becomes the mask. False if unreadable."""
        image = QImage(path)
        if image.isNull():
            return False
        self.canvas.set_image(image)
        hole = mask_from_transparency(image)
        if hole is not None:
            self.canvas.set_mask(hole)
            self.canvas._undo.clear()
            self._changed()
            self.status.emit("The picture's transparent part is the mask")
        return True

    def load_mask(self, path: str) -> bool:
        """A separate mask image: white (or transparent) repaints. False if unreadable."""
        image = QImage(path)
        if image.isNull() or self.canvas.image().isNull():
            return False
        mask = mask_from_transparency(image) or image
        original = image.size()
        if self.canvas.set_mask(mask):
            target = self.canvas.image().size()
            self.status.emit(
                f"The mask ({original.width()}×{original.height()}) was scaled to the picture's "
                f"{target.width()}×{target.height()}"
            )
        return True

    def save_mask(self, path: str) -> bool:
        return self.canvas.mask_image().save(path)  # PNG, by the name's suffix

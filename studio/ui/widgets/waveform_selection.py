"""A waveform on which a region is selected by dragging (a click still seeks)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRectF, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent
from PySide6.QtWidgets import QWidget

from studio.ui.widgets.waveform import WaveformView

# A press that moves less than this is a click (seek), not a selection.
_DRAG_PIXELS = 4


class SelectableWaveform(WaveformView):
    """``region_selected(start_s, end_s)`` after a drag; ``set_region`` shows one set elsewhere."""

    region_selected = Signal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.duration_s = 0.0
        self._region: tuple[float, float] | None = None  # seconds
        self._press_x: float | None = None
        self._dragging = False
        self.setToolTip("The clip's waveform: click to play from there, drag to select a region to edit")

    def set_file(self, path: Path | None) -> None:
        super().set_file(path)
        self._region = None
        self.duration_s = 0.0
        if path is not None:
            import soundfile

            info = soundfile.info(str(path))
            self.duration_s = info.frames / info.samplerate if info.samplerate else 0.0

    @property
    def region(self) -> tuple[float, float] | None:
        return self._region

    def set_region(self, start_s: float, end_s: float) -> None:
        """Show the region ``[start_s, end_s]`` (clamped to the clip); an empty one clears it."""
        start, end = sorted((max(0.0, start_s), min(self.duration_s, end_s)))
        self._region = (start, end) if end > start else None
        self.update()

    def clear_region(self) -> None:
        self._region = None
        self.update()

    def _seconds_at(self, x: float) -> float:
        width = max(1, self.width())
        return round(min(1.0, max(0.0, x / width)) * self.duration_s, 2)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self._press_x = event.position().x() if self.has_waveform() else None
        self._dragging = False

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._press_x is None:
            return
        x = event.position().x()
        if not self._dragging and abs(x - self._press_x) < _DRAG_PIXELS:
            return
        self._dragging = True
        self.set_region(self._seconds_at(self._press_x), self._seconds_at(x))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._press_x is None:
            return
        if self._dragging:
            if self._region is not None:
                self.region_selected.emit(*self._region)
        else:
            super().mousePressEvent(event)  # a click: seek there
        self._press_x = None
        self._dragging = False

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        if self._region is None or not self.duration_s:
            return
        painter = QPainter(self)
        start, end = (self._region[0] / self.duration_s, self._region[1] / self.duration_s)
        colour = QColor(self.palette().highlight().color())
        colour.setAlpha(70)
        painter.fillRect(QRectF(start * self.width(), 0, (end - start) * self.width(), self.height()), colour)

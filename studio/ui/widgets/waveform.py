"""A waveform of a sound file: the min/max envelope, the play position, click to seek."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

if TYPE_CHECKING:
    import numpy as np

_BLOCK_FRAMES = 65536


def waveform_envelope(path: Path, buckets: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Per-bucket minimum and maximum of the file's mono mix, read in blocks (any length of file)."""
    import numpy as np
    import soundfile

    with soundfile.SoundFile(str(path)) as sound:
        frames = sound.frames
        buckets = max(1, min(buckets, frames))
        per_bucket = frames / buckets
        lows = np.zeros(buckets, dtype=np.float32)
        highs = np.zeros(buckets, dtype=np.float32)
        start = 0
        for block in sound.blocks(blocksize=_BLOCK_FRAMES, dtype="float32", always_2d=True):
            mono = block.mean(axis=1)
            index = ((start + np.arange(len(mono))) / per_bucket).astype(np.int64).clip(0, buckets - 1)
            np.minimum.at(lows, index, mono)
            np.maximum.at(highs, index, mono)
            start += len(mono)
    return lows, highs


class WaveformView(QWidget):
    seek_requested = Signal(float)  # a 0..1 fraction of the clip

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # None until a file is shown: numpy is imported with the first file, not with the window
        # (its import is ~60 ms of start-up, docs/PERFORMANCE.md "Start-up").
        self._lows: np.ndarray | None = None
        self._highs: np.ndarray | None = None
        self._position = 0.0
        self.setMinimumHeight(90)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setAccessibleName("waveform")
        self.setToolTip("The clip's waveform; click to play from there")

    def set_file(self, path: Path | None) -> None:
        if path is None:
            self._lows = self._highs = None
        else:
            self._lows, self._highs = waveform_envelope(path)
        self._position = 0.0
        self.update()

    def has_waveform(self) -> bool:
        return self._lows is not None and self._lows.size > 0

    def set_position(self, fraction: float) -> None:
        self._position = fraction
        self.update()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if self.has_waveform() and self.width() > 0:
            self.seek_requested.emit(min(1.0, max(0.0, event.position().x() / self.width())))

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().base())
        if self._lows is None or self._highs is None or not self._lows.size:
            painter.setPen(self.palette().placeholderText().color())
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "The waveform appears here")
            return
        width, height = self.width(), self.height()
        middle = height / 2
        import numpy as np

        columns = np.linspace(0, len(self._lows), num=max(2, width + 1)).astype(np.int64)
        painter.setPen(QPen(self.palette().highlight().color(), 1))
        for x in range(width):
            a, b = columns[x], max(columns[x] + 1, columns[x + 1])
            low, high = float(self._lows[a:b].min()), float(self._highs[a:b].max())
            painter.drawLine(QPointF(x, middle - high * middle), QPointF(x, middle - low * middle))
        painter.setPen(QPen(QColor(230, 80, 60), 2))
        marker = self._position * width
        painter.drawLine(QPointF(marker, 0), QPointF(marker, height))
        painter.setPen(self.palette().mid().color())
        painter.drawRect(QRectF(0, 0, width - 1, height - 1))

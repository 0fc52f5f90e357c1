"""A one-line readout for figures that change while a job runs (tokens per second, time left).

A ``QLabel`` asks for a new layout on every ``setText``: Qt re-measures it and, since its size may
have changed, lays out its parents up to the window. In the Text tab, the speed figure re-set four
times a second made the whole window relayout and repaint each time — half the GUI thread's CPU
while text streamed, which on two cores is taken straight from the model's threads
(docs/PERFORMANCE.md, "The window"). A readout's size depends on its font, never on its text, so
a new figure repaints the readout alone.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

# The width it asks for: about as wide as "400 tokens · 130.1 tokens/s · first token 12 ms …".
_HINT_CHARS = 52


class Readout(QWidget):
    """Shows one line of text (elided when too narrow); ``text()``/``setText()`` as on a QLabel."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._text = ""
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setText(text)

    def text(self) -> str:
        return self._text

    def setText(self, text: str) -> None:  # the QLabel spelling, so callers need not care
        if text == self._text:
            return
        self._text = text
        self.setAccessibleDescription(text)  # what a screen reader reads, as a label's text would be
        self.update()  # a repaint of this widget only: no size change to announce

    def sizeHint(self) -> QSize:
        metrics = self.fontMetrics()
        return QSize(metrics.averageCharWidth() * _HINT_CHARS, metrics.height())

    def minimumSizeHint(self) -> QSize:
        return QSize(0, self.fontMetrics().height())

    def paintEvent(self, event: QPaintEvent) -> None:
        if not self._text:
            return
        painter = QPainter(self)
        painter.setPen(self.palette().color(QPalette.ColorRole.WindowText))
        shown = self.fontMetrics().elidedText(self._text, Qt.TextElideMode.ElideRight, self.width())
        painter.drawText(self.rect(), int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), shown)

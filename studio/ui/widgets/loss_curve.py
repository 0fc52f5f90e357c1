"""A training run's loss curve, painted with QPainter: raw points, a smoothed line, axes with ticks
and the best loss marked.

Points arrive as the ``recent`` (step, loss) pairs of each progress event (the window keeps only
the latest progress event per frame, so each carries the last few steps); they are merged by step,
so a step reported twice is drawn once and none is lost between frames.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QApplication, QSizePolicy, QWidget

SMOOTHING = 0.8  # the weight of the past in the smoothed line (TensorBoard's slider, debiased)
# ... reached at this many points: a short run's line follows its points instead of lagging behind.
_FULL_SMOOTHING_AT = 100
_MAX_DRAWN = 1500  # raw points drawn at most; more are thinned (every n-th, the best always kept)
_MARGIN_LEFT, _MARGIN_BOTTOM, _MARGIN_TOP, _MARGIN_RIGHT = 54, 34, 14, 14


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round values (1, 2 or 5 × 10ⁿ apart) covering ``low``…``high``."""
    if not math.isfinite(low) or not math.isfinite(high):
        return []
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def smooth(values: list[float], weight: float = SMOOTHING) -> list[float]:
    """An exponential moving average, debiased so its start is not pulled toward zero."""
    out: list[float] = []
    average = 0.0
    for n, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight**n) if weight else value)
    return out


def _tick_label(value: float, spread: float) -> str:
    if spread >= 100 or (float(value).is_integer() and spread >= 5):
        return f"{value:,.0f}"
    decimals = max(0, min(4, 1 - math.floor(math.log10(max(spread, 1e-6)))))
    return f"{value:.{decimals}f}"


class LossCurve(QWidget):
    """The loss of each step of a run so far; ``merge`` adds points, ``clear`` starts over."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._points: dict[int, float] = {}
        self._total = 0
        self._cache: tuple[list[int], list[float], list[float]] | None = None
        self.setAccessibleName("loss curve")
        self.setToolTip("The training loss at each step (dots) and smoothed (line); the best loss is marked")
        self.setMinimumSize(260, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def sizeHint(self) -> QSize:
        return QSize(520, 300)

    # -- data ----------------------------------------------------------------------------

    def clear(self) -> None:
        if self._points or self._total:
            self._points.clear()
            self._total = 0
            self._cache = None
            self.update()

    def set_total(self, total: int) -> None:
        """The run's last step: the x axis reaches it from the start, so the curve grows into it."""
        if total != self._total and total >= 0:
            self._total = total
            self.update()

    def merge(self, points: Iterable[Any]) -> int:
        """Add (step, loss) pairs (lists from an event's ``recent`` do too); a step already known
        takes the newer loss. Returns how many steps were new."""
        new = 0
        changed = False
        for point in points:
            try:
                step, loss = int(point[0]), float(point[1])
            except (TypeError, ValueError, IndexError):
                continue
            if not math.isfinite(loss):
                continue
            old = self._points.get(step)
            if old is None:
                new += 1
            if old != loss:
                self._points[step] = loss
                changed = True
        if changed:
            self._cache = None
            self.update()
        return new

    def points(self) -> list[tuple[int, float]]:
        return sorted(self._points.items())

    def best(self) -> tuple[int, float] | None:
        """The step with the lowest loss (the earliest of equals), or None before any."""
        if not self._points:
            return None
        return min(self._points.items(), key=lambda item: (item[1], item[0]))

    def smoothed(self) -> list[tuple[int, float]]:
        steps, _raw, line = self._series()
        return list(zip(steps, line, strict=True))

    def _series(self) -> tuple[list[int], list[float], list[float]]:
        if self._cache is None:
            ordered = sorted(self._points.items())
            steps = [s for s, _ in ordered]
            raw = [v for _, v in ordered]
            weight = SMOOTHING * min(1.0, len(raw) / _FULL_SMOOTHING_AT)
            self._cache = (steps, raw, smooth(raw, weight))
        return self._cache

    # -- painting ------------------------------------------------------------------------

    def _colours(self) -> tuple[QColor, QColor, QColor, QColor]:
        """Ink, faint grid, the accent and the best mark, for the theme in use."""
        app = QApplication.instance()
        light = app is not None and app.property("studio_theme") == "light"
        ink = self.palette().color(QPalette.ColorRole.WindowText)
        grid = QColor(ink)
        grid.setAlpha(40)
        accent = QColor("#3d63d6") if light else QColor("#4a7dff")
        best = QColor("#b26a00") if light else QColor("#ffb648")
        return ink, grid, accent, best

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        ink, grid, accent, best_colour = self._colours()
        plot = QRectF(
            _MARGIN_LEFT,
            _MARGIN_TOP,
            max(1, self.width() - _MARGIN_LEFT - _MARGIN_RIGHT),
            max(1, self.height() - _MARGIN_TOP - _MARGIN_BOTTOM),
        )
        steps, raw, line = self._series()
        if not steps:
            painter.setPen(ink)
            painter.drawText(
                self.rect(), Qt.AlignmentFlag.AlignCenter, "The loss curve appears with the first training steps."
            )
            painter.end()
            return
        x_low = min(0, steps[0])
        x_high = max(self._total, steps[-1], x_low + 1)
        y_low, y_high = min(raw), max(raw)
        pad = (y_high - y_low) * 0.08 or abs(y_high) * 0.1 or 0.1
        y_low, y_high = max(0.0, y_low - pad) if y_low >= 0 else y_low - pad, y_high + pad

        def at(step: float, loss: float) -> QPointF:
            x = plot.left() + (step - x_low) / (x_high - x_low) * plot.width()
            y = plot.bottom() - (loss - y_low) / (y_high - y_low) * plot.height()
            return QPointF(x, y)

        metrics = painter.fontMetrics()
        # Grid and tick labels.
        for value in nice_ticks(y_low, y_high, 4):
            if not y_low <= value <= y_high:
                continue
            y = at(x_low, value).y()
            painter.setPen(QPen(grid, 1))
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            painter.setPen(ink)
            label = _tick_label(value, y_high - y_low)
            painter.drawText(
                QRectF(0, y - metrics.height() / 2, _MARGIN_LEFT - 6, metrics.height()),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                label,
            )
        for value in nice_ticks(x_low, x_high, 5):
            if not x_low <= value <= x_high:
                continue
            x = at(value, y_low).x()
            painter.setPen(QPen(grid, 1))
            painter.drawLine(QPointF(x, plot.top()), QPointF(x, plot.bottom()))
            painter.setPen(ink)
            label = _tick_label(value, x_high - x_low)
            width = metrics.horizontalAdvance(label) + 4
            painter.drawText(
                QRectF(x - width / 2, plot.bottom() + 3, width, metrics.height()), Qt.AlignmentFlag.AlignHCenter, label
            )
        painter.setPen(QPen(ink, 1))
        painter.drawLine(plot.bottomLeft(), plot.bottomRight())
        painter.drawLine(plot.bottomLeft(), plot.topLeft())
        painter.drawText(
            QRectF(plot.left(), plot.bottom() + metrics.height() + 2, plot.width(), metrics.height()),
            Qt.AlignmentFlag.AlignHCenter,
            "step",
        )
        painter.save()
        painter.translate(10, plot.center().y())
        painter.rotate(-90)
        painter.drawText(QRectF(-40, -8, 80, 16), Qt.AlignmentFlag.AlignCenter, "loss")
        painter.restore()

        painter.setClipRect(plot.adjusted(-4, -4, 4, 4))
        # Raw points, thinned when there are more than the plot can show apart.
        stride = max(1, math.ceil(len(steps) / _MAX_DRAWN))
        dots = QColor(accent)
        dots.setAlpha(200 if len(steps) < 60 else 120)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(dots)
        radius = 3.0 if len(steps) < 60 else 2.2 if len(steps) < 400 else 1.4
        for index in range(0, len(steps), stride):
            painter.drawEllipse(at(steps[index], raw[index]), radius, radius)
        # The smoothed line.
        path = QPainterPath(at(steps[0], line[0]))
        for index in range(stride, len(steps), stride):
            path.lineTo(at(steps[index], line[index]))
        path.lineTo(at(steps[-1], line[-1]))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(accent, 2.2))
        painter.drawPath(path)
        # The best loss.
        best = self.best()
        painter.setClipping(False)
        if best is not None:
            point = at(*best)
            painter.setPen(QPen(best_colour, 2))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawEllipse(point, 5, 5)
            text = f"best {best[1]:.4g} · step {best[0]}"
            width = metrics.horizontalAdvance(text) + 8
            x = min(max(point.x() - width / 2, plot.left()), plot.right() - width)
            y = point.y() - metrics.height() - 8
            if y < plot.top():
                y = point.y() + 8
            painter.setPen(best_colour)
            painter.drawText(QRectF(x, y, width, metrics.height()), Qt.AlignmentFlag.AlignCenter, text)
        painter.end()

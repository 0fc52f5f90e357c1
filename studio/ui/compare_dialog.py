"""Regenerate and compare: run a gallery item's recorded request again and show both.

The run happens on a ``QThreadPool`` thread (``studio.runtime.regenerate``: the model found by its
hash, loaded there, nothing saved); the window stays live. The answer — identical, or different and
why — heads the dialog; below it the two outputs: an A/B slider (or side by side) for images, two
players for music, a line diff for text. "Keep" saves the new output as a child of the original.
"""

from __future__ import annotations

import difflib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QRect, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtGui import QImage, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from studio.ui.widgets.audio_player import AudioPlayer

if TYPE_CHECKING:
    from studio.gallery.store import GalleryItem


class _Signals(QObject):
    done = Signal(object)  # a RegenerateReport
    failed = Signal(str)


class _Run(QRunnable):
    """The regeneration, off the GUI thread."""

    def __init__(self, item: GalleryItem, services: Any, cancel: threading.Event) -> None:
        super().__init__()
        self.item, self.services, self.cancel = item, services, cancel
        self.signals = _Signals()

    def run(self) -> None:
        from studio.runtime.regenerate import regenerate_with_services

        try:
            report = regenerate_with_services(self.item.record, self.item.path, self.services, cancel=self.cancel)
        except Exception as exc:  # every failure is shown in the dialog, never raised into Qt
            self.signals.failed.emit(str(exc) or type(exc).__name__)
            return
        self.signals.done.emit(report)


class ABView(QWidget):
    """Two images of one size: A left of the divider, B right of it (or side by side)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.a = QImage()
        self.b = QImage()
        self.split = 0.5
        self.side_by_side = False
        self.setMinimumSize(320, 240)
        self.setAccessibleName("A/B comparison")

    def set_images(self, a: QImage, b: QImage) -> None:
        self.a, self.b = a, b
        self.update()

    def set_split(self, value: int) -> None:
        self.split = value / 100
        self.update()

    def set_side_by_side(self, on: bool) -> None:
        self.side_by_side = on
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:
        if self.a.isNull() or self.b.isNull():
            return
        painter = QPainter(self)
        if self.side_by_side:
            half = self.width() // 2
            for index, image in enumerate((self.a, self.b)):
                painter.drawImage(_fit(image, QRect(index * half, 0, half, self.height())), image)
            painter.end()
            return
        target = _fit(self.a, self.rect())
        x = target.left() + round(target.width() * self.split)
        painter.drawImage(target, self.b)
        painter.setClipRect(QRect(target.left(), target.top(), x - target.left(), target.height()))
        painter.drawImage(target, self.a)
        painter.setClipping(False)
        painter.setPen(QPen(Qt.GlobalColor.white, 2))
        painter.drawLine(x, target.top(), x, target.bottom())
        painter.end()


def _fit(image: QImage, box: QRect) -> QRect:
    scale = min(box.width() / max(1, image.width()), box.height() / max(1, image.height()))
    width, height = round(image.width() * scale), round(image.height() * scale)
    return QRect(box.left() + (box.width() - width) // 2, box.top() + (box.height() - height) // 2, width, height)


class CompareDialog(QDialog):
    """Regenerates ``item`` and shows the original (A) against the new output (B)."""

    finished_report = Signal(object)

    def __init__(self, item: GalleryItem, services: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.item, self.services = item, services
        self.report: Any = None
        self._cancel = threading.Event()
        self.setWindowTitle(f"Regenerate and compare — {item.id}")
        self.verdict = QLabel("Regenerating with the recorded model and settings…")
        self.verdict.setWordWrap(True)
        self.verdict.setAccessibleName("verdict")
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setMaximumHeight(120)
        self.details.setAccessibleName("differences")
        self.body = QVBoxLayout()
        self.keep_button = QPushButton("Keep the new output")
        self.keep_button.setToolTip("Save it in the gallery as a child of the original")
        self.keep_button.setEnabled(False)
        self.keep_button.clicked.connect(self.keep)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.keep_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.verdict)
        layout.addLayout(self.body, 1)
        layout.addWidget(self.details)
        layout.addWidget(buttons)
        self.resize(760, 560)
        self._run = _Run(item, services, self._cancel)
        self._run.signals.done.connect(self._show)
        self._run.signals.failed.connect(self._failed)

    def start(self) -> None:
        QThreadPool.globalInstance().start(self._run)

    def reject(self) -> None:
        self._cancel.set()  # a run still going stops at its next step; its result is dropped
        super().reject()

    def _failed(self, message: str) -> None:
        self.verdict.setText(f"Could not regenerate: {message}")

    def _show(self, report: Any) -> None:
        self.report = report
        self.verdict.setText(("✓ " if report.identical else "✗ ") + report.explanation)
        self.details.setPlainText(
            "\n".join(
                [f"original     {report.original_sha256}", f"regenerated  {report.regenerated_sha256}"]
                + [f"differs: {d}" for d in report.differences]
            )
        )
        self.keep_button.setEnabled(report.output is not None)
        kind = self.item.kind
        if kind == "image":
            self._show_images(report)
        elif kind == "music":
            self._show_players(report)
        else:
            self._show_text(report)
        self.finished_report.emit(report)

    def _show_images(self, report: Any) -> None:
        import numpy as np

        view = ABView()
        pixels = np.ascontiguousarray(report.output.data)
        height, width = pixels.shape[:2]
        new = QImage(pixels.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
        view.set_images(QImage(str(self.item.path)), new)
        slider = QSlider(Qt.Orientation.Horizontal)
        slider.setRange(0, 100)
        slider.setValue(50)
        slider.setAccessibleName("A/B divider")
        slider.setToolTip("Left: the original (A). Right: regenerated (B).")
        slider.valueChanged.connect(view.set_split)
        side = QCheckBox("Side by side")
        side.toggled.connect(view.set_side_by_side)
        row = QHBoxLayout()
        row.addWidget(QLabel("A original"))
        row.addWidget(slider, 1)
        row.addWidget(QLabel("B regenerated"))
        row.addWidget(side)
        self.body.addWidget(view, 1)
        self.body.addLayout(row)
        self.ab_view = view

    def _show_players(self, report: Any) -> None:
        import tempfile

        import soundfile

        folder = Path(tempfile.mkdtemp(prefix="studio-compare-"))
        new = folder / "regenerated.flac"
        soundfile.write(new, report.output.data, int(report.output.info["sample_rate"]), subtype="PCM_16")
        for label, path in (("A original", self.item.path), ("B regenerated", new)):
            player = AudioPlayer()
            player.load(path)
            self.body.addWidget(QLabel(label))
            self.body.addWidget(player)

    def _show_text(self, report: Any) -> None:
        from studio.gallery.content import read_text_body

        before = read_text_body(self.item.path).splitlines()
        after = str(report.output.data).splitlines()
        diff = list(difflib.unified_diff(before, after, "original", "regenerated", lineterm=""))
        view = QPlainTextEdit("\n".join(diff) if diff else "\n".join(after))
        view.setReadOnly(True)
        view.setAccessibleName("text diff")
        self.body.addWidget(view, 1)

    def keep(self) -> None:
        from studio.runtime.regenerate import keep_output

        if self.report is None:
            return
        try:
            item = keep_output(self.report, self.services.store)
        except Exception as exc:
            self.verdict.setText(f"Could not keep it: {exc}")
            return
        self.keep_button.setEnabled(False)
        self.verdict.setText(self.verdict.text() + f"  Kept as {item.id}.")

"""``Readout``: a figure that changes while a job runs repaints itself, never relayouts the window."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from studio.ui.widgets.readout import Readout


class LayoutRequests(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.LayoutRequest:
            self.count += 1
        return False


def _window_with(qtbot, widget: QWidget) -> tuple[QWidget, LayoutRequests]:
    window = QWidget()
    inner = QWidget(window)  # a nested layout, as in a tab: a request climbs to the window
    QVBoxLayout(inner).addWidget(widget)
    QVBoxLayout(window).addWidget(inner)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    qtbot.wait(30)  # the first layout settles
    requests = LayoutRequests()
    for watched in (window, inner):
        watched.installEventFilter(requests)
    return window, requests


def _set_texts(qtbot, widget) -> None:
    for n in range(20):
        widget.setText(f"{n * 37} tokens · {n * 13.7:.1f} tokens/s …")
        qtbot.wait(1)
    qtbot.wait(20)


def test_a_label_asks_for_a_new_layout_on_every_change(qtbot):
    # What the readout is for: a plain QLabel relayouts its window each time its text changes.
    label = QLabel("")
    _, requests = _window_with(qtbot, label)
    _set_texts(qtbot, label)
    assert requests.count > 0


def test_a_readout_changes_without_any_layout_request(qtbot):
    readout = Readout("")
    window, requests = _window_with(qtbot, readout)
    _set_texts(qtbot, readout)
    assert requests.count == 0
    assert readout.text() == "703 tokens · 260.3 tokens/s …"
    assert readout.accessibleDescription() == readout.text()  # what a screen reader reads
    assert readout.height() >= readout.fontMetrics().height()
    readout.setText(readout.text())  # the same text again: nothing to repaint
    image = window.grab().toImage()
    assert not image.isNull()

"""Text views that streamed text is appended to by Qt itself, with the interpreter lock free.

Appending a chunk from Python — a cursor moved to the end, ``insertText`` — makes Qt lay out the
paragraph the chunk lands in: 0.4 ms a chunk for verse-length lines, 1.2 ms in a long paragraph,
growing with it. A call from Python into Qt holds the interpreter lock for all of it, and the worker
thread writing the text needs the lock between every two torch operations, so it waited: at 60
appends a second the GUI thread held the lock for about 5 % of the time, which came straight off
the Text tab's tokens per second (docs/PERFORMANCE.md, "The window"). Here a chunk goes to the
view's own ``insertPlainText`` slot through a *queued* connection: Python only posts it (~40 µs),
and Qt inserts and lays it out from its event loop, in C++, without the lock.

Two things follow from the text arriving a moment later than ``append`` returns:

- ``insertPlainText`` writes at the view's cursor, so while a stream runs the cursor is kept at the
  end and the user's clicks cannot move it (the view still scrolls and its text stays readable);
  selecting comes back when the stream ends.
- Python code that reads or replaces the text must see the chunks posted before it: ``flush``
  delivers them first, and ``StreamingTextEdit`` does so in ``toPlainText``, ``clear`` and
  ``setPlainText``.

The view follows the end while the stream grows it, unless the user has scrolled up to read —
as a terminal does; scrolling back to the end follows again.
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, Signal
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QPlainTextEdit, QScrollBar, QTextEdit

_TextView = QPlainTextEdit | QTextEdit


class TextStream(QObject):
    """Appends streamed chunks to ``view`` through its ``insertPlainText`` slot, queued.

    ``follow``: the scroll bar that should stay at its end while the text grows (the view's own by
    default; a chat passes its message list's).
    """

    _chunk = Signal(str)

    def __init__(self, view: _TextView, follow: QScrollBar | None = None) -> None:
        super().__init__(view)
        self.view = view
        self.streaming = False
        self._flags = view.textInteractionFlags()
        # A C++ slot on a queued connection: delivered by Qt's event loop without Python.
        self._chunk.connect(view.insertPlainText, Qt.ConnectionType.QueuedConnection)
        self._bar = follow if follow is not None else view.verticalScrollBar()
        self._following = True
        # Both fire on a new line or a scroll, not per chunk: their Python slots cost nothing per token.
        self._bar.rangeChanged.connect(self._range_changed)
        self._bar.valueChanged.connect(self._scrolled)

    def append(self, chunk: str) -> None:
        """Add ``chunk`` at the end of the text (a stream begins with the first chunk)."""
        if not chunk:
            return
        if not self.streaming:
            self.begin()
        self._chunk.emit(chunk)

    def begin(self) -> None:
        """A stream starts: the cursor goes to the end and stays there until ``end``."""
        self.flush()
        view = self.view
        cursor = view.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        view.setTextCursor(cursor)
        if not self.streaming:
            self._flags = view.textInteractionFlags()
        view.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        self.streaming = True
        self._following = self._at_end()

    def end(self) -> None:
        """The stream is over: its last chunks are shown and the text can be selected again."""
        self.flush()
        if self.streaming:
            self.streaming = False
            self.view.setTextInteractionFlags(self._flags)

    def flush(self) -> None:
        """Insert the chunks posted but not yet delivered, now (Python is about to read the text)."""
        QCoreApplication.sendPostedEvents(self.view, QEvent.Type.MetaCall)

    def _at_end(self) -> bool:
        return self._bar.value() >= self._bar.maximum()

    def _scrolled(self, _value: int) -> None:
        self._following = self._at_end()  # the user scrolled up to read, or back down to follow

    def _range_changed(self, _minimum: int, maximum: int) -> None:
        if self.streaming and self._following:
            self._bar.setValue(maximum)


class StreamingTextEdit(QPlainTextEdit):
    """A read-only text view for streamed output (``stream``), whose Python-side reads and writes
    see every chunk appended before them."""

    def __init__(self) -> None:
        super().__init__()
        self.setReadOnly(True)
        self.stream = TextStream(self)

    def toPlainText(self) -> str:
        self.stream.flush()
        return super().toPlainText()

    def clear(self) -> None:
        self.stream.end()
        super().clear()

    def setPlainText(self, text: str) -> None:
        self.stream.end()
        super().setPlainText(text)

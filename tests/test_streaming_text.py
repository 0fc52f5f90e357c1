"""Streamed text in the Text tab and the chat (studio.ui.widgets.streaming_text): chunks inserted by
Qt from its event loop, in order, at the end, while the view follows the end unless scrolled up."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QTextEdit

from studio.ui.widgets.streaming_text import StreamingTextEdit, TextStream


def test_chunks_arrive_from_the_event_loop_in_order_and_python_reads_see_them(qtbot):
    view = StreamingTextEdit()
    qtbot.addWidget(view)
    for chunk in ("The ", "harbour ", "at ", "dawn."):
        view.stream.append(chunk)
    # Queued: not inserted while Python runs (that is the point: Qt lays it out with the lock free)…
    assert view.document().toPlainText() == ""
    qtbot.waitUntil(lambda: view.document().toPlainText() == "The harbour at dawn.", timeout=2000)
    view.stream.append(" More")
    assert view.toPlainText() == "The harbour at dawn. More"  # …but a read from Python sees every chunk


def test_a_stream_writes_at_the_end_and_the_user_cannot_move_its_cursor_until_it_ends(qtbot):
    view = StreamingTextEdit()
    qtbot.addWidget(view)
    view.setPlainText("Once upon a time")
    selectable = view.textInteractionFlags()
    start = view.textCursor()
    start.movePosition(QTextCursor.MoveOperation.Start)
    view.setTextCursor(start)  # where a click left it before Continue
    view.stream.append(", a lighthouse")
    assert view.textInteractionFlags() == Qt.TextInteractionFlag.NoTextInteraction
    view.stream.append(" keeper.")
    view.stream.end()
    assert view.toPlainText() == "Once upon a time, a lighthouse keeper."
    assert view.textInteractionFlags() == selectable  # selecting works again
    view.clear()
    view.stream.append("new")
    assert view.toPlainText() == "new"  # clear() ended the old stream; nothing stale comes back


def test_the_view_follows_the_end_unless_the_user_scrolled_up(qtbot):
    view = StreamingTextEdit()
    qtbot.addWidget(view)
    view.resize(300, 120)
    view.show()
    bar = view.verticalScrollBar()
    for n in range(40):
        view.stream.append(f"line {n}\n")
    view.stream.flush()
    qtbot.waitUntil(lambda: bar.maximum() > 0, timeout=2000)
    assert bar.value() == bar.maximum()  # followed the end
    bar.setValue(0)  # the user scrolls up to read the start
    for n in range(40, 60):
        view.stream.append(f"line {n}\n")
    view.stream.flush()
    qtbot.wait(20)
    assert bar.value() == 0  # left where the user is reading
    bar.setValue(bar.maximum())  # back to the end: following again
    for n in range(60, 80):
        view.stream.append(f"line {n}\n")
    view.stream.flush()
    qtbot.waitUntil(lambda: bar.value() == bar.maximum() and "line 79" in view.toPlainText(), timeout=2000)


def test_a_chat_reply_streams_into_a_rich_text_view_too(qtbot):
    view = QTextEdit()
    view.setReadOnly(True)
    qtbot.addWidget(view)
    stream = TextStream(view)
    stream.append("**bold** stays plain while it streams")
    stream.end()
    assert view.toPlainText() == "**bold** stays plain while it streams"

"""Messages that belong to a job or an action: each goes away with it, or after a while."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QLabel

# How long a message about something finished stays: long enough to read, short enough not to
# be taken for news about what comes next.
MESSAGE_SECONDS = 12.0


class MessageTimeout(QObject):
    """Clears ``label`` a while after a message was shown, unless another message replaced it
    meanwhile (that one has its own lifetime)."""

    def __init__(self, label: QLabel, seconds: float = MESSAGE_SECONDS) -> None:
        super().__init__(label)
        self._label = label
        self._text = ""
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(round(seconds * 1000))
        self._timer.timeout.connect(self._expire)

    def start(self) -> None:
        """The message showing now goes in ``seconds``."""
        self._text = self._label.text()
        if self._text:
            self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def active(self) -> bool:
        return self._timer.isActive()

    def _expire(self) -> None:
        if self._label.text() == self._text:
            self._label.clear()


def say(label: QLabel, text: str, timeout: MessageTimeout | None) -> None:
    """Show ``text`` on ``label``; with ``timeout``, it goes after a while."""
    label.setText(text)
    if timeout is not None:
        timeout.start()

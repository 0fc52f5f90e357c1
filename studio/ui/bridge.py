"""Moves worker events onto the GUI thread as a Qt signal."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from studio.core.events import JobEvent


class WorkerBridge(QObject):
    """Re-emits every worker event as ``event``; connected slots run on the GUI thread.

    The worker calls ``_relay`` on its own thread; a signal emitted there reaches receivers
    living in the GUI thread through a queued connection, so panels never touch the worker
    thread and the worker never waits for the GUI.
    """

    event = Signal(object)

    def __init__(self, worker, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._unsubscribe = worker.subscribe(self._relay)

    def _relay(self, event: JobEvent) -> None:
        self.event.emit(event)

    def detach(self) -> None:
        """Stop relaying (before the bridge is destroyed)."""
        self._unsubscribe()

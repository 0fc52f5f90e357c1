"""Small test helpers: collecting worker events and waiting for a job to end."""

from __future__ import annotations

import threading
import time

from studio.core.events import JobEvent


class EventLog:
    """Subscribes to a worker and keeps every event; ``wait_end`` waits for a job's last one."""

    def __init__(self, worker) -> None:
        self.events: list[JobEvent] = []
        self._cond = threading.Condition()
        worker.subscribe(self._add)

    def _add(self, event: JobEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def of(self, job_id: str) -> list[JobEvent]:
        with self._cond:
            return [e for e in self.events if e.job_id == job_id]

    def kinds(self, job_id: str) -> list[str]:
        return [e.kind.value for e in self.of(job_id)]

    def wait_for(self, predicate, timeout: float = 60.0) -> JobEvent:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("event did not arrive in time")
                self._cond.wait(remaining)

    def wait_end(self, job_id: str, timeout: float = 60.0) -> JobEvent:
        return self.wait_for(lambda e: e.job_id == job_id and e.is_terminal, timeout)


def show_active(qtbot, window) -> None:
    """Show ``window`` and wait until it is the active window: window shortcuts (Esc, Ctrl+Enter)
    only fire in the active window, and an earlier test's window may still hold that role."""
    from PySide6.QtWidgets import QApplication

    window.show()
    window.raise_()
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5000)

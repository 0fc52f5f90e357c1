"""What every generation panel shares: tracking its own jobs among the worker's events."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QWidget

from studio.core.events import JobEvent


class GenerationPanel(QWidget):
    """A tab that submits jobs of one kind and reacts to their events only."""

    kind = ""
    # A finished job's gallery items, for the gallery tab and notifications.
    items_saved = Signal(list)
    # The user wants this text as the prompt of another tab: (kind, text).
    prompt_for = Signal(str, str)

    def __init__(self, services, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.services = services
        self._jobs: set[str] = set()

    def on_worker_event(self, event: JobEvent) -> None:
        if event.job_id in self._jobs:
            if event.is_terminal:
                self._jobs.discard(event.job_id)
            self.handle_event(event)

    def handle_event(self, event: JobEvent) -> None:  # overridden
        pass

    def track(self, job_id: str) -> None:
        self._jobs.add(job_id)

    def set_prompt(self, text: str) -> None:  # overridden by panels with a prompt box
        pass

    def cancel_current(self) -> None:
        for job_id in list(self._jobs):
            self.services.worker.cancel(job_id)

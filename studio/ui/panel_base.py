"""What every generation panel shares: tracking its own jobs among the worker's events."""

from __future__ import annotations

import dataclasses
import secrets

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMessageBox, QPushButton, QWidget

from studio.core.errors import InvalidRequest
from studio.core.events import EventKind, JobEvent
from studio.core.requests import MAX_SEED, request_from_dict


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
        self._error_detail = ("", "")
        # Errors read as a sentence; the traceback waits behind this button, for a bug report.
        self.details_button = QPushButton("Details…")
        self.details_button.setAccessibleName("error details")
        self.details_button.setToolTip("What went wrong in full, to copy into a bug report")
        self.details_button.clicked.connect(self.show_error_details)
        self.details_button.setVisible(False)

    def on_worker_event(self, event: JobEvent) -> None:
        if event.job_id in self._jobs:
            if event.is_terminal:
                self._jobs.discard(event.job_id)
            if event.kind is EventKind.STARTED:
                self.clear_error()
            self.handle_event(event)

    def handle_event(self, event: JobEvent) -> None:  # overridden
        pass

    def track(self, job_id: str) -> None:
        self._jobs.add(job_id)

    def set_prompt(self, text: str) -> None:  # overridden by panels with a prompt box
        pass

    # -- what the gallery asks of the tab that made an item ------------------------

    def submit_request(self, request, parent: str | None = None) -> str | None:  # overridden
        """Queue ``request`` as if the user had pressed Generate; the job id, or None if refused."""
        raise NotImplementedError

    def apply_request(self, request: dict, parent: str | None = None) -> None:  # overridden
        """Put a saved request's prompt and settings back into the controls ("Reuse settings")."""
        raise NotImplementedError

    def show_status(self, text: str) -> None:  # overridden
        pass

    def build_run_controls(self, what: str):
        """Generate / Cancel, the progress bar, the hint and the status line that queueing tabs share;
        returns the row of buttons. ``what`` names one output ("image", "piece")."""
        from studio.ui.widgets.controls import button
        from studio.ui.widgets.job_progress import JobProgress

        self._queued: list[str] = []  # submitted, not yet ended, in order
        self.generate_button = button(
            "Generate", "generate", "Generate (Ctrl+Enter); press again to queue more", self.generate
        )
        self.generate_button.setDefault(True)
        self.cancel_button = button("Cancel", "cancel", f"Cancel the running {what} and the queue (Esc)", self.cancel)
        self.progress = JobProgress("Step")
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.hint.setAccessibleName("hint")
        self.run_status = QLabel()
        self.run_status.setWordWrap(True)
        self.run_status.setAccessibleName("status")
        row = QHBoxLayout()
        row.addWidget(self.generate_button)
        row.addWidget(self.cancel_button)
        row.addStretch(1)
        return row

    def cancel(self) -> None:
        """Cancel the running job and everything this tab queued."""
        for job in list(getattr(self, "_queued", [])):
            self.services.worker.cancel(job)

    def report_error(self, label, event: JobEvent) -> None:
        """Show an error as its readable message, with the details (traceback) one click away."""
        label.setText(f"Could not generate: {event.error}")
        self._error_detail = (event.error, event.detail)
        self.details_button.setVisible(bool(event.detail))

    def clear_error(self) -> None:
        self._error_detail = ("", "")
        self.details_button.setVisible(False)

    def show_error_details(self) -> QMessageBox:
        message, detail = self._error_detail
        box = QMessageBox(QMessageBox.Icon.Warning, "Could not generate", message, parent=self)
        box.setDetailedText(detail)
        box.open()
        return box

    def model_defaults(self, model: str, suggested: dict | None = None) -> dict:
        """What ``model`` starts with: the user's saved defaults (model manager), else ``suggested``."""
        saved = self.services.settings.get("model_defaults").get(model)
        return dict(saved) if saved else dict(suggested or {})

    def vary_item(self, item) -> str | None:
        """Make ``item`` again with a new seed; the new item records it as its parent."""
        try:
            request = request_from_dict(item.record.request)
        except InvalidRequest as exc:
            self.show_status(f"Cannot make this again: {exc}")
            return None
        if request.kind != self.kind:
            return None
        changes: dict = {"seed": secrets.randbelow(MAX_SEED + 1)}
        if hasattr(request, "count"):
            changes["count"] = 1
        return self.submit_request(dataclasses.replace(request, **changes), parent=item.id)

    def cancel_current(self) -> None:
        for job_id in list(self._jobs):
            self.services.worker.cancel(job_id)

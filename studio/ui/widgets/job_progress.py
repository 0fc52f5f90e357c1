"""A progress bar that says the step and the time left, for any job that reports steps."""

from __future__ import annotations

import time

from PySide6.QtWidgets import QProgressBar, QWidget


class JobProgress(QProgressBar):
    def __init__(self, unit: str = "Step", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._unit = unit
        self._first_step_at = 0.0
        self._first_step = 0
        self.setAccessibleName("progress")
        self.setToolTip("Progress of the running job and the time left")
        self.idle()

    def idle(self, text: str = "") -> None:
        self.setRange(0, 1)
        self.setValue(0)
        self.setFormat(text)
        self._first_step_at = 0.0

    def waiting(self, text: str) -> None:
        """A busy bar: loading a model, or waiting in the queue."""
        self.setRange(0, 0)
        self.setFormat(text)
        self._first_step_at = 0.0

    def step(self, step: int, total: int) -> None:
        total = max(total, 1)
        now = time.monotonic()
        if not self._first_step_at:
            # Time left is measured from the first step, so model loading does not skew it.
            self._first_step_at, self._first_step = now, step
        self.setRange(0, total)
        self.setValue(min(step, total))
        text = f"{self._unit} {step}/{total}"
        done = step - self._first_step
        if done > 0 and step < total:
            left = (now - self._first_step_at) / done * (total - step)
            text += f" · {format_seconds(left)} left"
        self.setFormat(text)


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"

"""Errors a person can act on: what failed, why, and what to try."""

from __future__ import annotations


class StudioError(Exception):
    """An expected failure whose message is shown to the user as it is."""


class InvalidRequest(StudioError, ValueError):
    """A request parameter is out of range; ``field`` names it so a panel can point at it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class ModelError(StudioError):
    """A model folder cannot be used: missing, of the wrong kind, unsafe or broken."""


class NotSupportedYet(StudioError):
    """A kind of job the installed Studio cannot run yet."""


class JobCancelled(Exception):
    """Raised inside a job when the user cancelled it; never shown as an error."""

"""Finding the library's models on a thread of its own, so the window shows before they are found.

Discovery reads folders: the bundled starters, every model folder of the user's (recursively), the
Hugging Face cache (``huggingface_hub``'s scan, ~0.1 s with its import), the GGUF files other apps
keep, and each checkpoint's safetensors header. On a library of a few hundred models that is
seconds, and at start-up even a small one was 0.15 s of the window's 1.1 s (docs/PERFORMANCE.md,
"Start-up"). So the window asks for it once shown, the tabs say "Looking for models…" meanwhile,
and the models arrive as a signal on the GUI thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from studio.core.models import ModelSpec

log = logging.getLogger(__name__)


class ModelDiscovery(QObject):
    """Runs a catalog's ``discover`` on a daemon thread; ``found`` carries its models on the GUI thread.

    Only the newest search reports: a search started while another runs (or ``cancel``, when the
    window discovered synchronously meanwhile) makes the older one's answer stale, and it is dropped.
    ``start``, ``cancel`` and ``found`` all belong to the GUI thread, so the generation needs no lock.
    """

    found = Signal(object)  # list[ModelSpec]
    _answered = Signal(object, int)  # from the search's thread: its models and its generation

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._generation = 0
        self.running = False
        # Emitted on the search's thread to this object of the GUI thread: Qt queues it there.
        self._answered.connect(self._deliver)

    def start(self, discover: Callable[[], list[ModelSpec]]) -> None:
        """Search with ``discover`` (a catalog's, made on the GUI thread from the settings of now)."""
        self._generation += 1
        self.running = True
        thread = threading.Thread(
            target=self._run, args=(discover, self._generation), name="studio-models", daemon=True
        )
        thread.start()

    def cancel(self) -> None:
        """Drop the answer of a search still running."""
        self._generation += 1
        self.running = False

    def _run(self, discover: Callable[[], list[ModelSpec]], generation: int) -> None:
        try:
            specs = discover()
        except Exception:  # a folder that cannot be read must not leave the tabs looking forever
            log.exception("finding the models failed")
            specs = []
        try:
            self._answered.emit(specs, generation)
        except RuntimeError:  # the window closed while this searched: no one to tell
            pass

    def _deliver(self, specs: list[ModelSpec], generation: int) -> None:
        if generation != self._generation:
            return  # a newer search, or a synchronous one, has answered for it
        self.running = False
        self.found.emit(specs)

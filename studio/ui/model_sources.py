"""The model manager's "Other apps" box: which other apps' model stores (LM Studio, GPT4All, Jan,
Ollama) Studio searches for GGUF models — read in place, never copied. Each checkbox is the
``model_sources_off`` setting."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QCheckBox, QGroupBox, QVBoxLayout

from studio.core.settings import APP_MODEL_SOURCES, Settings


class ModelSourcesBox(QGroupBox):
    def __init__(self, settings: Settings, on_change: Callable[[], None]) -> None:
        super().__init__("Models from other apps")
        self.setToolTip("GGUF models other apps keep, used where they are (never copied)")
        self._settings = settings
        self._on_change = on_change
        layout = QVBoxLayout(self)
        off = set(settings.get("model_sources_off"))
        self.boxes: dict[str, QCheckBox] = {}
        for name, label in APP_MODEL_SOURCES.items():
            box = QCheckBox(label)
            box.setAccessibleName(f"search {label}")
            box.setToolTip(f"List the GGUF models {label} keeps")
            box.setChecked(name not in off)
            box.toggled.connect(self._changed)
            layout.addWidget(box)
            self.boxes[name] = box

    def _changed(self) -> None:
        off = [name for name, box in self.boxes.items() if not box.isChecked()]
        self._settings.set("model_sources_off", off)
        if self._settings.path is not None:
            self._settings.save()
        self._on_change()

"""A combo box of the models of one kind, with the reason shown for those that cannot run."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QWidget

from studio.core.models import ModelSpec, preferred_order

HINT_ROLE = 257  # Qt.UserRole + 1


class ModelPicker(QComboBox):
    """Lists runnable models of one kind; the item data is the model's folder path."""

    model_changed = Signal(str)

    def __init__(self, kind: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = kind
        self.setAccessibleName(f"{kind} model")
        self.setToolTip(f"The {kind} model to use. Add models with 'studio models add FOLDER'.")
        self.setMinimumContentsLength(24)
        self.searching = False
        self.currentIndexChanged.connect(self._emit_changed)

    def set_searching(self) -> None:
        """Models are being found (the window discovers them on a thread once shown): none to pick yet."""
        self.blockSignals(True)
        self.clear()
        self.addItem("Looking for models…", "")
        self.setEnabled(False)
        self.searching = True
        self.blockSignals(False)
        self._emit_changed()

    def set_models(self, specs: list[ModelSpec], preferred: str = "") -> None:
        """Fill with ``specs`` of this kind; select ``preferred`` (a path or id) when present."""
        self.blockSignals(True)
        self.clear()
        self.searching = False
        # The first model is the default when nothing was used before: one the user added, when
        # there is one, before a starter (the same order as 'studio gen' without --model).
        ordered = preferred_order(specs)
        for spec in ordered:
            if spec.kind != self.kind or not spec.runnable:
                continue
            self.addItem(spec.name, str(spec.path))
            self.setItemData(self.count() - 1, f"{spec.family} · {spec.path}", 3)  # Qt.ToolTipRole
            self.setItemData(self.count() - 1, str(spec.details.get("hint", "")), HINT_ROLE)
        if self.count() == 0:
            self.addItem(f"No {self.kind} models found", "")
            self.setEnabled(False)
        else:
            self.setEnabled(True)
            for index in range(self.count()):
                if preferred and preferred in (self.itemData(index), self.itemText(index)):
                    self.setCurrentIndex(index)
                    break
        self.blockSignals(False)
        self._emit_changed()

    def current_model(self) -> str:
        return str(self.currentData() or "")

    def current_hint(self) -> str:
        """What the model's card says the tabs should tell about it (``studio_hint``), or ""."""
        return str(self.currentData(HINT_ROLE) or "")

    def _emit_changed(self, *_args: object) -> None:
        self.model_changed.emit(self.current_model())

"""The Adapters section of the Image tab: LoRAs (each with a weight from −2 to 2, a slider and a box,
enabled or not without removing it) and textual-inversion embeddings, added from a picker that lists
only those of the current model's family; trigger words shown and insertable into the prompt.

Plain data in, plain data out: the library's adapter ``ModelSpec``s come from the catalog the window
already reads; ``loras()`` / ``embeddings()`` are the request's fields.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from studio.core.models import ModelSpec
from studio.core.requests import ADAPTER_WEIGHT_RANGE

ADAPTER_KINDS = ("lora", "embedding")


class _FocusedWheelSlider(QSlider):
    """A slider that takes the mouse wheel only once clicked: scrolling the form must not change weights."""

    def __init__(self) -> None:
        super().__init__(Qt.Orientation.Horizontal)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    def wheelEvent(self, event: QWheelEvent) -> None:
        if self.hasFocus():
            super().wheelEvent(event)
        else:
            event.ignore()


class AdapterRow(QWidget):
    """One adapter in use: enabled box with its name, weight (LoRAs), trigger words, remove."""

    changed = Signal()
    insert_requested = Signal(str)
    remove_requested = Signal(object)

    def __init__(self, spec: ModelSpec, weight: float = 1.0, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.spec = spec
        self.enabled = QCheckBox(spec.name)
        self.enabled.setChecked(True)
        self.enabled.setToolTip(f"{spec.kind} for {spec.details.get('base', spec.family)} · {spec.path}")
        self.enabled.setAccessibleName(f"use {spec.kind} {spec.name}")
        self.enabled.toggled.connect(self.changed)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.enabled, 1)
        low, high = ADAPTER_WEIGHT_RANGE
        self.slider = _FocusedWheelSlider()
        self.slider.setRange(round(low * 100), round(high * 100))
        self.slider.setAccessibleName(f"weight of {spec.name}")
        self.box = QDoubleSpinBox()
        self.box.setRange(low, high)
        self.box.setSingleStep(0.05)
        self.box.setDecimals(2)
        self.box.setAccessibleName(f"weight of {spec.name} (number)")
        if spec.kind == "lora":
            self.slider.valueChanged.connect(lambda value: self.box.setValue(value / 100))
            self.box.valueChanged.connect(lambda value: self.slider.setValue(round(value * 100)))
            self.box.valueChanged.connect(lambda _value: self.changed.emit())
            self.set_weight(weight)
            top.addWidget(self.slider, 2)
            top.addWidget(self.box)
        else:
            top.addWidget(QLabel("embedding"))  # used where its token is in the prompt (row below)
        remove = QPushButton("Remove")
        remove.setAccessibleName(f"remove {spec.name}")
        remove.setToolTip(f"Stop using {spec.name}")
        remove.clicked.connect(lambda: self.remove_requested.emit(self))
        top.addWidget(remove)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        words = self.insertable_words()
        if words:
            row = QHBoxLayout()
            row.setContentsMargins(16, 0, 0, 0)
            label = QLabel(("Token: " if spec.kind == "embedding" else "Trigger words: ") + ", ".join(words))
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            insert = QPushButton("Insert")
            insert.setAccessibleName(f"insert the words of {spec.name}")
            insert.setToolTip("Add these words to the prompt")
            insert.clicked.connect(lambda: self.insert_requested.emit(", ".join(words)))
            row.addWidget(label, 1)
            row.addWidget(insert)
            layout.addLayout(row)

    def insertable_words(self) -> list[str]:
        if self.spec.kind == "embedding":
            return [str(self.spec.details.get("token") or self.spec.name)]
        return [str(word) for word in self.spec.details.get("trigger_words") or []][:6]

    def set_weight(self, weight: float) -> None:
        self.box.setValue(weight)
        self.slider.setValue(round(weight * 100))

    def weight(self) -> float:
        return round(self.box.value(), 2)

    def is_enabled(self) -> bool:
        return self.enabled.isChecked()


class AdapterList(QWidget):
    """The adapters of the next image: a picker filtered to the model's family, and the rows in use."""

    changed = Signal()
    insert_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._library: list[ModelSpec] = []
        self._family = ""
        self.rows: list[AdapterRow] = []
        self.picker = QComboBox()
        self.picker.setAccessibleName("LoRA or embedding to add")
        self.picker.setToolTip("LoRAs and embeddings in your model folders that fit the chosen model")
        self.add_button = QPushButton("Add")
        self.add_button.setAccessibleName("add adapter")
        self.add_button.setToolTip("Use the chosen LoRA or embedding in the next image")
        self.add_button.clicked.connect(self._add_picked)
        head = QHBoxLayout()
        head.setContentsMargins(0, 0, 0, 0)
        head.addWidget(self.picker, 1)
        head.addWidget(self.add_button)
        self._rows_layout = QVBoxLayout()
        self._rows_layout.setContentsMargins(0, 0, 0, 0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(head)
        layout.addLayout(self._rows_layout)
        self._fill_picker()

    # -- the library and the model ---------------------------------------------------------

    def set_library(self, specs: list[ModelSpec]) -> None:
        self._library = [spec for spec in specs if spec.kind in ADAPTER_KINDS and spec.runnable]
        self._fill_picker()

    def set_model_family(self, family: str) -> None:
        """Offer only what fits models of ``family`` (``sd``, ``sdxl``…); "" offers every image adapter."""
        self._family = family
        self._fill_picker()

    def fitting(self) -> list[ModelSpec]:
        image = [spec for spec in self._library if spec.details.get("target") != "text"]
        if not self._family:
            return image
        return [spec for spec in image if not spec.family or spec.family == self._family]

    def _fill_picker(self) -> None:
        self.picker.clear()
        used = {row.spec.path for row in self.rows}
        for spec in self.fitting():
            if spec.path in used:
                continue
            label = (
                f"{spec.name} ({'embedding' if spec.kind == 'embedding' else 'LoRA'}, {spec.details.get('base', '')})"
            )
            self.picker.addItem(label, str(spec.path))
        empty = self.picker.count() == 0
        if empty:
            self.picker.addItem("No LoRAs or embeddings for this model in your folders", "")
        self.picker.setEnabled(not empty)
        self.add_button.setEnabled(not empty)

    def _add_picked(self) -> None:
        path = str(self.picker.currentData() or "")
        spec = next((s for s in self._library if str(s.path) == path), None)
        if spec is not None:
            self.add(spec)

    # -- rows ---------------------------------------------------------------------------

    def add(self, spec: ModelSpec, weight: float = 1.0, enabled: bool = True) -> AdapterRow:
        row = AdapterRow(spec, weight)
        row.enabled.setChecked(enabled)
        row.changed.connect(self.changed)
        row.insert_requested.connect(self.insert_requested)
        row.remove_requested.connect(self.remove)
        self.rows.append(row)
        self._rows_layout.addWidget(row)
        self._fill_picker()
        self.changed.emit()
        return row

    def remove(self, row: AdapterRow) -> None:
        if row in self.rows:
            self.rows.remove(row)
            row.setParent(None)
            row.deleteLater()
            self._fill_picker()
            self.changed.emit()

    def clear(self) -> None:
        for row in list(self.rows):
            self.remove(row)

    def loras(self) -> tuple[tuple[str, float], ...]:
        return tuple((row.spec.name, row.weight()) for row in self.rows if row.spec.kind == "lora" and row.is_enabled())

    def embeddings(self) -> tuple[str, ...]:
        return tuple(row.spec.name for row in self.rows if row.spec.kind == "embedding" and row.is_enabled())

    def set_from_request(self, loras: tuple[tuple[str, float], ...], embeddings: tuple[str, ...]) -> list[str]:
        """Show a reused request's adapters; the names not in the library come back (for a note)."""
        self.clear()
        missing: list[str] = []
        for ref, weight in loras:
            spec = self.find_adapter(ref)
            if spec is None:
                missing.append(f"LoRA {_short(ref)!r}")
            else:
                self.add(spec, weight)
        for ref in embeddings:
            spec = self.find_adapter(ref)
            if spec is None:
                missing.append(f"embedding {_short(ref)!r}")
            else:
                self.add(spec)
        return missing

    def find_adapter(self, ref: str) -> ModelSpec | None:
        """An adapter of the library by name, id, file name or path."""
        for spec in self._library:
            if ref in (spec.name, spec.id, spec.path.name, str(spec.path)):
                return spec
        return None


def _short(ref: str) -> str:
    name = ref.replace("\\", "/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if name.endswith((".safetensors", ".pt", ".ckpt", ".bin")) else name


def missing_prompt_loras(prompt: str, adapters: AdapterList) -> list[str]:
    """The ``<lora:NAME>`` tags of ``prompt`` whose LoRA is not in the library."""
    from studio.core.prompt_syntax import lora_tags

    try:
        tags = lora_tags(prompt)
    except ValueError:
        return []
    return [f"LoRA {tag.name!r}" for tag in tags if adapters.find_adapter(tag.name) is None]


class TextLoraPicker(QWidget):
    """The Text tab's LoRA: a peft adapter folder from the library (or none) and its weight."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._library: list[ModelSpec] = []
        self.combo = QComboBox()
        self.combo.setAccessibleName("text LoRA")
        self.combo.setToolTip("A LoRA adapter (a peft folder in your model folders) applied on top of the model")
        low, high = ADAPTER_WEIGHT_RANGE
        self.weight = QDoubleSpinBox()
        self.weight.setRange(low, high)
        self.weight.setSingleStep(0.05)
        self.weight.setValue(1.0)
        self.weight.setAccessibleName("text LoRA weight")
        self.weight.setToolTip("How strongly the LoRA applies (1 = as trained, 0 = not at all)")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.combo, 1)
        layout.addWidget(self.weight)
        self.set_library([])

    def set_library(self, specs: list[ModelSpec]) -> None:
        chosen = self.current()
        self._library = [s for s in specs if s.kind == "lora" and s.runnable and s.details.get("layout") == "peft"]
        self.combo.clear()
        self.combo.addItem("None", "")
        for spec in self._library:
            self.combo.addItem(f"{spec.name} ({spec.details.get('base', '')})", spec.name)
        self.combo.setCurrentIndex(max(self.combo.findData(chosen), 0))
        self.weight.setEnabled(bool(self._library))
        self.combo.setEnabled(bool(self._library))

    def current(self) -> str:
        return str(self.combo.currentData() or "")

    def set_from_request(self, lora: str, weight: float) -> list[str]:
        """Show a reused request's LoRA; its name comes back when it is not in the library."""
        self.weight.setValue(weight)
        if not lora:
            self.combo.setCurrentIndex(0)
            return []
        spec = next((s for s in self._library if lora in (s.name, s.id, str(s.path))), None)
        if spec is None:
            self.combo.setCurrentIndex(0)
            return [f"LoRA {_short(lora)!r}"]
        self.combo.setCurrentIndex(max(self.combo.findData(spec.name), 0))
        return []


def models_then_adapters(specs: list[ModelSpec]) -> list[ModelSpec]:
    """The model manager's order: models first, then the LoRAs, then the embeddings (each stable)."""
    rank = {"lora": 1, "embedding": 2}
    return sorted(specs, key=lambda spec: rank.get(spec.kind, 0))


def adapter_summary(spec: ModelSpec) -> str:
    """What the model manager says of an adapter: base, layout, rank, token, trigger words, Civitai."""
    if spec.kind not in ADAPTER_KINDS:
        return ""
    details = spec.details
    what = "Embedding" if spec.kind == "embedding" else details.get("network") or "LoRA"
    parts = [f"{what} for {details.get('base') or 'an unknown base'}"]
    if details.get("layout"):
        parts.append(f"{details['layout']} layout")
    if details.get("rank"):
        parts.append(f"rank {details['rank']}")
    if details.get("token"):
        parts.append(f"token {details['token']}")
    lines = [", ".join(parts) + "."]
    if details.get("trigger_words"):
        lines.append("Trigger words: " + ", ".join(str(w) for w in details["trigger_words"][:8]))
    civitai = details.get("civitai") or {}
    if civitai.get("model"):
        lines.append(f"Civitai: {civitai['model']} {civitai.get('version', '')}".rstrip())
    return "\n".join(lines)


class AdapterPreview(QLabel):
    """An adapter's preview image (Civitai's ``NAME.preview.png`` beside the file), hidden when none."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("adapter preview")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setVisible(False)

    def show_spec(self, spec: ModelSpec | None) -> None:
        from PySide6.QtGui import QPixmap

        preview = str(spec.details.get("preview", "")) if spec is not None else ""
        pixmap = QPixmap(preview) if preview else QPixmap()
        if pixmap.isNull():
            self.clear()
            self.setVisible(False)
            return
        self.setPixmap(
            pixmap.scaled(160, 160, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
        )
        self.setToolTip(preview)
        self.setVisible(True)

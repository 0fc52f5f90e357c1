"""The samples a training run makes from its fixed prompts, newest first, beside the loss curve:
an image as a thumbnail, a text as an excerpt, a tune with a player.

A sample comes as a ``preview`` event's dict (``studio.core.training.TrainingSample.to_event``):
``step``, ``prompt``, ``medium`` and ``data`` — an RGB uint8 array, a ``str``, or ``(audio,
sample_rate)``. A tune is written as a small WAV (stdlib ``wave``: a few seconds of 16-bit PCM)
so the one player below the strip can play it.
"""

from __future__ import annotations

import shutil
import wave
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QFrame, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget

from studio.ui.widgets.audio_player import AudioPlayer
from studio.ui.widgets.image_view import qimage_from_array, thumbnail

MAX_SAMPLES = 24  # cards kept; older ones go (the run's card keeps nothing of them anyway)
THUMB = 168
EXCERPT = 420  # characters of a text sample shown


def write_wav(path: Path, audio: Any, sample_rate: int) -> Path:
    """``audio`` (samples, or samples × channels, floats in −1…1) as 16-bit PCM WAV."""
    import numpy as np  # here, not at import: the window starts without numpy (docs/PERFORMANCE.md)

    samples = np.asarray(audio, dtype=np.float32)
    if samples.ndim == 1:
        samples = samples[:, None]
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(int(pcm.shape[1]))
        out.setsampwidth(2)
        out.setframerate(int(sample_rate))
        out.writeframes(pcm.tobytes())
    return path


class SampleCard(QFrame):
    """One sample: its step and prompt, then the picture, the text or a Play button."""

    def __init__(self, sample: dict[str, Any], audio_path: Path | None, strip: SampleStrip) -> None:
        super().__init__()
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.sample = sample
        self.audio_path = audio_path
        step = int(sample.get("step", 0))
        prompt = str(sample.get("prompt", "")).strip()
        when = "Before training" if step == 0 else f"Step {step}"
        head = QLabel(f"<b>{when}</b>" + (f" · {_escape(prompt[:80])}" if prompt else ""))
        head.setWordWrap(True)
        head.setAccessibleName("sample step and prompt")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addWidget(head)
        data = sample.get("data")
        self.kind = "text"
        if getattr(data, "ndim", 0) == 3:  # an image: an array (a text is a str, a tune a tuple)
            self.kind = "image"
            picture = QLabel()
            picture.setAccessibleName("sample image")
            picture.setToolTip(f"Made from “{prompt}” at step {step}")
            import numpy as np  # loaded already: the sample is one of its arrays

            pixels = np.ascontiguousarray(np.asarray(data)[..., :3].astype(np.uint8))
            picture.setPixmap(thumbnail(QPixmap.fromImage(qimage_from_array(pixels)), THUMB))
            layout.addWidget(picture)
        elif audio_path is not None:
            self.kind = "music"
            play = QPushButton("Play this tune")
            play.setAccessibleName("play sample")
            play.setToolTip("Load this sample into the player below")
            play.clicked.connect(lambda _checked=False: strip.play(audio_path))
            layout.addWidget(play)
        else:
            text = str(data if data is not None else "")
            excerpt = text[:EXCERPT] + ("…" if len(text) > EXCERPT else "")
            body = QLabel(excerpt or "(empty)")
            body.setWordWrap(True)
            body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            body.setAccessibleName("sample text")
            body.setToolTip(f"What the model writes after “{prompt}” at step {step}")
            layout.addWidget(body)


class SampleStrip(QWidget):
    """Samples of the running (or last) run, newest first; a tune plays in the player below."""

    def __init__(self, folder: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._folder = folder  # where tunes are written for the player; emptied with ``clear``
        self.cards: list[SampleCard] = []
        self.title = QLabel("Samples")
        self.title.setAccessibleName("samples title")
        self.empty = QLabel("Samples from your prompts appear here while it trains.")
        self.empty.setWordWrap(True)
        self.empty.setAccessibleName("no samples yet")
        self._cards = QVBoxLayout()
        self._cards.setContentsMargins(0, 0, 0, 0)
        self._cards.addWidget(self.empty)
        self._cards.addStretch(1)
        inner = QWidget()
        inner.setLayout(self._cards)
        self.area = QScrollArea()
        self.area.setWidget(inner)
        self.area.setWidgetResizable(True)
        self.area.setFrameShape(QFrame.Shape.NoFrame)
        self.area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.area.setAccessibleName("samples")
        self.player = AudioPlayer()
        self.player.setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.area, 1)
        layout.addWidget(self.player)
        self.setMinimumWidth(THUMB + 48)

    def add(self, sample: dict[str, Any]) -> SampleCard:
        audio_path = None
        data = sample.get("data")
        if isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data, str):
            audio, rate = data
            self._folder.mkdir(parents=True, exist_ok=True)
            name = f"sample-{int(sample.get('step', 0)):06d}-{len(self.cards):03d}.wav"
            try:
                audio_path = write_wav(self._folder / name, audio, int(rate))
            except (OSError, ValueError, TypeError, wave.Error):
                audio_path = None
        card = SampleCard(sample, audio_path, self)
        self.empty.setVisible(False)
        self._cards.insertWidget(0, card)
        self.cards.insert(0, card)
        for old in self.cards[MAX_SAMPLES:]:
            old.setParent(None)
            old.deleteLater()
        del self.cards[MAX_SAMPLES:]
        if audio_path is not None:
            self.player.setVisible(True)
            if not self.player.is_playing():
                self.player.load(audio_path)
        _set_text(self.title, f"Samples · {len(self.cards)}")
        return card

    def play(self, path: Path) -> None:
        self.player.setVisible(True)
        self.player.load(path)
        self.player.toggle()

    def clear(self) -> None:
        for card in self.cards:
            card.setParent(None)
            card.deleteLater()
        self.cards.clear()
        self.empty.setVisible(True)
        _set_text(self.title, "Samples")
        self.player.close_player()  # the files it plays are about to go; it can load again later
        self.player.setVisible(False)
        shutil.rmtree(self._folder, ignore_errors=True)

    def shutdown(self) -> None:
        self.player.close_player()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _set_text(label: QLabel, text: str) -> None:
    if label.text() != text:
        label.setText(text)

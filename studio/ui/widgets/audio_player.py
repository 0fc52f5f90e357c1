"""Play a sound file: play/pause, seek, loop and position, with QtMultimedia when it can run here.

QtMultimedia ships in PySide6-Addons and on Linux needs the system's libpulse. Without it, or
without an audio output device, the player says why playback is unavailable and the rest of
the app works as before.

Teardown matters: stopping a QMediaPlayer and letting Python destroy it at once crashes most of
the time. ``close_player`` waits for the stopped state, clears the source, then hands both
objects to ``deleteLater``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QEventLoop, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget

from studio.ui.quiet import quiet_ffmpeg

log = logging.getLogger(__name__)

try:
    from PySide6.QtMultimedia import QAudioOutput, QMediaDevices, QMediaPlayer

    MULTIMEDIA_ERROR = ""
except ImportError as exc:  # PySide6-Addons missing, or libpulse0 missing on Linux
    QAudioOutput = QMediaDevices = QMediaPlayer = None  # type: ignore[assignment,misc]
    MULTIMEDIA_ERROR = f"Qt Multimedia cannot load ({exc}); on Linux install libpulse0"

_STOP_WAIT_MS = 2000


def format_clock(ms: int) -> str:
    seconds = max(0, ms) // 1000
    return f"{seconds // 60}:{seconds % 60:02d}"


class AudioPlayer(QWidget):
    """One file at a time. ``position_changed`` carries the play position as a 0..1 fraction."""

    position_changed = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._path: Path | None = None
        self._player: QMediaPlayer | None = None
        self._output: QAudioOutput | None = None
        self._duration_ms = 0
        self.play_button = QPushButton("Play")
        self.play_button.setAccessibleName("play or pause")
        self.play_button.setToolTip("Play or pause (Space)")
        self.play_button.clicked.connect(self.toggle)
        self.seek = QSlider(Qt.Orientation.Horizontal)
        self.seek.setAccessibleName("position")
        self.seek.setToolTip("Drag to move through the clip")
        self.seek.setRange(0, 0)
        self.seek.sliderMoved.connect(self._seek_to)
        self.clock = QLabel("0:00 / 0:00")
        self.clock.setAccessibleName("play position")
        self.clock.setToolTip("Position and length")
        self.loop = QCheckBox("Loop")
        self.loop.setAccessibleName("loop")
        self.loop.setToolTip("Start again at the end")
        self.loop.toggled.connect(self._apply_loop)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setAccessibleName("playback status")
        row = QHBoxLayout()
        row.addWidget(self.play_button)
        row.addWidget(self.seek, 1)
        row.addWidget(self.clock)
        row.addWidget(self.loop)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.status)
        self.space = QShortcut(QKeySequence(Qt.Key.Key_Space), self)
        self.space.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.space.activated.connect(self.toggle)
        # Without Qt Multimedia there is no player at all; without an output device the player
        # still loads clips (length, seeking) but cannot play them.
        self.unavailable = (
            f"Playback is unavailable: {MULTIMEDIA_ERROR}. Files are still saved." if MULTIMEDIA_ERROR else ""
        )
        self.no_output = (
            ""
            if self.unavailable or QMediaDevices.audioOutputs()
            else ("Playback is unavailable: no audio output device was found. Files are still saved.")
        )
        self.status.setText(self.unavailable or self.no_output)
        self._update_controls()

    # -- loading and playing -----------------------------------------------------

    def load(self, path: Path) -> None:
        self._path = Path(path)
        self._duration_ms = 0
        self.clock.setText("0:00 / 0:00")
        self.seek.setValue(0)
        if self.unavailable:
            self._update_controls()
            return
        if self._player is None:
            self._output = QAudioOutput(self)
            player = self._player = QMediaPlayer(self)
            player.setAudioOutput(self._output)
            player.durationChanged.connect(self._duration_changed)
            player.positionChanged.connect(self._position_changed)
            player.playbackStateChanged.connect(lambda _state: self._update_controls())
            player.errorOccurred.connect(self._error)
            self._apply_loop(self.loop.isChecked())
            quiet_ffmpeg()  # Qt's FFmpeg backend is loaded now
        self._player.stop()
        self._player.setSource(QUrl.fromLocalFile(str(self._path)))
        self.status.setText(self.no_output)
        self._update_controls()

    @property
    def path(self) -> Path | None:
        return self._path

    def is_playing(self) -> bool:
        return self._player is not None and self._player.playbackState() == QMediaPlayer.PlaybackState.PlayingState

    @property
    def duration_ms(self) -> int:
        return self._duration_ms

    def toggle(self) -> None:
        if self._player is None or self._path is None or self.no_output:
            return
        if self.is_playing():
            self._player.pause()
        else:
            self._player.play()

    def close_player(self) -> None:
        """Stop and free the media player safely; the widget can load again afterwards."""
        player, output = self._player, self._output
        self._player = self._output = None
        if player is None:
            return
        for signal in (player.durationChanged, player.positionChanged, player.playbackStateChanged):
            try:
                signal.disconnect()
            except (RuntimeError, TypeError):
                pass
        if player.playbackState() != QMediaPlayer.PlaybackState.StoppedState:
            loop = QEventLoop()

            def quit_when_stopped(state: QMediaPlayer.PlaybackState) -> None:
                if state == QMediaPlayer.PlaybackState.StoppedState:
                    loop.quit()

            player.playbackStateChanged.connect(quit_when_stopped)
            QTimer.singleShot(_STOP_WAIT_MS, loop.quit)
            player.stop()
            if player.playbackState() != QMediaPlayer.PlaybackState.StoppedState:
                loop.exec()
        player.setSource(QUrl())
        player.deleteLater()
        if output is not None:
            output.deleteLater()
        self._update_controls()

    # -- player signals ------------------------------------------------------------

    def _duration_changed(self, ms: int) -> None:
        self._duration_ms = int(ms)
        self.seek.setRange(0, max(0, int(ms)))
        self._position_changed(self._player.position() if self._player else 0)

    def _position_changed(self, ms: int) -> None:
        if not self.seek.isSliderDown():
            self.seek.setValue(int(ms))
        self.clock.setText(f"{format_clock(ms)} / {format_clock(self._duration_ms)}")
        if self._duration_ms:
            self.position_changed.emit(min(1.0, ms / self._duration_ms))

    def seek_fraction(self, fraction: float) -> None:
        if self._player is not None and self._duration_ms:
            self._player.setPosition(int(fraction * self._duration_ms))

    def _seek_to(self, ms: int) -> None:
        if self._player is not None:
            self._player.setPosition(ms)

    def _apply_loop(self, on: bool) -> None:
        if self._player is not None:
            self._player.setLoops(QMediaPlayer.Loops.Infinite if on else 1)

    def _error(self, _error, message: str) -> None:
        log.warning("playback of %s failed: %s", self._path, message)
        self.status.setText(f"Cannot play this file: {message}")

    def _update_controls(self) -> None:
        ready = self._player is not None and self._path is not None
        self.play_button.setEnabled(ready and not self.no_output)
        self.seek.setEnabled(ready)
        self.play_button.setText("Pause" if self.is_playing() else "Play")

"""Keeping the terminal quiet: Qt Multimedia's backends (PipeWire, PulseAudio, VA-API), the platform
plugin and FFmpeg's format dump for every clip loaded fill it at each launch, and none of it is
for the user. ``--debug`` keeps all of it."""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

QUIET_QT_LOGGING_RULES = "qt.multimedia*=false;qt.qpa.*=false"
QUIET_ENVIRONMENT = {"QT_LOGGING_RULES": QUIET_QT_LOGGING_RULES, "LIBVA_MESSAGING_LEVEL": "0"}
_AV_LOG_ERROR = 16

_state = {"quiet": False, "ffmpeg_done": False}


def quiet_qt_logging(debug: bool, environ: MutableMapping[str, str] = os.environ) -> None:
    """Unless ``debug``, silence Qt's multimedia and platform categories and libva; must run before
    the QApplication exists (Qt reads the rules then). A value the user set is left as it is."""
    _state["quiet"] = not debug
    if debug:
        return
    for name, value in QUIET_ENVIRONMENT.items():
        environ.setdefault(name, value)


def quiet_ffmpeg() -> bool:
    """Once Qt's FFmpeg backend is loaded (after the first ``QMediaPlayer``), lower FFmpeg's own log
    level to errors, which ends its "Input #0 …" dump per clip. Only the libavutil Qt already loaded
    is touched (``RTLD_NOLOAD``); True when it was lowered."""
    if not _state["quiet"] or _state["ffmpeg_done"] or not sys.platform.startswith("linux"):
        return False
    _state["ffmpeg_done"] = True
    import PySide6

    for candidate in sorted((Path(PySide6.__file__).parent / "Qt" / "lib").glob("libavutil.so.*")):
        try:
            library = ctypes.CDLL(str(candidate), mode=os.RTLD_NOLOAD)
        except OSError:  # not loaded by Qt (another backend): nothing to quiet
            continue
        library.av_log_set_level(_AV_LOG_ERROR)
        return True
    return False

"""Thumbnails for the gallery: made off the GUI thread, cached on disk and in memory.

Images are shrunk with Pillow; music becomes a waveform picture drawn with Pillow from the
samples; text needs none (the grid draws its first lines). A thumbnail is a small PNG named
after the item id in the cache folder, so it is made once per item, ever.
"""

from __future__ import annotations

import collections
import logging
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage

from studio.core.files import atomic_write

log = logging.getLogger(__name__)

THUMB_SIDE = 256
_MEMORY_ITEMS = 3000


class _Signals(QObject):
    ready = Signal(str, QImage)


def make_thumbnail(source: Path, kind: str, target: Path, side: int = THUMB_SIDE) -> bool:
    """Write ``target`` for ``source``; False when there is nothing to show (text, unreadable)."""
    from PIL import Image, ImageDraw

    if kind == "image":
        with Image.open(source) as image:
            image.draft("RGB", (side * 2, side * 2))  # JPEG: decode at a smaller scale directly
            picture = image.convert("RGB")
            picture.thumbnail((side, side), Image.Resampling.LANCZOS)
    elif kind == "music":
        from studio.ui.widgets.waveform import waveform_envelope

        lows, highs = waveform_envelope(source, buckets=side)
        picture = Image.new("RGB", (side, side // 2), (28, 30, 36))
        draw = ImageDraw.Draw(picture)
        middle = side // 4
        for x, (low, high) in enumerate(zip(lows, highs, strict=True)):
            draw.line([(x, middle - high * middle), (x, middle - low * middle)], fill=(110, 170, 255))
    else:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, lambda temp: picture.save(temp, format="PNG"), prefix=".thumbnail-")
    return True


class _Job(QRunnable):
    def __init__(self, item_id: str, source: Path, kind: str, target: Path, signals: _Signals) -> None:
        super().__init__()
        self.item_id, self.source, self.kind, self.target, self.signals = item_id, source, kind, target, signals

    def run(self) -> None:
        try:
            if self.target.is_file() or make_thumbnail(self.source, self.kind, self.target):
                image = QImage(str(self.target))
                if not image.isNull():
                    self.signals.ready.emit(self.item_id, image)
        except Exception:  # a broken file gets no thumbnail, never a crash
            log.info("no thumbnail for %s", self.source, exc_info=True)


class ThumbnailCache(QObject):
    """``get`` answers from memory at once; otherwise it starts a background job and ``ready`` follows."""

    ready = Signal(str)  # item id

    def __init__(self, folder: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.folder = Path(folder)
        self._memory: collections.OrderedDict[str, QImage] = collections.OrderedDict()
        self._pending: set[str] = set()
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)
        self._signals = _Signals()
        self._signals.ready.connect(self._arrived)

    def get(self, item) -> QImage | None:
        image = self._memory.get(item.id)
        if image is not None:
            self._memory.move_to_end(item.id)
            return image
        if item.kind != "text" and item.id not in self._pending:
            self._pending.add(item.id)
            target = self.folder / f"{item.id}.png"
            self._pool.start(_Job(item.id, item.path, item.kind, target, self._signals))
        return None

    def wait_idle(self, ms: int = 30000) -> bool:
        return self._pool.waitForDone(ms)

    def _arrived(self, item_id: str, image: QImage) -> None:
        self._pending.discard(item_id)
        self._memory[item_id] = image
        while len(self._memory) > _MEMORY_ITEMS:
            self._memory.popitem(last=False)
        self.ready.emit(item_id)

    def shutdown(self) -> None:
        self._pool.clear()
        self._pool.waitForDone(5000)

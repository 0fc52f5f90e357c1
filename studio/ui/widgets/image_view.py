"""Showing one picture: fit to the view or at 1:1, and a drop target for a starting image."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage, QPixmap, QResizeEvent
from PySide6.QtWidgets import QLabel, QScrollArea, QSizePolicy, QWidget

from studio.core.media_types import INPUT_IMAGE_SUFFIXES


def qimage_from_array(pixels) -> QImage:
    """An (h, w, 3) uint8 array as a QImage that owns its memory."""
    height, width = int(pixels.shape[0]), int(pixels.shape[1])
    data = pixels.tobytes()
    return QImage(data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


def dropped_image_path(mime) -> Path | None:
    """The first local image file in a drag, if any."""
    if mime is None or not mime.hasUrls():
        return None
    for url in mime.urls():
        if url.isLocalFile():
            path = Path(url.toLocalFile())
            if path.suffix.lower() in INPUT_IMAGE_SUFFIXES and path.is_file():
                return path
    return None


def scaled(pixmap: QPixmap, size: QSize) -> QPixmap:
    return pixmap.scaled(size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)


def thumbnail(pixmap: QPixmap, side: int) -> QPixmap:
    return scaled(pixmap, QSize(side, side))


class ImageView(QScrollArea):
    """Fits the picture to the view (smoothly scaled) or shows it pixel for pixel."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pixmap = QPixmap()
        self._fit = True
        self.label = QLabel("The image appears here, with previews while it is made.")
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.label.setWordWrap(True)
        self.setWidget(self.label)
        self.setWidgetResizable(True)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setAccessibleName("image view")
        self.setToolTip("The current image; previews show while it is being made")
        self.setMinimumSize(QSize(256, 256))

    def set_image(self, image: QImage) -> None:
        self._pixmap = QPixmap.fromImage(image)
        self._show()

    def clear(self, text: str = "Select an item to see it here") -> None:
        self._pixmap = QPixmap()
        self.label.setPixmap(QPixmap())
        self.label.setText(text)

    def pixmap(self) -> QPixmap:
        return self._pixmap

    def set_fit(self, fit: bool) -> None:
        self._fit = fit
        self.setWidgetResizable(fit)
        self._show()

    def _show(self) -> None:
        if self._pixmap.isNull():
            return
        if self._fit:
            target = self.viewport().size()
            # Previews are tiny (1/8 of the image): scale them smoothly; never enlarge a final image past 2×.
            shown = self._pixmap.scaled(
                target, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
            )
            self.label.setPixmap(shown)
        else:
            self.label.setPixmap(self._pixmap)
            self.label.resize(self._pixmap.size())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self._fit:
            self._show()


class StartImageBox(QLabel):
    """Shows the starting image for image-to-image; takes image files dropped on it."""

    dropped = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumHeight(72)
        self.setFrameShape(QLabel.Shape.StyledPanel)
        self.setAccessibleName("starting image")
        self.setToolTip("Drop an image here (from disk or the gallery) to start from it")
        self.clear_image()

    def show_image(self, path: Path) -> None:
        pixmap = QPixmap(str(path))
        if pixmap.isNull():
            self.setText(f"Cannot show {path.name}")
            return
        self.setPixmap(
            pixmap.scaled(96, 96, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
        )

    def clear_image(self) -> None:
        self.setPixmap(QPixmap())
        self.setText("Drop an image here to start from it")

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if dropped_image_path(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        path = dropped_image_path(event.mimeData())
        if path is not None:
            event.acceptProposedAction()
            self.dropped.emit(str(path))

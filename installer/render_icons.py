"""Render the SVG app icon to the PNG sizes the XDG icon theme and PyInstaller want.

python installer/render_icons.py resources/icons/studio.svg build/icons
"""

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

SIZES = (16, 32, 48, 64, 128, 256, 512)


def main(source: str, target: str) -> int:
    app = QGuiApplication(sys.argv[:1])  # noqa: F841 - Qt needs an application to paint
    renderer = QSvgRenderer(source)
    if not renderer.isValid():
        raise SystemExit(f"cannot read {source}")
    out = Path(target)
    out.mkdir(parents=True, exist_ok=True)
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        image.save(str(out / f"studio-{size}.png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], sys.argv[2]))

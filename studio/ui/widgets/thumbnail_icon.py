"""An icon for a picture in a list: the same pixels when the row is selected (Qt's own selected
icon is tinted with the highlight colour, which washes a thumbnail out)."""

from __future__ import annotations

from PySide6.QtGui import QIcon, QPixmap


def untinted_icon(pixmap: QPixmap) -> QIcon:
    icon = QIcon()
    for mode in (QIcon.Mode.Normal, QIcon.Mode.Active, QIcon.Mode.Selected):
        icon.addPixmap(pixmap, mode)
    return icon

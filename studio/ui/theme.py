"""The look: one stylesheet per theme in resources/theme, SVG icons in resources/icons."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QIcon
from PySide6.QtWidgets import QApplication

from studio.core.paths import resources_dir


def resolve_theme(name: str) -> str:
    """ "dark" or "light"; "system" follows the desktop where Qt can tell, else dark."""
    if name in ("dark", "light"):
        return name
    hints = QGuiApplication.styleHints()
    scheme = hints.colorScheme() if hasattr(hints, "colorScheme") else Qt.ColorScheme.Unknown
    return "light" if scheme == Qt.ColorScheme.Light else "dark"


def apply_theme(app: QApplication, name: str) -> str:
    """Apply a theme to the whole application; returns the one applied."""
    chosen = resolve_theme(name)
    sheet = resources_dir() / "theme" / f"{chosen}.qss"
    app.setStyle("Fusion")  # the same widgets on every platform, so the stylesheet looks the same
    app.setStyleSheet(sheet.read_text(encoding="utf-8") if sheet.is_file() else "")
    app.setProperty("studio_theme", chosen)
    return chosen


def icon(name: str) -> QIcon:
    """An SVG icon from resources/icons (crisp at any scale); empty when missing."""
    path = resources_dir() / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()

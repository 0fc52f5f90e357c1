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
    chosen = prepare_theme(app, name)
    app.setStyleSheet(stylesheet(chosen))
    return chosen


def prepare_theme(app: QApplication, name: str) -> str:
    """The theme's style and name, without its stylesheet: for building the window before the
    stylesheet goes on (``studio.ui.launch``). Returns the theme chosen."""
    chosen = resolve_theme(name)
    app.setStyle("Fusion")  # the same widgets on every platform, so the stylesheet looks the same
    app.setProperty("studio_theme", chosen)
    return chosen


def stylesheet(theme: str) -> str:
    """The theme's stylesheet, its ``@icons@`` pointing at resources/icons (a stylesheet's
    relative urls would be read against the current folder, not the app's)."""
    sheet = resources_dir() / "theme" / f"{theme}.qss"
    if not sheet.is_file():
        return ""
    return sheet.read_text(encoding="utf-8").replace("@icons@", (resources_dir() / "icons").as_posix())


def icon(name: str) -> QIcon:
    """An SVG icon from resources/icons (crisp at any scale); empty when missing."""
    path = resources_dir() / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()

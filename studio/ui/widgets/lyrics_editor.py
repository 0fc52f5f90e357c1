"""The lyrics editor: plain text with section tags (``[verse]``, ``[chorus]``…) highlighted and
insertable, as ACE-Step reads them."""

from __future__ import annotations

import re

from PySide6.QtCore import Signal
from PySide6.QtGui import QColor, QFont, QSyntaxHighlighter, QTextCharFormat, QTextCursor, QTextDocument
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

# The section tags ACE-Step's lyrics use, in the order a song usually has them.
SECTIONS = ("verse", "pre-chorus", "chorus", "bridge", "intro", "outro", "instrumental", "hook")
# A tag on a line of its own: "[verse]", "[Chorus 2]", "[guitar solo]".
TAG_LINE = re.compile(r"^\s*\[[^\[\]\n]{1,40}\]\s*$")


def section_tags(text: str) -> list[str]:
    """The section tags of ``text`` in order, lower-cased without brackets."""
    return [line.strip()[1:-1].strip().lower() for line in text.splitlines() if TAG_LINE.match(line)]


class LyricsHighlighter(QSyntaxHighlighter):
    """Section tag lines in bold and the palette's link colour; everything else as typed."""

    def __init__(self, document: QTextDocument, colour: QColor) -> None:
        super().__init__(document)
        self.tag_format = QTextCharFormat()
        self.tag_format.setFontWeight(QFont.Weight.Bold)
        self.tag_format.setForeground(colour)

    def highlightBlock(self, text: str) -> None:
        if TAG_LINE.match(text):
            self.setFormat(0, len(text), self.tag_format)


class LyricsEditor(QWidget):
    """A plain-text editor for lyrics with a menu that inserts a section tag at the cursor."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editor = QPlainTextEdit()
        self.editor.setAccessibleName("lyrics")
        self.editor.setPlaceholderText("[verse]\nFirst lines…\n\n[chorus]\nThe hook…")
        self.editor.setToolTip("Lyrics to sing; start each part with a tag on its own line: [verse], [chorus]…")
        self.editor.textChanged.connect(self.changed)
        self.editor.setMinimumHeight(96)
        self.highlighter = LyricsHighlighter(self.editor.document(), tag_colour(self.editor))
        self.insert_box = QComboBox()
        self.insert_box.setAccessibleName("insert section")
        self.insert_box.setToolTip("Insert a section tag at the cursor")
        self.insert_box.addItem("Insert section…", "")
        for name in SECTIONS:
            self.insert_box.addItem(f"[{name}]", name)
        self.insert_box.activated.connect(self._insert_chosen)
        self.count = QLabel("")
        self.count.setAccessibleName("lyrics length")
        self.editor.textChanged.connect(self._update_count)
        row = QHBoxLayout()
        row.addWidget(self.insert_box)
        row.addStretch(1)
        row.addWidget(self.count)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.editor, 1)
        layout.addLayout(row)

    def text(self) -> str:
        return self.editor.toPlainText()

    def set_text(self, text: str) -> None:
        self.editor.setPlainText(text)

    def insert_section(self, name: str) -> None:
        """Insert ``[name]`` on a line of its own at the cursor (a blank line before a new part)."""
        cursor = self.editor.textCursor()
        block_text = cursor.block().text()
        before = self.editor.toPlainText()[: cursor.position()]
        if block_text.strip():
            cursor.movePosition(QTextCursor.MoveOperation.EndOfBlock)
            prefix = "\n\n"
        else:
            prefix = "\n" if before.strip() and not before.endswith("\n\n") else ""
        cursor.insertText(f"{prefix}[{name}]\n")
        self.editor.setTextCursor(cursor)
        self.editor.setFocus()

    def _insert_chosen(self, index: int) -> None:
        name = self.insert_box.itemData(index)
        self.insert_box.setCurrentIndex(0)
        if name:
            self.insert_section(str(name))

    def _update_count(self) -> None:
        text = self.text()
        tags = section_tags(text)
        lines = sum(1 for line in text.splitlines() if line.strip() and not TAG_LINE.match(line))
        counted = f"{_plural(len(tags), 'section')} · {_plural(lines, 'line')}"
        self.count.setText(counted if text.strip() else "")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def tag_colour(editor: QPlainTextEdit) -> QColor:
    """The theme's accent, lightened on a dark background so a tag reads as well as the text."""
    colour = QColor(editor.palette().highlight().color())
    if editor.palette().base().color().lightness() < 128:
        colour = colour.lighter(160)
    return colour

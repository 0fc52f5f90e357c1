"""A model card (README.md) as a person reads it: the YAML front matter as a table of facts, the
rest rendered from Markdown (Qt's own CommonMark/GitHub reader) instead of shown as source."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QTextBrowser

# Front-matter keys in words; the others are shown as they are written.
_LABELS = {
    "license": "Licence",
    "licence": "Licence",
    "library_name": "Library",
    "pipeline_tag": "Task",
    "base_model": "Base model",
    "tags": "Tags",
    "language": "Language",
    "datasets": "Data sets",
    "studio_hint": "In Studio",
}
_CARD_LIMIT = 100_000  # characters: a card is prose, not a data dump


def split_front_matter(text: str) -> tuple[list[tuple[str, str]], str]:
    """(key, value) pairs of the ``---`` YAML header (top-level keys; lists and nested lines joined
    into one value) and the Markdown after it. No YAML library: a card's header is a few flat
    lines, and a malformed one must still show (as text) rather than fail."""
    if not text.startswith("---"):
        return [], text
    lines = text.splitlines()
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        return [], text
    pairs: list[tuple[str, str]] = []
    for line in lines[1:end]:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[:1] in (" ", "\t", "-") and pairs:  # a nested or list line: part of the last value
            key, value = pairs[-1]
            item = line.strip().removeprefix("- ").strip()
            pairs[-1] = (key, f"{value}, {item}" if value else item)
            continue
        key, _, value = line.partition(":")
        pairs.append((key.strip(), value.strip().strip("[]").strip("\"'")))
    return pairs, "\n".join(lines[end + 1 :])


def front_matter_html(pairs: list[tuple[str, str]]) -> str:
    """The front matter's facts as a two-column table (labels in words)."""
    rows = "".join(
        f"<tr><td style='color:#8b8d96; padding-right:12px'>{html.escape(_LABELS.get(key, key.replace('_', ' ')))}"
        f"</td><td>{html.escape(value)}</td></tr>"
        for key, value in pairs
    )
    return f"<table cellspacing='0' cellpadding='2'>{rows}</table>"


def show_card(view: QTextBrowser, folder: Path) -> None:
    """Show ``folder``'s README.md in ``view``, or say why there is none."""
    card = folder / "README.md"
    try:
        text = card.read_text(encoding="utf-8") if card.is_file() else ""
    except (OSError, UnicodeDecodeError) as exc:
        view.setPlainText(f"The model card cannot be read: {exc}")
        return
    if not text.strip():
        view.setPlainText("No model card.")
        return
    pairs, body = split_front_matter(text[:_CARD_LIMIT])
    view.setMarkdown(body)
    if pairs:  # the facts first, as a table; Markdown has no table without a header row
        cursor = QTextCursor(view.document())
        cursor.movePosition(QTextCursor.MoveOperation.Start)
        cursor.insertHtml(front_matter_html(pairs))
        cursor.insertBlock()
    view.moveCursor(QTextCursor.MoveOperation.Start)

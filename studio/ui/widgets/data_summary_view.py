"""What a training set holds, before anything trains: counts and size, exact and near duplicates,
the most frequent caption (or text) words as bars, the files that cannot be read and why, and the
trainer's notes. Shows a ``studio.core.training.DataSummary``; reads nothing itself."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QApplication, QLabel, QSizePolicy, QTextBrowser, QVBoxLayout, QWidget

from studio.core.training import DataSummary

TOP_WORDS = 12
_BAR_ROW = 18


def set_text(label: QLabel, text: str) -> None:
    """Set ``label``'s text only when it changes (each change asks the tab for a new layout)."""
    if label.text() != text:
        label.setText(text)


def format_bytes(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "bytes" else f"{value:,.1f} {unit}"
        value /= 1000
    return f"{size} bytes"


def skew_warning(words: Sequence[tuple[str, int]], files: int) -> str:
    """A plain sentence when one word dominates the set (how bias gets in), else ""."""
    if not words or files < 2:
        return ""
    top, count = words[0]
    second = words[1][1] if len(words) > 1 else 0
    if count >= 2 * max(second, 1) and count * 2 >= files:
        return (
            f"<b>Skewed:</b> “{html.escape(top)}” is far more frequent than any other word ({count} times in "
            f"{files} files): the model will learn it as the norm and add it everywhere. Vary the set if that is "
            "not what you want."
        )
    return ""


class WordBars(QWidget):
    """The most frequent words as a small horizontal bar list, painted."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.words: list[tuple[str, int]] = []
        self.setAccessibleName("most frequent words")
        self.setToolTip("The words that come up most in the captions (or texts): what the model will learn most")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_words(self, words: Sequence[tuple[str, int]]) -> None:
        words = list(words)[:TOP_WORDS]
        if words != self.words:
            self.words = words
            self.updateGeometry()
            self.update()

    def sizeHint(self) -> QSize:
        return QSize(260, max(1, len(self.words)) * _BAR_ROW + 4)

    def minimumSizeHint(self) -> QSize:
        return QSize(160, self.sizeHint().height())

    def paintEvent(self, event: QPaintEvent) -> None:
        if not self.words:
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        app = QApplication.instance()
        light = app is not None and app.property("studio_theme") == "light"
        bar = QColor("#3d63d6") if light else QColor("#4a7dff")
        ink = self.palette().color(QPalette.ColorRole.WindowText)
        metrics = painter.fontMetrics()
        label_width = min(self.width() // 3, max(metrics.horizontalAdvance(w) for w, _ in self.words) + 8)
        count_width = metrics.horizontalAdvance(f"{self.words[0][1]:,}") + 8
        room = max(10, self.width() - label_width - count_width - 4)
        most = max(n for _, n in self.words) or 1
        for row, (word, count) in enumerate(self.words):
            top = row * _BAR_ROW + 2
            painter.setPen(ink)
            painter.drawText(
                QRectF(0, top, label_width - 6, _BAR_ROW - 2),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                metrics.elidedText(word, Qt.TextElideMode.ElideRight, label_width - 6),
            )
            width = max(2.0, room * count / most)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(bar)
            painter.drawRoundedRect(QRectF(label_width, top + 3, width, _BAR_ROW - 8), 3, 3)
            painter.setPen(ink)
            painter.drawText(
                QRectF(label_width + width + 4, top, count_width, _BAR_ROW - 2),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                f"{count:,}",
            )
        painter.end()


class DataSummaryView(QWidget):
    """The summary of the set chosen in the Train tab; ``show_summary`` fills it, ``waiting`` and
    ``show_error`` say what stands instead."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary: DataSummary | None = None
        self.headline = QLabel("Choose what to learn from: a folder or gallery items.")
        self.headline.setWordWrap(True)
        self.headline.setAccessibleName("data summary")
        self.headline.setToolTip("How many files the run would learn from, their size and the data digest")
        self.words_title = QLabel("Most frequent words")
        self.words = WordBars()
        self.skew = QLabel()
        self.skew.setWordWrap(True)
        self.skew.setAccessibleName("bias warning")
        self.bias_note = QLabel(
            "A model learns what its data shows most. If one subject, style or kind of person dominates these "
            "words, the model will treat it as the norm."
        )
        self.bias_note.setWordWrap(True)
        self.bias_note.setAccessibleName("about bias")
        self.details = QTextBrowser()
        self.details.setAccessibleName("data problems and notes")
        self.details.setToolTip("Duplicates, files that cannot be read and why, and what the trainer will do")
        self.details.setOpenLinks(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.headline)
        layout.addWidget(self.words_title)
        layout.addWidget(self.words)
        layout.addWidget(self.skew)
        layout.addWidget(self.bias_note)
        layout.addWidget(self.details, 1)
        self.details.setHtml(_EMPTY)
        self._show_words(False)

    def _show_words(self, shown: bool) -> None:
        for widget in (self.words_title, self.words, self.bias_note):
            widget.setVisible(shown)
        self.skew.setVisible(shown and bool(self.skew.text()))

    def clear(self, text: str = "Choose what to learn from: a folder or gallery items.") -> None:
        self.summary = None
        set_text(self.headline, text)
        self.words.set_words([])
        set_text(self.skew, "")
        self.details.setHtml(_EMPTY)
        self._show_words(False)

    def waiting(self) -> None:
        set_text(self.headline, "Reading the files…")

    def show_error(self, message: str) -> None:
        self.clear(f"Cannot read this set: {message}")

    def show_summary(self, summary: DataSummary) -> None:
        self.summary = summary
        count = len(summary.files)
        first = f"<b>{count} file{'s' if count != 1 else ''}</b> to learn from · {format_bytes(summary.total_bytes)}"
        if count:
            first += f" · data digest {summary.digest[:12]}…"
        facts = []
        if summary.duplicates:
            repeated = sum(len(group) - 1 for group in summary.duplicates)
            facts.append(f"{repeated} exact duplicate{'s' if repeated != 1 else ''} (learned once)")
        if summary.near_duplicates:
            groups = len(summary.near_duplicates)
            facts.append(f"{groups} group{'s' if groups != 1 else ''} of near duplicates")
        if summary.unreadable:
            facts.append(f"{len(summary.unreadable)} left out (cannot be read)")
        headline = first + ("<br>" + " · ".join(facts) if facts else "")
        set_text(self.headline, headline)
        self.words.set_words(summary.caption_words)
        set_text(self.skew, skew_warning(summary.caption_words, count))
        self._show_words(bool(summary.caption_words))
        self.details.setHtml(_details_html(summary))


_EMPTY = (
    "<p>Before anything trains, this page shows what the run would learn from: how many files, their size, "
    "exact and near duplicates, the words that come up most, and the files that cannot be read and why.</p>"
    "<p>Images: PNG, JPEG or WebP, with a caption each (the gallery prompt, a .txt beside the file, or typed "
    "here). Texts: .txt and .md. Tunes: MIDI and ABC files, and the melody model's own outputs.</p>"
)


def _name(path: str) -> str:
    return html.escape(Path(path).name or path)


def _details_html(summary: DataSummary) -> str:
    sections: list[str] = []
    if summary.unreadable:
        rows = "".join(f"<li><b>{_name(p)}</b>: {html.escape(why)}</li>" for p, why in summary.unreadable)
        sections.append(f"<h4>Cannot be read, left out</h4><ul>{rows}</ul>")
    if summary.duplicates:
        rows = "".join(
            f"<li>{', '.join(_name(p) for p in group)} — the same file; only the first is learned</li>"
            for group in summary.duplicates
        )
        sections.append(f"<h4>Exact duplicates</h4><ul>{rows}</ul>")
    if summary.near_duplicates:
        rows = "".join(f"<li>{', '.join(_name(p) for p in group)}</li>" for group in summary.near_duplicates)
        sections.append(
            "<h4>Near duplicates</h4><p>These look alike; each is learned, so together they weigh more.</p>"
            f"<ul>{rows}</ul>"
        )
    if summary.notes:
        rows = "".join(f"<li>{html.escape(note)}</li>" for note in summary.notes)
        sections.append(f"<h4>What training will do</h4><ul>{rows}</ul>")
    if not sections:
        return "<p>No duplicates, nothing unreadable.</p>" if summary.files else ""
    return "".join(sections)

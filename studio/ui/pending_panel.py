"""A tab for a medium this version cannot generate yet: it keeps a prompt and says so."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from studio.ui.panel_base import GenerationPanel


class PendingPanel(GenerationPanel):
    """Holds the prompt another tab sends here, and explains that generation is not here yet."""

    def __init__(self, services, kind: str, note: str = "", parent: QWidget | None = None) -> None:
        super().__init__(services, parent)
        self.kind = kind
        self.prompt = QPlainTextEdit()
        self.prompt.setAccessibleName(f"{kind} prompt")
        self.prompt.setToolTip(f"A prompt for {kind} generation")
        self.prompt.setPlaceholderText(f"A prompt for {kind} generation")
        notice = QLabel(
            note
            or f"{kind.capitalize()} generation is not in this version of Studio yet. "
            "The prompt you write or send here is kept for when it is."
        )
        notice.setWordWrap(True)
        notice.setAccessibleName(f"{kind} notice")
        layout = QVBoxLayout(self)
        layout.addWidget(notice)
        layout.addWidget(self.prompt, 1)

    def set_prompt(self, text: str) -> None:
        self.prompt.setPlainText(text)

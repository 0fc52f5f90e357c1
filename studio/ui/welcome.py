"""The first-run welcome: what Studio does offline, the models it found, where outputs go."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

from studio.runtime.services import make_catalog


def welcome_text(services) -> str:
    specs = [s for s in make_catalog(services.settings).discover() if s.runnable]
    by_kind = {kind: [s.name for s in specs if s.kind == kind] for kind in ("text", "image", "music")}
    found = "".join(f"<li><b>{kind.capitalize()}</b>: {_names(names)}</li>" for kind, names in by_kind.items())
    return (
        "<h2>Welcome to Studio</h2>"
        "<p>Studio writes text, paints images and makes music with models that run on this computer. "
        "It works offline: nothing you make or type leaves the machine, and it opens no connection "
        "unless you turn on online mode to download a model.</p>"
        f"<p>Models found (bundled, in the Hugging Face cache, in your folders):</p><ul>{found}</ul>"
        "<p>Studio ships three small <b>starter</b> models so every tab works at once: a text model that "
        "continues writing in the voice of the King James Bible, a pattern painter for abstract images, and "
        "a folk-melody writer whose tunes come with a MIDI file. They are small; each model's card "
        "(Model manager) says what it was trained on and how well it does.</p>"
        "<p>Add more with <b>Models ▸ Model manager…</b> (Add folder…), or <code>studio models add FOLDER</code>. "
        "Your own models are chosen before the starters.</p>"
        "<p>The <b>Train</b> tab teaches a model your own work — your tunes, your writing, your pictures "
        "(those on a GPU) — and everything it makes afterwards says what it learned from.</p>"
        f"<p>Everything you make is saved with its full provenance in <code>{services.store.root}</code> "
        f"and shown in the Gallery tab; the log is in <code>{services.paths.logs}</code>.</p>"
        "<p>Ctrl+Enter generates, Esc cancels, Ctrl+1…5 switch tabs, Ctrl+F searches the gallery.</p>"
    )


def _names(names: list[str]) -> str:
    if not names:
        return "none yet"
    return ", ".join(names[:4]) + (" …" if len(names) > 4 else "")


class WelcomeDialog(QDialog):
    def __init__(self, services, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Welcome to Studio")
        self.resize(560, 460)
        self.text = QLabel(welcome_text(services))
        self.text.setWordWrap(True)
        self.text.setAccessibleName("welcome")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok)
        buttons.accepted.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text, 1)
        layout.addWidget(buttons)

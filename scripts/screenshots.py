"""Render every tab, dialog and state of the window with the starter models, at laptop and desktop
sizes, in both themes, and save the pictures (the README's among them).

    .venv/bin/python scripts/screenshots.py                   # offscreen, every state → /tmp/studio-shots
    .venv/bin/python scripts/screenshots.py --xvfb            # the same under a real X server (Xvfb)
    .venv/bin/python scripts/screenshots.py --readme          # also the README's pictures → docs/screenshots

Re-run it when the UI changes. The models are the starters that ship in resources/models, so the
pictures show what a fresh install makes. Each picture is named THEME-WxH-STATE.png.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SIZES = ((1280, 800), (1920, 1080))
THEMES = ("dark", "light")
# The README's pictures: (state, file name), dark theme at 1280×800.
README = (("text-done", "text"), ("image-done", "image"), ("music-done", "music"), ("gallery-image", "gallery"))
PROMPTS = {
    "text": "And the river",
    "image": "sunset waves over the sea",
    "music": "a lively jig on the fiddle in D",
}


def _wait(app: Any, condition: Callable[[], bool], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.02)


def _settle(app: Any, seconds: float = 0.3) -> None:
    _wait(app, lambda: False, seconds)


def start_xvfb(width: int, height: int) -> tuple[subprocess.Popen[bytes], str]:
    """An X server of its own on a free display number, for the real xcb platform."""
    if shutil.which("Xvfb") is None:
        raise SystemExit("Xvfb is not installed (apt-get install xvfb)")
    for number in range(120, 200):
        if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            display = f":{number}"
            server = subprocess.Popen(
                ["Xvfb", display, "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 10
            while not Path(f"/tmp/.X11-unix/X{number}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            return server, display
    raise SystemExit("no free X display number")


class Shooter:
    """Drives one window through its states and saves a picture of each."""

    def __init__(self, app: Any, window: Any, out: Path) -> None:
        self.app = app
        self.window = window
        self.out = out
        self.saved: list[Path] = []
        self.prefix = ""

    def save(self, widget: Any, state: str) -> Path:
        _settle(self.app)
        target = self.out / f"{self.prefix}-{state}.png"
        widget.grab().save(str(target))
        self.saved.append(target)
        return target

    def window_state(self, state: str) -> Path:
        return self.save(self.window, state)

    def dialog(self, dialog: Any, state: str, before: Callable[[Any], None] | None = None) -> None:
        dialog.show()
        _settle(self.app, 0.4)
        if before is not None:
            before(dialog)
        self.save(dialog, state)
        dialog.close()
        dialog.deleteLater()


def generate_everything(app: Any, window: Any) -> None:
    """One output per tab with its starter model (the same for every theme and size)."""
    for kind, panel in window.panels.items():
        window.tabs.setCurrentWidget(panel)
        _wait(app, lambda p=panel: p.model_info is not None, 60)
        panel.set_prompt(PROMPTS[kind])
        if kind == "image":
            panel.width_box.setValue(768)
            panel.height_box.setValue(512)
        if kind == "music":
            panel.duration.setValue(12.0)
        saved: list[Any] = []
        panel.items_saved.connect(saved.extend)
        panel.generate()
        _wait(app, lambda s=saved: bool(s))
        _settle(app, 0.5)


TRAINING_TEXTS = (
    "The river ran under the stone bridge, and the heron stood in the reeds until the lamps were lit.",
    "At night the wind came over the field and the water talked to the stones of the weir.",
    "Rain on the roof of the mill; the wheel turning slowly, the miller asleep by the fire.",
)


def train_a_little(app: Any, window: Any, folder: Path) -> None:
    """A few steps of the text starter on three short texts, so the Train tab shows a curve,
    samples and a finished model (skipped when this Studio has no training job)."""
    panel = getattr(window, "train_panel", None)
    if panel is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    for number, text in enumerate(TRAINING_TEXTS, start=1):
        (folder / f"walk-{number}.txt").write_text((text + "\n") * 12, encoding="utf-8")
    window.tabs.setCurrentWidget(panel)
    panel.set_folder(str(folder))
    _wait(app, lambda: panel.summary is not None, 60)
    if panel.summary is None or not panel.summary.files:
        return
    panel.name.setText("River walks")
    panel.rights.setText("my own work")
    panel.steps.setValue(24)
    panel.sample_every.setValue(12)
    panel.prompt.setPlainText("The river")
    panel.generate()
    _wait(app, lambda: not panel.busy(), 600)
    _settle(app, 0.5)


def shoot_train(shooter: Shooter, fresh: bool) -> None:
    """The Train tab: empty; after a run its data, curve and samples, and the new model's card."""
    window = shooter.window
    panel = getattr(window, "train_panel", None)
    if panel is None:
        return
    window.tabs.setCurrentWidget(panel)
    if fresh:
        shooter.window_state("train-empty")
        return
    pages = ((panel.data_page, "train-data"), (panel.run_page, "train-run"), (panel.result_page, "train-done"))
    for page, state in pages:
        panel.pages.setCurrentWidget(page)
        shooter.window_state(state)


def shoot_states(shooter: Shooter, fresh: bool) -> None:
    """Every tab, dialog and state at the window's current theme and size."""
    app, window = shooter.app, shooter.window
    tabs = window.tabs
    if fresh:
        for kind, panel in window.panels.items():
            tabs.setCurrentWidget(panel)
            shooter.window_state(f"{kind}-empty")
        shoot_train(shooter, fresh)
        return
    for kind, panel in window.panels.items():
        tabs.setCurrentWidget(panel)
        shooter.window_state(f"{kind}-done")
    shoot_train(shooter, fresh)
    text = window.text_panel
    tabs.setCurrentWidget(text)
    text.more_toggle.setChecked(True)
    shooter.window_state("text-more-settings")
    text.more_toggle.setChecked(False)
    image = window.image_panel
    tabs.setCurrentWidget(image)
    image.show_status("")
    image.report_error(image.run_status, _FailedJob())
    shooter.window_state("image-error")
    getattr(image, "action_taken", lambda: None)()

    gallery = window.gallery_panel
    tabs.setCurrentWidget(gallery)
    gallery.refresh()
    for kind in ("image", "music", "text"):
        for row in range(gallery.model.rowCount()):
            item = gallery.model.item_at(row)
            if item is not None and item.kind == kind:
                gallery.view.setCurrentIndex(gallery.model.index(row))
                break
        _wait(app, lambda: gallery.thumbnails.wait_idle(100), 10)
        shooter.window_state(f"gallery-{kind}")
    if hasattr(gallery, "raw_toggle"):
        gallery.raw_toggle.setChecked(True)
        shooter.window_state("gallery-record")
        gallery.raw_toggle.setChecked(False)

    menu = window.menuBar().actions()[2].menu()  # Models: its border in both themes
    menu.popup(window.mapToGlobal(window.rect().center()))
    shooter.save(menu, "models-menu")
    menu.hide()
    from studio.ui.welcome import WelcomeDialog

    shooter.dialog(window.model_manager(), "model-manager")
    settings = window.settings_dialog()
    pages = getattr(settings, "pages", None)
    if pages is not None:
        for number in range(pages.count()):
            name = settings.page_names[number].lower().replace(" & ", "-").replace(" ", "-")
            shooter.dialog(window.settings_dialog(), f"settings-{name}", lambda d, n=number: d.show_page(n))
        settings.deleteLater()
    else:
        shooter.dialog(settings, "settings")
    shooter.dialog(WelcomeDialog(window.services, window), "welcome")
    from studio.ui.export_dialog import ExportDialog

    items = gallery.selected_items()
    shooter.dialog(ExportDialog(items, window.services.store.credentials, window.services.settings, window), "export")
    tabs.setCurrentWidget(window.image_panel)


class _FailedJob:
    """What a failed job shows (for the error state's picture)."""

    error = "the model ran out of memory at 1920×1080; try a smaller size or the low memory mode"
    detail = "Traceback (most recent call last): …"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "studio-shots")
    parser.add_argument("--xvfb", action="store_true", help="render under a real X server (Xvfb), not offscreen")
    parser.add_argument("--readme", action="store_true", help="also write the README's pictures to docs/screenshots")
    parser.add_argument("--sizes", default=",".join(f"{w}x{h}" for w, h in SIZES))
    parser.add_argument("--themes", default=",".join(THEMES))
    args = parser.parse_args(argv)
    sizes = [tuple(int(n) for n in size.split("x")) for size in args.sizes.split(",")]
    themes = args.themes.split(",")
    server = None
    if args.xvfb:
        width = max(w for w, _h in sizes)
        height = max(h for _w, h in sizes)
        server, display = start_xvfb(width, height)
        os.environ["DISPLAY"] = display
        os.environ["QT_QPA_PLATFORM"] = "xcb"
    else:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path.insert(0, str(ROOT))
    try:
        return _run(args.out / ("xvfb" if args.xvfb else "offscreen"), sizes, themes, args.readme)
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)


def _run(out: Path, sizes: list[tuple[int, ...]], themes: list[str], readme: bool) -> int:
    from PySide6.QtWidgets import QApplication

    from studio.core.paths import StudioPaths
    from studio.runtime.services import open_services
    from studio.ui.main_window import MainWindow
    from studio.ui.quiet import quiet_ffmpeg, quiet_qt_logging
    from studio.ui.theme import apply_theme

    quiet_qt_logging(debug=False)
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or QApplication([])
    quiet_ffmpeg()
    with tempfile.TemporaryDirectory() as tmp:
        services = open_services(StudioPaths.under(Path(tmp) / "data"))
        services.settings.set("welcome_shown", True)
        window = MainWindow(services)
        window.show()
        services.worker.probe_device()  # as the app does at launch: the status bar and settings know the device
        shooter = Shooter(app, window, out)
        for fresh in (True, False):
            if not fresh:
                window.resize(*sizes[0])
                generate_everything(app, window)
                train_a_little(app, window, Path(tmp) / "my-writing")
            for theme in themes:
                apply_theme(app, theme)
                for width, height in sizes:
                    window.resize(width, height)
                    _settle(app, 0.5)
                    shooter.prefix = f"{theme}-{width}x{height}"
                    shoot_states(shooter, fresh)
        if readme:
            target = ROOT / "docs" / "screenshots"
            target.mkdir(parents=True, exist_ok=True)
            for state, name in README:
                source = out / f"dark-1280x800-{state}.png"
                if source.is_file():
                    shutil.copyfile(source, target / f"{name}.png")
                    print(target / f"{name}.png")
        window.shutdown()
    for path in shooter.saved:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

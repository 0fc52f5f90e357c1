"""The main window: a tab per medium and the gallery, menus, and a status bar."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QByteArray, QRect, QUrl
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QLayout,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTabWidget,
    QWidget,
)

import studio
from studio.core.events import EventKind, JobEvent
from studio.runtime.job_router import ClusterTarget, JobRouter, cluster_target
from studio.runtime.services import Services, make_catalog
from studio.ui.bridge import WorkerBridge
from studio.ui.gallery_panel import GalleryPanel
from studio.ui.image_panel import ImagePanel
from studio.ui.jobs import Job, JobQueue, JobState
from studio.ui.model_discovery import ModelDiscovery
from studio.ui.music_panel import MusicPanel
from studio.ui.panel_base import GenerationPanel, SettingsScroll, set_text
from studio.ui.text_panel import TextPanel
from studio.ui.theme import apply_theme, icon
from studio.ui.train_panel import TrainPanel, use_trained

if TYPE_CHECKING:
    from studio.core.models import ModelSpec
    from studio.gallery.store import GalleryItem
    from studio.ui.model_manager import ModelManager
    from studio.ui.settings_dialog import SettingsDialog

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    def __init__(self, services: Services, *, models_now: bool = True) -> None:
        """``models_now`` False: the tabs say "Looking for models…" until ``find_models`` (called once
        the window is shown, as ``studio.ui.launch`` does) has found them on a thread of its own."""
        super().__init__()
        self.services = services
        self._shut_down = False
        self.setWindowTitle(studio.APP_NAME)
        screen = QApplication.primaryScreen()
        if screen is not None:
            self.setGeometry(first_geometry(screen.availableGeometry()))
        else:
            self.resize(1100, 720)
        # The tabs' jobs run on this machine's worker, or on a Ray cluster when the settings say so;
        # connecting happens on a thread of its own, never here.
        self.runner = JobRouter(services.worker, services.store, target=self._cluster_target())
        self.bridge = WorkerBridge(self.runner, self)
        # Every job of every tab, and the status bar's count, from the worker's events.
        self.jobs = JobQueue(self.runner, parent=self)
        self.bridge.delivered.connect(self.jobs.on_events)

        self.text_panel = TextPanel(services, self.jobs)
        self.image_panel = ImagePanel(services, self.jobs)
        self.music_panel = MusicPanel(services, self.jobs)
        self.gallery_panel = GalleryPanel(services)
        self.train_panel = TrainPanel(services, self.jobs, self.gallery_panel)
        self._specs: list[Any] = []
        self.panels: dict[str, GenerationPanel] = {
            "text": self.text_panel,
            "image": self.image_panel,
            "music": self.music_panel,
        }
        self.setWindowIcon(icon("studio"))
        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("media tabs")
        self.tabs.setToolTip("Ctrl+1 Text · Ctrl+2 Image · Ctrl+3 Music · Ctrl+4 Train · Ctrl+5 Gallery")
        self.tab_names: dict[QWidget, str] = {}
        panel: QWidget
        for panel, name in (
            (self.text_panel, "Text"),
            (self.image_panel, "Image"),
            (self.music_panel, "Music"),
            (self.train_panel, "Train"),
            (self.gallery_panel, "Gallery"),
        ):
            self.tabs.addTab(panel, icon(name.lower()), name)
            self.tab_names[panel] = name
        self.tabs.currentChanged.connect(self._tab_shown)
        self.setCentralWidget(self.tabs)

        for tab in self.panels.values():
            tab.items_saved.connect(self._items_saved)
            tab.prompt_for.connect(self._send_prompt)
        self.jobs.worker_state.connect(self._on_event)
        self.jobs.changed.connect(self._job_changed)
        self.gallery_panel.open_requested.connect(self._open_item)
        self.gallery_panel.reuse_requested.connect(self.reuse_item)
        self.gallery_panel.vary_requested.connect(self.vary_item)
        self.gallery_panel.input_requested.connect(self.use_as_input)
        self.gallery_panel.train_requested.connect(self.train_on)
        self.train_panel.models_changed.connect(self._trained)
        self.train_panel.use_requested.connect(self.use_trained)

        self.device_label = QLabel("Device: not loaded yet")
        self.device_label.setAccessibleName("device")
        self.device_label.setToolTip("Where models run")
        self.runs_on_label = QLabel(f"Runs on: {self.runner.status_text}")
        self.runs_on_label.setAccessibleName("runs on")
        self.runs_on_label.setToolTip("Where jobs run: this machine or a Ray cluster (File › Settings › Cluster)")
        self.queue_label = QLabel("Queue: 0")
        self.queue_label.setAccessibleName("queue")
        self.queue_label.setToolTip("Jobs waiting for the worker")
        self._unsaved: list[str] = []
        self.retry_button = QPushButton("Retry saving")
        self.retry_button.setAccessibleName("retry saving")
        self.retry_button.setToolTip("Save the outputs that could not be saved (after freeing space, say)")
        self.retry_button.clicked.connect(self.retry_saving)
        self.retry_button.setVisible(False)
        self.statusBar().addPermanentWidget(self.retry_button)
        self.statusBar().addPermanentWidget(self.device_label)
        self.statusBar().addPermanentWidget(self.runs_on_label)
        self.statusBar().addPermanentWidget(self.queue_label)
        self._build_menus()
        self.model_discovery = ModelDiscovery(self)
        self.model_discovery.found.connect(self._show_models)
        if models_now:
            self.refresh_models()
        else:
            for tab in (*self.panels.values(), self.train_panel):
                tab.looking_for_models()
        if services.worker.device_info:  # reported before this window listened
            self._show_device(services.worker.device_info)
        self.restore_window_state()

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.settings_action = QAction("&Settings…", self)
        self.settings_action.setShortcut(QKeySequence("Ctrl+,"))
        self.settings_action.triggered.connect(self.show_settings)
        file_menu.addAction(self.settings_action)
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)
        view_menu = self.menuBar().addMenu("&View")
        self.tab_actions: list[QAction] = []
        for number in range(self.tabs.count()):
            action = QAction(self.tabs.tabText(number), self)
            action.setShortcut(QKeySequence(f"Ctrl+{number + 1}"))
            action.triggered.connect(lambda _checked=False, n=number: self.tabs.setCurrentIndex(n))
            view_menu.addAction(action)
            self.tab_actions.append(action)
        self.search_action = QAction("&Search the gallery", self)
        self.search_action.setShortcut(QKeySequence.StandardKey.Find)
        self.search_action.triggered.connect(self.search_gallery)
        view_menu.addAction(self.search_action)
        models_menu = self.menuBar().addMenu("&Models")
        manager = QAction("Model &manager…", self)
        manager.setShortcut(QKeySequence("Ctrl+Shift+M"))
        manager.triggered.connect(self.show_model_manager)
        models_menu.addAction(manager)
        help_menu = self.menuBar().addMenu("&Help")
        welcome = QAction("&Welcome", self)
        welcome.triggered.connect(self.show_welcome)
        help_menu.addAction(welcome)
        about = QAction("&About Studio", self)
        about.triggered.connect(self.show_about)
        help_menu.addAction(about)

    def about_text(self) -> str:
        return (
            f"<b>{studio.APP_NAME} {studio.__version__}</b><br>"
            "Generate text, images and music with models on your own machine, offline.<br>"
            f"Outputs (the gallery): {self.services.store.root}<br>"
            f"Logs: {self.services.paths.logs}<br>"
            f"Settings: {self.services.paths.config}"
        )

    def model_manager(self) -> ModelManager:
        """The model manager, wired so every tab's picker follows its changes."""
        from studio.ui.model_manager import ModelManager

        dialog = ModelManager(self.services, self)
        dialog.models_changed.connect(self.refresh_models)
        return dialog

    def show_model_manager(self) -> None:
        self.model_manager().exec()

    def show_about(self) -> None:
        QMessageBox.about(self, f"About {studio.APP_NAME}", self.about_text())

    def find_models(self) -> None:
        """Discover the library's models on a thread; the tabs fill when they are found."""
        self.model_discovery.start(make_catalog(self.services.settings).discover)

    def refresh_models(self) -> None:
        """Discover the library's models now (after the model manager changed it, say)."""
        self.model_discovery.cancel()  # a search still running would answer with the older library
        self._show_models(make_catalog(self.services.settings).discover())

    def _show_models(self, specs: list[ModelSpec]) -> None:
        last = self.services.settings.get("last_models")
        self.text_panel.refresh_models(specs, last.get("text", ""))
        self.image_panel.refresh_models(specs, last.get("image", ""))
        self.music_panel.refresh_models(specs, last.get("music", ""))
        self._specs = specs
        self.train_panel.refresh_models(specs)

    def _show_device(self, info: dict[str, Any]) -> None:
        text = f"Device: {info.get('name', 'unknown')}"
        if info.get("free_bytes"):
            text += f" · {info['free_bytes'] / 2**30:.1f} GiB free"
        set_text(self.device_label, text)

    def _on_event(self, event: JobEvent) -> None:
        if event.kind is EventKind.DEVICE:
            self._show_device(event.result or {})
        elif event.kind is EventKind.RUNNER:
            self._show_runner(event.result or {})

    def _cluster_target(self) -> ClusterTarget | None:
        paths = self.services.paths
        # A local cluster's actors read this data folder's settings (model folders): one root folder is
        # passed on; the user's own folders they find themselves.
        root = str(paths.data.parent) if paths.data.parent == paths.config.parent else ""
        return cluster_target(self.services.settings, root)

    def _show_runner(self, state: dict[str, Any]) -> None:
        """Where jobs run now; a cluster lost or out of reach is said in the status line too."""
        text = str(state.get("text", ""))
        set_text(self.runs_on_label, f"Runs on: {_short(text)}")
        self.runs_on_label.setToolTip(f"Where jobs run: {text} (File › Settings › Cluster)")
        if state.get("where") in ("lost",) or (state.get("where") == "local" and "jobs run here" in text):
            self.statusBar().showMessage(text[:1].upper() + text[1:], 15000)

    def _job_changed(self, job: Job) -> None:
        self._show_queue_length()
        if job.state is JobState.RUNNING and job.is_generation and job.kind in self.panels:
            self._remember_model(job.kind, job.model)
        if job.state is JobState.FAILED and job.unsaved:
            self._unsaved.append(job.id)
            self.retry_button.setVisible(True)
        if job.state is JobState.FINISHED and not job.is_generation:
            self.gallery_panel.refresh()
            self.statusBar().showMessage("Saved to the gallery", 5000)

    def retry_saving(self) -> None:
        """Save again what could not be saved; what fails again comes back as a new error."""
        waiting, self._unsaved = self._unsaved, []
        self.retry_button.setVisible(False)
        for job_id in waiting:
            self.jobs.retry_save(job_id)

    def _show_queue_length(self) -> None:
        set_text(self.queue_label, f"Queue: {self.jobs.count_waiting()}")

    def _remember_model(self, kind: str, model: str) -> None:
        """Keep the model a job of ``kind`` ran with (not what its tab shows now): the tab starts on it next time."""
        if not model:
            return
        last = self.services.settings.get("last_models")
        if last.get(kind) != model:
            last[kind] = model
            self.services.settings.set("last_models", last)
            try:
                self.services.settings.save()
            except OSError:
                log.warning("could not save settings", exc_info=True)

    def _items_saved(self, items: list[GalleryItem]) -> None:
        self.gallery_panel.refresh()
        if not items:
            return
        panel = self.panels.get(items[0].kind)
        if panel is not None and self.tabs.currentWidget() is not panel:
            # Finished while the artist looks elsewhere: say so, and mark the tab until it is seen.
            index = self.tabs.indexOf(panel)
            self.tabs.setTabText(index, f"{self.tab_names[panel]} ●")
            self.statusBar().showMessage(f"{self.tab_names[panel]} finished: {items[0].path.name}", 8000)
        else:
            self.statusBar().showMessage(f"Saved {items[0].path.name}", 5000)

    def _tab_shown(self, index: int) -> None:
        panel = self.tabs.widget(index)
        if panel in self.tab_names:
            self.tabs.setTabText(index, self.tab_names[panel])

    def search_gallery(self) -> None:
        self.tabs.setCurrentWidget(self.gallery_panel)
        self.gallery_panel.focus_search()

    def show_settings(self) -> None:
        self.settings_dialog().exec()

    def settings_dialog(self) -> SettingsDialog:
        from studio.ui.settings_dialog import SettingsDialog

        dialog = SettingsDialog(
            self.services.settings,
            self,
            device_info=getattr(self.services.worker, "device_info", None),
            paths=self.services.paths,
            gallery_root=self.services.store.root,
        )
        dialog.applied.connect(self._settings_changed)
        return dialog

    def _settings_changed(self, names: list[str]) -> None:
        app = QApplication.instance()
        if "theme" in names and isinstance(app, QApplication):
            apply_theme(app, str(self.services.settings.get("theme")))
            self.fit_to_style()
        if {"model_folders", "allow_pickle_models"} & set(names):
            self.refresh_models()
        if {"run_on", "cluster_address", "cluster_workers", "cluster_if_lost"} & set(names):
            self.runner.configure(self._cluster_target())

    def fit_to_style(self) -> None:
        """Measure again what the tabs measured when they were built, now that the stylesheet (its
        paddings and borders) applies: the settings columns' widths. Polishes the window's widgets
        (as showing it would) and drops the sizes its layouts hold from before, so the tabs not
        shown yet measure as they will look, and the splitters share out the width once, right."""
        self.ensurePolished()
        for layout in self.findChildren(QLayout):
            layout.invalidate()
        for scroll in self.findChildren(SettingsScroll):
            scroll.fit_width()

    def show_welcome(self) -> None:
        from studio.ui.welcome import WelcomeDialog

        WelcomeDialog(self.services, self).exec()

    # -- window state -----------------------------------------------------------------

    def _splitters(self) -> dict[str, QSplitter | None]:
        return {name.lower(): panel.findChild(QSplitter) for panel, name in self.tab_names.items()}

    def save_window_state(self) -> None:
        """Size and place, splitter positions and the current tab, kept in the settings."""
        state = {
            "geometry": _base64(self.saveGeometry()),
            "tab": self.tabs.currentIndex(),
            "splitters": {
                name: _base64(splitter.saveState())
                for name, splitter in self._splitters().items()
                if splitter is not None
            },
        }
        self.services.settings.set("window_state", state)
        try:
            self.services.settings.save()
        except OSError:
            log.warning("could not save the window state", exc_info=True)

    def restore_window_state(self) -> None:
        state = self.services.settings.get("window_state")
        if isinstance(state.get("geometry"), str):
            self.restoreGeometry(QByteArray.fromBase64(state["geometry"].encode()))
        if isinstance(state.get("tab"), int) and 0 <= state["tab"] < self.tabs.count():
            self.tabs.setCurrentIndex(state["tab"])
        saved = state.get("splitters") if isinstance(state.get("splitters"), dict) else {}
        for name, splitter in self._splitters().items():
            if splitter is not None and isinstance(saved.get(name), str):
                splitter.restoreState(QByteArray.fromBase64(saved[name].encode()))

    def _open_item(self, item: GalleryItem) -> None:
        """Double-click in the gallery: music opens in the Music tab's player, the rest in their app."""
        if self.text_panel.open_conversation(item):  # a conversation continues in the Text tab
            self.tabs.setCurrentWidget(self.text_panel)
            return
        if item.kind == "music":
            self.music_panel.load_item(item)
            self.tabs.setCurrentWidget(self.music_panel)
        else:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(item.path)))

    def reuse_item(self, item: GalleryItem) -> None:
        """Fill the tab that made ``item`` with its prompt and settings."""
        if self.text_panel.open_conversation(item):
            self.tabs.setCurrentWidget(self.text_panel)
            return
        panel = self.panels.get(item.kind)
        if panel is not None:
            panel.apply_request(item.record.request, item.record.parent)
            # The tab shows the item whose settings it now holds, not what it showed before.
            if item.kind == "music":
                self.music_panel.load_item(item)
            else:
                panel.show_output(item)
            self.tabs.setCurrentWidget(panel)

    def vary_item(self, item: GalleryItem) -> None:
        panel = self.panels.get(item.kind)
        if panel is not None and panel.vary_item(item):
            self.statusBar().showMessage("Making it again with a new seed…", 4000)

    def use_as_input(self, item: GalleryItem) -> None:
        """Start from ``item``: image-to-image, continuing the clip, or continuing the text."""
        if self.text_panel.open_conversation(item):
            self.tabs.setCurrentWidget(self.text_panel)
            return
        if item.kind == "image":
            self.image_panel.set_start_image(str(item.path), item.id)
        elif item.kind == "music":
            self.music_panel.load_item(item)
            self.music_panel.continue_loaded()
        else:
            from studio.gallery.export import text_body

            self.text_panel.continue_from_text(text_body(item.path))
        self.tabs.setCurrentWidget(self.panels[item.kind])

    def _send_prompt(self, kind: str, text: str) -> None:
        panel = self.panels.get(kind)
        if panel is not None:
            panel.set_prompt(text)
            self.tabs.setCurrentWidget(panel)

    def train_on(self, source: str, item_ids: list[str]) -> None:
        """The gallery's "Train on …": the Train tab, filled with those items."""
        self.train_panel.train_on(source, item_ids)
        self.tabs.setCurrentWidget(self.train_panel)

    def _trained(self) -> None:
        """A run installed a model: every picker lists it; the Train tab is marked if out of sight."""
        self.refresh_models()
        if self.tabs.currentWidget() is not self.train_panel:
            self.tabs.setTabText(self.tabs.indexOf(self.train_panel), "Train ●")
            self.statusBar().showMessage("Training finished: the new model is in the library", 8000)

    def use_trained(self, trained: dict[str, Any]) -> None:
        """ "Use it" after a run: the medium's tab with the new model (or LoRA) selected."""
        self.refresh_models()
        panel = use_trained(trained, self._specs, self.panels)
        if panel is not None:
            self.tabs.setCurrentWidget(panel)

    def shutdown(self) -> None:
        """Cancel running jobs and stop the worker; safe to call twice."""
        if self._shut_down:
            return
        self._shut_down = True
        self.save_window_state()
        self.music_panel.shutdown()
        self.train_panel.shutdown()
        self.gallery_panel.shutdown()
        self.bridge.detach()
        self.runner.close_cluster()
        self.services.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)


def first_geometry(available: QRect) -> QRect:
    """The window's first place on a screen of ``available`` size: most of a laptop screen (every
    tab's controls, progress and messages fit at 1280×800), a comfortable size on a large one,
    centred."""
    width = min(available.width(), max(min(1100, available.width()), round(available.width() * 0.92)), 1680)
    height = min(available.height(), max(min(700, available.height()), round(available.height() * 0.92)), 1050)
    rect = QRect(0, 0, width, height)
    rect.moveCenter(available.center())
    return rect


def _short(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _base64(data: QByteArray) -> str:
    return bytes(data.toBase64().data()).decode()

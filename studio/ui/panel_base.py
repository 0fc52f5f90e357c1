"""What every generation panel shares: its jobs (through the window's ``JobQueue``), the model's
capabilities (controls it does not use greyed out, with the reason), per-model defaults, reusing
saved settings, the run controls and errors with their details."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from PySide6.QtCore import QEvent, QObject, QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDoubleSpinBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLayout,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from studio.core.capabilities import FIELDS_OF_CONTROL, Control, ModelInfo
from studio.core.errors import InvalidRequest
from studio.core.events import EventKind, JobEvent
from studio.core.models import ModelSpec, starting_defaults
from studio.core.requests import MAX_SEED, Request, request_from_dict
from studio.ui.jobs import Job, JobQueue
from studio.ui.model_info_cache import ModelInfoCache
from studio.ui.widgets.controls import button
from studio.ui.widgets.job_progress import JobProgress
from studio.ui.widgets.model_picker import ModelPicker
from studio.ui.widgets.status_line import MessageTimeout

if TYPE_CHECKING:
    from studio.gallery.store import GalleryItem
    from studio.runtime.services import Services
    from studio.runtime.sweeps import SweepJobs

# The dynamic property that keeps a control's own tooltip while it shows why it is greyed out.
_OWN_TOOLTIP = "studio_own_tooltip"

SpinBox = QSpinBox | QDoubleSpinBox
# Request fields that name an input file: a reused request whose file is gone is reused without it.
_FILE_FIELDS = ("init_image", "audio_prompt", "melody")


def set_text(label: QLabel, text: str) -> None:
    """Set ``label``'s text only when it changes: each change asks the tab for a new layout."""
    if label.text() != text:
        label.setText(text)


def set_usable(widget: QWidget, usable: bool, reason: str = "", *, enabled: bool = True) -> None:
    """Enable ``widget`` when the model uses it (and ``enabled`` holds); when the model does not,
    grey it out with ``reason`` as its tooltip. Its own tooltip comes back once it is usable again."""
    own = widget.property(_OWN_TOOLTIP)
    if own is None:
        own = widget.toolTip()
        widget.setProperty(_OWN_TOOLTIP, own)
    widget.setEnabled(usable and enabled)
    widget.setToolTip(str(own) if usable else reason)


def apply_capabilities(
    info: ModelInfo | None,
    widgets: Mapping[Control, Iterable[QWidget]],
    *,
    also: Mapping[QWidget, bool] | None = None,
) -> set[Control]:
    """Grey out exactly the controls ``info``'s model does not use, each with the reason why;
    enable the others (those in ``also`` only when their own condition holds). ``None`` (a model
    not described yet) uses everything. Returns the controls greyed out."""
    also = also or {}
    unused: set[Control] = set()
    for control, group in widgets.items():
        usable = info is None or info.uses(control)
        reason = "" if info is None else info.why_unused(control)
        if not usable:
            unused.add(control)
        for widget in group:
            set_usable(widget, usable, reason, enabled=also.get(widget, True))
    return unused


class SettingsScroll(QScrollArea):
    """A tab's settings: scrolled down when the window is short, never sideways, so the controls
    keep their full width. That width is measured again whenever the controls' layout changes (a
    model's capabilities hide a row, an adapter row is added, the stylesheet's paddings apply: the
    window is built before the stylesheet goes on, ``studio.ui.launch``, and a theme chosen in the
    settings changes them)."""

    def fit_width(self) -> None:
        content = self.widget()
        if content is not None:
            self.setMinimumWidth(content.minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width() + 4)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        # QScrollArea filters its widget's events already (to follow its resizes); a layout request
        # is posted when the controls' layout changes, at most once per event-loop pass.
        handled = super().eventFilter(watched, event)
        if event.type() == QEvent.Type.LayoutRequest and watched is self.widget():
            self.fit_width()
        return handled


class ControlsColumn(QWidget):
    """A tab's left column. It asks for no more width than it needs, so a tab's splitter gives the
    rest to the output (the text, the picture, the waveform) when it first shares the width out;
    the user's own split is restored over it (``MainWindow.restore_window_state``)."""

    def sizeHint(self) -> QSize:
        return QSize(self.minimumSizeHint().width(), super().sizeHint().height())


class GenerationPanel(QWidget):
    """A tab that submits jobs of one kind and reacts to the events of its own jobs only.

    Subclasses build ``model_picker``, ``prompt``, ``hint`` and ``run_status`` and say which
    widgets each ``Control`` greys out (``capability_widgets``) and which spin box edits each
    numeric request field (``request_spins``); this class does the rest the same way for each.
    """

    kind: ClassVar[str] = ""
    what: ClassVar[str] = "output"  # one output, in words ("image", "piece")
    # A finished job's gallery items, for the gallery tab and notifications.
    items_saved = Signal(list)
    # The user wants this text as the prompt of another tab: (kind, text).
    prompt_for = Signal(str, str)

    model_picker: ModelPicker
    prompt: QPlainTextEdit
    hint: QLabel
    run_status: QLabel

    def __init__(self, services: Services, jobs: JobQueue, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.services = services
        self.jobs = jobs
        self._model_info: ModelInfo | None = None  # the current model's description, once the worker answered
        self._keep_settings_for = ""  # a model chosen by "Reuse settings": its defaults must not overwrite them
        self._error_detail = ("", "")
        self._message_timeout: MessageTimeout | None = None
        self._descriptions = ModelInfoCache(services.paths.cache)
        # Errors read as a sentence; the traceback waits behind this button, for a bug report.
        self.details_button = QPushButton("Details…")
        self.details_button.setAccessibleName("error details")
        self.details_button.setToolTip("What went wrong in full, to copy into a bug report")
        self.details_button.clicked.connect(self.show_error_details)
        self.details_button.setVisible(False)
        jobs.listen(self.kind, self._on_job_event)
        jobs.model_described.connect(self.show_model_info)

    # -- overridden by each panel ----------------------------------------------------

    def capability_widgets(self) -> dict[Control, list[QWidget]]:
        """The widgets each control of this kind greys out when the model does not use it."""
        return {}

    def conditions(self) -> dict[QWidget, bool]:
        """Widgets in ``capability_widgets`` that are enabled only when something else holds too."""
        return {}

    def request_spins(self) -> dict[str, SpinBox]:
        """The spin box editing each numeric request field, by field name."""
        return {}

    def handle_event(self, job: Job, event: JobEvent) -> None:
        pass

    def apply_model_info(self, info: ModelInfo | None, *, apply_defaults: bool) -> None:
        """Show what the model offers (sizes, schedulers…) beyond the greyed-out controls."""

    def set_request(self, request: Request, parent: str | None) -> None:
        """Put a saved request's prompt and settings in the controls (after ``apply_request``)."""
        raise NotImplementedError

    def submit_request(self, request: Request, parent: str | None = None) -> str | None:
        """Queue ``request`` as if the user had pressed Generate; the job id, or None if refused."""
        raise NotImplementedError

    def generate(self) -> None:
        raise NotImplementedError

    def set_prompt(self, text: str) -> None:  # overridden by panels with a prompt box
        pass

    def show_status(self, text: str) -> None:
        """A message about an action (reusing settings, a refused request): it goes after a while."""
        set_text(self.run_status, text)
        self.message_timeout().start()

    def update_controls(self) -> None:
        """Enable and disable the buttons after anything changed."""

    # -- jobs --------------------------------------------------------------------------

    def _on_job_event(self, job: Job, event: JobEvent) -> None:  # this tab's jobs only (JobQueue.listen)
        if event.kind is EventKind.STARTED and job.is_generation:
            self.clear_error()
        if event.is_terminal:
            # What was said while the job ran ("Writing…") ends with it; the panel says how it ended.
            self.message_timeout().stop()
            self.run_status.clear()
        self.handle_event(job, event)
        if event.kind in (EventKind.QUEUED, EventKind.STARTED) or event.is_terminal:
            # Every tab's buttons and hint follow its jobs' state ("1 more queued in this tab").
            self.update_controls()
        if event.is_terminal and event.kind is not EventKind.ERROR:
            self.message_timeout().start()  # an error stays until the next action; the rest fade

    def message_timeout(self) -> MessageTimeout:
        """What clears ``run_status`` a while after a finished job's or an action's message."""
        if self._message_timeout is None:
            self._message_timeout = MessageTimeout(self.run_status)
        return self._message_timeout

    def action_taken(self) -> None:
        """The artist did something new (a prompt edit, another model): an old message or error no
        longer speaks of it. A running job's own message stays."""
        if self.busy() or not self.run_status.text():
            return
        self.message_timeout().stop()
        self.run_status.clear()
        self.clear_error()

    def submit(self, request: Request, parent: str | None = None) -> Job:
        """Queue ``request`` for this tab."""
        return self.jobs.submit(self.kind, request, parent)

    def build_request(self) -> Request:
        """The request the tab's controls describe (each tab builds its own)."""
        raise NotImplementedError

    def open_sweep(self) -> SweepJobs | None:
        """Sweep… : choose axes over the current request, then queue a job per cell and the grid;
        what was queued (None when nothing was)."""
        from studio.runtime.sweeps import start_sweep
        from studio.ui.sweep_dialog import SweepDialog

        try:
            base = self.build_request()
        except InvalidRequest as exc:
            self.run_status.setText(str(exc))
            return None
        info = self.model_info
        unused = {
            name: why for control, why in (info.unused.items() if info else ()) for name in FIELDS_OF_CONTROL[control]
        }
        dialog = SweepDialog(base, self, unused=unused)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return None
        try:
            # Through the queue's runner: on a cluster when the settings say so.
            jobs = start_sweep(cast(Any, self.jobs.worker), self.services.store, base, dialog.axes())
        except InvalidRequest as exc:
            self.run_status.setText(str(exc))
            return None
        self.jobs.claim_sweep(self.kind, [(cell.request, job) for cell, job in jobs.cells], jobs.grids, base.kind)
        then = (", then the table" if base.kind == "text" else ", then the grid") if jobs.grids else ""
        self.run_status.setText(f"Sweep queued: {len(jobs.cells)} jobs{then}")
        self.show_waiting()
        self.update_controls()
        return jobs

    def cancel(self) -> None:
        """Cancel the running job and everything this tab queued."""
        self.jobs.cancel(self.kind)

    def busy(self) -> bool:
        return bool(self.jobs.pending(self.kind))

    def waiting(self) -> int:
        """This tab's jobs waiting behind the running one."""
        return len(self.jobs.queued(self.kind))

    # -- models and their capabilities ---------------------------------------------------

    def refresh_models(self, specs: list[ModelSpec], preferred: str = "") -> None:
        self.model_picker.set_models(specs, preferred)
        self.update_controls()

    def looking_for_models(self) -> None:
        """The window is finding the models (on a thread, after it showed): none to choose yet."""
        self.model_picker.set_searching()
        self.update_controls()

    def _model_changed(self, model: str) -> None:
        """A model was chosen: controls as for any model until the worker has described it."""
        self._model_info = None
        self.action_taken()
        if model != self._keep_settings_for:
            self._keep_settings_for = ""
        self.apply_model_info(None, apply_defaults=False)
        # A model described on an earlier launch shows as it was at once; the worker's answer
        # replaces it when it comes (nothing changes when it is the same).
        known = self._descriptions.get(model) if model else None
        if known is not None:
            self.show_model_info(known)
        if model:
            # From the event loop, not now: while the window is being built, describing the model
            # (transformers' config classes, imported on the side lane) would hold the interpreter
            # lock against building it.
            QTimer.singleShot(0, self, lambda: self._describe(model))
        self.update_controls()

    def _describe(self, model: str) -> None:
        """Ask the worker to describe ``model`` if it is still the one chosen and the worker still runs."""
        if model == self.model_picker.current_model() and getattr(self.services.worker, "alive", True):
            try:
                self.services.worker.describe_model(model)
            except RuntimeError:  # shut down in between (the window closed)
                pass

    def show_model_info(self, info: ModelInfo) -> None:
        """The worker described a model: when it is this tab's current one, grey out what it does not
        use, show what it offers and (unless "Reuse settings" chose it) apply its defaults."""
        if not info.ref or info.ref != self.model_picker.current_model():
            return  # another tab's model, or an answer about a model no longer chosen
        self._descriptions.put(info)
        if info == self._model_info:
            return  # as remembered from the last launch: the controls already show it
        keep = self._keep_settings_for == info.ref
        self._keep_settings_for = ""
        self._model_info = info
        self.apply_model_info(info, apply_defaults=not keep)
        if not keep:
            self.set_spin_values(self.model_defaults(info))
        self.update_controls()

    @property
    def model_info(self) -> ModelInfo | None:
        return self._model_info

    def uses(self, control: Control) -> bool:
        """Whether the current model uses ``control`` (every control until it is described)."""
        return self._model_info is None or self._model_info.uses(control)

    def why_unused(self, control: Control) -> str:
        return "" if self._model_info is None else self._model_info.why_unused(control)

    def used_value(self, control: Control, value: Any, default: Any) -> Any:
        """``value`` when the model uses ``control``, else the request's ``default`` (it is ignored)."""
        return value if self.uses(control) else default

    def runnable(self) -> bool:
        return self._model_info is None or self._model_info.runnable

    def apply_capabilities(self) -> set[Control]:
        """Grey out what the current model does not use (see ``apply_capabilities``)."""
        return apply_capabilities(self._model_info, self.capability_widgets(), also=self.conditions())

    def model_hint(self) -> str:
        """What the tabs say about the current model: its description's hint, else its card's."""
        if self._model_info is not None and self._model_info.hint:
            return self._model_info.hint
        return self.model_picker.current_hint()

    def update_hint(self, *, has_prompt: bool, ask: str, no_model: str) -> None:
        """The hint line: no model, a model that cannot run (and why), the queue, or the model's hint."""
        info = self._model_info
        if self.model_picker.searching:
            text = "Looking for models…"
        elif not self.model_picker.current_model():
            text = no_model
        elif info is not None and not info.runnable:
            text = f"{info.name or 'This model'} cannot run: {info.reason}"
        elif self.waiting() > 0:
            text = f"{self.waiting()} more queued in this tab"
        elif not has_prompt:
            text = " ".join([ask, self.model_hint()]).strip()
        else:
            text = self.model_hint()
        set_text(self.hint, text)

    # -- defaults and reusing settings -------------------------------------------------

    def model_defaults(self, info: ModelInfo | None = None) -> dict[str, float]:
        """What the current model starts with: the user's saved defaults (model manager), else what
        its description suggests (a distilled model's few steps)."""
        suggested = info.suggested_defaults if info is not None else {}
        saved = self.services.settings.get("model_defaults")
        return starting_defaults(saved, self.model_picker.current_model(), suggested)

    def set_spin_values(self, values: Mapping[str, Any]) -> None:
        """Set the spin boxes of the request fields named in ``values``."""
        for name, box in self.request_spins().items():
            value = values.get(name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if isinstance(box, QSpinBox):
                box.setValue(round(value))
            else:
                box.setValue(float(value))

    def spin_values(self) -> dict[str, Any]:
        """The request fields the spin boxes edit, by name."""
        return {name: box.value() for name, box in self.request_spins().items()}

    def apply_request(self, data: Mapping[str, Any], parent: str | None = None) -> bool:
        """Reuse settings: put a saved request (a record's ``request``) back in the controls. It is
        read by ``request_from_dict`` like any request; a setting that no longer holds (a starting
        image that is gone) is left out and said so. False when nothing could be reused."""
        request, dropped = self.reusable_request(data)
        if request is None:
            return False
        if request.model and request.model != self.model_picker.current_model():
            index = self.model_picker.findData(request.model)
            if index >= 0:
                self._keep_settings_for = request.model
                self.model_picker.setCurrentIndex(index)
        self.set_spin_values(dataclasses.asdict(request))
        self.set_request(request, parent)
        self.show_status(f"Reused the settings, except {', '.join(dropped)}." if dropped else "")
        self.update_controls()
        return True

    def reusable_request(self, data: Mapping[str, Any]) -> tuple[Request | None, list[str]]:
        """``data`` as a request of this tab's kind, and the fields left out because they no longer hold."""
        values = dict(data)
        values.setdefault("kind", self.kind)
        if values["kind"] != self.kind:
            self.show_status(f"These are the settings of a {values['kind']} job, not {self.kind}.")
            return None, []
        if not isinstance(values.get("model"), str) or not values["model"].strip():
            values["model"] = self.model_picker.current_model() or "unknown"
        dropped = []
        for name in _FILE_FIELDS:
            if values.get(name) and not (isinstance(values[name], str) and Path(values[name]).is_file()):
                values.pop(name)
                dropped.append(name)
        while True:
            try:
                return request_from_dict(values), dropped
            except InvalidRequest as exc:
                if exc.field in ("prompt", "model", "kind", "request") or exc.field not in values:
                    self.show_status(f"Cannot reuse these settings: {exc}")
                    return None, dropped
                values.pop(exc.field)  # out of range in this version: the default instead
                dropped.append(exc.field)

    def vary_item(self, item: GalleryItem) -> str | None:
        """Make ``item`` again with a new seed; the new item records it as its parent."""
        try:
            request = request_from_dict(item.record.request)
        except InvalidRequest as exc:
            self.show_status(f"Cannot make this again: {exc}")
            return None
        if request.kind != self.kind:
            return None
        changes: dict[str, Any] = {"seed": secrets.randbelow(MAX_SEED + 1)}
        if hasattr(request, "count"):
            changes["count"] = 1
        return self.submit_request(dataclasses.replace(request, **changes), parent=item.id)

    # -- the run controls the queueing tabs share ------------------------------------------

    def build_run_controls(self) -> QHBoxLayout:
        """Generate / Cancel, the progress bar, the hint and the status line that queueing tabs
        share; returns the row of buttons."""
        self.generate_button = button(
            "Generate", "generate", "Generate (Ctrl+Enter); press again to queue more", self.generate
        )
        self.generate_button.setDefault(True)
        self.cancel_button = button(
            "Cancel", "cancel", f"Cancel the running {self.what} and the queue (Esc)", self.cancel
        )
        self.progress = JobProgress("Step")
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.hint.setAccessibleName("hint")
        self.run_status = QLabel()
        self.run_status.setWordWrap(True)
        self.run_status.setAccessibleName("status")
        row = QHBoxLayout()
        row.addWidget(self.generate_button)
        row.addWidget(self.cancel_button)
        row.addStretch(1)
        return row

    def bring_into_view(self, widget: QWidget) -> None:
        """Scroll the settings so ``widget`` shows (an adapter row just added below the fold), once the
        layout has placed it."""
        scroll = getattr(self, "settings_scroll", None)
        if scroll is not None:
            QTimer.singleShot(0, self, lambda: scroll.ensureWidgetVisible(widget, 0, 40))

    def controls_column(self, content: QWidget, buttons: QLayout) -> QWidget:
        """The left column of a tab: ``content`` (prompt and settings) scrolls when the window is short;
        under it, never scrolled out of sight, the run buttons, the progress, the hint and the last
        message."""
        scroll = SettingsScroll()
        scroll.setWidget(content)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.fit_width()
        scroll.setAccessibleName("settings")
        self.settings_scroll = scroll
        column = ControlsColumn()
        layout = QVBoxLayout(column)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scroll, 1)
        footer = QVBoxLayout()
        footer.setContentsMargins(9, 4, 9, 6)
        footer.addLayout(buttons)
        if hasattr(self, "progress"):
            footer.addWidget(self.progress)
        for label in (self.hint, self.run_status):
            footer.addWidget(label)
        footer.addWidget(self.details_button)
        layout.addLayout(footer)
        self.footer = footer
        self.prompt.textChanged.connect(self.action_taken)
        return column

    def show_output(self, item: GalleryItem) -> None:
        """Show a saved output in this tab's own view (after "Reuse settings" from the gallery)."""

    def show_progress(self, event: JobEvent) -> None:
        """The progress bar of a queueing tab, from its jobs' events."""
        if event.kind is EventKind.STARTED:
            self.progress.waiting("Loading the model…")
        elif event.kind is EventKind.PROGRESS:
            self.progress.step(event.step, event.total)
        elif event.is_terminal or event.kind is EventKind.QUEUED:
            self.show_waiting()

    def show_waiting(self) -> None:
        if not hasattr(self, "progress"):  # the Text tab shows its stream, not steps
            return
        if self.jobs.running(self.kind) is not None:
            return
        if self.jobs.queued(self.kind):
            self.progress.waiting("Waiting for the worker…")
        else:
            self.progress.idle()

    # -- errors ------------------------------------------------------------------------

    def report_error(self, label: QLabel, job: Job) -> None:
        """Show an error as its readable message, with the details (traceback) one click away."""
        label.setText(f"Could not generate: {job.error}")
        self._error_detail = (job.error, job.detail)
        self.details_button.setVisible(bool(job.detail))

    def clear_error(self) -> None:
        self._error_detail = ("", "")
        self.details_button.setVisible(False)

    def show_error_details(self) -> QMessageBox:
        message, detail = self._error_detail
        box = QMessageBox(QMessageBox.Icon.Warning, "Could not generate", message, parent=self)
        box.setDetailedText(detail)
        box.open()
        return box

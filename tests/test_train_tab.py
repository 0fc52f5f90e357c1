"""The Train tab, offscreen: the data summary, the request its widgets build, a run's curve and
samples, cancel and Resume, the finished model's card and Use it, and the gallery's "Train on …".

The tab's half of the seam is tested against the worker's events as ``studio.core.training``
describes them (the worker's two training calls replaced by ones that record what was asked), so
these tests do not depend on which trainer is installed; ``test_a_short_text_fine_tune_end_to_end``
runs a real one through the real worker when the training job is there.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from helpers import show_active
from PySide6.QtCore import QRect
from PySide6.QtGui import QColor, QImage

from studio.core.events import EventKind, JobEvent
from studio.core.outputs import GeneratedOutput
from studio.core.provenance import ProvenanceRecord, new_item_id, utc_now_iso
from studio.core.requests import field_limit
from studio.core.training import TRAINING_FILE, DataSummary, TrainingFile, TrainRequest
from studio.ui.bridge import coalesce
from studio.ui.main_window import MainWindow, first_geometry
from studio.ui.widgets.data_summary_view import skew_warning
from studio.ui.widgets.loss_curve import LossCurve, nice_ticks, smooth


class Asked:
    """What the tab asked of the worker: summaries and runs, each with the id it was given."""

    def __init__(self) -> None:
        self.summaries: list[tuple[str, TrainRequest]] = []
        self.runs: list[tuple[str, TrainRequest]] = []
        self.cancelled: list[str] = []


@pytest.fixture
def asked(services, monkeypatch):
    record = Asked()

    def summarize(request):
        job_id = f"summary-{len(record.summaries) + 1}"
        record.summaries.append((job_id, request))
        return job_id

    def submit(request):
        job_id = f"run-{len(record.runs) + 1}"
        record.runs.append((job_id, request))
        return job_id

    real_cancel = services.worker.cancel

    def cancel(job_id):
        if job_id.startswith("run-"):
            record.cancelled.append(job_id)
            return True
        return real_cancel(job_id)

    monkeypatch.setattr(services.worker, "summarize_training", summarize)
    monkeypatch.setattr(services.worker, "submit_training", submit)
    monkeypatch.setattr(services.worker, "cancel", cancel)
    return record


@pytest.fixture
def library(models_root, tiny_base_lm):
    """A model folder with a small text model (a "full fine-tune" result) and a peft LoRA on it."""
    import tiny_adapters

    folder = models_root / "train-tab-library"
    lora = folder / "my-words-lora"
    if not lora.exists():
        tiny_adapters.build_tiny_text_lora(tiny_base_lm, lora, seed=2)
    return {"folder": folder, "lm": tiny_base_lm, "lora": lora}


@pytest.fixture
def window(qtbot, services, library, asked):
    services.settings.set("model_folders", [str(library["folder"]), str(library["lm"].parent)])
    main = MainWindow(services)
    qtbot.addWidget(main)
    main.setGeometry(first_geometry(QRect(0, 0, 1280, 800)))
    show_active(qtbot, main)
    main.tabs.setCurrentWidget(main.train_panel)
    yield main
    main.shutdown()


def _summary(folder) -> DataSummary:
    files = tuple(
        TrainingFile(str(folder / f"tune-{n}.abc"), f"{n:064x}", 1200 + n, "text", units=1200 + n) for n in range(5)
    )
    return DataSummary(
        medium="text",
        files=files,
        unreadable=((str(folder / "cover.png"), "a PNG in a text set"),),
        duplicates=((str(folder / "tune-0.abc"), str(folder / "copy-of-tune-0.abc")),),
        near_duplicates=((str(folder / "tune-1.abc"), str(folder / "tune-2.abc")),),
        caption_words=(("river", 40), ("night", 9), ("stone", 7)),
        notes=("2 texts are shorter than one sequence: they are padded.",),
        rights="my own work",
    )


def _answer_summary(window, asked, summary):
    job_id, _request = asked.summaries[-1]
    window.jobs.on_event(JobEvent(EventKind.DATA_SUMMARY, job_id, result=summary))


def _with_folder(window, qtbot, asked, folder):
    panel = window.train_panel
    panel.set_folder(str(folder))
    qtbot.waitUntil(lambda: bool(asked.summaries), timeout=5000)
    return panel


# -- the data summary --------------------------------------------------------------------------


def test_the_summary_shows_counts_duplicates_words_and_unreadable_files(window, qtbot, asked, tmp_path):
    panel = _with_folder(window, qtbot, asked, tmp_path)
    _job_id, request = asked.summaries[-1]
    assert request.data == (str(tmp_path),) and request.medium == "text"
    assert "Reading" in panel.summary_view.headline.text()  # until the answer comes
    _answer_summary(window, asked, _summary(tmp_path))
    view = panel.summary_view
    headline = view.headline.text()
    assert "<b>5 files</b> to learn from" in headline and "6.0 kB" in headline
    assert "1 exact duplicate" in headline and "1 left out" in headline and "data digest" in headline
    assert view.words.words[:2] == [("river", 40), ("night", 9)]
    assert "Skewed:</b> “river” is far more frequent" in view.skew.text() and view.skew.isVisibleTo(panel)
    details = view.details.toPlainText()
    assert "cover.png: a PNG in a text set" in details
    assert "tune-0.abc, copy-of-tune-0.abc" in details and "tune-1.abc, tune-2.abc" in details
    assert "padded" in details
    assert panel.files.list.count() == 6  # five to learn from, one greyed with why
    assert "a PNG in a text set" in panel.files.list.item(5).text()
    # An answer about a set no longer chosen is ignored.
    window.jobs.on_event(JobEvent(EventKind.DATA_SUMMARY, "summary-old", error="gone"))
    assert view.summary is not None
    # An error says why.
    panel.set_folder(str(tmp_path / "other"))
    qtbot.waitUntil(lambda: len(asked.summaries) == 2, timeout=5000)
    window.jobs.on_event(JobEvent(EventKind.DATA_SUMMARY, asked.summaries[-1][0], error="the folder is empty"))
    assert "the folder is empty" in view.headline.text()


def test_a_balanced_set_has_no_bias_warning_but_the_plain_note():
    assert skew_warning([("river", 10), ("hill", 8), ("rain", 7)], 12) == ""
    assert "far more frequent" in skew_warning([("woman", 30), ("hat", 4)], 20)


# -- the request ---------------------------------------------------------------------------------


def test_the_request_follows_the_widgets_and_their_declared_limits(window, qtbot, asked, tmp_path, library):
    panel = _with_folder(window, qtbot, asked, tmp_path)
    for box, name in ((panel.steps, "steps"), (panel.rank, "rank"), (panel.batch_size, "batch_size")):
        declared = field_limit(TrainRequest, name)
        assert (box.minimum(), box.maximum()) == (declared.low, declared.high)
    assert panel.steps.text() == "default"  # 0: the trainer's default for the base
    # The text starter is the default base, fully fine-tuned: rank and alpha greyed with the reason.
    assert "studio-starter-text" in panel.model_picker.currentText()
    assert panel.method.currentData() == "full"
    assert not panel.rank.isEnabled() and "rank and alpha are for a LoRA" in panel.rank.toolTip()
    assert not panel.resolution.isVisibleTo(panel) and panel.seq_len.isVisibleTo(panel)
    panel.name.setText("River words")
    panel.steps.setValue(40)
    panel.rank.setValue(64)  # greyed: not sent
    panel.prompt.setPlainText("The river\n\nAt night")
    panel.rights.setText("my own work")
    request = panel.build_request()
    assert request.name == "River words" and request.method == "full" and request.steps == 40
    assert request.rank == TrainRequest.rank and request.alpha == TrainRequest.alpha
    assert request.sample_prompts == ("The river", "At night") and request.rights == "my own work"
    assert request.base.endswith("studio-starter-text") and request.seed == 0
    assert request.resolution == 0 and request.trigger == "" and request.captions == ()
    # A LoRA over another text model: rank and alpha are sent.
    panel.model_picker.setCurrentIndex(panel.model_picker.findData(str(library["lm"])))
    assert panel.method.currentData() == "lora"  # the default for a model of the artist's own
    panel.rank.setValue(8)
    assert panel.rank.isEnabled()
    assert panel.build_request().rank == 8
    # Images: resolution, trigger and captions; full fine-tune offered only as a LoRA.
    panel.set_medium("image")
    assert panel.resolution.isVisibleTo(panel) and panel.trigger.isVisibleTo(panel)
    assert not panel.seq_len.isVisibleTo(panel)


def test_image_captions_edited_go_into_the_request(window, qtbot, asked, tmp_path):
    panel = window.train_panel
    panel.set_medium("image")
    panel.set_folder(str(tmp_path))
    qtbot.waitUntil(lambda: bool(asked.summaries), timeout=5000)
    files = (
        TrainingFile(str(tmp_path / "a.png"), "a" * 64, 100, "image", "a red fox", "txt", 64, 64),
        TrainingFile(str(tmp_path / "b.png"), "b" * 64, 100, "image", "a blue jay", "gallery", 64, 48),
    )
    _answer_summary(window, asked, DataSummary("image", files, caption_words=(("fox", 1), ("jay", 1))))
    editor = panel.files
    assert editor.caption.isVisibleTo(panel)
    assert editor.select(str(tmp_path / "b.png"))
    assert editor.caption.toPlainText() == "a blue jay" and "gallery prompt" in editor.caption_label.text()
    editor.caption.setPlainText("a blue jay on a wire, ink drawing")
    assert "typed here" in editor.caption_label.text()
    panel.trigger.setText("inky")
    if panel.model_picker.current_model():
        request = panel.build_request()
        assert request.captions == ((str(tmp_path / "b.png"), "a blue jay on a wire, ink drawing"),)
        assert request.trigger == "inky"
    assert editor.captions() == ((str(tmp_path / "b.png"), "a blue jay on a wire, ink drawing"),)
    editor.caption.setPlainText("a blue jay")  # back as it was: no edit
    assert editor.captions() == ()


# -- a run -------------------------------------------------------------------------------------------


def _progress(job_id, step, total, recent, **info):
    loss = recent[-1][1] if recent else None
    return JobEvent(
        EventKind.PROGRESS,
        job_id,
        step=step,
        total=total,
        info={"phase": "training", "loss": loss, "eta_s": 12.0, "elapsed_s": 1.0, "recent": recent, **info},
    )


def test_a_run_shows_the_curve_samples_and_cancel_offers_resume(window, qtbot, asked, tmp_path):
    panel = _with_folder(window, qtbot, asked, tmp_path)
    _answer_summary(window, asked, _summary(tmp_path))
    panel.name.setText("River words")
    panel.prompt.setPlainText("The river")
    assert panel.generate_button.isEnabled() and not panel.resume_button.isVisibleTo(panel)
    panel.generate()
    job_id, request = asked.runs[-1]
    assert request.name == "River words" and not request.resume and not request.estimate_only
    assert window.jobs.get(job_id).owner == "train" and panel.busy()
    assert panel.pages.currentWidget() is panel.run_page
    assert not panel.generate_button.isEnabled() and panel.cancel_button.isEnabled()
    on = window.jobs.on_event
    on(JobEvent(EventKind.STARTED, job_id, info={"kind": "train", "medium": "text", "name": "River words"}))
    # The bridge keeps the latest progress per frame: points come in overlapping ``recent`` windows.
    on(_progress(job_id, 3, 20, [[1, 3.0], [2, 2.6], [3, 2.4]], epoch=1))
    on(_progress(job_id, 6, 20, [[2, 2.6], [3, 2.4], [4, 2.0], [5, 1.1], [6, 1.6]], epoch=1))
    curve = panel.curve
    assert [step for step, _ in curve.points()] == [1, 2, 3, 4, 5, 6]
    assert curve.best() == (5, 1.1)
    assert "step 6 / 20" in panel.run_line.text() and "loss 1.6000" in panel.run_line.text()
    assert "12 s left" in panel.run_line.text() and "epoch 1" in panel.run_line.text()
    assert panel.progress.value() == 6 and panel.progress.maximum() == 20
    # Samples from the fixed prompts: a text, a picture, a tune.
    on(
        JobEvent(
            EventKind.PREVIEW,
            job_id,
            step=5,
            preview={
                "step": 5,
                "prompt": "The river",
                "medium": "text",
                "data": "The river ran under the stone bridge",
            },
        )
    )
    picture = np.zeros((32, 48, 3), dtype=np.uint8)
    picture[..., 2] = 220
    on(
        JobEvent(
            EventKind.PREVIEW,
            job_id,
            step=5,
            preview={"step": 5, "prompt": "a jay", "medium": "image", "data": picture},
        )
    )
    tune = (0.2 * np.sin(np.linspace(0, 400, 8000))).astype(np.float32)
    on(
        JobEvent(
            EventKind.PREVIEW,
            job_id,
            step=6,
            preview={"step": 6, "prompt": "a reel", "medium": "music", "data": (tune, 8000)},
        )
    )
    cards = panel.samples.cards
    assert [card.kind for card in cards] == ["music", "image", "text"]  # newest first
    assert cards[0].audio_path is not None and cards[0].audio_path.is_file()
    assert panel.samples.player.path == cards[0].audio_path
    assert "Samples · 3" in panel.samples.title.text()
    # Cancel: the checkpoint is kept and Resume continues it.
    panel.cancel()
    assert asked.cancelled == [job_id]
    on(JobEvent(EventKind.CANCELLED, job_id, info={"checkpoint": str(tmp_path / "checkpoint" / "step-6")}))
    assert "Cancelled at step 6" in panel.run_status.text() and "Resume continues" in panel.run_status.text()
    assert panel.resume_button.isVisibleTo(panel) and panel.resume_button.isEnabled()
    panel.resume()
    resumed_id, resumed = asked.runs[-1]
    assert resumed.resume and resumed.name == "River words" and resumed.data == request.data
    assert len(curve.points()) == 6  # the curve goes on from where it stopped
    on(JobEvent(EventKind.STARTED, resumed_id, info={"kind": "train"}))
    on(_progress(resumed_id, 7, 20, [[6, 1.6], [7, 1.4]]))
    assert [step for step, _ in curve.points()][-2:] == [6, 7]
    on(JobEvent(EventKind.ERROR, resumed_id, error="out of memory: try batch 1", info={"checkpoint": "ck"}))
    assert "out of memory" in panel.run_status.text() and panel.resume_button.isEnabled()
    assert not panel.busy() and not panel.generate_button.isEnabled()  # Resume it, or Start over


def test_a_run_stopped_in_an_earlier_session_can_be_resumed_or_started_over(window, qtbot, asked, tmp_path):
    from studio.runtime.training import run_folders

    panel = _with_folder(window, qtbot, asked, tmp_path)
    _answer_summary(window, asked, _summary(tmp_path))
    panel.name.setText("River words")
    assert panel.generate_button.isEnabled() and not panel.resume_button.isVisibleTo(panel)
    checkpoint = run_folders(window.services.worker.data_dir, "River words").checkpoint
    checkpoint.mkdir(parents=True)
    (checkpoint / "state.pt").write_bytes(b"weights")
    panel.name.setText("River words ")  # any edit looks again
    assert panel.resume_button.isEnabled() and panel.start_over_button.isVisibleTo(panel)
    assert not panel.generate_button.isEnabled()  # the job would refuse a new run of this name
    assert "stopped at a checkpoint" in panel.hint.text()
    panel.resume()
    _job_id, resumed = asked.runs[-1]
    assert resumed.resume and resumed.name == "River words" and resumed.data == (str(tmp_path),)
    window.jobs.on_event(JobEvent(EventKind.CANCELLED, _job_id, info={"checkpoint": str(checkpoint)}))
    panel.start_over()
    assert not checkpoint.exists() and panel.generate_button.isEnabled()
    assert not panel.resume_button.isVisibleTo(panel)


def test_samples_of_one_step_are_never_merged_by_the_bridge():
    def sample(n):
        return JobEvent(EventKind.PREVIEW, "run", step=4, preview={"step": 4, "prompt": f"p{n}", "data": "x"})

    events = [
        JobEvent(EventKind.PROGRESS, "run", step=3, total=9),
        sample(1),
        sample(2),
        JobEvent(EventKind.PROGRESS, "run", step=4, total=9),
    ]
    out = coalesce(events)
    assert [e.preview["prompt"] for e in out if e.kind is EventKind.PREVIEW] == ["p1", "p2"]
    texts = coalesce([JobEvent(EventKind.PREVIEW, "t", preview="a"), JobEvent(EventKind.PREVIEW, "t", preview="b")])
    assert [e.preview for e in texts] == ["ab"]  # text chunks still join


def test_loss_points_survive_a_progress_without_them_in_the_same_frame():
    points = {"loss": 1.0, "recent": [[29, 1.1], [30, 1.0]]}
    step_30 = JobEvent(EventKind.PROGRESS, "run", step=30, total=30, info=points)
    saving = JobEvent(EventKind.PROGRESS, "run", step=30, total=30, info={"phase": "saving"})
    (merged,) = coalesce([step_30, saving])
    assert merged.info["phase"] == "saving" and merged.info["recent"] == [[29, 1.1], [30, 1.0]]
    later = JobEvent(EventKind.PROGRESS, "run", step=31, total=40, info={"recent": [[30, 0.9], [31, 0.8]]})
    (merged,) = coalesce([step_30, later])
    assert merged.info["recent"] == [[29, 1.1], [30, 0.9], [31, 0.8]]  # the newer loss of a step wins


def test_estimate_reports_the_measured_time(window, qtbot, asked, tmp_path):
    panel = _with_folder(window, qtbot, asked, tmp_path)
    _answer_summary(window, asked, _summary(tmp_path))
    panel.estimate()
    job_id, request = asked.runs[-1]
    assert request.estimate_only
    assert panel.pages.currentWidget() is not panel.run_page  # an estimate is not the run
    on = window.jobs.on_event
    on(JobEvent(EventKind.STARTED, job_id, info={"kind": "train"}))
    on(JobEvent(EventKind.PROGRESS, job_id, step=3, total=400, info={"phase": "estimating", "eta_s": 254.0}))
    on(
        JobEvent(
            EventKind.FINISHED,
            job_id,
            result={"estimated_s": 254.0, "steps": 400, "seconds_per_step": 0.635, "device": "CPU (2 threads)"},
        )
    )
    text = panel.estimate_label.text()
    assert panel.estimate_label.isVisible() and panel.footer.indexOf(panel.estimate_label) >= 0  # in sight
    assert "About 4 min 14 s for 400 steps" in text and "first 3, 0.64 s a step" in text and "samples" in text
    assert "CPU (2 threads)" in text
    assert not panel.busy() and panel.generate_button.isEnabled()


def test_a_real_stable_diffusion_base_on_a_cpu_says_a_gpu_is_needed():
    from pathlib import Path

    from studio.core.models import ModelSpec
    from studio.ui.train_panel import needs_gpu

    sd = ModelSpec(
        "sd15",
        "sd15",
        "image",
        "sd",
        Path("/m/sd15"),
        "folder",
        True,
        format="diffusers-image",
        details={"size_bytes": 2 * 2**30},
    )
    tiny = ModelSpec(
        "tiny",
        "tiny",
        "image",
        "sd",
        Path("/m/tiny"),
        "folder",
        True,
        format="diffusers-image",
        details={"size_bytes": 2**20},
    )
    assert needs_gpu(sd, {"device": "cpu", "gpu_available": False})
    assert not needs_gpu(sd, {"device": "cuda", "gpu_available": True})
    assert not needs_gpu(tiny, {"device": "cpu"})


# -- done ---------------------------------------------------------------------------------------------


def _finish(window, job_id, path, kind, medium="text"):
    result = {
        "model": path.name,
        "kind": kind,
        "path": str(path),
        "data_digest": "d" * 64,
        "files": 5,
        "final_loss": 1.25,
        "best_loss": 1.1,
        "steps": 20,
        "duration_s": 75.0,
    }
    window.jobs.on_event(JobEvent(EventKind.STARTED, job_id, info={"kind": "train", "medium": medium}))
    window.jobs.on_event(JobEvent(EventKind.FINISHED, job_id, result=result))


def _write_card(folder, name, base_name, files):
    summary = DataSummary("text", files, rights="my own work")
    card = {
        "schema": "studio.training/1",
        "name": name,
        "medium": "text",
        "method": "full",
        "result_kind": "text",
        "base": {"id": base_name, "name": base_name, "sha256": "ab" * 32},
        "settings": {},
        "steps": 20,
        "final_loss": 1.25,
        "best_loss": 1.1,
        "duration_s": 75.0,
        "device": "CPU (2 threads)",
        "created_at": "2026-12-01T16:00:00Z",
        "app_version": "test",
        "data": summary.to_dict(),
    }
    (folder / TRAINING_FILE).write_text(json.dumps(card), encoding="utf-8")


def test_done_shows_the_card_and_use_it_selects_the_new_model(window, qtbot, asked, tmp_path, library):
    panel = _with_folder(window, qtbot, asked, tmp_path)
    summary = _summary(tmp_path)
    _answer_summary(window, asked, summary)
    panel.name.setText("River words")
    panel.generate()
    job_id, _ = asked.runs[-1]
    model = library["lm"]
    _write_card(model, "River words", "studio-starter-text", summary.files)
    try:
        refreshed = []
        panel.models_changed.connect(lambda: refreshed.append(True))
        _finish(window, job_id, model, "text")
        assert refreshed and panel.pages.currentWidget() is panel.result_page
        card = panel.card.toPlainText()
        for expected in (
            "River words",
            "studio-starter-text",
            "5 files",
            "d" * 64,
            "1.2500",
            "1.1000",
            "my own work",
            "1 min 15 s",
            "CPU (2 threads)",
        ):
            assert expected in card, expected
        assert "Trained River words in 1 min 15 s" in panel.run_status.text()
        assert panel.use_button.isEnabled()
        panel.use_result()
        text = window.text_panel
        assert window.tabs.currentWidget() is text
        assert text.model_picker.current_model() == str(model)
    finally:
        (model / TRAINING_FILE).unlink()


def test_use_it_on_a_text_lora_selects_it_over_its_base(window, qtbot, asked, tmp_path, library):
    panel = _with_folder(window, qtbot, asked, tmp_path)
    _answer_summary(window, asked, _summary(tmp_path))
    panel.model_picker.setCurrentIndex(panel.model_picker.findData(str(library["lm"])))
    panel.method.setCurrentIndex(panel.method.findData("lora"))
    panel.name.setText("my-words-lora")
    panel.generate()
    job_id, request = asked.runs[-1]
    assert request.method == "lora" and request.base == str(library["lm"])
    _finish(window, job_id, library["lora"], "lora")
    assert "LoRA" in panel.card.toPlainText()
    panel.use_result()
    text = window.text_panel
    assert window.tabs.currentWidget() is text
    assert text.model_picker.current_model() == str(library["lm"])
    assert text.lora_picker.current() == "my-words-lora"


def test_use_it_on_an_image_lora_adds_it_over_its_base_and_shows_it(qtbot, services, tiny_sd, tmp_path):
    """The new LoRA goes into the Image tab's adapters, and the settings scroll to it: the Adapters
    section sits below the fold of a laptop screen, where an added row was easy to miss."""
    import tiny_adapters

    lora_folder = tmp_path / "loras" / "red-stripes"
    tiny_adapters.build_tiny_lora_diffusers(tiny_sd, lora_folder, seed=3)
    services.settings.set("model_folders", [str(tiny_sd.parent), str(lora_folder.parent)])
    window = MainWindow(services)
    qtbot.addWidget(window)
    window.resize(1100, 560)
    show_active(qtbot, window)
    try:
        trained = {"model": "red-stripes", "kind": "lora", "path": str(lora_folder), "medium": "image",
                   "name": "red-stripes", "base": str(tiny_sd)}  # fmt: skip
        window.use_trained(trained)
        image = window.image_panel
        assert window.tabs.currentWidget() is image
        assert image.model_picker.current_model() == str(tiny_sd)
        rows = [row for row in image.adapter_list.rows if row.spec.name == "red-stripes"]
        assert len(rows) == 1
        scroll = image.settings_scroll
        row = rows[0]

        def row_in_sight() -> bool:
            top = row.mapTo(scroll.widget(), row.rect().topLeft()).y()
            shown = scroll.verticalScrollBar().value()
            return shown <= top and top + row.height() <= shown + scroll.viewport().height()

        qtbot.waitUntil(row_in_sight, timeout=5000)
        # The row sits below the first screenful of settings: it shows because the settings scrolled.
        assert row.mapTo(scroll.widget(), row.rect().topLeft()).y() > scroll.viewport().height()
        window.use_trained(trained)  # twice: still one row
        assert len([row for row in image.adapter_list.rows if row.spec.name == "red-stripes"]) == 1
    finally:
        window.shutdown()


# -- the gallery ---------------------------------------------------------------------------------------


def _save(services, kind, prompt):
    record = ProvenanceRecord(
        id=new_item_id(),
        kind=kind,
        created_at=utc_now_iso(),
        app={"name": "Studio", "version": "test"},
        model={"id": "tiny", "name": "tiny-model", "sha256": "ab" * 32},
        request={"kind": kind, "prompt": prompt, "seed": 7},
        runtime={"device": "cpu", "name": "CPU", "dtype": "float32", "seconds": 1.0},
    )
    if kind == "image":
        return services.store.save(GeneratedOutput("image", np.full((32, 32, 3), 90, dtype=np.uint8)), record)
    return services.store.save(GeneratedOutput("text", f"# {prompt}\n\nWords by the river."), record)


def test_gallery_train_on_selected_fills_the_tab(window, qtbot, asked):
    services = window.services
    texts = [_save(services, "text", f"river song {n}") for n in range(3)]
    picture = _save(services, "image", "a fox")
    gallery = window.gallery_panel
    window.tabs.setCurrentWidget(gallery)
    gallery.refresh()
    gallery.view.selectAll()
    menu = gallery.context_menu()
    labels = [action.text() for action in menu.actions()]
    assert "Train on selected (4)…" in labels and "Train on favourites…" in labels
    assert gallery.train_button.isEnabled() or gallery.current_item() is None
    gallery.train_on("selection")
    panel = window.train_panel
    assert window.tabs.currentWidget() is panel
    assert panel.current_medium() == "text" and panel.current_source() == "selection"
    assert set(panel.data_refs()) == {f"gallery:{item.id}" for item in texts}
    assert "3 texts from the gallery selection" in panel.source_label.text()
    assert "1 of another kind left out" in panel.source_label.text()
    qtbot.waitUntil(lambda: bool(asked.summaries), timeout=5000)
    assert set(asked.summaries[-1][1].data) == set(panel.data_refs())
    # Favourites and the current search too.
    services.store.annotate(picture.id, favourite=True)
    gallery.train_on("favourites")
    assert panel.current_medium() == "image" and panel.data_refs() == ("gallery:favourites",)
    assert "1 image from the gallery favourites" in panel.source_label.text()
    gallery.search.setText("river")
    gallery.train_on("search")
    assert panel.current_medium() == "text" and panel.data_refs() == ("gallery:search:river",)
    assert "3 texts from the gallery search matching “river”" in panel.source_label.text()


# -- the look --------------------------------------------------------------------------------------------


def test_the_tab_fits_a_laptop_screen_with_its_buttons_in_sight(window, qtbot):
    panel = window.train_panel
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())][3:] == ["Train", "Gallery"]
    assert window.tab_actions[3].shortcut().toString() == "Ctrl+4"
    qtbot.wait(50)
    for widget in (panel.generate_button, panel.estimate_button, panel.cancel_button, panel.hint, panel.progress):
        assert widget.isVisible() and widget.visibleRegion().boundingRect().size() == widget.size(), (
            widget.accessibleName()
        )
    assert panel.hint.text()  # says what to do first


def test_loss_curve_merges_points_by_step_and_paints_them(qtbot):
    curve = LossCurve()
    qtbot.addWidget(curve)
    curve.resize(400, 240)
    assert curve.merge([[1, 2.0], [2, 1.5]]) == 2
    assert curve.merge([[2, 1.5], [3, 1.8], [4, float("nan")]]) == 1  # step 2 known, NaN skipped
    curve.set_total(10)
    assert curve.points() == [(1, 2.0), (2, 1.5), (3, 1.8)] and curve.best() == (2, 1.5)
    line = [value for _step, value in curve.smoothed()]
    assert line[0] == 2.0 and 1.5 < min(line) < 1.6  # a short run's line follows its points, a little smoothed
    curve.merge([[step, 1.0 + (step % 2)] for step in range(4, 204)])
    zigzag = [value for step, value in curve.smoothed() if step > 100]
    assert max(zigzag) - min(zigzag) < 0.5  # a long run's line smooths the noise away (the points swing by 1)
    picture = QImage(400, 240, QImage.Format.Format_RGB32)
    picture.fill(QColor("black"))
    curve.render(picture)
    colours = {picture.pixelColor(x, y).name() for x in range(0, 400, 4) for y in range(0, 240, 4)}
    assert len(colours) > 4  # axes, ticks, points and the line were drawn
    assert nice_ticks(0, 10, 5) == [0, 2, 4, 6, 8, 10]
    assert smooth([1.0, 1.0, 1.0]) == pytest.approx([1.0, 1.0, 1.0])  # debiased: no pull toward 0
    curve.clear()
    assert curve.points() == [] and curve.best() is None


# -- with the real worker ------------------------------------------------------------------------------


_HAS_TRAINING_JOB = importlib.util.find_spec("studio.runtime.training") is not None
_HAS_TEXT_TRAINER = importlib.util.find_spec("studio.engines.training.text_trainer") is not None

_WRITING = (
    "The river ran under the stone bridge and the heron stood in the reeds until the lamps were lit.\n",
    "At night the wind came over the field and the water talked to the stones of the weir.\n",
    "Rain on the roof of the mill, the wheel turning slowly, the miller asleep by the fire.\n",
)


@pytest.mark.skipif(
    not (_HAS_TRAINING_JOB and _HAS_TEXT_TRAINER), reason="needs the training job and the text trainer (merged later)"
)
def test_a_short_text_fine_tune_end_to_end(qtbot, services, tiny_base_lm, tmp_path):
    """The real worker and text trainer on the tiny Llama: summary, a run with its curve and a
    sample, cancel, Resume to the end, the card, and Use it in the Text tab."""
    folder = tmp_path / "writing"
    folder.mkdir()
    for number, text in enumerate(_WRITING, start=1):
        (folder / f"walk-{number}.txt").write_text(text * 10, encoding="utf-8")
    (folder / "cover.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    services.settings.set("model_folders", [str(tiny_base_lm.parent)])
    window = MainWindow(services)
    qtbot.addWidget(window)
    show_active(qtbot, window)
    try:
        panel = window.train_panel
        window.tabs.setCurrentWidget(panel)
        panel.set_folder(str(folder))
        qtbot.waitUntil(lambda: panel.summary is not None, timeout=60000)
        summary = panel.summary
        assert len(summary.files) == 3 and any("cover.png" in path for path, _why in summary.unreadable)
        assert summary.caption_words and panel.files.list.count() == 4
        panel.model_picker.setCurrentIndex(panel.model_picker.findData(str(tiny_base_lm)))
        panel.method.setCurrentIndex(panel.method.findData("full"))
        panel.name.setText("River test")
        panel.rights.setText("my own work")
        panel.steps.setValue(30)
        panel.sample_every.setValue(15)
        panel.prompt.setPlainText("The river")
        panel.seq_len.setValue(64)
        panel.generate()
        qtbot.waitUntil(lambda: len(panel.curve.points()) >= 3, timeout=300000)
        panel.cancel()
        qtbot.waitUntil(lambda: not panel.busy(), timeout=120000)
        job = window.jobs.get(panel._run_job)
        if job.state.value == "cancelled":  # not already at its end
            assert panel.resume_button.isEnabled(), panel.run_status.text()
            stopped_at = len(panel.curve.points())
            panel.resume()
            qtbot.waitUntil(lambda: not panel.busy(), timeout=600000)
            assert len(panel.curve.points()) > stopped_at
        job = window.jobs.get(panel._run_job)
        assert job.state.value == "finished", job.error
        steps = [step for step, _loss in panel.curve.points()]
        assert steps == list(range(1, 31))  # every step, merged from the ``recent`` windows
        assert panel.samples.cards and panel.samples.cards[0].kind == "text"
        assert panel.pages.currentWidget() is panel.result_page
        card = panel.card.toPlainText()
        assert "River test" in card and summary.digest in card and "my own work" in card
        panel.use_result()
        assert window.tabs.currentWidget() is window.text_panel
        chosen = window.text_panel.model_picker.current_model()
        assert chosen and "river-test" in chosen
    finally:
        window.shutdown()

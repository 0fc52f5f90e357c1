"""The training job around a trainer: gathering, the data summary, the checks, staging and the install.

The trainer is ``tiny_trainer.TinyTextTrainer`` — a real torch loop over the tiny Llama — until the
real text trainer is merged; the image summary uses a Pillow inspector (the summary never trains).
"""

from __future__ import annotations

import errno
import hashlib
import json
import queue
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny_trainer import STATE, TinyTextTrainer, use_tiny_trainer, write_texts

from studio.core.events import EventKind
from studio.core.outputs import GeneratedOutput
from studio.core.provenance import ProvenanceRecord, new_item_id, utc_now_iso
from studio.core.training import TRAINING_FILE, DataSummary, TrainingCard, TrainRequest, data_digest
from studio.engines.training import registry
from studio.engines.training.base import InspectedFile, UnreadableData
from studio.runtime import training as runtime_training
from studio.runtime.training import build_summary, data_problem, run_folders


class PillowImageInspector:
    """The image side of a trainer, enough for the summary: what Pillow reads of each picture."""

    medium = "image"
    suffixes = frozenset({".png", ".jpg", ".jpeg", ".webp"})

    def inspect(self, path):
        try:
            with Image.open(path) as image:
                image.verify()
            with Image.open(path) as image:
                return InspectedFile(width=image.width, height=image.height)
        except Exception as exc:
            raise UnreadableData(f"not an image Pillow can read ({type(exc).__name__})") from exc

    def near_duplicates(self, files):
        return []

    def data_notes(self, files):
        sizes = {(f.width, f.height) for f in files}
        return [f"{len(sizes)} different sizes: bucketed by aspect ratio"] if len(sizes) > 1 else []

    def methods(self, base):
        raise AssertionError("the summary never asks for methods")


@pytest.fixture
def tiny_trainer():
    trainer = use_tiny_trainer()
    yield trainer
    registry._created.pop("text", None)


def _picture(path: Path, colour, size=(16, 16)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def _image_item(store, prompt, colour=(10, 200, 30)):
    record = ProvenanceRecord(
        id=new_item_id(),
        kind="image",
        created_at=utc_now_iso(),
        app={"name": "Studio", "version": "test"},
        model={"id": "tiny", "name": "tiny"},
        request={"kind": "image", "prompt": prompt, "seed": 1},
        runtime={"device": "cpu"},
    )
    pixels = np.zeros((16, 16, 3), dtype=np.uint8)
    pixels[:] = colour
    return store.save(GeneratedOutput("image", pixels, {"width": 16, "height": 16}), record)


def run_job(worker, request, *, cancel_at_step=None, timeout=180):
    """Submit a training request; every event of it, the last one terminal."""
    events: queue.Queue = queue.Queue()
    unsubscribe = worker.subscribe(events.put)
    try:
        job_id = worker.submit_training(request)
        seen = []
        while True:
            event = events.get(timeout=timeout)
            if event.job_id != job_id:
                continue
            seen.append(event)
            if (
                cancel_at_step is not None
                and event.kind is EventKind.PROGRESS
                and event.info.get("phase") == "training"
                and event.step >= cancel_at_step
            ):
                worker.cancel(job_id)
                cancel_at_step = None
            if event.is_terminal:
                return seen
    finally:
        unsubscribe()


def _text_request(folder, name="Harbour Voice", base="", **fields):
    return TrainRequest(medium="text", data=(str(folder),), name=name, base=base, **fields)


def _library(data_dir: Path) -> Path:
    return data_dir / "data" / "models" / "trained"


# -- the summary -----------------------------------------------------------------------


def test_image_summary_counts_duplicates_captions_words_unreadable_and_the_digest(tmp_path, services):
    inspector = PillowImageInspector()
    folder = tmp_path / "pictures"
    fox = _picture(folder / "fox.png", (200, 40, 10))
    (folder / "fox.txt").write_text("a red fox in the snow, painted", encoding="utf-8")
    shutil.copyfile(fox, folder / "sub" / "fox-copy.png") if (folder / "sub").mkdir() is None else None
    owl = _picture(folder / "owl.png", (20, 40, 200), size=(16, 24))
    (folder / "owl.txt").write_text("an owl at night", encoding="utf-8")  # the editor's caption wins over it
    _picture(folder / "plain.png", (90, 90, 90))  # no caption at all
    _picture(folder / ".hidden.png", (1, 2, 3))
    (folder / "notes.md").write_text("# my notes", encoding="utf-8")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    item = _image_item(services.store, "a green fox in the forest, painted")
    request = TrainRequest(
        medium="image",
        data=(str(folder), f"gallery:{item.id}", "gallery:no-such-item"),
        name="Fox Style",
        captions=((str(owl), "a snowy owl in the forest, painted"),),
        rights="my own paintings",
    )
    summary = build_summary(request, inspector, services.store)

    names = sorted(Path(f.path).name for f in summary.files)
    assert names == sorted(["fox.png", "owl.png", "plain.png", item.path.name])  # the copy, hidden, md, broken out
    by_name = {Path(f.path).name: f for f in summary.files}
    assert (by_name["fox.png"].caption, by_name["fox.png"].caption_source) == ("a red fox in the snow, painted", "txt")
    assert by_name["owl.png"].caption_source == "editor" and "snowy owl" in by_name["owl.png"].caption
    assert by_name[item.path.name].caption_source == "gallery" and by_name[item.path.name].gallery_id == item.id
    assert by_name["plain.png"].caption == "" and by_name["plain.png"].caption_source == ""
    assert (by_name["owl.png"].width, by_name["owl.png"].height) == (16, 24)
    for file in summary.files:
        assert file.sha256 == hashlib.sha256(Path(file.path).read_bytes()).hexdigest()
    assert summary.duplicates == ((str(fox.resolve()), str((folder / "sub" / "fox-copy.png").resolve())),)
    unreadable = dict(summary.unreadable)
    assert unreadable[str((folder / "notes.md").resolve())] == (
        "an MD file in an image set: this run learns from .jpeg, .jpg, .png, .webp files"
    )
    assert "not an image Pillow can read" in unreadable[str((folder / "broken.png").resolve())]
    assert "no gallery item" in unreadable["gallery:no-such-item"]
    words = dict(summary.caption_words)
    assert words["fox"] == 2 and words["painted"] == 3 and "the" not in words and "in" not in words
    assert "an owl at night" not in " ".join(f.caption for f in summary.files)
    assert summary.rights == "my own paintings"
    expected = hashlib.sha256("".join(f"{h}\n" for h in sorted({f.sha256 for f in summary.files})).encode()).hexdigest()
    assert summary.digest == data_digest(f.sha256 for f in summary.files) == expected
    assert any("exact duplicate" in note for note in summary.notes)
    assert any("different sizes" in note for note in summary.notes)
    assert DataSummary.from_dict(json.loads(json.dumps(summary.to_dict()))).digest == summary.digest
    assert data_problem(summary) == ""  # four images: the least a run takes


def test_favourites_and_a_search_of_the_gallery_are_references(services):
    inspector = PillowImageInspector()
    fox = _image_item(services.store, "a fox in the hills", (200, 10, 10))
    owl = _image_item(services.store, "an owl in the hills", (10, 10, 200))
    _image_item(services.store, "a boat at sea", (10, 200, 10))
    services.store.annotate(owl.id, favourite=True)
    favourites = build_summary(
        TrainRequest(medium="image", data=("gallery:favourites",), name="x"), inspector, services.store
    )
    assert [f.gallery_id for f in favourites.files] == [owl.id]
    found = build_summary(
        TrainRequest(medium="image", data=("gallery:search:hills",), name="x"), inspector, services.store
    )
    assert sorted(f.gallery_id for f in found.files) == sorted([fox.id, owl.id])
    assert all(f.caption_source == "gallery" for f in found.files)


def test_text_summary_flags_pictures_and_non_utf8_and_counts_words(tmp_path, tiny_trainer, services):
    folder = tmp_path / "writing"
    write_texts(folder, count=3)
    _picture(folder / "cover.png", (1, 1, 1))
    (folder / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    summary = build_summary(_text_request(folder), tiny_trainer, services.store)
    assert len(summary.files) == 3 and all(f.units > 0 for f in summary.files)
    reasons = dict(summary.unreadable)
    assert reasons[str((folder / "cover.png").resolve())].startswith("a PNG file in a text set")
    assert reasons[str((folder / "latin1.txt").resolve())].startswith("not UTF-8 text")
    assert dict(summary.caption_words)["harbour"] >= 3


def test_the_side_lane_answers_a_summary_and_says_why_data_is_too_little(tmp_path, tiny_trainer, services):
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "one.txt").write_text("Just one short line.", encoding="utf-8")
    events: queue.Queue = queue.Queue()
    services.worker.subscribe(events.put)
    job_id = services.worker.summarize_training(_text_request(folder))
    event = events.get(timeout=30)
    while event.job_id != job_id:
        event = events.get(timeout=30)
    assert event.kind is EventKind.DATA_SUMMARY and isinstance(event.result, DataSummary)
    assert any("too little to learn from" in note for note in event.result.notes)
    missing = services.worker.summarize_training(_text_request(tmp_path / "nowhere"))
    event = events.get(timeout=30)
    while event.job_id != missing:
        event = events.get(timeout=30)
    assert event.result is None and "does not exist" in event.error


# -- the job ------------------------------------------------------------------------


def test_a_run_installs_a_whole_model_with_its_card_and_the_worker_takes_the_next_job(
    tmp_path, tiny_trainer, tiny_base_lm, services, data_dir
):
    folder = tmp_path / "writing"
    write_texts(folder)
    shutil.copyfile(folder / "piece-00.txt", folder / "again.txt")
    events = run_job(services.worker, _text_request(folder, base=str(tiny_base_lm), steps=8, rights="my own words"))
    last = events[-1]
    assert last.kind is EventKind.FINISHED, last.error
    started = next(e for e in events if e.kind is EventKind.STARTED)
    assert started.info == {
        "kind": "train", "medium": "text", "name": "Harbour Voice", "base": "tiny-base-lm", "method": "lora"
    }  # fmt: skip
    phases = [e.info["phase"] for e in events if e.kind is EventKind.PROGRESS]
    assert phases[0] == "reading" and "training" in phases and "checkpoint" in phases and phases[-1] == "saving"
    losses = [e.info["loss"] for e in events if e.kind is EventKind.PROGRESS and "loss" in e.info]
    assert len(losses) == 8 and min(losses[-3:]) < losses[0]  # it learned
    result = last.result
    target = _library(data_dir) / "harbour-voice"
    assert result["model"] == "harbour-voice" and result["kind"] == "lora" and result["path"] == str(target)
    assert result["files"] == 5 and result["steps"] == 8
    assert sorted(p.name for p in target.iterdir()) == [
        "README.md", "adapter_config.json", "adapter_model.safetensors", TRAINING_FILE
    ]  # fmt: skip
    card = TrainingCard.from_dict(json.loads((target / TRAINING_FILE).read_text()))
    assert card.data.digest == result["data_digest"] and card.data.rights == "my own words"
    assert card.base["sha256"] and card.base["name"] == "tiny-base-lm"
    assert len(card.data.duplicates) == 1
    readme = (target / "README.md").read_text()
    assert readme.startswith("---\n") and f"studio_data_digest: {card.data.digest}" in readme
    for file in card.data.files:
        assert file.sha256 in readme
    assert not (data_dir / "data" / "training" / "harbour-voice").exists()  # the checkpoints of a done run go

    # The name is now the library's: a second run of it is refused before anything is touched.
    again = run_job(services.worker, _text_request(folder, base=str(tiny_base_lm), steps=2))
    assert again[-1].kind is EventKind.ERROR and "already" in again[-1].error
    assert again[-1].info["field"] == "name"
    assert TrainingCard.from_dict(json.loads((target / TRAINING_FILE).read_text())).steps == 8

    # The worker goes on: a plain generation job with the trained adapter on its base.
    from studio.core.requests import TextRequest

    gen = queue.Queue()
    services.worker.subscribe(gen.put)
    job = services.worker.submit(TextRequest(prompt="the harbour", model=str(tiny_base_lm), seed=3, max_tokens=4,
                                             lora="harbour-voice"))  # fmt: skip
    event = gen.get(timeout=60)
    while not (event.job_id == job and event.is_terminal):
        event = gen.get(timeout=60)
    assert event.kind is EventKind.FINISHED, event.error
    assert event.result[0].record.model["adapters"][0]["training"]["data_digest"] == card.data.digest


def test_full_fine_tune_is_a_model_folder_the_library_finds(tmp_path, tiny_trainer, tiny_base_lm, services, data_dir):
    folder = tmp_path / "writing"
    write_texts(folder)
    events = run_job(services.worker, _text_request(folder, name="Harbour Model", base=str(tiny_base_lm),
                                                    method="full", steps=4))  # fmt: skip
    assert events[-1].kind is EventKind.FINISHED, events[-1].error
    from studio.runtime.services import make_catalog

    spec = make_catalog(services.settings).resolve("harbour-model")
    assert spec.runnable and spec.kind == "text" and spec.name == "Harbour Model"
    assert spec.details["training"]["data_digest"] == events[-1].result["data_digest"]
    assert make_catalog(services.settings).resolve("Harbour Model").path == spec.path


@pytest.mark.parametrize(
    ("make_data", "message"),
    [
        (lambda root: root.mkdir() or root, "holds no files"),
        (lambda root: write_texts(root, count=1, repeat=1)[0].parent, "too little to learn from"),
        (lambda root: _picture(root / "a.png", (1, 1, 1)).parent, "a PNG file in a text set"),
    ],
    ids=["empty folder", "one short file", "only pictures"],
)
def test_too_little_or_mixed_up_data_is_refused_and_nothing_is_made(
    tmp_path, tiny_trainer, tiny_base_lm, services, data_dir, make_data, message
):
    folder = make_data(tmp_path / "data")
    events = run_job(services.worker, _text_request(folder, base=str(tiny_base_lm)))
    assert events[-1].kind is EventKind.ERROR and message in events[-1].error
    assert events[-1].info["field"] == "data"
    assert not _library(data_dir).exists() or not any(_library(data_dir).iterdir())
    assert not (data_dir / "data" / "training").exists() or not any((data_dir / "data" / "training").iterdir())


def test_a_base_the_trainer_cannot_train_is_refused(tmp_path, tiny_trainer, tiny_base_lm, services, data_dir):
    import tiny_gguf

    folder = tmp_path / "writing"
    write_texts(folder)
    melody = run_job(services.worker, _text_request(folder, base="studio-starter-melody"))
    assert melody[-1].kind is EventKind.ERROR and "music model" in melody[-1].error
    gguf = tiny_gguf.build_tiny_gguf(tmp_path / "gguf")
    quantised = run_job(services.worker, _text_request(folder, base=str(gguf)))
    assert quantised[-1].kind is EventKind.ERROR and "cannot be trained" in quantised[-1].error  # the trainer's words
    tiny_trainer.methods = lambda base: ("lora",)  # a trainer that only makes adapters of this base
    full = run_job(services.worker, _text_request(folder, base=str(tiny_base_lm), method="full"))
    assert full[-1].kind is EventKind.ERROR and "cannot be trained with full: it takes lora" in full[-1].error
    assert full[-1].info["field"] == "method"
    assert not _library(data_dir).exists()
    missing = run_job(services.worker, _text_request(folder, base="no-such-model"))
    assert missing[-1].kind is EventKind.ERROR and "no model called" in missing[-1].error


def test_disk_full_while_checkpointing_keeps_the_last_whole_checkpoint_and_no_model(
    tmp_path, tiny_trainer, tiny_base_lm, services, data_dir, monkeypatch
):
    folder = tmp_path / "writing"
    write_texts(folder)
    import torch

    real_save = torch.save
    calls = {"n": 0}

    def filling_save(obj, target, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= 2:  # the disk fills at the second checkpoint
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        return real_save(obj, target, *args, **kwargs)

    monkeypatch.setattr(torch, "save", filling_save)
    events = run_job(services.worker, _text_request(folder, base=str(tiny_base_lm), steps=12, checkpoint_every=4))
    last = events[-1]
    assert last.kind is EventKind.ERROR
    assert last.error.startswith("the disk is full: saving a checkpoint needs more space")
    assert "resume" in last.error and "Nothing was added to your library" in last.error
    run = run_folders(data_dir / "data", "Harbour Voice")
    assert last.info["checkpoint"] == str(run.checkpoint)
    assert torch.load(run.checkpoint / STATE, weights_only=False)["step"] == 4  # the whole one
    assert not run.staging.exists() and not (_library(data_dir) / "harbour-voice").exists()

    # Space again: Resume continues from step 4 and installs the model.
    monkeypatch.setattr(torch, "save", real_save)
    resumed = run_job(services.worker, _text_request(folder, base=str(tiny_base_lm), steps=12, checkpoint_every=4,
                                                     resume=True))  # fmt: skip
    assert resumed[-1].kind is EventKind.FINISHED, resumed[-1].error
    training_steps = [e.step for e in resumed if e.kind is EventKind.PROGRESS and e.info.get("phase") == "training"]
    assert training_steps[0] == 5
    assert (_library(data_dir) / "harbour-voice" / TRAINING_FILE).is_file()


def test_disk_full_while_saving_the_model_leaves_the_library_untouched(
    tmp_path, tiny_trainer, tiny_base_lm, services, data_dir, monkeypatch
):
    folder = tmp_path / "writing"
    write_texts(folder)
    monkeypatch.setenv("TINY_TRAINER_FAIL", "enospc-save")
    events = run_job(services.worker, _text_request(folder, base=str(tiny_base_lm), steps=3))
    assert events[-1].kind is EventKind.ERROR and "saving the model needs more space" in events[-1].error
    assert not (_library(data_dir) / "harbour-voice").exists()
    assert not run_folders(data_dir / "data", "Harbour Voice").staging.exists()


def test_a_crash_while_writing_the_card_leaves_no_half_model(tmp_path, tiny_trainer, tiny_base_lm, services,
                                                            data_dir, monkeypatch):  # fmt: skip
    folder = tmp_path / "writing"
    write_texts(folder)

    def broken_card(*_args, **_kwargs):
        raise ValueError("the card could not be built")

    monkeypatch.setattr(runtime_training, "model_card_markdown", broken_card)
    events = run_job(services.worker, _text_request(folder, base=str(tiny_base_lm), steps=2))
    assert events[-1].kind is EventKind.ERROR and events[-1].error.startswith("training failed: ValueError")
    assert events[-1].detail
    assert not _library(data_dir).exists() or not any(_library(data_dir).iterdir())


def test_out_of_memory_suggests_what_to_lower(tmp_path, tiny_trainer, tiny_base_lm, services, monkeypatch):
    folder = tmp_path / "writing"
    write_texts(folder)
    monkeypatch.setenv("TINY_TRAINER_FAIL", "oom@1")
    events = run_job(services.worker, _text_request(folder, base=str(tiny_base_lm), batch_size=4, seq_len=32))
    error = events[-1].error
    assert events[-1].kind is EventKind.ERROR and error.startswith("out of memory on ")
    assert "batch size 1 (now 4)" in error and "gradient checkpointing" in error
    assert "a shorter sequence length (now 32 tokens)" in error
    # The worker is fine: the next run works.
    monkeypatch.delenv("TINY_TRAINER_FAIL")
    assert run_job(services.worker, _text_request(folder, base=str(tiny_base_lm), steps=2))[-1].kind is (
        EventKind.FINISHED
    )


def test_cancel_keeps_the_checkpoint_and_resume_reaches_the_same_weights(
    tmp_path, tiny_trainer, tiny_base_lm, services, data_dir
):
    from safetensors.torch import load_file

    folder = tmp_path / "writing"
    write_texts(folder)
    whole = run_job(services.worker, _text_request(folder, name="Whole", base=str(tiny_base_lm), steps=10, seed=4))
    assert whole[-1].kind is EventKind.FINISHED
    stopped = run_job(
        services.worker, _text_request(folder, name="Halves", base=str(tiny_base_lm), steps=10, seed=4),
        cancel_at_step=3,
    )  # fmt: skip
    assert stopped[-1].kind is EventKind.CANCELLED
    checkpoint = Path(stopped[-1].info["checkpoint"])
    assert (checkpoint / STATE).is_file() and not (_library(data_dir) / "halves").exists()
    # Without --resume the stopped run's name is not silently started over.
    fresh = run_job(services.worker, _text_request(folder, name="Halves", base=str(tiny_base_lm), steps=10, seed=4))
    assert fresh[-1].kind is EventKind.ERROR and "resume it" in fresh[-1].error
    # Other files: Resume refuses (the checkpoint learned from the first set).
    (folder / "extra.txt").write_text("another piece about the harbour " * 20, encoding="utf-8")
    changed = run_job(services.worker, _text_request(folder, name="Halves", base=str(tiny_base_lm), steps=10, seed=4,
                                                     resume=True))  # fmt: skip
    assert changed[-1].kind is EventKind.ERROR and "the data changed since the checkpoint" in changed[-1].error
    (folder / "extra.txt").unlink()
    resumed = run_job(services.worker, _text_request(folder, name="Halves", base=str(tiny_base_lm), steps=10, seed=4,
                                                     resume=True))  # fmt: skip
    assert resumed[-1].kind is EventKind.FINISHED, resumed[-1].error
    a = load_file(_library(data_dir) / "whole" / "adapter_model.safetensors")
    b = load_file(_library(data_dir) / "halves" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert np.allclose(a[key].numpy(), b[key].numpy(), atol=1e-6), key


def test_resume_with_nothing_to_resume_and_estimate_only(tmp_path, tiny_trainer, tiny_base_lm, services, data_dir):
    folder = tmp_path / "writing"
    write_texts(folder)
    nothing = run_job(services.worker, _text_request(folder, base=str(tiny_base_lm), resume=True))
    assert nothing[-1].kind is EventKind.ERROR and "nothing to resume" in nothing[-1].error
    estimate = run_job(services.worker, _text_request(folder, base=str(tiny_base_lm), steps=50, estimate_only=True))
    assert estimate[-1].kind is EventKind.FINISHED, estimate[-1].error
    result = estimate[-1].result
    assert result["estimate_only"] and result["steps"] == 50 and result["estimated_s"] > 0
    assert not _library(data_dir).exists() or not any(_library(data_dir).iterdir())
    assert not (data_dir / "data" / "training" / "harbour-voice").exists()


def test_the_models_a_job_loaded_are_freed_before_training(tmp_path, tiny_trainer, tiny_base_lm, services):
    from studio.core.requests import TextRequest

    folder = tmp_path / "writing"
    write_texts(folder)
    done = queue.Queue()
    services.worker.subscribe(done.put)
    job = services.worker.submit(TextRequest(prompt="the", model=str(tiny_base_lm), seed=1, max_tokens=2))
    while not ((event := done.get(timeout=60)).job_id == job and event.is_terminal):
        pass
    assert services.worker.cache.keys()  # the text model is loaded
    seen = {}
    real_train = TinyTextTrainer.train

    def train(self, *args):
        seen["loaded"] = dict(services.worker.cache.keys())
        return real_train(self, *args)

    tiny_trainer.train = train.__get__(tiny_trainer)
    assert run_job(services.worker, _text_request(folder, base=str(tiny_base_lm), steps=2))[-1].kind is (
        EventKind.FINISHED
    )
    assert seen["loaded"] == {}

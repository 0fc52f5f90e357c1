"""Lineage: a trained model's card lists what it learned from, and every output made with it says so —
in its sidecar, its embedded record, its C2PA manifest (an ingredient carrying the data digest) and
what ``studio verify`` reads out."""

from __future__ import annotations

import hashlib
import json
import queue
from pathlib import Path

import c2pa
import pytest
import tiny_adapters
import tiny_models
from PIL import Image
from test_train_runtime import PillowImageInspector, run_job
from tiny_trainer import use_tiny_trainer, write_texts

from studio.core.events import EventKind
from studio.core.models import ModelSpec
from studio.core.requests import ImageRequest, MusicRequest, TextRequest
from studio.core.training import TRAINING_FILE, TrainingCard, TrainRequest, data_digest
from studio.engines.training import registry
from studio.gallery.credentials import TRAINING_INGREDIENT
from studio.gallery.metadata import read_embedded_record
from studio.gallery.verify import verify_file
from studio.runtime.training import build_summary, run_folders, write_card

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny_trainer():
    trainer = use_tiny_trainer()
    yield trainer
    registry._created.pop("text", None)


@pytest.fixture(scope="module")
def words_sd(tmp_path_factory):
    root = tmp_path_factory.mktemp("lineage-sd")
    return tiny_adapters.give_words_to_tiny_sd(tiny_models.build_tiny_sd_pipeline(root / "tiny-sd"))


def generate(worker, request):
    events: queue.Queue = queue.Queue()
    unsubscribe = worker.subscribe(events.put)
    try:
        job = worker.submit(request)
        while not ((event := events.get(timeout=120)).job_id == job and event.is_terminal):
            pass
    finally:
        unsubscribe()
    assert event.kind is EventKind.FINISHED, event.error
    return event.result[0]


def manifest_ingredients(path: Path) -> list[dict]:
    mime = {".png": "image/png", ".flac": "audio/flac", ".wav": "audio/wav"}[path.suffix]
    context = c2pa.Context.from_dict({"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}})
    with path.open("rb") as stream, c2pa.Reader(mime, stream, context=context) as reader:
        data = json.loads(reader.json())
    return data["manifests"][data["active_manifest"]].get("ingredients", [])


def test_the_card_lists_every_file_and_hash_and_the_digest_matches(tmp_path, tiny_trainer, tiny_base_lm, services,
                                                                  data_dir):  # fmt: skip
    folder = tmp_path / "writing"
    files = write_texts(folder, count=6)
    events = run_job(services.worker, TrainRequest(medium="text", data=(str(folder),), name="Harbour Voice",
                                                   base=str(tiny_base_lm), steps=3, rights="my own words"))  # fmt: skip
    assert events[-1].kind is EventKind.FINISHED, events[-1].error
    target = Path(events[-1].result["path"])
    stored = json.loads((target / TRAINING_FILE).read_text())
    listed = {Path(f["path"]).name: f["sha256"] for f in stored["data"]["files"]}
    actual = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    assert listed == actual
    assert stored["data_digest"] == data_digest(actual.values()) == events[-1].result["data_digest"]
    assert stored["lineage"] == {
        "name": "Harbour Voice", "trained_by": "user", "method": "lora", "base_sha256": stored["base"]["sha256"],
        "data_digest": stored["data_digest"], "files": 6, "rights": "my own words",
    }  # fmt: skip
    readme = (target / "README.md").read_text()
    for name, sha in actual.items():
        assert f"| {name} | `{sha}` |" in readme
    assert TrainingCard.from_dict(stored).data.digest == stored["data_digest"]


def test_text_made_with_a_trained_model_and_a_trained_lora_records_them_and_verify_says_so(
    tmp_path, tiny_trainer, tiny_base_lm, services, data_dir
):
    folder = tmp_path / "writing"
    write_texts(folder)
    full = run_job(services.worker, TrainRequest(medium="text", data=(str(folder),), name="Harbour Model",
                                                 base=str(tiny_base_lm), method="full", steps=3))  # fmt: skip
    assert full[-1].kind is EventKind.FINISHED, full[-1].error
    digest = full[-1].result["data_digest"]
    item = generate(services.worker, TextRequest(prompt="the harbour", model="harbour-model", seed=2, max_tokens=4))
    sidecar = json.loads(item.sidecar.read_text())
    assert sidecar["model"]["training"]["data_digest"] == digest
    assert sidecar["model"]["training"]["trained_by"] == "user" and sidecar["model"]["training"]["files"] == 5
    assert read_embedded_record(item.path)["model"]["training"]["data_digest"] == digest
    report = verify_file(item.path, services.store.credentials)
    assert report.ok, report.problems
    assert report.summary.startswith(
        f"a text made with Harbour Model, trained by you on 5 files (digest {digest[:12]}…)"
    )
    assert report.to_dict()["lineage"] == [f"Harbour Model, trained by you on 5 files (digest {digest[:12]}…)"]


def _installed_image_lora(paths, sd: Path, pictures: Path) -> tuple[Path, str]:
    """A LoRA of the tiny SD installed as a run installs one: its card built from a real summary."""
    request = TrainRequest(medium="image", data=(str(pictures),), name="Ink Wash", rights="my own drawings")
    summary = build_summary(request, PillowImageInspector(), None)
    run = run_folders(paths.data, request.name)
    run.staging.mkdir(parents=True)
    tiny_adapters.build_tiny_lora_diffusers(sd, run.staging, seed=1)
    card = TrainingCard(
        name=request.name, medium="image", method="lora", result_kind="lora",
        base={"id": "tiny-sd", "name": "tiny-sd", "sha256": "ab" * 32, "format": "diffusers-image", "family": "sd"},
        settings={"steps": 4, "rank": 2}, steps=4, final_loss=0.1, best_loss=0.09, duration_s=1.0, device="CPU",
        data=summary, created_at="2026-12-01T00:00:00Z", app_version="test",
    )  # fmt: skip
    base = ModelSpec("tiny-sd", "tiny-sd", "image", "sd", sd, "path", True, format="diffusers-image")
    write_card(run.staging, card, base)
    run.target.parent.mkdir(parents=True, exist_ok=True)
    run.staging.rename(run.target)
    return run.target, summary.digest


def test_an_image_made_with_a_trained_lora_carries_the_digest_in_its_c2pa_ingredient(
    tmp_path, services, paths, words_sd
):
    pictures = tmp_path / "drawings"
    pictures.mkdir()
    for index in range(4):
        Image.new("RGB", (16, 16), (60 * index, 20, 200 - 40 * index)).save(pictures / f"d{index}.png")
    _, digest = _installed_image_lora(paths, words_sd, pictures)
    item = generate(services.worker, ImageRequest(prompt="a harbour", model=str(words_sd), seed=1, steps=2,
                                                  width=32, height=32, loras=(("Ink Wash", 0.8),)))  # fmt: skip
    adapter = item.record.model["adapters"][0]
    assert adapter["training"]["data_digest"] == digest and adapter["training"]["rights"] == "my own drawings"
    assert json.loads(item.sidecar.read_text())["model"]["adapters"][0]["training"]["data_digest"] == digest
    assert read_embedded_record(item.path)["model"]["adapters"][0]["training"]["data_digest"] == digest
    ingredients = [i for i in manifest_ingredients(item.path) if i.get("relationship") == "inputTo"]
    lora = next(i for i in ingredients if i.get("metadata", {}).get(TRAINING_INGREDIENT))
    assert lora["metadata"][TRAINING_INGREDIENT]["data_digest"] == digest
    assert lora["metadata"][TRAINING_INGREDIENT]["files"] == 4 and "card" not in lora["metadata"][TRAINING_INGREDIENT]
    assert lora["instance_id"] == f"sha256:{adapter['sha256']}"
    assert f"trained by you on 4 files, data digest sha256:{digest}" == lora["description"]
    report = verify_file(item.path, services.store.credentials)
    assert report.ok, report.problems
    assert report.credentials.state == "trusted"
    assert any(entry.get("training", {}).get("data_digest") == digest for entry in report.credentials.inputs)
    assert f"the LoRA Ink Wash, trained by you on 4 files (digest {digest[:12]}…)" in report.summary
    assert report.summary.startswith(f"an image made with {words_sd.name} and the LoRA Ink Wash")


def test_the_melody_starter_says_what_it_learned_from_in_every_tune(services):
    card = json.loads((REPO / "resources" / "models" / "studio-starter-melody" / TRAINING_FILE).read_text())
    item = generate(services.worker, MusicRequest(prompt="a jig", model="studio-starter-melody", seed=3, duration=2.0))
    training = item.record.model["training"]
    assert training["trained_by"] == "Studio" and training["data_digest"] == card["data_digest"]
    assert training["files"] == len(card["data"]["files"]) > 1000
    model = next(i for i in manifest_ingredients(item.path) if i.get("title") == item.record.model["name"])
    assert model["metadata"][TRAINING_INGREDIENT]["data_digest"] == card["data_digest"]
    report = verify_file(item.path, services.store.credentials)
    assert f"trained by Studio on {training['files']} files (digest {card['data_digest'][:12]}…)" in report.summary


def test_the_starters_digests_are_their_training_sources(tmp_path):
    from studio.starter import data_digest as starter_digest

    for folder in ("studio-starter-melody", "studio-starter-text"):
        card = json.loads((REPO / "resources" / "models" / folder / TRAINING_FILE).read_text())
        report = json.loads((REPO / "resources" / "models" / folder / "training_report.json").read_text())
        assert report["data"]["data_digest"] == card["data_digest"] == card["lineage"]["data_digest"]
        assert card["data_digest"] == data_digest(f["sha256"] for f in card["data"]["files"])
        assert card["data_digest"] in (REPO / "resources" / "models" / folder / "README.md").read_text()
    music21 = pytest.importorskip("music21")
    files = starter_digest.melody_sources()
    assert {p.name for p, _ in files} and all(str(Path(music21.__file__).parent) in str(p) for p, _ in files)
    melody = json.loads((REPO / "resources" / "models" / "studio-starter-melody" / TRAINING_FILE).read_text())
    assert data_digest(sha for _, sha in files) == melody["data_digest"]


# -- end to end, with the real trainers -------------------------------------------------


def test_the_text_starter_fine_tuned_on_your_writing_says_so_in_what_it_writes(tmp_path, services):
    registry._created.pop("text", None)  # the real text trainer
    folder = tmp_path / "writing"
    write_texts(folder)
    events = run_job(services.worker, TrainRequest(medium="text", data=(str(folder),), name="My Voice", steps=2,
                                                   seq_len=64, rights="my own words"))  # fmt: skip
    assert events[-1].kind is EventKind.FINISHED, events[-1].error
    started = next(e for e in events if e.kind is EventKind.STARTED)
    assert started.info["base"] == "studio-starter-text" and started.info["method"] == "full"
    result = events[-1].result
    assert result["kind"] == "text" and result["model"] == "my-voice" and result["files"] == 5
    card = json.loads((Path(result["path"]) / TRAINING_FILE).read_text())
    assert card["base"]["sha256"] and card["base"]["name"] == "studio-starter-text"
    item = generate(services.worker, TextRequest(prompt="The harbour", model="My Voice", seed=4, max_tokens=8))
    assert item.record.model["training"]["data_digest"] == result["data_digest"]
    report = verify_file(item.path, services.store.credentials)
    assert report.ok and "made with My Voice, trained by you on 5 files" in report.summary


def test_the_melody_starter_fine_tuned_on_your_tunes_and_a_gallery_tune(tmp_path, services):
    import tiny_training_data

    folder = tmp_path / "tunes"
    tiny_training_data.write_waltzes(folder, count=6)
    jig = generate(services.worker, MusicRequest(prompt="a jig", model="studio-starter-melody", seed=2, duration=4.0))
    request = TrainRequest(medium="music", data=(str(folder), f"gallery:{jig.id}"), name="My Waltzes", steps=2,
                           seq_len=64, rights="my own tunes")  # fmt: skip
    events = run_job(services.worker, request)
    assert events[-1].kind is EventKind.FINISHED, events[-1].error
    summary = next(e.result for e in events if e.kind is EventKind.DATA_SUMMARY)
    assert len(summary.files) == 7 and any(f.gallery_id == jig.id for f in summary.files)
    assert next(f for f in summary.files if f.gallery_id == jig.id).caption == "a jig"  # its prompt
    result = events[-1].result
    tune = generate(services.worker, MusicRequest(prompt="a waltz", model="My Waltzes", seed=1, duration=2.0))
    assert tune.record.model["training"]["data_digest"] == result["data_digest"]
    model = next(i for i in manifest_ingredients(tune.path) if i.get("title") == "My Waltzes")
    assert model["metadata"][TRAINING_INGREDIENT]["data_digest"] == result["data_digest"]
    assert model["metadata"][TRAINING_INGREDIENT]["rights"] == "my own tunes"
    report = verify_file(tune.path, services.store.credentials)
    assert report.ok, report.problems
    assert f"music made with My Waltzes, trained by you on 7 files (digest {result['data_digest'][:12]}…)" in (
        report.summary
    )


def test_the_gallery_verify_says_what_the_model_learned_from(window):
    services, gallery = window.services, window.gallery_panel
    item = generate(services.worker, MusicRequest(prompt="a reel", model="studio-starter-melody", seed=5, duration=2.0))
    digest = item.record.model["training"]["data_digest"]
    gallery.refresh()
    gallery.select_item(item.id)
    said = gallery.verify_current()
    assert said.startswith("Unchanged since it was saved")
    assert f"Made with studio-starter-melody, trained by Studio on 1098 files (digest {digest[:12]}…)." in said
    assert said in gallery.status.text()

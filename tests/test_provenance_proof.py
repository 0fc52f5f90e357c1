"""Provenance you can prove: regenerate and compare across processes, no false alarms from verify on
anything Studio wrote or exported, and the AI-training permission read back by independent readers
(exiftool for XMP, the c2pa Reader)."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import c2pa
import numpy as np
import pytest
import torch
from helpers import EventLog
from PIL import Image

from studio.core.errors import ModelError
from studio.core.paths import resources_dir
from studio.core.requests import ImageRequest, MusicRequest, TextRequest
from studio.engines.fingerprint import WeightFingerprints
from studio.gallery.export import ExportOptions, export_items
from studio.gallery.verify import verify_file
from studio.runtime.regenerate import regenerate
from studio.runtime.services import make_catalog

STARTERS = resources_dir() / "models"
_DEFAULT_THREADS = torch.get_num_threads()  # read at collection, before any test changes it


@pytest.fixture(autouse=True)
def default_torch_threads():
    """The CLI process regenerating runs with torch's default thread count; float sums (MusicGen's
    above all) depend on it, and the starter training test sets its own. The record does not hold the
    thread count yet, so both sides use the default here."""
    torch.set_num_threads(_DEFAULT_THREADS)


def studio_cli(*args, data_dir):
    env = {**os.environ, "STUDIO_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "studio", *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


def _generate(services, request):
    log = EventLog(services.worker)
    job = services.worker.submit(request)
    event = log.wait_end(job, timeout=240)
    assert event.kind.value == "finished", event.error
    return event.result[0]


def _regenerate_in_another_process(item, data_dir, *extra):
    result = studio_cli("regenerate", item.id, "--json", *extra, data_dir=data_dir)
    assert result.stdout, result.stderr
    return json.loads(result.stdout.splitlines()[-1]), result.returncode


def _in_process(services, record, original, **kwargs):
    return regenerate(
        record,
        original,
        catalog=make_catalog(services.settings),
        fingerprints=WeightFingerprints(services.paths.cache / "weight-digests.json"),
        runtime_options={"device": "cpu"},
        store=services.store,
        **kwargs,
    )


# -- regenerate: identical across processes, every kind ----------------------------------------


@pytest.fixture
def init_image(tmp_path):
    path = tmp_path / "start.png"
    pixels = np.random.default_rng(4).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.mark.parametrize("case", ["text", "image", "img2img", "music"])
def test_tiny_models_regenerate_identically_in_another_process(
    case, services, data_dir, tiny_lm, tiny_sd, tiny_musicgen, init_image
):
    requests = {
        "text": lambda: TextRequest(prompt="a quiet dawn", model=str(tiny_lm), seed=11, max_tokens=16),
        "image": lambda: ImageRequest(prompt="a red fox", model=str(tiny_sd), width=64, height=64, steps=3, seed=5),
        "img2img": lambda: ImageRequest(
            prompt="a red fox",
            model=str(tiny_sd),
            width=64,
            height=64,
            steps=4,
            seed=6,
            init_image=str(init_image),
            strength=0.5,
        ),
        "music": lambda: MusicRequest(prompt="a slow air", model=str(tiny_musicgen), duration=0.5, seed=7),
    }
    item = _generate(services, requests[case]())
    report, code = _regenerate_in_another_process(item, data_dir)
    assert report["identical"] is True and code == 0, report
    assert report["original_sha256"] == report["regenerated_sha256"] == item.record.output["content_sha256"]
    assert report["differences"] == []
    assert services.store.count() == 1  # nothing saved without --keep


@pytest.mark.parametrize(
    ("request_of", "kind"),
    [
        (lambda m: TextRequest(prompt="In the beginning", model=m, seed=2, max_tokens=24), "text"),
        (lambda m: ImageRequest(prompt="a blue spiral", model=m, width=64, height=64, seed=3), "image"),
        (lambda m: MusicRequest(prompt="a jig in D", model=m, duration=4, seed=5), "music"),
    ],
)
def test_the_starters_regenerate_identically_and_keep_saves_a_child(services, data_dir, request_of, kind):
    folder = {"text": "studio-starter-text", "image": "studio-starter-patterns", "music": "studio-starter-melody"}
    item = _generate(services, request_of(str(STARTERS / folder[kind])))
    report, code = _regenerate_in_another_process(item, data_dir, "--keep")
    assert report["identical"] is True and code == 0, report
    services.store.close()
    kept = services.store.get(report["kept"]["id"])
    assert kept.record.parent == item.id and kept.record.derived_from["operation"]["action"] == "regenerate"
    assert kept.record.derived_from["sha256"] == item.record.output["sha256"]
    assert kept.record.output["content_sha256"] == item.record.output["content_sha256"]
    assert verify_file(kept.path, services.store.credentials).ok


def test_a_changed_library_version_or_device_is_named(services, tiny_lm):
    item = _generate(services, TextRequest(prompt="a quiet dawn", model=str(tiny_lm), seed=3, max_tokens=12))
    runtime = dict(item.record.runtime)
    runtime["versions"] = {**runtime["versions"], "torch": "1.0.0", "transformers": "4.0.0"}
    runtime["device"], runtime["dtype"] = "cuda", "bfloat16"
    simulated = dataclasses.replace(item.record, runtime=runtime)  # a copy of the record, as if made elsewhere
    report = _in_process(services, simulated, item.path)
    named = {d.what: (d.recorded, d.now) for d in report.differences}
    assert named["torch version"][0] == "1.0.0" and named["transformers version"][0] == "4.0.0"
    assert named["device"] == ("cuda", "cpu") and named["dtype"] == ("bfloat16", "float32")
    assert report.identical  # the CPU run still matches: the differences are reported, not blamed
    assert "torch version: 1.0.0 then" in report.explanation


def test_a_changed_model_is_named_and_explains_the_difference(services, tiny_lm, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "my-lm"
    shutil.copytree(tiny_lm, folder)
    item = _generate(services, TextRequest(prompt="the quick", model=str(folder), seed=4, max_tokens=24))
    weights = next(folder.glob("*.safetensors"))
    tensors = load_file(weights)
    tensors = {k: v + 0.5 * v.std() if v.is_floating_point() and v.numel() > 1 else v for k, v in tensors.items()}
    save_file(tensors, weights, metadata={"format": "pt"})
    report = _in_process(services, item.record, item.path)
    assert not report.identical
    assert report.differences[0].what == "model weights sha256"
    assert report.differences[0].recorded == item.record.model["sha256"][:16]
    assert report.explanation.startswith("different, because model weights sha256")
    shutil.rmtree(folder)  # gone: named, not guessed
    with pytest.raises(ModelError, match=r"my-lm .*not in the library any more"):
        _in_process(services, item.record, item.path)


def test_a_model_that_moved_is_found_by_its_hash(services, tiny_lm, tmp_path):
    first = tmp_path / "first" / "lm"
    shutil.copytree(tiny_lm, first)
    item = _generate(services, TextRequest(prompt="colour", model=str(first), seed=9, max_tokens=10))
    moved = tmp_path / "library"
    shutil.copytree(first, moved / "renamed-lm")
    shutil.rmtree(first)
    services.settings.set("model_folders", [str(moved)])
    report = _in_process(services, item.record, item.path)
    assert report.identical and report.model["path"] == str(moved / "renamed-lm")


# -- verify: no false alarms ---------------------------------------------------------------------


@pytest.fixture
def melody_item(services):
    return _generate(
        services, MusicRequest(prompt="a reel in G", model=str(STARTERS / "studio-starter-melody"), seed=2, duration=4)
    )


def test_the_midi_companion_verifies_against_its_own_hash(services, data_dir, melody_item):
    [midi] = melody_item.attachments
    result = studio_cli("verify", str(midi), data_dir=data_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MIDI file of item" in result.stdout and "CHANGED" not in result.stdout
    midi.write_bytes(midi.read_bytes() + b"\x00")
    assert studio_cli("verify", str(midi), data_dir=data_dir).returncode == 1


@pytest.mark.parametrize("suffix", [".mp3", ".wav", ".ogg", ".flac"])
def test_converted_music_exports_are_derivatives_that_verify(services, data_dir, melody_item, tmp_path, suffix):
    written = export_items([melody_item], ExportOptions(tmp_path / "out", suffix), services.store.credentials)
    audio = next(p for p in written if p.suffix == suffix)
    midi = next(p for p in written if p.suffix == ".mid")
    result = studio_cli("verify", str(audio), data_dir=data_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CHANGED" not in result.stdout
    if suffix != ".flac":
        assert f"an exported {suffix[1:].upper()} copy of {melody_item.id}" in result.stdout
    assert studio_cli("verify", str(midi), data_dir=data_dir).returncode == 0
    report = verify_file(audio, services.store.credentials)
    if suffix in (".wav", ".flac"):
        assert report.content_matches  # lossless: the very samples of the original
    if suffix in (".mp3", ".wav"):
        assert report.credentials.state == "trusted"
        assert report.credentials.actions[-1] == "c2pa.transcoded"


@pytest.mark.parametrize("suffix", [".jpg", ".webp"])
def test_converted_image_exports_carry_a_parent_ingredient_and_verify(services, data_dir, tmp_path, suffix):
    item = _generate(
        services,
        ImageRequest(
            prompt="a green wave", model=str(STARTERS / "studio-starter-patterns"), width=64, height=64, seed=1
        ),
    )
    [path] = export_items([item], ExportOptions(tmp_path / "out", suffix), services.store.credentials)
    result = studio_cli("verify", str(path), data_dir=data_dir)
    assert result.returncode == 0 and "exported" in result.stdout, result.stdout
    context = c2pa.Context.from_dict(
        {"trust": {"user_anchors": services.store.credentials.root_certificate.read_text()}}
    )
    with (
        open(path, "rb") as stream,
        c2pa.Reader(f"image/{'jpeg' if suffix == '.jpg' else 'webp'}", stream, context=context) as reader,
    ):
        assert reader.get_validation_state().lower() == "trusted"
        store = json.loads(reader.json())
    active = store["manifests"][store["active_manifest"]]
    [parent] = [i for i in active["ingredients"] if i["relationship"] == "parentOf"]
    assert parent["title"] == item.path.name and parent.get("active_manifest") in store["manifests"]
    actions = next(a for a in active["assertions"] if a["label"].startswith("c2pa.actions"))["data"]["actions"]
    assert [a["action"] for a in actions] == ["c2pa.opened", "c2pa.transcoded"]
    record = next(a for a in active["assertions"] if a["label"] == "org.studio.provenance")["data"]
    assert record["derived_from"] == {
        **record["derived_from"],
        "id": item.id,
        "sha256": item.record.output["sha256"],
    }
    assert record["derived_from"]["operation"]["format"] == suffix[1:]
    # Edited after export: now it is an alarm.
    with Image.open(path) as image:
        edited = image.convert("RGB")
    edited.putpixel((0, 0), (255, 0, 0))
    edited.save(path)
    assert studio_cli("verify", str(path), data_dir=data_dir).returncode == 1


def test_a_studio_png_resized_elsewhere_says_what_is_known(services, data_dir, tmp_path):
    from PIL import PngImagePlugin

    item = _generate(
        services,
        ImageRequest(prompt="a red sun", model=str(STARTERS / "studio-starter-patterns"), width=64, height=64, seed=2),
    )
    with Image.open(item.path) as image:
        text = dict(image.text)
        small = image.resize((32, 32))
    only_parameters = PngImagePlugin.PngInfo()  # a program that keeps the tEXt parameters only
    only_parameters.add_text("parameters", text["parameters"])
    small.save(tmp_path / "resized.png", pnginfo=only_parameters)
    result = studio_cli("verify", str(tmp_path / "resized.png"), data_dir=data_dir)
    assert "A1111" not in result.stdout.split("\n")[0]
    assert "Studio's parameters" in result.stdout and "credentials are gone" in result.stdout
    everything = PngImagePlugin.PngInfo()  # a program that copies every text chunk, but not the signature
    for key, value in text.items():
        everything.add_itxt(key, value)
    small.save(tmp_path / "resized-all.png", pnginfo=everything)
    report = verify_file(tmp_path / "resized-all.png", services.store.credentials)
    assert report.record.id == item.id and report.credentials.state == "none"
    assert report.content_matches is False and any(
        "resized since (32x32 now, 64x64 recorded)" in p for p in report.problems
    )


def test_a_stripped_export_is_not_an_alarm(services, tmp_path):
    item = _generate(
        services,
        ImageRequest(prompt="a red sun", model=str(STARTERS / "studio-starter-patterns"), width=64, height=64, seed=2),
    )
    [path] = export_items(
        [item], ExportOptions(tmp_path / "out", ".png", with_metadata=False), services.store.credentials
    )
    report = verify_file(path, services.store.credentials)
    assert report.ok and report.record is None and "stripped" in report.summary


# -- AI training -----------------------------------------------------------------------------------


def _exiftool(path):
    if shutil.which("exiftool") is None:
        if os.environ.get("CI"):  # .ci/run installs it: its absence there is a broken set-up
            pytest.fail("exiftool is missing on CI (apt-get install libimage-exiftool-perl)")
        pytest.skip("exiftool is not installed (apt-get install libimage-exiftool-perl)")
    out = subprocess.run(
        ["exiftool", "-json", "-G1", "-XMP:all", str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)[0]


def _training_assertion(path, mime, credentials):
    context = c2pa.Context.from_dict({"trust": {"user_anchors": credentials.root_certificate.read_text()}})
    with open(path, "rb") as stream, c2pa.Reader(mime, stream, context=context) as reader:
        state = reader.get_validation_state().lower()
        store = json.loads(reader.json())
    active = store["manifests"][store["active_manifest"]]
    found = [a["data"] for a in active["assertions"] if a["label"] == "cawg.training-mining"]
    return state, found


@pytest.mark.parametrize(
    ("choice", "dmi", "use"),
    [("not_allowed", "DMI-PROHIBITED-AIMLTRAINING", "notAllowed"), ("allowed", "DMI-ALLOWED", "allowed")],
)
def test_the_training_setting_round_trips_through_exiftool_and_c2pa(services, data_dir, choice, dmi, use):
    services.settings.set("ai_training", choice)
    item = _generate(
        services,
        ImageRequest(prompt="a red sun", model=str(STARTERS / "studio-starter-patterns"), width=64, height=64, seed=2),
    )
    assert item.record.ai_training == choice
    xmp = _exiftool(item.path)
    assert xmp["XMP-plus:DataMining"] == f"http://ns.useplus.org/ldf/vocab/{dmi}"  # read by exiftool
    state, [assertion] = _training_assertion(item.path, "image/png", services.store.credentials)
    assert state == "trusted"
    assert assertion["entries"]["cawg.ai_training"] == {"use": use}
    assert assertion["entries"]["cawg.ai_generative_training"] == {"use": use}
    result = studio_cli("verify", str(item.path), data_dir=data_dir)
    assert f"AI training: {choice.replace('_', ' ')}" in result.stdout and result.returncode == 0


def test_not_stated_writes_nothing_and_an_item_can_override_it(services, data_dir, melody_item):
    image = _generate(
        services,
        ImageRequest(prompt="a red sun", model=str(STARTERS / "studio-starter-patterns"), width=64, height=64, seed=2),
    )
    assert "XMP-plus:DataMining" not in _exiftool(image.path)
    assert _training_assertion(image.path, "image/png", services.store.credentials)[1] == []
    assert verify_file(image.path, services.store.credentials).ai_training == "not_stated"
    for item, mime in ((image, "image/png"), (melody_item, "audio/flac")):
        before = item.record.output["content_sha256"]
        result = studio_cli("gallery", "ai-training", item.id, "not_allowed", data_dir=data_dir)
        assert result.returncode == 0, result.stderr
        services.store.close()
        changed = services.store.get(item.id)
        assert changed.record.ai_training == "not_allowed" and changed.record.output["content_sha256"] == before
        assert changed.record.output["sha256"] != item.record.output["sha256"]
        state, [assertion] = _training_assertion(changed.path, mime, services.store.credentials)
        assert state == "trusted" and assertion["entries"]["cawg.ai_training"]["use"] == "notAllowed"
        report = verify_file(changed.path, services.store.credentials)
        assert report.ok and report.ai_training == "not_allowed" and report.content_matches
    assert "XMP-plus:DataMining" in _exiftool(services.store.get(image.id).path)
    # An export keeps the item's choice, and a stripped copy keeps it too (it is not private).
    out = export_items(
        [services.store.get(image.id)], ExportOptions(data_dir / "out", ".jpg"), services.store.credentials
    )
    assert verify_file(out[0], services.store.credentials).ai_training == "not_allowed"
    stripped = export_items(
        [services.store.get(image.id)], ExportOptions(data_dir / "stripped", ".png", with_metadata=False)
    )
    assert "DMI-PROHIBITED" in _exiftool(stripped[0])["XMP-plus:DataMining"]

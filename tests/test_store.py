import errno
import json
import os

import numpy as np
import pytest
import soundfile
from mutagen.flac import FLAC
from PIL import Image

from studio.core.errors import StudioError
from studio.core.outputs import GeneratedOutput
from studio.core.provenance import ProvenanceRecord, new_item_id, utc_now_iso
from studio.gallery.a1111 import format_parameters, parse_parameters
from studio.gallery.metadata import DIGITAL_SOURCE_TYPE, RECORD_KEY
from studio.gallery.store import GalleryStore
from studio.gallery.verify import verify_file


def _record(kind, prompt="a red fox at dawn", **request):
    return ProvenanceRecord(
        id=new_item_id(),
        kind=kind,
        created_at=utc_now_iso(),
        app={"name": "Studio", "version": "test"},
        model={"id": "tiny", "name": "tiny", "family": "test"},
        request={"kind": kind, "prompt": prompt, "seed": 1234, **request},
        runtime={"device": "cpu"},
    )


@pytest.fixture
def store(tmp_path):
    opened = GalleryStore(tmp_path / "gallery")
    yield opened
    opened.close()


def test_text_item_has_file_sidecar_and_index_row(store):
    item = store.save(GeneratedOutput("text", "Once upon a time"), _record("text"))
    assert item.path.read_text().endswith("Once upon a time\n")
    sidecar = json.loads(item.sidecar.read_text())
    assert sidecar["id"] == item.id and sidecar["request"]["seed"] == 1234
    assert sidecar["output"]["mime"] == "text/markdown" and len(sidecar["output"]["sha256"]) == 64
    assert [i.id for i in store.list()] == [item.id]
    assert not [p for p in item.path.parent.iterdir() if p.name.startswith(".")]


def test_png_carries_a1111_parameters_and_the_record(store):
    pixels = np.random.default_rng(0).integers(0, 255, (16, 24, 3), dtype=np.uint8)
    record = _record("image", negative="blurry, dark", steps=20, guidance=7.0)
    item = store.save(GeneratedOutput("image", pixels), record)
    with Image.open(item.path) as image:  # an independent reader
        assert image.size == (24, 16)
        assert np.array_equal(np.asarray(image), pixels)
        params = parse_parameters(image.text["parameters"])
        embedded = json.loads(image.text[RECORD_KEY])
        assert image.text["DigitalSourceType"] == DIGITAL_SOURCE_TYPE
    assert params["prompt"] == "a red fox at dawn"
    assert params["negative"] == "blurry, dark"
    assert params["settings"]["Seed"] == "1234" and params["settings"]["Size"] == "24x16"
    assert embedded["id"] == item.id


def test_flac_round_trips_through_soundfile_and_mutagen(store):
    sr = 32000
    samples = (0.5 * np.sin(np.linspace(0, 440 * 2 * np.pi, sr))).astype(np.float32)[:, None]
    item = store.save(GeneratedOutput("music", samples, {"sample_rate": sr}), _record("music"))
    data, rate = soundfile.read(item.path)
    assert rate == sr and len(data) == sr
    assert np.abs(data - samples[:, 0]).max() < 1e-3
    tags = FLAC(item.path)
    assert json.loads(tags[RECORD_KEY.upper()][0])["id"] == item.id
    assert tags["DIGITAL_SOURCE_TYPE"] == [DIGITAL_SOURCE_TYPE]
    assert item.record.output["duration_s"] == 1.0


def test_prompts_left_out_when_embedding_is_off(tmp_path):
    store = GalleryStore(tmp_path / "g", embed_prompts=lambda: False)
    item = store.save(GeneratedOutput("text", "secret words"), _record("text", prompt="my private idea"))
    text = item.path.read_text()
    assert "my private idea" not in text and DIGITAL_SOURCE_TYPE in text
    assert item.record.prompt == "my private idea"  # the sidecar, on this machine, keeps it
    store.close()


def test_search_finds_prompt_words_and_filters_by_kind(store):
    fox = store.save(GeneratedOutput("text", "x"), _record("text", prompt="a red fox"))
    store.save(GeneratedOutput("text", "y"), _record("text", prompt="a blue whale"))
    assert [i.id for i in store.list(search="fox")] == [fox.id]
    assert [i.id for i in store.list(search="FO")] == [fox.id]  # prefix, any case
    assert store.list(search='"; DROP TABLE items; --') == []
    assert store.list(kind="image") == []


def test_rebuild_restores_the_same_items_from_sidecars_and_files(store):
    saved = {store.save(GeneratedOutput("text", f"text {n}"), _record("text", prompt=f"p{n}")).id for n in range(3)}
    lone = store.save(GeneratedOutput("text", "no sidecar"), _record("text", prompt="lonely"))
    lone.sidecar.unlink()  # the embedded record still says where it came from
    (lone.path.parent / ".partial-abc.md").write_text("half")  # a save cut short
    store.index_path.unlink()
    fresh = GalleryStore(store.root)
    assert fresh.rebuild() == 4
    assert {i.id for i in fresh.list()} == saved | {lone.id}
    assert not (lone.path.parent / ".partial-abc.md").exists()
    fresh.close()


def test_full_disk_gives_a_clear_error_and_no_item(store, monkeypatch):
    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(StudioError, match="disk is full"):
        store.save(GeneratedOutput("text", "lost?"), _record("text"))
    monkeypatch.undo()
    assert store.list() == []
    assert not [p for p in store.root.rglob("*") if p.is_file() and p.suffix in (".md", ".json")]


def test_verify_reports_a_changed_file(store):
    item = store.save(GeneratedOutput("text", "original"), _record("text"))
    assert verify_file(item.path).ok
    with item.path.open("a") as handle:
        handle.write("edited")
    report = verify_file(item.path)
    assert report.tampered and not report.ok


def test_a1111_values_with_separators_are_quoted_and_parse_back():
    text = format_parameters("a cat", "", [("Steps", 20), ("Model", "v1, fine: tuned"), ("Empty", "")])
    assert "Empty" not in text
    assert parse_parameters(text)["settings"]["Model"] == "v1, fine: tuned"


def test_an_index_from_an_older_version_is_rebuilt_from_the_sidecars(store):
    item = store.save(GeneratedOutput("text", "kept"), _record("text"))
    store._db().execute("PRAGMA user_version = 1")
    store.close()
    reopened = GalleryStore(store.root)
    assert [i.id for i in reopened.list(search="fox")] == [item.id]
    reopened.close()

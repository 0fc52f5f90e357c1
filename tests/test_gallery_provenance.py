"""Every format, the content credentials, import and export, read back by independent readers."""

import json
import logging
import os
import stat

import c2pa
import numpy as np
import pytest
import soundfile
from mutagen.flac import FLAC
from mutagen.mp3 import MP3
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE
from PIL import Image, PngImagePlugin

from studio.core.errors import StudioError
from studio.core.outputs import GeneratedOutput
from studio.core.provenance import ProvenanceRecord, new_item_id, utc_now_iso
from studio.gallery.a1111 import format_parameters, parse_parameters
from studio.gallery.credentials import ContentCredentials
from studio.gallery.export import ExportOptions, export_items, render_name, safe_filename
from studio.gallery.metadata import DIGITAL_SOURCE_TYPE, read_embedded_record
from studio.gallery.store import GalleryStore
from studio.gallery.verify import verify_file
from studio.gallery.xmp import read_xmp_fields

RATE = 16000


def _record(kind, prompt="a red fox at dawn", **request):
    return ProvenanceRecord(
        id=new_item_id(),
        kind=kind,
        created_at=utc_now_iso(),
        app={"name": "Studio", "version": "test"},
        model={"id": "tiny", "name": "tiny-model", "family": "test", "sha256": "ab" * 32},
        request={"kind": kind, "prompt": prompt, "seed": 1234, **request},
        runtime={"device": "cpu"},
    )


@pytest.fixture
def credentials(tmp_path):
    return ContentCredentials(tmp_path / "credentials", "Studio", "test")


@pytest.fixture
def store(tmp_path, credentials):
    opened = GalleryStore(tmp_path / "gallery", sign_outputs=lambda: True, credentials=credentials)
    yield opened
    opened.close()


def _image(store, **request):
    pixels = np.random.default_rng(1).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    return store.save(GeneratedOutput("image", pixels), _record("image", width=32, height=24, **request))


def _music(store, seconds=0.5):
    t = np.arange(int(seconds * RATE)) / RATE
    samples = (0.4 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)[:, None]
    return store.save(GeneratedOutput("music", samples, {"sample_rate": RATE}), _record("music"))


def _made_from(record, item):
    """The very item (a same-format copy), or an exported derivative of it (another format)."""
    if record["id"] == item.id:
        return True
    derived = record.get("derived_from") or {}
    return (
        record["parent"] == item.id
        and derived.get("id") == item.id
        and derived.get("sha256") == item.record.output["sha256"]
    )


def _c2pa_state(path, credentials, mime):
    context = c2pa.Context.from_dict({"trust": {"user_anchors": credentials.root_certificate.read_text()}})
    with open(path, "rb") as stream, c2pa.Reader(mime, stream, context=context) as reader:
        return reader.get_validation_state().lower(), json.loads(reader.json())


def test_png_is_signed_last_and_keeps_every_marking(store, credentials):
    item = _image(store, steps=20, guidance=7.0)
    assert item.record.output["content_credentials"] == "c2pa"
    state, manifest = _c2pa_state(item.path, credentials, "image/png")  # c2pa's own reader
    assert state == "trusted"
    active = manifest["manifests"][manifest["active_manifest"]]
    actions = next(a for a in active["assertions"] if a["label"].startswith("c2pa.actions"))
    assert actions["data"]["actions"][0]["digitalSourceType"] == DIGITAL_SOURCE_TYPE
    assert next(a for a in active["assertions"] if a["label"] == "org.studio.provenance")["data"]["id"] == item.id
    assert active["ingredients"][0]["relationship"] == "inputTo"
    with Image.open(item.path) as image:  # Pillow still reads the plain metadata after signing
        xmp = read_xmp_fields(image.text["XML:com.adobe.xmp"])
        params = parse_parameters(image.text["parameters"])
    assert xmp["Iptc4xmpExt:DigitalSourceType"] == DIGITAL_SOURCE_TYPE
    assert (
        xmp["Iptc4xmpExt:AISystemUsed"] == "tiny-model"
        and xmp["Iptc4xmpExt:AIPromptInformation"] == "a red fox at dawn"
    )
    assert params["settings"]["Seed"] == "1234"
    report = verify_file(item.path, credentials)
    assert report.ok and report.credentials.state == "trusted"


def test_a_changed_pixel_is_caught_by_c2pa_and_by_the_hash(store, credentials, tmp_path):
    item = _image(store)
    data = bytearray(item.path.read_bytes())
    data[data.rfind(b"IDAT") + 10] ^= 0x01  # inside the compressed pixels
    item.path.write_bytes(bytes(data))
    report = verify_file(item.path, credentials)
    assert report.tampered and not report.ok
    assert report.hash_mismatch and report.credentials.state == "invalid"
    lone = tmp_path / "lone.png"  # without its sidecar, C2PA alone still catches it
    lone.write_bytes(bytes(data))
    assert verify_file(lone, credentials).credentials.state == "invalid"


def test_flac_is_signed_and_still_read_by_soundfile_and_mutagen(store, credentials):
    item = _music(store)
    assert _c2pa_state(item.path, credentials, "audio/flac")[0] == "trusted"
    data, rate = soundfile.read(item.path)
    assert rate == RATE and len(data) == RATE // 2
    tags = FLAC(item.path)
    assert json.loads(tags["STUDIO_PROVENANCE"][0])["id"] == item.id and tags["AI_SYSTEM"] == ["tiny-model"]
    assert verify_file(item.path, credentials).ok


def test_signing_failure_saves_the_output_without_credentials(store, monkeypatch, credentials):
    def broken(*_args, **_kwargs):
        raise RuntimeError("signer exploded")

    monkeypatch.setattr(credentials, "sign", broken)
    item = _image(store)
    assert item.path.is_file() and "signing failed" in item.record.output["content_credentials"]
    assert verify_file(item.path, credentials).ok  # the sidecar's hash still covers it
    assert not [p for p in item.path.parent.iterdir() if p.name.startswith(".partial")]


def test_the_signing_key_is_private_and_never_logged(store, credentials, caplog):
    with caplog.at_level(logging.DEBUG):
        _image(store)
    key = credentials.folder / "signer-key.pem"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(credentials.folder / "root-ca-key.pem").st_mode) == 0o600
    body = key.read_text().splitlines()[1]
    assert body not in caplog.text


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_image_exports_carry_xmp_exif_and_the_record(store, credentials, tmp_path, suffix):
    item = _image(store)
    [path] = export_items([item], ExportOptions(tmp_path / "out", suffix=suffix), credentials)
    assert _made_from(read_embedded_record(path), item)
    with Image.open(path) as image:
        image.load()
        packet = image.text.get("XML:com.adobe.xmp") if suffix == ".png" else image.info["xmp"]
        assert read_xmp_fields(packet)["Iptc4xmpExt:DigitalSourceType"] == DIGITAL_SOURCE_TYPE
        if suffix != ".png":
            comment = image.getexif().get_ifd(0x8769)[0x9286]
            assert comment.startswith(b"UNICODE\x00") and "a red fox" in comment[8:].decode("utf-16-be")
    state = verify_file(path, credentials).credentials.state
    assert state == "trusted"  # the very PNG copied, or the converted file signed again


@pytest.mark.parametrize(
    ("suffix", "reader"),
    [(".wav", WAVE), (".mp3", MP3), (".ogg", OggVorbis), (".flac", FLAC)],
)
def test_audio_exports_carry_tags_readable_by_mutagen(store, credentials, tmp_path, suffix, reader):
    item = _music(store)
    [path] = export_items([item], ExportOptions(tmp_path / "out", suffix=suffix), credentials)
    tags = reader(path).tags
    if suffix in (".wav", ".mp3"):
        assert _made_from(json.loads(tags["TXXX:STUDIO_PROVENANCE"].text[0]), item)
        assert tags["TXXX:DIGITAL_SOURCE_TYPE"].text[0] == DIGITAL_SOURCE_TYPE
    else:
        assert _made_from(json.loads(tags["STUDIO_PROVENANCE"][0]), item)
    assert _made_from(read_embedded_record(path), item)
    info = soundfile.info(path)
    assert info.samplerate == RATE and abs(info.duration - 0.5) < 0.06
    expected = "none" if suffix == ".ogg" else "trusted"
    assert verify_file(path, credentials).credentials.state == expected


def test_stripped_export_keeps_only_the_ai_marking(store, credentials, tmp_path):
    item = _image(store)
    [path] = export_items([item], ExportOptions(tmp_path / "out", suffix=".png", with_metadata=False), credentials)
    with Image.open(path) as image:
        assert "parameters" not in image.text and "studio_provenance" not in image.text
        fields = read_xmp_fields(image.text["XML:com.adobe.xmp"])
    assert fields["Iptc4xmpExt:DigitalSourceType"] == DIGITAL_SOURCE_TYPE and "studio:Record" not in fields
    assert "a red fox" not in path.read_bytes().decode("latin-1")
    assert verify_file(path, credentials).credentials.state == "none"


def test_text_exports_as_markdown_or_plain_text(store, tmp_path):
    item = store.save(GeneratedOutput("text", "Once upon a time"), _record("text"))
    md, txt = (export_items([item], ExportOptions(tmp_path / "out", suffix=s))[0] for s in (".md", ".txt"))
    assert read_embedded_record(md)["id"] == item.id
    assert txt.read_text() == "Once upon a time\n"


def test_export_names_are_safe_and_unique(store, tmp_path):
    item = _image(store)
    named = export_items([item, item], ExportOptions(tmp_path / "out", pattern="{prompt}/../{seed}"))
    assert [p.parent for p in named] == [tmp_path / "out"] * 2
    assert named[0].name == "a red fox at dawn_1234.png" and named[1].name == "a red fox at dawn_1234-2.png"
    assert render_name("{date}_{kind}", item) == f"{item.record.created_at[:10]}_image"


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        ("../../etc/passwd", "_etc_passwd"),
        ("a/b\\c:d*e?f", "a_b_c_d_e_f"),
        ("nul\x00byte", "nul_byte"),
        ("CON", "_CON"),
        ("com1.txt", "_com1.txt"),
        ("..", "untitled"),
        ("   trailing dots...  ", "trailing dots"),
    ],
)
def test_safe_filename(stem, expected):
    assert safe_filename(stem, ".png") == expected + ".png"


def test_safe_filename_fits_in_255_bytes():
    name = safe_filename("é" * 300, ".flac")
    assert len(name.encode("utf-8")) <= 255 and name.endswith(".flac")


def test_delete_moves_to_trash_and_undo_brings_it_back(store):
    item = _image(store)
    other = _image(store)
    assert store.delete([item.id]) == [item.id]
    assert [i.id for i in store.list()] == [other.id]
    trashed = store.trash()[0]
    assert trashed.path.parent.name == "trash" and trashed.path.is_file() and trashed.sidecar.is_file()
    assert not item.path.exists()
    assert store.restore([item.id]) == [item.id]
    assert {i.id for i in store.list()} == {item.id, other.id} and item.path.is_file()
    store.delete([other.id])
    assert store.rebuild() == 1 and [i.id for i in store.trash()] == [other.id]  # rebuild keeps the trash
    assert store.empty_trash() == 1
    assert store.trash() == [] and not list((store.root / "trash").iterdir())


def test_favourites_and_tags_are_searchable_and_survive_rebuild(store):
    item = _image(store)
    _image(store)
    store.annotate(item.id, favourite=True, tags=["sunset", "keep", "sunset"])
    assert [i.id for i in store.list(favourites=True)] == [item.id]
    assert [i.id for i in store.list(search="sunset")] == [item.id]
    store.index_path.unlink()
    fresh = GalleryStore(store.root)
    fresh.rebuild()
    again = fresh.get(item.id)
    assert again.favourite and again.tags == ("sunset", "keep")
    assert [i.id for i in fresh.list(model="tiny")] and fresh.list(model="other") == []
    fresh.close()


def test_import_keeps_our_record_and_reads_a1111_and_comfyui(store, tmp_path):
    item = _image(store)
    copy = tmp_path / "copy.png"
    copy.write_bytes(item.path.read_bytes())
    store.delete([item.id])
    store.empty_trash()
    imported = store.import_file(copy)
    assert imported.id == item.id and imported.record.output["sha256"] == item.record.output["sha256"]

    a1111 = tmp_path / "a1111.png"
    info = PngImagePlugin.PngInfo()
    info.add_text(
        "parameters", format_parameters("castle on a hill", "fog", [("Steps", 30), ("Seed", 77), ("Model", "v15")])
    )
    Image.new("RGB", (20, 10)).save(a1111, pnginfo=info)
    foreign = store.import_file(a1111)
    assert foreign.record.app["name"] == "A1111" and foreign.record.request["prompt"] == "castle on a hill"
    assert foreign.record.seed == 77 and foreign.record.model["name"] == "v15"
    assert foreign.record.output["width"] == 20

    comfy = tmp_path / "comfy.png"
    graph = {
        "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 20, "cfg": 7}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a robot"}},
    }
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(graph))
    Image.new("RGB", (8, 8)).save(comfy, pnginfo=info)
    report = verify_file(comfy)
    assert report.ok and report.foreign["tool"] == "ComfyUI" and report.foreign["prompt"] == "a robot"
    assert store.import_file(comfy).record.seed == 5
    assert len(store.list()) == 3


def test_import_refuses_what_it_cannot_read(store, tmp_path):
    script = tmp_path / "run.sh"
    script.write_text("echo hi")
    with pytest.raises(StudioError, match="cannot import"):
        store.import_file(script)


def test_a_file_without_any_provenance_fails_verify(tmp_path):
    plain = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(plain)
    report = verify_file(plain)
    assert not report.ok and "no provenance" in report.problems[0]


def test_verify_says_each_thing_once_and_names_where_the_record_came_from(store, credentials, tmp_path):
    """Issue 22 #11: an edited file's problems name what differs without repeating "changed after
    saving" (the summary and the window say that once); the record's source is a whole phrase."""
    from studio.gallery.verify import record_source_words

    item = _image(store)
    with Image.open(item.path) as image:
        edited = image.convert("RGB")
    edited.putpixel((0, 0), (255, 0, 0))
    edited.save(item.path)
    report = verify_file(item.path, credentials)
    assert report.tampered and report.problems
    joined = " ".join(report.problems).lower()
    assert "changed after saving" not in joined and "edited after saving" not in joined
    assert "differs from what its record states" in joined
    assert record_source_words("embedded") == "the record embedded in the file"
    assert record_source_words("sidecar").startswith("the sidecar file")
    assert record_source_words("content credentials").endswith("(C2PA)")

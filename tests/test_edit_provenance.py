"""An output made from a source is a derivative: its record, XMP and content credentials name the parent."""

import json

import c2pa
import numpy as np
from helpers import EventLog
from PIL import Image

from studio.core.requests import ImageRequest
from studio.gallery.verify import verify_file
from studio.gallery.xmp import COMPOSITE_SOURCE_TYPE, DIGITAL_SOURCE_TYPE, read_xmp_fields


def _run(services, request, parent=None):
    log = EventLog(services.worker)
    end = log.wait_end(services.worker.submit(request, parent=parent), 120)
    assert end.kind.value == "finished", end.error
    return end.result[0]


def _manifest(services, path):
    anchors = services.store.credentials.root_certificate.read_text()
    context = c2pa.Context.from_dict({"trust": {"user_anchors": anchors}})
    with open(path, "rb") as stream, c2pa.Reader("image/png", stream, context=context) as reader:
        data = json.loads(reader.json())
    return data["manifests"][data["active_manifest"]]


def _actions(manifest):
    return next(a for a in manifest["assertions"] if a["label"].startswith("c2pa.actions"))["data"]["actions"]


def test_an_edit_of_a_gallery_item_names_it_in_the_record_and_the_credentials(services, tiny_sd):
    first = _run(services, ImageRequest(prompt="a fox", model=str(tiny_sd), width=32, height=32, steps=2, seed=1))
    edit = _run(
        services,
        ImageRequest(
            prompt="a red fox", model=str(tiny_sd), width=32, height=32, steps=2, seed=2, init_image=str(first.path)
        ),
    )
    derived = edit.record.derived_from
    assert derived["id"] == first.id and edit.record.parent == first.id
    assert derived["sha256"] == first.record.output["sha256"] and derived["generated"] is True
    assert derived["operation"] == {"action": "c2pa.edited", "task": "image-to-image"}
    manifest = _manifest(services, edit.path)
    actions = _actions(manifest)
    assert [a["action"] for a in actions] == ["c2pa.opened", "c2pa.edited"]
    assert actions[1]["digitalSourceType"] == DIGITAL_SOURCE_TYPE
    relationships = {i["relationship"] for i in manifest["ingredients"]}
    assert relationships == {"parentOf", "inputTo"}  # the parent (its manifest along) and the model
    parent = next(i for i in manifest["ingredients"] if i["relationship"] == "parentOf")
    assert parent["title"] == first.path.name and parent.get("active_manifest")
    report = verify_file(edit.path, services.store.credentials)
    assert report.ok and "image-to-image" in report.summary and first.id in report.summary


def test_a_copy_dragged_in_from_elsewhere_is_still_its_gallery_item(services, tiny_sd, tmp_path):
    first = _run(services, ImageRequest(prompt="a fox", model=str(tiny_sd), width=32, height=32, steps=2, seed=1))
    copy = tmp_path / "copy.png"
    copy.write_bytes(first.path.read_bytes())
    edit = _run(
        services,
        ImageRequest(prompt="b", model=str(tiny_sd), width=32, height=32, steps=2, seed=2, init_image=str(copy)),
    )
    assert edit.record.derived_from["id"] == first.id


def test_an_edit_of_a_photo_is_marked_a_composite(services, tiny_sd, tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(photo)
    edit = _run(
        services,
        ImageRequest(prompt="b", model=str(tiny_sd), width=32, height=32, steps=2, seed=2, init_image=str(photo)),
    )
    derived = edit.record.derived_from
    assert "id" not in derived and derived["generated"] is False and derived["file"] == "photo.png"
    assert edit.record.parent is None
    with Image.open(edit.path) as image:
        assert image.text["DigitalSourceType"] == COMPOSITE_SOURCE_TYPE
        xmp = read_xmp_fields(image.text["XML:com.adobe.xmp"])
    assert xmp["Iptc4xmpExt:DigitalSourceType"] == COMPOSITE_SOURCE_TYPE
    manifest = _manifest(services, edit.path)
    assert _actions(manifest)[1]["digitalSourceType"] == COMPOSITE_SOURCE_TYPE


def test_a_plain_generation_is_no_derivative(services, tiny_sd):
    item = _run(services, ImageRequest(prompt="a fox", model=str(tiny_sd), width=32, height=32, steps=2, seed=1))
    assert item.record.derived_from is None

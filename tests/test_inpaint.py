"""Inpaint and outpaint: the mask's pixel work, the tiny Stable Diffusion and the pattern painter through
the worker, the records with their companion mask and C2PA ingredient, and the bad inputs."""

import json
from pathlib import Path

import c2pa
import numpy as np
import pytest
from helpers import EventLog
from PIL import Image

from studio.core.errors import InvalidRequest
from studio.core.requests import ImageRequest, request_from_dict
from studio.engines import inpaint

PATTERNS = str(Path(__file__).resolve().parents[1] / "resources" / "models" / "studio-starter-patterns")


def _noise(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _save(array, path):
    Image.fromarray(array).save(path)
    return str(path)


def _box_mask(height, width, box):
    left, top, right, bottom = box
    mask = np.zeros((height, width), np.uint8)
    mask[top:bottom, left:right] = 255
    return mask


def _far_from(box, shape, band):
    """Pixels farther than ``band`` from the box (a square reach, as the mask grows)."""
    left, top, right, bottom = box
    far = np.ones(shape, dtype=bool)
    far[max(0, top - band) : bottom + band, max(0, left - band) : right + band] = False
    return far


def _run(services, request, parent=None):
    log = EventLog(services.worker)
    job = services.worker.submit(request, parent=parent)
    end = log.wait_end(job, 180)
    return end, log.of(job)


# -- the pixel work ----------------------------------------------------------------------


@pytest.mark.parametrize("radius", [0, 3, 8])
def test_pixels_beyond_the_blur_band_are_the_sources_exactly(radius):
    source, painted = _noise(60, 70, 1), _noise(60, 70, 2)
    box = (20, 15, 45, 40)
    mask = _box_mask(60, 70, box).astype(np.float32) / 255
    weights = inpaint.feather(mask, radius)
    out = inpaint.composite(source, painted, weights)
    far = _far_from(box, (60, 70), inpaint.blur_band(radius))
    assert np.array_equal(out[far], source[far])
    inside = np.zeros((60, 70), bool)
    inside[15 + radius * 3 : 40 - radius * 3, 20 + radius * 3 : 45 - radius * 3] = True
    assert np.array_equal(out[inside], painted[inside])  # the mask's middle is all new paint


def test_a_mask_of_another_size_is_scaled_with_a_note(tmp_path):
    path = _save(_box_mask(30, 40, (10, 10, 20, 20)), tmp_path / "m.png")
    mask, notes = inpaint.read_mask(path, 80, 60)
    assert mask.shape == (60, 80) and mask[30, 30] == 1 and mask[0, 0] == 0
    assert notes and "40×30" in notes[0] and "80×60" in notes[0]


def test_a_transparent_hole_is_the_mask(tmp_path):
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = 200, 255
    rgba[5:10, 5:10, 3] = 0  # erased in a paint program: repaint here
    Image.fromarray(rgba, "RGBA").save(tmp_path / "hole.png")
    mask, _ = inpaint.read_mask(str(tmp_path / "hole.png"), 20, 20)
    assert mask[7, 7] == 1 and mask[0, 0] == 0 and mask.sum() == 25
    assert inpaint.mask_from_alpha(str(tmp_path / "hole.png")).sum() == 25


@pytest.mark.parametrize(("value", "words"), [(0, "empty"), (255, "whole image")])
def test_an_empty_or_full_mask_is_refused(tmp_path, value, words):
    path = _save(np.full((16, 16), value, np.uint8), tmp_path / "m.png")
    with pytest.raises(InvalidRequest, match=words) as raised:
        inpaint.read_mask(path, 16, 16)
    assert raised.value.field == "mask"


def test_fills_of_the_masked_area():
    image = np.zeros((40, 40, 3), np.uint8)
    image[:, :20], image[:, 20:] = (200, 0, 0), (0, 0, 200)
    mask = _box_mask(40, 40, (15, 15, 25, 25)).astype(np.float32) / 255
    assert inpaint.fill_masked(image, mask, "original", 0) is image
    blurred = inpaint.fill_masked(image, mask, "blurred", 0)
    assert blurred[20, 16, 0] > blurred[20, 16, 2] and blurred[20, 24, 2] > blurred[20, 24, 0]  # colours from the sides
    noise = inpaint.fill_masked(image, mask, "noise", 3)
    assert np.array_equal(noise, inpaint.fill_masked(image, mask, "noise", 3)) and noise[15:25, 15:25].std() > 40
    assert np.array_equal(noise[:15], image[:15])


def test_the_only_masked_crop_holds_the_mask_at_the_asked_aspect():
    mask = _box_mask(300, 400, (250, 100, 290, 140)).astype(np.float32) / 255
    left, top, right, bottom = inpaint.crop_box(mask, 16, 1.0)
    assert 0 <= left <= 234 and right >= 306 and 0 <= top <= 84 and bottom >= 156 and right <= 400
    assert right - left == bottom - top


def test_the_outpaint_canvas_keeps_the_source_in_place():
    source = _noise(40, 50)
    canvas, mask = inpaint.outpaint_canvas(source, (8, 16, 24, 0))
    assert canvas.shape == (56, 82, 3) and mask.shape == (56, 82)
    assert np.array_equal(canvas[16:56, 8:58], source)
    assert mask[0, 0] == 1 and mask[40, 30] == 0 and 0 < mask[30, 9] < 1  # new area, picture, seam


def test_edit_fields_are_checked_where_the_request_is_built(tmp_path):
    src = _save(_noise(16, 16), tmp_path / "s.png")
    mask = _save(_box_mask(16, 16, (4, 4, 8, 8)), tmp_path / "m.png")
    with pytest.raises(InvalidRequest, match="starting image") as raised:
        ImageRequest(prompt="a", model="m", mask=mask)
    assert raised.value.field == "mask"
    with pytest.raises(InvalidRequest, match="one at a time"):
        ImageRequest(prompt="a", model="m", init_image=src, mask=mask, outpaint=(8, 0, 0, 0))
    with pytest.raises(InvalidRequest) as raised:
        ImageRequest(prompt="a", model="m", init_image=src, mask_fill="paint")
    assert raised.value.field == "mask_fill"
    with pytest.raises(InvalidRequest, match="outpaint left"):
        ImageRequest(prompt="a", model="m", init_image=src, outpaint=(-8, 0, 0, 0))
    request = ImageRequest(prompt="a", model="m", init_image=src, outpaint=(8, 0, 16, 0), mask_blur=6)
    assert request_from_dict(json.loads(json.dumps(request.to_dict()))) == request


# -- the tiny Stable Diffusion through the worker --------------------------------------------


def test_inpaint_repaints_the_mask_and_keeps_the_rest_with_its_record(services, tiny_sd, tmp_path):
    source = _noise(64, 64)
    src = _save(source, tmp_path / "photo.png")
    box = (16, 16, 40, 40)
    mask_path = _save(_box_mask(64, 64, box), tmp_path / "mask.png")
    request = ImageRequest(
        prompt="a red ball", model=str(tiny_sd), seed=3, steps=3, width=64, height=64,
        init_image=src, mask=mask_path, mask_blur=3, strength=0.8,
    )  # fmt: skip
    end, events = _run(services, request)
    assert end.kind.value == "finished", end.error
    item = end.result[0]
    with Image.open(item.path) as opened:
        out = np.asarray(opened.convert("RGB"))
    assert out.shape == source.shape
    far = _far_from(box, (64, 64), inpaint.blur_band(3))
    assert np.array_equal(out[far], source[far])
    assert (out[20:36, 20:36] != source[20:36, 20:36]).mean() > 0.9
    assert any(e.kind.value == "progress" for e in events)
    record = item.record
    operation = record.derived_from["operation"]
    assert operation["action"] == "c2pa.edited" and operation["task"] == "inpaint" and operation["strength"] == 0.8
    assert record.derived_from["generated"] is False  # a photo: a composite with generated media
    assert record.runtime["pipeline"] == "StableDiffusionInpaintPipeline"
    (companion,) = record.output["attachments"]
    mask_file = item.path.with_name(companion["file"])
    with Image.open(mask_file) as saved:
        assert saved.mode == "L" and saved.size == (64, 64) and np.asarray(saved)[20, 20] == 255


def test_an_edit_of_a_gallery_item_has_it_as_a_parent_ingredient(services, tiny_sd, tmp_path):
    end, _ = _run(services, ImageRequest(prompt="a fox", model=str(tiny_sd), width=64, height=64, steps=2, seed=1))
    first = end.result[0]
    mask_path = _save(_box_mask(64, 64, (0, 0, 32, 64)), tmp_path / "mask.png")
    request = ImageRequest(
        prompt="a cat", model=str(tiny_sd), width=64, height=64, steps=2, seed=2,
        init_image=str(first.path), mask=mask_path, only_masked=True, mask_fill="noise",
    )  # fmt: skip
    end, _ = _run(services, request)
    assert end.kind.value == "finished", end.error
    edit = end.result[0]
    assert edit.record.parent == first.id and edit.record.derived_from["generated"] is True
    anchors = services.store.credentials.root_certificate.read_text()
    context = c2pa.Context.from_dict({"trust": {"user_anchors": anchors}})
    with open(edit.path, "rb") as stream, c2pa.Reader("image/png", stream, context=context) as reader:
        data = json.loads(reader.json())
    manifest = data["manifests"][data["active_manifest"]]
    actions = next(a for a in manifest["assertions"] if a["label"].startswith("c2pa.actions"))["data"]["actions"]
    assert [a["action"] for a in actions] == ["c2pa.opened", "c2pa.edited"]
    parent = next(i for i in manifest["ingredients"] if i["relationship"] == "parentOf")
    assert parent["title"] == first.path.name


def test_outpaint_gives_the_new_size_with_the_old_pixels_in_place(services, tiny_sd, tmp_path):
    source = _noise(64, 64)
    src = _save(source, tmp_path / "s.png")
    request = ImageRequest(
        prompt="a wide field", model=str(tiny_sd), seed=4, steps=2, init_image=src, outpaint=(16, 0, 24, 8), mask_blur=2
    )
    end, _ = _run(services, request)
    assert end.kind.value == "finished", end.error
    with Image.open(end.result[0].path) as opened:
        out = np.asarray(opened.convert("RGB"))
    assert out.shape == (72, 104, 3)
    reach = inpaint.OUTPAINT_OVERLAP + inpaint.blur_band(2)
    kept = out[0 : 64 - reach, 16 + reach : 16 + 64 - reach]
    assert np.array_equal(kept, source[0 : 64 - reach, reach : 64 - reach])
    assert end.result[0].record.derived_from["operation"]["outpaint"] == [16, 0, 24, 8]


def test_bad_edits_are_refused_and_the_worker_takes_the_next_job(services, tiny_sd, tmp_path):
    src = _save(_noise(64, 64), tmp_path / "s.png")
    empty = _save(np.zeros((64, 64), np.uint8), tmp_path / "empty.png")
    end, _ = _run(services, ImageRequest(prompt="a", model=str(tiny_sd), steps=2, init_image=src, mask=empty))
    assert end.kind.value == "error" and "empty" in end.error
    too_wide = ImageRequest(prompt="a", model=str(tiny_sd), steps=2, init_image=src, outpaint=(0, 0, 512, 0))
    end, _ = _run(services, too_wide)
    assert end.kind.value == "error" and "576×64" in end.error
    assert services.store.list() == []
    end, _ = _run(services, ImageRequest(prompt="a", model=str(tiny_sd), width=32, height=32, steps=1, seed=1))
    assert end.kind.value == "finished"


# -- the pattern painter -------------------------------------------------------------------


def test_the_pattern_painter_repaints_a_region_and_paints_beyond_its_frame(services, tmp_path):
    end, _ = _run(services, ImageRequest(prompt="sunset waves", model=PATTERNS, width=96, height=64, seed=5))
    first = end.result[0]
    with Image.open(first.path) as opened:
        source = np.asarray(opened.convert("RGB"))
    box = (30, 20, 70, 50)
    mask_path = _save(_box_mask(64, 96, box), tmp_path / "m.png")
    repaint = ImageRequest(
        prompt="ocean rings", model=PATTERNS, seed=9, init_image=str(first.path), mask=mask_path, strength=1.0
    )
    end, _ = _run(services, repaint)
    assert end.kind.value == "finished", end.error
    with Image.open(end.result[0].path) as opened:
        edited = np.asarray(opened.convert("RGB"))
    far = _far_from(box, (64, 96), inpaint.blur_band(repaint.mask_blur))
    assert np.array_equal(edited[far], source[far])
    assert (edited[30:40, 45:55] != source[30:40, 45:55]).any()
    assert end.result[0].record.parent == first.id
    extend = ImageRequest(
        prompt="sunset waves", model=PATTERNS, seed=5, init_image=str(first.path), outpaint=(32, 0, 0, 16)
    )
    end, _ = _run(services, extend)
    assert end.kind.value == "finished", end.error
    with Image.open(end.result[0].path) as opened:
        extended = np.asarray(opened.convert("RGB"))
    assert extended.shape == (80, 128, 3)
    assert np.array_equal(extended[:64, 32:], source)  # the same pattern continued: even the seam matches


def test_the_command_line_repaints_extends_and_refuses(data_dir, tmp_path):
    from test_cli import studio_cli

    source = _save(_noise(48, 64), tmp_path / "photo.png")
    mask = _save(_box_mask(48, 64, (10, 10, 30, 30)), tmp_path / "mask.png")
    result = studio_cli(
        "gen", "image", "ocean rings", "--model", PATTERNS, "--init-image", source, "--mask", mask,
        "--mask-blur", "2", "--json", data_dir=data_dir, check=True,
    )  # fmt: skip
    assert "ignored" not in result.stderr  # the picture a mask is about is no ignored starting image
    item = json.loads(result.stdout.strip().splitlines()[-1])
    record = json.loads(Path(item["path"]).with_suffix(".json").read_text())
    assert record["derived_from"]["operation"]["task"] == "inpaint" and record["request"]["mask_blur"] == 2
    assert Path(item["path"]).with_suffix(".mask").is_file()
    result = studio_cli(
        "gen", "image", "ocean rings", "--model", PATTERNS, "--init-image", source, "--outpaint", "8,0,16,0",
        "--json", data_dir=data_dir, check=True,
    )  # fmt: skip
    with Image.open(json.loads(result.stdout.strip().splitlines()[-1])["path"]) as extended:
        assert extended.size == (88, 48)
    bad = studio_cli("gen", "image", "a", "--init-image", source, "--outpaint", "1,2", data_dir=data_dir)
    assert bad.returncode == 2 and "LEFT,TOP,RIGHT,BOTTOM" in bad.stderr

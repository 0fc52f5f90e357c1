"""Image generation through the real worker and a tiny Stable Diffusion pipeline."""

import hashlib
import json

import numpy as np
import pytest
from helpers import EventLog
from PIL import Image

from studio.core.capabilities import Control
from studio.core.requests import ImageRequest
from studio.gallery.a1111 import parse_parameters


def _run(services, request, timeout=120):
    log = EventLog(services.worker)
    job = services.worker.submit(request)
    return log, log.wait_end(job, timeout)


def test_png_is_saved_with_parameters_and_step_progress(services, tiny_sd):
    request = ImageRequest(
        prompt="a red fox", model=str(tiny_sd), width=64, height=48, steps=3, seed=11, negative="blurry", count=2
    )
    log, end = _run(services, request)
    assert end.kind.value == "finished", end.error
    assert [e.step for e in log.of(end.job_id) if e.kind.value == "progress"] == [1, 2, 3]
    assert len(end.result) == 2
    with Image.open(end.result[0].path) as image:
        assert image.size == (64, 48)
        params = parse_parameters(image.text["parameters"])
        assert json.loads(image.text["studio_provenance"])["request"]["seed"] == 11
    assert params["prompt"] == "a red fox" and params["negative"] == "blurry"
    assert params["settings"]["Steps"] == "3" and params["settings"]["Seed"] == "11"
    assert params["settings"]["Sampler"] == "EulerDiscreteScheduler"


def test_same_seed_gives_identical_pixels(services, tiny_sd):
    pixels = []
    for seed in (4, 4, 5):
        _, end = _run(
            services, ImageRequest(prompt="hills", model=str(tiny_sd), width=32, height=32, steps=2, seed=seed)
        )
        with Image.open(end.result[0].path) as image:
            pixels.append(np.asarray(image).copy())
    assert np.array_equal(pixels[0], pixels[1])
    assert not np.array_equal(pixels[0], pixels[2])


def test_cancel_within_a_step_saves_nothing(services, tiny_sd):
    log = EventLog(services.worker)
    job = services.worker.submit(ImageRequest(prompt="x", model=str(tiny_sd), width=64, height=64, steps=400, seed=1))
    log.wait_for(lambda e: e.job_id == job and e.kind.value == "progress" and e.step >= 2)
    services.worker.cancel(job)
    asked_at = max(e.step for e in log.of(job) if e.kind.value == "progress")
    end = log.wait_end(job)
    assert end.kind.value == "cancelled"
    assert max(e.step for e in log.of(job) if e.kind.value == "progress") - asked_at <= 1
    assert services.store.list() == []


def test_unknown_scheduler_names_the_choices(services, tiny_sd):
    _, end = _run(
        services, ImageRequest(prompt="x", model=str(tiny_sd), width=32, height=32, steps=1, scheduler="Magic")
    )
    assert end.kind.value == "error" and "EulerDiscreteScheduler" in end.error


def test_previews_arrive_during_the_run(services, tiny_sd, monkeypatch):
    from studio.engines import diffusers_image as image_engine

    monkeypatch.setattr(image_engine, "PREVIEW_INTERVAL_S", 0.0)
    log, end = _run(services, ImageRequest(prompt="sky", model=str(tiny_sd), width=64, height=48, steps=4, seed=2))
    assert end.kind.value == "finished", end.error
    previews = [e for e in log.of(end.job_id) if e.kind.value == "preview"]
    finished_at = log.of(end.job_id).index(end)
    assert [e.step for e in previews] == [1, 2, 3]  # none for the last step: the image follows
    assert all(log.of(end.job_id).index(e) < finished_at for e in previews)
    picture = previews[0].preview
    assert picture.dtype == np.uint8 and picture.shape == (6, 8, 3)  # latent size: 1/8 of 48×64


def test_latent_projection_per_family():
    import torch

    from studio.engines.diffusers_image import latents_to_rgb

    latents = torch.zeros(4, 2, 3)
    grey = latents_to_rgb(latents, "sd", 2, 3)
    assert grey.shape == (2, 3, 3) and np.all(grey == 128)  # zero latents are mid-grey
    assert np.all(latents_to_rgb(latents, "sdxl", 2, 3)[..., 0] == 150)
    ramp = torch.arange(16 * 4 * 6, dtype=torch.float32).reshape(16, 4, 6)
    fallback = latents_to_rgb(ramp, "sd3", 4, 6)  # 16 channels: normalised first three
    assert fallback.min() == 0 and fallback.max() == 255
    packed = torch.randn(2 * 3, 16 * 4)  # Flux: 2×2 patches of 16 channels, latent 4×6
    assert latents_to_rgb(packed, "flux", 4, 6).shape == (4, 6, 3)


def test_image_to_image_reuses_the_loaded_pipeline(services, tiny_sd, tmp_path, monkeypatch):
    from diffusers import AutoPipelineForText2Image

    loads = []
    original = AutoPipelineForText2Image.from_pretrained.__func__
    monkeypatch.setattr(
        AutoPipelineForText2Image,
        "from_pretrained",
        classmethod(lambda cls, *a, **k: loads.append(a) or original(cls, *a, **k)),
    )
    start = tmp_path / "start.png"
    Image.fromarray(np.tile(np.linspace(0, 255, 40, dtype=np.uint8)[None, :, None], (40, 1, 3))).save(start)
    _, first = _run(services, ImageRequest(prompt="a", model=str(tiny_sd), width=32, height=32, steps=2, seed=3))
    request = ImageRequest(
        prompt="b", model=str(tiny_sd), width=32, height=32, steps=4, seed=3, init_image=str(start), strength=0.5
    )
    log, end = _run(services, request)
    assert first.kind.value == end.kind.value == "finished", end.error
    assert len(loads) == 1  # image-to-image was built from the loaded components
    assert max(e.total for e in log.of(end.job_id) if e.kind.value == "progress") == 2  # strength 0.5 of 4 steps
    record = end.result[0].record
    assert record.runtime["pipeline"] == "StableDiffusionImg2ImgPipeline"
    assert record.request["init_image"] == str(start) and record.request["strength"] == 0.5
    assert record.runtime["init_image_sha256"] == hashlib.sha256(start.read_bytes()).hexdigest()
    with Image.open(end.result[0].path) as image:
        assert image.size == (32, 32)


def test_unreadable_starting_image_is_refused_before_loading(services, tiny_sd, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    request = ImageRequest(prompt="b", model=str(tiny_sd), width=32, height=32, steps=2, init_image=str(broken))
    _, end = _run(services, request)
    assert end.kind.value == "error" and "cannot read the starting image" in end.error
    assert services.worker.cache.keys() == {}


@pytest.mark.parametrize("size", [8, 512])
def test_size_far_outside_the_family_range_is_refused_before_loading(services, tiny_sd, size):
    _, end = _run(services, ImageRequest(prompt="x", model=str(tiny_sd), width=size, height=32, steps=1))
    assert end.kind.value == "error"
    assert "trained for" in end.error and "use 16 to 256" in end.error
    assert services.worker.cache.keys() == {}


def test_model_description_lists_compatible_schedulers(services, tiny_sd):
    log = EventLog(services.worker)
    job = services.worker.describe_model(str(tiny_sd))
    info = log.wait_for(lambda e: e.job_id == job and e.kind.value == "model_info").result
    assert info.default_scheduler == "EulerDiscreteScheduler"
    assert {"DDIMScheduler", "EulerAncestralDiscreteScheduler"} <= set(info.schedulers)
    assert info.uses(Control.NEGATIVE_PROMPT) and info.uses(Control.IMAGE_INPUT)
    assert info.native_size == 64 and info.size_range == (16, 256)
    assert services.worker.cache.keys() == {}  # describing loads no weights


def test_forced_out_of_memory_gives_advice_and_the_next_job_works(services, tiny_sd, monkeypatch):
    import torch
    from diffusers import UNet2DConditionModel

    original = UNet2DConditionModel.forward

    def exhausted(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(UNet2DConditionModel, "forward", exhausted)
    _, failed = _run(services, ImageRequest(prompt="x", model=str(tiny_sd), width=32, height=32, steps=2))
    assert failed.kind.value == "error"
    assert "out of memory" in failed.error and "smaller size" in failed.error and "memory_mode low" in failed.error
    assert services.worker.cache.keys() == {}  # what was loaded was freed
    monkeypatch.setattr(UNet2DConditionModel, "forward", original)
    _, end = _run(services, ImageRequest(prompt="x", model=str(tiny_sd), width=32, height=32, steps=2))
    assert end.kind.value == "finished", end.error


def test_model_hash_is_recorded_and_written_for_a1111(services, tiny_sd):
    from studio.engines.fingerprint import WeightFingerprints

    _, end = _run(services, ImageRequest(prompt="x", model=str(tiny_sd), width=32, height=32, steps=1, seed=1))
    digest = WeightFingerprints(None).of_model(tiny_sd)
    assert end.result[0].record.model["sha256"] == digest and len(digest) == 64
    with Image.open(end.result[0].path) as image:
        assert parse_parameters(image.text["parameters"])["settings"]["Model hash"] == digest[:10]


def test_large_images_decode_in_tiles(services, tiny_sd):
    _, end = _run(services, ImageRequest(prompt="x", model=str(tiny_sd), width=128, height=128, steps=1, count=2))
    assert end.kind.value == "finished", end.error
    vae = services.worker.cache._slots["image"].model.pipe.vae
    assert vae.use_tiling and vae.use_slicing
    _run(services, ImageRequest(prompt="x", model=str(tiny_sd), width=32, height=32, steps=1))
    assert not vae.use_tiling and not vae.use_slicing

"""Image generation through the real worker and a tiny Stable Diffusion pipeline."""

import json

import numpy as np
from helpers import EventLog
from PIL import Image

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

"""Upscaling: a tiny spandrel-recognised model found in the library, run in tiles through the worker
(== untiled within rounding, progress per tile, cancel saves nothing), Lanczos when there is no
model, the pattern painter re-rendering, the hires fix's two passes, and the bad inputs."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import EventLog
from PIL import Image
from test_cli import studio_cli
from tiny_upscaler import build_tiny_upscaler

from studio.core.errors import InvalidRequest, ModelError
from studio.core.requests import ImageRequest, UpscaleRequest
from studio.engines import spandrel_import
from studio.engines.devices import DeviceChoice
from studio.engines.library.catalog import ModelCatalog
from studio.engines.upscaler import load_upscaler_file, tiled_upscale

ROOT = Path(__file__).resolve().parents[1]
LANCZOS = str(ROOT / "resources" / "models" / "studio-lanczos")
PATTERNS = str(ROOT / "resources" / "models" / "studio-starter-patterns")
CPU = DeviceChoice("cpu", "float32", "CPU")


@pytest.fixture(scope="module")
def tiny_upscaler(tmp_path_factory) -> Path:
    return build_tiny_upscaler(tmp_path_factory.mktemp("upscalers") / "2x-TinyCompact.safetensors")


def _image(tmp_path, height=48, width=64, seed=0, name="source.png"):
    path = tmp_path / name
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def _run(services, request, parent=None, on_event=None):
    log = EventLog(services.worker)
    if on_event is not None:
        services.worker.subscribe(on_event)
    job = services.worker.submit(request, parent=parent)
    return log.wait_end(job, 180), log.of(job)


def _pixels(path):
    with Image.open(path) as opened:
        return np.asarray(opened.convert("RGB"))


def test_an_upscaler_file_is_found_in_the_library_with_its_scale(tiny_upscaler):
    specs = ModelCatalog(None, [tiny_upscaler.parent]).discover()
    (spec,) = [s for s in specs if s.path == tiny_upscaler]
    assert (spec.kind, spec.format, spec.family, spec.runnable) == ("upscaler", "upscaler", "Compact", True)
    assert spec.details["scale"] == 2


def test_spandrel_imports_without_a_working_torchvision():
    spandrel = spandrel_import.import_spandrel()
    assert spandrel.MAIN_REGISTRY.get("ESRGAN") is not None
    if spandrel_import.imported_with == "torchvision":
        pytest.skip("torchvision works here: spandrel was imported as is")
    assert not any(name == "torchvision" or name.startswith("torchvision.") for name in sys.modules)
    lama = sys.modules["spandrel.architectures.LaMa.__arch.LaMa"]
    with pytest.raises(RuntimeError, match="torchvision is not installed"):
        lama.rotate(None, 0)


def test_tiles_match_the_untiled_result_and_report_progress(tiny_upscaler):
    descriptor = load_upscaler_file(tiny_upscaler, CPU)
    image = np.random.default_rng(1).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    run = descriptor  # a spandrel descriptor is called like its model
    whole = tiled_upscale(run, image, 2, 1024)
    ticks = []
    tiled = tiled_upscale(run, image, 2, 32, on_tile=lambda done, total: ticks.append((done, total)))
    assert tiled.shape == (140, 180, 3)
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1
    assert ticks == [(i, 9) for i in range(1, 10)]


def test_an_upscale_is_a_new_item_whose_parent_is_the_source(services, tiny_upscaler, tmp_path):
    end, _ = _run(services, ImageRequest(prompt="sunset waves", model=PATTERNS, width=64, height=48, seed=2))
    source = end.result[0]
    request = UpscaleRequest(prompt="", model=str(tiny_upscaler), init_image=str(source.path), scale=2, tile=32)
    end, events = _run(services, request, parent=source.id)
    assert end.kind.value == "finished", end.error
    item = end.result[0]
    assert _pixels(item.path).shape == (96, 128, 3)
    assert [e.total for e in events if e.kind.value == "progress"] == [4] * 4  # 2 × 2 tiles of 32
    derived = item.record.derived_from
    assert item.record.parent == source.id and derived["id"] == source.id
    operation = derived["operation"]
    assert operation["action"] == "c2pa.resized" and operation["task"] == "upscale"
    assert operation["architecture"] == "Compact" and operation["tile"] == 32
    assert item.record.runtime["spandrel_import"] in ("torchvision", "without torchvision")
    half = UpscaleRequest(prompt="", model=str(tiny_upscaler), init_image=str(source.path), scale=1.5)
    end, _ = _run(services, half)
    assert _pixels(end.result[0].path).shape == (72, 96, 3)
    assert "resized to 1.5×" in end.result[0].record.derived_from["operation"]["resized"]


def test_cancel_mid_upscale_saves_nothing(services, tiny_upscaler, tmp_path):
    source = _image(tmp_path, 64, 64)
    request = UpscaleRequest(prompt="", model=str(tiny_upscaler), init_image=str(source), scale=2, tile=16)
    jobs = []

    def cancel_on_first_tile(event):
        if event.kind.value == "progress" and event.job_id in jobs:
            services.worker.cancel(event.job_id)

    log = EventLog(services.worker)
    services.worker.subscribe(cancel_on_first_tile)
    jobs.append(services.worker.submit(request))
    end = log.wait_end(jobs[0], 120)
    assert end.kind.value == "cancelled"
    assert len([e for e in log.of(jobs[0]) if e.kind.value == "progress"]) < 16
    assert services.store.list() == []
    end, _ = _run(services, UpscaleRequest(prompt="", model=LANCZOS, init_image=str(source), scale=2))
    assert end.kind.value == "finished"  # the worker takes the next job


def test_lanczos_is_the_upscaler_without_a_model_and_says_so(data_dir, tmp_path):
    source = _image(tmp_path, 30, 40)
    result = studio_cli("upscale", str(source), "--scale", "3", "--json", data_dir=data_dir, check=True)
    item = json.loads(result.stdout.strip().splitlines()[-1])
    assert _pixels(item["path"]).shape == (90, 120, 3)
    record = json.loads(Path(item["path"]).with_suffix(".json").read_text())
    assert record["derived_from"]["operation"]["upscaler"] == "Lanczos"
    assert record["derived_from"]["generated"] is False and record["model"]["name"] == "studio-lanczos"


def test_the_pattern_painter_upscales_by_painting_again(services, tmp_path):
    end, _ = _run(services, ImageRequest(prompt="ocean rings", model=PATTERNS, width=64, height=48, seed=7))
    source = end.result[0]
    request = UpscaleRequest(prompt="ocean rings", model=PATTERNS, seed=7, init_image=str(source.path), scale=2)
    end, _ = _run(services, request, parent=source.id)
    assert end.kind.value == "finished", end.error
    larger = _pixels(end.result[0].path)
    end, _ = _run(services, ImageRequest(prompt="ocean rings", model=PATTERNS, width=128, height=96, seed=7))
    assert np.array_equal(larger, _pixels(end.result[0].path))  # the same picture, painted at the larger size


def test_hires_fix_runs_both_passes_with_progress(services, tiny_sd, tiny_upscaler):
    request = ImageRequest(
        prompt="a fox", model=str(tiny_sd), width=48, height=48, steps=4, seed=1,
        hires_scale=2.0, hires_strength=0.5, upscaler=str(tiny_upscaler),
    )  # fmt: skip
    end, events = _run(services, request)
    assert end.kind.value == "finished", end.error
    item = end.result[0]
    assert _pixels(item.path).shape == (96, 96, 3)
    progress = [(e.step, e.total, e.info.get("phase")) for e in events if e.kind.value == "progress"]
    phases = [p for _, _, p in progress]
    assert phases.index("generate") < phases.index("upscale") < phases.index("hires")
    assert progress[-1][0] == progress[-1][1] == 4 + 1 + 2
    hires = item.record.runtime["hires"]
    assert hires["first_pass"] == [48, 48] and hires["upscale"]["architecture"] == "Compact"
    assert item.record.derived_from is None  # a new image, not an edit of another


def test_bad_upscales_are_refused(services, tiny_sd, tiny_upscaler, tmp_path):
    source = _image(tmp_path, 16, 16)
    pickle_file = tmp_path / "4x-old.pth"
    pickle_file.write_bytes(b"not really a pickle")
    with pytest.raises(ModelError, match="pickle"):
        load_upscaler_file(pickle_file, CPU)
    from safetensors.numpy import save_file

    stranger = tmp_path / "stranger.safetensors"
    save_file({"foo.weight": np.zeros((2, 2), np.float32)}, str(stranger))
    with pytest.raises(ModelError, match="cannot identify"):
        load_upscaler_file(stranger, CPU)
    with pytest.raises(InvalidRequest, match="choose the image"):
        UpscaleRequest(prompt="", model=LANCZOS)
    huge = UpscaleRequest(prompt="", model=LANCZOS, init_image=str(source), scale=8)
    end, _ = _run(services, huge)
    assert end.kind.value == "finished"  # 128 × 128 is fine…
    big = _image(tmp_path, 2100, 8, name="tall.png")
    end, _ = _run(services, UpscaleRequest(prompt="", model=LANCZOS, init_image=str(big), scale=8))
    assert end.kind.value == "error" and "16384" in end.error  # …16800 pixels a side is not
    end, _ = _run(services, UpscaleRequest(prompt="", model=str(tiny_sd), init_image=str(source)))
    assert end.kind.value == "error" and "upscaler" in end.error
    end, _ = _run(services, ImageRequest(prompt="a", model=str(tiny_upscaler)))
    assert end.kind.value == "error" and "upscaler model" in end.error


def test_an_upscale_request_checks_its_limits(tmp_path):
    source = str(_image(tmp_path, 8, 8))
    for name, value in (("scale", 1.0), ("scale", 9), ("scale", "2"), ("tile", -1), ("tile", 2.5)):
        with pytest.raises(InvalidRequest) as caught:
            UpscaleRequest(prompt="", model=LANCZOS, init_image=source, **{name: value})
        assert caught.value.field == name
    with pytest.raises(InvalidRequest, match="does not exist"):
        UpscaleRequest(prompt="", model=LANCZOS, init_image=str(tmp_path / "gone.png"))

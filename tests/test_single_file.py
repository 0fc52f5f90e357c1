"""Single-file Stable Diffusion checkpoints: found, matched with a local configuration, loaded, generated."""

import hashlib

import numpy as np
from helpers import EventLog
from safetensors.numpy import save_file

from studio.core.requests import ImageRequest
from studio.engines.library import ModelCatalog, inspect_checkpoint


def test_a_checkpoint_runs_with_the_configuration_of_its_family(services, sd15_single_file):
    folder, checkpoint = sd15_single_file
    services.settings.set("model_folders", [str(folder), str(checkpoint.parent)])
    specs = {spec.path: spec for spec in ModelCatalog(None, [folder, checkpoint.parent]).discover()}
    spec = specs[checkpoint]
    assert (spec.kind, spec.family, spec.runnable) == ("image", "sd", True)
    assert spec.details["config"] == str(folder) and spec.details["class"] == "StableDiffusionPipeline"
    log = EventLog(services.worker)
    request = ImageRequest(prompt="a harbour", model=str(checkpoint), width=128, height=128, steps=2, seed=3)
    end = log.wait_end(services.worker.submit(request), timeout=180)
    assert end.kind.value == "finished", end.error
    record = end.result[0].record
    assert record.model["path"] == str(checkpoint)
    assert record.model["sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    # the very same weights as the folder: the same seed gives the same picture
    same = log.wait_end(services.worker.submit(request.with_model(str(folder))), timeout=180)
    assert np.array_equal(_pixels(end.result[0].path), _pixels(same.result[0].path))


def test_without_a_local_configuration_it_says_what_to_add(sd15_single_file):
    _, checkpoint = sd15_single_file
    spec = inspect_checkpoint(checkpoint, [])
    assert not spec.runnable and spec.family == "sd"
    assert "needs the configuration" in spec.reason and "stable-diffusion-v1-5" in spec.reason


def test_other_safetensors_files_are_not_taken_for_checkpoints(tmp_path):
    lora = tmp_path / "style-lora.safetensors"
    save_file({"lora_unet_down_blocks_0.alpha": np.ones(1, dtype=np.float32)}, str(lora))
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    specs = {spec.path.name: spec for spec in ModelCatalog(None, [tmp_path]).discover()}
    assert specs["style-lora.safetensors"].kind == "lora"  # an adapter (issue 18), never an image model
    assert "damaged" in specs["broken.safetensors"].reason


def _pixels(path):
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image).copy()

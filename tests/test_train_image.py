"""The image LoRA trainer on tiny Stable Diffusion models (CPU): pictures read and refused, buckets and
captions, the loss falling, a LoRA the library recognises and the real engine applies, cancel + resume
reaching the same weights, the CPU rule, out of memory, and bases it cannot train."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import tiny_training_images as T

from studio.core.errors import InvalidRequest, JobCancelled, StudioError
from studio.core.models import ModelSpec
from studio.core.training import DataSummary, TrainRequest
from studio.engines.training import image_data, image_lora
from studio.engines.training.base import TrainContext, UnreadableData
from studio.engines.training.image_lora import ImageLoraTrainer
from studio.engines.training.registry import trainer_for

TRIGGER = "zqx"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: two shared cores spin under contention, and CPU results depend on the count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("train-image")
    sd = T.build_tiny_sd_with_words(root / "models" / "tiny-sd")
    data = T.build_image_set(root / "data", count=4)
    from studio.engines.library.classify import inspect_folder

    return {"root": root, "sd": sd, "spec": inspect_folder(sd), "data": data}


def _device():
    from studio.engines.devices import choose_device

    return choose_device("cpu")


def _summary(folder, trainer=None):
    trainer = trainer or ImageLoraTrainer()
    files = T.training_files(folder, trainer)
    return DataSummary("image", tuple(files), notes=tuple(trainer.data_notes(files)))


def _train(spec, request, summary, out, checkpoints, *, cancel_at=None, resume=False, estimate_only=False):
    """Run the trainer as the worker's job would; ``cancel_at``: press Cancel once that step is reported."""
    trainer = trainer_for("image")
    events, cancel = [], threading.Event()

    def emit(event):
        events.append(event)
        if cancel_at is not None and event.kind.value == "progress" and event.info.get("phase") == "training":
            if event.step == cancel_at:
                cancel.set()

    out.mkdir(parents=True, exist_ok=True)
    ctx = TrainContext(
        "job", emit, cancel, output_dir=out, checkpoint_dir=checkpoints, resume=resume, estimate_only=estimate_only
    )
    plan = trainer.plan(spec, request, summary, _device())
    return trainer.train(spec, plan, summary, _device(), ctx), events, plan


def _request(data, **fields):
    values = {"medium": "image", "data": (str(data),), "name": "Red Stripes", "trigger": TRIGGER, "seed": 3}
    values.update(fields)
    return TrainRequest(**values)


def _tensors(file):
    from safetensors.torch import load_file

    return load_file(str(file))


@pytest.fixture(scope="module")
def trained(world):
    """One real run on four captioned pictures, its LoRA installed in a folder named after the run."""
    summary = _summary(world["data"])
    request = _request(world["data"], steps=120, rank=8, learning_rate=1e-2, sample_every=60, checkpoint_every=1000)
    out = world["root"] / "staging"
    outcome, events, plan = _train(world["spec"], request, summary, out, world["root"] / "checkpoint")
    folder = world["root"] / "loras" / "red-stripes"
    folder.mkdir(parents=True)
    shutil.copy(out / image_lora.LORA_FILE, folder / image_lora.LORA_FILE)
    return {"outcome": outcome, "events": events, "plan": plan, "out": out, "loras": folder.parent, "summary": summary}


# -- training ------------------------------------------------------------------------------------


def test_the_loss_falls_and_every_step_reports(trained):
    outcome = trained["outcome"]
    losses = np.array([loss for _, loss in outcome.curve])
    quarter = len(losses) // 4
    assert outcome.steps == 120 and len(losses) == 120
    assert losses[-quarter:].mean() < losses[:quarter].mean() - 0.03
    assert outcome.best_loss == losses.min() and outcome.final_loss == losses[-1]
    assert outcome.result_kind == "lora" and outcome.format == "lora" and outcome.device.startswith("CPU")
    progress = [e for e in trained["events"] if e.kind.value == "progress" and e.info["phase"] == "training"]
    assert [e.step for e in progress] == list(range(1, 121))
    assert progress[-1].info["recent"][-1] == [120, pytest.approx(losses[-1])]
    assert progress[-1].info["learning_rate"] == pytest.approx(1e-2)
    samples = [e.preview for e in trained["events"] if e.kind.value == "preview"]
    assert [s["step"] for s in samples] == [60, 60, 120, 120]  # two prompts at each sampling
    assert {s["prompt"] for s in samples} == {TRIGGER, f"{TRIGGER}, red stripes, blob a"}
    picture = samples[0]["data"]
    assert picture.dtype == np.uint8 and picture.shape == (64, 64, 3)
    assert not np.array_equal(samples[0]["data"], samples[2]["data"])  # the LoRA moved between samples
    assert sorted(p.name for p in trained["out"].iterdir()) == [image_lora.LORA_FILE]  # nothing else staged


def test_the_lora_is_recognised_with_its_trigger_word_and_family(trained, world):
    from studio.engines.library.adapters import check_fits
    from studio.engines.library.catalog import ModelCatalog

    catalog = ModelCatalog(None, [trained["loras"]], hf_cache=world["root"] / "no-cache")
    specs = {spec.name: spec for spec in catalog.discover()}
    lora = specs["red-stripes"]
    assert lora.kind == "lora" and lora.family == "sd" and lora.runnable
    assert lora.details["layout"] == "diffusers" and lora.details["rank"] == 8
    assert lora.details["trigger_words"] == [TRIGGER]
    check_fits(lora, world["spec"])  # made for this base: no refusal
    from safetensors import safe_open

    with safe_open(str(lora.path), "pt") as handle:
        metadata = handle.metadata()
    assert metadata["modelspec.architecture"] == "stable-diffusion-v1/lora"
    assert metadata["ss_base_model_version"] == "sd_v1" and metadata["modelspec.trigger_phrase"] == TRIGGER
    assert json.loads(metadata["ss_tag_frequency"])["studio"][TRIGGER] == 4
    assert metadata["studio.data_digest"] == trained["summary"].digest


def test_studio_gen_with_the_lora_differs_from_the_base(trained, world, data_dir):
    env = {**os.environ, "STUDIO_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1"}

    def studio(*args):
        done = subprocess.run(
            [sys.executable, "-m", "studio", *args], capture_output=True, text=True, env=env, timeout=300, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    studio("models", "add", str(trained["loras"]))
    common = ["--model", str(world["sd"]), "--width", "64", "--height", "64", "--steps", "4", "--seed", "5", "--json"]
    with_lora = json.loads(studio("gen", "image", f"{TRIGGER}, red stripes", *common, "--lora", "red-stripes"))
    without = json.loads(studio("gen", "image", f"{TRIGGER}, red stripes", *common))
    from PIL import Image

    with Image.open(with_lora["path"]) as a, Image.open(without["path"]) as b:
        assert not np.array_equal(np.asarray(a), np.asarray(b))
    record = json.loads(open(with_lora["path"].rsplit(".", 1)[0] + ".json").read())
    assert [a["name"] for a in record["model"]["adapters"]] == ["red-stripes"]


def test_cancel_then_resume_reaches_the_same_weights(world):
    summary = _summary(world["data"])
    request = _request(
        world["data"],
        steps=12,
        rank=4,
        learning_rate=5e-3,
        checkpoint_every=5,
        sample_every=6,
        gradient_checkpointing=True,
    )
    root = world["root"] / "resume"
    whole, _, _ = _train(world["spec"], request, summary, root / "whole", root / "whole-ck")
    with pytest.raises(JobCancelled):
        _train(world["spec"], request, summary, root / "parts", root / "parts-ck", cancel_at=7)
    assert (root / "parts-ck" / image_lora.CHECKPOINT_FILE).is_file()
    assert not (root / "parts" / image_lora.LORA_FILE).exists()  # nothing half made
    resumed, events, _ = _train(world["spec"], request, summary, root / "parts", root / "parts-ck", resume=True)
    steps = [e.step for e in events if e.kind.value == "progress" and e.info["phase"] == "training"]
    assert steps == list(range(8, 13))  # continued from the checkpoint of step 7, not from the start
    assert resumed.curve == whole.curve
    a, b = _tensors(root / "whole" / image_lora.LORA_FILE), _tensors(root / "parts" / image_lora.LORA_FILE)
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    # another rank cannot continue that checkpoint
    with pytest.raises(StudioError, match="other settings"):
        _train(
            world["spec"],
            _request(world["data"], steps=12, rank=8),
            summary,
            root / "x",
            root / "parts-ck",
            resume=True,
        )


def test_sdxl_trains_with_both_text_encoders_and_time_ids(tmp_path):
    from studio.engines.library.adapters import inspect_adapter_file
    from studio.engines.library.classify import inspect_folder

    spec = inspect_folder(T.build_tiny_sdxl(tmp_path / "tiny-sdxl"))
    data = tmp_path / "data"
    data.mkdir()
    for index, size in enumerate([(96, 64), (64, 96), (64, 64)]):
        T.picture(index, *size).save(data / f"p{index}.png")
    summary = _summary(data)
    outcome, _, plan = _train(spec, _request(data, steps=3, rank=4), summary, tmp_path / "out", tmp_path / "ck")
    assert plan.family == "sdxl" and plan.buckets == [[48, 80, 1], [64, 64, 1], [80, 48, 1]]
    assert all(np.isfinite(loss) for _, loss in outcome.curve)
    lora = inspect_adapter_file(tmp_path / "out" / image_lora.LORA_FILE)
    assert lora.family == "sdxl" and lora.details["base"] == "SDXL" and lora.details["trigger_words"] == [TRIGGER]


def test_a_single_file_checkpoint_trains_through_from_single_file(sd15_single_file, world, tmp_path):
    from studio.engines.library import inspect_checkpoint
    from studio.engines.library.classify import inspect_folder

    folder, checkpoint = sd15_single_file
    spec = inspect_checkpoint(checkpoint, [inspect_folder(folder)])
    assert spec.runnable and spec.details["single_file"]
    summary = _summary(world["data"])
    request = _request(world["data"], steps=2, rank=4, resolution=64, sample_every=1000)
    outcome, _, plan = _train(spec, request, summary, tmp_path / "o", tmp_path / "c")
    assert outcome.steps == 2 and plan.resolution == 128  # the smallest its 64-pixel buckets allow
    assert plan.unet_parameters == image_lora.base_facts(spec).unet_parameters > 1_000_000
    assert (tmp_path / "o" / image_lora.LORA_FILE).is_file()


# -- the CPU rule, out of memory ------------------------------------------------------------------


def test_a_real_size_base_on_a_cpu_stops_after_the_estimate_unless_asked(world, monkeypatch, tmp_path):
    monkeypatch.setattr(image_lora, "CPU_PARAMETER_LIMIT", 1000)  # the tiny UNet stands in for SD's 860 M
    summary = _summary(world["data"])
    request = _request(world["data"], steps=500, rank=4)
    plan = ImageLoraTrainer().plan(world["spec"], request, summary, _device())
    assert plan.needs_gpu and any("a GPU takes minutes" in note for note in plan.notes)
    with pytest.raises(StudioError, match=r"would take about .* on this CPU .*a GPU takes minutes"):
        _, events, _ = _train(world["spec"], request, summary, tmp_path / "o", tmp_path / "c")
    assert not any((tmp_path / "o").iterdir()) and not (tmp_path / "c").exists()
    outcome, events, plan = _train(world["spec"], request, summary, tmp_path / "e", tmp_path / "c", estimate_only=True)
    phases = [e.info["phase"] for e in events if e.kind.value == "progress"]
    assert phases.count("estimating") == image_lora.ESTIMATE_STEPS and "training" not in phases
    assert outcome.steps == image_lora.ESTIMATE_STEPS and not any((tmp_path / "e").iterdir())
    assert events[-1].info["eta_s"] > 0
    allowed = _request(world["data"], steps=2, rank=4, allow_cpu=True)
    outcome, _, _ = _train(world["spec"], allowed, summary, tmp_path / "a", tmp_path / "c")
    assert outcome.steps == 2 and (tmp_path / "a" / image_lora.LORA_FILE).is_file()


def test_out_of_memory_suggests_batch_one_checkpointing_and_a_smaller_size(world, monkeypatch, tmp_path):
    import torch

    def no_memory(self, batch):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(image_lora.LoraRun, "loss", no_memory)
    request = _request(world["data"], steps=4, rank=4, batch_size=2)
    with pytest.raises(StudioError) as caught:
        _train(world["spec"], request, _summary(world["data"]), tmp_path / "o", tmp_path / "c")
    message = str(caught.value)
    assert "out of memory" in message and "batch 1" in message
    assert "gradient checkpointing" in message and "smaller resolution" in message


# -- the data --------------------------------------------------------------------------------------


def test_bad_files_are_refused_with_their_reason(world, tmp_path):
    bad = T.write_bad_files(tmp_path, next(world["data"].glob("*.png")))
    trainer = ImageLoraTrainer()
    reasons = {}
    for name, path in bad.items():
        with pytest.raises(UnreadableData) as caught:
            trainer.inspect(path)
        reasons[name] = str(caught.value)
    assert "a text file, not an image" in reasons["text"]
    assert "cut short" in reasons["truncated"]
    assert "too small" in reasons["small"] and "32×40" in reasons["small"] and "64 px" in reasons["small"]
    assert "text file named fake.png" in reasons["fake"]


def test_exif_orientation_gives_the_displayed_size(tmp_path):
    picture = T.picture(0, 96, 64)
    exif = picture.getexif()
    exif[0x0112] = 6  # rotated 90° clockwise
    picture.save(tmp_path / "turned.jpg", exif=exif)
    seen = ImageLoraTrainer().inspect(tmp_path / "turned.jpg")
    assert (seen.width, seen.height) == (64, 96)
    upright = image_data.read_rgb(tmp_path / "turned.jpg")
    assert upright.size == (64, 96) and upright.mode == "RGB"


def test_near_duplicates_by_perceptual_hash(world, tmp_path):
    from PIL import Image

    original = world["data"] / "pic0.png"
    with Image.open(original) as image:
        image.resize((128, 128)).convert("RGB").save(tmp_path / "bigger.jpg", quality=80)
    files = [str(original), str(tmp_path / "bigger.jpg"), str(world["data"] / "pic2.png")]
    for path in files[1:]:
        ImageLoraTrainer().inspect(path)
    from studio.core.training import TrainingFile

    groups = ImageLoraTrainer().near_duplicates([TrainingFile(p, "0", 1, "image") for p in files])
    assert groups == [(str(original), str(tmp_path / "bigger.jpg"))]


def test_wildly_different_sizes_go_to_aspect_buckets_and_missing_captions_are_said(world, tmp_path):
    sizes = {"wide": (400, 100), "tall": (100, 300), "square": (256, 256), "small": (64, 80)}
    for name, size in sizes.items():
        T.picture(len(name), *size).save(tmp_path / f"{name}.png")
    (tmp_path / "square.txt").write_text("a square")
    summary = _summary(tmp_path)
    notes = " | ".join(summary.notes)
    assert "sizes from 64×80 to 256×256 (2 portrait, 1 " in notes and "aspect-ratio buckets" in notes
    assert "3 images have no caption: trained on the trigger word alone" in notes
    plan = ImageLoraTrainer().plan(world["spec"], _request(tmp_path, steps=10), summary, _device())
    assert any(note.startswith("4 images in 3 aspect buckets at 64 px") for note in plan.notes)
    assert plan.buckets == [[48, 80, 1], [64, 64, 2], [80, 48, 1]]  # 64×80 is nearer square than 3:5
    assert image_lora.training_prompt(TRIGGER, "") == TRIGGER
    assert image_lora.training_prompt(TRIGGER, "a square") == f"{TRIGGER}, a square"


def test_every_epoch_keeps_to_one_bucket_per_batch_in_a_seeded_order():
    buckets = [(64, 64), (48, 80), (64, 64), (64, 64), (48, 80)]
    first = image_lora.epoch_batches(buckets, seed=1, epoch=0, batch=2)
    assert first == image_lora.epoch_batches(buckets, seed=1, epoch=0, batch=2)
    assert sorted(i for b in first for i in b) == [0, 1, 2, 3, 4]
    assert all(len({buckets[i] for i in batch}) == 1 for batch in first)
    orders = {str(image_lora.epoch_batches(buckets, seed=1, epoch=e, batch=2)) for e in range(6)}
    assert len(orders) > 1  # each epoch its own order


# -- bases and methods --------------------------------------------------------------------------------


def test_bases_it_cannot_train_are_refused_with_the_reason(world, tmp_path, tiny_lm):

    from studio.engines.library.classify import inspect_folder

    trainer = ImageLoraTrainer()
    assert trainer.methods(world["spec"]) == ("lora",)
    painter = inspect_folder(Path(__file__).resolve().parents[1] / "resources" / "models" / "studio-starter-patterns")
    with pytest.raises(StudioError, match=r"pattern painter.*nothing to fine-tune"):
        trainer.methods(painter)
    with pytest.raises(StudioError, match="makes text"):
        trainer.methods(inspect_folder(tiny_lm))
    folder = T.build_transformer_pipeline_folder(tmp_path / "pixart")
    pixart = ModelSpec("pixart", "pixart", "image", "pixartsigma", folder, "folder", True, details={"class": ""},
                       format="diffusers-image")  # fmt: skip
    with pytest.raises(StudioError, match=r"PixArtSigmaPipeline\) denoises with a transformer"):
        trainer.methods(pixart)
    with pytest.raises(InvalidRequest, match="trained as a LoRA"):
        trainer.plan(world["spec"], _request(world["data"], method="full"), _summary(world["data"]), _device())


def test_the_request_round_trips_with_allow_cpu():
    request = _request("folder", allow_cpu=True)
    assert TrainRequest.from_dict(json.loads(json.dumps(request.to_dict()))) == request


def test_a_disk_that_fills_while_checkpointing_keeps_the_previous_checkpoint(world, monkeypatch, tmp_path):
    import errno

    import torch

    real_save, calls = torch.save, []

    def save(obj, file, *args, **kwargs):
        calls.append(file)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, file, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    request = _request(world["data"], steps=6, rank=4, checkpoint_every=2, sample_every=1000)
    with pytest.raises(OSError, match="No space left on device"):  # the job words it (runtime.training)
        _train(world["spec"], request, _summary(world["data"]), tmp_path / "o", tmp_path / "c")
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [image_lora.CHECKPOINT_FILE]  # no partial file
    assert torch.load(tmp_path / "c" / image_lora.CHECKPOINT_FILE, weights_only=True)["step"] == 2
    assert not any((tmp_path / "o").iterdir())


def test_a_v_prediction_base_trains_on_the_velocity(world, tmp_path):
    from studio.engines.library.classify import inspect_folder

    folder = shutil.copytree(world["sd"], tmp_path / "tiny-sd-v")
    config_file = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "prediction_type": "v_prediction"}))
    request = _request(world["data"], steps=3, rank=4, sample_every=1000)
    summary = _summary(world["data"])
    v, _, _ = _train(inspect_folder(folder), request, summary, tmp_path / "v", tmp_path / "vc")
    eps, _, _ = _train(world["spec"], request, summary, tmp_path / "e", tmp_path / "ec")
    assert all(np.isfinite(loss) for _, loss in v.curve) and v.curve != eps.curve  # same draws, another target


def test_the_summary_and_the_plan_never_import_torch(world):
    script = f"""
import sys
from pathlib import Path
from types import SimpleNamespace
sys.path.insert(0, {str(Path(__file__).parent)!r})
import tiny_training_images as T
from studio.core.training import DataSummary, TrainRequest
from studio.engines.library.classify import inspect_folder
from studio.engines.training.registry import trainer_for
trainer = trainer_for("image")
files = T.training_files(Path({str(world["data"])!r}), trainer)
summary = DataSummary("image", tuple(files), near_duplicates=tuple(trainer.near_duplicates(files)),
                      notes=tuple(trainer.data_notes(files)))
spec = inspect_folder(Path({str(world["sd"])!r}))
trainer.methods(spec)
plan = trainer.plan(spec, TrainRequest(medium="image", data=("x",), name="n"), summary, SimpleNamespace(device="cpu"))
print(plan.steps, sorted(m for m in ("torch", "diffusers", "transformers", "peft") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["400", "[]"]

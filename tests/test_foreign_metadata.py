"""Real files from A1111, ComfyUI, Fooocus, InvokeAI (three generations) and NovelAI import with the
prompt and seed their tool wrote, mapped onto request fields so Reuse settings works (the files:
tests/resources/foreign/README.md)."""

from pathlib import Path

import pytest

from studio.core.requests import request_from_dict
from studio.gallery.foreign import read_foreign_metadata
from studio.gallery.import_readers import nearest_scheduler
from studio.gallery.store import GalleryStore

FILES = Path(__file__).parent / "resources" / "foreign"
FOX = "photograph of victorian woman with wings, sky clouds, meadow grass"

# file: (tool, prompt starts with, negative starts with, seed, steps, guidance, scheduler, model)
CASES = {
    "automatic1111_cropped.png": (
        "A1111",
        "photo of a duck",
        "monochrome",
        235284042,
        15,
        5.0,
        "UniPCMultistepScheduler",
        "realistic_realisticVisionV20_v20",
    ),
    "automatic1111_cropped.jpg": (
        "A1111",
        "photo of a duck",
        "monochrome",
        235284042,
        15,
        5.0,
        "UniPCMultistepScheduler",
        "realistic_realisticVisionV20_v20",
    ),
    "automatic1111_stealth.png": (
        "A1111",
        "a circle",
        "a square",
        2015833630,
        20,
        7.0,
        "EulerDiscreteScheduler",
        "realisticVisionV51_v51VAE",
    ),
    "img2img_cropped.png": (
        "ComfyUI",
        "photograph of victorian woman with wings",
        "watermark, text",
        280823642470253,
        20,
        8.0,
        "DPMSolverMultistepScheduler",
        "v1-5-pruned-emaonly.ckpt",
    ),
    "night_evening_day_morning_cropped.png": (
        "ComfyUI",
        "(best quality) (daytime:1.2) sky (blue)",
        "(hands), text, error, cropped",
        335608130539327,
        13,
        8.5,
        "DPMSolverSDEScheduler",
        "Anything-V3.0.ckpt",
    ),
    "noisy_latents_3_subjects_cropped.png": (
        "ComfyUI",
        "girl (flat chest:0.9), (fennec ears:1.0)",
        "(hands), text, error, cropped",
        1084614416978598,
        9,
        5.5,
        "DPMSolverSDEScheduler",
        "Anything-V3.0.ckpt",
    ),
    "unclip_2pass_cropped.png": (
        "ComfyUI",
        "(waifu, anime, exceptional, best aesthetic",
        "lowres, (bad anatomy), (bad hands), text",
        1106257833005336,
        26,
        8.0,
        "UniPCMultistepScheduler",
        "wd-1-5-beta2-aesthetic-unclip-h-fp32.safetensors",
    ),
    "fooocus1_cropped.png": (
        "Fooocus",
        "a smiling goldfish",
        "",
        6952411511246973023,
        30,
        4.0,
        "DPMSolverMultistepScheduler",
        "juggernautXL_v8Rundiffusion",
    ),
    "invokeai_dream1.png": (
        "InvokeAI",
        "professional full body photo of young woman",
        "rendering, glowing eyes, skinny",
        2980747362,
        50,
        5.0,
        "LMSDiscreteScheduler",
        None,
    ),
    "invokeai_sdmeta1.png": (
        "InvokeAI",
        "professional full body photo of young woman",
        "rendering, glowing eyes, skinny",
        2980747362,
        50,
        5.0,
        "LMSDiscreteScheduler",
        "deliberateForInvoke_v08",
    ),
    "invokeai_imeta1.png": (
        "InvokeAI",
        "digital artwork, oil painting. painterly brushstro",
        "grainy+, photo, oversaturated",
        3293022630,
        35,
        8.0,
        "EulerDiscreteScheduler",
        "juggernautXL",
    ),
    "novelai1_cropped.png": (
        "NovelAI",
        "masterpiece, best quality,  cat, space, icon",
        "lowres, bad anatomy, bad hands",
        2253955223,
        50,
        10.0,
        "EulerAncestralDiscreteScheduler",
        "Stable Diffusion",
    ),
}


@pytest.fixture
def store(tmp_path):
    opened = GalleryStore(tmp_path / "gallery")
    yield opened
    opened.close()


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_real_file_imports_with_its_prompt_seed_and_settings(store, name):
    tool, prompt, negative, seed, steps, guidance, scheduler, model = CASES[name]
    item = store.import_file(FILES / name)
    record = item.record
    assert record.app["name"] == tool and record.runtime["read_by"] == "sd-parsers"
    request = record.request
    assert request["prompt"].startswith(prompt)
    assert request.get("negative", "").startswith(negative)
    assert request["seed"] == seed and request["steps"] == steps and request["guidance"] == guidance
    assert request["scheduler"] == scheduler
    if model:
        assert request["model"] == model and record.model["name"] == model
    assert record.runtime["stated"]["samplers"]  # everything read is kept
    assert record.prompt.startswith(prompt)  # searchable
    assert store.ids(search=prompt.split()[0].strip("(")) == [item.id]


def test_several_comfyui_samplers_give_the_positive_prompt_not_the_negative():
    found = read_foreign_metadata(FILES / "unclip_2pass_cropped.png")
    assert not found["prompt"].startswith("lowres") and found["negative"].startswith("lowres")
    assert len(found["stated"]["samplers"]) == 2


@pytest.mark.parametrize("name", ["automatic1111_cropped.png", "invokeai_sdmeta1.png", "novelai1_cropped.png"])
def test_reuse_settings_gets_a_valid_request(store, name):
    request = store.import_file(FILES / name).record.request
    # The cropped test files are a few pixels: a size outside Studio's limits is left out, as the panel does.
    sized = {k: v for k, v in request.items() if k not in ("width", "height") or v >= 8}
    rebuilt = request_from_dict({**sized, "model": "any-model"})
    assert rebuilt.prompt == request["prompt"] and rebuilt.seed == request["seed"]
    assert rebuilt.steps == request["steps"] and rebuilt.scheduler == request["scheduler"]


def test_a_seed_beyond_studios_range_is_kept_and_reuse_leaves_it_out(store):
    request = store.import_file(FILES / "fooocus1_cropped.png").record.request
    assert request["seed"] == 6952411511246973023  # what Fooocus wrote, kept
    with pytest.raises(Exception, match="seed"):
        request_from_dict({**request, "model": "m"})  # the panel drops the field it names (panel_base)


@pytest.mark.parametrize(
    ("sampler", "scheduler"),
    [
        ("Euler a", "EulerAncestralDiscreteScheduler"),
        ("DPM++ 2M Karras", "DPMSolverMultistepScheduler"),
        ("dpmpp_2m_sde_gpu", "DPMSolverMultistepScheduler"),
        ("k_lms", "LMSDiscreteScheduler"),
        ("sample_dpmpp_sde", "DPMSolverSDEScheduler"),
        ("ddim", "DDIMScheduler"),
        ("something new", ""),
    ],
)
def test_sampler_names_map_to_the_nearest_scheduler(sampler, scheduler):
    assert nearest_scheduler(sampler) == scheduler

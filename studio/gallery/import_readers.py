"""Reading what other image generators wrote into their files, through sd-parsers.

sd-parsers (the maintained reader for this) knows A1111 / Forge in PNG, JPEG and WebP (and the
"stealth" alpha-channel form), ComfyUI graphs followed from each sampler's positive and negative
inputs, Fooocus's JSON scheme, InvokeAI's three generations (``dream``, ``sd-metadata``,
``invokeai_metadata``) and NovelAI. What it reads is mapped onto Studio's request fields (prompt,
negative, seed, steps, guidance, size, the nearest scheduler, model name) so Reuse settings works on
an imported item, and everything it read is kept for the record.

Files come from outside: text is bounded before the library sees it, any exception it raises means
"nothing read", and the expensive alpha-channel search runs only on modest images.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from studio.core.media_types import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

_MAX_TEXT = 1_000_000  # characters in any one metadata chunk
_MAX_KEPT = 64 * 1024  # bytes of raw parameters kept in a record
_STEALTH_MAX_PIXELS = 2_000_000

_TOOLS = {
    "AUTOMATIC1111": "A1111",
    "COMFYUI": "ComfyUI",
    "FOOOCUS": "Fooocus",
    "INVOKEAI": "InvokeAI",
    "NOVELAI": "NovelAI",
}

# Sampler names as A1111, ComfyUI, InvokeAI, Fooocus and NovelAI write them → the diffusers scheduler
# that samples the same way (Karras sigmas, "_gpu" and "sample_" prefixes are spelling, not method).
_SCHEDULERS = {
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "euler_ancestral": "EulerAncestralDiscreteScheduler",
    "heun": "HeunDiscreteScheduler",
    "lms": "LMSDiscreteScheduler",
    "ddim": "DDIMScheduler",
    "ddpm": "DDPMScheduler",
    "plms": "PNDMScheduler",
    "pndm": "PNDMScheduler",
    "dpm2": "KDPM2DiscreteScheduler",
    "dpm_2": "KDPM2DiscreteScheduler",
    "dpm2_a": "KDPM2AncestralDiscreteScheduler",
    "dpm_2_ancestral": "KDPM2AncestralDiscreteScheduler",
    "dpmpp_2m": "DPMSolverMultistepScheduler",
    "dpmpp_2m_sde": "DPMSolverMultistepScheduler",
    "dpmpp_3m_sde": "DPMSolverMultistepScheduler",
    "dpmpp_sde": "DPMSolverSDEScheduler",
    "dpmpp_2s_a": "DPMSolverSinglestepScheduler",
    "dpmpp_2s_ancestral": "DPMSolverSinglestepScheduler",
    "dpm_fast": "DPMSolverSinglestepScheduler",
    "dpm_adaptive": "DPMSolverSinglestepScheduler",
    "uni_pc": "UniPCMultistepScheduler",
    "unipc": "UniPCMultistepScheduler",
    "uni_pc_bh2": "UniPCMultistepScheduler",
    "deis": "DEISMultistepScheduler",
    "lcm": "LCMScheduler",
    "tcd": "TCDScheduler",
}


def nearest_scheduler(sampler: str) -> str:
    """The diffusers scheduler class nearest to another tool's sampler name, or ""."""
    name = sampler.strip().lower().replace("++", "pp").replace("+", "p")
    name = re.sub(r"[\s\-]+", "_", name)
    name = re.sub(r"^(sample_|k_)", "", name)
    name = re.sub(r"_(karras|exponential|gpu|simple|normal|sgm_uniform)$", "", name)
    name = re.sub(r"_(karras|gpu)$", "", name)
    return _SCHEDULERS.get(name, "")


def read_generation_metadata(path: Path) -> dict[str, Any] | None:
    """{"tool", "prompt", "negative", "settings", "request", "stated"} from another generator's
    image, or None when sd-parsers finds nothing (or is not installed)."""
    if Path(path).suffix.lower() not in IMAGE_SUFFIXES:
        return None
    try:
        from PIL import Image
        from sd_parsers import Eagerness, ParserManager
    except ImportError:
        return None
    try:
        with Image.open(path) as image:
            if any(isinstance(v, str) and len(v) > _MAX_TEXT for v in (getattr(image, "text", {}) or {}).values()):
                return None
            size = (int(image.width), int(image.height))
            manager = ParserManager()
            info = manager.parse(image, eagerness=Eagerness.DEFAULT)
            if info is None and size[0] * size[1] <= _STEALTH_MAX_PIXELS:
                image.load()
                info = manager.parse(image, eagerness=Eagerness.EAGER)
    except Exception as exc:  # a malformed file from outside, or a parser tripping on it: nothing read
        log.debug("sd-parsers could not read %s: %s", path, exc)
        return None
    if info is None:
        return None
    try:
        return _mapped(info, size)
    except Exception as exc:  # values of unexpected types in a hostile file
        log.debug("sd-parsers gave unusable values for %s: %s", path, exc)
        return None


def _mapped(info: Any, size: tuple[int, int]) -> dict[str, Any] | None:
    samplers = list(info.samplers or [])
    metadata = dict(info.metadata or {})
    tool = _TOOLS.get(getattr(info.generator, "name", ""), str(getattr(info.generator, "value", "unknown")))
    if tool == "A1111" and str(metadata.get("Version", "")).startswith("Studio"):
        tool = "Studio"  # our own A1111 line, left in a file another program re-encoded
    primary = next((s for s in samplers if s.prompts), samplers[0] if samplers else None)
    prompt = _join(primary.prompts) if primary is not None else ""
    negative = _join(primary.negative_prompts) if primary is not None else ""
    if not prompt and isinstance(metadata.get("full_prompt"), str):
        prompt = metadata["full_prompt"]
    if not negative and isinstance(metadata.get("full_negative_prompt"), str):
        negative = metadata["full_negative_prompt"]
    parameters: dict[str, Any] = dict(primary.parameters) if primary is not None else {}
    request: dict[str, Any] = {"kind": "image", "prompt": prompt}
    if negative:
        request["negative"] = negative
    seed = _integer(parameters.get("seed", parameters.get("noise_seed")))
    if seed is not None:
        request["seed"] = seed
    steps = _integer(parameters.get("steps", metadata.get("steps")))
    if steps is not None:
        request["steps"] = steps
    guidance = _number(parameters.get("cfg_scale"))
    if guidance is not None:
        request["guidance"] = guidance
    strength = _number(parameters.get("denoise", parameters.get("strength")))
    width, height = _stated_size(metadata) or size
    request["width"], request["height"] = width, height
    sampler_name = str(primary.name) if primary is not None else ""
    scheduler = nearest_scheduler(sampler_name) if sampler_name else ""
    if scheduler:
        request["scheduler"] = scheduler
    model = primary.model if primary is not None else None
    model_name = str(model.name or "") if model is not None else ""
    model_hash = str(model.hash or "") if model is not None and model.hash else ""
    if model_name:
        request["model"] = model_name
    settings: dict[str, str] = {}
    if sampler_name:
        settings["sampler"] = sampler_name
    for key, value in parameters.items():
        settings[str(key)] = _short(value)
    if model_name:
        settings["model"] = model_name
    if model_hash:
        settings["model_hash"] = model_hash
    if strength is not None and primary is not None and "denoise" in parameters:
        settings["denoise"] = _short(strength)
    for key, value in metadata.items():
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            settings.setdefault(str(key), _short(value))
    stated = {
        "samplers": [
            {
                "name": str(s.name),
                "parameters": _plain(s.parameters),
                "model": {"name": s.model.name, "hash": s.model.hash} if s.model is not None else None,
                "prompts": [p.value for p in s.prompts],
                "negative_prompts": [p.value for p in s.negative_prompts],
            }
            for s in samplers
        ],
        "metadata": _plain(metadata),
    }
    raw = _plain(info.raw_parameters)
    if len(json.dumps(raw, ensure_ascii=False)) <= _MAX_KEPT:
        stated["raw_parameters"] = raw
    if not prompt and not settings:
        return None
    return {
        "tool": tool,
        "reader": "sd-parsers",
        "prompt": prompt,
        "negative": negative,
        "settings": settings,
        "request": request,
        "model_hash": model_hash,
        "stated": stated,
    }


def _join(prompts: Any) -> str:
    values = list(dict.fromkeys(str(p.value) for p in prompts if str(p.value).strip()))
    return ", ".join(values)


def _stated_size(metadata: dict[str, Any]) -> tuple[int, int] | None:
    width, height = _integer(metadata.get("width")), _integer(metadata.get("height"))
    if width and height:
        return width, height
    for key in ("Size", "resolution"):
        match = re.fullmatch(r"\(?\s*(\d{1,5})\s*[x×,]\s*(\d{1,5})\s*\)?", str(metadata.get(key, "")).strip())
        if match:
            return int(match.group(1)), int(match.group(2))
    return None


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,30}", value.strip()):
        return int(value.strip())
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(_plain(value), ensure_ascii=False)
    return text[:2000]


def _plain(value: Any) -> Any:
    """JSON-safe copy (sets, enums and other objects as text)."""
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))

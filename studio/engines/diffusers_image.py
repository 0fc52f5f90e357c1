"""Images from local diffusers pipelines (format ``diffusers-image``): text-to-image, image-to-image,
live previews, cancel.

One pipeline is loaded per model; the image-to-image pipeline is built from its components
(``from_pipe``) when first asked for, so it costs no second load. Memory options (CPU offload,
VAE tiling and slicing, ``torch.compile``) follow the memory mode, decided from free GPU
memory when it is ``auto``.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import AutoPipelineForImage2Image, AutoPipelineForText2Image
from diffusers.utils import logging as diffusers_logging

from studio.core.capabilities import Control, ModelInfo
from studio.core.errors import InvalidRequest, JobCancelled, ModelError
from studio.core.files import file_sha256, first_line
from studio.core.models import ModelSpec
from studio.core.outputs import EngineResult, GeneratedOutput
from studio.core.requests import ImageRequest
from studio.engines import compile_cache
from studio.engines.adapters import adapter_records, prepare_image_job
from studio.engines.base import RunContext, model_info
from studio.engines.devices import DeviceChoice, free_memory_bytes, library_versions
from studio.engines.library.safetensors_files import safetensors_parameter_bytes
from studio.engines.registry import DIFFUSERS_IMAGE

log = logging.getLogger(__name__)
diffusers_logging.disable_progress_bar()  # progress reaches the user as events, not on stderr

# Previews are throttled by time, not steps: each one copies latents to the host and waits
# for the GPU, which must not cost a fast GPU run more than a few percent.
PREVIEW_INTERVAL_S = 0.25
# Headroom above the weights for activations and the VAE decode before auto mode offloads.
_AUTO_HEADROOM_BYTES = int(1.5 * 2**30)

# Linear latent → RGB projections (rows: latent channels; columns: R, G, B) plus a bias, giving
# 0..1. SD 1.x/2.x: the widely used "approximate cheap" factors; SDXL: the factors in diffusers'
# callback guide, rescaled from 0..255. Other families fall back to normalising three channels.
_LATENT_RGB: dict[str, tuple[tuple[tuple[float, float, float], ...], tuple[float, float, float]]] = {
    "sd": (
        ((0.149, 0.1035, 0.104), (0.0935, 0.143, 0.0865), (-0.079, 0.0945, 0.132), (-0.092, -0.1355, -0.2365)),
        (0.5, 0.5, 0.5),
    ),
    "sdxl": (
        ((0.2353, 0.2353, 0.2353), (-0.2353, -0.0196, 0.0392), (0.098, 0.0588, -0.0196), (-0.2745, -0.1961, -0.1373)),
        (0.5882, 0.549, 0.5098),
    ),
}


@dataclass
class LoadedPipeline:
    spec: ModelSpec
    device: DeviceChoice
    pipe: Any
    default_scheduler: Any
    offloaded: bool = False
    compiled: bool = False
    image_to_image: Any = None
    notes: list[str] = field(default_factory=list)
    adapters: Any = None  # the LoRAs and embeddings loaded into it (``studio.engines.adapters``)
    inpaint: Any = None  # the inpainting pipeline over the same components, built when first asked for
    compile_cache_file: Any = None  # where torch.compile's artifacts for this model are kept (compile_cache)
    compiled_shapes: set[tuple[int, ...]] = field(default_factory=set)  # sizes compiled (and saved) so far

    @property
    def native_size(self) -> int:
        return int(self.spec.details.get("native_size") or 512)

    @property
    def vae_scale(self) -> int:
        return int(getattr(self.pipe, "vae_scale_factor", 8) or 8)


def accepts(pipe: Any, name: str) -> bool:
    return name in inspect.signature(pipe.__call__).parameters


class DiffusersImageEngine:
    format = DIFFUSERS_IMAGE
    kind = "image"

    # -- before loading -------------------------------------------------------------

    def check(self, spec: ModelSpec, request: ImageRequest) -> None:
        """Refuse what cannot work before any weights load: sizes and the starting image."""
        if request.kind == "upscale":
            raise InvalidRequest("model", f"{spec.name} makes images; upscale with an upscaler model or Lanczos")
        from studio.core.edits import is_edit

        # An edit keeps its source's size; "only masked" paints its crop at the asked size.
        if not is_edit(request) or request.only_masked:
            check_image_size(spec, request.width, request.height)
        if request.init_image:
            _read_init_image(request.init_image, request.width, request.height)
        import diffusers

        from studio.engines.diffusers_edit import check_edit_request

        image_to_image = _has_image_to_image(getattr(diffusers, spec.model_class, None))
        check_edit_request(spec, request, image_to_image=image_to_image)

    def describe(self, spec: ModelSpec) -> ModelInfo:
        """What the panel offers for this model, read from its config files (no weights)."""
        import diffusers

        folder = Path(spec.details.get("config") or spec.path)  # a single file reads its family's folder
        scheduler_name = str(_json(folder / "scheduler" / "scheduler_config.json").get("_class_name", ""))
        scheduler_cls = getattr(diffusers, scheduler_name, None)
        # ``compatibles`` is an instance property; the class method behind it needs no instance.
        list_compatibles = getattr(scheduler_cls, "_get_compatibles", None)
        compatibles = list_compatibles() if list_compatibles is not None else []
        schedulers = sorted({c.__name__ for c in compatibles} | ({scheduler_name} if scheduler_name else set()))
        pipeline_cls = getattr(diffusers, spec.model_class, None)
        uses = {Control.STEPS, Control.GUIDANCE, Control.SCHEDULER}
        if pipeline_cls is not None and accepts(pipeline_cls, "negative_prompt"):
            uses.add(Control.NEGATIVE_PROMPT)
        if _has_image_to_image(pipeline_cls):
            uses.add(Control.IMAGE_INPUT)
        if _has_inpainting(pipeline_cls):
            uses.update((Control.IMAGE_INPUT, Control.MASK))
        reasons = {
            Control.NEGATIVE_PROMPT: f"{spec.name} ({spec.model_class}) takes no negative prompt",
            Control.IMAGE_INPUT: f"{spec.name} ({spec.model_class}) cannot start from an image",
            Control.MASK: f"{spec.name} ({spec.model_class}) cannot repaint a masked region",
        }
        return model_info(
            spec,
            uses,
            reasons,
            native_size=int(spec.details.get("native_size") or 512),
            size_range=image_size_range(spec),
            schedulers=tuple(schedulers),
            default_scheduler=scheduler_name,
        )

    # -- loading ----------------------------------------------------------------------

    def load(self, spec: ModelSpec, device: DeviceChoice) -> LoadedPipeline:
        try:
            if spec.details.get("single_file"):
                import diffusers

                # A checkpoint in the original layout, with the configuration of a local folder of its family.
                pipeline_cls = getattr(diffusers, str(spec.details["class"]))
                pipe = pipeline_cls.from_single_file(
                    str(spec.path), config=str(spec.details["config"]), local_files_only=True, dtype=device.dtype
                )
            else:
                pipe = AutoPipelineForText2Image.from_pretrained(
                    spec.path,
                    local_files_only=True,
                    use_safetensors=not spec.details.get("pickle_allowed"),
                    dtype=device.dtype,
                )
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise ModelError(f"cannot load {spec.name} as an image pipeline: {first_line(exc)}") from exc
        pipe.set_progress_bar_config(disable=True)
        loaded = LoadedPipeline(spec, device, pipe, pipe.scheduler)
        loaded.offloaded = self._should_offload(spec, device)
        if loaded.offloaded:
            try:
                pipe.enable_model_cpu_offload(device=device.device)
                loaded.notes.append("model parts move to the GPU only while they run (low memory)")
            except (ImportError, RuntimeError, ValueError) as exc:
                log.warning("CPU offload unavailable (%s); loading the whole model on the GPU", exc)
                loaded.offloaded = False
        if not loaded.offloaded:
            pipe.to(device.device)
        if device.compile_models:
            self._compile(loaded)
        return loaded

    def _should_offload(self, spec: ModelSpec, device: DeviceChoice) -> bool:
        if device.device != "cuda" or device.memory_mode == "full":
            return False
        if device.memory_mode == "low":
            return True
        free = free_memory_bytes(device)
        bytes_per_parameter = torch.tensor([], dtype=device.dtype).element_size()
        need = safetensors_parameter_bytes(spec.path, bytes_per_parameter)
        offload = free is not None and free < need + _AUTO_HEADROOM_BYTES
        log.info("image model needs ~%.1f GiB, %s GiB free: offload=%s", need / 2**30, free and free / 2**30, offload)
        return offload

    def _compile(self, loaded: LoadedPipeline) -> None:
        if loaded.device.device != "cuda":
            loaded.notes.append("torch.compile is used on CUDA only")
            return
        loaded.compile_cache_file = compile_cache.artifact_file(
            str(loaded.spec.path), loaded.device.name, loaded.device.dtype_name
        )
        if compile_cache.load(loaded.compile_cache_file):
            loaded.notes.append("compiled kernels of an earlier run are reused")
        for name in ("unet", "transformer"):
            denoiser = getattr(loaded.pipe, name, None)
            if denoiser is None:
                continue
            if name == "unet":
                denoiser.to(memory_format=torch.channels_last)  # convolutions run faster in NHWC
            setattr(loaded.pipe, name, torch.compile(denoiser))
            loaded.compiled = True
            loaded.notes.append("the first image after loading is slow while torch.compile builds kernels")

    def unload(self, loaded: LoadedPipeline) -> None:
        if loaded.offloaded:
            loaded.pipe.remove_all_hooks()
        loaded.pipe.to("cpu")
        loaded.image_to_image = None
        loaded.adapters = None
        loaded.inpaint = None

    # -- generating ----------------------------------------------------------------------

    def generate(self, loaded: LoadedPipeline, request: ImageRequest, ctx: RunContext) -> EngineResult:
        from studio.engines import diffusers_edit

        if diffusers_edit.is_edit(request):
            return diffusers_edit.generate_edit(self, loaded, request, ctx)
        if request.hires_scale > 1:
            return diffusers_edit.generate_hires(self, loaded, request, ctx)
        if not request.init_image and diffusers_edit.is_inpainting_model(loaded):
            return diffusers_edit.generate_blank_inpaint(self, loaded, request, ctx)
        pipe = self._pipeline_for(loaded, request)
        pipe.scheduler = self._scheduler(loaded, request.scheduler)
        self._configure_vae(loaded, pipe, request)
        seed = request.seed if request.seed is not None else 0
        # A CPU generator gives the same noise on every device, so a seed means the same image.
        generator = torch.Generator("cpu").manual_seed(seed)
        previews = _PreviewMaker(loaded, request, ctx)

        def on_step_end(pipeline: Any, step: int, _timestep: Any, callback_kwargs: dict) -> dict:
            total = int(getattr(pipeline, "_num_timesteps", 0) or request.steps)
            ctx.progress(step + 1, total)
            previews.maybe_send(callback_kwargs.get("latents"), step + 1, total)
            if ctx.cancelled:
                pipeline._interrupt = True  # the loop skips the rest; its decoded image is discarded
            return callback_kwargs

        kwargs: dict[str, Any] = {
            "prompt": request.prompt,
            "num_inference_steps": request.steps,
            "guidance_scale": request.guidance,
            "num_images_per_prompt": request.count,
            "generator": generator,
            "output_type": "np",
            "callback_on_step_end": on_step_end,
        }
        if request.init_image:
            kwargs["image"] = _read_init_image(request.init_image, request.width, request.height)
            kwargs["strength"] = request.strength
        if not request.init_image or accepts(pipe, "width"):
            kwargs["width"], kwargs["height"] = request.width, request.height
        if request.negative and accepts(pipe, "negative_prompt"):
            kwargs["negative_prompt"] = request.negative
        adapters = list(getattr(ctx, "adapters", ()))  # a stand-in context (tests) may have none
        adapter_notes = prepare_image_job(loaded, pipe, request, adapters, kwargs)
        started = time.perf_counter()
        with torch.inference_mode():
            result = pipe(**kwargs)
        elapsed = time.perf_counter() - started
        if ctx.cancelled:
            raise JobCancelled()
        shape = (request.width, request.height, request.count)
        if loaded.compiled and shape not in loaded.compiled_shapes:  # a size compiled for the first time
            loaded.compiled_shapes.add(shape)
            compile_cache.save(loaded.compile_cache_file)
        images = np.clip(np.round(np.asarray(result.images) * 255), 0, 255).astype(np.uint8)
        outputs = [
            GeneratedOutput(
                "image", image, {"index": index, "width": int(image.shape[1]), "height": int(image.shape[0])}
            )
            for index, image in enumerate(images)
        ]
        runtime = {
            **loaded.device.to_dict(),
            "scheduler": type(pipe.scheduler).__name__,
            "pipeline": type(pipe).__name__,
            "cpu_offload": loaded.offloaded,
            "compiled": loaded.compiled,
            "seconds": round(elapsed, 3),
            "versions": library_versions(),
        }
        if request.init_image:
            runtime["init_image_sha256"] = file_sha256(Path(request.init_image))
        if loaded.notes or adapter_notes:
            runtime["notes"] = list(loaded.notes) + adapter_notes
        model = loaded.spec.provenance()
        if adapters:
            model["adapters"] = adapter_records(adapters)
        return EngineResult(outputs, model, runtime)

    def _pipeline_for(self, loaded: LoadedPipeline, request: ImageRequest) -> Any:
        if not request.init_image:
            return loaded.pipe
        return pipeline_over(loaded, "image_to_image", AutoPipelineForImage2Image, "start from an image")

    def _configure_vae(self, loaded: LoadedPipeline, pipe: Any, request: ImageRequest) -> None:
        vae = getattr(pipe, "vae", None)
        if vae is None:
            return
        low = loaded.device.memory_mode == "low" or loaded.offloaded
        large = request.width * request.height > (loaded.native_size * 1.5) ** 2
        # Tiles keep the decode of a large image within memory; slices decode a batch one by one.
        for wanted, on, off in (
            (low or large, "enable_tiling", "disable_tiling"),
            (low or request.count > 1, "enable_slicing", "disable_slicing"),
        ):
            method = getattr(vae, on if wanted else off, None)
            if method is not None:
                method()

    def _scheduler(self, loaded: LoadedPipeline, name: str) -> Any:
        if not name or name == type(loaded.default_scheduler).__name__:
            return loaded.default_scheduler
        choices = {cls.__name__: cls for cls in loaded.default_scheduler.compatibles}
        if name not in choices:
            raise InvalidRequest(
                "scheduler", f"scheduler {name!r} does not fit this model; choose one of {sorted(choices)}"
            )
        return choices[name].from_config(loaded.default_scheduler.config)


def pipeline_over(loaded: Any, slot: str, auto_class: Any, task: str) -> Any:
    """A pipeline for another task over the loaded components (``from_pipe``: no second load),
    built the first time and kept on ``loaded.<slot>`` with the model."""
    if getattr(loaded, slot) is None:
        try:
            pipe = auto_class.from_pipe(loaded.pipe)
        except (ValueError, KeyError) as exc:
            raise ModelError(f"{loaded.spec.name} cannot {task}: {exc}") from exc
        pipe.set_progress_bar_config(disable=True)
        setattr(loaded, slot, pipe)
    return getattr(loaded, slot)


class _PreviewMaker:
    """Turns the current latents into a small RGB picture, at most every ``PREVIEW_INTERVAL_S``."""

    def __init__(self, loaded: LoadedPipeline, request: ImageRequest, ctx: RunContext) -> None:
        self._family = loaded.spec.family
        self._latent_height = request.height // loaded.vae_scale
        self._latent_width = request.width // loaded.vae_scale
        self._ctx = ctx
        self._last = 0.0

    def maybe_send(self, latents: Any, step: int, total: int) -> None:
        if latents is None or step >= total:
            return  # the final image follows at once; no preview of the last step
        now = time.monotonic()
        if self._last and now - self._last < PREVIEW_INTERVAL_S:
            return
        self._last = now
        try:
            picture = latents_to_rgb(latents[0], self._family, self._latent_height, self._latent_width)
        except (RuntimeError, ValueError):
            log.debug("no preview for latents of shape %s", tuple(latents.shape), exc_info=True)
            return
        self._ctx.preview(picture, step, total)


def latents_to_rgb(latents: Any, family: str, latent_height: int, latent_width: int) -> np.ndarray:
    """An (h, w, 3) uint8 picture of one image's latents: a linear projection, no decoder."""
    x = latents.detach().float()
    if x.ndim == 2:  # packed 2×2 patches (Flux): (sequence, channels × 4) → (channels, h, w)
        h, w = latent_height // 2, latent_width // 2
        channels = x.shape[1] // 4
        x = x.view(h, w, channels, 2, 2).permute(2, 0, 3, 1, 4).reshape(channels, h * 2, w * 2)
    if x.ndim != 3:
        raise ValueError(f"latents of shape {tuple(x.shape)}")
    factors = _LATENT_RGB.get(family)
    if factors is not None and x.shape[0] == len(factors[0]):
        weights = torch.tensor(factors[0], dtype=x.dtype, device=x.device)
        bias = torch.tensor(factors[1], dtype=x.dtype, device=x.device)
        rgb = torch.einsum("chw,cr->hwr", x, weights) + bias
    else:
        channels = x[:3] if x.shape[0] >= 3 else x[:1].expand(3, -1, -1)
        low = channels.amin(dim=(1, 2), keepdim=True)
        high = channels.amax(dim=(1, 2), keepdim=True)
        rgb = ((channels - low) / (high - low).clamp_min(1e-6)).permute(1, 2, 0)
    return (rgb.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def _read_init_image(path: str, width: int, height: int) -> Any:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise InvalidRequest("init_image", f"cannot read the starting image {path}: {exc}") from exc
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    return image


def image_size_range(spec: ModelSpec) -> tuple[int, int]:
    """The smallest and largest side worth asking of this pipeline: a quarter to four times its native size."""
    native = int(spec.details.get("native_size") or 512)
    low = max(8, (native // 4) // 8 * 8)
    return low, native * 4


def check_image_size(spec: ModelSpec, width: int, height: int) -> None:
    """Refuse a size far outside what the model was trained for, before anything loads."""
    low, high = image_size_range(spec)
    native = spec.details.get("native_size", 512)
    for name, value in (("width", width), ("height", height)):
        if not low <= value <= high:
            raise InvalidRequest(
                name,
                f"{name} {value} is far from the {native}×{native} that {spec.name} was trained for; "
                f"use {low} to {high}",
            )


def _has_inpainting(pipeline_cls: Any) -> bool:
    """Whether diffusers has an inpainting pipeline for this class (or it is one)."""
    if pipeline_cls is None:
        return False
    from diffusers.pipelines import auto_pipeline

    inpainting = auto_pipeline.AUTO_INPAINT_PIPELINES_MAPPING
    if pipeline_cls in inpainting.values():
        return True
    for task, cls in auto_pipeline.AUTO_TEXT2IMAGE_PIPELINES_MAPPING.items():
        if cls is pipeline_cls:
            return task in inpainting
    return False


def _has_image_to_image(pipeline_cls: Any) -> bool:
    if pipeline_cls is None:
        return False
    from diffusers.pipelines import auto_pipeline

    for task, cls in auto_pipeline.AUTO_TEXT2IMAGE_PIPELINES_MAPPING.items():
        if cls is pipeline_cls:
            return task in auto_pipeline.AUTO_IMAGE2IMAGE_PIPELINES_MAPPING
    return False


def _json(path: Any) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}

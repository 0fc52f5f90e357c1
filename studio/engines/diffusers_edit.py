"""Edits with a loaded diffusers pipeline: inpaint (a mask over the starting image), outpaint (a
larger canvas), and the hires fix (generate → upscale → image-to-image), for
``DiffusersImageEngine``.

The inpainting pipeline is built from the loaded components (``AutoPipelineForInpainting.from_pipe``:
no second load); a dedicated inpainting checkpoint (a 9-channel UNet) is used as such, and makes
text-to-image as an inpaint of a blank canvas. Whatever the model paints, the result is composited
onto the source at full resolution after decoding, so every pixel beyond the mask's blur band is
the source's exactly (``studio.engines.inpaint``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.edits import is_edit
from studio.core.errors import InvalidRequest, JobCancelled
from studio.core.files import file_sha256
from studio.core.outputs import EngineResult, GeneratedOutput
from studio.core.requests import ImageRequest
from studio.engines import inpaint
from studio.engines.adapters import adapter_records, prepare_image_job
from studio.engines.base import RunContext
from studio.engines.devices import library_versions
from studio.engines.upscaler import make_result, target_size, upscale_image


def is_inpainting_model(loaded: Any) -> bool:
    """A dedicated inpainting checkpoint: its UNet takes the mask and the masked image (9 channels)."""
    unet = getattr(loaded.pipe, "unet", None)
    return int(getattr(getattr(unet, "config", None), "in_channels", 4) or 4) == 9


def inpaint_pipeline(loaded: Any) -> Any:
    """The inpainting pipeline over the loaded components (built once, kept with the model)."""
    from diffusers import AutoPipelineForInpainting

    from studio.engines.diffusers_image import pipeline_over

    return pipeline_over(loaded, "inpaint", AutoPipelineForInpainting, "repaint a masked region")


def check_edit_request(spec: Any, request: ImageRequest, *, image_to_image: bool) -> None:
    """What can be refused before loading: the mask (empty, full, unreadable), an outpaint or a hires
    fix beyond the model's sizes, a hires fix on a model that cannot start from an image."""
    from PIL import Image, UnidentifiedImageError

    from studio.engines.diffusers_image import check_image_size, image_size_range

    if request.hires_scale > 1:
        if not image_to_image:
            raise InvalidRequest("hires_scale", f"{spec.name} cannot start from an image, so it has no hires fix")
        width, height = hires_size(request)
        check_image_size(spec, width, height)
    if not is_edit(request):
        return
    try:
        with Image.open(request.init_image) as opened:
            width, height = opened.size
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise InvalidRequest("init_image", f"cannot read the starting image {request.init_image}: {exc}") from exc
    if request.mask:
        inpaint.read_mask(request.mask, width, height)
    _low, high = image_size_range(spec)
    left, top, right, bottom = request.outpaint
    new_w, new_h = width + left + right, height + top + bottom
    if max(new_w, new_h) > high:
        what = "outpainted image" if any(request.outpaint) else "image"
        raise InvalidRequest(
            "outpaint" if any(request.outpaint) else "init_image",
            f"the {what} would be {new_w}×{new_h}, beyond the {high} pixels a side {spec.name} paints",
        )


def hires_size(request: ImageRequest) -> tuple[int, int]:
    width, height = target_size(request.width, request.height, request.hires_scale)
    return inpaint.round_to(width, 8), inpaint.round_to(height, 8)


class _PhaseContext:
    """A ``RunContext`` for one pass of a multi-pass job: its progress shifted into the whole job's."""

    def __init__(self, ctx: RunContext, offset: int, total: int, phase: str) -> None:
        self._ctx, self._offset, self._total, self._phase = ctx, offset, total, phase
        self.job_id = ctx.job_id

    @property
    def cancelled(self) -> bool:
        return self._ctx.cancelled

    def raise_if_cancelled(self) -> None:
        self._ctx.raise_if_cancelled()

    def progress(self, step: int, total: int, **info: Any) -> None:
        self._ctx.progress(self._offset + step, self._total, phase=self._phase, **info)

    def preview(self, data: Any, step: int = 0, total: int = 0) -> None:
        self._ctx.preview(data, self._offset + step, self._total)


def generate_edit(engine: Any, loaded: Any, request: ImageRequest, ctx: RunContext) -> EngineResult:
    """Inpaint or outpaint ``request.init_image``; each output is the source with only the mask repainted."""
    import torch
    from PIL import Image

    from studio.engines.diffusers_image import _PreviewMaker, accepts, check_image_size, image_size_range

    _low, high = image_size_range(loaded.spec)
    plan = inpaint.plan_edit(request, max_side=high)
    height, width = plan.source.shape[:2]
    outpainting = any(request.outpaint)
    if request.only_masked and not outpainting:
        box = inpaint.crop_box(plan.mask, request.only_masked_padding, request.width / request.height)
        work_w, work_h = request.width, request.height
    else:
        box = (0, 0, width, height)
        work_w, work_h = inpaint.round_to(width, 8), inpaint.round_to(height, 8)
        check_image_size(loaded.spec, work_w, work_h)
    left, top, right, bottom = box
    work_source = inpaint.resize(plan.source[top:bottom, left:right], work_w, work_h)
    work_mask = np.clip(inpaint.resize(np.ascontiguousarray(plan.mask[top:bottom, left:right]), work_w, work_h), 0, 1)
    seed = request.seed if request.seed is not None else 0
    # An outpaint's new area holds only smeared edge colours: it is painted from noise.
    fill = "blurred" if outpainting else request.mask_fill
    strength = 1.0 if outpainting else request.strength
    work_source = inpaint.fill_masked(work_source, work_mask, fill, seed)
    pipe = inpaint_pipeline(loaded)
    work_request = dataclasses.replace(request, width=work_w, height=work_h)
    pipe.scheduler = engine._scheduler(loaded, request.scheduler)
    engine._configure_vae(loaded, pipe, work_request)
    generator = torch.Generator("cpu").manual_seed(seed)
    previews = _PreviewMaker(loaded, work_request, ctx)

    def on_step_end(pipeline: Any, step: int, _timestep: Any, callback_kwargs: dict) -> dict:
        total = int(getattr(pipeline, "_num_timesteps", 0) or request.steps)
        ctx.progress(step + 1, total, phase="inpaint")
        previews.maybe_send(callback_kwargs.get("latents"), step + 1, total)
        if ctx.cancelled:
            pipeline._interrupt = True
        return callback_kwargs

    kwargs: dict[str, Any] = {
        "prompt": request.prompt,
        "image": Image.fromarray(work_source),
        "mask_image": Image.fromarray(np.round(work_mask * 255).astype(np.uint8), "L"),
        "strength": strength,
        "width": work_w,
        "height": work_h,
        "num_inference_steps": request.steps,
        "guidance_scale": request.guidance,
        "num_images_per_prompt": request.count,
        "generator": generator,
        "output_type": "np",
        "callback_on_step_end": on_step_end,
    }
    if request.negative and accepts(pipe, "negative_prompt"):
        kwargs["negative_prompt"] = request.negative
    # The job's LoRAs and embeddings, and the prompt as the model reads it, on every path (an edit too).
    adapters = list(getattr(ctx, "adapters", ()))
    adapter_notes = prepare_image_job(loaded, pipe, request, adapters, kwargs)
    started = time.perf_counter()
    with torch.inference_mode():
        result = pipe(**kwargs)
    elapsed = time.perf_counter() - started
    if ctx.cancelled:
        raise JobCancelled()
    painted = np.clip(np.round(np.asarray(result.images) * 255), 0, 255).astype(np.uint8)
    mask_file = inpaint.mask_png(plan.mask)
    outputs = []
    for index, image in enumerate(painted):
        full = plan.source.copy()
        full[top:bottom, left:right] = inpaint.resize(image, right - left, bottom - top)
        edited = inpaint.composite(plan.source, full, plan.soft)
        info = {"index": index, "width": width, "height": height}
        outputs.append(GeneratedOutput("image", edited, info, attachments={".mask": mask_file}))
    runtime: dict[str, Any] = {
        **loaded.device.to_dict(),
        "scheduler": type(pipe.scheduler).__name__,
        "pipeline": type(pipe).__name__,
        "inpainting_unet": is_inpainting_model(loaded),
        "cpu_offload": loaded.offloaded,
        "compiled": loaded.compiled,
        "seconds": round(elapsed, 3),
        "versions": library_versions(),
        "init_image_sha256": file_sha256(Path(request.init_image)),
        "edit": {"box": list(box), "painted_at": [work_w, work_h], "blur_band": inpaint.blur_band(request.mask_blur)},
    }
    notes = list(loaded.notes) + plan.notes + adapter_notes
    if notes:
        runtime["notes"] = notes
    operation = {"action": "c2pa.edited", **plan.operation, "strength": strength}
    if outpainting:
        operation["fill"] = fill
    model = loaded.spec.provenance()
    if adapters:
        model["adapters"] = adapter_records(adapters)
    return make_result(outputs, model, runtime, operation)


def generate_blank_inpaint(engine: Any, loaded: Any, request: ImageRequest, ctx: RunContext) -> EngineResult:
    """Text-to-image with an inpainting checkpoint: an inpaint of a plain grey canvas, all of it masked."""
    import torch
    from PIL import Image

    from studio.engines.diffusers_image import accepts

    pipe = inpaint_pipeline(loaded)
    pipe.scheduler = engine._scheduler(loaded, request.scheduler)
    seed = request.seed if request.seed is not None else 0

    def on_step_end(pipeline: Any, step: int, _timestep: Any, callback_kwargs: dict) -> dict:
        ctx.progress(step + 1, int(getattr(pipeline, "_num_timesteps", 0) or request.steps))
        if ctx.cancelled:
            pipeline._interrupt = True
        return callback_kwargs

    grey = Image.new("RGB", (request.width, request.height), (127, 127, 127))
    white = Image.new("L", (request.width, request.height), 255)
    kwargs: dict[str, Any] = {
        "prompt": request.prompt,
        "image": grey,
        "mask_image": white,
        "strength": 1.0,
        "width": request.width,
        "height": request.height,
        "num_inference_steps": request.steps,
        "guidance_scale": request.guidance,
        "num_images_per_prompt": request.count,
        "generator": torch.Generator("cpu").manual_seed(seed),
        "output_type": "np",
        "callback_on_step_end": on_step_end,
    }
    if request.negative and accepts(pipe, "negative_prompt"):
        kwargs["negative_prompt"] = request.negative
    adapters = list(getattr(ctx, "adapters", ()))
    adapter_notes = prepare_image_job(loaded, pipe, request, adapters, kwargs)
    with torch.inference_mode():
        result = pipe(**kwargs)
    if ctx.cancelled:
        raise JobCancelled()
    images = np.clip(np.round(np.asarray(result.images) * 255), 0, 255).astype(np.uint8)
    outputs = [
        GeneratedOutput("image", image, {"index": i, "width": request.width, "height": request.height})
        for i, image in enumerate(images)
    ]
    runtime = {
        **loaded.device.to_dict(),
        "pipeline": type(pipe).__name__,
        "scheduler": type(pipe.scheduler).__name__,
        "inpainting_unet": True,
        "versions": library_versions(),
    }
    if adapter_notes:
        runtime["notes"] = adapter_notes
    model = loaded.spec.provenance()
    if adapters:
        model["adapters"] = adapter_records(adapters)
    return EngineResult(outputs, model, runtime)


def generate_hires(engine: Any, loaded: Any, request: ImageRequest, ctx: RunContext) -> EngineResult:
    """The hires fix as one job: generate at the asked size, upscale (model or Lanczos), then repaint
    the larger image at ``hires_strength``; progress runs over all three."""
    from PIL import Image

    first_request = dataclasses.replace(request, hires_scale=1.0)
    width, height = hires_size(request)
    second_steps = max(1, int(request.steps * request.hires_strength))  # what image-to-image runs
    upscale_units = request.count
    total = request.steps + upscale_units + second_steps * request.count
    first = engine.generate(loaded, first_request, _PhaseContext(ctx, 0, total, "generate"))
    ctx.raise_if_cancelled()
    outputs, upscales = [], []
    done = request.steps
    second: EngineResult | None = None
    for index, output in enumerate(first.outputs):

        def tile_progress(step: int, tiles: int, offset: int = done) -> None:
            ctx.progress(offset + math.ceil(step / tiles), total, phase="upscale", tile=step, tiles=tiles)

        larger, facts = upscale_image(
            output.data, request.hires_scale, request.upscaler, loaded.device, ctx, progress=tile_progress
        )
        upscales.append(facts)
        done += 1
        ctx.raise_if_cancelled()
        handle, name = tempfile.mkstemp(suffix=".png", prefix="studio-hires-")
        os.close(handle)
        try:
            Image.fromarray(larger).save(name)  # lossless: the second pass starts from these exact pixels
            second_request = dataclasses.replace(
                first_request,
                init_image=name,
                width=width,
                height=height,
                strength=request.hires_strength,
                count=1,
                seed=(request.seed or 0) + index,
            )
            second = engine.generate(loaded, second_request, _PhaseContext(ctx, done, total, "hires"))
        finally:
            Path(name).unlink(missing_ok=True)
        done += second_steps
        outputs.append(dataclasses.replace(second.outputs[0], info={**second.outputs[0].info, "index": index}))
    assert second is not None
    runtime = {**second.runtime}
    runtime.pop("init_image_sha256", None)
    runtime["hires"] = {
        "first_pass": [request.width, request.height],
        "size": [width, height],
        "strength": request.hires_strength,
        "upscale": upscales[0] if len(upscales) == 1 else upscales,
        "first_pass_seconds": first.runtime.get("seconds"),
    }
    return EngineResult(outputs, first.model, runtime)

"""Edits with the pattern painter. Being a function of position, it edits exactly: a masked region
is repainted with another prompt or seed (blended in by ``strength``), an outpaint paints the same
pattern beyond the old frame (the new pixels continue the picture, no guessing), and its
"upscale" — a hires fix or an upscale job — paints the picture again at the larger size.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from studio.core.edits import is_edit
from studio.core.errors import InvalidRequest, JobCancelled
from studio.core.outputs import EngineResult, GeneratedOutput
from studio.engines import inpaint
from studio.engines.base import RunContext
from studio.engines.upscaler import check_upscale, make_result, target_size


def paint_view(
    loaded: Any,
    prompt: str,
    seed: int,
    frame: tuple[int, int],
    xs: np.ndarray,
    ys: np.ndarray,
    cancelled: Any = None,
) -> np.ndarray:
    """The picture of a ``frame`` (width, height) painting, sampled at pixel positions ``xs`` × ``ys``
    of that frame (floats; outside 0…size-1 is beyond its edge)."""
    from studio.engines.patterns import _colour, _Network, read_design

    frame_w, frame_h = frame
    design = read_design(prompt, seed, loaded.latent_size)
    network = _Network(loaded, design, seed)
    aspect = frame_w / frame_h
    half_x, half_y = (aspect, 1.0) if aspect >= 1 else (1.0, 1 / aspect)
    coarse_x, coarse_y = np.meshgrid(
        np.linspace(-half_x, half_x, 64, dtype=np.float32), np.linspace(-half_y, half_y, 64, dtype=np.float32)
    )
    network.calibrate(coarse_x.ravel(), coarse_y.ravel())  # as the frame itself was: the same colours
    # The frame's own axes exactly as ``paint`` builds them, so pixels inside it come out identical;
    # beyond it the same spacing continues.
    frame_x = np.linspace(-aspect, aspect, frame_w, dtype=np.float32) if aspect >= 1 else np.linspace(-1, 1, frame_w)
    frame_y = (
        np.linspace(-1, 1, frame_h, dtype=np.float32) if aspect >= 1 else np.linspace(-1 / aspect, 1 / aspect, frame_h)
    )
    x = _extend_axis(frame_x, xs)
    y = _extend_axis(frame_y, ys)
    grid_x, grid_y = np.meshgrid(x, y)
    flat_x, flat_y = grid_x.ravel(), grid_y.ravel()
    out = np.empty((flat_x.size, 3), dtype=np.float32)
    chunk = 1 << 16
    for start in range(0, flat_x.size, chunk):
        if cancelled is not None and cancelled():
            raise JobCancelled()
        out[start : start + chunk] = _colour(
            network(flat_x[start : start + chunk], flat_y[start : start + chunk]), design.palette
        )
    return np.round(out.reshape(len(y), len(x), 3) * 255).astype(np.uint8)


def _extend_axis(axis: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The coordinates of pixel ``positions`` along a frame ``axis``: its own values inside, the
    same step continued outside."""
    step = (float(axis[-1]) - float(axis[0])) / max(1, len(axis) - 1)
    index = np.clip(np.round(positions).astype(np.int64), 0, len(axis) - 1)
    inside = (positions >= 0) & (positions <= len(axis) - 1) & (positions == np.round(positions))
    outside = float(axis[0]) + positions.astype(np.float64) * step
    return np.where(inside, axis[index].astype(np.float64), outside).astype(np.float32)


def check(request: Any) -> None:
    from studio.engines.patterns import MAX_SIDE

    if getattr(request, "kind", "") == "upscale":
        if not request.prompt.strip():
            raise InvalidRequest(
                "prompt",
                "the pattern painter upscales by painting its own picture again: upscale an image it made "
                "(its prompt and seed come from the gallery)",
            )
        check_upscale(request, MAX_SIDE)
        return
    if request.hires_scale > 1:
        width, height = target_size(request.width, request.height, request.hires_scale)
        if max(width, height) > MAX_SIDE:
            raise InvalidRequest("hires_scale", f"the pattern painter paints up to {MAX_SIDE} pixels a side")
    if is_edit(request):
        from PIL import Image

        with Image.open(request.init_image) as opened:
            width, height = opened.size
        if request.mask:
            inpaint.read_mask(request.mask, width, height)
        left, top, right, bottom = request.outpaint
        if max(width + left + right, height + top + bottom) > MAX_SIDE:
            raise InvalidRequest("outpaint", f"the pattern painter paints up to {MAX_SIDE} pixels a side")


def generate_edit(loaded: Any, request: Any, ctx: RunContext, versions: dict[str, Any]) -> EngineResult:
    from studio.engines.patterns import MAX_SIDE, paint

    started = time.perf_counter()
    plan = inpaint.plan_edit(request, max_side=MAX_SIDE, fill_new_area=False)
    height, width = plan.source.shape[:2]
    seed = request.seed if request.seed is not None else 0
    mask_file = inpaint.mask_png(plan.mask)
    outputs = []
    total = request.count
    for index in range(request.count):
        if any(request.outpaint):
            left, top, _right, _bottom = request.outpaint
            frame = (
                width - request.outpaint[0] - request.outpaint[2],
                height - request.outpaint[1] - request.outpaint[3],
            )
            xs = np.arange(width, dtype=np.float32) - left
            ys = np.arange(height, dtype=np.float32) - top
            painted = paint_view(loaded, request.prompt, seed + index, frame, xs, ys, lambda: ctx.cancelled)
        else:
            # The new prompt and seed painted over the same frame; the mask decides where it shows.
            painted = paint(loaded, request.prompt, seed + index, width, height, lambda: ctx.cancelled)
        edited = inpaint.composite(plan.source, painted, plan.soft)
        ctx.progress(index + 1, total, phase="inpaint")
        info = {"index": index, "width": width, "height": height}
        outputs.append(GeneratedOutput("image", edited, info, attachments={".mask": mask_file}))
    runtime: dict[str, Any] = {
        **loaded.device.to_dict(),
        "pipeline": "StudioPatternPainter",
        "seconds": round(time.perf_counter() - started, 3),
        "versions": versions,
        "edit": {"blur_band": inpaint.blur_band(request.mask_blur)},
    }
    notes = list(plan.notes)
    if request.only_masked:
        notes.append("the pattern painter paints at any resolution: 'only masked' changes nothing")
    if notes:
        runtime["notes"] = notes
    operation = {"action": "c2pa.edited", **plan.operation}
    if any(request.outpaint):
        operation["how"] = "the same pattern painted beyond the old frame"
    operation.pop("strength", None)  # the painter repaints the masked region wholly
    return make_result(outputs, loaded.spec.provenance(), runtime, operation)


def generate_upscale(loaded: Any, request: Any, ctx: RunContext, versions: dict[str, Any]) -> EngineResult:
    """An upscale job: the source's picture painted again at ``scale`` times its size."""
    from PIL import Image

    from studio.engines.patterns import paint

    started = time.perf_counter()
    with Image.open(request.init_image) as opened:
        width, height = opened.size
    new_w, new_h = target_size(width, height, request.scale)
    seed = request.seed if request.seed is not None else 0
    image = paint(loaded, request.prompt, seed, new_w, new_h, lambda: ctx.cancelled)
    ctx.progress(1, 1, phase="upscale")
    runtime = {
        **loaded.device.to_dict(),
        "pipeline": "StudioPatternPainter",
        "seconds": round(time.perf_counter() - started, 3),
        "versions": versions,
    }
    facts = {"upscaler": "the pattern painter, painting again at the larger size", "scale": request.scale}
    operation = {"action": "c2pa.resized", "task": "upscale", **facts}
    output = GeneratedOutput(
        "image", image, {"index": 0, "width": new_w, "height": new_h, "upscaler": facts["upscaler"]}
    )
    return make_result([output], loaded.spec.provenance(), runtime, operation)


def hires_request(request: Any) -> Any:
    """A hires fix with the painter is the same painting at the larger size."""
    import dataclasses

    width, height = target_size(request.width, request.height, request.hires_scale)
    return dataclasses.replace(request, width=width, height=height, hires_scale=1.0)

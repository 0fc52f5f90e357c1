"""The editing fields of a request — mask, outpaint, hires fix, upscale — and their checks.

Plain Python (no imaging library): ``studio.core.requests`` calls these from its requests'
validation, so a bad edit is refused where the request is built, with the field named. The
pixel work (masks, crops, composites) is in ``studio.engines.inpaint``.
"""

from __future__ import annotations

import os
from typing import Any

from studio.core.errors import InvalidRequest

# What fills the masked area before repainting: the source as it is, seeded noise, or the
# colours around the mask smeared in (A1111's "fill").
MASK_FILLS = ("original", "noise", "blurred")
# The most pixels one side of an outpaint may add (the model's own size limit is checked by its engine).
MAX_OUTPAINT = 2048
OUTPAINT_SIDES = ("left", "top", "right", "bottom")


def check_edit_fields(request: Any) -> None:
    """Refuse an inconsistent edit of an ``ImageRequest`` (mask, outpaint, hires fix)."""
    mask, outpaint = request.mask, request.outpaint
    if not isinstance(mask, str):
        raise InvalidRequest("mask", "the mask must be a file path")
    if mask and not os.path.isfile(mask):
        raise InvalidRequest("mask", f"the mask {mask} does not exist")
    if mask and not request.init_image:
        raise InvalidRequest("mask", "a mask needs the starting image it covers (--init-image)")
    if request.mask_fill not in MASK_FILLS:
        raise InvalidRequest("mask_fill", f"the masked area is filled with one of {', '.join(MASK_FILLS)}")
    if not isinstance(request.only_masked, bool):
        raise InvalidRequest("only_masked", "only_masked is true or false")
    if (
        not isinstance(outpaint, tuple)
        or len(outpaint) != 4
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in outpaint)
    ):
        raise InvalidRequest("outpaint", "outpaint is four whole numbers of pixels: left, top, right, bottom")
    for side, value in zip(OUTPAINT_SIDES, outpaint, strict=True):
        if not 0 <= value <= MAX_OUTPAINT:
            raise InvalidRequest("outpaint", f"outpaint {side} must be 0 to {MAX_OUTPAINT} pixels, got {value}")
    if any(outpaint):
        if not request.init_image:
            raise InvalidRequest("outpaint", "outpainting extends a starting image: give one (--init-image)")
        if mask:
            raise InvalidRequest("outpaint", "outpaint or repaint with a mask, one at a time")
    if not isinstance(request.upscaler, str):
        raise InvalidRequest("upscaler", "the upscaler must be a model file path")
    if request.upscaler and not os.path.exists(request.upscaler):
        raise InvalidRequest("upscaler", f"the upscaler {request.upscaler} does not exist")
    hires = request.hires_scale
    if isinstance(hires, (int, float)) and not isinstance(hires, bool) and hires > 1 and (mask or any(outpaint)):
        raise InvalidRequest("hires_scale", "hires fix makes a new image larger; upscale an edit with 'studio upscale'")


def is_edit(request: Any) -> bool:
    """Whether an image request repaints part of its starting image (a mask or an outpaint)."""
    return bool(getattr(request, "mask", "")) or any(getattr(request, "outpaint", ()) or ())


def check_upscale_fields(request: Any) -> None:
    if not isinstance(request.init_image, str) or not request.init_image:
        raise InvalidRequest("init_image", "choose the image to upscale")
    if not os.path.isfile(request.init_image):
        raise InvalidRequest("init_image", f"the image {request.init_image} does not exist")

"""The pixel work of an edit, shared by every image engine: reading a mask, feathering it, the crop
of "only masked", filling the masked area, the canvas of an outpaint, and the composite that keeps
every pixel outside the mask and its blur band exactly the source's.

numpy and Pillow only (no torch), so it is tested on its own. Masks are float32 arrays (H, W) in
0..1: 1 repaints, 0 keeps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from studio.core.errors import InvalidRequest

# Below this a mask pixel counts as "keep" (a mask drawn with soft brushes or saved with
# antialiasing has faint values at its edges that are not meant to repaint anything).
_EMPTY = 0.5 / 255
# An outpaint's seam: how far the new area's mask reaches into the old picture, so the model
# blends its paint with the edge instead of meeting it in a hard line.
OUTPAINT_OVERLAP = 16
# The side at which the colours around a hole are worked out (the fill is a smear: no detail lost).
_FILL_SIDE = 256


@dataclass
class EditPlan:
    """What one edit works on: the full-size source (the outpaint canvas for an outpaint), the
    hard mask, its feathered version (the composite weights) and notes for the record."""

    source: np.ndarray  # (H, W, 3) uint8 at the output size
    mask: np.ndarray  # (H, W) float32 0..1, as drawn (or the outpaint's new area + seam)
    soft: np.ndarray  # (H, W) float32 0..1: the composite weights, zero beyond the blur band
    notes: list[str] = field(default_factory=list)
    operation: dict[str, Any] = field(default_factory=dict)


def read_image(path: str, field_name: str = "init_image") -> np.ndarray:
    """An RGB uint8 array of an image file (EXIF orientation applied)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            return np.asarray(ImageOps.exif_transpose(opened).convert("RGB")).copy()
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise InvalidRequest(field_name, f"cannot read the image {path}: {exc}") from exc


def read_mask(path: str, width: int, height: int) -> tuple[np.ndarray, list[str]]:
    """The mask in ``path`` at ``width`` × ``height``, and notes (a mask of another size is scaled).

    A picture with transparency gives its transparent part as the mask (an image whose hole was
    erased in a paint program); any other picture is read as grey levels, white repainting.
    """
    from PIL import Image, UnidentifiedImageError

    notes = []
    try:
        with Image.open(path) as opened:
            image = opened.copy()
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise InvalidRequest("mask", f"cannot read the mask {path}: {exc}") from exc
    if "A" in image.getbands() or "transparency" in image.info:
        alpha = np.asarray(image.convert("RGBA"))[..., 3]
        grey = 255 - alpha if alpha.min() < 255 else np.asarray(image.convert("L"))
        image = Image.fromarray(np.ascontiguousarray(grey, dtype=np.uint8), "L")
    else:
        image = image.convert("L")
    if image.size != (width, height):
        notes.append(f"the mask ({image.width}×{image.height}) was scaled to the image's {width}×{height}")
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    mask = np.asarray(image, dtype=np.float32) / 255.0
    check_mask(mask)
    return mask, notes


def mask_from_alpha(path: str) -> np.ndarray | None:
    """The transparent part of an image as a mask, or None when it has no transparency."""
    from PIL import Image

    with Image.open(path) as opened:
        if "A" not in opened.getbands() and "transparency" not in opened.info:
            return None
        alpha = np.asarray(opened.convert("RGBA"))[..., 3]
    if alpha.min() == 255:
        return None
    return (255 - alpha).astype(np.float32) / 255.0


def check_mask(mask: np.ndarray) -> None:
    """An empty mask repaints nothing and a full one keeps nothing: both are mistakes worth naming."""
    if not (mask > _EMPTY).any():
        raise InvalidRequest("mask", "the mask is empty: nothing to repaint (paint the part to change in white)")
    if (mask >= 1 - _EMPTY).all():
        raise InvalidRequest(
            "mask", "the mask covers the whole image, so nothing is kept: leave the mask out to repaint all of it"
        )


def blur_band(radius: int) -> int:
    """How far (pixels) a feathered mask reaches beyond the painted one."""
    return 0 if radius <= 0 else math.ceil(3 * radius) + 1


def dilate(binary: np.ndarray, pixels: int) -> np.ndarray:
    """``binary`` grown by ``pixels`` in every direction (a square reach): a pixel is set when any
    pixel of the (2p+1)² window around it is — window sums, whose cost does not grow with the reach."""
    if pixels <= 0:
        return binary.copy()
    return _window_sums(binary.astype(np.float32), pixels) > 0.5


def feather(mask: np.ndarray, radius: int) -> np.ndarray:
    """The composite weights: ``mask`` blurred by ``radius`` and cut to zero beyond its blur band, so
    a pixel farther than ``blur_band(radius)`` from the painted mask is never touched."""
    from PIL import Image, ImageFilter

    painted = mask > _EMPTY
    if radius <= 0:
        return np.where(painted, mask, 0).astype(np.float32)
    image = Image.fromarray(np.round(np.clip(mask, 0, 1) * 255).astype(np.uint8), "L")
    blurred = np.asarray(image.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32) / 255.0
    return np.where(dilate(painted, blur_band(radius)), blurred, 0).astype(np.float32)


def composite(source: np.ndarray, painted: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``painted`` where the weights are 1, the source where they are 0, blended between; every
    pixel with weight 0 is the source's byte for byte."""
    w = weights[..., None].astype(np.float32)
    mixed = source.astype(np.float32) * (1 - w) + painted.astype(np.float32) * w
    out = np.clip(np.round(mixed), 0, 255).astype(np.uint8)
    keep = weights <= 0
    out[keep] = source[keep]
    return out


def fill_masked(image: np.ndarray, mask: np.ndarray, how: str, seed: int) -> np.ndarray:
    """What the masked area holds when repainting starts: the source ("original"), seeded noise
    ("noise"), or the surrounding colours smeared in ("blurred")."""
    if how == "original":
        return image
    inside = (mask > _EMPTY)[..., None]
    if how == "noise":
        noise = np.random.default_rng(seed).integers(0, 256, image.shape, dtype=np.uint8)
        return np.where(inside, noise, image)
    if how == "blurred":
        return np.where(inside, surrounding_colours(image, mask > _EMPTY), image)
    raise InvalidRequest("mask_fill", f"unknown fill {how!r}")


def surrounding_colours(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Each pixel of ``hole`` coloured from the pixels around it outside the hole (a normalised
    box blur, coarse to fine, so even a wide hole is filled from its edges)."""
    known = (~hole).astype(np.float32)
    if not known.any():
        return image
    height, width = hole.shape
    if max(height, width) > _FILL_SIDE:  # a smear needs no detail: worked out small, then enlarged
        factor = max(height, width) / _FILL_SIDE
        small_w, small_h = max(1, round(width / factor)), max(1, round(height / factor))
        small = resize(image, small_w, small_h)
        small_hole = resize(hole.astype(np.float32), small_w, small_h) > 0.001  # partly a hole: no colour to trust
        filled = resize(surrounding_colours(small, small_hole), width, height)
        return np.where(hole[..., None], filled, image)
    result = image.astype(np.float32)
    weighted = result * known[..., None]
    radius = max(hole.shape) // 4
    while radius >= 1:
        weight = _window_sums(known, radius)
        colour = _window_sums(weighted, radius) / np.maximum(weight, 1e-6)[..., None]
        # Finer passes overwrite coarser ones where they reach: detail near the edge, smooth inside.
        result = np.where((hole & (weight > 1e-3))[..., None], colour, result)
        radius //= 2
    return np.clip(np.round(result), 0, 255).astype(np.uint8)


def _window_sums(a: np.ndarray, radius: int) -> np.ndarray:
    """Sums over the (2r+1)² window around each pixel (zeros beyond the edge), by running sums:
    the cost does not grow with the radius. (Pillow's box blur takes 8-bit images only.)"""
    out = a.astype(np.float64)  # running sums in double precision: no drift across a large image
    for axis in (0, 1):
        n = out.shape[axis]
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius + 1, radius)
        running = np.cumsum(np.pad(out, pad), axis=axis)
        moved = np.moveaxis(running, axis, 0)
        out = np.moveaxis(moved[2 * radius + 1 : 2 * radius + 1 + n] - moved[:n], 0, axis)
    return out.astype(np.float32)


# -- only masked ----------------------------------------------------------------------


def crop_box(
    mask: np.ndarray, padding: int, aspect: float, *, multiple: int = 8, minimum: int = 64
) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) around the mask plus ``padding``, widened to ``aspect`` (the size
    the model paints at) and kept inside the image, as A1111's "inpaint at full resolution"."""
    height, width = mask.shape
    ys, xs = np.nonzero(mask > _EMPTY)
    left, right = int(xs.min()) - padding, int(xs.max()) + 1 + padding
    top, bottom = int(ys.min()) - padding, int(ys.max()) + 1 + padding
    box_w, box_h = max(right - left, minimum), max(bottom - top, minimum)
    if box_w / box_h < aspect:
        box_w = math.ceil(box_h * aspect)
    else:
        box_h = math.ceil(box_w / aspect)
    box_w, box_h = min(box_w, width), min(box_h, height)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    left = int(min(max(0, round(cx - box_w / 2)), width - box_w))
    top = int(min(max(0, round(cy - box_h / 2)), height - box_h))
    return left, top, left + box_w, top + box_h


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    if image.shape[1] == width and image.shape[0] == height:
        return image
    if image.dtype == np.float32:
        return np.asarray(Image.fromarray(image, "F").resize((width, height), Image.Resampling.BILINEAR))
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS))


# -- outpaint -------------------------------------------------------------------------


def outpaint_canvas(
    source: np.ndarray, sides: tuple[int, int, int, int], overlap: int = OUTPAINT_OVERLAP, *, fill: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The larger canvas (the source in place, the new area filled from its edge colours) and its
    mask: the new area plus ``overlap`` pixels into the source along each extended side (the seam)."""
    left, top, right, bottom = sides
    height, width = source.shape[:2]
    new_h, new_w = height + top + bottom, width + left + right
    canvas = np.zeros((new_h, new_w, 3), dtype=np.uint8)
    canvas[top : top + height, left : left + width] = source
    hole = np.ones((new_h, new_w), dtype=bool)
    hole[top : top + height, left : left + width] = False
    if fill:  # a diffusion model starts from these colours; the pattern painter needs none
        canvas = np.where(hole[..., None], surrounding_colours(canvas, hole), canvas)
    mask = hole.astype(np.float32)
    reach_w, reach_h = min(overlap, width // 4), min(overlap, height // 4)
    # The seam ramps from the new area into the picture, so old and new are blended, not butted.
    if left:
        mask[:, left : left + reach_w] = np.maximum(mask[:, left : left + reach_w], _ramp(reach_w)[::-1][None, :])
    if right:
        edge = left + width
        mask[:, edge - reach_w : edge] = np.maximum(mask[:, edge - reach_w : edge], _ramp(reach_w)[None, :])
    if top:
        mask[top : top + reach_h, :] = np.maximum(mask[top : top + reach_h, :], _ramp(reach_h)[::-1][:, None])
    if bottom:
        edge = top + height
        mask[edge - reach_h : edge, :] = np.maximum(mask[edge - reach_h : edge, :], _ramp(reach_h)[:, None])
    return canvas, mask


def _ramp(n: int) -> np.ndarray:
    """``n`` weights rising from near 0 to near 1 (the seam of an outpaint, outside to inside)."""
    return ((np.arange(n, dtype=np.float32) + 1) / (n + 1)).astype(np.float32)


def plan_edit(request: Any, *, max_side: int, fill_new_area: bool = True) -> EditPlan:
    """Read the source and the mask of ``request`` (or build the outpaint canvas) at full size."""
    source = read_image(request.init_image)
    height, width = source.shape[:2]
    if any(request.outpaint):
        left, top, right, bottom = request.outpaint
        new_w, new_h = width + left + right, height + top + bottom
        if max(new_w, new_h) > max_side:
            raise InvalidRequest(
                "outpaint",
                f"the outpainted image would be {new_w}×{new_h}, beyond the {max_side} pixels a side this model "
                "paints: extend by less",
            )
        canvas, mask = outpaint_canvas(source, request.outpaint, fill=fill_new_area)
        soft = feather(mask, request.mask_blur)
        # The seam is already a ramp; feathering it again must not reach further into the picture.
        soft = np.where(mask > 0, np.maximum(soft, mask), soft).astype(np.float32)
        operation = {"task": "outpaint", "outpaint": list(request.outpaint), "mask_blur": request.mask_blur}
        return EditPlan(canvas, mask, soft, [], operation)
    mask, notes = read_mask(request.mask, width, height)
    soft = feather(mask, request.mask_blur)
    operation = {
        "task": "inpaint",
        "strength": request.strength,
        "mask_blur": request.mask_blur,
        "only_masked": request.only_masked,
        "mask_fill": request.mask_fill,
    }
    if request.only_masked:
        operation["only_masked_padding"] = request.only_masked_padding
    return EditPlan(source, mask, soft, notes, operation)


def mask_png(mask: np.ndarray) -> bytes:
    """The mask as an 8-bit greyscale PNG (the companion file of an edit)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.round(np.clip(mask, 0, 1) * 255).astype(np.uint8), "L").save(buffer, format="PNG")
    return buffer.getvalue()


def round_to(value: int, multiple: int) -> int:
    return max(multiple, round(value / multiple) * multiple)

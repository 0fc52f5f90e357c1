"""Making images larger: upscaler models through spandrel (format ``upscaler``: ESRGAN, Real-ESRGAN
Compact, SwinIR, HAT, SPAN, …), and Lanczos resampling when there is no model (format ``lanczos``,
the bundled ``studio-lanczos``).

A model runs over tiles of the source with an overlap wider than its receptive field, so a 4×
upscale of a large image fits in memory and matches the untiled result within rounding; progress
is reported per tile and cancel is honoured between tiles. The tile side is chosen from the free
memory of the device unless the request names one. ``upscale_image`` is the same path for the
image engines' hires fix.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.capabilities import ModelInfo
from studio.core.errors import InvalidRequest, JobCancelled, ModelError
from studio.core.files import first_line
from studio.core.models import ModelSpec
from studio.core.outputs import EngineResult, GeneratedOutput
from studio.engines.base import RunContext, model_info
from studio.engines.devices import DeviceChoice, free_memory_bytes, library_versions
from studio.engines.inpaint import read_image
from studio.engines.library.upscalers import NON_COMMERCIAL_ARCHITECTURES
from studio.engines.registry import LANCZOS, UPSCALER

log = logging.getLogger(__name__)

# The largest side an upscaled image may have: beyond it the result alone would take gigabytes.
MAX_OUTPUT_SIDE = 16384
# Input pixels of context each tile gets on every side beyond the part it keeps: wider than the
# receptive field of the usual upscalers' last layers, so tiles join without seams.
TILE_OVERLAP = 16
MIN_TILE, MAX_TILE = 64, 1024
LANCZOS_NAME = "Lanczos"


@dataclass
class LoadedUpscaler:
    spec: ModelSpec
    device: DeviceChoice
    descriptor: Any = None  # a spandrel ImageModelDescriptor; None for Lanczos
    notes: list[str] = field(default_factory=list)

    @property
    def scale(self) -> int:
        return int(self.descriptor.scale) if self.descriptor is not None else 0

    @property
    def name(self) -> str:
        if self.descriptor is None:
            return LANCZOS_NAME
        return f"{self.spec.name} ({self.descriptor.architecture.name})"


def load_upscaler_file(path: Path, device: DeviceChoice, *, allow_pickle: bool = False) -> Any:
    """A spandrel descriptor for the model in ``path``, on ``device``, ready to run."""
    from studio.engines.spandrel_import import import_spandrel

    path = Path(path)
    if path.suffix != ".safetensors" and not allow_pickle:
        raise ModelError(
            f"{path.name} is a pickle file, which can run code when loaded: Studio loads upscalers from "
            ".safetensors, or from a pickle file only once you allow it for that model (Models ▸ Model manager)"
        )
    spandrel = import_spandrel()
    try:
        descriptor = spandrel.ModelLoader(device=device.device).load_from_file(str(path))
    except spandrel.UnsupportedModelError as exc:
        raise ModelError(f"spandrel cannot identify {path.name} as any architecture it knows") from exc
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(f"cannot load {path.name} as an upscaler: {first_line(exc)}") from exc
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.purpose not in ("SR", "Restoration"):
        purpose = getattr(descriptor, "purpose", type(descriptor).__name__)
        raise ModelError(f"{path.name} is a {descriptor.architecture.name} model for {purpose}, not an upscaler")
    licence = NON_COMMERCIAL_ARCHITECTURES.get(descriptor.architecture.id)
    if licence:
        log.warning(
            "%s uses %s, licensed for non-commercial use only (%s)", path.name, descriptor.architecture, licence
        )
    if device.device == "cuda" and descriptor.supports_half:
        descriptor.half()
    descriptor.eval()
    return descriptor


def choose_tile(descriptor: Any, device: DeviceChoice, requested: int = 0) -> int:
    """The tile side: the request's, else the largest that fits the free memory (64…1024)."""
    if requested:
        return max(16, requested)  # as asked (tests and tight memory use small tiles)
    free = free_memory_bytes(device)
    budget = free * 0.5 if free is not None else 2 * 2**30  # a CPU: a modest share of RAM
    element = 2 if device.device == "cuda" and descriptor.supports_half else 4
    width = max((int(p.shape[0]) for p in descriptor.model.parameters() if p.ndim == 4), default=64)
    # Live activations per input pixel: some feature maps at the model's width, the output at scale².
    per_pixel = element * (width * 24 + 3 * descriptor.scale**2 * 4)
    side = int(math.sqrt(budget / per_pixel)) // 32 * 32
    return int(min(MAX_TILE, max(MIN_TILE, side)))


def tiled_upscale(
    run: Callable[[Any], Any],
    image: np.ndarray,
    scale: int,
    tile: int,
    *,
    overlap: int = TILE_OVERLAP,
    on_tile: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> np.ndarray:
    """``image`` (H, W, 3 uint8) made ``scale`` times larger by ``run`` (a (1, 3, h, w) float tensor
    in 0..1 → (1, 3, h·s, w·s)), one tile at a time; each tile sees ``overlap`` pixels of context."""
    import torch

    height, width = image.shape[:2]
    out = np.empty((height * scale, width * scale, 3), dtype=np.uint8)
    source = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).unsqueeze(0)
    boxes = [(x, y) for y in range(0, height, tile) for x in range(0, width, tile)]
    for index, (x, y) in enumerate(boxes):
        if cancelled is not None and cancelled():
            raise JobCancelled()
        x1, y1 = min(x + tile, width), min(y + tile, height)
        ex0, ey0 = max(0, x - overlap), max(0, y - overlap)
        ex1, ey1 = min(width, x1 + overlap), min(height, y1 + overlap)
        piece = source[:, :, ey0:ey1, ex0:ex1].float() / 255.0
        with torch.inference_mode():
            result = run(piece)
        result = result[:, :, (y - ey0) * scale : (y1 - ey0) * scale, (x - ex0) * scale : (x1 - ex0) * scale]
        pixels = (result.float().clamp(0, 1) * 255).round().to(torch.uint8)[0].permute(1, 2, 0).cpu().numpy()
        out[y * scale : y1 * scale, x * scale : x1 * scale] = pixels
        if on_tile is not None:
            on_tile(index + 1, len(boxes))
    return out


def lanczos(image: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS))


def target_size(width: int, height: int, scale: float) -> tuple[int, int]:
    return max(1, round(width * scale)), max(1, round(height * scale))


def run_descriptor(descriptor: Any) -> Callable[[Any], Any]:
    parameter = next(descriptor.model.parameters())

    def run(piece: Any) -> Any:
        return descriptor(piece.to(device=parameter.device, dtype=parameter.dtype))

    return run


def upscale_with(
    descriptor: Any,
    image: np.ndarray,
    scale: float,
    device: DeviceChoice,
    *,
    tile: int = 0,
    on_tile: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """``image`` made ``scale`` times larger with ``descriptor`` (None: Lanczos); what was done, for the record.

    A model runs at its own scale; when ``scale`` differs, its result is resized to the size asked
    with Lanczos (and the record says so)."""
    height, width = image.shape[:2]
    new_w, new_h = target_size(width, height, scale)
    if descriptor is None:
        if on_tile is not None:
            on_tile(1, 1)
        return lanczos(image, new_w, new_h), {"upscaler": LANCZOS_NAME, "scale": scale}
    side = choose_tile(descriptor, device, tile)
    model_scale = int(descriptor.scale)
    out = tiled_upscale(run_descriptor(descriptor), image, model_scale, side, on_tile=on_tile, cancelled=cancelled)
    facts: dict[str, Any] = {
        "upscaler": descriptor.architecture.name,
        "architecture": descriptor.architecture.id,
        "model_scale": model_scale,
        "scale": scale,
        "tile": side,
        "tile_overlap": TILE_OVERLAP,
    }
    licence = NON_COMMERCIAL_ARCHITECTURES.get(descriptor.architecture.id)
    if licence:
        facts["architecture_licence"] = f"non-commercial: {licence}"
    if out.shape[:2] != (new_h, new_w):
        facts["resized"] = f"the model's {model_scale}× result resized to {scale:g}× with Lanczos"
        out = lanczos(out, new_w, new_h)
    return out, facts


# The last upscaler file a hires fix loaded, kept for the next one (a hires fix loads it beside the
# image model, so it is not in the worker's model cache).
_hires_cache: dict[str, Any] = {}
_hires_lock = threading.Lock()


def upscale_image(
    image: np.ndarray,
    scale: float,
    upscaler: str,
    device: DeviceChoice,
    ctx: RunContext,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The hires fix's upscale: with the model file ``upscaler`` ("": Lanczos)."""
    descriptor = None
    if upscaler:
        key = f"{Path(upscaler).resolve()}|{device.key}"
        with _hires_lock:
            descriptor = _hires_cache.get(key)
            if descriptor is None:
                _hires_cache.clear()
                descriptor = _hires_cache[key] = load_upscaler_file(Path(upscaler), device)
    out, facts = upscale_with(descriptor, image, scale, device, on_tile=progress, cancelled=lambda: ctx.cancelled)
    if upscaler:
        facts["file"] = Path(upscaler).name
    return out, facts


def check_upscale(request: Any, max_side: int = MAX_OUTPUT_SIDE) -> tuple[int, int]:
    """The output size of an upscale request; refuses an unreadable source or a result too large."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(request.init_image) as opened:
            width, height = opened.size
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise InvalidRequest("init_image", f"cannot read the image {request.init_image}: {exc}") from exc
    new_w, new_h = target_size(width, height, request.scale)
    if max(new_w, new_h) > max_side:
        raise InvalidRequest(
            "scale", f"{width}×{height} × {request.scale:g} would be {new_w}×{new_h}, beyond {max_side} pixels a side"
        )
    return new_w, new_h


class UpscalerEngine:
    """Format ``upscaler``: a spandrel model file (safetensors; pickle only with consent)."""

    format = UPSCALER
    kind = "upscaler"

    def check(self, spec: ModelSpec, request: Any) -> None:
        if getattr(request, "kind", "") != "upscale":
            raise InvalidRequest("model", f"{spec.name} is an upscaler: use it to upscale an image or in a hires fix")
        check_upscale(request)

    def describe(self, spec: ModelSpec) -> ModelInfo:
        return model_info(spec, ())

    def load(self, spec: ModelSpec, device: DeviceChoice) -> LoadedUpscaler:
        descriptor = load_upscaler_file(spec.path, device, allow_pickle=bool(spec.details.get("pickle_allowed")))
        return LoadedUpscaler(spec, device, descriptor)

    def generate(self, loaded: LoadedUpscaler, request: Any, ctx: RunContext) -> EngineResult:
        return _generate(loaded, request, ctx)

    def unload(self, loaded: LoadedUpscaler) -> None:
        if loaded.descriptor is not None:
            loaded.descriptor.to("cpu")
        loaded.descriptor = None


class LanczosEngine(UpscalerEngine):
    """Format ``lanczos``: Pillow's Lanczos resampling, the upscaler when no model is installed."""

    format = LANCZOS

    def load(self, spec: ModelSpec, device: DeviceChoice) -> LoadedUpscaler:
        return LoadedUpscaler(spec, device, None)


def _generate(loaded: LoadedUpscaler, request: Any, ctx: RunContext) -> EngineResult:
    image = read_image(request.init_image)
    started = time.perf_counter()
    out, facts = upscale_with(
        loaded.descriptor,
        image,
        request.scale,
        loaded.device,
        tile=request.tile,
        on_tile=lambda done, total: ctx.progress(done, total, phase="upscale"),
        cancelled=lambda: ctx.cancelled,
    )
    ctx.raise_if_cancelled()
    height, width = out.shape[:2]
    info = {"index": 0, "width": width, "height": height, "upscaler": facts["upscaler"]}
    runtime: dict[str, Any] = {
        **loaded.device.to_dict(),
        "pipeline": "Lanczos" if loaded.descriptor is None else "spandrel",
        "upscale": facts,
        "seconds": round(time.perf_counter() - started, 3),
        "versions": library_versions(),
    }
    if loaded.descriptor is not None:
        from studio.engines import spandrel_import

        runtime["spandrel_import"] = spandrel_import.imported_with
    operation = {"action": "c2pa.resized", "task": "upscale", **facts}
    return make_result([GeneratedOutput("image", out, info)], loaded.spec.provenance(), runtime, operation)


def make_result(
    outputs: list[GeneratedOutput], model: dict[str, Any], runtime: dict[str, Any], operation: dict[str, Any]
) -> EngineResult:
    """An ``EngineResult`` that names the edit it made (the record's ``derived_from.operation``)."""
    return EngineResult(outputs, model, runtime, operation=operation)

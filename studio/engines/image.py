"""Text-to-image with local diffusers pipelines: seeds, step progress, cancel within a step.

Live previews, image-to-image and the memory options are still to come (see the image issue).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers import AutoPipelineForText2Image
from diffusers.utils import logging as diffusers_logging

from studio.core.errors import InvalidRequest, JobCancelled, ModelError
from studio.core.outputs import EngineResult, GeneratedOutput
from studio.core.requests import ImageRequest
from studio.engines.base import RunContext
from studio.engines.devices import DeviceChoice, library_versions
from studio.engines.models import ModelSpec

diffusers_logging.disable_progress_bar()  # progress reaches the user as events, not on stderr


@dataclass
class LoadedPipeline:
    spec: ModelSpec
    device: DeviceChoice
    pipe: Any
    default_scheduler: Any

    def accepts(self, name: str) -> bool:
        return name in inspect.signature(self.pipe.__call__).parameters


class ImageEngine:
    kind = "image"

    def load(self, spec: ModelSpec, device: DeviceChoice) -> LoadedPipeline:
        if spec.kind != "image" or not spec.runnable:
            raise ModelError(f"cannot load {spec.name} as an image model: {spec.reason or spec.kind}")
        try:
            pipe = AutoPipelineForText2Image.from_pretrained(
                spec.path, local_files_only=True, use_safetensors=True, dtype=device.dtype
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"cannot load {spec.name} as an image pipeline: {str(exc).splitlines()[0][:300]}") from exc
        pipe.to(device.device)
        pipe.set_progress_bar_config(disable=True)
        return LoadedPipeline(spec, device, pipe, pipe.scheduler)

    def unload(self, loaded: LoadedPipeline) -> None:
        loaded.pipe.to("cpu")

    def generate(self, loaded: LoadedPipeline, request: ImageRequest, ctx: RunContext) -> EngineResult:
        pipe = loaded.pipe
        pipe.scheduler = self._scheduler(loaded, request.scheduler)
        seed = request.seed if request.seed is not None else 0
        # A CPU generator gives the same noise on every device, so a seed means the same image.
        generator = torch.Generator("cpu").manual_seed(seed)

        def on_step_end(pipeline: Any, step: int, _timestep: Any, callback_kwargs: dict) -> dict:
            ctx.progress(step + 1, request.steps)
            if ctx.cancelled:
                pipeline._interrupt = True  # the loop skips the rest; its decoded image is discarded
            return callback_kwargs

        kwargs: dict[str, Any] = {
            "prompt": request.prompt,
            "width": request.width,
            "height": request.height,
            "num_inference_steps": request.steps,
            "guidance_scale": request.guidance,
            "num_images_per_prompt": request.count,
            "generator": generator,
            "output_type": "np",
            "callback_on_step_end": on_step_end,
        }
        if request.negative and loaded.accepts("negative_prompt"):
            kwargs["negative_prompt"] = request.negative
        with torch.inference_mode():
            result = pipe(**kwargs)
        if ctx.cancelled:
            raise JobCancelled()
        images = np.clip(np.round(np.asarray(result.images) * 255), 0, 255).astype(np.uint8)
        outputs = [
            GeneratedOutput("image", image, {"index": index, "width": request.width, "height": request.height})
            for index, image in enumerate(images)
        ]
        runtime = {
            **loaded.device.to_dict(),
            "scheduler": type(pipe.scheduler).__name__,
            "pipeline": type(pipe).__name__,
            "versions": library_versions(),
        }
        return EngineResult(outputs, loaded.spec.provenance(), runtime)

    def _scheduler(self, loaded: LoadedPipeline, name: str) -> Any:
        if not name:
            return loaded.default_scheduler
        choices = {cls.__name__: cls for cls in loaded.default_scheduler.compatibles}
        if name not in choices:
            raise InvalidRequest(
                "scheduler", f"scheduler {name!r} does not fit this model; choose one of {sorted(choices)}"
            )
        return choices[name].from_config(loaded.default_scheduler.config)

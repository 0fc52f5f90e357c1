"""Music from local diffusers audio pipelines (format ``diffusers-audio``): Stable Audio, AudioLDM 2,
MusicLDM — a prompt and a duration in, progress per denoising step, cancel between steps."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from studio.core.capabilities import Control, ModelInfo
from studio.core.errors import InvalidRequest, JobCancelled, ModelError
from studio.core.files import first_line
from studio.core.models import ModelSpec
from studio.core.outputs import EngineResult, GeneratedOutput
from studio.core.requests import MusicRequest
from studio.engines.audio import peak_normalise
from studio.engines.base import RunContext, model_info
from studio.engines.devices import DeviceChoice, library_versions
from studio.engines.registry import DIFFUSERS_AUDIO


@dataclass
class LoadedAudioPipeline:
    spec: ModelSpec
    device: DeviceChoice
    pipe: Any
    notes: list[str] = field(default_factory=list)

    @property
    def sample_rate(self) -> int:
        vae = getattr(self.pipe, "vae", None)
        rate = getattr(getattr(vae, "config", None), "sampling_rate", None)
        return int(rate or 16000)


class DiffusersAudioEngine:
    format = DIFFUSERS_AUDIO
    kind = "music"

    def check(self, spec: ModelSpec, request: MusicRequest) -> None:
        pass  # a clip or melody it cannot take is refused from its capabilities, by the worker

    def describe(self, spec: ModelSpec) -> ModelInfo:
        reasons = {
            Control.TEMPERATURE: f"{spec.name} denoises audio: it has no sampling temperature",
            Control.TOP_K: f"{spec.name} denoises audio: it has no top-k sampling",
            Control.AUDIO_INPUT: f"{spec.name} cannot continue a clip; MusicGen models can",
            Control.MELODY_INPUT: f"{spec.name} cannot follow a melody; a MusicGen Melody model can",
        }
        return model_info(spec, {Control.GUIDANCE}, reasons)

    def load(self, spec: ModelSpec, device: DeviceChoice) -> LoadedAudioPipeline:
        import diffusers

        try:
            pipe = diffusers.DiffusionPipeline.from_pretrained(
                spec.path,
                local_files_only=True,
                use_safetensors=not spec.details.get("pickle_allowed"),
                dtype=device.dtype,
            )
        except ImportError as exc:  # e.g. Stable Audio's scheduler needs torchsde
            missing = " ".join(str(exc).split())[:300]
            raise ModelError(f"{spec.name} needs a Python package that is not installed: {missing}") from exc
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"cannot load {spec.name} as a music model: {first_line(exc)}") from exc
        pipe.set_progress_bar_config(disable=True)
        pipe.to(device.device)
        return LoadedAudioPipeline(spec, device, pipe)

    def unload(self, loaded: LoadedAudioPipeline) -> None:
        loaded.pipe.to("cpu")

    def generate(self, loaded: LoadedAudioPipeline, request: MusicRequest, ctx: RunContext) -> EngineResult:
        seed = request.seed if request.seed is not None else 0
        audio = peak_normalise(self._generate_pipeline(loaded, request, ctx, seed))
        rate = loaded.sample_rate
        info = {"sample_rate": rate, "channels": int(audio.shape[1]), "duration_s": round(audio.shape[0] / rate, 4)}
        runtime: dict[str, Any] = {
            **loaded.device.to_dict(),
            "model_class": loaded.spec.model_class,
            "versions": library_versions(),
        }
        if loaded.notes:
            runtime["notes"] = list(loaded.notes)
        return EngineResult([GeneratedOutput("music", audio, info)], loaded.spec.provenance(), runtime)

    def _generate_pipeline(self, loaded: LoadedAudioPipeline, request: MusicRequest, ctx: RunContext, seed: int) -> Any:
        pipe = loaded.pipe
        parameters = inspect.signature(pipe.__call__).parameters
        kwargs: dict[str, Any] = {
            "prompt": request.prompt,
            "guidance_scale": request.guidance,
            "generator": torch.Generator("cpu").manual_seed(seed),
            "output_type": "np",
        }
        for name in ("audio_end_in_s", "audio_length_in_s"):
            if name in parameters:
                kwargs[name] = request.duration
        total = int(parameters["num_inference_steps"].default or 0) if "num_inference_steps" in parameters else 0

        def on_step(step: int, _timestep: Any, _latents: Any) -> None:
            ctx.progress(step + 1, total or step + 1)
            if ctx.cancelled:
                raise JobCancelled()  # these pipelines have no interrupt flag: leave the loop

        if "callback" in parameters:
            kwargs.update(callback=on_step, callback_steps=1)
        try:
            with torch.inference_mode():
                result = pipe(**kwargs)
        except ValueError as exc:
            raise InvalidRequest("duration", f"{loaded.spec.name} cannot make this: {exc}") from exc
        audio = np.asarray(result.audios[0], dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[:, None]
        elif audio.shape[0] < audio.shape[1]:
            audio = audio.T  # (channels, samples) → (samples, channels)
        return audio[: round(request.duration * loaded.sample_rate)]

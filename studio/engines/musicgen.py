"""Music from local MusicGen models (transformers; format ``musicgen``): any length, continuing a clip,
following a melody.

MusicGen writes 50 frames of codes per second, and its delay pattern costs ``codebooks - 1``
extra tokens, so a duration becomes ``ceil(seconds × frame rate) + codebooks - 1`` new tokens
and the decoded audio is trimmed to the exact length asked for. Longer than the model's window
(30 s), it continues itself: each new window is prompted with the last part of the audio so
far, as audiocraft does with ``extend_stride``.

``generate()`` gives no per-step streamer output for MusicGen, but calls a ``StoppingCriteria``
every step: that gives progress and cancel. Stopping early makes ``generate()`` raise a
``RuntimeError`` in its delay-pattern reshape; when the user cancelled, that is a clean cancel.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from studio.core.capabilities import Control, ModelInfo
from studio.core.errors import InvalidRequest, JobCancelled, ModelError
from studio.core.files import file_sha256, first_line
from studio.core.models import ModelSpec
from studio.core.outputs import EngineResult, GeneratedOutput
from studio.core.requests import MusicRequest
from studio.engines.audio import PEAK_LEVEL, fit_channels, peak_normalise, read_audio
from studio.engines.base import RunContext, model_info
from studio.engines.devices import DeviceChoice, library_versions
from studio.engines.melody_chroma import extractor_settings, melody_chroma
from studio.engines.registry import MUSICGEN

log = logging.getLogger(__name__)

MELODY_CLASS = "MusicgenMelodyForConditionalGeneration"
# The longest stretch MusicGen writes in one go (it was trained on 30 s clips), and how far each
# further window moves on: the remaining 12 s of a window are the prompt that keeps it coherent.
MAX_WINDOW_S = 30.0
EXTEND_STRIDE_FRACTION = 0.6


@dataclass
class LoadedMusicGen:
    spec: ModelSpec
    device: DeviceChoice
    model: Any
    tokenizer: Any
    notes: list[str] = field(default_factory=list)

    @property
    def sample_rate(self) -> int:
        return int(self.model.config.audio_encoder.sampling_rate)

    @property
    def channels(self) -> int:
        return int(self.model.decoder.config.audio_channels)

    @property
    def frame_rate(self) -> int:
        return int(self.model.audio_encoder.config.frame_rate)

    @property
    def codebooks(self) -> int:
        return int(self.model.decoder.config.num_codebooks)

    @property
    def window_s(self) -> float:
        """The longest stretch one ``generate()`` call may write, by the decoder's positions."""
        positions = int(getattr(self.model.decoder.config, "max_position_embeddings", 2048))
        return min(MAX_WINDOW_S, (positions - self.codebooks - 1) / self.frame_rate)


class MusicGenEngine:
    format = MUSICGEN
    kind = "music"

    def check(self, spec: ModelSpec, request: MusicRequest) -> None:
        """Refuse what cannot work before any weights load."""
        for name in ("audio_prompt", "melody", "init_audio"):
            path = getattr(request, name)
            if path:
                read_audio(path, name)
        if request.edit == "extend" and request.extend_left > 0:
            raise InvalidRequest(
                "extend_left", f"{spec.name} continues a clip on the right only; ACE-Step models extend on the left too"
            )

    def describe(self, spec: ModelSpec) -> ModelInfo:
        """What the panel offers for this model, from its class name (no weights)."""
        uses = {Control.GUIDANCE, Control.TEMPERATURE, Control.TOP_K, Control.AUDIO_INPUT, Control.EXTEND}
        if spec.model_class == MELODY_CLASS:
            uses.add(Control.MELODY_INPUT)
        reasons = {Control.MELODY_INPUT: f"{spec.name} cannot follow a melody; a MusicGen Melody model can"}
        return model_info(spec, uses, reasons, window_s=MAX_WINDOW_S)

    def warm_up(self) -> None:
        """EnCodec wraps its convolutions in weight norm while building on the meta device; the
        first time torch does that it registers its meta kernels in Python, holding the
        interpreter ~0.3–1 s — in the first music job that froze the window. Do it at launch."""
        with torch.device("meta"):
            torch.nn.utils.parametrizations.weight_norm(torch.nn.ConvTranspose1d(2, 2, 3))

    # -- loading ----------------------------------------------------------------------

    def load(self, spec: ModelSpec, device: DeviceChoice) -> LoadedMusicGen:
        import transformers

        try:
            model_cls = getattr(transformers, spec.model_class)
            # EnCodec's decoder overflows in half precision; MusicGen runs in float32 off CUDA and
            # in the device's half precision on CUDA with the audio decoder kept in float32.
            dtype = device.dtype if device.device == "cuda" else torch.float32
            model = model_cls.from_pretrained(
                spec.path, local_files_only=True, use_safetensors=not spec.details.get("pickle_allowed"), dtype=dtype
            )
            if dtype != torch.float32:
                model.audio_encoder.to(torch.float32)
            model.to(device.device).eval()
            tokenizer = transformers.AutoTokenizer.from_pretrained(spec.path, local_files_only=True)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"cannot load {spec.name} as a music model: {first_line(exc)}") from exc
        return LoadedMusicGen(spec, device, model, tokenizer)

    def unload(self, loaded: LoadedMusicGen) -> None:
        loaded.model.to("cpu")

    # -- generating ----------------------------------------------------------------------

    def generate(self, loaded: LoadedMusicGen, request: MusicRequest, ctx: RunContext) -> EngineResult:
        if request.edit == "extend":
            return self._extend_right(loaded, request, ctx)
        seed = request.seed if request.seed is not None else 0
        audio = peak_normalise(self._generate_musicgen(loaded, request, ctx, seed))
        rate = loaded.sample_rate
        info: dict[str, Any] = {
            "sample_rate": rate,
            "channels": int(audio.shape[1]),
            "duration_s": round(audio.shape[0] / rate, 4),
        }
        runtime: dict[str, Any] = {
            **loaded.device.to_dict(),
            "model_class": loaded.spec.model_class,
            "versions": library_versions(),
        }
        if request.audio_prompt:
            runtime["audio_prompt_sha256"] = file_sha256(Path(request.audio_prompt))
            info["continued_s"] = round(audio.shape[0] / rate - request.duration, 4)
        if request.melody:
            runtime["melody_sha256"] = file_sha256(Path(request.melody))
        if loaded.notes:
            runtime["notes"] = list(loaded.notes)
        return EngineResult([GeneratedOutput("music", audio, info)], loaded.spec.provenance(), runtime)

    def _extend_right(self, loaded: LoadedMusicGen, request: MusicRequest, ctx: RunContext) -> EngineResult:
        """Extend on the right: a continuation of the clip whose source part is kept exactly as it
        was read (not re-levelled), and whose new part is only scaled down if it would clip."""
        as_continuation = dataclasses.replace(
            request, audio_prompt=request.init_audio, init_audio="", edit="", duration=request.extend_right
        )
        seed = request.seed if request.seed is not None else 0
        audio = self._generate_musicgen(loaded, as_continuation, ctx, seed)
        source = fit_channels(read_audio(request.init_audio, "init_audio", loaded.sample_rate), loaded.channels)
        new = audio[len(source) :]
        peak = float(np.max(np.abs(new))) if new.size else 0.0
        if peak > PEAK_LEVEL:
            new = new * (PEAK_LEVEL / peak)
        audio = np.concatenate([source, new]).astype(np.float32)
        rate = loaded.sample_rate
        info = {"sample_rate": rate, "channels": int(audio.shape[1]), "duration_s": round(len(audio) / rate, 4)}
        runtime = {**loaded.device.to_dict(), "model_class": loaded.spec.model_class, "versions": library_versions()}
        operation = {"action": "c2pa.edited", "task": "extend", "left_s": 0.0, "right_s": request.extend_right}
        outputs = [GeneratedOutput("music", audio, info)]
        return EngineResult(outputs, loaded.spec.provenance(), runtime, operation=operation)

    def _generate_musicgen(self, loaded: LoadedMusicGen, request: MusicRequest, ctx: RunContext, seed: int) -> Any:
        rate, window = loaded.sample_rate, loaded.window_s
        stride = max(1.0 / loaded.frame_rate, window * EXTEND_STRIDE_FRACTION)
        context_s = window - stride
        prompt_audio = None
        if request.audio_prompt:
            prompt_audio = fit_channels(read_audio(request.audio_prompt, "audio_prompt", rate), loaded.channels)
        # The new seconds, window by window: a first window as long as allowed, then strides.
        first = min(request.duration, window if prompt_audio is None else stride)
        chunks = [first]
        while sum(chunks) < request.duration - 1e-6:
            chunks.append(min(stride, request.duration - sum(chunks)))
        tokens = [self._new_tokens(loaded, seconds) for seconds in chunks]
        progress = _TokenProgress(ctx, sum(tokens))
        inputs = self._text_inputs(loaded, request.prompt)
        melody_features = self._melody_inputs(loaded, request)
        torch.manual_seed(seed)
        parts: list[np.ndarray] = [] if prompt_audio is None else [prompt_audio]
        for seconds, new_tokens in zip(chunks, tokens, strict=True):
            so_far = np.concatenate(parts) if parts else None
            context = None
            if so_far is not None:
                context = so_far[-round(min(context_s, len(so_far) / rate) * rate) :]
            audio = self._musicgen_call(loaded, request, inputs, melody_features, context, new_tokens, progress)
            skip = 0 if context is None else len(context)
            new = audio[skip : skip + round(seconds * rate)]
            parts.append(new)
        return np.concatenate(parts).astype(np.float32)

    def _text_inputs(self, loaded: LoadedMusicGen, prompt: str) -> dict[str, Any]:
        inputs = dict(loaded.tokenizer([prompt], return_tensors="pt", padding=True))
        if inputs["input_ids"].shape[-1] == 0:
            # Continuing a clip with no words: one end-of-text token stands for "no description".
            tokenizer = loaded.tokenizer
            token = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id or 0
            inputs = {"input_ids": torch.tensor([[token]]), "attention_mask": torch.ones(1, 1, dtype=torch.long)}
        return {name: value.to(loaded.device.device) for name, value in inputs.items()}

    def _new_tokens(self, loaded: LoadedMusicGen, seconds: float) -> int:
        # The delay pattern staggers the codebooks: the last one lags by codebooks - 1 frames.
        return math.ceil(seconds * loaded.frame_rate) + loaded.codebooks - 1

    def _musicgen_call(
        self,
        loaded: LoadedMusicGen,
        request: MusicRequest,
        inputs: Any,
        melody_features: dict[str, Any],
        context: np.ndarray | None,
        new_tokens: int,
        progress: _TokenProgress,
    ) -> np.ndarray:
        from transformers import StoppingCriteriaList

        kwargs: dict[str, Any] = {
            **inputs,
            **melody_features,
            "max_new_tokens": new_tokens,
            "guidance_scale": request.guidance if request.guidance > 0 else None,
            "stopping_criteria": StoppingCriteriaList([progress.criteria()]),
        }
        if request.temperature > 0:
            kwargs.update(do_sample=True, temperature=request.temperature, top_k=request.top_k or None)
        else:
            kwargs["do_sample"] = False
        if context is not None and len(context):
            values = torch.from_numpy(np.ascontiguousarray(context.T))[None].to(loaded.device.device)
            kwargs["input_values"] = values
            kwargs["padding_mask"] = torch.ones(1, values.shape[-1], dtype=torch.long, device=values.device)
        try:
            with torch.inference_mode():
                output = loaded.model.generate(**kwargs)
        except RuntimeError:
            if progress.ctx.cancelled:
                raise JobCancelled() from None  # generate() stopped early: its reshape fails then
            raise
        if progress.ctx.cancelled:
            raise JobCancelled()
        return output[0].float().cpu().numpy().T  # (samples, channels)

    def _melody_inputs(self, loaded: LoadedMusicGen, request: MusicRequest) -> dict[str, Any]:
        if not request.melody:
            return {}
        # The chroma in numpy (melody_chroma): the extractor's own path needs torchaudio, which
        # rarely loads beside a CPU torch build.
        tune = read_audio(request.melody, "melody", loaded.sample_rate)
        settings = {**extractor_settings(loaded.spec.path), "sampling_rate": loaded.sample_rate}
        features = {"input_features": torch.from_numpy(melody_chroma(tune.mean(axis=1), settings))}
        return {"input_features": features["input_features"].to(loaded.device.device, loaded.model.dtype)}


class _TokenProgress:
    """Counts new tokens across windows and stops ``generate()`` when the user cancels."""

    def __init__(self, ctx: RunContext, total: int) -> None:
        self.ctx = ctx
        self.total = total
        self.done = 0

    def criteria(self) -> Any:
        from transformers import StoppingCriteria

        progress = self

        class _StepHook(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                progress.done += 1
                progress.ctx.progress(min(progress.done, progress.total), progress.total)
                return torch.full(
                    (input_ids.shape[0],), progress.ctx.cancelled, dtype=torch.bool, device=input_ids.device
                )

        return _StepHook()

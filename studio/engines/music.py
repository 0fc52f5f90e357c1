"""Music from local models: MusicGen (transformers) and diffusers audio pipelines.

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

import inspect
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from studio.core.errors import InvalidRequest, JobCancelled, ModelError
from studio.core.outputs import EngineResult, GeneratedOutput
from studio.core.requests import MusicRequest
from studio.engines import melody, synth
from studio.engines.base import RunContext
from studio.engines.devices import DeviceChoice, library_versions
from studio.engines.fingerprint import file_sha256
from studio.engines.models import ModelSpec

log = logging.getLogger(__name__)

MUSICGEN_CLASSES = {"MusicgenForConditionalGeneration", "MusicgenMelodyForConditionalGeneration"}
# The longest stretch MusicGen writes in one go (it was trained on 30 s clips), and how far each
# further window moves on: the remaining 12 s of a window are the prompt that keeps it coherent.
MAX_WINDOW_S = 30.0
EXTEND_STRIDE_FRACTION = 0.6
# Peak level after normalising: -1 dBFS leaves headroom for lossy export formats.
PEAK_LEVEL = 10 ** (-1 / 20)


@dataclass
class LoadedMusicModel:
    spec: ModelSpec
    device: DeviceChoice
    model: Any
    tokenizer: Any = None
    pipe: Any = None  # a diffusers audio pipeline instead of MusicGen
    notes: list[str] = field(default_factory=list)

    @property
    def sample_rate(self) -> int:
        if self.pipe is not None:
            vae = getattr(self.pipe, "vae", None)
            rate = getattr(getattr(vae, "config", None), "sampling_rate", None)
            return int(rate or 16000)
        return int(self.model.config.audio_encoder.sampling_rate)

    @property
    def channels(self) -> int:
        return int(self.model.decoder.config.audio_channels) if self.pipe is None else 0

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


class MusicEngine:
    kind = "music"

    def check(self, spec: ModelSpec, request: MusicRequest) -> None:
        """Refuse what cannot work before any weights load."""
        for name in ("audio_prompt", "melody"):
            path = getattr(request, name)
            if path:
                read_audio(path, name)
        is_melody = spec.details.get("class") == "MusicgenMelodyForConditionalGeneration"
        if request.melody and not is_melody:
            raise InvalidRequest("melody", f"{spec.name} cannot follow a melody; a MusicGen Melody model can")
        if spec.details.get("class") not in MUSICGEN_CLASSES and request.audio_prompt:
            raise InvalidRequest("audio_prompt", f"{spec.name} cannot continue a clip; MusicGen models can")

    def describe(self, spec: ModelSpec) -> dict[str, Any]:
        """What the panel offers for this model, from its class name (no weights)."""
        cls_name = str(spec.details.get("class", ""))
        if cls_name == melody.FORMAT:
            return {"melody": False, "continuation": False, "window_s": None, "symbolic": True, "hint": melody.HINT}
        return {
            "melody": cls_name == "MusicgenMelodyForConditionalGeneration",
            "continuation": cls_name in MUSICGEN_CLASSES,
            "window_s": MAX_WINDOW_S if cls_name in MUSICGEN_CLASSES else None,
        }

    def warm_up(self) -> None:
        """EnCodec wraps its convolutions in weight norm while building on the meta device; the
        first time torch does that it registers its meta kernels in Python, holding the
        interpreter ~0.3–1 s — in the first music job that froze the window. Do it at launch."""
        with torch.device("meta"):
            torch.nn.utils.parametrizations.weight_norm(torch.nn.ConvTranspose1d(2, 2, 3))

    # -- loading ----------------------------------------------------------------------

    def load(self, spec: ModelSpec, device: DeviceChoice) -> LoadedMusicModel:
        if spec.kind != "music" or not spec.runnable:
            raise ModelError(f"cannot load {spec.name} as a music model: {spec.reason or spec.kind}")
        cls_name = str(spec.details.get("class", ""))
        try:
            if cls_name == melody.FORMAT:
                return melody.load(spec, device)
            if cls_name in MUSICGEN_CLASSES:
                return self._load_musicgen(spec, device, cls_name)
            return self._load_pipeline(spec, device)
        except ImportError as exc:  # e.g. Stable Audio's scheduler needs torchsde
            missing = " ".join(str(exc).split())[:300]
            raise ModelError(f"{spec.name} needs a Python package that is not installed: {missing}") from exc
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"cannot load {spec.name} as a music model: {str(exc).splitlines()[0][:300]}") from exc

    def _load_musicgen(self, spec: ModelSpec, device: DeviceChoice, cls_name: str) -> LoadedMusicModel:
        import transformers

        model_cls = getattr(transformers, cls_name)
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
        return LoadedMusicModel(spec, device, model, tokenizer)

    def _load_pipeline(self, spec: ModelSpec, device: DeviceChoice) -> LoadedMusicModel:
        import diffusers

        pipe = diffusers.DiffusionPipeline.from_pretrained(
            spec.path, local_files_only=True, use_safetensors=not spec.details.get("pickle_allowed"), dtype=device.dtype
        )
        pipe.set_progress_bar_config(disable=True)
        pipe.to(device.device)
        return LoadedMusicModel(spec, device, None, pipe=pipe)

    def unload(self, loaded: LoadedMusicModel | melody.LoadedMelodyModel) -> None:
        if isinstance(loaded, melody.LoadedMelodyModel):
            loaded.model.to("cpu")
            return
        (loaded.pipe if loaded.pipe is not None else loaded.model).to("cpu")

    # -- generating ----------------------------------------------------------------------

    def generate(
        self, loaded: LoadedMusicModel | melody.LoadedMelodyModel, request: MusicRequest, ctx: RunContext
    ) -> EngineResult:
        if isinstance(loaded, melody.LoadedMelodyModel):
            return self._generate_melody(loaded, request, ctx)
        seed = request.seed if request.seed is not None else 0
        if loaded.pipe is not None:
            audio = self._generate_pipeline(loaded, request, ctx, seed)
        else:
            audio = self._generate_musicgen(loaded, request, ctx, seed)
        audio = peak_normalise(audio)
        rate = loaded.sample_rate
        info = {
            "sample_rate": rate,
            "channels": int(audio.shape[1]),
            "duration_s": round(audio.shape[0] / rate, 4),
        }
        runtime: dict[str, Any] = {
            **loaded.device.to_dict(),
            "model_class": str(loaded.spec.details.get("class", "")),
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

    def _generate_melody(
        self, loaded: melody.LoadedMelodyModel, request: MusicRequest, ctx: RunContext
    ) -> EngineResult:
        audio, midi, facts = melody.generate(loaded, request, ctx)
        info = {
            "sample_rate": synth.SAMPLE_RATE,
            "channels": 1,
            "duration_s": round(audio.shape[0] / synth.SAMPLE_RATE, 4),
            "tune": facts,
        }
        runtime = {**loaded.device.to_dict(), "model_class": melody.FORMAT, "versions": library_versions()}
        output = GeneratedOutput("music", audio, info, attachments={".mid": midi})
        return EngineResult([output], loaded.spec.provenance(), runtime)

    def _generate_musicgen(self, loaded: LoadedMusicModel, request: MusicRequest, ctx: RunContext, seed: int) -> Any:
        rate, window = loaded.sample_rate, loaded.window_s
        stride = max(1.0 / loaded.frame_rate, window * EXTEND_STRIDE_FRACTION)
        context_s = window - stride
        prompt_audio = None
        if request.audio_prompt:
            prompt_audio = _fit_channels(read_audio(request.audio_prompt, "audio_prompt", rate), loaded.channels)
        # The new seconds, window by window: a first window as long as allowed, then strides.
        first = min(request.duration, window if prompt_audio is None else stride)
        chunks = [first]
        while sum(chunks) < request.duration - 1e-6:
            chunks.append(min(stride, request.duration - sum(chunks)))
        tokens = [self._new_tokens(loaded, seconds) for seconds in chunks]
        progress = _TokenProgress(ctx, sum(tokens))
        inputs = self._text_inputs(loaded, request.prompt)
        melody = self._melody_inputs(loaded, request)
        torch.manual_seed(seed)
        parts: list[np.ndarray] = [] if prompt_audio is None else [prompt_audio]
        for seconds, new_tokens in zip(chunks, tokens, strict=True):
            so_far = np.concatenate(parts) if parts else None
            context = None
            if so_far is not None:
                context = so_far[-round(min(context_s, len(so_far) / rate) * rate) :]
            audio = self._musicgen_call(loaded, request, inputs, melody, context, new_tokens, progress)
            skip = 0 if context is None else len(context)
            new = audio[skip : skip + round(seconds * rate)]
            parts.append(new)
        return np.concatenate(parts).astype(np.float32)

    def _text_inputs(self, loaded: LoadedMusicModel, prompt: str) -> dict[str, Any]:
        inputs = dict(loaded.tokenizer([prompt], return_tensors="pt", padding=True))
        if inputs["input_ids"].shape[-1] == 0:
            # Continuing a clip with no words: one end-of-text token stands for "no description".
            tokenizer = loaded.tokenizer
            token = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id or 0
            inputs = {"input_ids": torch.tensor([[token]]), "attention_mask": torch.ones(1, 1, dtype=torch.long)}
        return {name: value.to(loaded.device.device) for name, value in inputs.items()}

    def _new_tokens(self, loaded: LoadedMusicModel, seconds: float) -> int:
        # The delay pattern staggers the codebooks: the last one lags by codebooks - 1 frames.
        return math.ceil(seconds * loaded.frame_rate) + loaded.codebooks - 1

    def _musicgen_call(
        self,
        loaded: LoadedMusicModel,
        request: MusicRequest,
        inputs: Any,
        melody: dict[str, Any],
        context: np.ndarray | None,
        new_tokens: int,
        progress: _TokenProgress,
    ) -> np.ndarray:
        from transformers import StoppingCriteriaList

        kwargs: dict[str, Any] = {
            **inputs,
            **melody,
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

    def _melody_inputs(self, loaded: LoadedMusicModel, request: MusicRequest) -> dict[str, Any]:
        if not request.melody:
            return {}
        try:
            from transformers import MusicgenMelodyFeatureExtractor

            extractor = MusicgenMelodyFeatureExtractor(sampling_rate=loaded.sample_rate)
            melody = read_audio(request.melody, "melody", loaded.sample_rate)
            features = extractor(melody.mean(axis=1), sampling_rate=loaded.sample_rate, return_tensors="pt")
        except ImportError as exc:
            raise ModelError(
                f"following a melody needs torchaudio, which is not installed ({exc}); "
                "install the torchaudio build that matches your torch"
            ) from exc
        return {"input_features": features["input_features"].to(loaded.device.device, loaded.model.dtype)}

    def _generate_pipeline(self, loaded: LoadedMusicModel, request: MusicRequest, ctx: RunContext, seed: int) -> Any:
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


def read_audio(path: str, field_name: str, sample_rate: int | None = None) -> np.ndarray:
    """A file as float32 (samples, channels), resampled to ``sample_rate`` when given."""
    import soundfile

    try:
        audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (OSError, RuntimeError, ValueError, soundfile.LibsndfileError) as exc:
        raise InvalidRequest(field_name, f"cannot read the audio file {path}: {exc}") from exc
    if len(audio) == 0:
        raise InvalidRequest(field_name, f"the audio file {path} is empty")
    if sample_rate and rate != sample_rate:
        audio = resample(audio, rate, sample_rate)
    return audio


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling by FFT (no extra dependency); fine for prompts and melodies."""
    length = round(len(audio) * target_rate / source_rate)
    spectrum = np.fft.rfft(audio, axis=0)
    bins = length // 2 + 1
    if bins <= spectrum.shape[0]:
        spectrum = spectrum[:bins]
    else:
        spectrum = np.concatenate([spectrum, np.zeros((bins - spectrum.shape[0], audio.shape[1]), spectrum.dtype)])
    return (np.fft.irfft(spectrum, n=length, axis=0) * (length / len(audio))).astype(np.float32)


def _fit_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    if audio.shape[1] == channels:
        return audio
    mono = audio.mean(axis=1, keepdims=True)
    return np.repeat(mono, channels, axis=1) if channels > 1 else mono


def peak_normalise(audio: np.ndarray) -> np.ndarray:
    """Scale so the loudest sample sits at -1 dBFS: as loud as it can be, never clipped."""
    audio = np.nan_to_num(np.asarray(audio, dtype=np.float32))
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return audio * (PEAK_LEVEL / peak) if peak > 0 else audio

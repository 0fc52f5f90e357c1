"""Songs from ACE-Step 1.5 (format ``ace-step``): ``diffusers.AceStepPipeline``.

A caption and lyrics (with ``[verse]``/``[chorus]`` tags) in one of its languages, BPM, key and
time signature become 48 kHz stereo of the length asked; the same pipeline edits a clip: repaint
a region in place, extend it on either side (a repaint over silence padding), cover it (restyle
the whole clip with a strength) and, on base checkpoints, add a layer or extract a stem.

The pipeline decodes the whole clip for an edit, so the source is composited back afterwards
(``audio_edit``): outside the region every sample is the source's. Progress per step through
``callback_on_step_end``; cancel between steps (nothing is decoded or saved).
"""

from __future__ import annotations

import dataclasses
import json
import math
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
from studio.engines import audio_edit
from studio.engines.audio import fit_channels, read_audio
from studio.engines.base import RunContext, model_info
from studio.engines.devices import DeviceChoice, library_versions
from studio.engines.registry import ACE_STEP

# ACE-Step 1.5 makes 10 s to 10 minutes; its condition encoder's silence latent (the padding of
# every source) is 15,000 frames at 25 frames/s — the same 600 s.
MAX_DURATION_S = 600.0
SAMPLE_RATE = 48000
# What the pipeline reads of the lyrics and the caption (its ``max_lyric_length`` / ``max_text_length``).
LYRIC_TOKENS = 2048
CAPTION_TOKENS = 256
# Defaults of the releases: turbo is guidance-distilled for 8 steps; SFT and base take 50 with guidance.
TURBO_STEPS, FULL_STEPS, DEFAULT_SHIFT, FULL_GUIDANCE = 8, 50, 3.0, 7.0
# ACE-Step's task names for Studio's edits.
_TASK_OF_EDIT = {"repaint": "repaint", "extend": "repaint", "cover": "cover", "layer": "lego", "extract": "extract"}


@dataclass(frozen=True)
class Variant:
    """What a checkpoint's transformer config says about it."""

    turbo: bool
    version: str  # "turbo", "sft", "base" or "" (not stated)
    cover: bool  # has the audio tokenizer and detokenizer that covering a clip needs

    @property
    def stems(self) -> bool:
        # Adding a layer (lego) and extracting a stem are trained into the base checkpoint only.
        return self.version == "base"

    @property
    def steps(self) -> int:
        return TURBO_STEPS if self.turbo else FULL_STEPS


def read_variant(spec: ModelSpec) -> Variant:
    config = _json(spec.path / "transformer" / "config.json")
    index = _json(spec.path / "model_index.json")
    version = str(config.get("model_version") or "")
    turbo = bool(config.get("is_turbo")) or version == "turbo"
    cover = all(_present(index.get(part)) for part in ("audio_tokenizer", "audio_token_detokenizer"))
    return Variant(turbo, version, cover)


@dataclass
class LoadedAceStep:
    spec: ModelSpec
    device: DeviceChoice
    pipe: Any
    variant: Variant
    offloaded: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def sample_rate(self) -> int:
        return int(getattr(self.pipe, "sample_rate", SAMPLE_RATE))

    @property
    def hop(self) -> int:
        return round(self.sample_rate / float(self.pipe.latents_per_second))

    @property
    def channels(self) -> int:
        return int(getattr(self.pipe.vae.config, "audio_channels", 2))


class AceStepEngine:
    format = ACE_STEP
    kind = "music"

    # -- before loading --------------------------------------------------------

    def describe(self, spec: ModelSpec) -> ModelInfo:
        variant = read_variant(spec)
        uses = {Control.LYRICS, Control.SONG_FIELDS, Control.STEPS, Control.SHIFT, Control.REPAINT, Control.EXTEND}
        reasons = {
            Control.TEMPERATURE: f"{spec.name} denoises audio: it has no sampling temperature",
            Control.TOP_K: f"{spec.name} denoises audio: it has no top-k sampling",
            Control.AUDIO_INPUT: f"{spec.name} extends a clip on either side instead (Extend)",
            Control.MELODY_INPUT: f"{spec.name} cannot follow a melody; a MusicGen Melody model can",
            Control.GUIDANCE: f"{spec.name} is a turbo checkpoint: its guidance is distilled into the weights",
            Control.COVER: f"{spec.name} has no audio tokenizer and detokenizer, which covering a clip needs",
            Control.STEMS: f"adding a layer or extracting a stem needs an ACE-Step base checkpoint; {spec.name} is "
            + (variant.version or "not one"),
        }
        if not variant.turbo:
            uses.add(Control.GUIDANCE)
        if variant.cover:
            uses.add(Control.COVER)
        if variant.stems:
            uses.add(Control.STEMS)
        info = model_info(
            spec,
            uses,
            reasons,
            max_duration_s=MAX_DURATION_S,
            default_steps=variant.steps,
            default_shift=DEFAULT_SHIFT,
            lyrics_tokens=LYRIC_TOKENS,
        )
        suggested = {"steps": float(variant.steps), "shift": DEFAULT_SHIFT, "duration": 30.0}
        if not variant.turbo:
            suggested["guidance"] = FULL_GUIDANCE
        return dataclasses.replace(info, suggested_defaults={**suggested, **info.suggested_defaults})

    def check(self, spec: ModelSpec, request: MusicRequest) -> None:
        if request.melody:
            raise InvalidRequest("melody", f"{spec.name} cannot follow a melody")
        if request.time_signature and request.time_signature not in (2, 3, 4, 6):
            raise InvalidRequest(
                "time_signature", f"ACE-Step knows 2, 3, 4 and 6 beats per bar, got {request.time_signature}"
            )
        if not request.init_audio:
            if request.duration > MAX_DURATION_S:
                raise InvalidRequest("duration", f"{spec.name} makes at most {MAX_DURATION_S:g} s (10 minutes)")
            return
        source_s = _source_seconds(request.init_audio)
        if request.edit == "repaint":
            audio_edit.region_of(
                float(request.repaint_start or 0.0),
                float(request.repaint_end or 0.0),
                round(source_s * SAMPLE_RATE),
                SAMPLE_RATE,
            )
        total = source_s + (request.extend_left + request.extend_right if request.edit == "extend" else 0.0)
        if total > MAX_DURATION_S:
            raise InvalidRequest(
                "extend_right" if request.edit == "extend" else "init_audio",
                f"the result would be {total:.1f} s; {spec.name} makes at most {MAX_DURATION_S:g} s (10 minutes)",
            )

    # -- loading ---------------------------------------------------------------

    def load(self, spec: ModelSpec, device: DeviceChoice) -> LoadedAceStep:
        import diffusers

        try:
            pipe = diffusers.AceStepPipeline.from_pretrained(
                spec.path,
                local_files_only=True,
                use_safetensors=not spec.details.get("pickle_allowed"),
                dtype=device.dtype,
            )
        except (OSError, ValueError, KeyError, TypeError, ImportError) as exc:
            raise ModelError(f"cannot load {spec.name} as an ACE-Step model: {first_line(exc)}") from exc
        pipe.set_progress_bar_config(disable=True)
        loaded = LoadedAceStep(spec, device, pipe, read_variant(spec))
        # Under 4 GB offloaded: the low memory mode moves each part to the GPU only while it runs.
        if device.memory_mode == "low" and device.device != "cpu":
            try:
                pipe.enable_model_cpu_offload(device=device.device)
                loaded.offloaded = True
            except (RuntimeError, ValueError, ImportError) as exc:
                loaded.notes.append(f"CPU offload unavailable ({first_line(exc)}); the model is on the GPU whole")
        if not loaded.offloaded:
            pipe.to(device.device)
        return loaded

    def unload(self, loaded: LoadedAceStep) -> None:
        if not loaded.offloaded:
            loaded.pipe.to("cpu")

    # -- generating ------------------------------------------------------------

    def generate(self, loaded: LoadedAceStep, request: MusicRequest, ctx: RunContext) -> EngineResult:
        seed = request.seed if request.seed is not None else 0
        notes: list[str] = list(loaded.notes)
        lyrics = self._fit_lyrics(loaded, request.lyrics, request.language or "en", notes)
        job = _Job(self, loaded, request, ctx, seed, lyrics, notes)
        audio, operation = job.run()
        rate = loaded.sample_rate
        info: dict[str, Any] = {
            "sample_rate": rate,
            "channels": int(audio.shape[1]),
            "duration_s": round(audio.shape[0] / rate, 4),
        }
        if request.lyrics:
            info["lyrics"] = lyrics
        runtime: dict[str, Any] = {
            **loaded.device.to_dict(),
            "model_class": loaded.spec.model_class or "AceStepPipeline",
            "versions": library_versions(),
            "task": job.task,
            "steps": job.steps,
            "shift": job.shift,
            "guidance": job.guidance,
            "variant": loaded.variant.version or ("turbo" if loaded.variant.turbo else ""),
        }
        if loaded.offloaded:
            runtime["offloaded"] = True
        if lyrics != request.lyrics:
            runtime["lyrics_sung"] = lyrics
        if notes:
            runtime["notes"] = notes
        outputs = [GeneratedOutput("music", audio, info)]
        return EngineResult(outputs, loaded.spec.provenance(), runtime, operation=operation)

    def _fit_lyrics(self, loaded: LoadedAceStep, lyrics: str, language: str, notes: list[str]) -> str:
        """The lyrics as the model will read them: all of them, or as many whole lines as fit its
        ``LYRIC_TOKENS`` (with a note saying how much was kept)."""
        if not lyrics:
            return ""

        def tokens(text: str) -> int:
            _, formatted = loaded.pipe._format_prompt(prompt="", lyrics=text, vocal_language=language)
            return len(loaded.pipe.tokenizer(formatted).input_ids)

        total = tokens(lyrics)
        if total <= LYRIC_TOKENS:
            return lyrics
        lines = lyrics.splitlines()
        low, high = 0, len(lines)  # the most whole lines that fit: binary search
        while low < high:
            middle = (low + high + 1) // 2
            if tokens("\n".join(lines[:middle])) <= LYRIC_TOKENS:
                low = middle
            else:
                high = middle - 1
        kept = "\n".join(lines[:low])
        notes.append(
            f"lyrics: {loaded.spec.name} reads {LYRIC_TOKENS} tokens and these are {total}; "
            f"kept the first {low} of {len(lines)} lines ({len(kept)} of {len(lyrics)} characters)"
        )
        return kept


class _Job:
    """One request on a loaded pipeline: the pipeline calls it takes, and the composite."""

    def __init__(
        self,
        engine: AceStepEngine,
        loaded: LoadedAceStep,
        request: MusicRequest,
        ctx: RunContext,
        seed: int,
        lyrics: str,
        notes: list[str],
    ) -> None:
        self.loaded, self.request, self.ctx, self.seed, self.lyrics, self.notes = (
            loaded,
            request,
            ctx,
            seed,
            lyrics,
            notes,
        )
        self.task = _TASK_OF_EDIT.get(request.edit, "text2music")
        self.steps = request.steps or loaded.variant.steps
        self.shift = request.shift or DEFAULT_SHIFT
        self.guidance = 1.0 if loaded.variant.turbo else float(request.guidance)
        self.passes = 1
        self.done_passes = 0

    def run(self) -> tuple[np.ndarray, dict[str, Any]]:
        request, rate = self.request, self.loaded.sample_rate
        if not request.init_audio:
            frames = round(request.duration * rate)
            audio = self._call(audio_duration=request.duration)
            return _fit(audio, frames), {}
        source = self._source()
        if request.edit == "repaint":
            return self._repaint(source)
        if request.edit == "extend":
            return self._extend(source)
        audio = _fit(self._call(src_audio=source, **self._task_arguments()), len(source))
        operation: dict[str, Any] = {"action": "c2pa.edited", "task": request.edit}
        if request.edit == "cover":
            operation["strength"] = request.cover_strength
        else:
            operation["track"] = request.track
        return audio, operation

    def _task_arguments(self) -> dict[str, Any]:
        request = self.request
        if request.edit == "cover":
            return {"audio_cover_strength": float(request.cover_strength)}
        return {"track_name": request.track.strip()}

    def _source(self) -> np.ndarray:
        """The clip to edit as float32 (frames, channels) at the model's rate and channel count,
        with a note for each conversion."""
        import soundfile

        path, rate, channels = self.request.init_audio, self.loaded.sample_rate, self.loaded.channels
        info = soundfile.info(path)
        if info.samplerate != rate:
            self.notes.append(f"source resampled from {info.samplerate} Hz to {rate} Hz")
        if info.channels != channels:
            what = {1: "mono", 2: "stereo"}
            self.notes.append(
                f"source converted from {what.get(info.channels, f'{info.channels} channels')} to "
                f"{what.get(channels, f'{channels} channels')}"
            )
        return fit_channels(read_audio(path, "init_audio", rate), channels)

    def _repaint(self, source: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        rate = self.loaded.sample_rate
        request = self.request
        region = audio_edit.region_of(
            float(request.repaint_start or 0.0), float(request.repaint_end or 0.0), len(source), rate
        )
        audio = self._repaint_region(source, region)
        fade = audio_edit.crossfade_frames(region, rate)
        operation = {
            "action": "c2pa.edited",
            "task": "repaint",
            "region": list(region.seconds(rate)),
            "crossfade_s": round(fade / rate, 4),
        }
        return audio, operation

    def _extend(self, source: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        rate = self.loaded.sample_rate
        left, right = round(self.request.extend_left * rate), round(self.request.extend_right * rate)
        clip = audio_edit.pad_for_extension(source, left, right)
        regions = audio_edit.extension_regions(len(source), left, right, round(audio_edit.CROSSFADE_S * rate))
        self.passes = len(regions)
        for region in regions:  # one repaint per new side; each keeps everything else as it is
            clip = self._repaint_region(clip, region)
            self.done_passes += 1
        operation = {
            "action": "c2pa.edited",
            "task": "extend",
            "left_s": round(left / rate, 4),
            "right_s": round(right / rate, 4),
            "source_at_s": round(left / rate, 4),
        }
        return clip, operation

    def _repaint_region(self, clip: np.ndarray, region: audio_edit.Region) -> np.ndarray:
        rate, lps = self.loaded.sample_rate, float(self.loaded.pipe.latents_per_second)
        # The pipeline masks whole latent frames: widen the region to them (the composite cuts it back).
        start_s = math.floor(region.start / rate * lps) / lps
        end_s = math.ceil(region.end / rate * lps) / lps
        generated = _fit(self._call(src_audio=clip, repainting_start=start_s, repainting_end=end_s), len(clip))
        kept = audio_edit.kept_mask(len(clip), [region])
        generated = audio_edit.match_level(generated, clip, kept)
        return audio_edit.composite(clip, generated, region, audio_edit.crossfade_frames(region, rate))

    def _call(self, src_audio: np.ndarray | None = None, **arguments: Any) -> np.ndarray:
        """One pipeline call; returns (frames, channels) float32."""
        loaded, request, ctx = self.loaded, self.request, self.ctx
        pipe = loaded.pipe
        total = self.steps * self.passes
        offset = self.steps * self.done_passes

        def on_step_end(_pipe: Any, step: int, _timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
            ctx.progress(offset + step + 1, total)
            if ctx.cancelled:
                raise JobCancelled()  # leave before the decode: nothing of this job is kept
            return callback_kwargs

        kwargs: dict[str, Any] = {
            "prompt": request.prompt,
            "lyrics": self.lyrics,
            "vocal_language": request.language or "en",
            "num_inference_steps": self.steps,
            "guidance_scale": self.guidance,
            "shift": self.shift,
            "generator": torch.Generator("cpu").manual_seed(self.seed),
            "bpm": request.bpm or None,
            "keyscale": request.key.strip() or None,
            "timesignature": str(request.time_signature) if request.time_signature else None,
            "task_type": self.task,
            "callback_on_step_end": on_step_end,
            "output_type": "pt",
            "max_lyric_length": LYRIC_TOKENS,
            "max_text_length": CAPTION_TOKENS,
            **arguments,
        }
        if src_audio is not None:
            # A whole number of latent frames, so the decoded clip lines up with the source.
            hop = loaded.hop
            padded = np.pad(src_audio, ((0, (-len(src_audio)) % hop), (0, 0)))
            kwargs["src_audio"] = torch.from_numpy(np.ascontiguousarray(padded.T))
            kwargs["audio_duration"] = len(padded) / loaded.sample_rate
        try:
            with torch.inference_mode():
                result = pipe(**kwargs)
        except ValueError as exc:
            raise InvalidRequest("edit" if request.edit else "prompt", f"{loaded.spec.name}: {exc}") from exc
        audio = result.audios[0].float().cpu().numpy()  # (channels, frames)
        return np.ascontiguousarray(audio.T, dtype=np.float32)


def _fit(audio: np.ndarray, frames: int) -> np.ndarray:
    """Exactly ``frames`` long: the decoder gives whole latent frames (cut), never fewer (pad)."""
    if len(audio) >= frames:
        return np.ascontiguousarray(audio[:frames])
    return np.concatenate([audio, np.zeros((frames - len(audio), audio.shape[1]), np.float32)])


def _source_seconds(path: str) -> float:
    import soundfile

    try:
        info = soundfile.info(path)
    except (OSError, RuntimeError, ValueError, soundfile.LibsndfileError) as exc:
        raise InvalidRequest("init_audio", f"cannot read the audio file {path}: {exc}") from exc
    if not info.frames:
        raise InvalidRequest("init_audio", f"the audio file {path} is empty")
    return float(info.frames) / float(info.samplerate)


def _present(entry: Any) -> bool:
    return isinstance(entry, list) and bool(entry) and entry[0] is not None


def _json(path: Any) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}

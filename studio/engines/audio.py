"""Audio helpers the music engines share: reading a prompt or melody file, resampling, channels, level."""

from __future__ import annotations

import numpy as np

from studio.core.errors import InvalidRequest

# Peak level after normalising: -1 dBFS leaves headroom for lossy export formats.
PEAK_LEVEL = 10 ** (-1 / 20)


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


def fit_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    if audio.shape[1] == channels:
        return audio
    mono = audio.mean(axis=1, keepdims=True)
    return np.repeat(mono, channels, axis=1) if channels > 1 else mono


def peak_normalise(audio: np.ndarray) -> np.ndarray:
    """Scale so the loudest sample sits at -1 dBFS: as loud as it can be, never clipped."""
    audio = np.nan_to_num(np.asarray(audio, dtype=np.float32))
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return audio * (PEAK_LEVEL / peak) if peak > 0 else audio


def fit_length(audio: np.ndarray, frames: int, sample_rate: int, fade_s: float = 0.25) -> np.ndarray:
    """``audio`` (frames, channels) made exactly ``frames`` long: cut with a fade-out over the last
    ``fade_s`` (no click), or padded with silence."""
    if len(audio) >= frames:
        fitted = np.array(audio[:frames], dtype=np.float32, copy=True)
        fade = min(frames, round(fade_s * sample_rate))
        if fade and len(audio) > frames:
            ramp = np.linspace(1.0, 0.0, fade, dtype=np.float32)
            fitted[-fade:] *= ramp.reshape(-1, *([1] * (fitted.ndim - 1)))
        return fitted
    pad = np.zeros((frames - len(audio), *audio.shape[1:]), dtype=np.float32)
    return np.concatenate([np.asarray(audio, dtype=np.float32), pad])

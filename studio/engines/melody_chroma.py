"""The chroma a MusicGen Melody model is conditioned on, without torchaudio.

transformers' ``MusicgenMelodyFeatureExtractor`` needs torchaudio only for its spectrogram, and
PyPI's torchaudio wheels must match the installed torch build exactly (the CPU torch here has
none that loads). The features are simple to compute the same way with transformers' own numpy
audio helpers: a power STFT (Hann window of ``n_fft``, centred with reflection, normalised by the
window's energy — torchaudio's ``Spectrogram(normalized=True, power=2)``), the librosa chroma
filter bank (``chroma_filter_bank``, which the extractor uses too), and, per frame, a one-hot of
the strongest pitch class. tests/test_music_formats.py checks this against the extractor's
recipe run through ``torch.stft``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

# MusicgenMelodyFeatureExtractor's defaults (its preprocessor_config.json may say otherwise).
DEFAULTS = {"sampling_rate": 32000, "n_fft": 16384, "hop_length": 4096, "chunk_length": 30, "num_chroma": 12}


def extractor_settings(model_folder: Path | None) -> dict[str, int]:
    """The extractor's settings from the model's ``preprocessor_config.json``, else its defaults."""
    import json

    settings = dict(DEFAULTS)
    config = (model_folder / "preprocessor_config.json") if model_folder else None
    if config is not None and config.is_file():
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        for name in settings:
            if isinstance(data.get(name), int):
                settings[name] = int(data[name])
    return settings


def melody_chroma(mono: np.ndarray, settings: dict[str, int] | None = None) -> np.ndarray:
    """(1, frames, num_chroma) float32 one-hot chroma of a mono clip at ``sampling_rate``."""
    from transformers.audio_utils import chroma_filter_bank, spectrogram, window_function

    s = {**DEFAULTS, **(settings or {})}
    n_fft, hop, rate = s["n_fft"], s["hop_length"], s["sampling_rate"]
    wave = np.asarray(mono, dtype=np.float32)[: s["chunk_length"] * rate]  # the extractor truncates to a chunk
    if len(wave) < n_fft:
        pad = n_fft - len(wave)
        wave = np.pad(wave, (pad // 2, pad // 2 + pad % 2))
    window = window_function(n_fft, "hann", periodic=True)
    power = spectrogram(
        wave, window, frame_length=n_fft, hop_length=hop, power=2.0, center=True, dtype=np.dtype(np.float64)
    )
    power /= float(np.sum(window.astype(np.float64) ** 2))  # normalized=True: the window's energy
    filters = chroma_filter_bank(sampling_rate=rate, num_frequency_bins=n_fft, tuning=0, num_chroma=s["num_chroma"])
    raw = filters.astype(np.float64) @ power  # (chroma, frames)
    strongest = raw.argmax(axis=0)
    one_hot = np.zeros((raw.shape[1], raw.shape[0]), dtype=np.float32)
    one_hot[np.arange(raw.shape[1]), strongest] = 1.0
    return one_hot[None]


def chroma_inputs(mono: np.ndarray, model_folder: Path | None) -> dict[str, Any]:
    """What ``MusicgenMelodyForConditionalGeneration.generate`` takes: ``input_features``."""
    import torch

    return {"input_features": torch.from_numpy(melody_chroma(mono, extractor_settings(model_folder)))}

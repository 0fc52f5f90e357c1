"""Music formats users already have: Stable Audio with its released scheduler (torchsde), MusicGen
Melody's chroma without torchaudio, and MusicGen extending a clip on the right."""

import importlib.util

import numpy as np
import pytest
import soundfile
import torch
from helpers import EventLog
from tiny_ace_step import build_tiny_musicgen_melody
from tiny_models import build_tiny_stable_audio

from studio.core.capabilities import Control
from studio.core.requests import MusicRequest
from studio.engines.melody_chroma import melody_chroma

RATE = 32000


def _run(services, request, timeout=180):
    log = EventLog(services.worker)
    job = services.worker.submit(request)
    return log, log.wait_end(job, timeout)


@pytest.fixture(scope="session")
def released_stable_audio(models_root):
    """The tiny Stable Audio with the scheduler Stable Audio Open ships: CosineDPMSolverMultistepScheduler."""
    from diffusers import CosineDPMSolverMultistepScheduler, StableAudioPipeline

    plain = build_tiny_stable_audio(models_root / "songs-stable-audio-plain")
    pipe = StableAudioPipeline.from_pretrained(plain)
    pipe.scheduler = CosineDPMSolverMultistepScheduler(
        sigma_min=0.3, sigma_max=500, solver_order=2, prediction_type="v_prediction", sigma_data=1.0
    )
    folder = models_root / "songs-stable-audio-released"
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def tiny_melody(models_root):
    return build_tiny_musicgen_melody(models_root / "songs-musicgen-melody")


def test_stable_audio_runs_with_its_released_scheduler(services, released_stable_audio):
    assert importlib.util.find_spec("torchsde") is not None  # a declared dependency now
    _, end = _run(services, MusicRequest(prompt="calm piano", model=str(released_stable_audio), duration=1.0, seed=1))
    assert end.kind.value == "finished", end.error
    assert "torchsde" not in (end.error or "")
    assert soundfile.info(end.result[0].path).channels == 2


def _extractor_recipe(wave, n_fft=16384, hop=4096):
    """MusicgenMelodyFeatureExtractor's chroma with torchaudio's Spectrogram(normalized=True, power=2)
    written out in torch.stft, as torchaudio computes it."""
    from transformers.audio_utils import chroma_filter_bank

    window = torch.hann_window(n_fft)
    spec = torch.stft(
        torch.from_numpy(wave)[None], n_fft, hop, n_fft, window, center=True, pad_mode="reflect", return_complex=True
    )
    power = (spec / window.pow(2).sum().sqrt()).abs().pow(2)
    filters = torch.from_numpy(
        chroma_filter_bank(sampling_rate=RATE, num_frequency_bins=n_fft, tuning=0, num_chroma=12)
    ).float()
    raw = torch.einsum("cf,...ft->...ct", filters, power)
    chroma = torch.nn.functional.normalize(raw, p=float("inf"), dim=-2, eps=1e-6).transpose(1, 2)
    index = chroma.argmax(-1, keepdim=True)
    chroma[:] = 0
    chroma.scatter_(dim=-1, index=index, value=1)
    return chroma.numpy()


def test_melody_chroma_without_torchaudio_matches_the_extractor_recipe():
    notes = [261.63, 329.63, 392.0, 440.0, 493.88]  # C E G A B
    t = np.arange(int(0.66 * RATE)) / RATE
    wave = np.concatenate([0.5 * np.sin(2 * np.pi * f * t) for f in notes]).astype(np.float32)
    wave += 0.01 * np.random.default_rng(0).standard_normal(len(wave)).astype(np.float32)
    ours = melody_chroma(wave)
    assert np.array_equal(ours, _extractor_recipe(wave))
    classes = ours[0].argmax(-1)
    assert {0, 4, 7, 9, 11} <= set(classes.tolist())  # the tune's pitch classes, in order
    assert list(dict.fromkeys(classes.tolist())) == [0, 4, 7, 9, 11]


def test_a_musicgen_melody_model_follows_a_melody_here(services, tiny_melody, tmp_path):
    tune = tmp_path / "tune.wav"
    t = np.arange(RATE) / RATE
    soundfile.write(tune, (0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 44100)
    info = services.worker._model_info(str(tiny_melody))
    assert info.uses(Control.MELODY_INPUT)
    request = MusicRequest(prompt="fiddle", model=str(tiny_melody), duration=0.4, seed=2, melody=str(tune))
    _, end = _run(services, request)
    assert end.kind.value == "finished", end.error
    assert end.result[0].record.runtime["melody_sha256"]


def test_musicgen_extends_a_clip_on_the_right_with_the_source_exact(services, tiny_musicgen, tmp_path):
    clip = tmp_path / "clip.wav"
    t = np.arange(int(0.5 * RATE)) / RATE
    source = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    soundfile.write(clip, source, RATE, subtype="FLOAT")
    request = MusicRequest(
        prompt="drums", model=str(tiny_musicgen), seed=3, init_audio=str(clip), edit="extend", extend_right=0.4
    )
    _, end = _run(services, request)
    assert end.kind.value == "finished", end.error
    item = end.result[0]
    out = soundfile.read(item.path, dtype="float32")[0]
    assert abs(len(out) - 0.9 * RATE) <= 640
    assert np.max(np.abs(out[: len(source)] - source)) <= 1 / 32768  # not re-levelled: the clip as it was
    assert item.record.derived_from["operation"]["task"] == "extend"
    left = MusicRequest(prompt="x", model=str(tiny_musicgen), init_audio=str(clip), edit="extend", extend_left=1.0)
    _, end = _run(services, left)
    assert end.kind.value == "error" and "on the right only" in end.error

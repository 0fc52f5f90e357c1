"""Music generation through the real worker and a tiny MusicGen (32 kHz, 50 frames/s, 4 codebooks)."""

import math

import numpy as np
import pytest
import soundfile
from helpers import EventLog

from studio.core.requests import MusicRequest
from studio.engines import audio, musicgen

RATE, FRAME = 32000, 640


def _run(services, request, timeout=120):
    log = EventLog(services.worker)
    job = services.worker.submit(request)
    return log, log.wait_end(job, timeout)


def _samples(item):
    return soundfile.read(item.path, dtype="int16", always_2d=True)[0]


def test_flac_has_the_asked_duration_and_progress_counts_tokens(services, tiny_musicgen):
    request = MusicRequest(prompt="calm piano", model=str(tiny_musicgen), duration=0.73, seed=1)
    log, end = _run(services, request)
    assert end.kind.value == "finished", end.error
    info = soundfile.info(end.result[0].path)
    assert info.format == "FLAC" and info.samplerate == RATE and info.channels == 1
    assert abs(info.frames - 0.73 * RATE) <= FRAME  # within one frame
    steps = [e for e in log.of(end.job_id) if e.kind.value == "progress"]
    assert steps[-1].step == steps[-1].total == math.ceil(0.73 * 50) + 3  # 3 tokens of delay pattern
    audio = soundfile.read(end.result[0].path, dtype="float32")[0]
    assert 0.85 < np.max(np.abs(audio)) <= 0.9  # peak-normalised to -1 dBFS, not clipped
    record = end.result[0].record
    assert record.output["sample_rate"] == RATE and record.model["sha256"]


def test_same_seed_gives_identical_samples(services, tiny_musicgen):
    results = []
    for seed in (8, 8, 9):
        _, end = _run(services, MusicRequest(prompt="drums", model=str(tiny_musicgen), duration=0.4, seed=seed))
        results.append(_samples(end.result[0]))
    assert np.array_equal(results[0], results[1])
    assert not np.array_equal(results[0], results[2])


def test_cancel_midway_leaves_no_file_and_no_error(services, tiny_musicgen, monkeypatch):
    log = EventLog(services.worker)
    job = services.worker.submit(MusicRequest(prompt="long", model=str(tiny_musicgen), duration=60.0, seed=1))
    log.wait_for(lambda e: e.job_id == job and e.kind.value == "progress" and e.step >= 5, timeout=120)
    services.worker.cancel(job)
    end = log.wait_end(job)
    assert end.kind.value == "cancelled" and not end.error
    assert services.store.list() == []
    assert not any(services.paths.gallery.rglob("*.flac"))


def test_longer_than_the_window_continues_window_by_window(services, tiny_musicgen, monkeypatch):
    monkeypatch.setattr(musicgen, "MAX_WINDOW_S", 0.5)  # stride 0.3 s, context 0.2 s
    log, end = _run(services, MusicRequest(prompt="a long song", model=str(tiny_musicgen), duration=1.3, seed=4))
    assert end.kind.value == "finished", end.error
    assert abs(soundfile.info(end.result[0].path).frames - 1.3 * RATE) <= FRAME
    # windows of 0.5, 0.3, 0.3, 0.2 s: 25+3, 15+3, 15+3, 10+3 tokens
    assert max(e.total for e in log.of(end.job_id) if e.kind.value == "progress") == 28 + 18 + 18 + 13


def test_continuing_a_clip_keeps_it_and_adds_the_duration(services, tiny_musicgen, tmp_path):
    clip = tmp_path / "clip.wav"
    t = np.arange(int(0.5 * RATE)) / RATE
    soundfile.write(clip, (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), RATE)
    request = MusicRequest(prompt="", model=str(tiny_musicgen), duration=0.4, seed=2, audio_prompt=str(clip))
    _, end = _run(services, request)
    assert end.kind.value == "finished", end.error
    audio = soundfile.read(end.result[0].path, dtype="float32")[0]
    assert abs(len(audio) - 0.9 * RATE) <= FRAME
    head = audio[: len(t)]
    assert np.corrcoef(head, np.sin(2 * np.pi * 220 * t))[0, 1] > 0.99  # the clip itself, only rescaled
    record = end.result[0].record
    assert record.output["continued_s"] == pytest.approx(0.5, abs=0.02)
    assert record.runtime["audio_prompt_sha256"]


def test_unreadable_clip_and_melody_on_a_plain_model_are_refused_before_loading(services, tiny_musicgen, tmp_path):
    broken = tmp_path / "broken.flac"
    broken.write_bytes(b"fLaC but not really")
    _, end = _run(services, MusicRequest(prompt="x", model=str(tiny_musicgen), audio_prompt=str(broken)))
    assert end.kind.value == "error" and "cannot read the audio file" in end.error
    clip = tmp_path / "tune.wav"
    soundfile.write(clip, np.zeros(1600, dtype=np.float32), 16000)
    _, end = _run(services, MusicRequest(prompt="x", model=str(tiny_musicgen), melody=str(clip)))
    assert end.kind.value == "error" and "melody" in end.error
    assert services.worker.cache.keys() == {}


def test_a_text_model_is_not_taken_for_music(services, tiny_lm):
    _, end = _run(services, MusicRequest(prompt="x", model=str(tiny_lm), duration=1.0))
    assert end.kind.value == "error" and "text model" in end.error and "music" in end.error


def test_resampling_keeps_length_and_pitch():
    rate_in, rate_out = 44100, 32000
    t = np.arange(rate_in) / rate_in
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)[:, None]
    out = audio.resample(tone, rate_in, rate_out)
    assert out.shape == (rate_out, 1)
    spectrum = np.abs(np.fft.rfft(out[:, 0]))
    assert abs(np.argmax(spectrum) * rate_out / len(out) - 440) < 2


def test_a_diffusers_audio_pipeline_reports_steps_and_saves_stereo(services, tiny_stable_audio):
    request = MusicRequest(prompt="calm piano", model=str(tiny_stable_audio), duration=1.5, seed=3)
    log, end = _run(services, request)
    assert end.kind.value == "finished", end.error
    info = soundfile.info(end.result[0].path)
    assert info.samplerate == 64 and info.channels == 2 and info.frames == 96
    steps = [e.step for e in log.of(end.job_id) if e.kind.value == "progress"]
    assert steps[0] == 1 and steps[-1] == len(steps)
    _, again = _run(services, request)
    assert np.array_equal(_samples(end.result[0]), _samples(again.result[0]))  # seeded


def test_a_diffusers_audio_pipeline_refuses_more_than_it_can_make(services, tiny_stable_audio):
    _, end = _run(services, MusicRequest(prompt="calm", model=str(tiny_stable_audio), duration=30.0, seed=1))
    assert end.kind.value == "error" and "cannot make this" in end.error


def test_a_diffusers_audio_pipeline_stops_within_a_step_on_cancel(services, tiny_stable_audio):
    def cancel_at_step_three(event):
        if event.kind.value == "progress" and event.step == 3:
            services.worker.cancel(event.job_id)  # on the worker thread, between two steps

    services.worker.subscribe(cancel_at_step_three)
    log, end = _run(services, MusicRequest(prompt="calm", model=str(tiny_stable_audio), duration=1.0, seed=1))
    assert end.kind.value == "cancelled" and not end.error
    assert max(e.step for e in log.of(end.job_id) if e.kind.value == "progress") == 3
    assert services.store.list() == []

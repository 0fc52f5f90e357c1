"""Songs and edits through the real worker and a tiny ACE-Step 1.5 pipeline (48 kHz stereo, 25 latent
frames a second), loaded through ``AceStepPipeline.from_pretrained``."""

import json

import numpy as np
import pytest
import soundfile
from helpers import EventLog
from mutagen.flac import FLAC
from tiny_ace_step import build_tiny_ace_step

from studio.core.capabilities import Control
from studio.core.errors import InvalidRequest
from studio.core.requests import MusicRequest
from studio.engines import audio_edit
from studio.engines.library.classify import inspect_folder
from studio.gallery.verify import verify_file

RATE = 48000
LYRICS = "[verse]\nwalking down the river\n[chorus]\nwe are young tonight"


@pytest.fixture(scope="session")
def tiny_ace(models_root):
    return build_tiny_ace_step(models_root / "tiny-ace-step-turbo")


@pytest.fixture(scope="session")
def tiny_ace_base(models_root):
    return build_tiny_ace_step(models_root / "tiny-ace-step-base", turbo=False, model_version="base")


def _run(services, request, timeout=180):
    log = EventLog(services.worker)
    job = services.worker.submit(request)
    return log, log.wait_end(job, timeout)


def _song(tiny_ace, **fields):
    values = {"prompt": "calm piano", "model": str(tiny_ace), "duration": 1.0, "seed": 3, "steps": 2}
    values.update(fields)
    return MusicRequest(**values)


def _sha256(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sidecar(item):
    from pathlib import Path

    return json.loads(Path(item["path"]).with_suffix(".json").read_text(encoding="utf-8"))


def _read(path):
    return soundfile.read(path, dtype="float32", always_2d=True)[0]


def _clip(tmp_path, seconds=1.2, rate=RATE, channels=2, name="clip.wav"):
    """A test tone as 24-bit WAV: what a user brings to edit."""
    t = np.arange(round(seconds * rate)) / rate
    tone = 0.4 * np.sin(2 * np.pi * 330 * t) * (1 + 0.3 * np.sin(2 * np.pi * 2 * t))
    data = np.stack([tone, 0.8 * tone][:channels], axis=1).astype(np.float32)
    path = tmp_path / name
    soundfile.write(path, data, rate, subtype="FLOAT")
    return path, data


def test_ace_step_folders_are_their_own_format(tiny_ace, services):
    spec = inspect_folder(tiny_ace)
    assert spec.runnable and spec.format == "ace-step" and spec.kind == "music", spec.reason
    info = services.worker._model_info(str(tiny_ace))
    assert info.format == "ace-step" and info.max_duration_s == 600 and info.default_steps == 8
    assert info.uses(Control.LYRICS) and info.uses(Control.SONG_FIELDS) and info.uses(Control.REPAINT)
    assert not info.uses(Control.GUIDANCE) and "turbo" in info.why_unused(Control.GUIDANCE)
    assert not info.uses(Control.STEMS) and "base checkpoint" in info.why_unused(Control.STEMS)
    assert info.suggested_defaults["steps"] == 8


def test_other_music_models_grey_out_the_song_fields(tiny_musicgen, services):
    info = services.worker._model_info(str(tiny_musicgen))
    assert "does not sing lyrics; ACE-Step models do" in info.why_unused(Control.LYRICS)
    assert not info.uses(Control.REPAINT) and not info.uses(Control.SONG_FIELDS)


def test_song_is_exact_stereo_48k_with_lyrics_in_record_and_tags(services, tiny_ace):
    request = _song(tiny_ace, duration=1.37, lyrics=LYRICS, language="en", bpm=96, key="D major", time_signature=3)
    log, end = _run(services, request)
    assert end.kind.value == "finished", end.error
    item = end.result[0]
    info = soundfile.info(item.path)
    assert info.format == "FLAC" and info.samplerate == RATE and info.channels == 2
    assert info.frames == round(1.37 * RATE)  # exact, not a whole number of latent frames
    steps = [e for e in log.of(end.job_id) if e.kind.value == "progress"]
    assert [e.step for e in steps] == [1, 2] and steps[-1].total == 2
    assert item.record.request["lyrics"] == LYRICS and item.record.request["bpm"] == 96
    assert item.record.runtime["task"] == "text2music" and item.record.runtime["steps"] == 2
    tags = FLAC(item.path)
    assert tags["LYRICS"] == [LYRICS]
    assert json.loads(tags["STUDIO_PROVENANCE"][0])["request"]["key"] == "D major"


def test_same_seed_same_song_other_seed_other_song(services, tiny_ace):
    songs = []
    for seed in (5, 5, 6):
        _, end = _run(services, _song(tiny_ace, seed=seed, duration=0.6))
        assert end.kind.value == "finished", end.error
        songs.append(_read(end.result[0].path))
    assert np.array_equal(songs[0], songs[1])
    assert not np.array_equal(songs[0], songs[2])


def test_cancel_between_steps_saves_nothing(services, tiny_ace):
    log = EventLog(services.worker)
    job = services.worker.submit(_song(tiny_ace, steps=200, duration=2.0))
    log.wait_for(lambda e: e.job_id == job and e.kind.value == "progress" and e.step >= 2, timeout=120)
    services.worker.cancel(job)
    end = log.wait_end(job, 120)
    assert end.kind.value == "cancelled" and not end.error
    assert services.store.list() == []
    assert not any(services.paths.gallery.rglob("*.flac"))


def test_repaint_keeps_every_sample_outside_the_region(services, tiny_ace, tmp_path):
    clip, data = _clip(tmp_path)
    request = _song(tiny_ace, prompt="drums", init_audio=str(clip), edit="repaint", repaint_start=0.4, repaint_end=0.8)
    _, end = _run(services, request)
    assert end.kind.value == "finished", end.error
    item = end.result[0]
    out = _read(item.path)
    assert out.shape == data.shape  # the length stays
    start, stop = round(0.4 * RATE), round(0.8 * RATE)
    # FLAC is 16-bit: outside the region the file holds the source quantised, nothing else.
    quantum = 1 / 32768
    assert np.max(np.abs(out[:start] - data[:start])) <= quantum
    assert np.max(np.abs(out[stop:] - data[stop:])) <= quantum
    assert np.max(np.abs(out[start + 2400 : stop - 2400] - data[start + 2400 : stop - 2400])) > 0.01  # repainted
    derived = item.record.derived_from
    assert derived["operation"]["task"] == "repaint" and derived["operation"]["region"] == [0.4, 0.8]
    assert derived["operation"]["action"] == "c2pa.edited" and derived["generated"] is False
    assert derived["sha256"] == _sha256(clip)


def test_each_edit_names_its_parent_item_and_is_signed_with_it(services, tiny_ace):
    _, end = _run(services, _song(tiny_ace, duration=1.0))
    song = end.result[0]
    request = _song(tiny_ace, init_audio=str(song.path), edit="repaint", repaint_start=0.2, repaint_end=0.6)
    _, end = _run(services, request)
    assert end.kind.value == "finished", end.error
    child = end.result[0]
    assert child.record.parent == song.id and child.record.derived_from["id"] == song.id
    assert child.record.derived_from["generated"] is True
    assert child.record.derived_from["sha256"] == song.record.output["sha256"]
    report = verify_file(child.path, services.store.credentials)
    assert report.ok and "repaint" in report.summary and song.id in report.summary, report.summary


def test_extend_gives_the_new_length_with_the_source_in_place(services, tiny_ace, tmp_path):
    clip, data = _clip(tmp_path, seconds=1.0)
    request = _song(tiny_ace, init_audio=str(clip), edit="extend", extend_left=0.3, extend_right=0.5)
    log, end = _run(services, request)
    assert end.kind.value == "finished", end.error
    out = _read(end.result[0].path)
    left, fade = round(0.3 * RATE), round(audio_edit.CROSSFADE_S * RATE)
    assert len(out) == round(1.8 * RATE)
    kept = slice(left + fade, left + len(data) - fade)  # the source, but for the blended joins
    assert np.max(np.abs(out[kept] - data[fade:-fade])) <= 1 / 32768
    assert np.max(np.abs(out[:left])) > 0  # new audio on both sides, not silence
    assert np.max(np.abs(out[left + len(data) :])) > 0
    assert max(e.total for e in log.of(end.job_id) if e.kind.value == "progress") == 4  # two passes of 2 steps


def test_a_mono_44k_source_is_converted_with_a_note(services, tiny_ace, tmp_path):
    clip, _ = _clip(tmp_path, seconds=1.0, rate=44100, channels=1, name="mono.wav")
    request = _song(tiny_ace, init_audio=str(clip), edit="repaint", repaint_start=0.2, repaint_end=0.6)
    _, end = _run(services, request)
    assert end.kind.value == "finished", end.error
    notes = " ".join(end.result[0].record.runtime["notes"])
    assert "44100 Hz to 48000 Hz" in notes and "mono to stereo" in notes
    assert soundfile.info(end.result[0].path).channels == 2


def test_cover_restyles_the_whole_clip(services, tiny_ace, tmp_path):
    clip, data = _clip(tmp_path, seconds=1.0)
    _, end = _run(services, _song(tiny_ace, init_audio=str(clip), edit="cover", cover_strength=0.6))
    assert end.kind.value == "finished", end.error
    assert _read(end.result[0].path).shape == data.shape
    assert end.result[0].record.runtime["task"] == "cover"


@pytest.mark.parametrize(
    ("fields", "field_name", "words"),
    [
        ({"edit": "repaint", "repaint_start": 0.5, "repaint_end": 3.0}, "repaint_end", "past the end of the clip"),
        ({"edit": "repaint", "repaint_start": 2.0, "repaint_end": 2.5}, "repaint_start", "outside the clip"),
        ({"edit": "extend", "extend_right": 599.5}, "extend_right", "at most 600 s"),
        ({"edit": "extract", "track": "vocals"}, "edit", "base checkpoint"),
    ],
)
def test_edits_it_cannot_do_are_refused_and_nothing_saved(services, tiny_ace, tmp_path, fields, field_name, words):
    clip, _ = _clip(tmp_path, seconds=1.0)
    _, end = _run(services, _song(tiny_ace, init_audio=str(clip), **fields))
    assert end.kind.value == "error"
    assert words in end.error, end.error
    assert services.store.list() == []


def test_an_empty_region_is_refused_by_the_request():
    with pytest.raises(InvalidRequest, match="empty"):
        MusicRequest("x", "m", init_audio=__file__, edit="repaint", repaint_start=1.0, repaint_end=1.0)
    with pytest.raises(InvalidRequest, match="say what to do"):
        MusicRequest("x", "m", init_audio=__file__)


def test_lyrics_longer_than_the_model_reads_are_cut_at_a_line_with_a_note(services, tiny_ace, monkeypatch):
    from studio.engines import ace_step

    monkeypatch.setattr(ace_step, "LYRIC_TOKENS", 40)
    lyrics = "\n".join(["[verse]"] + ["walking down the river singing"] * 10)
    _, end = _run(services, _song(tiny_ace, lyrics=lyrics, duration=0.5))
    assert end.kind.value == "finished", end.error
    record = end.result[0].record
    note = " ".join(record.runtime["notes"])
    assert "reads 40 tokens" in note and "of 11 lines" in note
    sung = record.runtime["lyrics_sung"]
    assert lyrics.startswith(sung) and len(sung) < len(lyrics)
    assert FLAC(end.result[0].path)["LYRICS"] == [sung]


def test_a_base_checkpoint_extracts_a_stem(services, tiny_ace_base, tmp_path):
    clip, data = _clip(tmp_path, seconds=1.0)
    request = _song(tiny_ace_base, init_audio=str(clip), edit="extract", track="vocals", guidance=3.0)
    _, end = _run(services, request)
    assert end.kind.value == "finished", end.error
    assert end.result[0].record.runtime["task"] == "extract"
    assert _read(end.result[0].path).shape == data.shape


def test_cli_writes_a_song_then_repaints_it_and_refuses_a_region_past_the_end(data_dir, tiny_ace, tmp_path):
    from test_cli import studio_cli

    lyrics = tmp_path / "lyrics.txt"
    lyrics.write_text(LYRICS, encoding="utf-8")
    song_args = ("--lyrics", str(lyrics), "--language", "en", "--bpm", "90", "--key", "D major")
    common = ("--model", str(tiny_ace), "--steps", "2", "--seed", "4", "--json")
    song = studio_cli(
        "gen",
        "music",
        "bright pop",
        *common,
        *song_args,
        "--time-signature",
        "4",
        "--duration",
        "1.5",
        data_dir=data_dir,
        check=True,
    )
    first = json.loads(song.stdout.splitlines()[-1])
    request = _sidecar(first)["request"]
    assert request["lyrics"] == LYRICS and request["bpm"] == 90 and request["time_signature"] == 4
    assert soundfile.info(first["path"]).frames == round(1.5 * RATE)
    edit = studio_cli(
        "gen",
        "music",
        "drums",
        *common,
        "--init-audio",
        first["path"],
        "--repaint",
        "0.5,1.0",
        data_dir=data_dir,
        check=True,
    )
    child = _sidecar(json.loads(edit.stdout.splitlines()[-1]))
    assert child["derived_from"]["id"] == first["id"] and child["request"]["edit"] == "repaint"
    refused = studio_cli(
        "gen", "music", "x", *common, "--init-audio", first["path"], "--repaint", "1,4", data_dir=data_dir
    )
    assert (
        refused.returncode == 1 and "past the end of the clip (it is 1.50 s long)" in refused.stderr
    )  # as any job refused
    bad = studio_cli("gen", "music", "x", *common, "--init-audio", first["path"], "--extend", "3", data_dir=data_dir)
    assert bad.returncode == 2 and "LEFT,RIGHT" in bad.stderr


def test_lyrics_travel_into_mp3_as_uslt_and_ogg_as_vorbis_lyrics(services, tiny_ace, tmp_path):
    from mutagen.mp3 import MP3
    from mutagen.oggvorbis import OggVorbis

    from studio.gallery.export import ExportOptions, export_items

    _, end = _run(services, _song(tiny_ace, lyrics=LYRICS, duration=0.5))
    assert end.kind.value == "finished", end.error
    item = end.result[0]
    (mp3,) = export_items([item], ExportOptions(tmp_path / "mp3", suffix=".mp3"), services.store.credentials)
    frames = MP3(mp3).tags.getall("USLT")
    assert [frame.text for frame in frames] == [LYRICS]
    (ogg,) = export_items([item], ExportOptions(tmp_path / "ogg", suffix=".ogg"), services.store.credentials)
    assert OggVorbis(ogg)["LYRICS"] == [LYRICS]
    (plain,) = export_items([item], ExportOptions(tmp_path / "plain", suffix=".mp3", with_metadata=False))
    assert not (MP3(plain).tags and MP3(plain).tags.getall("USLT"))  # stripped for sharing: no lyrics either

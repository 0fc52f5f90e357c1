"""The starter models that ship in resources/models: found out of the box, used when nothing else
is installed, and each generating through the same worker, gallery and provenance as any model."""

from __future__ import annotations

import colorsys
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import EventLog

from studio.core.paths import resources_dir
from studio.core.requests import ImageRequest, MusicRequest, TextRequest
from studio.engines.library import ModelCatalog

STARTERS = {
    "text": "studio-starter-text",
    "image": "studio-starter-patterns",
    "music": "studio-starter-melody",
}


def studio_cli(*args, data_dir):
    env = {**os.environ, "STUDIO_DATA_DIR": str(data_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "studio", *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_every_kind_has_a_runnable_starter_with_a_card_and_the_total_stays_small():
    specs = {spec.id: spec for spec in ModelCatalog(resources_dir() / "models").discover()}
    total = 0
    for kind, ident in STARTERS.items():
        spec = specs[ident]
        assert spec.kind == kind and spec.runnable and spec.source == "bundled", spec.reason
        card = (spec.path / "README.md").read_text()
        for section in ("## Training data" if kind != "image" else "## Data and training", "## Measured"):
            assert section in card, f"{ident}'s card lacks {section}"
        assert spec.details["licence"] == "apache-2.0"
        total += sum(p.stat().st_size for p in spec.path.rglob("*") if p.is_file())
    assert total <= 40 * 1024 * 1024, f"starter models take {total / 2**20:.1f} MB"


def test_headless_generation_with_no_model_named_uses_the_starters(data_dir):
    """A fresh data folder, no model added, no --model: each kind still makes a real output."""
    import soundfile
    from PIL import Image

    text = json.loads(
        studio_cli("gen", "text", "And the river", "--max-tokens", "16", "--seed", "1", "--json", data_dir=data_dir)
    )
    body = Path(text["path"]).read_text()
    assert text["model"] == STARTERS["text"] and len(body.split("---")[-1].split()) >= 3
    image = json.loads(
        studio_cli(
            "gen", "image", "red rings", "--width", "96", "--height", "64", "--seed", "2", "--json", data_dir=data_dir
        )
    )
    assert image["model"] == STARTERS["image"]
    with Image.open(image["path"]) as picture:
        assert picture.size == (96, 64)
    music = json.loads(
        studio_cli(
            "gen", "music", "a slow air on the flute", "--duration", "4", "--seed", "3", "--json", data_dir=data_dir
        )
    )
    assert music["model"] == STARTERS["music"]
    audio, rate = soundfile.read(music["path"])
    assert rate == 32000 and 4.0 <= len(audio) / rate <= 12.0 and np.abs(audio).max() > 0.1
    assert Path(music["path"]).with_suffix(".mid").is_file()


def _hue_share(image: np.ndarray, hue: float) -> float:
    pixels = image.reshape(-1, 3)[::7].astype(np.float32) / 255
    hsv = np.array([colorsys.rgb_to_hsv(*p) for p in pixels])
    saturated = hsv[hsv[:, 1] > 0.25]
    return float(np.mean(np.abs(((saturated[:, 0] - hue) + 0.5) % 1 - 0.5) < 0.06)) if len(saturated) else 0.0


def test_the_pattern_painter_follows_its_prompt_and_seed(services):
    log = EventLog(services.worker)
    model = str(resources_dir() / "models" / STARTERS["image"])

    def paint(prompt: str, seed: int, size=(80, 80)) -> np.ndarray:
        job = services.worker.submit(ImageRequest(prompt=prompt, model=model, width=size[0], height=size[1], seed=seed))
        end = log.wait_end(job)
        assert end.kind.value == "finished", end.error
        from PIL import Image

        with Image.open(end.result[0].path) as picture:
            return np.asarray(picture.convert("RGB"))

    red, green = paint("red shapes", 4), paint("green shapes", 4)
    assert _hue_share(red, 0.0) > 0.5 > _hue_share(green, 0.0)
    assert _hue_share(green, 0.36) > 0.5 > _hue_share(red, 0.36)
    assert np.array_equal(paint("teal rings", 5), paint("teal rings", 5))
    assert not np.array_equal(paint("teal rings", 5), paint("teal rings", 6))
    wide = paint("teal rings", 5, (160, 96))
    assert wide.shape == (96, 160, 3)
    refused = log.wait_end(
        services.worker.submit(ImageRequest(prompt="x", model=model, width=8, height=64, seed=1))
    )  # fmt: skip
    assert refused.kind.value == "error" and "16 to 4096 pixels" in refused.error


def test_a_melody_is_saved_with_its_midi_file_which_travels_with_the_item(services, tmp_path):
    import mido

    from studio.gallery.verify import verify_file

    log = EventLog(services.worker)
    model = str(resources_dir() / "models" / STARTERS["music"])
    job = services.worker.submit(
        MusicRequest(prompt="a lively jig on the fiddle in D", model=model, duration=6, seed=8)
    )
    end = log.wait_end(job, timeout=120)
    assert end.kind.value == "finished", end.error
    item = end.result[0]
    tune = item.record.output["tune"]
    assert (tune["tune_type"], tune["meter"], tune["instrument"], tune["key"]) == ("jig", "6/8", "fiddle", "D major")
    [midi_path] = item.attachments
    listed = item.record.output["attachments"][0]
    assert listed["mime"] == "audio/midi" and hashlib.sha256(midi_path.read_bytes()).hexdigest() == listed["sha256"]
    # An independent reader: the notes, the tempo and the meter come back from the MIDI file.
    midi = mido.MidiFile(str(midi_path))
    notes = [m for track in midi.tracks for m in track if m.type == "note_on" and m.velocity > 0]
    meters = [m for m in midi.tracks[0] if m.type == "time_signature"]
    assert len([m for m in notes if m.channel == 0]) == tune["notes"]
    assert (meters[0].numerator, meters[0].denominator) == (6, 8)
    assert abs(mido.tempo2bpm(next(m for m in midi.tracks[0] if m.type == "set_tempo").tempo) - tune["tempo_qpm"]) < 1
    # Every bar is whole: the notes of each bar add up to the meter (6/8 = 3 quarter notes).
    per_bar = round(3 * midi.ticks_per_beat)
    starts = sorted(sum_ticks for sum_ticks in _note_on_ticks(midi.tracks[1]))
    assert starts[-1] < per_bar * tune["bars"]
    # Verify checks the MIDI file too; the trash and export take it along.
    assert verify_file(item.path).ok
    services.store.delete([item.id])
    assert not midi_path.exists() and (services.store.root / "trash" / midi_path.name).exists()
    services.store.restore([item.id])
    assert midi_path.exists()
    assert services.store.rebuild() == 1  # the .mid file is not an item of its own
    changed = bytearray(midi_path.read_bytes())
    changed[-10] ^= 0x01  # one note a semitone off
    midi_path.write_bytes(bytes(changed))
    assert not verify_file(item.path).ok
    from studio.gallery.export import ExportOptions, export_items

    midi_path.write_bytes(bytes(changed[:-10]) + bytes([changed[-10] ^ 0x01]) + bytes(changed[-9:]))  # undo
    written = export_items([item], ExportOptions(folder=tmp_path / "out"))
    assert sorted(p.suffix for p in written) == [".flac", ".mid"]
    # Into another gallery: the MIDI file comes along, checked against the record's hash.
    from studio.gallery.store import GalleryStore

    other = GalleryStore(tmp_path / "other-gallery")
    try:
        imported = other.import_file(next(p for p in written if p.suffix == ".flac"))
        assert [p.suffix for p in imported.attachments] == [".mid"] and imported.attachments[0].is_file()
        assert verify_file(imported.path).ok
    finally:
        other.close()


def _note_on_ticks(track):
    now = 0
    for message in track:
        now += message.time
        if message.type == "note_on" and message.velocity > 0:
            yield now


def test_the_melody_prompt_reads_type_mode_tempo_instrument_and_key():
    from studio.engines.melody import read_prompt

    plan = read_prompt("a sad slow waltz on the piano in A minor, solo")
    assert (plan.tune_type, plan.meter, plan.mode, plan.tempo, plan.instrument) == (
        "waltz",
        "3/4",
        "minor",
        "slow",
        "piano",
    )
    assert plan.tonic == 9 and not plan.accompaniment
    plan = read_prompt("happy reel")
    assert (plan.tune_type, plan.meter, plan.mode, plan.accompaniment) == ("reel", "2/2", "major", True)
    assert read_prompt("something in 9/8").tune_type == "slipjig"
    assert read_prompt("in Bb").tonic == 10


def test_sampled_tunes_have_whole_bars_and_stop_on_cancel():
    from fractions import Fraction
    from types import SimpleNamespace

    from studio.core.errors import JobCancelled
    from studio.engines import melody
    from studio.engines.devices import choose_device
    from studio.engines.melody_tokens import bar_length, decode_notes

    spec = SimpleNamespace(path=resources_dir() / "models" / STARTERS["music"], name="starter")
    loaded = melody.load(spec, choose_device("cpu"))
    for seed, prompt in enumerate(("a reel", "a slip jig", "a slow air", "a march")):
        plan = melody.read_prompt(prompt)
        ids = melody.sample_tune(loaded, plan, 8, seed=seed, temperature=1.3, top_k=0)
        _, notes = decode_notes(loaded.vocab, ids)
        fills: dict[int, Fraction] = {}
        for note in notes:
            fills[note.bar] = fills.get(note.bar, Fraction(0)) + note.quarters
        assert len(fills) == 8
        assert all(fills[bar] == bar_length(plan.meter) for bar in range(1, 8)), (prompt, fills)

    class Cancelled:
        cancelled = True

        def progress(self, *_):
            pass

    with pytest.raises(JobCancelled):
        melody.sample_tune(loaded, melody.read_prompt("a reel"), 8, seed=1, temperature=1, top_k=0, ctx=Cancelled())


def test_the_text_starter_continues_text_as_a_base_model(services):
    log = EventLog(services.worker)
    model = str(resources_dir() / "models" / STARTERS["text"])
    request = TextRequest(prompt="And the stars of heaven", model=model, max_tokens=24, seed=3)
    end = log.wait_end(services.worker.submit(request), timeout=120)
    assert end.kind.value == "finished", end.error
    streamed = "".join(e.preview for e in log.of(end.job_id) if e.kind.value == "preview")
    assert len(streamed.split()) >= 5
    again = log.wait_end(services.worker.submit(request), timeout=120)
    first, second = (e.result[0] for e in (end, again))
    assert first.path.read_text().split("---")[-1] == second.path.read_text().split("---")[-1]  # seeded


def test_training_is_repeatable():
    """The loop the starters were trained with gives the same curve for the same seed and data."""
    from studio.starter.training import TrainingPlan, make_model, train

    stream = np.random.default_rng(0).integers(0, 50, 20_000).astype(np.int32)
    plan = TrainingPlan(
        seq_len=32, batch_size=4, max_minutes=0, max_steps=6, eval_every=3, eval_batches=2, warmup_steps=2,
        threads=1, model={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                          "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 64},
    )  # fmt: skip
    curves = [train(make_model(50, plan, {"bos": 1, "eos": 2, "pad": 0}), stream, stream, plan).curve for _ in range(2)]
    strip = [[{k: v for k, v in p.items() if k != "minutes"} for p in c] for c in curves]
    assert strip[0] == strip[1] and strip[0][-1]["train_loss"] < strip[0][0]["train_loss"] + 1


def test_the_abc_reader_turns_a_tune_into_tokens():
    pytest.importorskip("music21")
    from studio.starter.melody_corpus import encode_block

    tune = encode_block("X: 1\nT: Test Jig\nR: jig\nM: 6/8\nL: 1/8\nK: D\nA|dfa afd|e3 e2A|\n")
    assert tune["tokens"][:5] == ["<bos>", "M:6/8", "K:major", "R:jig", "Q:none"]
    # D major moved to C: the pick-up A4 (MIDI 69) becomes G4 (67), d (D5, 74) becomes C5 (72)
    assert tune["tokens"][5:9] == ["P:67", "D:1/2", "<bar>", "P:72"] and tune["tokens"][-1] == "<eos>"


def test_fluidsynth_plays_the_tune_when_it_and_a_soundfont_are_installed():
    import shutil
    from types import SimpleNamespace

    from studio.engines import melody, synth
    from studio.engines.devices import choose_device

    if shutil.which("fluidsynth") is None or synth.soundfont() is None:
        pytest.skip(
            "FluidSynth or a General MIDI soundfont is not installed (apt install fluidsynth fluid-soundfont-gm)"
        )

    class Quiet:
        cancelled = False

        def progress(self, *_):
            pass

    spec = SimpleNamespace(path=resources_dir() / "models" / STARTERS["music"], name="starter")
    loaded = melody.load(spec, choose_device("cpu"))
    request = MusicRequest(prompt="a hornpipe on the piano", model="starter", duration=4, seed=2)
    audio, midi, facts = melody.generate(loaded, request, Quiet())
    assert facts["renderer"] == "fluidsynth" and midi.startswith(b"MThd")
    assert len(audio) >= 4 * synth.SAMPLE_RATE and 0.5 < float(np.abs(audio).max()) <= 1.0


def test_on_a_fresh_install_each_tab_starts_on_its_starter_and_says_what_it_can_do(qtbot, services):
    from studio.ui.main_window import MainWindow

    window = MainWindow(services)
    qtbot.addWidget(window)
    try:
        for kind, ident in STARTERS.items():
            panel = window.panels[kind]
            assert Path(panel.model_picker.current_model()).name == ident
        image, music, text = window.panels["image"], window.panels["music"], window.panels["text"]
        qtbot.waitUntil(lambda: bool(image._model_info) and bool(music._model_info), timeout=60000)
        # The pattern painter has no steps, guidance or scheduler; the melody model no guidance.
        assert not image.steps.isEnabled() and not image.guidance.isEnabled() and not image.scheduler.isEnabled()
        assert not music.guidance.isEnabled()
        assert "abstract patterns" in image.hint.text() and "folk melodies" in music.hint.text()
        assert "King James Bible" in text.hint.text()
    finally:
        window.shutdown()


def test_an_input_a_starter_cannot_take_is_refused_before_loading(services, tmp_path):
    """The capabilities decide: the pattern painter takes no starting image, the melody model no clip."""
    import soundfile
    from PIL import Image

    picture, clip = tmp_path / "start.png", tmp_path / "clip.wav"
    Image.new("RGB", (32, 32), "red").save(picture)
    soundfile.write(clip, np.zeros((800, 1), dtype=np.float32), 8000)
    log = EventLog(services.worker)
    painter, melody = (str(resources_dir() / "models" / STARTERS[kind]) for kind in ("image", "music"))
    image_job = services.worker.submit(ImageRequest(prompt="rings", model=painter, init_image=str(picture)))
    music_job = services.worker.submit(MusicRequest(prompt="a jig", model=melody, audio_prompt=str(clip)))
    image_end, music_end = log.wait_end(image_job), log.wait_end(music_job)
    assert image_end.kind.value == "error" and "cannot start from an image" in image_end.error
    assert music_end.kind.value == "error" and "cannot continue a clip" in music_end.error
    assert services.worker.cache.keys() == {} and services.store.list() == []


@pytest.mark.parametrize("seconds", [8.0, 13.5])
def test_a_melody_is_the_length_asked(services, seconds):
    """Whole bars at an eased tempo, then cut with a fade or padded: 8 s asked is 8 s (was 9.1 s)."""
    import soundfile

    log = EventLog(services.worker)
    model = str(resources_dir() / "models" / STARTERS["music"])
    end = log.wait_end(services.worker.submit(MusicRequest(prompt="a reel", model=model, duration=seconds, seed=4)))
    assert end.kind.value == "finished", end.error
    item = end.result[0]
    info = soundfile.info(str(item.path))
    assert info.frames == round(seconds * info.samplerate)
    assert item.record.output["duration_s"] == seconds
    assert abs(soundfile.read(str(item.path))[0][-1]).max() < 0.01  # faded or silent at the very end

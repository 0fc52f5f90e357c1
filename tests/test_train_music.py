"""The music trainer on a tiny melody model: tunes read from MIDI (mido), ABC (music21) and the
melody model's own outputs; loss falls; the result is a melody model the real engine plays
differently; cancel + resume reaches the same weights; bad input is refused with the reason."""

from __future__ import annotations

import sys
import threading
from fractions import Fraction
from pathlib import Path

import pytest
from tiny_training_data import (
    Run,
    build_tiny_melody_model,
    summary_of,
    waltz_notes,
    write_abc,
    write_melody_output,
    write_midi,
    write_waltzes,
)

from studio.core.errors import JobCancelled, StudioError
from studio.core.requests import MusicRequest
from studio.core.training import TrainRequest
from studio.engines.base import RunContext
from studio.engines.devices import choose_device
from studio.engines.library.classify import inspect_folder
from studio.engines.melody_tokens import bar_length
from studio.engines.training import tune_data
from studio.engines.training.base import UnreadableData
from studio.engines.training.registry import trainer_for

STARTERS = Path(__file__).resolve().parents[1] / "resources" / "models"


@pytest.fixture(scope="module")
def tiny_melody(tmp_path_factory) -> Path:
    return build_tiny_melody_model(tmp_path_factory.mktemp("melody") / "tiny-melody")


def _bars(tokens) -> list[Fraction]:
    fills, current = [], Fraction(0)
    for token in tokens:
        if token.startswith("D:"):
            current += Fraction(token[2:])
        elif token == "<bar>":
            fills.append(current)
            current = Fraction(0)
    return fills


def _plan(base, data, trainer, **options):
    no_samples = options.get("sample_every") == 0
    request = TrainRequest(medium="music", data=tuple(str(p) for p in data), name="waltzes", seq_len=64,
                           batch_size=2, **options)  # fmt: skip
    summary = summary_of(data, "music", trainer)
    plan = trainer.plan(base, request, summary, None)
    if no_samples:
        plan.sample_every = 0
    return plan, summary


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def _midi_of(model_folder: Path, prompt: str = "a minor waltz") -> bytes:
    from studio.engines.melody import MelodyEngine

    engine = MelodyEngine()
    loaded = engine.load(inspect_folder(model_folder), choose_device("cpu"))
    request = MusicRequest(prompt=prompt, model=str(model_folder), seed=4, duration=4)
    result = engine.generate(loaded, request, RunContext("j", lambda e: None, threading.Event()))
    return result.outputs[0].attachments[".mid"]


def test_a_midi_tune_becomes_melody_tokens_with_its_meter_key_and_whole_bars(tmp_path):
    notes = waltz_notes(0)
    path = write_midi(tmp_path / "Waltz for Anna.mid", notes)  # with a bass track to tell apart
    [tune] = tune_data.read_tunes(path)
    assert tune.header == ("3/4", "minor", "waltz") and tune.tokens[:5] == (
        "<bos>", "M:3/4", "K:minor", "R:waltz", "Q:none",
    )  # fmt: skip
    assert tune.notes == len(notes)  # the melody, not the bass (one note a bar)
    assert all(fill == bar_length("3/4") for fill in _bars(tune.tokens))
    # A minor moved to C: the melody's first pitch A3+k (57 + degree) shifted up three semitones
    first = next(t for t in tune.tokens if t.startswith("P:"))
    assert int(first[2:]) == notes[0][0] + 3
    # Without a key signature the key is estimated from the notes; without words, the type is "other"
    [bare] = tune_data.read_tunes(write_midi(tmp_path / "untitled.mid", notes, key=None, accompaniment=False))
    assert bare.header == ("3/4", "minor", "other") and bare.tokens[5:] == tune.tokens[5:]
    # Chords in the melody: the highest note of each is the melody's
    [chords] = tune_data.read_tunes(write_midi(tmp_path / "chords.mid", notes, harmony=4))
    assert chords.tokens == (*tune.tokens[:3], "R:other", *tune.tokens[4:])
    # 6/8, a C major signature over a tune that sits in A minor: its relative minor is chosen
    [six_eight] = tune_data.read_tunes(write_midi(tmp_path / "jig.mid", notes[:12], meter=(6, 8), key="C"))
    assert six_eight.header == ("6/8", "minor", "jig") and all(f == 3 for f in _bars(six_eight.tokens)[:-1])


def test_abc_files_and_the_melody_models_own_outputs_are_read(tiny_melody, tmp_path):
    pytest.importorskip("music21")
    tunes = tune_data.read_tunes(write_abc(tmp_path / "two.abc"))
    assert [t.title for t in tunes] == ["The Grey Harbour", "Low Water"]
    assert all(t.header == ("3/4", "minor", "waltz") for t in tunes)
    audio = write_melody_output(tmp_path / "gallery", tiny_melody, prompt="a jig in D")
    [tune] = tune_data.read_tunes(audio)  # through its .mid, with the facts of its record
    assert tune.header == ("6/8", "major", "jig")
    trainer = trainer_for("music")
    summary = summary_of([audio, audio.with_suffix(".mid")], "music", trainer)
    assert len(summary.files) == 2 and trainer.near_duplicates(summary.files) == [
        (str(audio), str(audio.with_suffix(".mid")))
    ]
    assert len(trainer._tunes(summary.files)) == 1  # learned once


def test_fine_tuning_lowers_the_loss_and_the_engine_plays_the_result_differently(tiny_melody, tmp_path):
    trainer = trainer_for("music")
    data = write_waltzes(tmp_path / "data", count=4, bars=8)
    base = inspect_folder(tiny_melody)
    plan, summary = _plan(base, data, trainer, steps=30, learning_rate=1e-2, sample_every=30)
    assert plan.method == "full" and plan.sample_prompts == ("minor waltz 3/4",)
    run = Run(tmp_path / "run")
    outcome = trainer.train(base, plan, summary, choose_device("cpu"), run.context())
    losses = run.losses()
    assert len(losses) == 30 and sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    assert outcome.result_kind == "music" and outcome.format == "melody"
    samples = run.samples()
    assert [s["step"] for s in samples] == [0, 30]
    audio, rate = samples[-1]["data"]
    assert rate == 32000 and audio.dtype.name == "float32" and audio.shape[0] > rate
    trained = inspect_folder(run.root / "staging")
    assert trained.runnable and trained.format == "melody" and trained.kind == "music"
    assert {"config.json", "model.safetensors", "melody_vocab.json", "studio_model.json"} <= {
        p.name for p in trained.path.iterdir()
    }
    assert _midi_of(trained.path) != _midi_of(base.path)


def test_cancel_then_resume_reaches_the_weights_of_one_run(tiny_melody, tmp_path):
    import torch

    trainer = trainer_for("music")
    data = write_waltzes(tmp_path / "data", count=3, bars=8)
    base = inspect_folder(tiny_melody)
    plan, summary = _plan(base, data, trainer, steps=10, checkpoint_every=4, sample_every=0, seed=5)
    whole = Run(tmp_path / "whole")
    trainer.train(base, plan, summary, choose_device("cpu"), whole.context())
    parted = Run(tmp_path / "parted", cancel_after=6)
    plan, summary = _plan(base, data, trainer, steps=10, checkpoint_every=4, sample_every=0, seed=5)
    with pytest.raises(JobCancelled):
        trainer.train(base, plan, summary, choose_device("cpu"), parted.context())
    parted.resume, parted.cancel_after = True, None
    plan, summary = _plan(base, data, trainer, steps=10, checkpoint_every=4, sample_every=0, seed=5)
    trainer.train(base, plan, summary, choose_device("cpu"), parted.context())
    a, b = _weights(whole.root / "staging"), _weights(parted.root / "staging")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_lora_is_merged_into_a_complete_melody_model(tiny_melody, tmp_path):
    trainer = trainer_for("music")
    data = write_waltzes(tmp_path / "data", count=2, bars=8)
    base = inspect_folder(tiny_melody)
    plan, summary = _plan(base, data, trainer, method="lora", rank=4, steps=6, learning_rate=1e-2, sample_every=0)
    assert plan.notes and "merged" in plan.notes[0]
    run = Run(tmp_path / "run")
    trainer.train(base, plan, summary, choose_device("cpu"), run.context())
    weights = _weights(run.root / "staging")
    assert not any("lora" in k for k in weights) and weights.keys() == _weights(base.path).keys()
    assert _midi_of(run.root / "staging") != _midi_of(base.path)


def test_bad_tunes_are_refused_with_the_reason(tmp_path, monkeypatch):
    trainer = trainer_for("music")
    broken = tmp_path / "broken.mid"
    broken.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02")  # a header and nothing after it
    with pytest.raises(UnreadableData, match=r"broken.mid is not a readable MIDI file"):
        trainer.inspect(broken)
    (tmp_path / "noise.mid").write_bytes(b"not a midi file at all")
    with pytest.raises(UnreadableData, match=r"noise.mid is not a readable MIDI file"):
        trainer.inspect(tmp_path / "noise.mid")
    drums = write_midi(tmp_path / "two-notes.mid", [(60, 1), (62, 1)], accompaniment=False)
    with pytest.raises(UnreadableData, match=r"two-notes.mid has no melody"):
        trainer.inspect(drums)
    (tmp_path / "take.wav").write_bytes(b"RIFF....WAVE")
    with pytest.raises(UnreadableData, match=r"take.wav is audio: .* a .mid file beside"):
        trainer.inspect(tmp_path / "take.wav")
    monkeypatch.setitem(sys.modules, "music21", None)  # as if the train extra were not installed
    with pytest.raises(UnreadableData, match=r"tunes.abc: reading ABC files needs music21.*studio\[train\]"):
        trainer.inspect(write_abc(tmp_path / "tunes.abc"))


def test_an_abc_file_without_tunes_says_so(tmp_path):
    pytest.importorskip("music21")
    (tmp_path / "words.abc").write_text("just some words\n", encoding="utf-8")
    with pytest.raises(UnreadableData, match=r"words.abc holds no ABC tune"):
        trainer_for("music").inspect(tmp_path / "words.abc")


def test_bases_the_music_trainer_cannot_train_say_why(tiny_melody):
    trainer = trainer_for("music")
    with pytest.raises(StudioError, match=r"is a text model; the music trainer teaches melody models"):
        trainer.methods(inspect_folder(STARTERS / "studio-starter-text"))
    with pytest.raises(StudioError, match=r"pattern painter"):
        trainer.methods(inspect_folder(STARTERS / "studio-starter-patterns"))
    from dataclasses import replace

    musicgen = replace(inspect_folder(tiny_melody), format="musicgen", name="musicgen-small")
    with pytest.raises(StudioError, match=r"cannot train MusicGen"):
        trainer.methods(musicgen)
    assert trainer.methods(inspect_folder(STARTERS / "studio-starter-melody")) == ("full", "lora")

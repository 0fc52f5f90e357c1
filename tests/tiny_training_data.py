"""Small training sets for the text and music trainers: texts, tunes as MIDI (written with mido)
and ABC, and the wrong files people drop in by mistake. Seeded, so two builds are the same."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.events import JobEvent
from studio.core.files import file_sha256_and_size
from studio.core.training import DataSummary, TrainingFile
from studio.engines.training.base import TrainContext

SEA_TEXT = [
    "The harbour wakes before the gulls. Nets hang from the rails like grey washing, and the tide "
    "leans on the stones of the quay, patient as an old dog.",
    "Salt on the window, salt on the bread. My grandmother kept a jar of sea glass by the stove and "
    "named every colour after a boat that did not come home.",
    "At low water the mud shines like pewter. Children walk out to the wreck and come back with "
    "their boots full of cold and their pockets full of crabs.",
    "The lighthouse keeper counts the flashes to himself, one, two, three, and writes the weather "
    "in a ledger no one will read: wind south-west, sea moderate, rain later.",
]


def write_texts(folder: Path, count: int = 4, repeat: int = 3) -> list[Path]:
    """``count`` short prose files about the sea (each paragraph repeated ``repeat`` times)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        body = "\n\n".join([SEA_TEXT[index % len(SEA_TEXT)]] * repeat)
        path = folder / f"sea-{index + 1}.{'md' if index == 1 else 'txt'}"
        path.write_text(("# Notes\n\n" if index == 1 else "") + body + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def write_png(path: Path) -> Path:
    """A real 4×4 PNG (Pillow), as a picture saved into a folder of texts by mistake."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (200, 30, 30)).save(path, format="PNG")
    return path


# -- tunes ------------------------------------------------------------------------------------

# A minor-mode waltz idiom in 3/4: phrases of scale degrees of A minor (0 = A) and lengths in
# quarters, each bar three quarters long.
_WALTZ_BARS = [
    [(0, 2), (2, 1)], [(3, 1), (2, 1), (0, 1)], [(-2, 2), (0, 1)], [(2, 3)],
    [(4, 2), (3, 1)], [(2, 1), (0, 1), (-2, 1)], [(-3, 1.5), (-2, 0.5), (0, 1)], [(0, 3)],
    [(7, 2), (5, 1)], [(4, 1), (3, 1), (2, 1)], [(3, 2), (4, 1)], [(0, 3)],
]  # fmt: skip
_MINOR_SCALE = [0, 2, 3, 5, 7, 8, 10]


def _degree_to_semitones(degree: int) -> int:
    octave, step = divmod(degree, 7)
    return 12 * octave + _MINOR_SCALE[step]


def waltz_notes(seed: int, bars: int = 16) -> list[tuple[int, float]]:
    """(MIDI pitch, quarters) of one minor waltz on A: bars drawn from the idiom's stock, seeded."""
    import random

    rng = random.Random(seed)
    notes: list[tuple[int, float]] = []
    for index in range(bars):
        bar = _WALTZ_BARS[index % 4 + 4 * rng.randrange(3)] if index < bars - 1 else [(0, 3)]
        shift = rng.choice([0, 0, 1, -1]) if 0 < index < bars - 1 else 0
        for degree, quarters in bar:
            notes.append((57 + _degree_to_semitones(degree + shift), quarters))
    return notes


def write_midi(path: Path, notes: list[tuple[int, float]], *, meter=(3, 4), key: str | None = "Am",
               accompaniment: bool = True, harmony: int = 0, tpq: int = 480) -> Path:  # fmt: skip
    """A type-1 MIDI file with mido: a melody track, a time and key signature, and (optionally) a
    quieter bass track of one low note per bar, so the reader has to pick the melody; ``harmony``:
    each melody note sounds with another this many semitones below it (chords in the melody)."""
    import mido

    path.parent.mkdir(parents=True, exist_ok=True)
    song = mido.MidiFile(type=1, ticks_per_beat=tpq)
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("time_signature", numerator=meter[0], denominator=meter[1], time=0))
    if key:
        meta.append(mido.MetaMessage("key_signature", key=key, time=0))
    meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(150), time=0))
    song.tracks.append(meta)
    melody = mido.MidiTrack()
    melody.append(mido.Message("program_change", program=73, channel=0, time=0))
    for pitch, quarters in notes:
        melody.append(mido.Message("note_on", note=pitch, velocity=90, channel=0, time=0))
        if harmony:
            melody.append(mido.Message("note_on", note=pitch - harmony, velocity=70, channel=0, time=0))
        melody.append(mido.Message("note_off", note=pitch, velocity=0, channel=0, time=round(quarters * tpq)))
        if harmony:
            melody.append(mido.Message("note_off", note=pitch - harmony, velocity=0, channel=0, time=0))
    song.tracks.append(melody)
    if accompaniment:
        bass = mido.MidiTrack()
        bar = round(meter[0] * 4 / meter[1] * tpq)
        total = sum(round(q * tpq) for _, q in notes)
        for _ in range(max(1, total // bar)):
            bass.append(mido.Message("note_on", note=45, velocity=50, channel=1, time=0))
            bass.append(mido.Message("note_off", note=45, velocity=0, channel=1, time=bar))
        song.tracks.append(bass)
    song.save(path)
    return path


def write_waltzes(folder: Path, count: int = 6, bars: int = 16) -> list[Path]:
    return [write_midi(folder / f"waltz-{i + 1:02d}.mid", waltz_notes(i, bars)) for i in range(count)]


ABC_TUNES = """X: 1
T: The Grey Harbour
R: waltz
M: 3/4
L: 1/8
K: Am
A4 c2 | d2 c2 A2 | G4 A2 | c6 | e4 d2 | c2 A2 G2 | E3 G A2 | A6 |

X: 2
T: Low Water
R: waltz
M: 3/4
L: 1/8
K: Em
E4 G2 | A2 G2 E2 | D4 E2 | G6 | B4 A2 | G2 E2 D2 | B,3 D E2 | E6 |
"""


def write_abc(path: Path, text: str = ABC_TUNES) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- running a trainer ---------------------------------------------------------------------------


def summary_of(paths: list[Path], medium: str, trainer: Any) -> DataSummary:
    """The data summary the runtime would give the trainer (files it can read, with hashes)."""
    files, unreadable = [], []
    for path in sorted(paths):
        try:
            inspected = trainer.inspect(path)
        except Exception as exc:  # UnreadableData: what the summary lists as unreadable
            unreadable.append((str(path), str(exc)))
            continue
        sha256, size = file_sha256_and_size(path)
        files.append(TrainingFile(str(path), sha256, size, medium, units=inspected.units))
    return DataSummary(medium, tuple(files), unreadable=tuple(unreadable))


@dataclass
class Run:
    """A ``TrainContext`` with its events kept, cancel on demand (after ``cancel_after`` steps)."""

    root: Path
    resume: bool = False
    estimate_only: bool = False
    cancel_after: int | None = None
    events: list[JobEvent] = field(default_factory=list)

    def context(self) -> TrainContext:
        self.cancel = threading.Event()
        self.events = []

        def emit(event: JobEvent) -> None:
            self.events.append(event)
            info = event.info or {}
            if self.cancel_after is not None and info.get("phase") == "training" and event.step >= self.cancel_after:
                self.cancel.set()

        out = self.root / "staging"
        out.mkdir(parents=True, exist_ok=True)
        return TrainContext(
            "job-1", emit, self.cancel, output_dir=out, checkpoint_dir=self.root / "checkpoint",
            resume=self.resume, estimate_only=self.estimate_only,
        )  # fmt: skip

    def losses(self) -> list[float]:
        return [
            e.info["loss"] for e in self.events if e.info and e.info.get("phase") == "training" and "loss" in e.info
        ]

    def samples(self) -> list[Any]:
        return [e.preview for e in self.events if e.preview is not None]


def build_tiny_melody_model(folder: Path, *, seed: int = 0) -> Path:
    """A ``studio-melody`` folder with a tiny seeded Llama over the standard melody vocabulary."""
    from studio.engines.melody_tokens import MelodyVocabulary
    from studio.engines.training.causal_lm import llama_shape, make_llama

    folder.mkdir(parents=True, exist_ok=True)
    vocab = MelodyVocabulary.standard()
    special = {"bos": vocab.id("<bos>"), "eos": vocab.id("<eos>"), "pad": vocab.id("<pad>")}
    model = make_llama(len(vocab), llama_shape(32, 64, 2, 512, heads=2), special, seed)
    model.generation_config.pad_token_id = special["pad"]
    model.save_pretrained(folder, safe_serialization=True)
    vocab.save(folder / "melody_vocab.json")
    (folder / "studio_model.json").write_text(
        '{"format": "studio-melody", "kind": "music", "vocabulary": "melody_vocab.json"}\n', encoding="utf-8"
    )
    return folder


def write_melody_output(folder: Path, model_folder: Path, *, seed: int = 1, prompt: str = "a jig in D") -> Path:
    """An output of the melody model as the gallery keeps it: audio, its ``.mid`` companion and a
    sidecar whose ``output`` holds the engine's facts of the tune."""
    import json

    import soundfile

    from studio.core.requests import MusicRequest
    from studio.engines.base import RunContext
    from studio.engines.devices import choose_device
    from studio.engines.library.classify import inspect_folder
    from studio.engines.melody import MelodyEngine

    engine = MelodyEngine()
    spec = inspect_folder(model_folder)
    loaded = engine.load(spec, choose_device("cpu"))
    request = MusicRequest(prompt=prompt, model=str(model_folder), seed=seed, duration=4)
    result = engine.generate(loaded, request, RunContext("j", lambda e: None, threading.Event()))
    output = result.outputs[0]
    folder.mkdir(parents=True, exist_ok=True)
    audio = folder / "01J0MELODYOUTPUT0000000000.flac"
    soundfile.write(audio, output.data, output.info["sample_rate"])
    audio.with_suffix(".mid").write_bytes(output.attachments[".mid"])
    audio.with_suffix(".json").write_text(json.dumps({"output": dict(output.info)}, default=str), encoding="utf-8")
    return audio

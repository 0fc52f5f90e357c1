"""Reading the artist's tunes for training, into the melody token language (``melody_tokens``):

- MIDI files (``.mid``, ``.midi``) with **mido**: the melody line is the busiest monophonic-ish part
  (a track and channel; drums left out), and where it plays chords, its highest note at each onset;
  the meter comes from the time signature, the key and mode from the key signature (major or its
  relative minor, whichever the notes fit better) or, without one, from the notes (Krumhansl–
  Kessler key profiles); onsets are put on a grid of twelfths of a quarter, notes split at bar
  lines, and lengths the vocabulary lacks written as repeated notes of lengths it has.
- ABC files (``.abc``, one tune or many) with **music21** when it is installed (the ``train``
  extra); the starters' corpus was read the same way (``studio.starter.melody_corpus``).
- The melody model's own outputs: an audio file from the gallery keeps its tune as a ``.mid``
  companion (``<id>.mid``) and its facts (tune type, mode) in its sidecar (``<id>.json``).

Each tune becomes the header the starter was trained on — ``<bos> M:meter K:mode R:type Q:tempo``
— then pitches (moved to the tonic C) and durations, bar lines, ``<eos>``. No torch.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from studio.engines.melody_tokens import DURATIONS, HIGHEST_PITCH, LOWEST_PITCH, METERS, bar_length, nearest_duration
from studio.engines.training.base import UnreadableData

MIDI_SUFFIXES = frozenset({".mid", ".midi"})
ABC_SUFFIXES = frozenset({".abc"})
AUDIO_SUFFIXES = frozenset({".flac", ".wav", ".ogg", ".mp3"})  # the melody model's outputs, by their .mid
TUNE_SUFFIXES = MIDI_SUFFIXES | ABC_SUFFIXES | AUDIO_SUFFIXES
MIN_NOTES = 4
DRUM_CHANNEL = 9
GRID = 12  # onsets and lengths in twelfths of a quarter: sixteenths and triplets both fit
_DURATION_TWELFTHS = sorted((int(d * GRID) for d in DURATIONS), reverse=True)
_TONICS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_TYPE_WORDS = {
    "reel": "reel", "double jig": "jig", "single jig": "jig", "jig": "jig", "hornpipe": "hornpipe",
    "strathspey": "strathspey", "slip jig": "slipjig", "slipjig": "slipjig", "slide": "slide", "polka": "polka",
    "waltz": "waltz", "march": "march", "air": "air", "highland fling": "fling", "fling": "fling", "clog": "clog",
    "set dance": "setdance", "long dance": "setdance",
}  # fmt: skip
# Key profiles of Krumhansl and Kessler (1982): how well each pitch class fits a major / minor key.
_MAJOR_PROFILE = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
_MINOR_PROFILE = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)
MUSIC21_MISSING = "reading ABC files needs music21, in Studio's train extra: pip install 'studio[train]'"


@dataclass(frozen=True)
class Tune:
    """One tune as melody tokens, with the facts the summary and the shift measurement read."""

    title: str
    meter: str
    mode: str
    tune_type: str
    tokens: tuple[str, ...]

    @property
    def notes(self) -> int:
        return sum(1 for t in self.tokens if t.startswith("P:"))

    @property
    def header(self) -> tuple[str, str, str]:
        return self.meter, self.mode, self.tune_type


# -- ABC (header fields read here; the music by music21) ----------------------------------------


def tune_blocks(text: str) -> list[str]:
    """Split an ABC file into one block per tune (each starts with ``X:``)."""
    blocks = re.split(r"(?m)^(?=X:)", text)
    return [b for b in blocks if b.startswith("X:")]


def header_fields(block: str) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for line in block.splitlines():
        match = re.match(r"^([A-Za-z]):\s*(.*)$", line)
        if match:
            fields.setdefault(match.group(1), []).append(match.group(2).strip())
        if line.startswith("K:"):
            break  # the body follows the key
    return fields


def meter_of(field: str) -> str:
    field = field.replace(" ", "")
    field = {"C": "4/4", "C|": "2/2"}.get(field, field)
    return field if field in METERS else "other"


def key_of(field: str) -> tuple[int, str] | None:
    """(tonic pitch class, mode) of a key such as ``Gm``, ``Ador``, ``D``, ``Bb`` (ABC, MIDI key signatures)."""
    match = re.match(r"^\s*([A-Ga-g])([#b]?)\s*([A-Za-z]*)", field)
    if not match:
        return None
    tonic = _TONICS[match.group(1).upper()] + {"#": 1, "b": -1, "": 0}[match.group(2)]
    suffix = match.group(3).lower()[:3]
    mode = {"": "major", "maj": "major", "ion": "major", "m": "minor", "min": "minor", "aeo": "minor"}.get(suffix)
    if mode is None:
        mode = {"dor": "dorian", "mix": "mixolydian"}.get(suffix, "other")
    return tonic % 12, mode


def type_in(texts: list[str]) -> str:
    """The tune type the words name ("Waltz for Anna" → waltz), "other" when none."""
    for text in texts:
        lowered = text.lower().replace("_", " ").replace("-", " ")
        for words, name in sorted(_TYPE_WORDS.items(), key=lambda kv: -len(kv[0])):
            if re.search(rf"\b{words}e?s?\b", lowered):
                return name
    return "other"


def type_of(fields: dict[str, list[str]]) -> str:
    """The tune type of an ABC tune from its R: and T: fields (as the starter's corpus was read:
    any mention, "The Fair Maid" included — kept so a rebuild of the starter gives the same data)."""
    for text in [*fields.get("R", []), *fields.get("T", [])]:
        lowered = text.lower()
        for words, name in sorted(_TYPE_WORDS.items(), key=lambda kv: -len(kv[0])):
            if words in lowered:
                return name
    return "other"


def tempo_of(fields: dict[str, list[str]]) -> str:
    notes = " ".join(fields.get("N", []) + fields.get("Q", [])).lower()
    if "slow" in notes:
        return "slow"
    if "moderate" in notes:
        return "moderate"
    if any(w in notes for w in ("lively", "quick", "fast", "spirited", "brisk")):
        return "lively"
    return "none"


def transpose_shift(tonic: int) -> int:
    """Semitones that move ``tonic`` to C, the smaller way round (−6..+5)."""
    shift = -tonic % 12
    return shift - 12 if shift > 5 else shift


def fold_pitch(pitch: int) -> int:
    while pitch < LOWEST_PITCH:
        pitch += 12
    while pitch > HIGHEST_PITCH:
        pitch -= 12
    return pitch


def encode_block(block: str) -> dict | None:
    """One ABC tune as tokens plus facts about it, or None when it cannot be used."""
    from music21 import converter

    fields = header_fields(block)
    key = key_of(fields.get("K", [""])[0])
    if key is None or not fields.get("M"):
        return None
    meter = meter_of(fields["M"][0])
    tonic, mode = key
    try:
        score = converter.parse(block, format="abc")
    except Exception:  # music21 raises many kinds on odd ABC; such a tune is skipped
        return None
    parts = list(score.parts) if hasattr(score, "parts") and score.parts else [score]
    measures = list(parts[0].getElementsByClass("Measure"))
    if not measures:
        return None
    shift = transpose_shift(tonic)
    tokens = ["<bos>", f"M:{meter}", f"K:{mode}", f"R:{type_of(fields)}", f"Q:{tempo_of(fields)}"]
    rounding_error = 0.0
    for measure in measures:
        for element in measure.notesAndRests:
            quarters = float(element.duration.quarterLength)
            if quarters <= 0:
                continue  # grace notes
            duration = nearest_duration(quarters)
            rounding_error += abs(float(duration) - quarters)
            if element.isRest:
                tokens.append("<rest>")
            else:
                tokens.append(f"P:{fold_pitch(max(p.midi for p in element.pitches) + shift)}")
            tokens.append(f"D:{duration}")
        tokens.append("<bar>")
    tokens.append("<eos>")
    title = fields.get("T", ["untitled"])[0]
    return {"title": title, "meter": meter, "mode": mode, "tokens": tokens, "rounding_error": rounding_error}


def read_abc(path: Path) -> list[Tune]:
    try:
        import music21  # noqa: F401 - only to say what is missing before parsing
    except ImportError as exc:
        raise UnreadableData(f"{path.name}: {MUSIC21_MISSING}") from exc
    text = _text(path)
    blocks = tune_blocks(text)
    if not blocks:
        raise UnreadableData(f"{path.name} holds no ABC tune (a tune starts with an X: line)")
    tunes = []
    for block in blocks:
        encoded = encode_block(block)
        if encoded is None:
            continue
        header = encoded["tokens"]
        tunes.append(Tune(encoded["title"], encoded["meter"], encoded["mode"], header[3][2:], tuple(encoded["tokens"])))
    tunes = [t for t in tunes if t.notes >= MIN_NOTES]
    if not tunes:
        raise UnreadableData(f"{path.name}: none of its {len(blocks)} ABC tunes could be read (no key, meter or notes)")
    return tunes


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UnreadableData(f"{path.name} cannot be read: {exc.strerror or exc}") from exc


# -- MIDI ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Note:
    start: int  # ticks
    end: int
    pitch: int


def _midi_parts(song: Any) -> tuple[dict[tuple[int, int], list[_Note]], dict[str, Any]]:
    """Notes by (track, channel), and the first time signature, key signature and names."""
    parts: dict[tuple[int, int], list[_Note]] = {}
    meta: dict[str, Any] = {"names": []}
    for index, track in enumerate(song.tracks):
        now = 0
        sounding: dict[tuple[int, int], list[int]] = {}
        for message in track:
            now += message.time
            if message.is_meta:
                if message.type == "time_signature" and "meter" not in meta:
                    meta["meter"] = (message.numerator, message.denominator)
                elif message.type == "key_signature" and "key" not in meta:
                    meta["key"] = message.key
                elif message.type in ("track_name", "text") and message.text.strip():
                    meta["names"].append(message.text.strip())
                continue
            if message.type not in ("note_on", "note_off") or message.channel == DRUM_CHANNEL:
                continue
            held = sounding.setdefault((message.channel, message.note), [])
            if message.type == "note_on" and message.velocity > 0:
                held.append(now)
            elif held:
                start = held.pop(0)
                if now > start:
                    parts.setdefault((index, message.channel), []).append(_Note(start, now, message.note))
    return parts, meta


def _melody_line(parts: dict[tuple[int, int], list[_Note]]) -> list[_Note]:
    """The busiest part (by onsets; one that mostly plays chords counts three quarters of its
    onsets), the higher one of equals, as its highest note at each onset."""

    def score(notes: list[_Note]) -> tuple[float, float]:
        onsets = len({n.start for n in notes})
        # A part of chords counts for less than a line of single notes with as many onsets.
        single = len(notes) / onsets <= 1.3
        return onsets * (1.0 if single else 0.75), sum(n.pitch for n in notes) / len(notes)

    best = max(parts.values(), key=score)
    top: dict[int, _Note] = {}
    for note in best:
        if note.start not in top or note.pitch > top[note.start].pitch:
            top[note.start] = note
    return [top[s] for s in sorted(top)]


def estimate_key(weights: list[float], candidates: list[tuple[int, str]] | None = None) -> tuple[int, str]:
    """The (tonic, "major"/"minor") whose Krumhansl–Kessler profile correlates best with the
    duration of each pitch class."""
    import numpy as np

    pcs = np.asarray(weights, dtype=float)
    if not pcs.any():
        return 0, "major"
    options = candidates or [(t, m) for t in range(12) for m in ("major", "minor")]

    def fit(option: tuple[int, str]) -> float:
        tonic, mode = option
        profile = np.roll(np.asarray(_MAJOR_PROFILE if mode == "major" else _MINOR_PROFILE), tonic)
        return float(np.corrcoef(pcs, profile)[0, 1])

    return max(options, key=fit)


def _split(length: int) -> list[int]:
    """A length in twelfths as lengths the vocabulary has (largest first, never leaving one twelfth)."""
    parts: list[int] = []
    while length > 1:
        step = next(d for d in _DURATION_TWELFTHS if d <= length and length - d != 1)
        parts.append(step)
        length -= step
    return parts


def midi_tune(path: Path, song: Any, facts: dict[str, Any] | None = None) -> Tune:
    """A MIDI file (read by mido) as one tune; ``facts``: what the melody model recorded of it."""
    parts, meta = _midi_parts(song)
    parts = {k: v for k, v in parts.items() if len(v) >= MIN_NOTES}
    if not parts:
        raise UnreadableData(f"{path.name} has no melody: fewer than {MIN_NOTES} notes outside the drum channel")
    line = _melody_line(parts)
    tpq = song.ticks_per_beat
    numerator, denominator = meta.get("meter", (4, 4))  # MIDI's default when no time signature is given
    meter = f"{numerator}/{denominator}"
    meter = meter if meter in METERS else "other"
    bar = round((bar_length(meter) if meter != "other" else Fraction(numerator * 4, denominator)) * GRID)

    def grid(tick: int) -> int:
        return round(tick * GRID / tpq)

    events: list[tuple[int | None, int, int]] = []  # (pitch or None for a rest, start, length) in twelfths
    for i, note in enumerate(line):
        start = grid(note.start)
        nxt = grid(line[i + 1].start) if i + 1 < len(line) else None
        end = grid(note.end) if nxt is None else min(grid(note.end), nxt)
        if nxt is not None and nxt - end < 2:
            end = nxt  # a note released just before the next one is played legato, not followed by a rest
        if end <= start:
            continue
        if events and start > events[-1][1] + events[-1][2]:
            gap_start = events[-1][1] + events[-1][2]
            events.append((None, gap_start, start - gap_start))
        elif not events and start % bar:
            events.append((None, start - start % bar, start % bar))  # a pick-up: the bar starts with a rest
        events.append((note.pitch, start, end - start))
    durations = [0.0] * 12
    for pitch, _, length in events:
        if pitch is not None:
            durations[pitch % 12] += length
    if facts and facts.get("key"):
        tonic, mode = key_of(str(facts["key"])) or estimate_key(durations)
    elif meta.get("key"):
        tonic, _ = key_of(str(meta["key"]).replace("m", "").strip() or "C") or (0, "major")
        if str(meta["key"]).endswith("m"):
            tonic = (tonic + 3) % 12  # a minor key signature: the major of the same sharps and flats
        tonic, mode = estimate_key(durations, [(tonic, "major"), ((tonic + 9) % 12, "minor")])
    else:
        tonic, mode = estimate_key(durations)
    if facts and str(facts.get("mode", "")) in ("major", "minor", "dorian", "mixolydian"):
        mode = str(facts["mode"])
    shift = transpose_shift(tonic)
    tune_type = (
        str(facts.get("tune_type")) if facts and facts.get("tune_type") else type_in([path.stem, *meta["names"]])
    )
    tokens = ["<bos>", f"M:{meter}", f"K:{mode}", f"R:{tune_type}", "Q:none"]
    position = 0  # within the current bar; the events are contiguous from the first bar's start
    for pitch, _, length in events:
        remaining = length
        while remaining > 1:
            piece = min(remaining, bar - position)
            if piece <= 1:  # a twelfth left in the bar cannot be written: the bar closes early
                tokens.append("<bar>")
                position = 0
                continue
            for part in _split(piece):
                tokens += ["<rest>" if pitch is None else f"P:{fold_pitch(pitch + shift)}", f"D:{Fraction(part, GRID)}"]
            position += piece
            remaining -= piece
            if position >= bar:
                tokens.append("<bar>")
                position = 0
    if position:
        tokens.append("<bar>")
    tokens.append("<eos>")
    title = meta["names"][0] if meta["names"] else path.stem
    tune = Tune(title, meter, mode, tune_type, tuple(tokens))
    if tune.notes < MIN_NOTES:
        raise UnreadableData(f"{path.name} has no melody: fewer than {MIN_NOTES} notes")
    return tune


def read_midi(path: Path, facts: dict[str, Any] | None = None) -> list[Tune]:
    import mido

    try:
        song = mido.MidiFile(str(path))
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise UnreadableData(f"{path.name} is not a readable MIDI file: {exc}") from exc
    return [midi_tune(path, song, facts)]


def _melody_output(path: Path) -> list[Tune]:
    """A melody output from the gallery: its ``.mid`` companion, with the facts of its record."""
    midi = path.with_suffix(".mid")
    if not midi.is_file():
        raise UnreadableData(
            f"{path.name} is audio: Studio learns tunes from MIDI and ABC files, and from the melody model's "
            "outputs, which keep their notes in a .mid file beside the audio"
        )
    facts: dict[str, Any] = {}
    try:
        record = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = None
    # The sidecar is the item's provenance record: its ``output`` holds the engine's facts of the tune.
    output = record.get("output") if isinstance(record, dict) else None
    if isinstance(output, dict) and isinstance(output.get("tune"), dict):
        facts = dict(output["tune"])
    return read_midi(midi, facts)


_cache: dict[tuple[str, int, int], list[Tune]] = {}


def read_tunes(path: Path) -> list[Tune]:
    """The tunes in ``path`` (cached by path, size and modification time); ``UnreadableData`` says why none."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise UnreadableData(f"{path.name} cannot be read: {exc.strerror or exc}") from exc
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    found = _cache.get(key)
    if found is not None:
        return found
    suffix = path.suffix.lower()
    if suffix in MIDI_SUFFIXES:
        tunes = read_midi(path)
    elif suffix in ABC_SUFFIXES:
        tunes = read_abc(path)
    elif suffix in AUDIO_SUFFIXES:
        tunes = _melody_output(path)
    else:
        raise UnreadableData(
            f"{path.name}: a tune set learns from MIDI (.mid, .midi) and ABC (.abc) files, not {suffix or 'this'}"
        )
    _cache[key] = tunes
    return tunes


def source_of(path: Path) -> Path:
    """The file the notes come from (a melody output's ``.mid``), to learn each tune once."""
    path = Path(path)
    return path.with_suffix(".mid") if path.suffix.lower() in AUDIO_SUFFIXES else path

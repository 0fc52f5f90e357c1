"""The token language of Studio's melody models: a tune as a header (meter, mode, tune type,
tempo) then notes (pitch or rest, then a duration) separated by bar lines.

Pitches are MIDI numbers after the tune was moved to the tonic C (so the model learns scale
degrees, not keys); durations are quarter-note lengths from a fixed set. The same vocabulary is
used to build the training data (``studio.starter.melody_corpus``), to constrain sampling so every
bar has the meter's length, and to render the result (``studio.engines.melody``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

SPECIALS = ("<pad>", "<bos>", "<eos>", "<bar>", "<rest>")
METERS = ("2/4", "3/4", "4/4", "2/2", "6/8", "9/8", "12/8", "3/2", "other")
MODES = ("major", "minor", "dorian", "mixolydian", "other")
TUNE_TYPES = (
    "reel", "jig", "hornpipe", "strathspey", "slipjig", "slide", "polka", "waltz", "march", "air",
    "fling", "clog", "setdance", "other",
)  # fmt: skip
TEMPOS = ("slow", "moderate", "lively", "none")
LOWEST_PITCH, HIGHEST_PITCH = 43, 96  # G2..C7 after moving the tonic to C
DURATIONS = (
    Fraction(1, 6), Fraction(1, 4), Fraction(1, 3), Fraction(1, 2), Fraction(2, 3), Fraction(3, 4), Fraction(1),
    Fraction(3, 2), Fraction(2), Fraction(3), Fraction(4), Fraction(6),
)  # fmt: skip


def bar_length(meter: str) -> Fraction:
    """Quarter notes in one bar of ``meter`` ("6/8" → 3)."""
    if meter == "other":
        return Fraction(0)
    top, bottom = meter.split("/")
    return Fraction(int(top) * 4, int(bottom))


@dataclass(frozen=True)
class MelodyVocabulary:
    tokens: tuple[str, ...]

    @classmethod
    def standard(cls) -> MelodyVocabulary:
        names = [*SPECIALS]
        names += [f"M:{m}" for m in METERS] + [f"K:{m}" for m in MODES]
        names += [f"R:{t}" for t in TUNE_TYPES] + [f"Q:{t}" for t in TEMPOS]
        names += [f"P:{p}" for p in range(LOWEST_PITCH, HIGHEST_PITCH + 1)]
        names += [f"D:{d}" for d in DURATIONS]
        return cls(tuple(names))

    @classmethod
    def load(cls, path: Path) -> MelodyVocabulary:
        return cls(tuple(json.loads(Path(path).read_text())["tokens"]))

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps({"tokens": list(self.tokens)}, indent=0) + "\n")

    def __len__(self) -> int:
        return len(self.tokens)

    def id(self, token: str) -> int:
        return self._index[token]

    @property
    def _index(self) -> dict[str, int]:
        cached = self.__dict__.get("_index_cache")
        if cached is None:
            cached = {t: i for i, t in enumerate(self.tokens)}
            object.__setattr__(self, "_index_cache", cached)
        return cached

    def ids_with_prefix(self, prefix: str) -> list[int]:
        return [i for i, t in enumerate(self.tokens) if t.startswith(prefix)]

    def duration_of(self, token_id: int) -> Fraction | None:
        token = self.tokens[token_id]
        return Fraction(token[2:]) if token.startswith("D:") else None

    def pitch_of(self, token_id: int) -> int | None:
        token = self.tokens[token_id]
        return int(token[2:]) if token.startswith("P:") else None


def nearest_duration(quarters: float) -> Fraction:
    return min(DURATIONS, key=lambda d: abs(float(d) - quarters))


@dataclass(frozen=True)
class Note:
    pitch: int | None  # None: a rest
    quarters: Fraction
    bar: int


def decode_notes(vocab: MelodyVocabulary, ids: list[int]) -> tuple[dict[str, str], list[Note]]:
    """Header fields and notes of a token sequence (anything malformed is skipped)."""
    header: dict[str, str] = {}
    notes: list[Note] = []
    bar = 0
    pending: int | bool | None = False  # False: no pitch waiting for its duration
    for token_id in ids:
        token = vocab.tokens[token_id]
        if token[:2] in ("M:", "K:", "R:", "Q:"):
            header[token[0]] = token[2:]
        elif token == "<bar>":
            bar += 1
        elif token == "<rest>":
            pending = None
        elif token.startswith("P:"):
            pending = int(token[2:])
        elif token.startswith("D:") and pending is not False:
            notes.append(Note(pending, Fraction(token[2:]), bar))
            pending = False
        elif token == "<eos>":
            break
    return header, notes

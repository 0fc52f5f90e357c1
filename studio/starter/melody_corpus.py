"""Folk tunes from the corpus bundled in the ``music21`` wheel, turned into melody tokens.

Only two collections are used, both printed books long out of copyright, encoded in ABC by
volunteers and shipped in music21's corpus with the encoders' permission:

- ``ryansMammoth`` — Ryan's Mammoth Collection (Boston, 1883), 1,059 tunes;
- ``oneills1850`` — O'Neill's Music of Ireland (Chicago, 1903), the 1,850 melodies.

``essenFolksong`` is deliberately not used: its licence allows non-commercial use only.

Parsing ABC with music21 takes ~50 ms a tune, so the result is cached as JSON
(``melody-corpus.json`` in the training cache folder).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path

from studio.engines.melody_tokens import (
    HIGHEST_PITCH,
    LOWEST_PITCH,
    METERS,
    MelodyVocabulary,
    nearest_duration,
)

log = logging.getLogger(__name__)

COLLECTIONS = ("ryansMammoth", "oneills1850")
_TONICS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_TYPE_WORDS = {
    "reel": "reel", "double jig": "jig", "single jig": "jig", "jig": "jig", "hornpipe": "hornpipe",
    "strathspey": "strathspey", "slip jig": "slipjig", "slipjig": "slipjig", "slide": "slide", "polka": "polka",
    "waltz": "waltz", "march": "march", "air": "air", "highland fling": "fling", "fling": "fling", "clog": "clog",
    "set dance": "setdance", "long dance": "setdance",
}  # fmt: skip


def corpus_root() -> Path:
    import music21

    return Path(music21.__file__).parent / "corpus"


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
    """(tonic pitch class, mode) of a ``K:`` field such as ``Gm``, ``Ador``, ``D``, ``Bb``."""
    match = re.match(r"^\s*([A-Ga-g])([#b]?)\s*([A-Za-z]*)", field)
    if not match:
        return None
    tonic = _TONICS[match.group(1).upper()] + {"#": 1, "b": -1, "": 0}[match.group(2)]
    suffix = match.group(3).lower()[:3]
    mode = {"": "major", "maj": "major", "ion": "major", "m": "minor", "min": "minor", "aeo": "minor"}.get(suffix)
    if mode is None:
        mode = {"dor": "dorian", "mix": "mixolydian"}.get(suffix, "other")
    return tonic % 12, mode


def type_of(fields: dict[str, list[str]]) -> str:
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


def _transpose_shift(tonic: int) -> int:
    """Semitones that move ``tonic`` to C, the smaller way round (−6..+5)."""
    shift = -tonic % 12
    return shift - 12 if shift > 5 else shift


def encode_block(block: str) -> dict | None:
    """One tune as tokens plus facts about it, or None when it cannot be used."""
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
    shift = _transpose_shift(tonic)
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
                pitch = max(p.midi for p in element.pitches) + shift
                while pitch < LOWEST_PITCH:
                    pitch += 12
                while pitch > HIGHEST_PITCH:
                    pitch -= 12
                tokens.append(f"P:{pitch}")
            tokens.append(f"D:{duration}")
        tokens.append("<bar>")
    tokens.append("<eos>")
    title = fields.get("T", ["untitled"])[0]
    return {"title": title, "meter": meter, "mode": mode, "tokens": tokens, "rounding_error": rounding_error}


def _encode_file(path: str) -> list[dict]:
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    return [tune for tune in map(encode_block, tune_blocks(text)) if tune is not None]


def source_files(root: Path | None = None) -> list[Path]:
    root = root or corpus_root()
    return sorted(p for name in COLLECTIONS for p in (root / name).glob("*.abc"))


def build(cache: Path, workers: int = 2) -> list[dict]:
    """All usable tunes (cached); the cache is keyed by the source files' contents."""
    files = source_files()
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + path.read_bytes())
    key = digest.hexdigest()
    if cache.exists():
        stored = json.loads(cache.read_text())
        if stored.get("source_sha256") == key:
            return stored["tunes"]
    with ProcessPoolExecutor(workers) as pool:
        tunes = [tune for batch in pool.map(_encode_file, map(str, files), chunksize=4) for tune in batch]
    vocab = MelodyVocabulary.standard()
    for tune in tunes:
        assert all(t in vocab._index for t in tune["tokens"]), tune["title"]
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"source_sha256": key, "files": len(files), "tunes": tunes}))
    log.info("parsed %d tunes from %d files", len(tunes), len(files))
    return tunes


def is_validation(title: str, index: int) -> bool:
    """A fixed 5 % of tunes, chosen by title hash, is held out for validation."""
    return int(hashlib.sha256(f"{title}#{index}".encode()).hexdigest(), 16) % 20 == 0


def bar_fills(tokens: list[str]) -> list[Fraction]:
    """Quarter notes in each bar of a token list (for measuring bar correctness)."""
    fills: list[Fraction] = []
    current = Fraction(0)
    for token in tokens:
        if token.startswith("D:"):
            current += Fraction(token[2:])
        elif token == "<bar>":
            fills.append(current)
            current = Fraction(0)
    return fills

"""Folk tunes from the corpus bundled in the ``music21`` wheel, turned into melody tokens.

Only two collections are used, both printed books long out of copyright, encoded in ABC by
volunteers and shipped in music21's corpus with the encoders' permission:

- ``ryansMammoth`` — Ryan's Mammoth Collection (Boston, 1883), 1,059 tunes;
- ``oneills1850`` — O'Neill's Music of Ireland (Chicago, 1903), the 1,850 melodies.

``essenFolksong`` is deliberately not used: its licence allows non-commercial use only.

Parsing ABC with music21 (``studio.engines.training.tune_data.encode_block``) takes ~50 ms a tune, so the result is cached as JSON
(``melody-corpus.json`` in the training cache folder).
"""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path

from studio.engines.melody_tokens import MelodyVocabulary

# The ABC reader is the Train tab's too (an artist's own ABC files are read the same way).
from studio.engines.training.tune_data import (
    encode_block,
    header_fields,
    key_of,
    meter_of,
    tempo_of,
    tune_blocks,
    type_of,
)

log = logging.getLogger(__name__)

COLLECTIONS = ("ryansMammoth", "oneills1850")


def corpus_root() -> Path:
    import music21

    return Path(music21.__file__).parent / "corpus"


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


__all__ = [
    "bar_fills", "build", "corpus_root", "encode_block", "header_fields", "is_validation", "key_of", "meter_of",
    "source_files", "tempo_of", "tune_blocks", "type_of",
]  # fmt: skip

"""Reading the artist's writing for training: ``.txt`` and ``.md`` files as UTF-8 text, with the
reason a file cannot be used (an image or other binary file in a text set, another encoding, an
empty file), and near duplicates by word-shingle overlap. No torch: the data summary runs it
before anything loads."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from studio.core.training import TrainingFile
from studio.engines.training.base import UnreadableData

TEXT_SUFFIXES = frozenset({".txt", ".md"})
SHINGLE_WORDS = 5
NEAR_DUPLICATE_OVERLAP = 0.5  # Jaccard overlap of word 5-gram sets
NEAR_DUPLICATE_MAX_FILES = 600  # pairwise comparison beyond this is not cheap
SHORT_FILE_CHARS = 200
_WORD = re.compile(r"[\w']+", re.UNICODE)

# Leading bytes of files people drop into a folder of texts by mistake.
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"RIFF", "a RIFF file (WAV audio or WebP image)"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a zip archive (or a .docx / .odt document)"),
    (b"MThd", "a MIDI file"),
    (b"ID3", "an MP3 file"),
    (b"fLaC", "a FLAC file"),
    (b"OggS", "an Ogg file"),
    (b"\x7fELF", "a program"),
    (b"{\\rtf", "an RTF document"),
)


def sniff_binary(head: bytes) -> str | None:
    """What a file is when its first bytes say it is not text ("a PNG image"), else None."""
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    if b"\x00" in head[:4096]:
        return "a binary file (it holds NUL bytes)"
    return None


def read_training_text(path: Path) -> str:
    """The text of ``path``; ``UnreadableData`` says why it cannot be learned from."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableData(f"{path.name} cannot be read: {exc.strerror or exc}") from exc
    what = sniff_binary(data[:4096])
    if what is not None:
        raise UnreadableData(f"{path.name} is {what}, not text: a text set learns from .txt and .md files")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableData(
            f"{path.name} is not UTF-8 text (byte {exc.start} cannot be read): save it as UTF-8"
        ) from exc
    if path.suffix.lower() not in TEXT_SUFFIXES:
        raise UnreadableData(f"{path.name}: a text set learns from .txt and .md files, not {path.suffix or 'this'}")
    if not text.strip():
        raise UnreadableData(f"{path.name} is empty")
    return text.replace("\r\n", "\n")


def opening_words(text: str, words: int = 4) -> str:
    """The first few words of a text (a sample prompt in the data's own voice)."""
    for raw in text.splitlines():
        line = raw.strip().lstrip("#>*- ").strip()
        if len(_WORD.findall(line)) >= 2:
            return " ".join(line.split()[:words])
    return " ".join(text.split()[:words])


def shingles(text: str, size: int = SHINGLE_WORDS) -> set[int]:
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < size:
        return {hash(tuple(words))} if words else set()
    return {hash(tuple(words[i : i + size])) for i in range(len(words) - size + 1)}


def near_duplicate_groups(texts: dict[str, str], threshold: float = NEAR_DUPLICATE_OVERLAP) -> list[tuple[str, ...]]:
    """Groups of paths whose word 5-gram sets overlap by ``threshold`` or more (Jaccard), joined
    transitively; every group has two paths or more."""
    paths = sorted(texts)[:NEAR_DUPLICATE_MAX_FILES]
    sets = {p: shingles(texts[p]) for p in paths}
    parent = {p: p for p in paths}

    def root(p: str) -> str:
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    for i, a in enumerate(paths):
        for b in paths[i + 1 :]:
            sa, sb = sets[a], sets[b]
            if not sa or not sb:
                continue
            smaller, larger = (sa, sb) if len(sa) <= len(sb) else (sb, sa)
            if len(smaller) < threshold * len(larger):
                continue  # Jaccard ≤ |small| / |large|: cannot reach the threshold
            common = len(smaller & larger)
            if common / (len(sa) + len(sb) - common) >= threshold:
                parent[root(b)] = root(a)
    groups: dict[str, list[str]] = {}
    for p in paths:
        groups.setdefault(root(p), []).append(p)
    return [tuple(g) for g in groups.values() if len(g) > 1]


def text_near_duplicates(files: Sequence[TrainingFile]) -> list[tuple[str, ...]]:
    texts: dict[str, str] = {}
    for f in files:
        try:
            texts[f.path] = read_training_text(Path(f.path))
        except UnreadableData:
            continue
    return near_duplicate_groups(texts)


def text_notes(files: Sequence[TrainingFile]) -> list[str]:
    notes: list[str] = []
    characters = sum(f.units for f in files)
    if files and characters < 2000:
        notes.append(
            f"only {characters:,} characters of text: the model will mostly learn these words by heart; "
            "tens of kilobytes teach a voice"
        )
    short = [f for f in files if 0 < f.units < SHORT_FILE_CHARS]
    if short:
        notes.append(f"{len(short)} files are shorter than {SHORT_FILE_CHARS} characters")
    if any(Path(f.path).suffix.lower() == ".md" for f in files):
        notes.append("Markdown is learned as written: headings, lists and emphasis marks included")
    return notes

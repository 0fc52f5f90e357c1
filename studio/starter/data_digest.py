"""The starters' data on record: the same data digest a model trained in Studio carries.

    python -m studio.starter.data_digest music|text|all

Hashes each starter's training sources — the melody starter's: the ABC files of music21's
``ryansMammoth`` and ``oneills1850`` collections; the text starter's: Debian's ``bible-kjv-text``
data file, which the ``bible`` command reads — and writes, into the model's folder:

- ``studio_training.json``: a training card (``studio.core.training.TrainingCard``) listing every
  source file with its sha256, its lineage saying "trained by Studio"; the library reads it, so
  every output of the starter records the digest and its C2PA manifest names it;
- ``training_report.json``: ``data.data_digest`` and ``data.data_files``;
- ``README.md``: one "Data digest" line in its Training data section.

``python -m studio.starter.train … `` (and ``--measure-only``) runs it after writing the card.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import studio
from studio.core.files import file_sha256_and_size
from studio.core.provenance import utc_now_iso
from studio.core.training import TRAINING_FILE, DataSummary, TrainingCard, TrainingFile

MODELS = Path(__file__).resolve().parents[2] / "resources" / "models"
BIBLE_DATA = Path("/usr/lib/bible.data")  # bible-kjv-text: the whole KJV, as the ``bible`` command reads it
_DIGEST_LINE = re.compile(r"^Data digest: .*$", re.MULTILINE)


def melody_sources() -> list[tuple[Path, str]]:
    """(file, sha256) of every ABC file the melody starter learned from."""
    from studio.starter.melody_corpus import source_files

    return [(path, file_sha256_and_size(path)[0]) for path in source_files()]


def text_sources() -> list[tuple[Path, str]]:
    """(file, sha256) of the text starter's source: the KJV data file of Debian's bible-kjv-text."""
    if not BIBLE_DATA.is_file():
        raise SystemExit("the text starter's source is Debian's KJV: sudo apt install bible-kjv")
    return [(BIBLE_DATA, file_sha256_and_size(BIBLE_DATA)[0])]


def _label(path: Path) -> str:
    """A source named where anyone finds it: inside music21's corpus, or its Debian path."""
    parts = path.parts
    if "corpus" in parts:
        return "music21/corpus/" + "/".join(parts[parts.index("corpus") + 1 :])
    return str(path)


def _text_of_bible() -> str:
    """sha256 of the text the ``bible`` command gives (what the text starter's tokenizer read)."""
    from studio.starter.text_model import ALL_VERSES

    program = shutil.which("bible")
    if program is None:
        return ""
    text = subprocess.run([program, "-f", "-l100000", ALL_VERSES], check=True, capture_output=True).stdout
    return hashlib.sha256(text).hexdigest()


def stamp(folder: Path, medium: str, sources: list[tuple[Path, str]], *, rights: str, about: str) -> str:
    """Write the starter's training card, report digest and README line; returns the digest."""
    report_file = folder / "training_report.json"
    report: dict[str, Any] = json.loads(report_file.read_text()) if report_file.is_file() else {}
    files = tuple(
        TrainingFile(path=_label(path), sha256=sha, size_bytes=path.stat().st_size, medium=medium)
        for path, sha in sources
    )
    summary = DataSummary(medium=medium, files=files, notes=(about,), rights=rights)
    curve = [(int(p["step"]), float(p["train_loss"])) for p in report.get("curve", [])]
    card = TrainingCard(
        name=folder.name,
        medium=medium,
        method="full",
        result_kind=medium,
        base={"id": "", "name": "none (trained from scratch)", "sha256": "", "format": "", "family": ""},
        settings=dict(report.get("plan", {})),
        steps=int(report.get("steps", 0)),
        final_loss=float(report.get("final_train_loss", 0.0)),
        best_loss=min((loss for _, loss in curve), default=0.0),
        duration_s=round(float(report.get("minutes", 0.0)) * 60, 1),
        device=f"CPU, {report.get('plan', {}).get('threads', '?')} threads",
        data=summary,
        created_at=utc_now_iso(),
        app_version=studio.__version__,
        curve=tuple(curve),
    )
    data = card.to_dict()
    data["lineage"]["trained_by"] = "Studio"  # the starters are Studio's own, not the artist's
    (folder / TRAINING_FILE).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    digest = summary.digest
    if report:
        report.setdefault("data", {}).update(data_digest=digest, data_files=len(files))
        if medium == "text":
            text_sha = _text_of_bible()
            if text_sha:
                report["data"]["text_sha256"] = text_sha
        report_file.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    readme = folder / "README.md"
    if readme.is_file():
        line = (
            f"Data digest: `{digest}` — sha256 over the sorted sha256s of the {len(files):,} source "
            f"file{'s' if len(files) != 1 else ''} (each listed in `{TRAINING_FILE}`), the digest every output "
            "of this model records and `studio verify` names."
        )
        text = readme.read_text(encoding="utf-8")
        if _DIGEST_LINE.search(text):
            text = _DIGEST_LINE.sub(line, text)
        else:
            text = text.replace("\n## Model\n", f"\n{line}\n\n## Model\n", 1)
        readme.write_text(text, encoding="utf-8")
    return digest


def stamp_melody(folder: Path) -> str:
    return stamp(
        folder,
        "music",
        melody_sources(),
        rights="public domain tune books (Ryan's Mammoth Collection, 1883; O'Neill's Music of Ireland, 1903); "
        "ABC encodings distributed in music21's corpus with the encoders' permission",
        about="the ABC files of music21's ryansMammoth and oneills1850 collections",
    )


def stamp_text(folder: Path) -> str:
    return stamp(
        folder,
        "text",
        text_sources(),
        rights="King James Version (1611), Debian bible-kjv-text, provided for unrestricted use; "
        "in the United Kingdom the Crown's letters patent restrict printing it",
        about="Debian's bible-kjv-text data file, read with the bible command",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m studio.starter.data_digest", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("music", "text", "all"))
    args = parser.parse_args(argv)
    if args.what in ("music", "all"):
        print("studio-starter-melody", stamp_melody(MODELS / "studio-starter-melody"))
    if args.what in ("text", "all"):
        print("studio-starter-text", stamp_text(MODELS / "studio-starter-text"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

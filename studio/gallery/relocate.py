"""Where the gallery lives: adopting a folder that already holds a Studio gallery, or moving the
gallery to a new, empty folder — every file copied, each copy checked against its original's
sha256, and only then the originals removed. Runs while no store has the gallery open (at start)."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from studio.core.errors import StudioError
from studio.core.files import file_sha256

log = logging.getLogger(__name__)
INDEX_FILE = "index.sqlite3"


@dataclass(frozen=True)
class GalleryChoice:
    """What choosing ``target`` as the gallery folder would do: "adopt" (it holds a gallery: use it as
    it is, the current one stays where it is), "move" (empty or new: the gallery moves there), or
    "same"; a folder with other things in it is refused with the reason."""

    action: str
    target: Path
    reason: str = ""


def is_gallery(folder: Path) -> bool:
    return (folder / INDEX_FILE).is_file()


def choose_gallery_folder(current: Path, target: Path) -> GalleryChoice:
    target = target.expanduser().resolve()
    if target == current.resolve():
        return GalleryChoice("same", target)
    if current.resolve() in target.parents:
        raise StudioError(f"{target} is inside the current gallery; choose a folder outside it.")
    if target.exists() and not target.is_dir():
        raise StudioError(f"{target} is a file, not a folder.")
    if target.is_dir() and is_gallery(target):
        return GalleryChoice("adopt", target)
    if target.is_dir() and any(target.iterdir()):
        raise StudioError(
            f"{target} already holds other files and no Studio gallery; choose an empty folder "
            "(the gallery moves there) or one that holds a gallery (Studio uses it)."
        )
    return GalleryChoice("move", target)


def move_gallery(source: Path, target: Path) -> int:
    """Move every file of the gallery ``source`` into ``target`` (empty or missing); returns the
    number of files moved. Copies first and checks each copy's sha256; on any failure the copies
    are removed and ``source`` is left whole (``StudioError`` says what failed)."""
    files = [path for path in sorted(source.rglob("*")) if path.is_file()]
    copied: list[Path] = []
    try:
        target.mkdir(parents=True, exist_ok=True)
        for path in files:
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)
            copied.append(destination)
            if file_sha256(destination) != file_sha256(path):
                raise StudioError(f"the copy of {path.name} in {target} differs from the original")
    except (OSError, StudioError) as exc:
        for path in copied:
            path.unlink(missing_ok=True)
        raise StudioError(f"Could not move the gallery to {target}: {exc}. It stays in {source}.") from exc
    for path in files:
        path.unlink()
    for folder in sorted((p for p in source.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:
            pass  # something new appeared in it: left as it is
    try:
        os.rmdir(source)
    except OSError:
        pass
    log.info("moved the gallery (%d files) from %s to %s", len(files), source, target)
    return len(files)

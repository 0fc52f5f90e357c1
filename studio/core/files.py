"""File helpers every layer needs: a file's sha256, an atomic write, an error's first line.

Plain Python (``os``, ``hashlib``, ``tempfile``), so ``core`` stays free of the model libraries.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

_BLOCK = 1 << 20


def file_sha256(path: Path | str) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks (weights can be gigabytes)."""
    return file_sha256_and_size(path)[0]


def file_sha256_and_size(path: Path | str) -> tuple[str, int]:
    """The sha256 of a file and how many bytes were hashed, in one read."""
    digest = hashlib.sha256()
    size = 0
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def atomic_write(final: Path, write: Callable[[Path], object], *, prefix: str = ".partial-") -> None:
    """Have ``write`` fill a temporary file beside ``final``, flush it to disk, then rename it over
    ``final``: a crash or a full disk leaves the old file (or none), never half of the new one."""
    fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=final.suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(final.parent)


def atomic_write_text(final: Path, text: str, *, prefix: str = ".partial-") -> None:
    """``atomic_write`` of UTF-8 text."""
    atomic_write(final, lambda tmp: tmp.write_text(text, encoding="utf-8"), prefix=prefix)


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable; a no-op where the platform cannot open folders."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def first_line(error: BaseException | str, limit: int = 300, *, empty: str = "no message") -> str:
    """The first line of an error's message, at most ``limit`` characters: what a person reads first."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else empty

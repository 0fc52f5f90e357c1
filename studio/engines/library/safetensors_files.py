"""Reading safetensors files without loading them: the header, the dtype, the parameter count,
and whether a folder's weights are there and whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl")


SAFETENSORS_DTYPES = {
    "F16": "float16",
    "BF16": "bfloat16",
    "F32": "float32",
    "F64": "float64",
    "I8": "int8",
    "U8": "uint8",
}


def safetensors_header(file: Path) -> dict[str, Any] | None:
    """The JSON header of a safetensors file, or None when the file is damaged or truncated."""
    try:
        size = file.stat().st_size
        with file.open("rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            if not 2 <= length <= min(100_000_000, size - 8):
                return None
            header = json.loads(handle.read(length))
    except (OSError, ValueError):
        return None
    if not isinstance(header, dict):
        return None
    ends = [
        entry["data_offsets"][1]
        for key, entry in header.items()
        if key != "__metadata__" and isinstance(entry, dict) and "data_offsets" in entry
    ]
    if ends and 8 + length + max(ends) > size:
        return None  # the header promises more bytes than the file holds: cut short
    return header


def weights_problem(path: Path, *, recursive: bool, allow_pickle: bool) -> str:
    files = sorted(path.rglob("*.safetensors") if recursive else path.glob("*.safetensors"))
    if not files:
        if allow_pickle and any(p.suffix in PICKLE_SUFFIXES for p in path.rglob("*")):
            return ""
        return no_safetensors(path)
    for file in files:
        if safetensors_header(file) is None:
            return f"{file.relative_to(path)} is damaged (truncated, or not a safetensors file)"
    return ""


def weights_dtype(path: Path, *, recursive: bool) -> str:
    for file in sorted(path.rglob("*.safetensors") if recursive else path.glob("*.safetensors"))[:3]:
        header = safetensors_header(file) or {}
        for key, entry in header.items():
            if key != "__metadata__" and isinstance(entry, dict):
                return SAFETENSORS_DTYPES.get(str(entry.get("dtype")), str(entry.get("dtype", "")).lower())
    return ""


def header_dtype(header: dict[str, Any]) -> str:
    for key, entry in header.items():
        if key != "__metadata__" and isinstance(entry, dict):
            return SAFETENSORS_DTYPES.get(str(entry.get("dtype")), str(entry.get("dtype", "")).lower())
    return ""


def safetensors_parameter_bytes(path: Path, bytes_per_parameter: int) -> int:
    """How much memory the weights under ``path`` take in a dtype of ``bytes_per_parameter``.

    Reads only the JSON header of each safetensors file (the first few kilobytes), not the weights.
    """
    total = 0
    files = [path] if path.is_file() else sorted(path.rglob("*.safetensors"))
    names = {f.parent / f.name.replace(".fp16.", ".") for f in files if ".fp16." not in f.name}
    for file in files:
        if ".fp16." in file.name and file.parent / file.name.replace(".fp16.", ".") in names:
            continue  # the same weights in another precision: count them once
        header = safetensors_header(file) or {}
        for name, entry in header.items():
            if name == "__metadata__" or not isinstance(entry, dict):
                continue
            count = 1
            for dim in entry.get("shape", []):
                count *= int(dim)
            total += count
    return total * bytes_per_parameter


def no_safetensors(path: Path) -> str:
    if any(p.suffix in PICKLE_SUFFIXES for p in path.rglob("*")):
        return "only pickle weights (.bin/.ckpt/.pt), which can run code when loaded; Studio loads safetensors only"
    return "no weights found (.safetensors files are missing)"


def size_on_disk(path: Path) -> int:
    total = 0
    for file in path.rglob("*"):
        try:
            if file.is_file():  # follows the HF cache's symlinks to their blobs
                total += file.stat().st_size
        except OSError:
            continue
    return total


def file_size(file: Path) -> int:
    try:
        return file.stat().st_size
    except OSError:
        return 0

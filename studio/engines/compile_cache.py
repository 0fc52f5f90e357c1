"""torch.compile's caches kept in Studio's cache folder, so a relaunch does not compile again.

Compiling the image denoiser made the first image after loading take 48 s for SD 1.5 on an H100
(4.2 s uncompiled), and that again after every relaunch: torch keeps its compiled kernels in
``/tmp/torchinductor_<user>`` by default, which a reboot or a cleaner empties. Two of torch's own
mechanisms bring them back:

- ``TORCHINDUCTOR_CACHE_DIR`` (and ``TRITON_CACHE_DIR`` under it): inductor's FX-graph, AOTAutograd
  and autotuning caches and Triton's kernels, on disk in ``<cache>/torch-compile/inductor``;
- the "mega-cache" (``torch.compiler.save_cache_artifacts`` / ``load_cache_artifacts``): every
  artifact one process compiled, as one file per model and device
  (``<cache>/torch-compile/artifacts/<key>.bin``), saved after the first compiled run and loaded
  before the next compile — it refills the caches above even if they were emptied.

What a cache holds is keyed by torch itself (graph, shapes, device, versions), so a stale file is
only a miss, never a wrong kernel. ``configure`` must run before torch compiles anything; a cache
folder the user set in the environment wins.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_FOLDER_NAME = "torch-compile"
_state: dict[str, Path] = {}


def configure(cache_root: Path) -> Path:
    """Point torch's compile caches under ``cache_root``; returns the folder. Safe to call again."""
    folder = Path(cache_root) / _FOLDER_NAME
    inductor = folder / "inductor"
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(inductor))
    os.environ.setdefault("TRITON_CACHE_DIR", str(Path(os.environ["TORCHINDUCTOR_CACHE_DIR"]) / "triton"))
    _state["folder"] = folder
    return folder


def folder() -> Path | None:
    """The folder ``configure`` chose, or None (torch's defaults then)."""
    return _state.get("folder")


def artifact_file(model_key: str, device_name: str, dtype_name: str) -> Path | None:
    """Where the mega-cache of one model on one device lives (None when not configured)."""
    root = folder()
    if root is None:
        return None
    import torch

    digest = hashlib.sha256("\0".join((model_key, device_name, dtype_name, torch.__version__)).encode()).hexdigest()
    return root / "artifacts" / f"{digest[:24]}.bin"


def load(file: Path | None) -> bool:
    """Refill torch's caches from ``file`` before compiling; True when it held artifacts."""
    if file is None or not file.is_file():
        return False
    import torch

    try:
        info = torch.compiler.load_cache_artifacts(file.read_bytes())
    except Exception as exc:  # a file from another torch, or damaged: compile as if it were not there
        log.warning("the compile cache %s could not be loaded (%s); compiling anew", file, exc)
        return False
    if info is None:  # torch refused it (another version, damaged) and said why in its own log
        log.warning("the compile cache %s held nothing this torch can use; compiling anew", file)
        return False
    return True


def save(file: Path | None) -> bool:
    """Write what this process compiled so far to ``file`` (atomically); True when anything was."""
    if file is None:
        return False
    import torch

    try:
        saved: Any = torch.compiler.save_cache_artifacts()
    except Exception as exc:  # saving is an optimisation: never fail the job for it
        log.warning("the compile cache could not be saved (%s)", exc)
        return False
    if not saved:
        return False
    data = saved[0]
    file.parent.mkdir(parents=True, exist_ok=True)
    partial = file.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(file)
    log.info("compile cache saved: %s (%d bytes)", file, len(data))
    return True

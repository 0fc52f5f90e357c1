"""Importing spandrel where torchvision is missing or broken.

spandrel's package ``__init__`` builds its registry of every architecture, and two of them import
torchvision at module level: LaMa (``rotate``, ``InterpolationMode``: an inpainting model) and
RestoreFormer (``normalize``: face restoration). Neither is an upscaler, and both call torchvision
only when they run. PyPI's torchvision wheels link torch's CUDA libraries, so next to a CPU-only
torch (or a torch of another version) ``import torchvision`` fails — "operator torchvision::nms does
not exist" — and with it ``import spandrel``, though no upscaler needs torchvision at all.

Chosen way: import spandrel normally; only when torchvision itself cannot be imported, import it
with three stand-in modules (``torchvision``, ``.transforms``, ``.transforms.functional``) in
``sys.modules`` for the length of that one import, then take them out again, so no other library
ever sees a fake torchvision (diffusers and transformers probe for it). The stand-ins' functions
raise a clear error if LaMa or RestoreFormer is ever run. Why not the alternatives: installing
torchvision would replace the user's torch with another build; importing only spandrel's
architecture modules is impossible, since any ``spandrel.*`` import runs the package ``__init__``
first; a vendored copy of the architectures would drift from spandrel.
"""

from __future__ import annotations

import enum
import importlib
import importlib.machinery
import logging
import sys
import threading
import types
from typing import Any

log = logging.getLogger(__name__)

_lock = threading.Lock()
# How spandrel was imported: "torchvision" (the real one) or "without torchvision" (the stand-ins).
imported_with = ""

_STAND_INS = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")


class _InterpolationMode(enum.Enum):  # the members LaMa names, so its module body runs
    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


def _unavailable(name: str) -> Any:
    def call(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(
            f"torchvision.transforms.functional.{name} is needed by this model, and torchvision is not "
            "installed (or does not match the installed torch); upscalers do not need it"
        )

    return call


def _torchvision_works() -> bool:
    try:
        importlib.import_module("torchvision.transforms.functional")
    except Exception as exc:  # ImportError, or RuntimeError from a wheel built for another torch
        log.info("torchvision unavailable (%s): importing spandrel without it", str(exc).splitlines()[0][:200])
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]  # a half-imported torchvision must not be found by the next import
        return False
    return True


def import_spandrel() -> types.ModuleType:
    """The ``spandrel`` module, imported with or without torchvision (see the module docstring)."""
    global imported_with
    with _lock:
        if "spandrel" in sys.modules and imported_with:
            return sys.modules["spandrel"]
        if _torchvision_works():
            module = importlib.import_module("spandrel")
            imported_with = "torchvision"
            return module
        stand_ins = {}
        for name in _STAND_INS:
            module = types.ModuleType(name)
            module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=name != _STAND_INS[-1])
            module.__path__ = []
            stand_ins[name] = module
        functional = stand_ins["torchvision.transforms.functional"]
        functional.InterpolationMode = _InterpolationMode  # type: ignore[attr-defined]
        for function in ("rotate", "normalize"):
            setattr(functional, function, _unavailable(function))
        stand_ins["torchvision.transforms"].functional = functional  # type: ignore[attr-defined]
        stand_ins["torchvision"].transforms = stand_ins["torchvision.transforms"]  # type: ignore[attr-defined]
        sys.modules.update(stand_ins)
        try:
            module = importlib.import_module("spandrel")
        finally:
            for name in _STAND_INS:
                if sys.modules.get(name) is stand_ins[name]:
                    del sys.modules[name]
        imported_with = "without torchvision"
        return module

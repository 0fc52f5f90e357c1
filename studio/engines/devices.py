"""Choosing where models run (CUDA, Apple MPS or CPU) and in which precision."""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DeviceChoice:
    """Where and how models run; a change of any field means loading the model again."""

    device: str  # a torch device string: "cuda", "mps" or "cpu"
    dtype_name: str  # "float16", "bfloat16" or "float32"
    name: str  # what the status bar shows
    memory_mode: str = "auto"  # "auto", "full" or "low" (the memory_mode setting)
    compile_models: bool = False  # torch.compile the denoiser (CUDA only)

    @property
    def dtype(self) -> Any:
        import torch

        return getattr(torch, self.dtype_name)

    @property
    def key(self) -> tuple[str, str, str, bool]:
        """What a loaded model depends on, for the model cache."""
        return (self.device, self.dtype_name, self.memory_mode, self.compile_models)

    def to_dict(self) -> dict[str, Any]:
        import torch

        facts: dict[str, Any] = {
            "device": self.device,
            "dtype": self.dtype_name,
            "name": self.name,
            "memory_mode": self.memory_mode,
        }
        if self.device == "cpu":
            # On a CPU the thread count decides how sums are split, and so the last bits of a
            # result: a regeneration with another count may differ, and should say why.
            facts["threads"] = torch.get_num_threads()
        return facts


def choose_device(
    preference: str = "auto", *, memory_mode: str = "auto", compile_models: bool = False, precision: str = "auto"
) -> DeviceChoice:
    """The best device allowed by ``preference``; half precision on GPUs (or ``precision``), float32 on the CPU."""
    import torch

    if preference in ("auto", "cuda") and torch.cuda.is_available():
        dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        if precision != "auto" and (precision != "bfloat16" or torch.cuda.is_bf16_supported()):
            dtype = precision
        return DeviceChoice("cuda", dtype, torch.cuda.get_device_name(0), memory_mode, compile_models)
    mps = getattr(torch.backends, "mps", None)
    if preference in ("auto", "mps") and mps is not None and mps.is_available():
        return DeviceChoice(
            "mps", "float32" if precision == "float32" else "float16", "Apple GPU (MPS)", memory_mode, compile_models
        )
    return DeviceChoice("cpu", "float32", f"CPU ({platform.machine() or 'unknown'})", memory_mode, compile_models)


def free_memory_bytes(choice: DeviceChoice) -> int | None:
    """Free memory on a CUDA device; None where it cannot be known (CPU, MPS)."""
    if choice.device != "cuda":
        return None
    import torch

    free, _total = torch.cuda.mem_get_info()
    return int(free)


def describe_device(choice: DeviceChoice) -> dict[str, Any]:
    """The device with its free memory, for the status bar."""
    info: dict[str, Any] = choice.to_dict()
    info["gpu_available"] = gpu_available()  # the settings grey out GPU-only options without one
    if choice.device == "cuda":
        import torch

        free, total = torch.cuda.mem_get_info()
        info.update(free_bytes=int(free), total_bytes=int(total))
    return info


def gpu_available() -> bool:
    """Whether this computer has a GPU torch can use (CUDA or Apple's MPS), whatever the setting."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(torch.cuda.is_available() or (mps is not None and mps.is_available()))


def is_out_of_memory(exc: BaseException) -> bool:
    """True for allocation failures on any device, without importing torch needlessly."""
    if isinstance(exc, MemoryError):
        return True
    if type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def free_device_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


@functools.cache
def _installed_versions() -> tuple[tuple[str, str], ...]:
    """Read once per process: each metadata lookup scans site-packages (~6 ms for the five, every job)."""
    from importlib import metadata

    versions = {}
    for name in ("torch", "transformers", "diffusers", "tokenizers", "safetensors"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return tuple(versions.items())


def library_versions() -> dict[str, str]:
    """Versions of the model libraries, for every provenance record."""
    return dict(_installed_versions())

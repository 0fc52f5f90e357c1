"""Denoising speed on a GPU at real model sizes, with no download: raw diffusers vs Studio.

Builds an SD-1.5-architecture pipeline (UNet 320/640/1280/1280, cross-attention 768, VAE
128/256/512/512, a CLIP text encoder of the real size) and an SDXL-architecture one (UNet
320/640/1280 with 1/2/10 transformer layers, two text encoders of the real sizes) from configs
with random weights, saves each as a diffusers folder in half precision, and times iterations
per second at 512² (SD 1.5) and 1024² (SDXL):

- ``raw``: ``AutoPipelineForText2Image.from_pretrained(folder, dtype=float16).to("cuda")``, then ``pipe(...)``;
- ``studio``: Studio's image engine as the app runs it (device, dtype and memory mode chosen automatically);
- ``studio_compiled``: the same with the compile setting on (channels-last UNet + ``torch.compile``).

Iterations per second come from step-end timestamps after the first few steps, so text
encoding, VAE decoding and compilation are not counted; the wall time of a whole image is
reported beside them.

    python -m benchmarks.image_gpu [--arch sd15,sdxl] [--steps 30] [--rounds 2] [--out FILE]
    python -m benchmarks.image_gpu --small      # a shrunken smoke run that works on a CPU
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

_SKIP_STEPS = 3  # steps left out of the rate: allocator warm-up, first-launch costs


def build_pipeline(arch: str, folder: Path, device: str, small: bool) -> Path:
    """Random-weight pipeline of the real architecture (channels ÷ 8 with ``small``), saved in fp16."""
    import tiny_models
    import torch

    pipe = tiny_models.make_sd_architecture_pipeline(arch, device, small)
    pipe.to(torch.float16).save_pretrained(folder, safe_serialization=True)
    del pipe
    gc.collect()
    return folder


class StepClock:
    """Step-end timestamps; the rate is taken after the first few steps."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def mark(self) -> None:
        self.stamps.append(time.perf_counter())

    def rate(self) -> float:
        usable = self.stamps[_SKIP_STEPS - 1 :] if len(self.stamps) > _SKIP_STEPS else self.stamps
        if len(usable) < 2:
            return float("nan")
        return (len(usable) - 1) / (usable[-1] - usable[0])


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_raw(folder: Path, device: str, size: int, steps: int, rounds: int) -> dict:
    import torch
    from diffusers import AutoPipelineForText2Image

    dtype = torch.float16 if device == "cuda" else torch.float32
    pipe = AutoPipelineForText2Image.from_pretrained(folder, dtype=dtype, local_files_only=True).to(device)
    pipe.set_progress_bar_config(disable=True)

    def once(n: int) -> tuple[float, float]:
        clock = StepClock()

        def on_step(_pipe, _step, _t, kwargs):
            clock.mark()
            return kwargs

        start = time.perf_counter()
        pipe(
            "a lighthouse on a cliff at dusk",
            width=size,
            height=size,
            num_inference_steps=n,
            generator=torch.Generator("cpu").manual_seed(0),
            callback_on_step_end=on_step,
            output_type="np",
        )
        _sync()
        return clock.rate(), time.perf_counter() - start

    once(min(steps, _SKIP_STEPS + 2))
    runs = [once(steps) for _ in range(rounds)]
    pipe = None  # the closure holds the pipeline too: drop it before the next one loads
    _free()
    return {"dtype": str(dtype).removeprefix("torch."), **_summarise(runs)}


def time_studio(folder: Path, device_pref: str, size: int, steps: int, rounds: int, compile_models: bool) -> dict:
    from studio.core.events import EventKind
    from studio.core.requests import ImageRequest
    from studio.engines.base import RunContext
    from studio.engines.devices import choose_device
    from studio.engines.diffusers_image import DiffusersImageEngine as ImageEngine
    from studio.engines.library import inspect_folder

    engine = ImageEngine()
    spec = inspect_folder(folder)
    device = choose_device(device_pref, compile_models=compile_models)
    loaded = engine.load(spec, device)

    def once(n: int) -> tuple[float, float]:
        clock = StepClock()

        def emit(event):
            if event.kind is EventKind.PROGRESS:
                clock.mark()

        request = ImageRequest(
            prompt="a lighthouse on a cliff at dusk", model=str(folder), width=size, height=size, steps=n, seed=0
        )
        start = time.perf_counter()
        engine.generate(loaded, request, RunContext("bench", emit, threading.Event()))
        _sync()
        return clock.rate(), time.perf_counter() - start

    started = time.perf_counter()
    once(min(steps, _SKIP_STEPS + 2))
    warmup_s = time.perf_counter() - started
    runs = [once(steps) for _ in range(rounds)]
    result = {
        "dtype": device.dtype_name,
        "cpu_offload": loaded.offloaded,
        "compiled": loaded.compiled,
        "warmup_s": round(warmup_s, 1),
        **_summarise(runs),
    }
    engine.unload(loaded)
    loaded = None
    _free()
    return result


def _summarise(runs: list[tuple[float, float]]) -> dict:
    return {
        "it_per_s": round(statistics.median(r for r, _ in runs), 2),
        "image_s": round(statistics.median(s for _, s in runs), 3),
    }


def _free() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="sd15,sdxl", help="comma-separated: sd15, sdxl")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--small", action="store_true", help="channels ÷ 8, tiny sizes: a smoke run for any machine")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile runs")
    parser.add_argument("--out", type=Path, help="also write the results here as JSON (after each measurement)")
    parser.add_argument("--work", type=Path, help="folder for the built pipelines (default: a temp folder)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    import torch

    import studio.engines  # noqa: F401 - offline, quiet Hugging Face settings first

    device = "cuda" if torch.cuda.is_available() else "cpu"
    results: dict = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "steps": args.steps,
        "runs": [],
    }
    try:
        import diffusers

        results["diffusers"] = diffusers.__version__
    except ImportError:
        pass

    def record(entry: dict) -> None:
        results["runs"].append(entry)
        print(json.dumps(entry), flush=True)
        if args.out:
            args.out.write_text(json.dumps(results, indent=2))

    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        for arch in [a.strip() for a in args.arch.split(",") if a.strip()]:
            size = {"sd15": 512, "sdxl": 1024}[arch] // (8 if args.small else 1)
            started = time.perf_counter()
            folder = build_pipeline(arch, Path(tmp) / arch, device, args.small)
            print(f"# built {arch} in {time.perf_counter() - started:.0f} s", flush=True)
            base = {"arch": arch, "size": size}
            record({**base, "path": "raw", **time_raw(folder, device, size, args.steps, args.rounds)})
            record({**base, "path": "studio", **time_studio(folder, device, size, args.steps, args.rounds, False)})
            if not args.no_compile and device == "cuda":
                record(
                    {
                        **base,
                        "path": "studio_compiled",
                        **time_studio(folder, device, size, args.steps, args.rounds, True),
                    }
                )
    print(f"\n{'arch':<6} {'size':>5} {'path':<16} {'dtype':<9} {'it/s':>7} {'image s':>8}  vs raw")
    raw_rates = {r["arch"]: r["it_per_s"] for r in results["runs"] if r["path"] == "raw"}
    for run in results["runs"]:
        ratio = run["it_per_s"] / raw_rates[run["arch"]] if raw_rates.get(run["arch"]) else float("nan")
        print(
            f"{run['arch']:<6} {run['size']:>5} {run['path']:<16} {run['dtype']:<9} "
            f"{run['it_per_s']:>7.2f} {run['image_s']:>8.3f}  {ratio:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

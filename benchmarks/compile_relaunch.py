"""The first compiled image after a relaunch vs an uncompiled one (issue 23; needs CUDA to compile).

Each run is a fresh process, as a relaunch of Studio is: it points torch's compile caches into a
Studio cache folder (``studio.engines.compile_cache``), loads an SD-1.5-architecture pipeline
through Studio's image engine and times its first image (loading not counted), then a second.

1. uncompiled;
2. compiled, with an empty cache folder (the first launch ever: torch.compile builds everything);
3. compiled again in a new process over the cache folder 2 filled (the relaunch).

``compile_relaunch_ratio`` = 3's first image ÷ 1's first image; target ≤ 2.
``compile_cold_first_image_s`` is 2's, for the record (48 s for SD 1.5 on an H100 before caching).

    python -m benchmarks.compile_relaunch [--size 512] [--steps 30] [--small] [--json]

On a machine without CUDA, Studio does not compile: the runs still go through (a smoke test of
the path) and the result says ``compiled: false``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def child(folder: Path, cache: Path, compile_models: bool, size: int, steps: int) -> dict:
    """One launch: two images through the engine; seconds of each."""
    from studio.engines import compile_cache

    compile_cache.configure(cache)  # as open_services does, before torch compiles anything
    import torch

    from studio.core.requests import ImageRequest
    from studio.engines.base import RunContext
    from studio.engines.devices import choose_device
    from studio.engines.diffusers_image import DiffusersImageEngine
    from studio.engines.library import inspect_folder

    engine = DiffusersImageEngine()
    loaded = engine.load(inspect_folder(folder), choose_device("auto", compile_models=compile_models))
    times = []
    for seed in (1, 2):
        request = ImageRequest(
            prompt="a lighthouse on a cliff at dusk", model=str(folder), width=size, height=size, steps=steps, seed=seed
        )
        start = time.perf_counter()
        engine.generate(loaded, request, RunContext("bench", lambda _event: None, threading.Event()))
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return {"first_s": times[0], "second_s": times[1], "compiled": loaded.compiled, "notes": loaded.notes}


def _launch(folder: Path, cache: Path, compile_models: bool, args: argparse.Namespace) -> dict:
    command = [sys.executable, "-m", "benchmarks.compile_relaunch", "--child", str(folder), "--cache", str(cache)]
    command += ["--size", str(args.size), "--steps", str(args.steps)] + (["--compile"] if compile_models else [])
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True, timeout=3600)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(args: argparse.Namespace) -> dict:
    if args.child:
        return child(args.child, args.cache, args.compile, args.size, args.steps)
    import torch

    from benchmarks.image_gpu import build_pipeline

    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_pipeline("sd15", Path(tmp) / "sd15-arch", device, args.small)
        cache = Path(tmp) / "cache"
        plain = _launch(folder, Path(tmp) / "cache-plain", False, args)
        cold = _launch(folder, cache, True, args)
        relaunch = _launch(folder, cache, True, args)
    return {
        "compile_relaunch_ratio": round(relaunch["first_s"] / plain["first_s"], 3),
        "compile_uncompiled_first_image_s": round(plain["first_s"], 2),
        "compile_cold_first_image_s": round(cold["first_s"], 2),
        "compile_relaunch_first_image_s": round(relaunch["first_s"], 2),
        "compile_relaunch_second_image_s": round(relaunch["second_s"], 3),
        "compile_uncompiled_second_image_s": round(plain["second_s"], 3),
        "compile_relaunch_compiled": bool(relaunch["compiled"]),
        "compile_relaunch_reused_note": any("reused" in note for note in relaunch["notes"]),
        "size": args.size,
        "steps": args.steps,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--small", action="store_true", help="channels ÷ 8: a smoke run on any machine")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--compile", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    from benchmarks.report import run_main

    args = build_parser().parse_args(argv)
    if args.child:  # one JSON line for the parent
        print(json.dumps(measure(args)))
        return 0
    return run_main(build_parser, measure, argv)


if __name__ == "__main__":
    sys.exit(main())

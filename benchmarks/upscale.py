"""Upscale tile throughput: Studio's tiled upscale (the upscaler engine's path, progress and cancel
checks between tiles, uint8 in and out) vs spandrel's descriptor called directly on the same model
and the same tiles (same boxes, same overlap), alternating round by round; medians are reported.
A whole upscale job through the worker (reading the PNG, saving the item) is timed beside it.

    python -m benchmarks.upscale [--size 192] [--tile 96] [--features 64] [--convs 16] [--scale 4] [--rounds 3] [--json]

The model is a Real-ESRGAN Compact network (realesr-general-x4v3's architecture with ``--convs``
body convolutions) with seeded random weights, saved as safetensors and loaded through spandrel.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path


def build_model(folder: Path, features: int, convs: int, scale: int) -> Path:
    import torch
    from safetensors.torch import save_file

    from studio.engines.spandrel_import import import_spandrel

    import_spandrel()
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    model = Compact(num_in_ch=3, num_out_ch=3, num_feat=features, num_conv=convs, upscale=scale)
    file = folder / f"{scale}x-bench-compact.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(file))
    return file


def boxes(height: int, width: int, tile: int) -> list[tuple[int, int, int, int]]:
    return [
        (x, y, min(x + tile, width), min(y + tile, height))
        for y in range(0, height, tile)
        for x in range(0, width, tile)
    ]


def raw_run(descriptor, image, tile: int, overlap: int, scale: int) -> float:
    """spandrel directly: the same tiles with the same context, results pasted into a float tensor."""
    import torch

    height, width = image.shape[:2]
    source = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).float() / 255.0
    out = torch.empty((1, 3, height * scale, width * scale))
    start = time.perf_counter()
    with torch.inference_mode():
        for x, y, x1, y1 in boxes(height, width, tile):
            ex0, ey0 = max(0, x - overlap), max(0, y - overlap)
            ex1, ey1 = min(width, x1 + overlap), min(height, y1 + overlap)
            result = descriptor(source[:, :, ey0:ey1, ex0:ex1])
            out[:, :, y * scale : y1 * scale, x * scale : x1 * scale] = result[
                :, :, (y - ey0) * scale : (y1 - ey0) * scale, (x - ex0) * scale : (x1 - ex0) * scale
            ]
    return time.perf_counter() - start


def studio_run(descriptor, image, tile: int, device) -> float:
    from studio.engines.upscaler import upscale_with

    ticks = []
    start = time.perf_counter()
    upscale_with(
        descriptor,
        image,
        float(descriptor.scale),
        device,
        tile=tile,
        on_tile=lambda done, total: ticks.append(done),
        cancelled=lambda: False,
    )
    return time.perf_counter() - start


def job_run(model: Path, source: Path, tile: int) -> float:
    from studio.core.paths import StudioPaths
    from studio.core.requests import UpscaleRequest
    from studio.runtime.services import open_services

    with tempfile.TemporaryDirectory() as data:
        services = open_services(StudioPaths.resolve(data))
        try:
            done = threading.Event()
            marks: dict[str, object] = {}

            def listen(event):
                if event.job_id == marks.get("job") and event.is_terminal:
                    marks["event"] = event
                    done.set()

            services.worker.subscribe(listen)
            request = UpscaleRequest(prompt="", model=str(model), init_image=str(source), scale=4.0, tile=tile)
            start = time.perf_counter()
            marks["job"] = services.worker.submit(request)
            done.wait(600)
            elapsed = time.perf_counter() - start
            assert getattr(marks.get("event"), "kind", None).value == "finished", marks.get("event")
            return elapsed
        finally:
            services.close()


def measure(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from studio.engines.devices import DeviceChoice
    from studio.engines.upscaler import TILE_OVERLAP, load_upscaler_file

    torch.set_num_threads(max(1, torch.get_num_threads()))
    device = DeviceChoice("cpu", "float32", "CPU")
    with tempfile.TemporaryDirectory() as folder:
        model = build_model(Path(folder), args.features, args.convs, args.scale)
        descriptor = load_upscaler_file(model, device)
        image = np.random.default_rng(1).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
        source = Path(folder) / "source.png"
        Image.fromarray(image).save(source)
        tiles = len(boxes(args.size, args.size, args.tile))
        studio_run(descriptor, image, args.tile, device)  # warm-up: first-call allocations
        raw_times, studio_times = [], []
        for _ in range(args.rounds):
            raw_times.append(raw_run(descriptor, image, args.tile, TILE_OVERLAP, args.scale))
            studio_times.append(studio_run(descriptor, image, args.tile, device))
        raw, studio = statistics.median(raw_times), statistics.median(studio_times)
        job = job_run(model, source, args.tile) if args.job else 0.0
    return {
        "size": args.size,
        "tile": args.tile,
        "tiles": tiles,
        "model": f"Compact {args.features}nf {args.convs}nc x{args.scale}",
        "raw_tiles_per_s": round(tiles / raw, 3),
        "studio_tiles_per_s": round(tiles / studio, 3),
        "ratio": round(raw / studio, 3),
        "target": 0.97,
        "job_s": round(job, 3),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--tile", type=int, default=96)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--convs", type=int, default=16)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-job", dest="job", action="store_false", help="skip the whole job through the worker")
    parser.add_argument("--json", action="store_true")
    return parser


if __name__ == "__main__":
    from benchmarks.report import run_main

    sys.exit(run_main(build_parser, measure))

"""Seconds per denoising step through the Studio worker vs the raw diffusers pipeline call.

Both sides load the same pipeline folder and run the same prompt, size, steps, scheduler and
seed, alternating round by round; medians are reported. The Studio side is timed from
``submit`` to the ``finished`` event, so it includes queueing, progress and preview events and
saving the PNG, sidecar and index row; the raw side is one ``pipe(...)`` call.

    python -m benchmarks.image_steps [--model FOLDER] [--size 256] [--steps 20] [--rounds 3] [--json]

Without --model it builds an SD-1.5-shaped pipeline with its channels divided by 8 (random weights).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path


def raw_run(pipe, prompt: str, size: int, steps: int, seed: int) -> float:
    import torch

    start = time.perf_counter()
    with torch.inference_mode():
        pipe(
            prompt,
            width=size,
            height=size,
            num_inference_steps=steps,
            generator=torch.Generator("cpu").manual_seed(seed),
            output_type="np",
        )
    return time.perf_counter() - start


def studio_run(services, model: Path, prompt: str, size: int, steps: int, seed: int) -> float:
    from studio.core.events import EventKind
    from studio.core.requests import ImageRequest

    done = threading.Event()
    marks: dict[str, object] = {}

    def listen(event):
        if event.job_id == marks.get("job") and event.is_terminal:
            marks["end"], marks["event"] = time.perf_counter(), event
            done.set()

    unsubscribe = services.worker.subscribe(listen)
    request = ImageRequest(prompt=prompt, model=str(model), width=size, height=size, steps=steps, seed=seed)
    start = time.perf_counter()
    marks["job"] = services.worker.submit(request)
    done.wait(600)
    unsubscribe()
    event = marks["event"]
    assert event.kind is EventKind.FINISHED, event.error
    return float(marks["end"]) - start


def measure(args: argparse.Namespace) -> dict:
    """Run the measurement with parsed options; the result keys are the harness's."""

    import torch
    from diffusers import AutoPipelineForText2Image

    import studio.engines  # noqa: F401 - offline, quiet Hugging Face settings first
    from benchmarks.image_gpu import build_pipeline
    from studio.core.paths import StudioPaths
    from studio.engines.devices import choose_device
    from studio.runtime.services import open_services

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or build_pipeline("sd15", Path(tmp) / "bench-sd", "cpu", small=True)
        services = open_services(StudioPaths.under(Path(tmp) / "data"))
        dtype = choose_device(str(services.settings.get("device"))).dtype  # the precision Studio picks
        pipe = AutoPipelineForText2Image.from_pretrained(model, dtype=dtype, local_files_only=True)
        pipe.to(choose_device(str(services.settings.get("device"))).device)
        pipe.set_progress_bar_config(disable=True)
        prompt = "a lighthouse on a cliff at dusk"
        raw_run(pipe, prompt, args.size, 2, 0)  # warm both paths
        studio_run(services, model, prompt, args.size, 2, 0)
        raw_times, studio_times = [], []
        for round_index in range(args.rounds):
            seed = 100 + round_index
            raw_times.append(raw_run(pipe, prompt, args.size, args.steps, seed) / args.steps)
            studio_times.append(studio_run(services, model, prompt, args.size, args.steps, seed) / args.steps)
        services.close()
    raw_step, studio_step = statistics.median(raw_times), statistics.median(studio_times)
    result = {
        "image_raw_s_per_step": round(raw_step, 4),
        "image_studio_s_per_step": round(studio_step, 4),
        "image_step_ratio": round(raw_step / studio_step, 4),
        "size": args.size,
        "steps": args.steps,
        "rounds": args.rounds,
        "torch_threads": torch.get_num_threads(),
    }
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    from benchmarks.report import run_main

    return run_main(build_parser, measure, argv)


if __name__ == "__main__":
    sys.exit(main())

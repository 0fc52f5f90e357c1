"""Seconds of song per second of compute: through the Studio worker vs ``AceStepPipeline``'s raw call.

Both sides use the same model folder, caption, lyrics, duration, steps and seed, and alternate
round by round; medians are reported. The Studio side is timed from ``submit`` to ``finished``:
it includes fitting the lyrics, the per-step progress hook, trimming to the exact length and
saving the FLAC (with its lyrics tag), C2PA credentials, sidecar and index row. The raw side is
one pipeline call.

    python -m benchmarks.ace_step [--model FOLDER] [--seconds 10] [--steps 8] [--rounds 3] [--json]

Without --model it builds an ACE-Step pipeline with a 512-wide, 8-layer DiT (random weights), so
that compute, not the fixed cost of saving a file, dominates — as it does with the real 2B DiT. The
fixed cost is reported too (``ace_step_overhead_s``: the median of Studio's time minus the raw time).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

CAPTION = "bright pop with piano and drums"
LYRICS = "[verse]\nwalking down the river\nsinging in the morning sun\n[chorus]\nwe are young tonight"


def raw_run(pipe, seconds: float, steps: int, seed: int) -> tuple[float, float]:
    """(seconds of audio, seconds of compute) for one pipeline call."""
    import torch

    start = time.perf_counter()
    with torch.inference_mode():
        audio = pipe(
            prompt=CAPTION,
            lyrics=LYRICS,
            audio_duration=seconds,
            num_inference_steps=steps,
            generator=torch.Generator("cpu").manual_seed(seed),
            shift=3.0,
            guidance_scale=1.0,
        ).audios
    elapsed = time.perf_counter() - start
    return audio.shape[-1] / pipe.sample_rate, elapsed


def studio_run(services, model_path: Path, seconds: float, steps: int, seed: int) -> tuple[float, float]:
    from studio.core.events import EventKind
    from studio.core.requests import MusicRequest

    done = threading.Event()
    marks: dict[str, object] = {}

    def listen(event):
        if event.job_id == marks.get("job") and event.is_terminal:
            marks["end"], marks["event"] = time.perf_counter(), event
            done.set()

    unsubscribe = services.worker.subscribe(listen)
    request = MusicRequest(
        prompt=CAPTION, model=str(model_path), duration=seconds, seed=seed, steps=steps, lyrics=LYRICS, shift=3.0
    )
    start = time.perf_counter()
    marks["job"] = services.worker.submit(request)
    done.wait(900)
    unsubscribe()
    event = marks["event"]
    assert event.kind is EventKind.FINISHED, event.error
    return float(event.result[0].record.output["duration_s"]), float(marks["end"]) - start


def measure(args: argparse.Namespace) -> dict:
    """Run the measurement with parsed options; the result keys are the harness's."""
    import tiny_ace_step
    import torch
    from diffusers import AceStepPipeline

    import studio.engines  # noqa: F401 - offline, quiet Hugging Face settings first
    from studio.core.paths import StudioPaths
    from studio.runtime.services import open_services

    with tempfile.TemporaryDirectory() as tmp:
        model_path = args.model or tiny_ace_step.build_tiny_ace_step(Path(tmp) / "bench-ace-step", width=512, layers=8)
        services = open_services(StudioPaths.under(Path(tmp) / "data"))
        pipe = AceStepPipeline.from_pretrained(model_path, local_files_only=True)
        pipe.set_progress_bar_config(disable=True)
        raw_run(pipe, 1.0, 2, 0)  # warm both paths
        studio_run(services, model_path, 1.0, 2, 0)
        raw_rates, studio_rates, overheads = [], [], []
        for round_index in range(args.rounds):
            seed = 100 + round_index
            audio_s, raw_s = raw_run(pipe, args.seconds, args.steps, seed)
            raw_rates.append(audio_s / raw_s)
            audio_s, studio_s = studio_run(services, model_path, args.seconds, args.steps, seed)
            studio_rates.append(audio_s / studio_s)
            overheads.append(studio_s - raw_s)
        services.close()
    raw_rate, studio_rate = statistics.median(raw_rates), statistics.median(studio_rates)
    return {
        "ace_step_raw_audio_s_per_s": round(raw_rate, 3),
        "ace_step_studio_audio_s_per_s": round(studio_rate, 3),
        "ace_step_rate_ratio": round(studio_rate / raw_rate, 4),
        "ace_step_overhead_s": round(statistics.median(overheads), 3),
        "seconds": args.seconds,
        "steps": args.steps,
        "rounds": args.rounds,
        "torch_threads": torch.get_num_threads(),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    from benchmarks.report import run_main

    return run_main(build_parser, measure, argv)


if __name__ == "__main__":
    sys.exit(main())

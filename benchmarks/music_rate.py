"""Seconds of audio per second of compute: through the Studio worker vs MusicGen's raw ``generate()``.

Both sides use the same model folder, prompt, duration, sampling settings and seed, and
alternate round by round; medians are reported. The Studio side is timed from ``submit`` to
``finished``: it includes the per-step progress hook, peak normalising and saving the FLAC,
sidecar and index row. The raw side is one ``generate()`` call for the same number of tokens.

    python -m benchmarks.music_rate [--model FOLDER] [--seconds 4] [--rounds 3] [--json]

Without --model it builds a MusicGen with a 256-wide, 4-layer decoder (random weights).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def raw_run(model, tokenizer, prompt: str, seconds: float, seed: int) -> tuple[float, float]:
    """(seconds of audio, seconds of compute) for one generate() call."""
    import torch

    frame_rate = model.audio_encoder.config.frame_rate
    tokens = math.ceil(seconds * frame_rate) + model.decoder.config.num_codebooks - 1
    inputs = tokenizer([prompt], return_tensors="pt")
    torch.manual_seed(seed)
    start = time.perf_counter()
    with torch.inference_mode():
        audio = model.generate(**inputs, max_new_tokens=tokens, do_sample=True, guidance_scale=3.0, top_k=250)
    elapsed = time.perf_counter() - start
    return audio.shape[-1] / model.audio_encoder.config.sampling_rate, elapsed


def studio_run(services, model_path: Path, prompt: str, seconds: float, seed: int) -> tuple[float, float]:
    from studio.core.events import EventKind
    from studio.core.requests import MusicRequest

    done = threading.Event()
    marks: dict[str, object] = {}

    def listen(event):
        if event.job_id == marks.get("job") and event.is_terminal:
            marks["end"], marks["event"] = time.perf_counter(), event
            done.set()

    unsubscribe = services.worker.subscribe(listen)
    request = MusicRequest(prompt=prompt, model=str(model_path), duration=seconds, seed=seed)
    start = time.perf_counter()
    marks["job"] = services.worker.submit(request)
    done.wait(600)
    unsubscribe()
    event = marks["event"]
    assert event.kind is EventKind.FINISHED, event.error
    return float(event.result[0].record.output["duration_s"]), float(marks["end"]) - start


def measure(args: argparse.Namespace) -> dict:
    """Run the measurement with parsed options; the result keys are the harness's."""

    import tiny_models
    import torch
    from transformers import AutoTokenizer, MusicgenForConditionalGeneration

    import studio.engines  # noqa: F401 - offline, quiet Hugging Face settings first
    from studio.core.paths import StudioPaths
    from studio.runtime.services import open_services

    with tempfile.TemporaryDirectory() as tmp:
        model_path = args.model or tiny_models.build_tiny_musicgen(
            Path(tmp) / "bench-musicgen", decoder_width=256, decoder_layers=4
        )
        services = open_services(StudioPaths.under(Path(tmp) / "data"))
        model = MusicgenForConditionalGeneration.from_pretrained(model_path, local_files_only=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        prompt = "slow piano with soft strings"
        raw_run(model, tokenizer, prompt, 0.5, 0)  # warm both paths
        studio_run(services, model_path, prompt, 0.5, 0)
        raw_rates, studio_rates = [], []
        for round_index in range(args.rounds):
            seed = 100 + round_index
            audio_s, compute_s = raw_run(model, tokenizer, prompt, args.seconds, seed)
            raw_rates.append(audio_s / compute_s)
            audio_s, compute_s = studio_run(services, model_path, prompt, args.seconds, seed)
            studio_rates.append(audio_s / compute_s)
        services.close()
    raw_rate, studio_rate = statistics.median(raw_rates), statistics.median(studio_rates)
    result = {
        "music_raw_audio_s_per_s": round(raw_rate, 3),
        "music_studio_audio_s_per_s": round(studio_rate, 3),
        "music_rate_ratio": round(studio_rate / raw_rate, 4),
        "seconds": args.seconds,
        "rounds": args.rounds,
        "torch_threads": torch.get_num_threads(),
    }
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    from benchmarks.report import run_main

    return run_main(build_parser, measure, argv)


if __name__ == "__main__":
    sys.exit(main())

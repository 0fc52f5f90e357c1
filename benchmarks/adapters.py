"""Switching between two adapter sets vs reloading the base pipeline, through Studio's adapter code.

The base is loaded by the image engine (``DiffusersImageEngine.load``, what a model change costs);
the adapters are applied by ``studio.engines.adapters.PipelineAdapters.apply`` (what the worker does
before each job): two LoRA sets, A = [first 0.8] and B = [second 0.5, first 0.3], alternated after
both were loaded once. Also reported: the first load of a LoRA file, and the seconds per denoising
step with a LoRA active (unfused, diffusers' default) vs none. Medians over ``--rounds``.

    python -m benchmarks.adapters [--arch tiny|sd15] [--small] [--rank 32] [--rounds 5] [--json]

``tiny`` is the tests' tiny SD; ``sd15`` the SD 1.5 architecture with random weights (``--small``:
channels ÷ 8, for a CPU); the LoRAs are made with peft on its UNet and text encoder.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure(args: argparse.Namespace) -> dict:
    import tiny_adapters
    import tiny_models
    import torch

    import studio.engines  # noqa: F401 - offline, quiet Hugging Face settings first
    from studio.engines.adapters import PipelineAdapters
    from studio.engines.devices import choose_device
    from studio.engines.diffusers_image import DiffusersImageEngine
    from studio.engines.library.adapters import inspect_adapter_file, resolve_adapter, resolved_adapter
    from studio.engines.library.classify import inspect_folder

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.arch == "tiny":
            model = tiny_models.build_tiny_sd_pipeline(root / "bench-sd")
        else:
            from benchmarks.image_gpu import build_pipeline

            model = build_pipeline("sd15", root / "bench-sd", "cpu", small=args.small)
        first = tiny_adapters.build_tiny_lora_kohya(model, root / "first.safetensors", seed=0, rank=args.rank)
        second = tiny_adapters.build_tiny_lora_kohya(model, root / "second.safetensors", seed=1, rank=args.rank)
        spec = inspect_folder(model)
        device = choose_device("auto")
        engine = DiffusersImageEngine()
        reloads = []
        loaded = engine.load(spec, device)
        for _ in range(args.rounds):
            engine.unload(loaded)
            start = time.perf_counter()
            loaded = engine.load(spec, device)
            reloads.append(time.perf_counter() - start)
        pipe = loaded.pipe
        specs = {name: inspect_adapter_file(path) for name, path in (("first", first), ("second", second))}

        def use(*pairs):
            return [resolved_adapter(resolve_adapter(str(specs[n].path), list), w, n) for n, w in pairs]

        set_a = use(("first", 0.8))
        set_b = use(("second", 0.5), ("first", 0.3))
        state = PipelineAdapters()
        first_load = _timed(lambda: state.apply(pipe, set_a))
        state.apply(pipe, set_b)
        switches = []
        for _ in range(args.rounds):
            switches.append(_timed(lambda: state.apply(pipe, set_a)))
            switches.append(_timed(lambda: state.apply(pipe, set_b)))

        def per_step(adapters) -> float:
            state.apply(pipe, adapters)
            with torch.inference_mode():
                start = time.perf_counter()
                pipe(
                    "a lighthouse",
                    num_inference_steps=args.steps,
                    width=args.size,
                    height=args.size,
                    generator=torch.Generator("cpu").manual_seed(0),
                    output_type="np",
                )
            return (time.perf_counter() - start) / args.steps

        pipe.set_progress_bar_config(disable=True)
        per_step([])  # warm
        none_steps = [per_step([]) for _ in range(2)]
        lora_steps = [per_step(set_a) for _ in range(2)]
    reload_s, switch_s = statistics.median(reloads), statistics.median(switches)
    return {
        "adapters_reload_base_s": round(reload_s, 4),
        "adapters_switch_s": round(switch_s, 5),
        "adapters_switch_ratio": round(switch_s / reload_s, 4),
        "adapters_first_lora_load_s": round(first_load, 4),
        "adapters_step_s_none": round(statistics.median(none_steps), 4),
        "adapters_step_s_lora": round(statistics.median(lora_steps), 4),
        "arch": args.arch + (" small" if args.small and args.arch != "tiny" else ""),
        "rank": args.rank,
        "device": device.name,
        "rounds": args.rounds,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=("tiny", "sd15"), default="tiny")
    parser.add_argument("--small", action="store_true", help="sd15 with channels ÷ 8")
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    from benchmarks.report import run_main

    return run_main(build_parser, measure, argv)


if __name__ == "__main__":
    raise SystemExit(main())

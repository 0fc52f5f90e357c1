"""Real-size GPU measurements, no download: text, music and low-memory image runs.

- text: a Llama-architecture model of ~1.1 B parameters (hidden 2048, 16 layers, GQA 32/8, vocab
  32000) built from its config with random weights, through Studio's text engine: tokens/s with the
  default ``generate()`` and with the compile setting (static KV cache + ``torch.compile``).
  Target: compiled ≥ 2× default.
- music: MusicGen-small's architecture (decoder 1024 × 24 layers, T5-base text encoder, 32 kHz
  EnCodec) through Studio's music engine: seconds of audio per second.
- relaunch: the first compiled SD-1.5 image in a relaunched process (compile caches filled by an
  earlier one) ÷ an uncompiled first image (``benchmarks/compile_relaunch.py``). Target: ≤ 2.
- memory: peak GPU memory (``torch.cuda.max_memory_allocated``) of SD 1.5 at 512² and SDXL at
  1024² in low-memory mode (CPU offload, tiled VAE). Targets: 4 GB and 8 GB.

Results are written after each measurement (``--out``), so a run cut short still reports.

    python -m benchmarks.gpu [--only text,music,memory] [--out FILE] [--small]

``--small`` shrinks everything for a smoke run on a CPU (no figures to keep).
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


def _device(compile_models: bool = False, memory_mode: str = "auto"):
    from studio.engines.devices import choose_device

    return choose_device("auto", memory_mode=memory_mode, compile_models=compile_models)


def _context(events: list):
    from studio.engines.base import RunContext

    return RunContext("bench", events.append, threading.Event())


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def build_text_model(folder: Path, small: bool) -> Path:
    import tiny_models
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tiny_models.build_tiny_causal_lm(folder)  # its tokenizer and chat template
    config = LlamaConfig(
        vocab_size=32000,
        hidden_size=256 if small else 2048,
        intermediate_size=688 if small else 8192,
        num_hidden_layers=2 if small else 16,
        num_attention_heads=8 if small else 32,
        num_key_value_heads=4 if small else 8,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16 if device == "cuda" else torch.float32)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def text_rates(folder: Path, tokens: int, rounds: int) -> dict:
    from studio.core.requests import TextRequest
    from studio.engines.library import inspect_folder
    from studio.engines.transformers_text import TransformersTextEngine as TextEngine

    engine, spec = TextEngine(), inspect_folder(folder)
    result = {}
    for label, compiled in (("default", False), ("compiled", True)):
        loaded = engine.load(spec, _device(compile_models=compiled))
        loaded.model.generation_config.eos_token_id = None  # always write exactly ``tokens``
        request = TextRequest(prompt="Write about light on the hills.", model=str(folder), max_tokens=tokens, seed=1)
        started = time.perf_counter()
        engine.generate(loaded, request, _context([]))  # warm-up (compiles when compiled)
        warmup = time.perf_counter() - started
        rates = []
        for _ in range(rounds):
            started = time.perf_counter()
            out = engine.generate(loaded, request, _context([]))
            _sync()
            rates.append(int(out.outputs[0].info.get("tokens", tokens)) / (time.perf_counter() - started))
        result[f"text_{label}_tokens_per_s"] = round(statistics.median(rates), 1)
        result[f"text_{label}_warmup_s"] = round(warmup, 1)
        engine.unload(loaded)
        del loaded
        _free()
    result["text_compile_speedup"] = round(
        result["text_compiled_tokens_per_s"] / result["text_default_tokens_per_s"], 2
    )
    return result


def build_music_model(folder: Path, small: bool) -> Path:
    import tiny_models
    import torch
    from transformers import (
        EncodecConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        T5Config,
    )

    tiny_models.build_tiny_musicgen(folder)  # its tokenizer
    text = T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12)
    if small:
        text = T5Config(vocab_size=32128, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4)
    audio = EncodecConfig(
        sampling_rate=32000,
        audio_channels=1,
        num_filters=64 if not small else 8,
        hidden_size=128 if not small else 16,
        codebook_size=2048,
        upsampling_ratios=[8, 5, 4, 4],
        target_bandwidths=[2.2],
        num_lstm_layers=2,
        normalize=False,
        use_causal_conv=False,
    )
    decoder = MusicgenDecoderConfig(
        vocab_size=2048,
        hidden_size=1024 if not small else 64,
        num_hidden_layers=24 if not small else 2,
        num_attention_heads=16 if not small else 4,
        ffn_dim=4096 if not small else 128,
        num_codebooks=4,
        max_position_embeddings=2048,
        pad_token_id=2048,
        bos_token_id=2048,
        decoder_start_token_id=2048,
        audio_channels=1,
    )
    config = MusicgenConfig(text_encoder=text.to_dict(), audio_encoder=audio.to_dict(), decoder=decoder.to_dict())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = MusicgenForConditionalGeneration(config)
    model.generation_config.decoder_start_token_id = 2048
    model.generation_config.pad_token_id = 2048
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def music_rate(folder: Path, seconds: float, rounds: int) -> dict:
    from studio.core.requests import MusicRequest
    from studio.engines.library import inspect_folder
    from studio.engines.musicgen import MusicGenEngine as MusicEngine

    engine, spec = MusicEngine(), inspect_folder(folder)
    loaded = engine.load(spec, _device())
    request = MusicRequest(prompt="calm piano with strings", model=str(folder), duration=seconds, seed=1)
    engine.generate(loaded, MusicRequest(prompt="warm up", model=str(folder), duration=1.0, seed=1), _context([]))
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        out = engine.generate(loaded, request, _context([]))
        _sync()
        rates.append(out.outputs[0].info["duration_s"] / (time.perf_counter() - started))
    engine.unload(loaded)
    return {"music_audio_s_per_s": round(statistics.median(rates), 2), "music_seconds": seconds}


def low_memory_peaks(work: Path, small: bool, archs: list[str]) -> dict:
    import torch

    from benchmarks.image_gpu import build_pipeline
    from studio.core.requests import ImageRequest
    from studio.engines.diffusers_image import DiffusersImageEngine as ImageEngine
    from studio.engines.library import inspect_folder

    result = {}
    for arch in archs:
        folder = build_pipeline(arch, work / f"{arch}-low", "cuda" if torch.cuda.is_available() else "cpu", small)
        size = {"sd15": 512, "sdxl": 1024}[arch] // (8 if small else 1)
        engine, spec = ImageEngine(), inspect_folder(folder)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        loaded = engine.load(spec, _device(memory_mode="low"))
        request = ImageRequest(prompt="a lighthouse", model=str(folder), width=size, height=size, steps=4, seed=1)
        started = time.perf_counter()
        engine.generate(loaded, request, _context([]))
        _sync()
        result[f"{arch}_low_memory_image_s"] = round(time.perf_counter() - started, 2)
        if torch.cuda.is_available():
            result[f"{arch}_low_memory_peak_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        result[f"{arch}_low_memory_offloaded"] = loaded.offloaded
        engine.unload(loaded)
        del loaded
        _free()
    return result


def _free() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def measure(args: argparse.Namespace) -> dict:
    import torch

    import studio.engines  # noqa: F401 - offline, quiet Hugging Face settings first

    only = {part.strip() for part in args.only.split(",") if part.strip()}
    result: dict = {"gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (cpu)"}

    def keep(update: dict) -> None:
        result.update(update)
        print(json.dumps(update), flush=True)
        if args.out:
            args.out.write_text(json.dumps(result, indent=2))

    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        if "memory" in only:
            keep(low_memory_peaks(work, args.small, ["sd15", "sdxl"]))
        if "music" in only:
            keep(
                music_rate(build_music_model(work / "musicgen-small-arch", args.small), 2.0 if args.small else 10.0, 2)
            )
        if "text" in only:
            keep(text_rates(build_text_model(work / "llama-1b-arch", args.small), 32 if args.small else 256, 3))
        if "relaunch" in only:  # the first compiled image after a relaunch, each run its own process
            from benchmarks import compile_relaunch

            options = ["--small", "--size", "128", "--steps", "4"] if args.small else []
            keep(compile_relaunch.measure(compile_relaunch.build_parser().parse_args(options)))
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", default="memory,music,text,relaunch", help="comma-separated: memory, music, text, relaunch"
    )
    parser.add_argument("--small", action="store_true", help="shrunken models: a smoke run for any machine")
    parser.add_argument("--out", type=Path, help="also write the results here as JSON (after each measurement)")
    parser.add_argument("--work", type=Path, help="folder for the built models (default: a temp folder)")
    parser.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    from benchmarks.report import run_main

    return run_main(build_parser, measure, argv)


if __name__ == "__main__":
    sys.exit(main())

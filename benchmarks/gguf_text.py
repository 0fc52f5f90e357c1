"""Tokens per second of GGUF models through Studio vs transformers fp32 and vs llama-cpp-python
called directly, on the same weights.

For each model — the starter text model (``resources/models/studio-starter-text``) and a ~100 M-
parameter random Llama built from a config — the safetensors weights are written as GGUF Q8_0 and
F16 (``tests/tiny_gguf.py``), then, round by round so machine drift hits every side alike:

- transformers: ``model.generate()`` in fp32 on the original folder (end-of-text off, so every run
  writes exactly --tokens);
- Studio GGUF: a job through the worker, ``submit`` → ``finished`` (streaming events and the
  gallery save included), for Q8_0 and F16;
- llama-cpp-python: ``Llama.create_completion`` on the same file, same sampler settings, seed and
  thread count.

Rates are tokens written ÷ wall seconds (prompt included); medians are reported with the ratios
``gguf_q8_vs_transformers`` (target ≥ 3) and ``gguf_vs_llama_cpp`` (target ≥ 0.95).

    python -m benchmarks.gguf_text [--tokens 256] [--rounds 3] [--only starter|random] [--json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT = "And the light shone upon the hills, and the"
SAMPLING = {"temperature": 0.7, "top_p": 0.95, "top_k": 50, "repetition_penalty": 1.1}


def transformers_rate(folder: Path, tokens: int, seed: int, cache: dict) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if "model" not in cache:
        cache["model"] = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        cache["tokenizer"] = AutoTokenizer.from_pretrained(folder)
        cache["model"].generation_config.eos_token_id = None
    model, tokenizer = cache["model"], cache["tokenizer"]
    encoded = tokenizer(PROMPT, return_tensors="pt")
    torch.manual_seed(seed)
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            **encoded,
            max_new_tokens=tokens,
            min_new_tokens=tokens,
            do_sample=True,
            temperature=SAMPLING["temperature"],
            top_p=SAMPLING["top_p"],
            top_k=SAMPLING["top_k"],
            repetition_penalty=SAMPLING["repetition_penalty"],
            pad_token_id=tokenizer.pad_token_id or 0,
        )
    elapsed = time.perf_counter() - start
    return (out.shape[1] - encoded["input_ids"].shape[1]) / elapsed


def llama_direct_rate(llm, tokens: int, seed: int) -> tuple[float, int]:
    start = time.perf_counter()
    result = llm.create_completion(
        PROMPT,
        max_tokens=tokens,
        temperature=SAMPLING["temperature"],
        top_p=SAMPLING["top_p"],
        top_k=SAMPLING["top_k"],
        min_p=0.0,
        repeat_penalty=SAMPLING["repetition_penalty"],
        seed=seed,
    )
    elapsed = time.perf_counter() - start
    count = int(result["usage"]["completion_tokens"])
    return count / elapsed, count


def studio_rate(services, file: Path, tokens: int, seed: int) -> tuple[float, int, float]:
    """Tokens/s from submit to finished (the save included), tokens, and the engine's own tokens/s."""
    from studio.core.events import EventKind
    from studio.core.requests import TextRequest

    done = threading.Event()
    marks: dict = {}

    def listen(event):
        if event.job_id == marks.get("job") and event.is_terminal:
            marks["end"], marks["event"] = time.perf_counter(), event
            done.set()

    unsubscribe = services.worker.subscribe(listen)
    request = TextRequest(prompt=PROMPT, model=str(file), max_tokens=tokens, seed=seed, min_p=0.0, **SAMPLING)
    start = time.perf_counter()
    marks["job"] = services.worker.submit(request)
    done.wait(600)
    unsubscribe()
    event = marks["event"]
    assert event.kind is EventKind.FINISHED, event.error
    output = event.result[0].record.output
    count = int(output["tokens"])
    marks_rate = count / (marks["end"] - start)
    return marks_rate, count, float(output.get("tokens_per_s") or 0.0)


def measure_model(name: str, folder: Path, work: Path, services, args) -> dict:
    from llama_cpp import Llama

    from studio.engines.gguf_text import _threads
    from tests.tiny_gguf import write_llama_gguf

    result: dict = {}
    files = {q: write_llama_gguf(folder, work / f"{name}-{q}.gguf", quant=q) for q in ("q8_0", "f16")}
    for quant, file in files.items():
        llm = Llama(model_path=str(file), n_ctx=1024, n_threads=_threads(), verbose=False)
        studio_rate(services, file, 8, 0)  # load and warm
        llama_direct_rate(llm, 8, 0)
        direct, studio, engine, counts = [], [], [], []
        for round_index in range(args.rounds):
            rate, count = llama_direct_rate(llm, args.tokens, 100 + round_index)
            direct.append(rate)
            rate, studio_count, engine_rate = studio_rate(services, file, args.tokens, 100 + round_index)
            studio.append(rate)
            engine.append(engine_rate)
            counts += [count, studio_count]
        llm.close()
        result[f"{name}_gguf_{quant}_tokens_per_s"] = round(statistics.median(studio), 1)
        result[f"{name}_gguf_{quant}_engine_tokens_per_s"] = round(statistics.median(engine), 1)
        result[f"{name}_llama_cpp_{quant}_tokens_per_s"] = round(statistics.median(direct), 1)
        result[f"{name}_gguf_{quant}_vs_llama_cpp"] = round(statistics.median(studio) / statistics.median(direct), 3)
        result[f"{name}_{quant}_tokens_min"] = min(counts)
    cache: dict = {}
    transformers_rate(folder, 8, 0, cache)
    rates = [transformers_rate(folder, args.tokens, 100 + r, cache) for r in range(args.rounds)]
    base = statistics.median(rates)
    result[f"{name}_transformers_fp32_tokens_per_s"] = round(base, 1)
    for quant in ("q8_0", "f16"):
        result[f"{name}_gguf_{quant}_vs_transformers"] = round(result[f"{name}_gguf_{quant}_tokens_per_s"] / base, 2)
    return result


def measure(args: argparse.Namespace) -> dict:
    import os

    import studio.engines  # noqa: F401 - offline, quiet Hugging Face settings before their import
    from studio.core.paths import StudioPaths
    from studio.runtime.services import open_services
    from tests.tiny_gguf import build_random_llama

    result: dict = {"tokens": args.tokens, "rounds": args.rounds, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        services = open_services(StudioPaths.under(work / "data"))
        try:
            if args.only in ("", "starter"):
                starter = ROOT / "resources" / "models" / "studio-starter-text"
                result |= measure_model("starter", starter, work, services, args)
            if args.only in ("", "random"):
                random_llama = build_random_llama(work / "random-llama")
                result |= measure_model("random100m", random_llama, work, services, args)
        finally:
            services.close()
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=("", "starter", "random"), default="")
    parser.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    from benchmarks.report import run_main

    return run_main(build_parser, measure, argv)


if __name__ == "__main__":
    sys.exit(main())

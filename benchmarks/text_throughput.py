"""Tokens per second through the Studio worker vs ``model.generate()`` called directly.

Both sides use the same model folder, prompt, sampling settings and seed, and alternate
round by round so drift on the machine hits both equally; medians are reported. The Studio
side is timed from ``submit`` to the ``finished`` event, so it includes queueing, streaming
events and saving the result to the gallery.

    python -m benchmarks.text_throughput [--model FOLDER] [--tokens 256] [--rounds 7] [--json]

Without --model it builds a ~6M-parameter Llama from a config (random weights) in a temp folder.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def build_model(folder: Path) -> Path:
    import tiny_models
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tiny_models.build_tiny_causal_lm(folder)  # for its tokenizer and chat template
    vocab = json.loads((folder / "config.json").read_text())["vocab_size"]
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=6,
        num_attention_heads=8,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def raw_run(model, tokenizer, prompt: str, tokens: int, seed: int) -> tuple[float, float, int]:
    """Seconds for the whole call, ms to the first token, tokens written."""
    import torch
    from transformers.generation.streamers import BaseStreamer

    class FirstToken(BaseStreamer):
        def __init__(self):
            self.calls = 0
            self.first = None

        def put(self, value):
            self.calls += 1
            if self.calls == 2 and self.first is None:
                self.first = time.perf_counter()

        def end(self):
            pass

    enc = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    streamer = FirstToken()
    torch.manual_seed(seed)
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            **enc,
            max_new_tokens=tokens,
            min_new_tokens=tokens,
            do_sample=True,
            temperature=0.7,
            top_p=0.95,
            top_k=50,
            repetition_penalty=1.1,
            pad_token_id=tokenizer.pad_token_id,
            streamer=streamer,
        )
    elapsed = time.perf_counter() - start
    return elapsed, (streamer.first - start) * 1000, int(out.shape[1] - enc["input_ids"].shape[1])


def studio_run(services, model_path: Path, prompt: str, tokens: int, seed: int) -> tuple[float, float, int]:
    from studio.core.events import EventKind
    from studio.core.requests import TextRequest

    done = threading.Event()
    marks: dict[str, object] = {}

    def listen(event):
        if event.job_id != marks.get("job"):
            return
        if event.kind is EventKind.PREVIEW and "first" not in marks:
            marks["first"] = time.perf_counter()
        if event.is_terminal:
            marks["end"] = time.perf_counter()
            marks["event"] = event
            done.set()

    unsubscribe = services.worker.subscribe(listen)
    request = TextRequest(prompt=prompt, model=str(model_path), max_tokens=tokens, seed=seed)
    start = time.perf_counter()
    marks["job"] = services.worker.submit(request)
    done.wait(600)
    unsubscribe()
    event = marks["event"]
    assert event.kind is EventKind.FINISHED, event.error
    return marks["end"] - start, (marks["first"] - start) * 1000, int(event.info["tokens"])


def measure(args: argparse.Namespace) -> dict:
    """Run the measurement with parsed options; the result keys are the harness's."""

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import studio.engines  # noqa: F401 - offline, quiet Hugging Face settings before their import
    from studio.core.paths import StudioPaths
    from studio.runtime.services import open_services

    with tempfile.TemporaryDirectory() as tmp:
        model_path = args.model or build_model(Path(tmp) / "bench-llama")
        services = open_services(StudioPaths.under(Path(tmp) / "data"))
        model = AutoModelForCausalLM.from_pretrained(model_path, local_files_only=True, dtype=torch.float32).eval()
        tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        # Studio would stop early at an end-of-text token; make every run write exactly --tokens.
        model.generation_config.eos_token_id = None
        prompt = "Write about light on the hills at dawn."
        raw_run(model, tokenizer, prompt, 8, 0)  # warm both paths
        studio_run(services, model_path, prompt, 8, 0)
        studio_model = next(iter(services.worker.cache._slots.values())).model.model
        studio_model.generation_config.eos_token_id = None
        raw_rates, studio_rates, raw_first, studio_first = [], [], [], []
        for round_index in range(args.rounds):
            seed = 100 + round_index
            seconds, first, count = raw_run(model, tokenizer, prompt, args.tokens, seed)
            raw_rates.append(count / seconds)
            raw_first.append(first)
            seconds, first, count = studio_run(services, model_path, prompt, args.tokens, seed)
            studio_rates.append(count / seconds)
            studio_first.append(first)
        services.close()
    result = {
        "text_raw_tokens_per_s": round(statistics.median(raw_rates), 2),
        "text_studio_tokens_per_s": round(statistics.median(studio_rates), 2),
        "text_throughput_ratio": round(statistics.median(studio_rates) / statistics.median(raw_rates), 4),
        "text_first_token_ms_raw": round(statistics.median(raw_first), 2),
        "text_first_token_ms_studio": round(statistics.median(studio_first), 2),
        "tokens": args.tokens,
        "rounds": args.rounds,
        "torch_threads": torch.get_num_threads(),
    }
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    from benchmarks.report import run_main

    return run_main(build_parser, measure, argv)


if __name__ == "__main__":
    sys.exit(main())

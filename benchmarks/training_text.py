"""Steps per second of Studio's text trainer vs the same model trained by a plain torch/peft loop.

Studio: ``TextTrainer.train`` (the Train tab's path: the base loaded from its folder, the texts
tokenised into windows, ``causal_lm.run_loop`` with its progress events, data order and schedule),
without samples or periodic checkpoints, whose cost is not the loop's. Plain: the loop everyone
writes — the same model loaded the same way, the same peft ``LoraConfig`` (or every weight), AdamW,
a warm-up + cosine ``LambdaLR``, ``loss.backward()``, gradient clipping, ``optimizer.step()``, the loss
read each step — on the same windows in the same order. Both timed from the end of their first step
to the end of their last (the first is slower: allocations), alternating which runs first in each
round; the ratio is the median over rounds of Studio's steps/s over the plain loop's.

    python -m benchmarks.training_text [--models tiny,starter] [--methods full,lora] [--steps 20] [--rounds 3] [--json]
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

from benchmarks.report import run_main

REPO = Path(__file__).resolve().parents[1]
SEQ_LEN = {"tiny": 64, "starter": 128}


def _studio_round(base, trainer, summary, plan_args, root: Path) -> float:
    from studio.core.events import JobEvent
    from studio.core.training import TrainRequest
    from studio.engines.devices import choose_device
    from studio.engines.training.base import TrainContext

    request = TrainRequest(medium="text", data=("bench",), name="bench", **plan_args)
    plan = trainer.plan(base, request, summary, None)
    plan.sample_every = plan.checkpoint_every = 0
    stamps: list[float] = []

    def emit(event: JobEvent) -> None:
        if event.info and event.info.get("phase") == "training" and "loss" in event.info:
            stamps.append(time.perf_counter())

    out = root / "staging"
    out.mkdir(parents=True, exist_ok=True)
    ctx = TrainContext("bench", emit, threading.Event(), output_dir=out, checkpoint_dir=root / "checkpoint")
    trainer.train(base, plan, summary, choose_device("cpu"), ctx)
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def _plain_round(base, summary, plan_args) -> float:
    """The plain loop, written as a peft/transformers user would."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.engines.training.causal_lm import DataOrder, learning_rate_at
    from studio.engines.training.text_trainer import token_windows

    tokenizer = AutoTokenizer.from_pretrained(base.path)
    model = AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32)
    windows, _ = token_windows(tokenizer, [Path(f.path) for f in summary.files], plan_args["seq_len"])
    steps, batch, lr = plan_args["steps"], plan_args["batch_size"], plan_args["learning_rate"]
    if plan_args["method"] == "lora":
        from peft import LoraConfig, get_peft_model

        torch.manual_seed(0)
        config = LoraConfig(r=plan_args["rank"], lora_alpha=plan_args["rank"], target_modules="all-linear",
                            lora_dropout=0.0, task_type="CAUSAL_LM")  # fmt: skip
        model = get_peft_model(model, config)
    model.train()
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=lr)
    warmup = max(1, steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: learning_rate_at(s, 1.0, warmup, steps))
    order = DataOrder(len(windows), batch, 0)  # the same windows in the same order as Studio's run
    stamps = []
    for step in range(steps):
        input_ids = torch.from_numpy(windows[order.indices(step)])
        loss = model(input_ids=input_ids, labels=input_ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()
        stamps.append(time.perf_counter())
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def measure(args: argparse.Namespace) -> dict:
    import tiny_models
    import tiny_training_data
    import torch

    import studio.engines
    from studio.engines.library.classify import inspect_folder
    from studio.engines.training.text_trainer import TextTrainer

    torch.set_num_threads(args.threads)
    trainer = TextTrainer()
    result: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        texts = tiny_training_data.write_texts(root / "texts", count=4, repeat=12)
        summary = tiny_training_data.summary_of(texts, "text", trainer)
        bases = {
            "tiny": lambda: tiny_models.build_tiny_causal_lm(root / "tiny", chat_template=False),
            "starter": lambda: REPO / "resources" / "models" / "studio-starter-text",
        }
        for name in args.models.split(","):
            base = inspect_folder(bases[name]())
            for method in args.methods.split(","):
                plan_args = {"method": method, "steps": args.steps, "batch_size": args.batch, "seed": 0, "rank": 8,
                             "learning_rate": 1e-3, "seq_len": SEQ_LEN[name]}  # fmt: skip
                ratios, studio_rates, plain_rates = [], [], []
                for round_index in range(args.rounds):
                    run_root = root / f"{name}-{method}-{round_index}"
                    if round_index % 2 == 0:
                        studio = _studio_round(base, trainer, summary, plan_args, run_root)
                        plain = _plain_round(base, summary, plan_args)
                    else:
                        plain = _plain_round(base, summary, plan_args)
                        studio = _studio_round(base, trainer, summary, plan_args, run_root)
                    studio_rates.append(studio)
                    plain_rates.append(plain)
                    ratios.append(studio / plain)
                key = f"train_text_{name}_{method}"
                result[f"{key}_steps_per_s_studio"] = round(statistics.median(studio_rates), 2)
                result[f"{key}_steps_per_s_plain"] = round(statistics.median(plain_rates), 2)
                result[f"{key}_ratio"] = round(statistics.median(ratios), 3)
    result.update(steps=args.steps, rounds=args.rounds, torch_threads=args.threads, batch=args.batch)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,starter")
    parser.add_argument("--methods", default="full,lora")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    return parser


if __name__ == "__main__":
    raise SystemExit(run_main(build_parser, measure))

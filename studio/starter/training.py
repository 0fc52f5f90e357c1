"""A small, deterministic training loop for the starter language models (text and melody).

Both are ``LlamaForCausalLM`` trained on one stream of token ids cut into fixed-length windows:
the same seed, data and thread count give the same loss curve. Runs on the CPU in minutes; the
result is saved with ``save_pretrained`` (safetensors) like any model a user would add. Its pieces
(the model, the windows, the schedule) are the app's own training loop's
(``studio.engines.training.causal_lm``), which the Train tab runs on the artist's data.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from studio.engines.training.causal_lm import learning_rate_at, llama_shape, make_llama, window_batch

log = logging.getLogger(__name__)

__all__ = ["TrainingPlan", "TrainingReport", "evaluate", "llama_shape", "make_model", "save_report", "train"]


@dataclass
class TrainingPlan:
    seed: int = 1234
    seq_len: int = 256
    batch_size: int = 16
    learning_rate: float = 3e-3
    warmup_steps: int = 100
    max_minutes: float = 0  # 0: a fixed step count, so a re-run repeats the curve
    max_steps: int = 100_000
    eval_every: int = 100
    eval_batches: int = 8
    threads: int = 2
    model: dict = field(default_factory=dict)  # LlamaConfig arguments


@dataclass
class TrainingReport:
    steps: int
    minutes: float
    tokens_seen: int
    parameters: int
    final_train_loss: float
    validation_loss: float
    curve: list[dict]  # {"step", "train_loss", "validation_loss"}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def stored(cls, folder: Path) -> tuple[TrainingReport, dict]:
        """The report of the model already in ``folder`` (for ``--measure-only``), and the whole
        stored JSON (its ``data`` section too)."""
        saved = json.loads((folder / "training_report.json").read_text())
        return cls(**{k: v for k, v in saved.items() if k in cls.__annotations__}), saved


def make_model(vocab_size: int, plan: TrainingPlan, special: dict[str, int]):
    return make_llama(vocab_size, plan.model, special, plan.seed)


@torch.no_grad()
def evaluate(model, stream: np.ndarray, plan: TrainingPlan) -> float:
    """Mean loss over fixed, evenly spaced validation windows (the same every time)."""
    model.eval()
    count = plan.eval_batches * plan.batch_size
    last = len(stream) - plan.seq_len - 1
    starts = np.linspace(0, max(last, 0), count).astype(np.int64)
    losses = []
    for chunk in np.array_split(starts, plan.eval_batches):
        batch = window_batch(stream, chunk, plan.seq_len)
        losses.append(float(model(input_ids=batch, labels=batch).loss))
    model.train()
    return float(np.mean(losses))


def train(
    model,
    train_stream: np.ndarray,
    validation_stream: np.ndarray,
    plan: TrainingPlan,
    on_eval: Callable[[dict], None] | None = None,
) -> TrainingReport:
    """Train ``model`` in place until ``max_minutes`` or ``max_steps``; return the loss curve."""
    torch.set_num_threads(plan.threads)
    torch.manual_seed(plan.seed)
    generator = np.random.default_rng(plan.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=plan.learning_rate, betas=(0.9, 0.95), weight_decay=0.1)
    # The schedule is laid out over an estimate of the steps that fit the time budget (measured
    # on the first steps), so a run always ends with a decayed learning rate.
    planned_steps = plan.max_steps
    curve: list[dict] = []
    started = time.monotonic()
    model.train()
    step, running = 0, []
    while step < planned_steps:
        if step == 20 and plan.max_minutes:
            per_step = (time.monotonic() - started) / 20
            planned_steps = min(plan.max_steps, int(plan.max_minutes * 60 / per_step))
            log.info("%.2f s a step: %d steps fit %.0f minutes", per_step, planned_steps, plan.max_minutes)
        lr = learning_rate_at(step, plan.learning_rate, plan.warmup_steps, planned_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        starts = generator.integers(0, len(train_stream) - plan.seq_len - 1, plan.batch_size)
        batch = window_batch(train_stream, starts, plan.seq_len)
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        running.append(float(loss.detach()))
        step += 1
        if step % plan.eval_every == 0 or step == planned_steps:
            point = {
                "step": step,
                "minutes": round((time.monotonic() - started) / 60, 2),
                "train_loss": round(float(np.mean(running)), 4),
                "validation_loss": round(evaluate(model, validation_stream, plan), 4),
                "lr": round(lr, 6),
            }
            running = []
            curve.append(point)
            log.info(
                "step %(step)d  %(minutes).1f min  train %(train_loss).3f  validation %(validation_loss).3f", point
            )
            if on_eval is not None:
                on_eval(point)
    return TrainingReport(
        steps=step,
        minutes=round((time.monotonic() - started) / 60, 1),
        tokens_seen=step * plan.batch_size * plan.seq_len,
        parameters=sum(p.numel() for p in model.parameters()),
        final_train_loss=curve[-1]["train_loss"] if curve else float("nan"),
        validation_loss=curve[-1]["validation_loss"] if curve else float("nan"),
        curve=curve,
    )


def save_report(folder: Path, name: str, payload: dict) -> None:
    (folder / name).write_text(json.dumps(payload, indent=1) + "\n")

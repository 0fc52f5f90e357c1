"""One training loop for causal language models: the text trainer's transformers models and the
melody model (a ``LlamaForCausalLM`` over melody tokens) share it, and so do the starters' builds
(``studio.starter.training`` imports its pieces from here).

Deterministic: the data order is a function of the seed and the step alone (each epoch a seeded
permutation of the windows), the schedule a function of the step, and every random state is in the
checkpoint, so the same seed, data and thread count give the same loss curve — and a run that is
cancelled and resumed reaches the same weights as one that never stopped.

What is kept in ``ctx.checkpoint_dir`` (one folder per checkpoint, ``step-000120``, the newest two):
``checkpoint.pt`` — the trainable tensors (all weights for a full fine-tune, the LoRA matrices for
an adapter), the AdamW state, the schedule's state, the step, the loss curve and the RNG states —
and ``checkpoint.json``, what a person (or Resume) reads: step, loss, and the settings it was made
with. A checkpoint is written into a temporary folder and renamed, so a full disk leaves the
previous one whole.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from studio.core.errors import JobCancelled, StudioError
from studio.core.files import first_line
from studio.core.training import TrainingSample
from studio.engines.devices import free_device_memory, is_out_of_memory

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_FACTS = "checkpoint.json"
CHECKPOINTS_KEPT = 2
ESTIMATE_STEPS = 4  # timed after one warm step: the first is slower (allocations, kernels chosen)
LORA_TARGETS = "all-linear"  # every linear layer but the output head (peft's own rule)


# -- the pieces the starters' build shares ----------------------------------------------------


def llama_shape(hidden: int, intermediate: int, layers: int, positions: int, heads: int = 4) -> dict[str, int]:
    """The ``LlamaConfig`` arguments of a small model such as the starters."""
    return {
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "max_position_embeddings": positions,
    }


def make_llama(vocab_size: int, shape: dict[str, Any], special: dict[str, int], seed: int) -> Any:
    """A freshly initialised ``LlamaForCausalLM`` (seeded) with tied input and output embeddings."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        bos_token_id=special["bos"],
        eos_token_id=special["eos"],
        pad_token_id=special["pad"],
        tie_word_embeddings=True,
        **shape,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def window_batch(stream: np.ndarray, starts: Sequence[int] | np.ndarray, seq_len: int) -> torch.Tensor:
    """Token windows of ``seq_len`` from ``stream`` starting at ``starts``, as one int64 batch."""
    return torch.from_numpy(np.stack([stream[s : s + seq_len] for s in starts]).astype(np.int64))


def learning_rate_at(
    step: int, peak: float, warmup: int, total: int, schedule: str = "cosine", floor: float = 0.1
) -> float:
    """The learning rate of step ``step`` (0-based): a linear warm-up over ``warmup`` steps, then
    constant, or a cosine from ``peak`` down to ``floor × peak`` at ``total``."""
    lr = peak * min(1.0, (step + 1) / max(1, warmup))
    if schedule == "cosine" and step >= warmup and total > warmup:
        progress = min((step - warmup) / (total - warmup), 1.0)
        lr = peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))
    return lr


def stream_windows(stream: np.ndarray, seq_len: int) -> np.ndarray:
    """``stream`` cut into windows of ``seq_len`` tokens, end to end; the tail that would be a short
    window becomes one more window ending at the stream's end (so no token is left out)."""
    if len(stream) < seq_len:
        raise StudioError(f"{len(stream)} tokens are fewer than one window of {seq_len}")
    starts = list(range(0, len(stream) - seq_len + 1, seq_len))
    if starts[-1] + seq_len < len(stream):
        starts.append(len(stream) - seq_len)
    return np.stack([stream[s : s + seq_len] for s in starts]).astype(np.int64)


# -- the loop ---------------------------------------------------------------------------------


@dataclass
class LoopSettings:
    """What one run of the loop does (the trainer fills it from its ``TrainingPlan``)."""

    method: str  # "full" or "lora"
    steps: int
    learning_rate: float
    batch_size: int
    seed: int
    warmup_steps: int = 0  # 0: 5 % of the steps, at least 1
    schedule: str = "cosine"  # or "constant" (after the warm-up)
    weight_decay: float = 0.0
    clip_norm: float = 1.0
    gradient_checkpointing: bool = False
    checkpoint_every: int = 0  # 0: only when cancelled
    sample_every: int = 0  # 0: no samples
    threads: int = 0  # 0: torch's current setting
    # What the checkpoint is checked against on Resume (base, data, rank…): any JSON value.
    identity: dict[str, Any] = field(default_factory=dict)

    @property
    def warmup(self) -> int:
        return self.warmup_steps or max(1, self.steps // 20)


@dataclass
class LoopResult:
    steps: int  # the last step done
    final_loss: float
    best_loss: float
    curve: list[tuple[int, float]]
    device: str
    estimated_only: bool = False
    eta_s: float | None = None
    resumed_from: int = 0


def device_label(device: Any) -> str:
    if device is None or getattr(device, "device", "cpu") == "cpu":
        return f"CPU ({torch.get_num_threads()} threads)"
    dtype = getattr(device, "dtype_name", "float32")
    return f"{getattr(device, 'name', device.device)} ({'bf16 autocast' if dtype == 'bfloat16' else 'fp32'})"


def prepare_model(model: Any, method: str, *, rank: int, alpha: float, seed: int, gradient_checkpointing: bool) -> Any:
    """The model to train: itself (full fine-tune) or wrapped by peft with LoRA layers on every
    linear layer but the head. Seeded first: peft draws the LoRA matrices' initial values."""
    if gradient_checkpointing:
        # Non-reentrant checkpointing needs no input that requires grad, so it works under LoRA too.
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if method == "full":
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = LoraConfig(
        r=rank, lora_alpha=int(alpha or rank), target_modules=LORA_TARGETS, lora_dropout=0.0, task_type="CAUSAL_LM"
    )
    return get_peft_model(model, config)


class DataOrder:
    """Which windows each step trains on: epoch ``e`` visits every window once in the order of a
    permutation seeded by (seed, e); step ``s`` takes the next ``batch`` of that flat sequence. A
    function of the step alone, so the data position after a resume needs no saved state."""

    def __init__(self, windows: int, batch: int, seed: int) -> None:
        self.windows, self.batch, self.seed = windows, batch, seed
        self._orders: dict[int, np.ndarray] = {}

    def _order(self, epoch: int) -> np.ndarray:
        found = self._orders.get(epoch)
        if found is None:
            self._orders = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.windows)}
            found = self._orders[epoch]
        return found

    def indices(self, step: int) -> list[int]:
        flat = range(step * self.batch, (step + 1) * self.batch)
        return [int(self._order(i // self.windows)[i % self.windows]) for i in flat]

    def epoch(self, step: int) -> int:
        return (step * self.batch) // self.windows


class Checkpoints:
    """The checkpoints of one run in ``folder``: ``step-NNNNNN`` folders, newest last."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def all(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        found = [p for p in self.folder.glob("step-*") if p.is_dir() and (p / CHECKPOINT_FACTS).is_file()]
        return sorted(found, key=lambda p: p.name)

    def newest(self) -> Path | None:
        found = self.all()
        return found[-1] if found else None

    def clear(self) -> None:
        for path in self.folder.glob("step-*") if self.folder.is_dir() else []:
            shutil.rmtree(path, ignore_errors=True)
        for path in self.folder.glob(".partial-step-*") if self.folder.is_dir() else []:
            shutil.rmtree(path, ignore_errors=True)

    def save(self, step: int, state: dict[str, Any], facts: dict[str, Any]) -> Path:
        final = self.folder / f"step-{step:06d}"
        partial = self.folder / f".partial-step-{step:06d}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir()
            torch.save(state, partial / CHECKPOINT_FILE)
            (partial / CHECKPOINT_FACTS).write_text(json.dumps(facts, indent=1) + "\n", encoding="utf-8")
            shutil.rmtree(final, ignore_errors=True)
            partial.rename(final)
        except OSError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            kept = self.newest()
            where = f"; the checkpoint of step {kept.name[5:].lstrip('0') or 0} is kept" if kept else ""
            raise StudioError(
                f"could not write the checkpoint of step {step} into {self.folder}: {exc.strerror or first_line(exc)}"
                f" (is the disk full?){where}"
            ) from exc
        for old in self.all()[:-CHECKPOINTS_KEPT]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    @staticmethod
    def load(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        facts = json.loads((path / CHECKPOINT_FACTS).read_text(encoding="utf-8"))
        state = torch.load(path / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
        return state, facts


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def windows_digest(windows: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(windows).tobytes()).hexdigest()


def _smoothed(curve: list[tuple[int, float]], width: int) -> list[float]:
    losses = [loss for _, loss in curve]
    return [float(np.mean(losses[max(0, i + 1 - width) : i + 1])) for i in range(len(losses))]


Sampler = Callable[[Any, int], list[TrainingSample]]


def run_loop(
    model: Any,
    windows: np.ndarray,
    settings: LoopSettings,
    ctx: Any,
    device: Any = None,
    sampler: Sampler | None = None,
) -> LoopResult:
    """Train ``model`` (already prepared by ``prepare_model``) on ``windows`` (int64, one row per
    training window) through the ``TrainContext`` ``ctx``; see the module docstring."""
    if settings.threads:
        torch.set_num_threads(settings.threads)
    target = getattr(device, "device", "cpu") if device is not None else "cpu"
    autocast = target == "cuda" and getattr(device, "dtype_name", "") == "bfloat16"
    model.to(target)
    model.train()
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        raise StudioError("nothing to train: the model has no trainable weights")
    decay = [p for n, p in trainable if p.ndim >= 2 and "norm" not in n.lower()]
    no_decay = [p for n, p in trainable if not (p.ndim >= 2 and "norm" not in n.lower())]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=settings.learning_rate,
        betas=(0.9, 0.999),
    )
    total = settings.steps

    def factor(step: int) -> float:
        return learning_rate_at(step, 1.0, settings.warmup, total, settings.schedule)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    order = DataOrder(len(windows), settings.batch_size, settings.seed)
    store = Checkpoints(Path(ctx.checkpoint_dir))
    identity = {**settings.identity, "windows": windows_digest(windows), **_identity(settings)}
    curve: list[tuple[int, float]] = []
    step = 0
    resumed_from = 0

    newest = store.newest() if getattr(ctx, "resume", False) else None
    if newest is not None:
        state, facts = Checkpoints.load(newest)
        if facts.get("identity") != identity:
            changed = sorted(k for k in identity if facts.get("identity", {}).get(k) != identity[k])
            raise StudioError(
                f"the checkpoint in {newest} was made with other settings or data ({', '.join(changed)}): "
                "start again without Resume, or resume with the same settings and files"
            )
        by_name = dict(trainable)
        with torch.no_grad():
            for name, tensor in state["params"].items():
                by_name[name].copy_(tensor.to(by_name[name].device))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        step = resumed_from = int(state["step"])
        curve = [(int(s), float(v)) for s, v in state["curve"]]
        log.info("resumed from %s (step %d)", newest, step)
    elif not getattr(ctx, "estimate_only", False):
        store.clear()  # a fresh run: an older run's checkpoints must not be resumed into this one
        torch.manual_seed(settings.seed)

    def checkpoint(at: int) -> Path:
        ctx.progress(at, total, phase="checkpoint")
        state = {
            "params": {name: p.detach().to("cpu").clone() for name, p in trainable},
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": _rng_state(),
            "step": at,
            "curve": [list(point) for point in curve],
        }
        facts = {"step": at, "total": total, "loss": curve[-1][1] if curve else None, "identity": identity}
        return store.save(at, state, facts)

    def sample(at: int) -> None:
        if sampler is None:
            return
        ctx.progress(at, total, phase="sampling")
        model.eval()
        # Sampling draws random numbers; the fork keeps them out of training's stream, so a run
        # with samples at other steps (a resumed one) trains exactly the same.
        with torch.random.fork_rng(devices=[torch.cuda.current_device()] if target == "cuda" else []):
            try:
                for made in sampler(model, at):
                    ctx.sample(made)
            finally:
                model.train()

    if getattr(ctx, "estimate_only", False):
        return _estimate(model, windows, order, optimizer, scheduler, settings, ctx, target, autocast, device)

    if step == 0 and settings.sample_every:
        sample(0)  # the base, before any step: what the samples are compared with
    started_at = time.monotonic()
    while step < total:
        if ctx.cancelled:
            if step > resumed_from or newest is None:
                checkpoint(step)
            raise JobCancelled()
        batch = torch.from_numpy(windows[order.indices(step)]).to(target)
        loss = _train_step(model, batch, optimizer, scheduler, trainable, settings, autocast, device)
        lr = optimizer.param_groups[0]["lr"]
        step += 1
        curve.append((step, loss))
        ctx.progress(step, total, loss=loss, learning_rate=lr, epoch=order.epoch(step - 1) + 1)
        if settings.checkpoint_every and step % settings.checkpoint_every == 0 and step < total:
            checkpoint(step)
        if settings.sample_every and (step % settings.sample_every == 0 or step == total):
            sample(step)
    log.info("%d steps in %.1f s", total - resumed_from, time.monotonic() - started_at)
    width = max(1, min(10, len(curve) // 10))
    smooth = _smoothed(curve, width)
    return LoopResult(
        steps=step,
        final_loss=smooth[-1] if smooth else float("nan"),
        best_loss=min(smooth) if smooth else float("nan"),
        curve=curve,
        device=device_label(device),
        resumed_from=resumed_from,
    )


def _identity(settings: LoopSettings) -> dict[str, Any]:
    keep = ("method", "steps", "learning_rate", "batch_size", "seed", "warmup_steps", "schedule", "weight_decay")
    return {k: v for k, v in asdict(settings).items() if k in keep}


def _train_step(
    model: Any,
    batch: torch.Tensor,
    optimizer: Any,
    scheduler: Any,
    trainable: list[tuple[str, torch.nn.Parameter]],
    settings: LoopSettings,
    autocast: bool,
    device: Any,
) -> float:
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        if settings.clip_norm:
            torch.nn.utils.clip_grad_norm_([p for _, p in trainable], settings.clip_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())
    except (RuntimeError, MemoryError) as exc:
        if not is_out_of_memory(exc):
            raise
        optimizer.zero_grad(set_to_none=True)
        free_device_memory()
        where = getattr(device, "name", None) or "this device"
        tried = [f"batch size {batch.shape[0]}", f"sequences of {batch.shape[1]} tokens"]
        if not settings.gradient_checkpointing:
            tried.append("no gradient checkpointing")
        raise StudioError(
            f"out of memory on {where} ({', '.join(tried)}): try batch size 1, gradient checkpointing "
            "or a shorter sequence length"
        ) from exc


def _estimate(
    model: Any,
    windows: np.ndarray,
    order: DataOrder,
    optimizer: Any,
    scheduler: Any,
    settings: LoopSettings,
    ctx: Any,
    target: str,
    autocast: bool,
    device: Any,
) -> LoopResult:
    """Time a few real steps (the first untimed) and report the time the whole plan would take.
    The model is changed by them: the caller installs nothing."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    total = settings.steps
    curve: list[tuple[int, float]] = []
    timed = min(ESTIMATE_STEPS, max(0, total - 1))
    # The first step is reported as training so that the context's clock starts after it: the
    # "estimating" events then carry the measured time a step × the steps left.
    first_done = 0.0
    for step in range(timed + 1):
        batch = torch.from_numpy(windows[order.indices(step)]).to(target)
        loss = _train_step(model, batch, optimizer, scheduler, trainable, settings, autocast, device)
        curve.append((step + 1, loss))
        if step == 0:
            first_done = time.monotonic()
        if ctx.cancelled:
            raise JobCancelled()
        ctx.progress(step + 1, total, phase="training" if step == 0 else "estimating", loss=loss)
    per_step = (time.monotonic() - first_done) / timed if timed else None
    return LoopResult(
        steps=timed + 1,
        final_loss=curve[-1][1],
        best_loss=min(loss for _, loss in curve),
        curve=curve,
        device=device_label(device),
        estimated_only=True,
        eta_s=round(per_step * total, 1) if per_step is not None else None,
    )

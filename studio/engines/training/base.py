"""What every medium's trainer provides, and the context through which a run reports back.

One ``MediumTrainer`` per medium (``studio.engines.training.registry``): it knows which files it
can learn from (``inspect``, cheap and torch-free, used by the data summary before anything
loads), which bases and methods it can train, the defaults per base (``plan``), and runs the loop
(``train``). The worker's training job (``studio.runtime.training``) does everything around it:
gathering the files, the summary and digest, the staging folder, installing the result in the
library with its card, and the events.

Contract of ``train``:

- write the result into ``ctx.output_dir`` (an empty staging folder): for ``lora``, an adapter the
  library recognises (image: a diffusers LoRA ``.safetensors``; text: a peft adapter folder's
  files); for ``full``, a complete model folder (config, safetensors weights, tokenizer or
  vocabulary, ``studio_model.json`` when the base has one). Nothing else: the card is added later.
- checkpoints go to ``ctx.checkpoint_dir`` (kept between runs of the same name) every
  ``plan.checkpoint_every`` steps, and once more when cancelled, before raising ``JobCancelled``;
  with ``ctx.resume`` the loop continues from the newest checkpoint, so cancel + resume reaches the
  same weights as one uninterrupted run (same seed, same data order, RNG states restored).
- report through ``ctx.progress`` every step and ``ctx.sample`` every ``plan.sample_every`` steps;
  poll ``ctx.cancelled`` between steps.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from studio.core.errors import JobCancelled, StudioError
from studio.core.events import EventKind, JobEvent
from studio.core.models import ModelSpec
from studio.core.training import RECENT_POINTS, DataSummary, TrainingFile, TrainingSample, TrainRequest


class UnreadableData(StudioError):
    """A file a trainer cannot learn from; the message says why ("not UTF-8 text", "a PNG in a text set")."""


@dataclass(frozen=True)
class InspectedFile:
    """What ``MediumTrainer.inspect`` read of one file, without torch: size in pixels or units, and
    the text its words are counted from (an image's caption, a text's body)."""

    width: int = 0
    height: int = 0
    units: int = 0
    words_text: str = ""


@dataclass
class TrainingPlan:
    """The settings a run uses: the request's, with every 0 replaced by the base's default."""

    method: str
    steps: int
    learning_rate: float
    batch_size: int
    seed: int
    rank: int = 0
    alpha: float = 0.0
    resolution: int = 0
    seq_len: int = 0
    epochs: int = 0
    sample_every: int = 0
    checkpoint_every: int = 0
    sample_prompts: tuple[str, ...] = ()
    trigger: str = ""
    gradient_checkpointing: bool = False
    notes: list[str] = field(default_factory=list)  # what the trainer decided (bucketing, crops…)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["sample_prompts"] = list(self.sample_prompts)
        return data


@dataclass
class TrainingOutcome:
    """What ``train`` hands back once ``ctx.output_dir`` holds the result."""

    steps: int
    final_loss: float
    best_loss: float
    curve: list[tuple[int, float]]
    device: str  # as people read it: "CPU (2 threads)", "NVIDIA H100 (bf16)"
    result_kind: str  # "lora" or the medium (a full model)
    format: str  # the library format of the result: "diffusers-image" LoRA → "lora"; "melody", "transformers-text"


class TrainContext:
    """Handed to a trainer for one run: progress, samples, cancel, where to write."""

    def __init__(
        self,
        job_id: str,
        emit: Callable[[JobEvent], None],
        cancel_event: threading.Event,
        *,
        output_dir: Path,
        checkpoint_dir: Path,
        resume: bool = False,
        estimate_only: bool = False,
    ) -> None:
        self.job_id = job_id
        self._emit = emit
        self._cancel_event = cancel_event
        self.output_dir = output_dir
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        # Only time a few steps and report the estimate (``progress`` with phase "estimating"); the
        # trainer returns after them and nothing is installed.
        self.estimate_only = estimate_only
        self._started = time.monotonic()
        self._first_step_at: float | None = None
        self._first_step = 0
        self._recent: deque[tuple[int, float]] = deque(maxlen=RECENT_POINTS)

    @property
    def cancelled(self) -> bool:
        return self._cancel_event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._cancel_event.is_set():
            raise JobCancelled()

    def progress(
        self,
        step: int,
        total: int,
        *,
        phase: str = "training",
        loss: float | None = None,
        learning_rate: float | None = None,
        epoch: int | None = None,
    ) -> None:
        """Report step ``step`` of ``total``; time left is measured from the steps of this run
        (a resumed run counts from where it resumed)."""
        now = time.monotonic()
        if phase in ("training", "estimating") and self._first_step_at is None:
            self._first_step_at, self._first_step = now, step
        eta = None
        if phase in ("training", "estimating") and self._first_step_at is not None and step > self._first_step:
            per_step = (now - self._first_step_at) / (step - self._first_step)
            eta = round(per_step * max(0, total - step), 1)
        if loss is not None:
            self._recent.append((step, float(loss)))
        info: dict[str, Any] = {"phase": phase, "elapsed_s": round(now - self._started, 2), "eta_s": eta}
        if loss is not None:
            info["loss"] = float(loss)
            info["recent"] = [list(point) for point in self._recent]
        if learning_rate is not None:
            info["learning_rate"] = float(learning_rate)
        if epoch is not None:
            info["epoch"] = epoch
        self._emit(JobEvent(EventKind.PROGRESS, self.job_id, step=step, total=total, info=info))

    def sample(self, sample: TrainingSample) -> None:
        self._emit(JobEvent(EventKind.PREVIEW, self.job_id, step=sample.step, preview=sample.to_event()))


class MediumTrainer(Protocol):
    """The trainer of one medium (text, image, music). Methods run on the worker thread;
    ``inspect``, ``methods`` and ``plan`` must not import torch (the summary runs them before a run)."""

    medium: str
    suffixes: frozenset[str]  # the file suffixes it reads, lower case with the dot

    def inspect(self, path: Path) -> InspectedFile:
        """Read enough of ``path`` to know it can be learned from; raise ``UnreadableData`` saying why."""

    def near_duplicates(self, files: Sequence[TrainingFile]) -> list[tuple[str, ...]]:
        """Groups of paths that look alike (cheap: perceptual hashes, shingles); [] when none."""

    def data_notes(self, files: Sequence[TrainingFile]) -> list[str]:
        """Sentences about what training will do with this data (sizes bucketed or cropped, missing captions)."""

    def methods(self, base: ModelSpec) -> tuple[str, ...]:
        """The methods ``base`` can be trained with, the default first; raise ``StudioError``
        saying why when it cannot be trained at all (a GGUF, an upscaler, another medium)."""

    def plan(self, base: ModelSpec, request: TrainRequest, summary: DataSummary, device: Any) -> TrainingPlan:
        """The request's settings with the base's defaults filled in; raise ``InvalidRequest`` for a
        setting the method cannot take (a rank for a full fine-tune is ignored with a note)."""

    def train(
        self, base: ModelSpec, plan: TrainingPlan, summary: DataSummary, device: Any, ctx: TrainContext
    ) -> TrainingOutcome:
        """Run the loop (see the module's contract)."""

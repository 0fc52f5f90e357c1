"""A small real ``MediumTrainer`` for the runtime's tests: teaches a transformers causal LM (the tiny
Llama of ``tiny_models``) from text files, full fine-tune or a peft LoRA, with checkpoints, cancel
and resume — a torch loop whose loss really falls, so a test of the job around it can fail.

It stands in for ``studio.engines.training.text_trainer`` (built on another branch) by being put in
``studio.engines.training.registry`` under "text" (``use_tiny_trainer``). ``TINY_TRAINER_FAIL`` in
the environment makes it fail on purpose (``oom@3``, ``crash@2``, ``enospc-checkpoint``,
``enospc-save``) and ``TINY_TRAINER_STEP_S`` slows each step, so a command-line process can be
tested against each failure, and stopped midway.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from studio.core.errors import JobCancelled, StudioError
from studio.core.models import ModelSpec
from studio.core.training import DataSummary, TrainingFile, TrainingSample, TrainRequest
from studio.engines.training.base import (
    InspectedFile,
    TrainContext,
    TrainingOutcome,
    TrainingPlan,
    UnreadableData,
)

STATE = "state.pt"


class TinyTextTrainer:
    medium = "text"
    suffixes = frozenset({".txt", ".md"})

    def inspect(self, path: Path) -> InspectedFile:
        try:
            text = Path(path).read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnreadableData(f"not UTF-8 text (byte {exc.start})") from exc
        if not text.strip():
            raise UnreadableData("an empty text")
        return InspectedFile(units=len(text), words_text=text)

    def near_duplicates(self, files: Sequence[TrainingFile]) -> list[tuple[str, ...]]:
        by_text: dict[str, list[str]] = {}
        for file in files:
            key = " ".join(Path(file.path).read_text(encoding="utf-8").lower().split())
            by_text.setdefault(key, []).append(file.path)
        return [tuple(group) for group in by_text.values() if len(group) > 1]

    def data_notes(self, files: Sequence[TrainingFile]) -> list[str]:
        return [f"{len(files)} texts, {sum(f.units for f in files):,} characters, read as one stream"]

    def methods(self, base: ModelSpec) -> tuple[str, ...]:
        if base.format != "transformers-text":
            raise StudioError(f"{base.name} cannot be trained: this trainer teaches transformers language models")
        return ("lora", "full")

    def plan(self, base: ModelSpec, request: TrainRequest, summary: DataSummary, device: Any) -> TrainingPlan:
        return TrainingPlan(
            method=request.method or "lora",
            steps=request.steps or 8,
            learning_rate=request.learning_rate or 1e-2,
            batch_size=request.batch_size,
            seed=request.seed,
            rank=request.rank,
            alpha=request.alpha or float(request.rank),
            seq_len=request.seq_len or 24,
            checkpoint_every=request.checkpoint_every or 4,
            sample_every=request.sample_every,
            sample_prompts=request.sample_prompts or ("the",),
            gradient_checkpointing=request.gradient_checkpointing,
        )

    def train(
        self, base: ModelSpec, plan: TrainingPlan, summary: DataSummary, device: Any, ctx: TrainContext
    ) -> TrainingOutcome:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        fail = os.environ.get("TINY_TRAINER_FAIL", "")
        pause = float(os.environ.get("TINY_TRAINER_STEP_S", "0") or 0)  # a slow run, to stop it midway
        tokenizer = AutoTokenizer.from_pretrained(base.path)
        model: Any = AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32)
        if plan.method == "lora":
            from peft import LoraConfig, get_peft_model

            config = LoraConfig(
                r=plan.rank, lora_alpha=plan.alpha, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"
            )
            torch.manual_seed(plan.seed)
            model = get_peft_model(model, config)
        ids: list[int] = []
        for file in summary.files:
            ids += tokenizer(Path(file.path).read_text(encoding="utf-8"), add_special_tokens=False)["input_ids"]
        stream = torch.tensor(ids, dtype=torch.long)
        windows = max(1, (len(stream) - 1) // plan.seq_len)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=plan.learning_rate)
        order = torch.randperm(windows, generator=torch.Generator().manual_seed(plan.seed)).tolist()
        start, curve = 0, []
        state_file = ctx.checkpoint_dir / STATE
        if ctx.resume and state_file.is_file():
            state = torch.load(state_file, weights_only=False)
            model.load_state_dict(state["model"], strict=False)
            optimizer.load_state_dict(state["optimizer"])
            start, curve = int(state["step"]), [tuple(p) for p in state["curve"]]

        def checkpoint(step: int) -> None:
            ctx.progress(step, plan.steps, phase="checkpoint")
            if fail == "enospc-checkpoint" and step >= plan.checkpoint_every * 2:
                raise OSError(errno.ENOSPC, "No space left on device", str(state_file))
            trainable = {k: v for k, v in model.state_dict().items() if "lora_" in k or plan.method == "full"}
            ctx.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            partial = state_file.with_name(".partial-" + STATE)
            torch.save({"model": trainable, "optimizer": optimizer.state_dict(), "step": step, "curve": curve}, partial)
            os.replace(partial, state_file)  # the last complete checkpoint stays until this one is whole

        model.train()
        for step in range(start, plan.steps):
            if ctx.cancelled:
                checkpoint(step)
                raise JobCancelled()
            if fail == f"oom@{step}":
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            if fail == f"crash@{step}":
                raise ZeroDivisionError("a bug in the loop")
            if pause:
                time.sleep(pause)
            rows = []
            for k in range(plan.batch_size):
                w = order[(step * plan.batch_size + k) % windows]
                rows.append(stream[w * plan.seq_len : w * plan.seq_len + plan.seq_len + 1])
            width = min(len(r) for r in rows)
            batch = torch.stack([r[:width] for r in rows])
            loss = model(input_ids=batch, labels=batch).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            curve.append((step + 1, float(loss.detach())))
            ctx.progress(step + 1, plan.steps, phase="estimating" if ctx.estimate_only else "training",
                         loss=float(loss.detach()), learning_rate=plan.learning_rate)  # fmt: skip
            if ctx.estimate_only and step + 1 - start >= 3:
                return self._outcome(step + 1, curve, plan)
            if plan.sample_every and (step + 1) % plan.sample_every == 0:
                ctx.sample(
                    TrainingSample(step + 1, plan.sample_prompts[0], "text", self._sample(model, tokenizer, plan))
                )
            if plan.checkpoint_every and (step + 1) % plan.checkpoint_every == 0 and step + 1 < plan.steps:
                checkpoint(step + 1)
        ctx.progress(plan.steps, plan.steps, phase="saving")
        if fail == "enospc-save":
            raise OSError(errno.ENOSPC, "No space left on device", str(ctx.output_dir / "model.safetensors"))
        model.save_pretrained(ctx.output_dir, safe_serialization=True)
        if plan.method == "full":
            tokenizer.save_pretrained(ctx.output_dir)
        (ctx.output_dir / "README.md").unlink(missing_ok=True)  # peft writes a card; Studio writes its own
        return self._outcome(plan.steps, curve, plan)

    @staticmethod
    def _sample(model: Any, tokenizer: Any, plan: TrainingPlan) -> str:
        import torch

        inputs = tokenizer(plan.sample_prompts[0], return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
        model.train()
        return str(tokenizer.decode(out[0], skip_special_tokens=True))

    @staticmethod
    def _outcome(steps: int, curve: list[Any], plan: TrainingPlan) -> TrainingOutcome:
        losses = [loss for _, loss in curve] or [0.0]
        return TrainingOutcome(
            steps=steps,
            final_loss=losses[-1],
            best_loss=min(losses),
            curve=list(curve),
            device="CPU (tiny test trainer)",
            result_kind="lora" if plan.method == "lora" else "text",
            format="transformers-text",
        )


def use_tiny_trainer() -> TinyTextTrainer:
    """Put the tiny trainer in the registry under "text" (until the real text trainer is merged)."""
    from studio.engines.training import registry

    trainer = TinyTextTrainer()
    registry._created["text"] = trainer
    return trainer


WRITING = [
    "The harbour lamps come on one by one, and the gulls settle on the black water of the bay.",
    "Rain on the slate roofs of the harbour town; the fishing boats knock together in the dark.",
    "At dawn the nets are mended on the quay, and the smell of tar and salt hangs in the cold air.",
    "The lighthouse keeper writes his log by lamplight: wind north-east, sea rough, two boats late.",
    "Old songs of the harbour are sung in the tavern, slow songs about the sea and those it kept.",
]


def write_texts(folder: Path, count: int = 5, repeat: int = 6) -> list[Path]:
    """``count`` small texts in the artist's manner (a harbour town), each a few hundred characters."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for index in range(count):
        line = WRITING[index % len(WRITING)]
        file = folder / f"piece-{index:02d}.txt"
        file.write_text("\n".join([f"{line} ({index})"] * repeat) + "\n", encoding="utf-8")
        files.append(file)
    return files

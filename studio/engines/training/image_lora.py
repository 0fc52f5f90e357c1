"""LoRA training for diffusers UNet pipelines (SD 1.x/2.x, SDXL): the image ``MediumTrainer``.

The loop is diffusers' ``examples/text_to_image/train_text_to_image_lora.py`` (and its SDXL twin):
the base frozen, a peft ``LoraConfig(r, lora_alpha, init_lora_weights="gaussian",
target_modules=["to_k", "to_q", "to_v", "to_out.0"])`` added to the UNet, AdamW (β 0.9/0.999,
weight decay 1e-2, ε 1e-8) on the LoRA parameters only, gradient norm clipped at 1, a linear warm-up
then a constant rate; per step: latents sampled from the VAE's distribution × its scaling factor,
Gaussian noise, uniform timesteps, the noise scheduler's target (epsilon or v-prediction, from the
base's scheduler config), mean squared error. SDXL takes the penultimate hidden states of both text
encoders, the pooled embedding of the second and the added time ids (original size, crop, target
size). On CUDA the base runs in the device's half precision under autocast with fp32 LoRA weights
(fp16: with a gradient scaler).

Two things differ from the script, both as kohya's scripts do: each picture is VAE-encoded once and
each caption text-encoded once before the loop (the base is frozen, so its encodings never change;
the latent is still sampled from the stored distribution every step), and pictures keep their shape
in aspect-ratio buckets (``image_data``) rather than a centre crop.

Determinism: every random draw of the loop (latent sample, noise, timesteps) comes from one CPU
generator seeded from the plan; the data order of each epoch is a function of the seed and the
epoch. A checkpoint holds the LoRA weights, the optimiser, the rate schedule, the scaler and that
generator's state, so on the same device a cancelled and resumed run reaches the same weights as one
run — bit for bit on a CPU.

**The CPU rule.** A real-size Stable Diffusion UNet (≥ ``CPU_PARAMETER_LIMIT`` parameters: SD 1.5
has 860 M, SDXL 2.6 B) takes tens of seconds a step on a CPU, so a run of a thousand steps takes
hours. On a CPU with such a base the plan says so, and ``train`` times the first
``ESTIMATE_STEPS`` steps and stops with the measured estimate ("about 14 h on this CPU; a GPU takes
minutes") — unless the request asks for it explicitly (``TrainRequest.allow_cpu``). Small bases (the
tests' tiny models, distilled toys) train on a CPU without asking.

The result is one diffusers-format LoRA ``.safetensors`` (``pytorch_lora_weights.safetensors``,
named after its folder by the library) whose metadata carries the trigger word
(``modelspec.trigger_phrase``, kohya's ``ss_tag_frequency``) and the base family
(``modelspec.architecture``, ``ss_base_model_version``), which Studio's adapter library and
A1111/ComfyUI's LoRA managers read. The LoRA scale alpha/rank is folded into the up weights, so a
reader that assumes alpha = rank (as diffusers, A1111 and ComfyUI do for files without alpha keys)
applies it at the strength it was trained at.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from studio.core.errors import InvalidRequest, JobCancelled, StudioError
from studio.core.models import ModelSpec
from studio.core.training import DataSummary, TrainingFile, TrainingSample, TrainRequest
from studio.engines.library.classify import read_json
from studio.engines.library.safetensors_files import safetensors_header, safetensors_parameter_bytes
from studio.engines.training import image_data
from studio.engines.training.base import InspectedFile, TrainContext, TrainingOutcome, TrainingPlan

log = logging.getLogger(__name__)

# The UNet pipelines Studio trains, and their family.
SUPPORTED_PIPELINES = {"StableDiffusionPipeline": "sd", "StableDiffusionXLPipeline": "sdxl"}
TARGET_MODULES = ["to_k", "to_q", "to_v", "to_out.0"]
CPU_PARAMETER_LIMIT = 100_000_000
ESTIMATE_STEPS = 3
LORA_FILE = "pytorch_lora_weights.safetensors"  # diffusers' name; the library names it by its folder
CHECKPOINT_FILE = "image-lora-checkpoint.pt"
DEFAULT_LEARNING_RATE = 1e-4  # the script's default
MAX_GRAD_NORM = 1.0
ADAM = {"betas": (0.9, 0.999), "weight_decay": 1e-2, "eps": 1e-8}
# Samples: few steps and a small size on a CPU (a preview of the style, not a finished picture).
SAMPLE_STEPS = {"cpu": 8, "gpu": 20}
SAMPLE_SIDE_CPU = 256


@dataclass
class ImageLoraPlan(TrainingPlan):
    """The image trainer's plan: the shared settings plus what the loop needs to know of the base."""

    family: str = "sd"
    bucket_step: int = 64
    warmup_steps: int = 0
    allow_cpu: bool = False
    needs_gpu: bool = False  # a real-size base on a CPU: estimate, then stop unless ``allow_cpu``
    unet_parameters: int = 0
    sample_steps: int = 8
    sample_size: int = 0
    buckets: list[list[int]] = field(default_factory=list)  # [width, height, images]


@dataclass(frozen=True)
class BaseFacts:
    """What the files of a base say (no torch): its pipeline, family and UNet."""

    pipeline_class: str
    family: str
    config_folder: Path
    single_file: bool
    unet_parameters: int
    native_size: int
    bucket_step: int


def base_facts(base: ModelSpec) -> BaseFacts:
    """The base's trainable facts, or a ``StudioError`` saying why it cannot be trained."""
    if base.format == "patterns":
        raise StudioError(
            f"{base.name} is Studio's pattern painter: it paints from the words of a prompt with a small fixed "
            "network, not a trained image model, so there is nothing to fine-tune; choose a Stable Diffusion "
            "model (SD 1.x/2.x or SDXL) as the base"
        )
    if base.kind and base.kind != "image":
        raise StudioError(f"{base.name} makes {base.kind}, not images; choose an image model as the base")
    if base.format != "diffusers-image":
        raise StudioError(
            f"{base.name} is a {base.format or 'unrecognised'} model; Studio trains image LoRAs for diffusers "
            "Stable Diffusion pipelines (SD 1.x/2.x, SDXL)"
        )
    if not base.runnable:
        raise StudioError(f"cannot train {base.name}: {base.reason}")
    single = bool(base.details.get("single_file"))
    folder = Path(base.details.get("config") or base.path) if single else base.path
    index = read_json(folder / "model_index.json") or {}
    cls = str(base.details.get("class") or index.get("_class_name") or base.model_class)
    if cls not in SUPPORTED_PIPELINES:
        if "transformer" in index:
            raise StudioError(
                f"{base.name} ({cls}) denoises with a transformer; Studio's image trainer teaches UNet pipelines "
                "only (SD 1.x/2.x, SDXL) for now"
            )
        raise StudioError(
            f"{base.name} is a {cls or 'pipeline of unknown class'}; Studio trains text-to-image Stable Diffusion "
            "(SD 1.x/2.x) and SDXL pipelines"
        )
    unet = read_json(folder / "unet" / "config.json") or {}
    if int(unet.get("in_channels") or 4) != 4:
        raise StudioError(
            f"{base.name} has an inpainting UNet ({unet.get('in_channels')} input channels); train a LoRA on the "
            "text-to-image model of its family instead"
        )
    vae = read_json(folder / "vae" / "config.json") or {}
    vae_scale = 2 ** (len(vae.get("block_out_channels") or [0, 0, 0, 0]) - 1)
    halvings = len(unet.get("down_block_types") or [0, 0, 0, 0]) - 1
    if single:
        header = safetensors_header(base.path) or {}
        parameters = sum(
            math.prod(entry.get("shape") or [0])
            for key, entry in header.items()
            if key.startswith("model.diffusion_model.") and isinstance(entry, dict)
        )
    else:
        parameters = safetensors_parameter_bytes(folder / "unet", 1)
    return BaseFacts(
        pipeline_class=cls,
        family=SUPPORTED_PIPELINES[cls],
        config_folder=folder,
        single_file=single,
        unet_parameters=int(parameters),
        native_size=int(base.details.get("native_size") or (1024 if cls.startswith("StableDiffusionXL") else 512)),
        bucket_step=vae_scale * 2**halvings,
    )


def default_trigger(name: str) -> str:
    """A trigger word from the run's name when none is given: "Ink Wash" → "ink_wash"."""
    word = "".join(ch if ch.isalnum() else "_" for ch in name.strip().lower())
    return "_".join(part for part in word.split("_") if part) or "style"


def training_prompt(trigger: str, caption: str) -> str:
    caption = caption.strip()
    if trigger and caption:
        return f"{trigger}, {caption}"
    return trigger or caption


def _duration(seconds: float) -> str:
    if seconds >= 5400:
        return f"about {seconds / 3600:.0f} h"
    if seconds >= 90:
        return f"about {seconds / 60:.0f} min"
    return f"about {max(1, round(seconds))} s"


class ImageLoraTrainer:
    """LoRAs for SD 1.x/2.x and SDXL, from the artist's pictures (see the module docstring)."""

    medium = "image"
    suffixes = image_data.IMAGE_SUFFIXES

    def inspect(self, path: Path) -> InspectedFile:
        return image_data.inspect_image(path)

    def near_duplicates(self, files: Sequence[TrainingFile]) -> list[tuple[str, ...]]:
        return image_data.near_duplicate_groups([f.path for f in files])

    def data_notes(self, files: Sequence[TrainingFile]) -> list[str]:
        return image_data.data_notes(files)

    def methods(self, base: ModelSpec) -> tuple[str, ...]:
        base_facts(base)
        return ("lora",)

    def plan(self, base: ModelSpec, request: TrainRequest, summary: DataSummary, device: Any) -> ImageLoraPlan:
        facts = base_facts(base)
        if request.method == "full":
            raise InvalidRequest(
                "method", f"{base.name} is trained as a LoRA: a full fine-tune of a Stable Diffusion model needs a "
                "data centre's memory and gives the artist a multi-gigabyte copy; choose LoRA"
            )  # fmt: skip
        images = [f for f in summary.files if f.width and f.height]
        if not images:
            raise InvalidRequest("data", "no picture to learn from: add PNG, JPEG or WebP images")
        notes: list[str] = []
        step = facts.bucket_step
        asked = request.resolution or facts.native_size
        resolution = max(step * 2, round(asked / step) * step)
        if resolution != asked:
            notes.append(
                f"resolution {asked} px rounded to {resolution} px (a multiple of {step}: what the UNet halves)"
            )
        batch = request.batch_size
        if batch > len(images):
            notes.append(f"batch {batch} is more than the {len(images)} images: batch {len(images)}")
            batch = len(images)
        per_epoch = _batches_per_epoch(images, resolution, step, batch)
        if request.steps:
            steps = request.steps
        elif request.epochs:
            steps = request.epochs * per_epoch
        else:
            steps = min(2000, max(400, 100 * len(images) // batch))
            notes.append(f"{steps} steps (about 100 a picture, 400 to 2,000)")
        epochs = math.ceil(steps / per_epoch)
        trigger = request.trigger.strip()
        if not trigger:
            trigger = default_trigger(request.name)
            notes.append(f"trigger word {trigger!r} (from the name; choose another with the trigger field)")
        rank = request.rank
        alpha = request.alpha or float(rank)
        counts = image_data.bucket_counts(images, resolution, step)
        bucket_line = image_data.bucket_note(images, resolution, step)
        if bucket_line:
            notes.append(bucket_line + " (aspect-ratio buckets keep each picture whole instead of a square crop)")
        enlarged = image_data.enlarged_count(images, resolution, step)
        if enlarged:
            notes.append(
                f"{enlarged} of the images {'are' if enlarged != 1 else 'is'} smaller than {resolution} px training "
                "size and enlarged for it, so a little soft to the model"
            )
        cpu = getattr(device, "device", "cpu") == "cpu"
        needs_gpu = cpu and facts.unet_parameters >= CPU_PARAMETER_LIMIT
        allow_cpu = bool(getattr(request, "allow_cpu", False))
        if needs_gpu:
            notes.append(
                f"{base.name}'s UNet has {facts.unet_parameters / 1e6:,.0f} M parameters: on this CPU a step takes "
                "tens of seconds and the run hours; a GPU takes minutes. "
                + ("Training on the CPU as asked." if allow_cpu else
                   "Studio times the first steps and stops with the estimate unless asked to train on the CPU anyway.")
            )  # fmt: skip
        sample_prompts = tuple(p for p in request.sample_prompts if p.strip())
        if not sample_prompts:
            first = next((f.caption for f in summary.files if f.caption.strip()), "")
            sample_prompts = tuple(dict.fromkeys(p for p in (trigger, training_prompt(trigger, first)) if p))
        sample_every = request.sample_every or max(1, steps // 4)
        checkpoint_every = request.checkpoint_every or max(25, min(250, steps // 10))
        return ImageLoraPlan(
            method="lora",
            steps=steps,
            learning_rate=request.learning_rate or DEFAULT_LEARNING_RATE,
            batch_size=batch,
            seed=request.seed,
            rank=rank,
            alpha=alpha,
            resolution=resolution,
            epochs=epochs,
            sample_every=sample_every,
            checkpoint_every=checkpoint_every,
            sample_prompts=sample_prompts,
            trigger=trigger,
            gradient_checkpointing=request.gradient_checkpointing,
            notes=notes,
            family=facts.family,
            bucket_step=step,
            warmup_steps=min(100, steps // 10),
            allow_cpu=allow_cpu,
            needs_gpu=needs_gpu,
            unet_parameters=facts.unet_parameters,
            sample_steps=SAMPLE_STEPS["cpu" if cpu else "gpu"],
            sample_size=min(resolution, SAMPLE_SIDE_CPU) if cpu else resolution,
            buckets=[[w, h, n] for (w, h), n in sorted(counts.items())],
        )

    def train(
        self, base: ModelSpec, plan: TrainingPlan, summary: DataSummary, device: Any, ctx: TrainContext
    ) -> TrainingOutcome:
        if not isinstance(plan, ImageLoraPlan):
            raise StudioError("the image trainer runs the plans it made (ImageLoraTrainer.plan)")
        run = LoraRun(base, base_facts(base), plan, summary, device, ctx)
        try:
            return run.go()
        finally:
            run.release()


def _batches_per_epoch(images: Sequence[TrainingFile], resolution: int, step: int, batch: int) -> int:
    counts = image_data.bucket_counts(images, resolution, step)
    return max(1, sum(math.ceil(n / batch) for n in counts.values()))


def epoch_batches(buckets: Sequence[tuple[int, int]], seed: int, epoch: int, batch: int) -> list[list[int]]:
    """The batches of one epoch (indices into the data): each of one bucket, shuffled within buckets
    and in order, by a generator of (seed, epoch) alone — so a resumed run sees the same order."""
    rng = random.Random(seed * 1_000_003 + epoch)
    by_bucket: dict[tuple[int, int], list[int]] = {}
    for index, bucket in enumerate(buckets):
        by_bucket.setdefault(bucket, []).append(index)
    batches: list[list[int]] = []
    for bucket in sorted(by_bucket):
        members = by_bucket[bucket]
        rng.shuffle(members)
        batches += [members[i : i + batch] for i in range(0, len(members), batch)]
    rng.shuffle(batches)
    return batches


@dataclass
class _Example:
    """One picture as the loop uses it: its latent distribution, its caption's encodings, SDXL's time ids."""

    path: str
    bucket: tuple[int, int]
    mean: Any = None
    std: Any = None
    prompt_embeds: Any = None
    pooled: Any = None
    time_ids: Any = None


class LoraRun:
    """One training run: load, encode the data, loop, checkpoint, sample, save."""

    def __init__(
        self,
        base: ModelSpec,
        facts: BaseFacts,
        plan: ImageLoraPlan,
        summary: DataSummary,
        device: Any,
        ctx: TrainContext,
    ) -> None:
        self.base, self.facts, self.plan, self.summary, self.ctx = base, facts, plan, summary, ctx
        self.device = device
        self.pipe: Any = None
        self.step = 0
        self.curve: list[tuple[int, float]] = []
        self.best = math.inf
        self.examples: list[_Example] = []
        self.checkpoint_path = Path(ctx.checkpoint_dir) / CHECKPOINT_FILE

    # -- setting up ---------------------------------------------------------------------------

    def load(self) -> None:
        import torch
        from diffusers import DDPMScheduler
        from diffusers.training_utils import cast_training_params
        from peft import LoraConfig

        from studio.engines.devices import DeviceChoice
        from studio.engines.diffusers_image import DiffusersImageEngine

        device = self.device
        # The engine's own loading (single files through from_single_file), never offloaded or compiled:
        # training needs the whole UNet on the device and eager autograd.
        choice = DeviceChoice(device.device, device.dtype_name, device.name, memory_mode="full", compile_models=False)
        self.pipe = DiffusersImageEngine().load(self.base, choice).pipe
        pipe = self.pipe
        self.torch_device = torch.device(device.device)
        self.weight_dtype = device.dtype
        self.autocast = device.device == "cuda" and device.dtype != torch.float32
        self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        for part in ("unet", "vae", "text_encoder", "text_encoder_2"):
            module = getattr(pipe, part, None)
            if module is not None:
                module.requires_grad_(False)
        unet = pipe.unet
        torch.manual_seed(self.plan.seed)  # the Gaussian initialisation of the LoRA's down weights
        unet.add_adapter(
            LoraConfig(
                r=self.plan.rank,
                lora_alpha=cast(Any, self.plan.alpha),  # peft takes a float alpha, whatever its hint says
                init_lora_weights="gaussian",
                target_modules=TARGET_MODULES,
            )
        )
        cast_training_params(unet, dtype=torch.float32)  # fp32 LoRA weights over a half-precision base
        if self.plan.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
        unet.train()
        self.params = [p for p in unet.parameters() if p.requires_grad]
        self.optimizer: Any = torch.optim.AdamW(self.params, lr=self.plan.learning_rate, **ADAM)  # type: ignore[arg-type]
        from diffusers.optimization import get_scheduler

        self.lr_schedule = get_scheduler(
            "constant_with_warmup",
            self.optimizer,
            num_warmup_steps=self.plan.warmup_steps,
            num_training_steps=self.plan.steps,
        )
        half = device.device == "cuda" and device.dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if half else None  # fp16 gradients underflow unscaled
        self.generator = torch.Generator("cpu").manual_seed(self.plan.seed)

    def encode_data(self) -> None:
        """Each picture VAE-encoded once (its latent distribution) and each caption text-encoded once."""
        import numpy as np
        import torch

        pipe, plan = self.pipe, self.plan
        buckets = image_data.bucket_sizes(plan.resolution, plan.bucket_step)
        files = [f for f in self.summary.files if f.width and f.height]
        vae = pipe.vae
        upcast = bool(getattr(vae.config, "force_upcast", False)) and vae.dtype != torch.float32
        if upcast:  # SDXL's VAE overflows in fp16
            vae.to(torch.float32)
        vae_dtype = vae.dtype
        once = {"device": self.torch_device, "num_images_per_prompt": 1, "do_classifier_free_guidance": False}
        for index, file in enumerate(files):
            self.ctx.raise_if_cancelled()
            self.ctx.progress(index, len(files), phase="reading")
            try:
                picture = image_data.read_rgb(Path(file.path))
            except (OSError, SyntaxError, ValueError) as exc:
                raise StudioError(f"cannot read {file.path} any more (changed since the summary?): {exc}") from exc
            bucket = image_data.nearest_bucket(picture.width, picture.height, buckets)
            fitted, (top, left) = image_data.fit_to_bucket(picture, bucket)
            pixels = torch.from_numpy(np.asarray(fitted, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
            with torch.no_grad():
                dist = vae.encode(pixels.to(self.torch_device, vae_dtype)).latent_dist
            example = _Example(file.path, bucket, dist.mean.float(), dist.std.float())
            prompt = training_prompt(plan.trigger, file.caption)
            with torch.no_grad():
                if plan.family == "sdxl":
                    embeds, _, pooled, _ = pipe.encode_prompt(prompt=prompt, **once)
                    example.pooled = pooled
                    # original size, crop top-left, target size — each (height, width)
                    sizes = (picture.height, picture.width, top, left, bucket[1], bucket[0])
                    example.time_ids = torch.tensor([sizes], dtype=embeds.dtype, device=self.torch_device)
                else:
                    embeds, _ = pipe.encode_prompt(prompt=prompt, **once)
            example.prompt_embeds = embeds
            self.examples.append(example)
        if upcast:
            vae.to(self.weight_dtype)
        self.ctx.progress(len(files), len(files), phase="reading")

    # -- the loop -------------------------------------------------------------------------------

    def batch_at(self, step: int) -> list[_Example]:
        """The batch of step ``step`` (0-based): epochs follow each other, each in its own order."""
        buckets = [e.bucket for e in self.examples]
        per_epoch = len(epoch_batches(buckets, self.plan.seed, 0, self.plan.batch_size))
        epoch, index = divmod(step, per_epoch)
        if getattr(self, "_epoch_cache", (None, None))[0] != epoch:
            self._epoch_cache = (epoch, epoch_batches(buckets, self.plan.seed, epoch, self.plan.batch_size))
        return [self.examples[i] for i in self._epoch_cache[1][index]]

    def loss(self, batch: list[_Example]) -> Any:
        """One forward pass: the script's noise-prediction loss on this batch."""
        import torch
        import torch.nn.functional as F

        generator, device = self.generator, self.torch_device
        mean = torch.cat([e.mean for e in batch])
        std = torch.cat([e.std for e in batch])
        sample = torch.randn(mean.shape, generator=generator).to(device)
        latents = (mean + std * sample) * self.pipe.vae.config.scaling_factor
        noise = torch.randn(latents.shape, generator=generator).to(device)
        steps = self.noise_scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, steps, (latents.shape[0],), generator=generator).to(device)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        prediction = self.noise_scheduler.config.prediction_type
        if prediction == "epsilon":
            target = noise
        elif prediction == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            raise StudioError(f"the base's scheduler predicts {prediction!r}; Studio trains epsilon and v-prediction")
        embeds = torch.cat([e.prompt_embeds for e in batch])
        kwargs: dict[str, Any] = {}
        if self.plan.family == "sdxl":
            kwargs["added_cond_kwargs"] = {
                "text_embeds": torch.cat([e.pooled for e in batch]),
                "time_ids": torch.cat([e.time_ids for e in batch]),
            }
        with torch.autocast("cuda", dtype=self.weight_dtype, enabled=self.autocast):
            predicted = self.pipe.unet(noisy.to(self.weight_dtype), timesteps, embeds, **kwargs, return_dict=False)[0]
        return F.mse_loss(predicted.float(), target.float(), reduction="mean")

    def optimise(self, loss: Any) -> None:
        import torch

        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, MAX_GRAD_NORM)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.params, MAX_GRAD_NORM)
            self.optimizer.step()
        self.lr_schedule.step()
        self.optimizer.zero_grad(set_to_none=True)

    def one_step(self) -> float:
        batch = self.batch_at(self.step)
        loss = self.loss(batch)
        self.optimise(loss)
        value = float(loss.detach().item())
        self.step += 1
        self.curve.append((self.step, value))
        self.best = min(self.best, value)
        return value

    def go(self) -> TrainingOutcome:
        import torch

        from studio.engines.devices import free_device_memory, is_out_of_memory

        plan, ctx = self.plan, self.ctx
        try:
            with torch.enable_grad():
                self.load()
                self.encode_data()
                if ctx.resume and not ctx.estimate_only:
                    self.restore()
                if ctx.estimate_only or (plan.needs_gpu and not plan.allow_cpu):
                    return self.estimate()
                while self.step < plan.steps:
                    if ctx.cancelled:
                        self.save_checkpoint()
                        raise JobCancelled()
                    value = self.one_step()
                    epoch = (self.step - 1) // max(1, len(self._epoch_cache[1])) + 1
                    ctx.progress(
                        self.step,
                        plan.steps,
                        loss=value,
                        learning_rate=float(self.lr_schedule.get_last_lr()[0]),
                        epoch=epoch,
                    )
                    if plan.checkpoint_every and self.step % plan.checkpoint_every == 0 and self.step < plan.steps:
                        self.save_checkpoint()
                    if plan.sample_every and self.step % plan.sample_every == 0:
                        self.samples()
                ctx.progress(plan.steps, plan.steps, phase="saving")
                self.save_lora()
        except (JobCancelled, StudioError):
            raise
        except Exception as exc:
            if is_out_of_memory(exc):
                free_device_memory()
                raise StudioError(self.out_of_memory_message()) from exc
            raise
        return self.outcome()

    def outcome(self) -> TrainingOutcome:
        """What the run reached so far: its steps, losses and curve (a LoRA)."""
        return TrainingOutcome(
            steps=self.step,
            final_loss=self.curve[-1][1] if self.curve else 0.0,
            best_loss=self.best if self.curve else 0.0,
            curve=list(self.curve),
            device=self.device_label(),
            result_kind="lora",
            format="lora",
        )

    def estimate(self) -> TrainingOutcome:
        """Time the first steps (the first one apart: allocator warm-up) and report what the run would take."""
        plan, ctx = self.plan, self.ctx
        stamps = [time.perf_counter()]
        for _ in range(min(ESTIMATE_STEPS, plan.steps)):
            ctx.raise_if_cancelled()
            value = self.one_step()
            stamps.append(time.perf_counter())
            ctx.progress(self.step, plan.steps, phase="estimating", loss=value)
        timed = stamps[2:] if len(stamps) > 2 else stamps
        per_step = (timed[-1] - timed[0]) / max(1, len(timed) - 1) if len(timed) > 1 else stamps[-1] - stamps[0]
        total = per_step * plan.steps
        self.estimate_s = total
        if plan.needs_gpu and not plan.allow_cpu and not ctx.estimate_only:
            raise StudioError(
                f"training {self.base.name} for {plan.steps} steps would take {_duration(total)} on this CPU "
                f"({per_step:.0f} s a step, measured over the first steps); a GPU takes minutes. Train on a computer "
                "with a GPU, or ask to train on the CPU anyway"
            )
        note = f"{_duration(total)} for {plan.steps} steps on {self.device_label()} ({per_step:.2f} s a step)"
        if plan.needs_gpu:
            note += "; a GPU takes minutes"
        plan.notes.append(note)
        return self.outcome()

    def out_of_memory_message(self) -> str:
        plan = self.plan
        tips = []
        if plan.batch_size > 1:
            tips.append("batch 1")
        if not plan.gradient_checkpointing:
            tips.append("gradient checkpointing")
        smaller = 512 if plan.resolution > 512 else max(plan.bucket_step * 2, plan.resolution - 128)
        tips.append(f"a smaller resolution ({smaller} px)")
        if plan.rank > 16:
            tips.append("a lower rank (16)")
        kept_step = getattr(self, "_checkpoint_step", 0)
        kept = f"; the checkpoint of step {kept_step} is kept" if kept_step else ""
        return (
            f"out of memory on {self.device.name} training {self.base.name} at {plan.resolution} px, batch "
            f"{plan.batch_size}, rank {plan.rank}: try {', '.join(tips)}{kept}"
        )

    def device_label(self) -> str:
        import torch

        if self.device.device == "cpu":
            threads = torch.get_num_threads()
            return f"CPU ({threads} thread{'s' if threads != 1 else ''})"
        precision = {"float16": "fp16", "bfloat16": "bf16"}.get(self.device.dtype_name, self.device.dtype_name)
        return f"{self.device.name} ({precision})"

    # -- checkpoints ----------------------------------------------------------------------------

    def fingerprint(self) -> str:
        """What a checkpoint must match to be continued: the settings that shape the weights, and the data."""
        plan = self.plan
        settings = {
            "base": str(self.base.path),
            "data": self.summary.digest,
            "captions": [f.caption for f in self.summary.files],
            **{k: getattr(plan, k) for k in ("steps", "learning_rate", "batch_size", "seed", "rank", "alpha")},
            **{k: getattr(plan, k) for k in ("resolution", "trigger", "warmup_steps", "bucket_step")},
        }
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()

    def save_checkpoint(self) -> None:
        import torch
        from peft.utils import get_peft_model_state_dict

        self.ctx.progress(self.step, self.plan.steps, phase="checkpoint")
        state = {
            "fingerprint": self.fingerprint(),
            "step": self.step,
            "lora": {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(self.pipe.unet).items()},
            "optimizer": self.optimizer.state_dict(),
            "lr_schedule": self.lr_schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "generator": self.generator.get_state(),
            "curve": [list(point) for point in self.curve],
            "best": self.best,
        }
        folder = self.checkpoint_path.parent
        temporary = folder / (CHECKPOINT_FILE + ".partial")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            torch.save(state, temporary)
            with temporary.open("rb") as handle:
                os.fsync(handle.fileno())
            os.replace(temporary, self.checkpoint_path)  # the previous checkpoint stays whole until this
        except OSError:
            # The job says what to free and that the last whole checkpoint is kept (runtime.training).
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        self._checkpoint_step = self.step

    def restore(self) -> None:
        import torch
        from peft.utils import set_peft_model_state_dict

        if not self.checkpoint_path.is_file():
            log.info("no checkpoint in %s: training from the start", self.checkpoint_path.parent)
            return
        try:
            state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise StudioError(
                f"the checkpoint {self.checkpoint_path} cannot be read ({exc}); start again without Resume"
            ) from exc
        if state.get("fingerprint") != self.fingerprint():
            raise StudioError(
                "the checkpoint was made with other settings, data or base than this run; start again without Resume "
                "or use the settings of the run that made it"
            )
        set_peft_model_state_dict(self.pipe.unet, {k: v.to(self.torch_device) for k, v in state["lora"].items()})
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_schedule.load_state_dict(state["lr_schedule"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.generator.set_state(state["generator"])
        self.step = int(state["step"])
        self.curve = [(int(s), float(v)) for s, v in state["curve"]]
        self.best = float(state["best"])
        self._checkpoint_step = self.step

    # -- samples and the result -----------------------------------------------------------------

    def samples(self) -> None:
        import numpy as np
        import torch

        plan, ctx = self.plan, self.ctx
        ctx.progress(self.step, plan.steps, phase="sampling")
        unet = self.pipe.unet
        unet.eval()
        try:
            for prompt in plan.sample_prompts:
                ctx.raise_if_cancelled()
                # The same noise at every sample, so the strip shows what the steps changed.
                generator = torch.Generator("cpu").manual_seed(plan.seed)
                with torch.no_grad():
                    images = self.pipe(
                        prompt,
                        num_inference_steps=plan.sample_steps,
                        width=plan.sample_size,
                        height=plan.sample_size,
                        generator=generator,
                        output_type="np",
                    ).images
                picture = np.clip(np.round(np.asarray(images[0]) * 255), 0, 255).astype(np.uint8)
                ctx.sample(TrainingSample(self.step, prompt, "image", picture))
        finally:
            unet.train()

    def save_lora(self) -> Path:
        """The LoRA as diffusers writes it (``save_lora_weights``), with Studio's and kohya's metadata."""
        import diffusers
        from diffusers.utils import convert_state_dict_to_diffusers
        from peft.utils import get_peft_model_state_dict
        from safetensors.torch import save_file

        plan = self.plan
        scale = plan.alpha / plan.rank
        state = {}
        for key, tensor in get_peft_model_state_dict(self.pipe.unet).items():
            weights = tensor.detach().float().cpu()
            state[key] = (weights * scale if "lora_B" in key else weights).contiguous()
        metadata = self.metadata()

        def save_function(weights: dict[str, Any], filename: str) -> None:
            save_file(weights, filename, metadata=metadata)

        pipeline_cls = getattr(diffusers, self.facts.pipeline_class)
        output = Path(self.ctx.output_dir)
        pipeline_cls.save_lora_weights(
            str(output),
            unet_lora_layers=convert_state_dict_to_diffusers(state),
            weight_name=LORA_FILE,
            save_function=save_function,
            safe_serialization=True,
        )
        return output / LORA_FILE

    def metadata(self) -> dict[str, str]:
        """What other tools read of a LoRA: the modelspec keys (A1111, ComfyUI), kohya's ``ss_*`` keys
        (A1111's LoRA metadata view, Civitai), and Studio's own. All values are strings."""
        plan, facts = self.plan, self.facts
        width = int((read_json(facts.config_folder / "unet" / "config.json") or {}).get("cross_attention_dim") or 0)
        if plan.family == "sdxl":
            architecture, version = "stable-diffusion-xl-v1-base/lora", "sdxl_base_v1-0"
        elif width == 1024:
            v = self.noise_scheduler.config.prediction_type == "v_prediction"
            architecture, version = ("stable-diffusion-v2-768-v/lora" if v else "stable-diffusion-v2-512/lora"), "sd_v2"
        else:
            architecture, version = "stable-diffusion-v1/lora", "sd_v1"
        tags: dict[str, int] = {plan.trigger: len(self.examples)} if plan.trigger else {}
        for file in self.summary.files:
            for tag in (t.strip() for t in file.caption.split(",")):
                if tag:
                    tags[tag] = tags.get(tag, 0) + 1
        top = dict(sorted(tags.items(), key=lambda item: -item[1])[:100])
        resolution = plan.resolution
        return {
            "format": "pt",
            "modelspec.sai_model_spec": "1.0.0",
            "modelspec.architecture": architecture,
            "modelspec.implementation": "https://github.com/huggingface/diffusers",
            "modelspec.title": plan.trigger or "Studio LoRA",
            "modelspec.trigger_phrase": plan.trigger,
            "modelspec.resolution": f"{resolution}x{resolution}",
            "modelspec.date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "ss_base_model_version": version,
            "ss_network_dim": str(plan.rank),
            "ss_network_alpha": str(plan.rank),  # alpha / rank is folded into the weights
            "ss_tag_frequency": json.dumps({"studio": top}),
            "ss_num_train_images": str(len(self.examples)),
            "ss_max_train_steps": str(plan.steps),
            "ss_learning_rate": str(plan.learning_rate),
            "ss_resolution": f"({resolution}, {resolution})",
            "ss_seed": str(plan.seed),
            "studio.family": plan.family,
            "studio.base": self.base.name,
            "studio.data_digest": self.summary.digest,
            "studio.trained_alpha": str(plan.alpha),
        }

    def release(self) -> None:
        from studio.engines.devices import free_device_memory

        self.pipe = None
        self.examples = []
        self.optimizer = None
        free_device_memory()

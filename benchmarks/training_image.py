"""Image LoRA training speed: Studio's trainer vs a plain diffusers + peft loop, same model, settings and data.

The plain loop is the recipe of diffusers' ``examples/text_to_image/train_text_to_image_lora.py``
written out (no accelerate; torchvision's transforms as Pillow calls): the pipeline's parts loaded
with ``from_pretrained``, ``DDPMScheduler`` from the base's scheduler config, a peft ``LoraConfig``
(r, alpha = r, gaussian init, to_k/to_q/to_v/to_out.0) added to the UNet, fp32 LoRA weights, AdamW,
constant rate after a warm-up; each step resizes and centre-crops the picture, VAE-encodes it,
text-encodes its caption, noises the latents and takes one optimiser step with the gradient norm
clipped at 1. Studio's is ``ImageLoraTrainer.train`` as the worker runs it, which encodes each
picture and caption once before the loop (so it is expected to be faster, the more so at 512²,
where the VAE encoder costs about as much as a UNet step).

Steps per second come from the end-of-step times after the first ``--skip`` steps (loading and
encoding are not counted); the two loops alternate, Studio first in even rounds, and the ratio is the
median of the per-round ratios (the cores are shared). On CUDA the peak allocated memory of each loop
is reported too.

    python -m benchmarks.training_image [--rounds 3] [--steps 30] [--json]                 # tiny SD, CPU
    python -m benchmarks.training_image --arch sd15 --resolution 512 --rank 16 --steps 40  # a GPU
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _rate(stamps: list[float], skip: int) -> float:
    usable = stamps[skip:]
    if len(usable) < 2:
        return float("nan")
    return (len(usable) - 1) / (usable[-1] - usable[0])


def _peak_reset() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_mb() -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None


def studio_loop(spec, summary, request, device, root: Path) -> tuple[float, float | None]:
    from studio.engines.training.base import TrainContext
    from studio.engines.training.image_lora import ImageLoraTrainer

    trainer = ImageLoraTrainer()
    plan = trainer.plan(spec, request, summary, device)
    stamps: list[float] = []

    def emit(event) -> None:
        if event.kind.value == "progress" and event.info.get("phase") == "training":
            stamps.append(time.perf_counter())  # after the step's loss.item(): the device has finished it

    out = Path(tempfile.mkdtemp(dir=root))
    ctx = TrainContext("bench", emit, threading.Event(), output_dir=out, checkpoint_dir=out / "checkpoint")
    _peak_reset()
    trainer.train(spec, plan, summary, device, ctx)
    return _rate(stamps, request_skip(request)), _peak_mb()


def request_skip(request) -> int:
    return min(3, max(1, request.steps // 5))


def plain_loop(model: Path, files, args, device) -> tuple[float, float | None]:
    """diffusers' train_text_to_image_lora.py, step for step (see the module docstring)."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from diffusers import DDPMScheduler, StableDiffusionPipeline
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import cast_training_params
    from peft import LoraConfig
    from PIL import Image

    dtype = device.dtype
    torch_device = torch.device(device.device)
    pipe = StableDiffusionPipeline.from_pretrained(str(model), dtype=dtype, safety_checker=None)
    noise_scheduler = DDPMScheduler.from_pretrained(str(model), subfolder="scheduler")
    unet, vae, text_encoder, tokenizer = pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer
    for module in (unet, vae, text_encoder):
        module.requires_grad_(False)
    unet.to(torch_device)
    vae.to(torch_device)
    text_encoder.to(torch_device)
    torch.manual_seed(args.seed)
    unet.add_adapter(
        LoraConfig(
            r=args.rank,
            lora_alpha=args.rank,
            init_lora_weights="gaussian",
            target_modules=["to_k", "to_q", "to_v", "to_out.0"],
        )
    )
    cast_training_params(unet, dtype=torch.float32)
    if args.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    lr_scheduler = get_scheduler(
        "constant_with_warmup", optimizer, num_warmup_steps=min(100, args.steps // 10), num_training_steps=args.steps
    )
    autocast = device.device == "cuda" and dtype != torch.float32
    scaler = torch.amp.GradScaler("cuda") if device.device == "cuda" and dtype == torch.float16 else None
    rng = np.random.default_rng(args.seed)

    def example(file) -> tuple:
        with Image.open(file.path) as opened:
            image = opened.convert("RGB")
        scale = args.resolution / min(image.size)  # transforms.Resize(resolution), bilinear
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR)
        left, top = (image.width - args.resolution) // 2, (image.height - args.resolution) // 2
        image = image.crop((left, top, left + args.resolution, top + args.resolution))  # CenterCrop
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)
        ids = tokenizer(
            file.caption,
            max_length=tokenizer.model_max_length,
            padding="max_length",
            truncation=True,
            return_tensors="pt",
        ).input_ids
        return pixels, ids[0]

    _peak_reset()
    stamps: list[float] = []
    with torch.enable_grad():
        for _ in range(args.steps):
            batch = [example(files[int(i)]) for i in rng.choice(len(files), size=args.batch, replace=False)]
            pixel_values = torch.stack([b[0] for b in batch]).to(torch_device, dtype)
            input_ids = torch.stack([b[1] for b in batch]).to(torch_device)
            with torch.autocast("cuda", dtype=dtype, enabled=autocast):
                latents = vae.encode(pixel_values).latent_dist.sample() * vae.config.scaling_factor
                noise = torch.randn_like(latents)
                timesteps = torch.randint(
                    0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],), device=latents.device
                ).long()
                noisy = noise_scheduler.add_noise(latents, noise, timesteps)
                encoder_hidden_states = text_encoder(input_ids, return_dict=False)[0]
                if noise_scheduler.config.prediction_type == "v_prediction":
                    target = noise_scheduler.get_velocity(latents, noise, timesteps)
                else:
                    target = noise
                prediction = unet(noisy, timesteps, encoder_hidden_states, return_dict=False)[0]
            loss = F.mse_loss(prediction.float(), target.float(), reduction="mean")
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad()
            loss.detach().item()  # the script logs the step's loss: one sync a step, as Studio's progress
            stamps.append(time.perf_counter())
    peak = _peak_mb()
    del pipe, unet, vae, text_encoder, optimizer
    gc.collect()
    return _rate(stamps, min(3, max(1, args.steps // 5))), peak


def measure(args: argparse.Namespace) -> dict:
    import tiny_training_images
    import torch

    import studio.engines  # noqa: F401 - offline, quiet Hugging Face settings first
    from studio.core.training import DataSummary, TrainRequest
    from studio.engines.devices import choose_device, free_device_memory
    from studio.engines.library.classify import inspect_folder
    from studio.engines.training.image_lora import ImageLoraTrainer

    if args.threads:
        torch.set_num_threads(args.threads)
    device = choose_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.arch == "tiny":
            model = tiny_training_images.build_tiny_sd_with_words(root / "bench-sd")
        else:
            from benchmarks.image_gpu import build_pipeline

            model = build_pipeline("sd15", root / "bench-sd", device.device, small=args.small)
        data = tiny_training_images.build_image_set(
            root / "data", count=args.images, size=(args.resolution, args.resolution)
        )
        trainer = ImageLoraTrainer()
        files = tiny_training_images.training_files(data, trainer)
        summary = DataSummary("image", tuple(files))
        spec = inspect_folder(model)
        request = TrainRequest(
            medium="image",
            data=(str(data),),
            name="bench",
            trigger="",  # the captions alone, as the plain loop reads them
            steps=args.steps,
            rank=args.rank,
            batch_size=args.batch,
            resolution=args.resolution,
            learning_rate=1e-4,
            seed=args.seed,
            sample_every=100_000,
            checkpoint_every=100_000,
            gradient_checkpointing=args.gradient_checkpointing,
            allow_cpu=True,
        )
        studio_rates, plain_rates, ratios = [], [], []
        studio_peaks, plain_peaks = [], []
        for round_index in range(args.rounds):
            order = ("studio", "plain") if round_index % 2 == 0 else ("plain", "studio")
            got = {}
            for which in order:
                if which == "studio":
                    got[which] = studio_loop(spec, summary, request, device, root)
                else:
                    got[which] = plain_loop(model, files, args, device)
                free_device_memory()
            studio_rates.append(got["studio"][0])
            plain_rates.append(got["plain"][0])
            ratios.append(got["studio"][0] / got["plain"][0])
            studio_peaks.append(got["studio"][1])
            plain_peaks.append(got["plain"][1])
            print(f"# round {round_index + 1}: studio {got['studio'][0]:.3f} steps/s, plain {got['plain'][0]:.3f}",
                  file=sys.stderr, flush=True)  # fmt: skip
    result = {
        "training_image_steps_per_s_studio": round(statistics.median(studio_rates), 4),
        "training_image_steps_per_s_plain": round(statistics.median(plain_rates), 4),
        "training_image_ratio": round(statistics.median(ratios), 4),
        "training_image_ratios": [round(r, 4) for r in ratios],
        "arch": args.arch + (" small" if args.small and args.arch != "tiny" else ""),
        "resolution": args.resolution,
        "rank": args.rank,
        "batch": args.batch,
        "steps": args.steps,
        "rounds": args.rounds,
        "device": device.name,
        "torch_threads": torch.get_num_threads(),
    }
    if device.device == "cuda":
        result["training_image_peak_mb_studio"] = max(p for p in studio_peaks if p is not None)
        result["training_image_peak_mb_plain"] = max(p for p in plain_peaks if p is not None)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=("tiny", "sd15"), default="tiny")
    parser.add_argument("--small", action="store_true", help="sd15 with channels ÷ 8")
    parser.add_argument("--device", default="auto", help="auto, cuda or cpu")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--steps", type=int, default=30, help="steps per loop and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    from benchmarks.report import run_main

    return run_main(build_parser, measure, argv)


if __name__ == "__main__":
    raise SystemExit(main())

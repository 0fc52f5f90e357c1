"""Which bases the language-model trainers (text, music) can train, and why not the others.
No torch: ``methods`` and ``plan`` run before anything loads."""

from __future__ import annotations

from studio.core.errors import StudioError
from studio.core.models import ModelSpec
from studio.core.training import TrainRequest
from studio.engines.training.base import TrainingPlan

# Formats Studio can run but not train, with the reason a person can act on.
_WHY_NOT = {
    "gguf": (
        "is a GGUF file: its weights are quantised for running, not training. Train the transformers "
        "model (safetensors) it was made from, then convert the result"
    ),
    "patterns": (
        "is the pattern painter: it has no trained weights to fine-tune (its patterns follow the prompt's words)"
    ),
    "upscaler": "is an upscaler: Studio trains text, melody and image models, not upscalers",
    "lanczos": "is a plain resampler: it has nothing to train",
    "musicgen": "is a MusicGen model: Studio cannot train MusicGen yet (only the melody model learns tunes)",
    "diffusers-audio": "is an audio diffusion model: Studio cannot train it yet (only the melody model learns tunes)",
    "ace-step": "is ACE-Step: Studio cannot train it yet (only the melody model learns tunes)",
}


def check_trainable(base: ModelSpec, medium: str, formats: tuple[str, ...], what: str) -> None:
    """Raise ``StudioError`` saying why ``base`` cannot be trained by the ``medium`` trainer, which
    takes bases of ``formats`` (``what`` names them for people: "causal language models")."""
    if base.format in formats and base.kind in (medium, ""):
        if not base.runnable:
            raise StudioError(f"{base.name} cannot be trained: {base.reason or 'it cannot be loaded'}")
        return
    reason = _WHY_NOT.get(base.format)
    if reason is not None:
        raise StudioError(f"{base.name} {reason}")
    if base.kind and base.kind != medium:
        article = "an" if base.kind[0] in "aeiou" else "a"
        raise StudioError(f"{base.name} is {article} {base.kind} model; the {medium} trainer teaches {what}")
    known = base.format or "an unknown format"
    raise StudioError(f"{base.name} ({known}) cannot be trained here: the {medium} trainer teaches {what}")


def language_model_plan(
    request: TrainRequest,
    method: str,
    steps: int,
    seq_len: int,
    prompts: tuple[str, ...],
    notes: list[str],
    learning_rate: float,
) -> TrainingPlan:
    """The plan of a text or melody run: the request's settings, the trainer's defaults where it left 0
    (samples four times a run, a checkpoint every fifth of it within 10…100 steps; rank and alpha for
    LoRA only)."""
    lora = method == "lora"
    return TrainingPlan(
        method=method,
        steps=steps,
        learning_rate=request.learning_rate or learning_rate,
        batch_size=request.batch_size,
        seed=request.seed,
        rank=request.rank if lora else 0,
        alpha=(request.alpha or float(request.rank)) if lora else 0.0,
        seq_len=seq_len,
        epochs=request.epochs,
        sample_every=request.sample_every or max(1, steps // 4),
        checkpoint_every=request.checkpoint_every or max(10, min(100, steps // 5)),
        sample_prompts=prompts,
        gradient_checkpointing=request.gradient_checkpointing,
        notes=notes,
    )

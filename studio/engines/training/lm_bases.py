"""Which bases the language-model trainers (text, music) can train, and why not the others.
No torch: ``methods`` and ``plan`` run before anything loads."""

from __future__ import annotations

from studio.core.errors import StudioError
from studio.core.models import ModelSpec

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

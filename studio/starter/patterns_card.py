"""The starter image model — the pattern painter — and its card with measured prompt steering.

Nothing is trained: ``python -m studio.starter.train image`` writes the manifest and measures
what the prompt does to the pictures (the card's numbers come from this run).
"""

from __future__ import annotations

import colorsys
import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from studio.engines import patterns

MANIFEST = {
    "format": patterns.FORMAT,
    "kind": "image",
    "network": {"width": 32, "depth": 6, "latent": 8},
    "about": (
        "A compositional pattern-producing network: weights drawn from the seed, inputs and palette from the "
        "prompt. Trained on no data."
    ),
}
COLOUR_PROMPTS = {"red": 0.0, "orange": 0.08, "yellow": 0.15, "green": 0.36, "blue": 0.62, "purple": 0.78}
SEEDS = range(8)
SIDE = 128


def hue_share(image: np.ndarray, hue: float, width: float = 0.06) -> float:
    """Share of saturated pixels whose hue lies within ``width`` of ``hue`` (on the hue circle)."""
    rgb = image.reshape(-1, 3).astype(np.float32) / 255.0
    hsv = np.array([colorsys.rgb_to_hsv(*p) for p in rgb[:: max(1, len(rgb) // 4000)]])
    saturated = hsv[(hsv[:, 1] > 0.25) & (hsv[:, 2] > 0.15)]
    if not len(saturated):
        return 0.0
    distance = np.abs(((saturated[:, 0] - hue) + 0.5) % 1.0 - 0.5)
    return float(np.mean(distance < width))


def measure(folder: Path) -> dict:
    loaded = patterns.load(SimpleNamespace(path=folder, name=folder.name), None)
    steering = {}
    for word, hue in COLOUR_PROMPTS.items():
        own = [hue_share(patterns.paint(loaded, f"{word} abstract shapes", s, SIDE, SIDE), hue) for s in SEEDS]
        others = [
            hue_share(patterns.paint(loaded, f"{other} abstract shapes", s, SIDE, SIDE), hue)
            for other in COLOUR_PROMPTS
            if other != word
            for s in SEEDS[:3]
        ]
        steering[word] = {
            "own_prompt": round(float(np.mean(own)), 3),
            "other_prompts": round(float(np.mean(others)), 3),
        }
    same = np.array_equal(
        patterns.paint(loaded, "teal rings", 3, 96, 96), patterns.paint(loaded, "teal rings", 3, 96, 96)
    )

    def difference(a: str, b: str) -> float:
        values = [
            np.abs(
                patterns.paint(loaded, a, s, 64, 64).astype(np.float32)
                - patterns.paint(loaded, b, s, 64, 64).astype(np.float32)
            ).mean()
            for s in SEEDS[:4]
        ]
        return float(np.mean(values))

    bases = ("ocean waves", "red rings", "gold spiral", "forest grid")
    related = np.mean([difference(b, f"{b} at dawn") for b in bases])
    unrelated = np.mean([difference(b, bases[(i + 1) % len(bases)]) for i, b in enumerate(bases)])
    other_seed = np.mean(
        [
            np.abs(patterns.paint(loaded, b, 1, 64, 64).astype(float) - patterns.paint(loaded, b, 2, 64, 64)).mean()
            for b in bases
        ]
    )

    timings = {}
    for side in (512, 1024):
        started = time.perf_counter()
        patterns.paint(loaded, "a sunset over the sea, waves", 1, side, side)
        timings[f"{side}"] = round(time.perf_counter() - started, 2)
    return {
        "colour_steering": steering,
        "same_prompt_same_seed_identical": bool(same),
        "mean_pixel_difference": {
            "a prompt and the same prompt + 'at dawn', same seed": round(float(related), 1),
            "two unrelated prompts (ocean waves / red rings / gold spiral / forest grid), same seed": round(
                float(unrelated), 1
            ),
            "the same prompt, seeds 1 and 2": round(float(other_seed), 1),
        },
        "seconds": timings,
    }


def write_patterns_model(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "studio_model.json").write_text(json.dumps(MANIFEST, indent=1) + "\n")
    quality = measure(folder)
    (folder / "measurements.json").write_text(json.dumps(quality, indent=1) + "\n")
    rows = "\n".join(
        f"| {word} | {v['own_prompt']:.0%} | {v['other_prompts']:.0%} |"
        for word, v in quality["colour_steering"].items()
    )
    diffs = "\n".join(f"| {k} | {v} |" for k, v in quality["mean_pixel_difference"].items())
    card = f"""---
license: apache-2.0
pipeline_tag: text-to-image
tags: [studio-starter, procedural, cppn]
---

# Studio starter patterns

An image "model" that ships with Studio so the Image tab works on a fresh install with no
download. It is **not trained on any data and does not paint pictures of things**: it is a
compositional pattern-producing network (CPPN) — a small network from pixel coordinates to
colour — that paints **abstract patterns** at any size, in about a second on a CPU.

Honest limits first: it will not draw "a cat on a mat". For pictures of things, add a Stable
Diffusion model (Models ▸ Model manager ▸ Add folder…, or Download… when online).

## How the prompt steers it

- **Colour words and themes set the palette**: red, orange, gold, teal, navy, pink, … and
  sunset, ocean, forest, fire, ice, autumn, desert, night, neon, pastel, galaxy, …
  Every colour on the canvas comes from that palette.
- **Shape words set the structure**: stripes, rings/circles/ripples, grid/tiles/mosaic,
  spiral/swirl, waves/water/flow, mirror/symmetry/kaleidoscope/mandala, soft/calm/dreamy
  (smoother), sharp/chaotic/intricate (busier).
- **Every word** adds its own fixed direction to the network's latent input, so prompts that share
  words look alike; **the seed** draws the network's weights. The same prompt and seed give the
  same image, at any size.

Steps, guidance and scheduler mean nothing to it (the Image tab greys them out); it cannot start
from an image.

## Data and training

None. `studio_model.json` holds the network's shape (width {MANIFEST["network"]["width"]},
depth {MANIFEST["network"]["depth"]}, latent {MANIFEST["network"]["latent"]}); the weights are
drawn from the seed each time (`studio/engines/patterns.py`). Its "weights hash" in provenance
records is the sha256 of that manifest.

```
python -m studio.starter.train image      # writes this folder and measures it
```

## Measured

Colour steering — share of saturated pixels in the named colour's hue band, for "*colour*
abstract shapes", {len(SEEDS)} seeds, vs the same share in images for the other colour words:

| colour word | own prompt | other prompts |
|---|---|---|
{rows}

Same prompt and seed give the identical image: {quality["same_prompt_same_seed_identical"]}.
Mean absolute pixel difference (0–255) at the same seeds:

| prompts | difference |
|---|---|
{diffs}

Time to paint on this CPU: {quality["seconds"]["512"]} s at 512², {quality["seconds"]["1024"]} s at 1024².
"""
    (folder / "README.md").write_text(card)

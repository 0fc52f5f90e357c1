"""The pattern painter (engine format ``patterns``; ``studio-patterns`` on disk): a compositional pattern-producing
network — a small MLP from pixel coordinates to colour — whose weights come from the seed and
whose inputs, shape and palette come from the prompt. It was trained on nothing and paints
abstractions, at any size, in a fraction of a second on a CPU.

How the prompt steers it, so that the same prompt and seed give the same image and related
prompts give related images:

- colour words ("red", "teal") and themes ("sunset", "ocean", "forest") set the palette;
- shape words set the inputs and the character of the network: "stripes", "rings", "grid",
  "spiral", "waves", "mirror"/"kaleidoscope", "soft"/"calm" (smooth), "sharp"/"chaotic" (busy);
- every word adds its own fixed random weights to the network (and a direction to its latent
  input), so prompts that share words share most of their network and look alike; the seed
  draws the rest.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from studio.core.capabilities import Control, ModelInfo
from studio.core.errors import InvalidRequest, JobCancelled, ModelError
from studio.core.models import ModelSpec
from studio.core.outputs import EngineResult, GeneratedOutput
from studio.core.requests import ImageRequest
from studio.engines.base import RunContext, model_info
from studio.engines.devices import library_versions
from studio.engines.registry import PATTERNS

FORMAT = "studio-patterns"
MIN_SIDE, MAX_SIDE = 16, 4096
HINT = (
    "This starter model paints abstract patterns (it was trained on no pictures). Colour words (red, teal, gold) "
    "and themes (sunset, ocean, forest, neon) set the palette; stripes, rings, grid, spiral, waves, mirror, soft "
    "or sharp set the shapes. Add a Stable Diffusion model (Models ▸ Model manager) to paint pictures of things."
)

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (210, 38, 48), "crimson": (160, 20, 50), "scarlet": (235, 50, 35), "orange": (245, 130, 30),
    "amber": (250, 175, 40), "yellow": (250, 215, 50), "gold": (215, 170, 55), "lime": (160, 215, 60),
    "green": (50, 160, 70), "emerald": (20, 140, 90), "olive": (120, 130, 50), "mint": (150, 230, 190),
    "teal": (20, 140, 140), "cyan": (40, 200, 220), "turquoise": (50, 210, 200), "blue": (40, 90, 210),
    "azure": (60, 150, 240), "navy": (20, 30, 90), "indigo": (60, 40, 140), "purple": (120, 50, 160),
    "violet": (150, 90, 210), "lavender": (190, 170, 230), "magenta": (210, 40, 160), "pink": (240, 140, 180),
    "rose": (225, 90, 120), "white": (245, 245, 240), "cream": (245, 235, 210), "black": (15, 15, 20),
    "grey": (128, 128, 132), "gray": (128, 128, 132), "silver": (190, 195, 200), "brown": (120, 75, 40),
    "copper": (185, 100, 50), "beige": (220, 205, 170),
}  # fmt: skip
THEMES: dict[str, tuple[str, ...]] = {
    "sunset": ("navy", "purple", "rose", "orange", "amber"), "sunrise": ("lavender", "pink", "amber", "cream"),
    "ocean": ("navy", "blue", "teal", "turquoise", "white"), "sea": ("navy", "blue", "teal", "cream"),
    "forest": ("black", "emerald", "green", "olive", "lime"), "fire": ("black", "crimson", "red", "orange", "yellow"),
    "ice": ("navy", "azure", "cyan", "white"), "winter": ("navy", "silver", "white", "azure"),
    "autumn": ("brown", "copper", "orange", "amber", "olive"), "desert": ("brown", "copper", "beige", "amber"),
    "night": ("black", "navy", "indigo", "silver"), "neon": ("black", "magenta", "cyan", "lime"),
    "pastel": ("lavender", "pink", "mint", "cream"), "spring": ("lime", "pink", "yellow", "mint"),
    "earth": ("brown", "olive", "beige", "green"), "candy": ("pink", "magenta", "mint", "yellow"),
    "galaxy": ("black", "indigo", "violet", "magenta", "white"), "space": ("black", "navy", "indigo", "white"),
    "lava": ("black", "crimson", "orange"), "jungle": ("black", "emerald", "lime", "yellow"),
    "royal": ("navy", "purple", "gold"), "monochrome": ("black", "grey", "white"),
}  # fmt: skip
SHAPES: dict[str, tuple[str, ...]] = {
    "stripes": ("stripes", "striped", "lines", "bands", "linear"),
    "rings": ("rings", "ring", "circles", "circle", "circular", "ripples", "ripple", "target", "orb"),
    "grid": ("grid", "tiles", "tiled", "checker", "checkered", "mosaic", "pattern", "textile", "fabric"),
    "spiral": ("spiral", "spirals", "swirl", "swirls", "vortex", "whirl", "galaxy"),
    "waves": ("waves", "wave", "wavy", "water", "flow", "flowing", "liquid", "ocean", "sea"),
    "mirror": ("mirror", "mirrored", "symmetry", "symmetric", "symmetrical", "kaleidoscope", "mandala", "butterfly"),
    "soft": ("soft", "smooth", "calm", "gentle", "dreamy", "mist", "misty", "fog", "blur", "peaceful", "minimal"),
    "sharp": ("sharp", "chaotic", "complex", "detailed", "intricate", "glitch", "crystal", "busy", "electric"),
}


@dataclass(frozen=True)
class Design:
    """What the prompt chose: the palette (RGB 0..1), the shapes, and the latent words."""

    palette: np.ndarray
    colour_words: tuple[str, ...]
    shapes: tuple[str, ...]
    words: tuple[str, ...]
    latent: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"palette": self.colour_words, "shapes": self.shapes}


def _word_vector(word: str, size: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(f"studio-patterns:{word}".encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(size)


def _word_matrix(word: str, layer: int, shape: tuple[int, int]) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(f"studio-patterns:{word}:{layer}".encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(shape)


def _palette_from_seed(seed: int) -> np.ndarray:
    """Three to four colours around a seed-chosen hue (analogous, with one accent)."""
    import colorsys

    rng = np.random.default_rng(seed + 7919)
    base = rng.random()
    hues = [base, base + 0.08, base - 0.07, base + 0.5]
    colours = [colorsys.hsv_to_rgb(h % 1.0, 0.55 + 0.35 * rng.random(), 0.35 + 0.6 * rng.random()) for h in hues]
    colours.insert(0, (0.06, 0.06, 0.09))
    return np.array(colours, dtype=np.float32)


def read_design(prompt: str, seed: int, latent_size: int) -> Design:
    words = tuple(re.findall(r"[a-z]+", prompt.lower()))
    colour_words: list[str] = []
    for word in words:
        if word in THEMES:
            colour_words += [c for c in THEMES[word] if c not in colour_words]
        elif word in COLOURS and word not in colour_words:
            colour_words.append(word)
    shapes = tuple(name for name, synonyms in SHAPES.items() if any(w in synonyms for w in words))
    if colour_words:
        palette = np.array([COLOURS[c] for c in colour_words], dtype=np.float32) / 255.0
        if len(palette) == 1:  # one colour: from its deep shade through it to its light tint
            palette = np.stack([palette[0] * 0.25, palette[0], 0.55 * palette[0] + 0.45])
    else:
        palette = _palette_from_seed(seed)
    latent = np.zeros(latent_size)
    for word in words:
        latent += _word_vector(word, latent_size)
    if words:
        latent /= np.sqrt(len(words))
    return Design(palette, tuple(colour_words), shapes, words, latent.astype(np.float32))


@dataclass
class LoadedPatternModel:
    spec: Any
    device: Any
    width: int = 32
    depth: int = 6
    latent_size: int = 8
    notes: list[str] = field(default_factory=list)


def load(spec: Any, device: Any) -> LoadedPatternModel:
    try:
        manifest = json.loads((Path(spec.path) / "studio_model.json").read_text())
        network = manifest.get("network", {})
        return LoadedPatternModel(
            spec,
            device,
            width=int(network.get("width", 32)),
            depth=int(network.get("depth", 6)),
            latent_size=int(network.get("latent", 8)),
        )
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise ModelError(f"cannot read {spec.name}'s studio_model.json: {exc}") from exc


def check(request: ImageRequest) -> None:
    for name, side in (("width", request.width), ("height", request.height)):
        if not MIN_SIDE <= side <= MAX_SIDE:
            raise InvalidRequest(name, f"the pattern painter paints {MIN_SIDE} to {MAX_SIDE} pixels a side, not {side}")


def describe(spec: ModelSpec) -> ModelInfo:
    # A function of position, drawn at once: no denoising steps, guidance or scheduler, no negative prompt.
    reasons = {
        Control.NEGATIVE_PROMPT: "the pattern painter reads colour, theme and shape words; it has no negative prompt",
        Control.STEPS: "the pattern painter paints in one pass: there are no denoising steps",
        Control.GUIDANCE: "the pattern painter follows its words exactly: there is no guidance scale",
        Control.SCHEDULER: "the pattern painter has no sampler to choose",
        Control.IMAGE_INPUT: "the pattern painter cannot start from an image; a Stable Diffusion model can",
    }
    # A mask (repaint a region, paint beyond the frame) it can do: it paints any position exactly.
    return model_info(
        spec,
        (Control.MASK,),
        reasons,
        native_size=768,
        size_range=(MIN_SIDE, MAX_SIDE),
    )


_ACTIVATIONS = (
    np.tanh,
    np.sin,
    lambda v: np.exp(-(v**2)),  # a Gaussian bump: blobs and rings
    lambda v: np.abs(np.cos(v)),
    lambda v: v / (1 + np.abs(v)),
)


class _Network:
    """The MLP for one image: weights from the seed, scale and inputs from the design."""

    def __init__(self, loaded: LoadedPatternModel, design: Design, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.design = design
        inputs = 7 + loaded.latent_size
        scale = 1.0 if "soft" in design.shapes else 2.6 if "sharp" in design.shapes else 1.6
        depth = loaded.depth - (2 if "soft" in design.shapes else 0) + (2 if "sharp" in design.shapes else 0)
        sizes = [inputs] + [loaded.width] * max(2, depth) + [3]
        # Each weight matrix mixes one drawn from the seed with the sum of one per prompt word:
        # prompts that share words share most of their network (related prompts, related images),
        # the seed varies it, and the variance stays the same whatever the number of words.
        seed_share = 0.6 if design.words else 1.0
        word_share = np.sqrt(1 - seed_share**2)
        self.weights = []
        for layer, (a, b) in enumerate(itertools.pairwise(sizes)):
            matrix = seed_share * rng.standard_normal((a, b))
            if design.words:
                words = sum(_word_matrix(w, layer, (a, b)) for w in design.words) / np.sqrt(len(design.words))
                matrix = matrix + word_share * words
            self.weights.append((matrix * scale / np.sqrt(a)).astype(np.float32))
        self.biases = [(rng.standard_normal(b) * 0.5).astype(np.float32) for b in sizes[1:]]
        self.activations = [_ACTIVATIONS[int(i)] for i in rng.integers(0, len(_ACTIVATIONS), len(sizes) - 2)]
        self.frequency = float(2.0 + 4.0 * rng.random())

    def features(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        shapes, f = self.design.shapes, self.frequency
        if "mirror" in shapes:
            x = np.abs(x)
            if "rings" in shapes or "spiral" in shapes:
                y = np.abs(y)
        r = np.sqrt(x * x + y * y)
        angle = np.arctan2(y, x)
        gx = gy = 1.0
        gr = 1.0
        if "stripes" in shapes:
            gx, gy = 3.0, 0.3
        if "rings" in shapes:
            gr, gx, gy = 3.5, 0.4, 0.4
        base = [gx * x, gy * y, gr * r]
        if "spiral" in shapes:
            base += [np.sin(3 * angle + f * r), np.cos(3 * angle + f * r)]
        elif "mirror" in shapes:
            base += [np.cos(6 * angle), np.sin(6 * angle) * 0.3]
        else:  # fade the angle out towards the centre, where it has no value to give
            fade = np.tanh(2 * r)
            base += [np.sin(angle) * 0.5 * fade, np.cos(angle) * 0.5 * fade]
        if "grid" in shapes:
            base += [np.sin(f * np.pi * x), np.sin(f * np.pi * y)]
        elif "waves" in shapes:
            base += [np.sin(f * x + 1.5 * np.sin(2 * y)), np.sin(f * 0.7 * y + np.sin(1.3 * x))]
        elif "stripes" in shapes:
            base += [np.sin(f * 2 * x), np.zeros_like(x)]
        elif "rings" in shapes:
            base += [np.sin(f * 2 * r), np.cos(f * 2 * r)]
        else:
            base += [np.zeros_like(x), np.zeros_like(x)]
        columns = np.stack(base, axis=-1).astype(np.float32)
        latent = np.broadcast_to(self.design.latent, (len(x), len(self.design.latent)))
        return np.concatenate([columns, latent], axis=1)

    def raw(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        h = self.features(x, y)
        for weight, bias, activation in zip(self.weights[:-1], self.biases[:-1], self.activations, strict=True):
            h = activation(h @ weight + bias).astype(np.float32)
        return h @ self.weights[-1] + self.biases[-1]

    def calibrate(self, x: np.ndarray, y: np.ndarray) -> None:
        """Centre and scale the outputs on a coarse grid of the canvas, so every image spans its
        whole palette (a raw network is often nearly flat) — the same at any resolution."""
        sample = self.raw(x, y)
        self.centre = sample.mean(axis=0)
        self.spread = sample.std(axis=0) + 1e-6

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.tanh(1.3 * (self.raw(x, y) - self.centre) / self.spread)  # (pixels, 3) in -1..1


def _colour(raw: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """The first output picks a place along the palette's gradient; the second shades it; the third
    blends a little towards the next colour, so every colour on screen comes from the palette."""
    position = (raw[:, 0] * 0.5 + 0.5) * (len(palette) - 1)
    low = np.clip(np.floor(position).astype(np.int64), 0, len(palette) - 1)
    high = np.clip(low + 1, 0, len(palette) - 1)
    blend = (position - low)[:, None]
    blend = blend * blend * (3 - 2 * blend)  # smoothstep: clean bands between colours
    rgb = palette[low] * (1 - blend) + palette[high] * blend
    shade = 0.82 + 0.22 * raw[:, 1:2]
    rgb = rgb * shade
    return np.clip(rgb, 0, 1)


def paint(loaded: LoadedPatternModel, prompt: str, seed: int, width: int, height: int, cancelled=None) -> np.ndarray:
    design = read_design(prompt, seed, loaded.latent_size)
    network = _Network(loaded, design, seed)
    aspect = width / height
    xs = np.linspace(-aspect, aspect, width, dtype=np.float32) if aspect >= 1 else np.linspace(-1, 1, width)
    ys = np.linspace(-1, 1, height, dtype=np.float32) if aspect >= 1 else np.linspace(-1 / aspect, 1 / aspect, height)
    coarse_x, coarse_y = np.meshgrid(
        np.linspace(xs[0], xs[-1], 64, dtype=np.float32), np.linspace(ys[0], ys[-1], 64, dtype=np.float32)
    )
    network.calibrate(coarse_x.ravel(), coarse_y.ravel())
    grid_x, grid_y = np.meshgrid(xs.astype(np.float32), ys.astype(np.float32))
    flat_x, flat_y = grid_x.ravel(), grid_y.ravel()
    out = np.empty((flat_x.size, 3), dtype=np.float32)
    chunk = 1 << 16  # bounded memory at any size
    for start in range(0, flat_x.size, chunk):
        if cancelled is not None and cancelled():
            raise JobCancelled()
        stop = start + chunk
        out[start:stop] = _colour(network(flat_x[start:stop], flat_y[start:stop]), design.palette)
    return np.round(out.reshape(height, width, 3) * 255).astype(np.uint8)


def generate(loaded: LoadedPatternModel, request: ImageRequest, ctx: RunContext, versions: dict) -> EngineResult:
    base_seed = request.seed if request.seed is not None else 0
    outputs = []
    started = time.perf_counter()
    total = request.count * 2
    for index in range(request.count):
        seed = base_seed + index
        # A quick small painting first, as the preview; then the full size.
        scale = max(1, max(request.width, request.height) // 128)
        preview = paint(loaded, request.prompt, seed, max(8, request.width // scale), max(8, request.height // scale))
        ctx.preview(preview, index * 2 + 1, total)
        ctx.progress(index * 2 + 1, total)
        image = paint(loaded, request.prompt, seed, request.width, request.height, lambda: ctx.cancelled)
        ctx.progress(index * 2 + 2, total)
        outputs.append(
            GeneratedOutput("image", image, {"index": index, "width": request.width, "height": request.height})
        )
    design = read_design(request.prompt, base_seed, loaded.latent_size)
    runtime = {
        **loaded.device.to_dict(),
        "pipeline": "StudioPatternPainter",
        "design": design.to_dict(),
        "seconds": round(time.perf_counter() - started, 3),
        "versions": versions,
    }
    return EngineResult(outputs, loaded.spec.provenance(), runtime)


class PatternEngine:
    """The ``patterns`` format: nothing to load but the manifest; each image is drawn anew."""

    format = PATTERNS
    kind = "image"

    def check(self, spec: ModelSpec, request: ImageRequest) -> None:
        from studio.engines import patterns_edit

        if request.kind == "upscale":
            patterns_edit.check(request)
            return
        check(request)
        patterns_edit.check(request)

    def describe(self, spec: ModelSpec) -> ModelInfo:
        info = describe(spec)
        return info if info.hint else replace(info, hint=HINT)

    def load(self, spec: ModelSpec, device: Any) -> LoadedPatternModel:
        return load(spec, device)

    def generate(self, loaded: LoadedPatternModel, request: ImageRequest, ctx: RunContext) -> EngineResult:
        from studio.core.edits import is_edit
        from studio.engines import patterns_edit

        if request.kind == "upscale":
            return patterns_edit.generate_upscale(loaded, request, ctx, library_versions())
        if is_edit(request):
            return patterns_edit.generate_edit(loaded, request, ctx, library_versions())
        if request.hires_scale > 1:  # its "upscale" is the same painting at the larger size
            result = generate(loaded, patterns_edit.hires_request(request), ctx, library_versions())
            hires = {"first_pass": [request.width, request.height], "how": "painted again at the larger size"}
            return replace(result, runtime={**result.runtime, "hires": hires})
        return generate(loaded, request, ctx, library_versions())

    def unload(self, loaded: LoadedPatternModel) -> None:
        pass  # nothing held: the network is drawn anew for each image

"""Editing a clip in place, in plain numpy: the region arithmetic and the final composite.

A model that repaints a region decodes the whole clip again, and a decoder never gives back the
source exactly. So the source is put back afterwards: every sample outside the region is the
source's own, and inside the region the new audio takes over through a short equal-gain
(raised-cosine) crossfade at each edge that touches kept audio (an edge at the clip's start or end
needs none). Equal gain, not equal power: the new audio is made to continue the source, so the
two are correlated at the join, and equal power would swell there (by up to 3 dB; a DC offset or a
held bass note shows it as a bump).
Extending is the same composite over a padded source; the region starts a crossfade's length
inside the source so the join is blended, not cut.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from studio.core.errors import InvalidRequest

# Long enough to hide a join, short enough to keep almost all of the source untouched.
CROSSFADE_S = 0.05


@dataclass(frozen=True)
class Region:
    """A half-open span of frames ``[start, end)`` inside a clip of ``length`` frames."""

    start: int
    end: int
    length: int

    @property
    def frames(self) -> int:
        return self.end - self.start

    def seconds(self, rate: int) -> tuple[float, float]:
        return (round(self.start / rate, 4), round(self.end / rate, 4))


def region_of(start_s: float, end_s: float, length: int, rate: int) -> Region:
    """The frames of ``[start_s, end_s)`` in a clip of ``length`` frames; refuses an empty region or
    one outside the clip, naming the clip's length."""
    clip_s = length / rate
    if end_s <= start_s:
        raise InvalidRequest("repaint_end", f"the region to repaint is empty ({start_s:g}–{end_s:g} s)")
    if start_s < 0 or start_s >= clip_s:
        raise InvalidRequest(
            "repaint_start", f"the region starts at {start_s:g} s, outside the clip (it is {clip_s:.2f} s long)"
        )
    if end_s > clip_s + 0.5 / rate:
        raise InvalidRequest(
            "repaint_end", f"the region ends at {end_s:g} s, past the end of the clip (it is {clip_s:.2f} s long)"
        )
    start, end = round(start_s * rate), min(length, round(end_s * rate))
    if end <= start:
        raise InvalidRequest("repaint_end", "the region to repaint is shorter than one sample")
    return Region(start, end, length)


def pad_for_extension(source: np.ndarray, left: int, right: int) -> np.ndarray:
    """``source`` (frames, channels) with ``left`` and ``right`` frames of silence around it."""
    channels = source.shape[1]
    return np.concatenate(
        [np.zeros((left, channels), np.float32), source.astype(np.float32), np.zeros((right, channels), np.float32)]
    )


def extension_regions(source_frames: int, left: int, right: int, fade: int) -> list[Region]:
    """The regions to generate when ``left``/``right`` frames are added: each new side plus a
    crossfade's length of the source next to it (so the join is blended)."""
    length = left + source_frames + right
    fade = min(fade, source_frames // 4)
    regions = []
    if left:
        regions.append(Region(0, left + fade, length))
    if right:
        regions.append(Region(left + source_frames - fade, length, length))
    return regions


def crossfade_frames(region: Region, rate: int, crossfade_s: float = CROSSFADE_S) -> int:
    """The crossfade at each inner edge of ``region``: ``crossfade_s``, at most a quarter of it."""
    return max(0, min(round(crossfade_s * rate), region.frames // 4))


def composite(source: np.ndarray, generated: np.ndarray, region: Region, fade: int) -> np.ndarray:
    """``source`` with ``region`` taken from ``generated`` (both (frames, channels), same shape).

    Outside the region the result *is* the source, sample for sample. Inside, an equal-gain
    crossfade of ``fade`` frames at each edge that has kept audio beside it (not at the clip's
    own start or end) turns the source into the new audio.
    """
    if source.shape != generated.shape:
        raise ValueError(f"source {source.shape} and generated {generated.shape} differ in shape")
    out = np.array(source, dtype=np.float32, copy=True)
    new = np.asarray(generated[region.start : region.end], dtype=np.float32)
    weight = np.ones(region.frames, dtype=np.float32)
    if fade:
        ramp = np.sin(np.linspace(0.0, np.pi / 2, fade + 2, dtype=np.float32)[1:-1]) ** 2
        if region.start > 0:
            weight[:fade] = ramp
        if region.end < region.length:
            weight[-fade:] = np.minimum(weight[-fade:], ramp[::-1])
    old = out[region.start : region.end]
    # Equal gain: the source fades as cos², the new audio rises as sin²; together always one.
    out[region.start : region.end] = old * (1.0 - weight)[:, None] + new * weight[:, None]
    return out


def match_level(generated: np.ndarray, source: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """``generated`` scaled so that, where ``kept`` is true, it is as loud (RMS) as ``source``.

    The model normalises its whole decoded clip to a peak level of its own, so without this the
    new region could be louder or softer than the source around it."""
    if not kept.any():
        return generated
    source_rms = float(np.sqrt(np.mean(np.square(source[kept]))))
    generated_rms = float(np.sqrt(np.mean(np.square(generated[kept]))))
    if source_rms <= 1e-6 or generated_rms <= 1e-6:
        return generated
    scaled = generated * (source_rms / generated_rms)
    peak = float(np.max(np.abs(scaled))) if scaled.size else 0.0
    return (scaled / peak if peak > 1.0 else scaled).astype(np.float32)


def kept_mask(length: int, regions: list[Region]) -> np.ndarray:
    """True for every frame outside all of ``regions``."""
    mask = np.ones(length, dtype=bool)
    for region in regions:
        mask[region.start : region.end] = False
    return mask

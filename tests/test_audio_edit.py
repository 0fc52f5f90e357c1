"""The composite behind every edit on the waveform, in plain numpy."""

import numpy as np
import pytest

from studio.core.errors import InvalidRequest
from studio.engines import audio_edit
from studio.engines.audio_edit import Region

RATE = 1000


def _pair(frames=1000, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.5, 0.5, (frames, 2)).astype(np.float32), rng.uniform(-0.5, 0.5, (frames, 2)).astype(
        np.float32
    )


def test_outside_the_region_is_the_source_sample_for_sample():
    source, generated = _pair()
    region = audio_edit.region_of(0.3, 0.6, len(source), RATE)
    fade = audio_edit.crossfade_frames(region, RATE)
    out = audio_edit.composite(source, generated, region, fade)
    assert np.array_equal(out[:300], source[:300]) and np.array_equal(out[600:], source[600:])
    assert np.array_equal(out[300 + fade : 600 - fade], generated[300 + fade : 600 - fade])
    blend = out[300 : 300 + fade]
    assert not np.array_equal(blend, source[300 : 300 + fade]) and not np.array_equal(
        blend, generated[300 : 300 + fade]
    )


def test_the_crossfade_is_equal_gain_and_rises_from_the_source():
    source = np.ones((1000, 1), np.float32)
    generated = np.ones((1000, 1), np.float32)
    region = Region(200, 800, 1000)
    out = audio_edit.composite(source, -generated, region, 50)
    # opposite signs: the weights go from all source to all new audio through the join
    assert out[200, 0] > 0.99 and out[249, 0] < -0.99 and np.all(np.diff(out[200:250, 0]) < 0)
    same = audio_edit.composite(source * 0.3, generated * 0.3, region, 50)
    # the new audio continues the source: where they agree the join is seamless, with no swell
    assert np.allclose(same, 0.3, atol=1e-6)


def test_an_edge_at_the_clip_start_or_end_needs_no_crossfade():
    source, generated = _pair()
    out = audio_edit.composite(source, generated, Region(0, 400, 1000), 50)
    assert np.array_equal(out[:350], generated[:350]) and np.array_equal(out[400:], source[400:])
    out = audio_edit.composite(source, generated, Region(700, 1000, 1000), 50)
    assert np.array_equal(out[750:], generated[750:]) and np.array_equal(out[:700], source[:700])


def test_the_crossfade_is_at_most_a_quarter_of_a_short_region():
    assert audio_edit.crossfade_frames(Region(100, 120, 1000), RATE) == 5
    assert audio_edit.crossfade_frames(Region(0, 1000, 1000), 48000) == 250  # 50 ms at most


@pytest.mark.parametrize(
    ("start", "end", "field", "words"),
    [
        (0.5, 0.5, "repaint_end", "empty"),
        (0.7, 0.2, "repaint_end", "empty"),
        (1.5, 1.8, "repaint_start", "outside the clip"),
        (-0.1, 0.2, "repaint_start", "outside the clip"),
        (0.5, 1.2, "repaint_end", "past the end of the clip (it is 1.00 s long)"),
    ],
)
def test_regions_outside_the_clip_or_empty_are_refused(start, end, field, words):
    with pytest.raises(InvalidRequest) as caught:
        audio_edit.region_of(start, end, 1000, RATE)
    assert caught.value.field == field and words in str(caught.value)


def test_extension_pads_with_silence_and_regions_reach_a_fade_into_the_source():
    source, _ = _pair(400)
    padded = audio_edit.pad_for_extension(source, 100, 200)
    assert len(padded) == 700 and np.array_equal(padded[100:500], source)
    assert not padded[:100].any() and not padded[500:].any()
    left, right = audio_edit.extension_regions(400, 100, 200, 20)
    assert (left.start, left.end) == (0, 120) and (right.start, right.end) == (480, 700)
    assert audio_edit.extension_regions(400, 0, 200, 20) == [Region(380, 600, 600)]


def test_level_matching_follows_the_kept_part_and_never_clips():
    source, generated = _pair()
    kept = np.ones(1000, bool)
    kept[300:600] = False
    louder = audio_edit.match_level(generated * 3, source, kept)
    rms = lambda a: float(np.sqrt(np.mean(np.square(a))))  # noqa: E731
    assert rms(louder[kept]) == pytest.approx(rms(source[kept]), rel=1e-4)
    assert np.max(np.abs(audio_edit.match_level(generated * 0.001, source * 40, kept))) <= 1.0

"""Turning notes into sound without any sound library: a small synthesiser (plucked strings by
Karplus–Strong, a breathy flute and a bowed fiddle by additive harmonics), a soft accompaniment,
and a Standard MIDI File writer so a tune can go on into a DAW.

When FluidSynth and a General MIDI soundfont are installed (Debian: ``fluidsynth``,
``fluid-soundfont-gm``) ``render_with_fluidsynth`` plays the MIDI file with real instrument
samples instead; Studio never needs it.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 32_000
SOUNDFONTS = (
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    Path("/usr/share/sounds/sf2/default-GM.sf2"),
    Path("/usr/share/soundfonts/default.sf2"),
)
# General MIDI programs (0-based) for each voice, used in the MIDI file and by FluidSynth.
GM_PROGRAMS = {"harp": 46, "guitar": 24, "piano": 0, "flute": 73, "fiddle": 40, "whistle": 78, "bells": 14}
ACCOMPANIMENT_PROGRAM = 0


@dataclass(frozen=True)
class TimedNote:
    pitch: int  # MIDI number
    start_s: float
    length_s: float
    velocity: float = 0.8  # 0..1


def midi_frequency(pitch: int) -> float:
    return 440.0 * 2 ** ((pitch - 69) / 12)


def _envelope(n: int, attack: int, release: int) -> np.ndarray:
    env = np.ones(n, dtype=np.float32)
    attack, release = min(attack, n), min(release, n)
    if attack:
        env[:attack] = np.linspace(0, 1, attack, dtype=np.float32)
    if release:
        env[n - release :] *= np.linspace(1, 0, release, dtype=np.float32)
    return env


def pluck(frequency: float, seconds: float, rng: np.random.Generator, brightness: float = 0.5) -> np.ndarray:
    """Karplus–Strong: a noise burst in a delay line of one period, averaged on each pass.
    Computed a period at a time, so each pass is one vectorised step."""
    n = max(1, int(seconds * SAMPLE_RATE))
    period = max(2, round(SAMPLE_RATE / frequency))
    line = rng.uniform(-1, 1, period).astype(np.float32)
    # A softer pluck: low-pass the initial burst (less brightness, rounder tone).
    for _ in range(int((1 - brightness) * 4)):
        line = 0.5 * (line + np.roll(line, 1))
    decay = 0.996 if frequency < 300 else 0.993
    out = np.empty(n + period, dtype=np.float32)
    filled = 0
    while filled < n:
        out[filled : filled + period] = line
        line = decay * 0.5 * (line + np.roll(line, -1))
        filled += period
    return out[:n] * _envelope(n, 16, min(n, 400))


def additive(
    frequency: float, seconds: float, rng: np.random.Generator, partials: tuple[float, ...], breath: float
) -> np.ndarray:
    """A sustained tone: harmonics with the given weights, gentle vibrato, a little noise."""
    n = max(1, int(seconds * SAMPLE_RATE))
    t = np.arange(n, dtype=np.float32) / SAMPLE_RATE
    vibrato = 1 + 0.004 * np.sin(2 * np.pi * 5.2 * t) * np.clip(t / 0.25, 0, 1)
    phase = 2 * np.pi * frequency * np.cumsum(vibrato) / SAMPLE_RATE
    harmonics = [w * np.sin((k + 1) * phase) for k, w in enumerate(partials) if (k + 1) * frequency < SAMPLE_RATE / 2]
    tone = np.asarray(sum(harmonics), dtype=np.float32) / max(sum(partials), 1e-6)
    if breath:
        noise = np.convolve(rng.normal(0, 1, n).astype(np.float32), np.ones(8, dtype=np.float32) / 8, mode="same")
        tone = tone + breath * noise
    return tone * _envelope(n, int(0.03 * SAMPLE_RATE), int(0.05 * SAMPLE_RATE))


def voice(name: str, pitch: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    frequency = midi_frequency(pitch)
    if name in {"flute", "whistle"}:
        return additive(frequency, seconds, rng, (1.0, 0.25, 0.08, 0.03), breath=0.03)
    if name == "fiddle":
        return additive(frequency, seconds, rng, (1.0, 0.6, 0.45, 0.3, 0.22, 0.15, 0.1, 0.07), breath=0.01)
    if name == "bells":
        n = max(1, int(seconds * SAMPLE_RATE))
        t = np.arange(n, dtype=np.float32) / SAMPLE_RATE
        tone = np.sin(2 * np.pi * frequency * t) + 0.4 * np.sin(2 * np.pi * frequency * 2.76 * t)
        return (tone * np.exp(-3 * t)).astype(np.float32) * _envelope(n, 8, min(n, 400))
    # Plucked voices ring on past the written length (up to a second): that is how they sound.
    ring = seconds + (0.9 if name in ("harp", "guitar", "piano") else 0.2)
    return pluck(frequency, ring, rng, brightness=0.8 if name == "piano" else 0.5)


def render(
    notes: list[TimedNote], instrument: str, seed: int, accompaniment: list[TimedNote] | None = None
) -> np.ndarray:
    """Mono float32 audio of the melody (and a softer accompaniment), peak at about −1 dBFS."""
    rng = np.random.default_rng(seed)
    end = max((n.start_s + n.length_s for n in [*notes, *(accompaniment or [])]), default=0.0)
    out = np.zeros(int((end + 1.2) * SAMPLE_RATE), dtype=np.float32)

    def add(note: TimedNote, name: str, gain: float) -> None:
        sound = voice(name, note.pitch, note.length_s, rng) * (gain * note.velocity)
        start = int(note.start_s * SAMPLE_RATE)
        stop = min(len(out), start + len(sound))
        out[start:stop] += sound[: stop - start]

    for note in notes:
        add(note, instrument, 1.0)
    for note in accompaniment or []:
        add(note, "harp" if instrument != "harp" else "guitar", 0.35)
    last_sound = int((end + 1.0) * SAMPLE_RATE)
    out = out[: max(last_sound, 1)]
    fade = min(len(out), int(0.3 * SAMPLE_RATE))
    out[len(out) - fade :] *= np.linspace(1, 0, fade, dtype=np.float32)
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    if peak > 0:
        out *= 10 ** (-1 / 20) / peak
    return out.reshape(-1, 1)


# -- MIDI --------------------------------------------------------------------------------------


def _variable_length(value: int) -> bytes:
    chunks = [value & 0x7F]
    value >>= 7
    while value:
        chunks.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(chunks))


def midi_file(
    notes: list[TimedNote],
    *,
    tempo_qpm: float,
    meter: tuple[int, int],
    instrument: str,
    accompaniment: list[TimedNote] | None = None,
    title: str = "",
) -> bytes:
    """A format-1 Standard MIDI File: a tempo track, the melody on channel 1, the accompaniment on 2."""
    ticks = 480
    per_second = ticks * tempo_qpm / 60

    def track(events: list[tuple[int, bytes]]) -> bytes:
        events.sort(key=lambda e: e[0])
        body, now = bytearray(), 0
        for tick, message in events:
            body += _variable_length(tick - now) + message
            now = tick
        body += b"\x00\xff\x2f\x00"
        return b"MTrk" + struct.pack(">I", len(body)) + bytes(body)

    microseconds = int(60_000_000 / tempo_qpm)
    denominator_power = {1: 0, 2: 1, 4: 2, 8: 3, 16: 4}.get(meter[1], 2)
    conductor: list[tuple[int, bytes]] = [
        (0, b"\xff\x51\x03" + microseconds.to_bytes(3, "big")),
        (0, bytes([0xFF, 0x58, 0x04, meter[0], denominator_power, 24, 8])),
    ]
    if title:
        name = title.encode("utf-8")[:120]
        conductor.append((0, b"\xff\x03" + _variable_length(len(name)) + name))

    def notes_track(selected: list[TimedNote], channel: int, program: int) -> bytes:
        events: list[tuple[int, bytes]] = [(0, bytes([0xC0 | channel, program]))]
        for note in selected:
            on = round(note.start_s * per_second)
            off = max(on + 1, round((note.start_s + note.length_s) * per_second) - 1)
            velocity = max(1, min(127, int(note.velocity * 100)))
            events.append((on, bytes([0x90 | channel, note.pitch, velocity])))
            events.append((off, bytes([0x80 | channel, note.pitch, 0])))
        return track(events)

    tracks = [track(conductor), notes_track(notes, 0, GM_PROGRAMS.get(instrument, 46))]
    if accompaniment:
        tracks.append(notes_track(accompaniment, 1, ACCOMPANIMENT_PROGRAM))
    header = b"MThd" + struct.pack(">IHHH", 6, 1, len(tracks), ticks)
    return header + b"".join(tracks)


def soundfont() -> Path | None:
    return next((p for p in SOUNDFONTS if p.is_file()), None)


def render_with_fluidsynth(midi: bytes, seconds: float) -> np.ndarray | None:
    """The MIDI file played by FluidSynth with a General MIDI soundfont, or None when either is
    missing or it fails (the built-in synthesiser is used then)."""
    program, font = shutil.which("fluidsynth"), soundfont()
    if program is None or font is None:
        return None
    import soundfile

    with tempfile.TemporaryDirectory(prefix="studio-fluidsynth-") as folder:
        source, target = Path(folder) / "tune.mid", Path(folder) / "tune.wav"
        source.write_bytes(midi)
        try:
            subprocess.run(
                [program, "-ni", "-q", "-g", "0.6", "-r", str(SAMPLE_RATE), "-F", str(target), str(font), str(source)],
                check=True,
                capture_output=True,
                timeout=max(30, 4 * seconds),
            )
            audio, rate = soundfile.read(target, dtype="float32", always_2d=True)
        except (OSError, subprocess.SubprocessError, RuntimeError):
            return None
    if rate != SAMPLE_RATE or not audio.size:
        return None
    audio = audio.mean(axis=1, keepdims=True)
    peak = float(np.max(np.abs(audio)))
    return audio * (10 ** (-1 / 20) / peak) if peak > 0 else None

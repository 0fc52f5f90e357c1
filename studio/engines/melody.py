"""Melody models (engine format ``melody``; ``studio-melody`` on disk): a causal language model over melody tokens
(``melody_tokens``), sampled under the rules of the meter, then played by ``synth`` and written
as a MIDI file too.

What a prompt can honestly steer here is what the tokens know: the tune type and meter ("jig",
"waltz", "6/8"), the mode ("sad" → minor), the tempo ("slow"), plus what Studio does around the
model — the instrument ("flute"), the key ("in D"), and whether a soft accompaniment plays.
The length comes from the requested duration.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from studio.core.capabilities import Control, ModelInfo
from studio.core.errors import JobCancelled, ModelError
from studio.core.models import ModelSpec
from studio.core.outputs import EngineResult, GeneratedOutput
from studio.core.requests import MusicRequest
from studio.engines.audio import fit_length
from studio.engines.base import RunContext, model_info
from studio.engines.devices import library_versions
from studio.engines.melody_tokens import MelodyVocabulary, Note, bar_length, decode_notes
from studio.engines.registry import MELODY
from studio.engines.synth import GM_PROGRAMS, SAMPLE_RATE, TimedNote, midi_file, render, render_with_fluidsynth

FORMAT = "studio-melody"
HINT = (
    "This starter model writes folk melodies note by note. Words it understands: reel, jig, hornpipe, waltz, "
    "air, march, polka; sad or happy; slow or lively; flute, fiddle, harp, guitar, piano, bells; 'in D'. "
    "Add a MusicGen or Stable Audio model (Models ▸ Model manager) for recorded-sounding music in any style."
)

# Quarter notes per minute at which each tune type is played (a session's pace, a little eased).
TYPE_TEMPO = {
    "reel": 180, "jig": 165, "slipjig": 165, "slide": 180, "hornpipe": 140, "strathspey": 120, "polka": 200,
    "waltz": 150, "march": 120, "air": 76, "fling": 130, "clog": 140, "setdance": 120, "other": 120,
}  # fmt: skip
TYPE_METER = {
    "reel": "2/2", "jig": "6/8", "slipjig": "9/8", "slide": "12/8", "hornpipe": "4/4", "strathspey": "4/4",
    "polka": "2/4", "waltz": "3/4", "march": "2/4", "air": "3/4", "fling": "4/4", "clog": "4/4",
    "setdance": "6/8", "other": "4/4",
}  # fmt: skip
TEMPO_FACTOR = {"slow": 0.6, "moderate": 0.85, "lively": 1.1, "none": 1.0}
INSTRUMENT_CENTRE = {"harp": 67, "guitar": 60, "piano": 67, "flute": 76, "whistle": 79, "fiddle": 72, "bells": 79}
_WORDS = {
    "type": [
        (r"slip ?jigs?", "slipjig"), (r"jigs?", "jig"), (r"reels?", "reel"), (r"hornpipes?", "hornpipe"),
        (r"strathspeys?", "strathspey"), (r"polkas?", "polka"), (r"waltz(es)?", "waltz"), (r"march(es)?", "march"),
        (r"airs?|ballad|lament|lullaby|song", "air"), (r"slides?", "slide"), (r"flings?", "fling"), (r"clogs?", "clog"),
        (r"dance", "reel"),
    ],
    "mode": [
        (r"minor|sad|melanchol\w*|dark|lament|mournful|gloomy|sorrow\w*|haunting", "minor"),
        (r"dorian|modal|mysterious|ancient", "dorian"), (r"mixolydian", "mixolydian"),
        (r"major|happy|bright|cheerful|joyful|sunny", "major"),
    ],
    "tempo": [
        (r"slow(ly)?|gentle|calm|peaceful|lullaby|relaxed|quiet", "slow"), (r"moderate|medium|steady", "moderate"),
        (r"fast|quick|lively|energetic|upbeat|brisk|dance", "lively"),
    ],
    "instrument": [
        (r"flutes?", "flute"), (r"(tin )?whistles?", "whistle"), (r"fiddles?|violins?|strings", "fiddle"),
        (r"harps?", "harp"), (r"guitars?|lutes?", "guitar"), (r"pianos?|keys", "piano"),
        (r"bells?|music ?box|chimes?|glockenspiel", "bells"),
    ],
}  # fmt: skip
_KEY = re.compile(r"\bin ([A-G])( ?(#|sharp|b|flat))?( ?(minor|major|m\b))?", re.IGNORECASE)
_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


@dataclass(frozen=True)
class TunePlan:
    """What the prompt asked for, as the model's header and Studio's playing choices."""

    tune_type: str
    meter: str
    mode: str
    tempo: str
    instrument: str
    tonic: int  # pitch class the tune is played in
    accompaniment: bool
    qpm: float

    def header_tokens(self) -> list[str]:
        return ["<bos>", f"M:{self.meter}", f"K:{self.mode}", f"R:{self.tune_type}", f"Q:{self.tempo}"]

    def seconds_per_bar(self) -> float:
        return float(bar_length(self.meter)) * 60.0 / self.qpm


def _first(kind: str, text: str) -> str | None:
    for pattern, value in _WORDS[kind]:
        if re.search(rf"\b({pattern})\b", text):
            return value
    return None


def read_prompt(prompt: str) -> TunePlan:
    text = prompt.lower()
    tune_type = _first("type", text) or "other"
    meter_match = re.search(r"\b(2/4|3/4|4/4|2/2|6/8|9/8|12/8|3/2)\b", text)
    meter = meter_match.group(1) if meter_match else TYPE_METER[tune_type]
    if tune_type == "other" and meter_match:
        tune_type = {"6/8": "jig", "9/8": "slipjig", "3/4": "waltz", "2/2": "reel"}.get(meter, "other")
    mode = _first("mode", text) or "major"
    key = _KEY.search(prompt)
    tonic = 2 if _first("instrument", text) in ("flute", "whistle", "fiddle") else 7  # D suits them, else G
    if key:
        tonic = _PITCH_CLASS[key.group(1).upper()]
        accidental = (key.group(3) or "").lower()
        tonic = (tonic + (1 if accidental in ("#", "sharp") else -1 if accidental in ("b", "flat") else 0)) % 12
        if (key.group(5) or "").lower() in ("minor", "m"):
            mode = "minor"
    tempo = _first("tempo", text) or ("slow" if tune_type == "air" else "none")
    instrument = _first("instrument", text) or "harp"
    accompaniment = not re.search(r"\b(solo|alone|unaccompanied|bare)\b", text)
    qpm = max(60.0, TYPE_TEMPO[tune_type] * TEMPO_FACTOR[tempo])  # a slow air is slow already
    return TunePlan(tune_type, meter, mode, tempo, instrument, tonic, accompaniment, qpm)


@dataclass
class LoadedMelodyModel:
    spec: Any
    device: Any
    model: Any
    vocab: MelodyVocabulary
    max_positions: int
    notes: list[str] = field(default_factory=list)


def load(spec: Any, device: Any) -> LoadedMelodyModel:
    import json

    from transformers import LlamaForCausalLM

    manifest = json.loads((spec.path / "studio_model.json").read_text())
    vocab_file = spec.path / str(manifest.get("vocabulary", "melody_vocab.json"))
    if not vocab_file.is_file():
        raise ModelError(f"{spec.name} has no melody vocabulary ({vocab_file.name} is missing)")
    vocab = MelodyVocabulary.load(vocab_file)
    model = LlamaForCausalLM.from_pretrained(
        spec.path, local_files_only=True, use_safetensors=True, dtype=torch.float32
    )
    if model.config.vocab_size != len(vocab):
        raise ModelError(f"{spec.name}: the vocabulary has {len(vocab)} tokens but the model {model.config.vocab_size}")
    model.to(device.device).eval()
    return LoadedMelodyModel(spec, device, model, vocab, int(model.config.max_position_embeddings))


_UNFILLABLE = Fraction(1, 12)
_CADENCE_ROOM = Fraction(1, 3)  # below this much room in the last bar, only the tonic may start


class _Rules:
    """Which tokens may come next, so every bar has the meter's length: after a pitch or rest
    only a duration that fits the bar; a full bar must close; the tune ends on a bar line once it
    has enough bars. A cadence rule ends it on the tonic: in the last bar, only a tonic note may
    fill the bar, and near its end only tonic notes may start."""

    def __init__(self, vocab: MelodyVocabulary, meter: str, bars_wanted: int, constrained: bool = True) -> None:
        self.vocab = vocab
        self.constrained = constrained
        self.free = [i for i, t in enumerate(vocab.tokens) if t not in ("<pad>", "<bos>", "<eos>") and t[1] != ":"]
        self.free += vocab.ids_with_prefix("P:") + vocab.ids_with_prefix("D:")
        self.bar = bar_length(meter)
        self.bars_wanted = bars_wanted
        self.notes = [*vocab.ids_with_prefix("P:"), vocab.id("<rest>")]
        # The tune is in C while sampling, so the tonic is every C.
        self.tonics = [i for i in vocab.ids_with_prefix("P:") if (vocab.pitch_of(i) or 0) % 12 == 0]
        self.pending_tonic = False
        self.durations = {i: vocab.duration_of(i) for i in vocab.ids_with_prefix("D:")}
        self.bar_id, self.eos_id = vocab.id("<bar>"), vocab.id("<eos>")
        self.position = Fraction(0)
        self.bars_done = 0
        self.expect_duration = False

    def allowed(self) -> list[int]:
        if self.bars_done >= self.bars_wanted:
            return [self.eos_id]
        if not self.constrained:  # only for measuring how well the model keeps time by itself
            return self.free
        if self.expect_duration:
            # Any room of two twelfths of a quarter or more can be filled with the duration classes
            # (1/6 and 1/4 make every larger multiple of 1/12): never leave exactly one twelfth.
            room = self.bar - self.position
            last_bar_filler = self.bars_done == self.bars_wanted - 1 and not self.pending_tonic
            return [
                i
                for i, d in self.durations.items()
                if d is not None
                and d <= room
                and room - d != _UNFILLABLE
                and not (last_bar_filler and room - d < _CADENCE_ROOM / 2)
            ]
        if self.position >= self.bar:
            return [self.bar_id]
        if self.bars_done == self.bars_wanted - 1 and self.bar - self.position < _CADENCE_ROOM:
            return list(self.tonics)
        allowed = list(self.notes)
        if self.bars_done == 0 and self.position > 0:
            allowed.append(self.bar_id)  # a pick-up bar may be short
        return allowed

    def advance(self, token_id: int) -> None:
        if token_id == self.bar_id:
            self.position, self.bars_done = Fraction(0), self.bars_done + 1
        elif token_id in self.durations:
            self.position += self.durations[token_id] or 0
            self.expect_duration = False
        elif token_id in self.notes:
            self.expect_duration = True
            self.pending_tonic = token_id in self.tonics


def sample_tune(
    loaded: LoadedMelodyModel,
    plan: TunePlan,
    bars: int,
    *,
    seed: int,
    temperature: float,
    top_k: int,
    ctx: RunContext | None = None,
    constrained: bool = True,
) -> list[int]:
    """Token ids of one tune: the header, then notes sampled under ``_Rules``."""
    vocab, model = loaded.vocab, loaded.model
    ids = [vocab.id(t) for t in plan.header_tokens()]
    header_len = len(ids)
    rules = _Rules(vocab, plan.meter, bars, constrained)
    generator = torch.Generator().manual_seed(seed)
    temperature = max(temperature, 0.05)
    device = next(model.parameters()).device
    # ``context`` is what the model sees: the whole tune until it nears the model's length,
    # then the header and the latest bars (the cache is rebuilt from them).
    context, cache, fed = list(ids), None, 0
    # transformers renamed ``past_key_values`` to ``cache`` during 5.x; use what this one takes.
    cache_argument = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    with torch.inference_mode():
        while True:
            if len(context) >= loaded.max_positions - 1:
                cut = len(context) - loaded.max_positions // 2
                while context[cut] != rules.bar_id:
                    cut += 1
                context, cache, fed = context[:header_len] + context[cut + 1 :], None, 0
            step_input = torch.tensor([context[fed:]], device=device)
            out = model(input_ids=step_input, use_cache=True, **{cache_argument: cache})
            cache, fed = getattr(out, cache_argument), len(context)
            allowed = rules.allowed()
            if allowed == [rules.eos_id]:
                ids.append(rules.eos_id)
                break
            logits = out.logits[0, -1].float().cpu()
            masked = torch.full_like(logits, float("-inf"))
            masked[allowed] = logits[allowed] / temperature
            if 0 < top_k < len(allowed):
                threshold = torch.topk(masked, top_k).values[-1]
                masked[masked < threshold] = float("-inf")
            token = int(torch.multinomial(torch.softmax(masked, dim=-1), 1, generator=generator))
            before = rules.bars_done
            rules.advance(token)
            ids.append(token)
            context.append(token)
            if ctx is not None and rules.bars_done != before:
                if ctx.cancelled:
                    raise JobCancelled()
                ctx.progress(rules.bars_done, bars)
    return ids


def _transpose(notes: list[Note], plan: TunePlan) -> int:
    """Semitones from the model's C to the planned key, in the octave that centres the tune on
    the instrument's comfortable range."""
    pitches = [n.pitch for n in notes if n.pitch is not None]
    median = float(np.median(pitches)) if pitches else 72.0
    centre = INSTRUMENT_CENTRE.get(plan.instrument, 67)
    return min((plan.tonic + 12 * k for k in range(-4, 4)), key=lambda s: abs(median + s - centre))


_CHORDS_MAJOR = (0, 5, 7, 9)  # I, IV, V, vi
_CHORDS_MINOR = (0, 5, 7, 8, 10)  # i, iv, v, VI, VII


def _chord_fit(weights: np.ndarray, root: int, minor_key: bool) -> float:
    """How long the melody sounds the tones of the triad on ``root`` (scale degrees of the key)."""
    minor = (root in (0, 5, 7) and minor_key) or (root in (2, 4, 9) and not minor_key)
    third = 3 if minor else 4
    return float(weights[root % 12] + weights[(root + third) % 12] + weights[(root + 7) % 12])


def _accompaniment(notes: list[Note], plan: TunePlan, shift: int) -> list[TimedNote]:
    """One soft low chord root (and its fifth half-way through) per bar, the chord whose tones
    the bar's melody sounds longest."""
    if not notes:
        return []
    per_bar: dict[int, list[Note]] = {}
    for note in notes:
        per_bar.setdefault(note.bar, []).append(note)
    minor_third = plan.mode in ("minor", "dorian")
    roots = _CHORDS_MINOR if minor_third else _CHORDS_MAJOR
    seconds_per_quarter = 60.0 / plan.qpm
    bar_s = plan.seconds_per_bar()
    result: list[TimedNote] = []
    start_of_bar = 0.0
    for bar in range(max(per_bar) + 1):
        melody = per_bar.get(bar, [])
        weights = np.zeros(12)
        for note in melody:
            if note.pitch is not None:
                weights[note.pitch % 12] += float(note.quarters)

        root = max(roots, key=lambda r, w=weights: _chord_fit(w, r, minor_third))
        bar_length_s = sum(float(n.quarters) for n in melody) * seconds_per_quarter or bar_s
        bass = 43 + ((root + shift) % 12)  # G2..F#3
        result.append(TimedNote(bass, start_of_bar, bar_length_s * 0.95, 0.7))
        if bar_length_s > 1.0:
            result.append(TimedNote(bass + 7, start_of_bar + bar_length_s / 2, bar_length_s * 0.45, 0.5))
        start_of_bar += bar_length_s
    return result


def perform(ids: list[int], loaded: LoadedMelodyModel, plan: TunePlan, seed: int) -> tuple[np.ndarray, bytes, dict]:
    """Audio, a MIDI file and facts for the record, from a sampled tune."""
    _, notes = decode_notes(loaded.vocab, ids)
    shift = _transpose(notes, plan)
    seconds_per_quarter = 60.0 / plan.qpm
    timed: list[TimedNote] = []
    now = 0.0
    for note in notes:
        length = float(note.quarters) * seconds_per_quarter
        if note.pitch is not None:
            timed.append(TimedNote(max(0, min(127, note.pitch + shift)), now, length * 0.97))
        now += length
    backing = _accompaniment(notes, plan, shift) if plan.accompaniment else []
    top, bottom = (int(x) for x in plan.meter.split("/"))
    midi = midi_file(timed, tempo_qpm=plan.qpm, meter=(top, bottom), instrument=plan.instrument, accompaniment=backing)
    audio = render_with_fluidsynth(midi, now)
    renderer = "fluidsynth" if audio is not None else "studio-synth"
    if audio is None:
        audio = render(timed, plan.instrument, seed, backing)
    names = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
    facts = {
        "tune_type": plan.tune_type,
        "meter": plan.meter,
        "mode": plan.mode,
        "key": f"{names[plan.tonic]} {plan.mode}",
        "tempo_qpm": round(plan.qpm, 1),
        "instrument": plan.instrument,
        "gm_program": GM_PROGRAMS.get(plan.instrument, 46),
        "accompaniment": plan.accompaniment,
        "bars": max((n.bar for n in notes), default=-1) + 1,
        "notes": sum(1 for n in notes if n.pitch is not None),
        "renderer": renderer,
    }
    return audio, midi, facts


# The last note rings this long before the clip ends; the tempo may ease this far to fit whole bars.
RING_OUT_S = 0.6
TEMPO_STRETCH = (0.85, 1.2)


def fit_to_length(plan: TunePlan, seconds: float) -> tuple[TunePlan, int]:
    """Whole bars that fill ``seconds`` (less the ring-out) at a tempo eased at most 15 % slower
    or 20 % faster than the tune type's, so a clip is the length asked and still ends on a bar."""
    room = max(seconds - RING_OUT_S, seconds * 0.7)
    bars = max(2, round(room / plan.seconds_per_bar()))
    qpm = plan.qpm * bars * plan.seconds_per_bar() / room
    low, high = (plan.qpm * factor for factor in TEMPO_STRETCH)
    return replace(plan, qpm=min(max(qpm, low), high)), bars


def generate(loaded: LoadedMelodyModel, request: MusicRequest, ctx: RunContext) -> tuple[np.ndarray, bytes, dict]:
    plan, bars = fit_to_length(read_prompt(request.prompt), request.duration)
    seed = request.seed if request.seed is not None else 0
    top_k = request.top_k if request.top_k > 0 else 0
    ids = sample_tune(loaded, plan, bars, seed=seed, temperature=request.temperature, top_k=top_k, ctx=ctx)
    audio, midi, facts = perform(ids, loaded, plan, seed)
    # Whole bars at an eased tempo come close; the clip is then cut (with a fade) or padded to the
    # exact length asked, as every other music model gives it.
    return fit_length(audio, round(request.duration * SAMPLE_RATE), SAMPLE_RATE), midi, facts


class MelodyEngine:
    """The ``melody`` format: notes sampled under the meter's rules, played, and written as MIDI."""

    format = MELODY
    kind = "music"

    def check(self, spec: ModelSpec, request: MusicRequest) -> None:
        pass  # a clip or melody it cannot take is refused from its capabilities, by the worker

    def describe(self, spec: ModelSpec) -> ModelInfo:
        reasons = {
            Control.GUIDANCE: f"{spec.name} samples notes from its own model: there is no guidance scale",
            Control.AUDIO_INPUT: f"{spec.name} cannot continue a clip; MusicGen models can",
            Control.MELODY_INPUT: f"{spec.name} writes its own melodies; a MusicGen Melody model follows one",
        }
        info = model_info(spec, {Control.TEMPERATURE, Control.TOP_K}, reasons, whole_bars=True)  # fitted to the length
        return info if info.hint else replace(info, hint=HINT)

    def load(self, spec: ModelSpec, device: Any) -> LoadedMelodyModel:
        return load(spec, device)

    def unload(self, loaded: LoadedMelodyModel) -> None:
        loaded.model.to("cpu")

    def generate(self, loaded: LoadedMelodyModel, request: MusicRequest, ctx: RunContext) -> EngineResult:
        audio, midi, facts = generate(loaded, request, ctx)
        info = {
            "sample_rate": SAMPLE_RATE,
            "channels": 1,
            "duration_s": round(audio.shape[0] / SAMPLE_RATE, 4),
            "tune": facts,
        }
        runtime = {**loaded.device.to_dict(), "model_class": FORMAT, "versions": library_versions()}
        output = GeneratedOutput("music", audio, info, attachments={".mid": midi})
        return EngineResult([output], loaded.spec.provenance(), runtime)

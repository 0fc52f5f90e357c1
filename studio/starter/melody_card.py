"""Measuring the starter melody model and writing its model card.

Measures (all in the model's own key, C, where every tune was moved for training):

- key clarity: the duration-weighted pitch-class profile of a tune correlated with the
  Krumhansl–Kessler profiles of all 24 keys, best match — for samples, for baselines with the
  same rhythms but random pitches over the same range, and for real held-out tunes;
- in the intended key: the share whose best-matching key is C major (or C minor for minor
  prompts), the key the header asked for;
- bars of the meter's length: samples drawn with Studio's bar rules (always whole bars) and
  drawn freely, with only the model to keep time;
- ending on the tonic.
"""

from __future__ import annotations

import json
import time
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from studio.engines import melody
from studio.engines.melody_tokens import Note, bar_length, decode_notes

# Krumhansl & Kessler (1982) probe-tone profiles, C major and C minor.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
PROMPTS = (
    "a lively reel", "a jig", "a hornpipe", "a slow sad air", "a slip jig", "a polka", "a strathspey",
    "a waltz in 3/4", "a sad jig", "a march",
)  # fmt: skip


def profile(notes: list[Note]) -> np.ndarray:
    weights = np.zeros(12)
    for note in notes:
        if note.pitch is not None:
            weights[note.pitch % 12] += float(note.quarters)
    return weights


def key_scores(notes: list[Note]) -> tuple[float, int, str]:
    """(best correlation over the 24 keys, its tonic pitch class, its mode)."""
    weights = profile(notes)
    if weights.sum() == 0 or np.all(weights == weights[0]):
        return 0.0, 0, "major"
    best = (-2.0, 0, "major")
    for tonic in range(12):
        for mode, kk in (("major", KK_MAJOR), ("minor", KK_MINOR)):
            r = float(np.corrcoef(weights, np.roll(kk, tonic))[0, 1])
            best = max(best, (r, tonic, mode))
    return best


def random_pitches(notes: list[Note], rng: np.random.Generator) -> list[Note]:
    pitches = [n.pitch for n in notes if n.pitch is not None]
    low, high = (min(pitches), max(pitches)) if pitches else (60, 72)
    return [Note(None if n.pitch is None else int(rng.integers(low, high + 1)), n.quarters, n.bar) for n in notes]


def bar_share(notes: list[Note], meter: str) -> float:
    """Share of inner bars (not the pick-up, not the last) whose notes fill the meter's bar."""
    fills: dict[int, Fraction] = {}
    for note in notes:
        fills[note.bar] = fills.get(note.bar, Fraction(0)) + note.quarters
    inner = [fills[b] for b in sorted(fills)[1:-1]]
    return sum(1 for f in inner if f == bar_length(meter)) / len(inner) if inner else 1.0


def measure(folder: Path, validation: list[dict], samples: int = 50, seed: int = 99) -> dict:
    from studio.engines.devices import choose_device
    from studio.engines.melody_tokens import MelodyVocabulary

    spec = SimpleNamespace(path=Path(folder), name=Path(folder).name)
    loaded = melody.load(spec, choose_device("cpu"))
    vocab: MelodyVocabulary = loaded.vocab
    rng = np.random.default_rng(seed)
    rows = {"samples": [], "random": [], "real": []}
    intended, endings, endings_free, bars_ruled, bars_free, seconds = [], [], [], [], [], []
    for i in range(samples):
        plan = melody.read_prompt(PROMPTS[i % len(PROMPTS)])
        started = time.perf_counter()
        ids = melody.sample_tune(loaded, plan, 16, seed=seed + i, temperature=1.0, top_k=0)
        seconds.append(time.perf_counter() - started)
        _, notes = decode_notes(vocab, ids)
        r, tonic, mode = key_scores(notes)
        rows["samples"].append(r)
        rows["random"].append(key_scores(random_pitches(notes, rng))[0])
        wanted_mode = "minor" if plan.mode in ("minor", "dorian") else "major"
        intended.append(tonic == 0 and mode == wanted_mode)
        last = [n for n in notes if n.pitch is not None][-1:]
        endings.append(bool(last) and last[0].pitch % 12 == 0)
        bars_ruled.append(bar_share(notes, plan.meter))
        free_ids = melody.sample_tune(loaded, plan, 16, seed=seed + i, temperature=1.0, top_k=0, constrained=False)
        free_notes = decode_notes(vocab, free_ids)[1]
        bars_free.append(bar_share(free_notes, plan.meter))
        free_last = [n for n in free_notes if n.pitch is not None][-1:]
        endings_free.append(bool(free_last) and free_last[0].pitch % 12 == 0)
    real_endings, real_bars = [], []
    for tune in validation[:samples]:
        ids = [vocab.id(t) for t in tune["tokens"]]
        header, notes = decode_notes(vocab, ids)
        rows["real"].append(key_scores(notes)[0])
        last = [n for n in notes if n.pitch is not None][-1:]
        real_endings.append(bool(last) and last[0].pitch % 12 == 0)
        if header.get("M", "other") != "other":
            real_bars.append(bar_share(notes, header["M"]))
    return {
        "samples": samples,
        "prompts": list(PROMPTS),
        "key_clarity": {k: round(float(np.mean(v)), 3) for k, v in rows.items()},
        "in_intended_key": round(float(np.mean(intended)), 3),
        "whole_bars_with_rules": round(float(np.mean(bars_ruled)), 3),
        "whole_bars_free": round(float(np.mean(bars_free)), 3),
        "whole_bars_real": round(float(np.mean(real_bars)), 3),
        "ends_on_tonic": round(float(np.mean(endings)), 3),
        "ends_on_tonic_free": round(float(np.mean(endings_free)), 3),
        "ends_on_tonic_real": round(float(np.mean(real_endings)), 3),
        "seconds_per_16_bars": round(float(np.median(seconds)), 3),
    }


def write(folder: Path, plan, data: dict, report, quality: dict, machine: str) -> None:
    curve = "\n".join(
        f"| {p['step']} | {p['minutes']} | {p['train_loss']:.3f} | {p['validation_loss']:.3f} |" for p in report.curve
    )
    q = quality
    card = f"""---
license: apache-2.0
library_name: transformers
pipeline_tag: text-to-audio
tags: [studio-starter, melody, symbolic-music, folk]
---

# Studio starter melody

A small melody model that ships with Studio so the Music tab works on a fresh install with no
download. It writes **new folk-style melodies** — reels, jigs, hornpipes, airs, waltzes — note by
note; Studio plays them with its built-in synthesiser (or FluidSynth with a General MIDI soundfont
when installed) and saves the **MIDI file** beside the audio.

It is not an audio model: it knows melodies, not sounds, lyrics or genres. What a prompt can
steer is what it was trained on, plus what Studio does around it:

| prompt words | effect |
|---|---|
| reel, jig, slip jig, hornpipe, strathspey, polka, waltz, march, air, 6/8, 3/4… | tune type and meter (model) |
| sad, minor, dark, lament / happy, bright, major / dorian, modal | mode (model) |
| slow, gentle, calm / lively, fast | tempo marking (model) and playing speed (Studio) |
| flute, whistle, fiddle, harp, guitar, piano, bells | the synthesiser's voice and the MIDI program (Studio) |
| in D, in A minor, in Bb… | the key it is played in (Studio transposes) |
| solo, unaccompanied | no accompaniment (Studio adds soft bass notes otherwise) |

The length comes from the requested duration (whole bars). Sampling obeys the meter: after a note
only a duration that fits the bar may follow, and a full bar must close; and a cadence rule ends
the tune on the tonic. Both are rules Studio applies while sampling — the table below also says
how the model does without them.

## Training data

Two tune books bundled in the [music21](https://pypi.org/project/music21/) wheel's corpus
(music21 {_music21_version()}), both printed long ago and out of copyright; the ABC encodings are
by volunteers (Ryan's: Ray Davies and others; O'Neill's: Norbert Paap and others) and are
distributed in music21's corpus with the encoders' permission (music21's `corpus/license.txt`);
neither folder carries a restriction of its own.

- `ryansMammoth` — *Ryan's Mammoth Collection* (Elias Howe / William Bradbury Ryan, Boston, 1883);
- `oneills1850` — *O'Neill's Music of Ireland* (Francis O'Neill, Chicago, 1903).

The corpus's `essenFolksong` collection is **not** used: its licence allows non-commercial use
only. {data["tunes"]:,} tunes parsed (header fields by Studio, notes by music21), moved to the
tonic C, top note of any chord, grace notes dropped; {data["validation_tunes"]} held out by title
hash for validation. {data["training_tokens"]:,} training tokens.

## Model

`LlamaForCausalLM`, {report.parameters:,} parameters, {plan.model["num_hidden_layers"]} layers,
width {plan.model["hidden_size"]}, {len(json.loads((folder / "melody_vocab.json").read_text())["tokens"])}-token
vocabulary (`melody_vocab.json`: header tokens for meter, mode, tune type and tempo; pitches as
MIDI numbers in C; 12 duration classes; bar lines). Saved as safetensors; the Studio manifest
`studio_model.json` says it is a melody model.

## Training

```
pip install -e ".[train]"
python -m studio.starter.train music      # writes this folder
```

Seed {plan.seed}, {report.steps} steps of {plan.batch_size} × {plan.seq_len} tokens, AdamW
(lr {plan.learning_rate}, warm-up {plan.warmup_steps}, cosine to 10 %) —
{report.minutes} minutes on {machine}. The same seed, data and thread count give the same curve.

| step | minutes | train loss | validation loss |
|---|---|---|---|
{curve}

## Measured quality

`python -m studio.starter.train music --measure-only` ({q["samples"]} samples, 16 bars each,
prompts cycling through {", ".join(q["prompts"][:4])}…; temperature 1.0):

| measure | samples | same rhythms, random pitches | real held-out tunes |
|---|---|---|---|
| key clarity (best Krumhansl–Kessler correlation, duration-weighted) | {q["key_clarity"]["samples"]} | {q["key_clarity"]["random"]} | {q["key_clarity"]["real"]} |
| bars of the meter's length | {q["whole_bars_with_rules"]} with Studio's rules, {q["whole_bars_free"]} sampled freely | — | {q["whole_bars_real"]} |
| ends on the tonic | {q["ends_on_tonic"]} with Studio's cadence rule, {q["ends_on_tonic_free"]} sampled freely (cut after 16 bars) | — | {q["ends_on_tonic_real"]} |

In the key the header asked for (C major, or C minor for minor prompts): {q["in_intended_key"]}.
Sampling 16 bars takes {q["seconds_per_16_bars"]} s on this CPU.

## Limits

Folk melodies only, one line at a time, in the idiom of two 19th-century tune books (mostly
Irish and Scottish dance music); it repeats phrases and wanders harmonically more than a player
would. Generated tunes may resemble traditional tunes. Add a MusicGen or Stable Audio model for
audio with real instruments and other styles.
"""
    (folder / "README.md").write_text(card)


def _music21_version() -> str:
    try:
        import music21

        return str(music21.__version__)
    except ImportError:
        return "unknown"

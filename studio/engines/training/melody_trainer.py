"""The music trainer: fine-tunes a melody model (format ``melody``, ``studio-melody`` on disk — the
starter is one) on the artist's tunes: MIDI and ABC files and the melody model's own outputs
(``tune_data``), each turned into the melody token language with the header the starter was
trained on (meter, mode, tune type, tempo), so a prompt such as "a minor waltz" asks for what the
artist wrote.

Methods: ``full`` (every weight), and ``lora`` — LoRA matrices trained through peft, then merged
into the weights, so the result is a complete melody model either way (the melody engine takes no
adapters); LoRA changes fewer weights and so forgets less of the base's tunes. Samples: a short
tune sampled under the meter's rules from the model in training and played by the melody
engine's renderer, ``TrainingSample.data`` = ``(audio float32, sample_rate)``.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from studio.core.errors import InvalidRequest, StudioError
from studio.core.models import ModelSpec
from studio.core.training import DataSummary, TrainingFile, TrainingSample, TrainRequest
from studio.engines.training.base import InspectedFile, TrainContext, TrainingOutcome, TrainingPlan, UnreadableData
from studio.engines.training.lm_bases import check_trainable, language_model_plan
from studio.engines.training.tune_data import TUNE_SUFFIXES, Tune, read_tunes, source_of

FORMATS = ("melody",)
DEFAULT_STEPS = 300
DEFAULT_LR = {"full": 1e-3, "lora": 3e-3}
DEFAULT_SEQ_LEN = 256
SAMPLE_SECONDS = 8.0
SAMPLE_PROMPTS = 2


def tune_prompt(header: tuple[str, str, str]) -> str:
    """A prompt the melody engine reads back into this header ("minor waltz in 3/4")."""
    meter, mode, tune_type = header
    words = [mode if mode in ("major", "minor", "dorian", "mixolydian") else ""]
    words.append(tune_type if tune_type != "other" else "tune")
    if meter != "other":
        words.append(meter)
    return " ".join(w for w in words if w)


class MelodyTrainer:
    medium = "music"
    suffixes = TUNE_SUFFIXES

    def inspect(self, path: Path) -> InspectedFile:
        tunes = read_tunes(path)
        words = " ".join(f"{t.tune_type} {t.mode} {t.meter.replace('/', '-')}" for t in tunes)
        return InspectedFile(units=sum(t.notes for t in tunes), words_text=words)

    def near_duplicates(self, files: Sequence[TrainingFile]) -> list[tuple[str, ...]]:
        """Files that hold the same notes: a melody output beside its own ``.mid``, or the same
        tune saved twice (the note tokens compared, header aside)."""
        by_source: dict[Path, list[str]] = {}
        for f in files:
            by_source.setdefault(source_of(Path(f.path)).resolve(), []).append(f.path)
        groups: dict[tuple[str, ...], list[str]] = {}
        for paths in by_source.values():
            try:
                tunes = read_tunes(Path(paths[0]))
            except UnreadableData:
                continue
            key = tuple(tok for tune in tunes for tok in tune.tokens[5:])
            groups.setdefault(key, []).extend(paths)
        return [tuple(sorted(g)) for g in groups.values() if len(g) > 1]

    def data_notes(self, files: Sequence[TrainingFile]) -> list[str]:
        tunes = self._tunes(files)
        notes = []
        if tunes:
            counts = Counter(t.header for t in tunes)
            common = ", ".join(f"{n} × {tune_prompt(h)}" for h, n in counts.most_common(3))
            notes.append(f"{len(tunes)} tunes: {common}")
        if 0 < len(tunes) < 5:
            notes.append(
                "fewer than five tunes: the model will mostly learn these by heart; twenty or more teach an idiom"
            )
        if any(Path(f.path).suffix.lower() in (".mid", ".midi") for f in files):
            notes.append(
                "MIDI: the busiest single-note part is the melody (its highest note where it plays chords); "
                "onsets are put on a grid of sixteenths and triplets"
            )
        return notes

    def methods(self, base: ModelSpec) -> tuple[str, ...]:
        check_trainable(base, "music", FORMATS, "melody models (Studio's studio-melody format)")
        return ("full", "lora")

    def plan(self, base: ModelSpec, request: TrainRequest, summary: DataSummary, device: Any) -> TrainingPlan:
        methods = self.methods(base)
        method = request.method or methods[0]
        if method not in methods:
            raise InvalidRequest("method", f"{base.name} cannot be trained with {method}")
        notes: list[str] = []
        if method == "lora":
            notes.append("LoRA is merged into the weights: the result is a complete melody model")
        elif request.alpha or request.rank != 16:
            notes.append("rank and alpha are LoRA settings: a full fine-tune changes every weight and ignores them")
        positions = _max_positions(base.path)
        seq_len = request.seq_len or min(DEFAULT_SEQ_LEN, positions)
        if seq_len > positions:
            raise InvalidRequest("seq_len", f"{base.name} reads at most {positions} tokens at once")
        steps = request.steps or DEFAULT_STEPS
        if request.epochs:
            tokens = sum(2 * f.units for f in summary.files)  # a pitch and a duration a note, bars aside
            steps = max(1, math.ceil(request.epochs * max(1, tokens // seq_len) / request.batch_size))
            notes.append(f"{request.epochs} epochs ≈ {steps} steps (counted exactly once the tunes are read)")
        prompts = tuple(p for p in request.sample_prompts if p.strip()) or self._data_prompts(summary.files)
        return language_model_plan(request, method, steps, seq_len, prompts, notes, DEFAULT_LR[method])

    def train(
        self, base: ModelSpec, plan: TrainingPlan, summary: DataSummary, device: Any, ctx: TrainContext
    ) -> TrainingOutcome:
        import numpy as np
        import torch
        from transformers import LlamaForCausalLM

        from studio.engines.melody_tokens import MelodyVocabulary
        from studio.engines.training import causal_lm

        self.methods(base)
        ctx.progress(0, plan.steps, phase="reading")
        manifest = _manifest(base.path)
        vocab_file = base.path / str(manifest.get("vocabulary", "melody_vocab.json"))
        try:
            vocab = MelodyVocabulary.load(vocab_file)
            model = LlamaForCausalLM.from_pretrained(
                base.path, local_files_only=True, use_safetensors=True, dtype=torch.float32
            )
        except (OSError, ValueError, KeyError) as exc:
            raise StudioError(f"cannot load {base.name} to train it: {exc}") from exc
        tunes = self._tunes(summary.files)
        if not tunes:
            raise StudioError("no tune could be read from the files chosen")
        known = set(vocab.tokens)
        usable = [t for t in tunes if all(tok in known for tok in t.tokens)]
        if len(usable) < len(tunes):
            plan.notes.append(f"{len(tunes) - len(usable)} tunes use tokens {base.name} does not know: left out")
        stream = np.array([vocab.id(tok) for tune in usable for tok in tune.tokens], dtype=np.int64)
        if len(stream) < 16:
            raise StudioError(f"too few notes to learn from: {len(stream)} tokens")
        seq_len = min(plan.seq_len, len(stream))
        if seq_len != plan.seq_len:
            plan.notes.append(f"the tunes are only {seq_len} tokens: trained in one window of {seq_len}")
            plan.seq_len = seq_len
        windows = causal_lm.stream_windows(stream, seq_len)
        if plan.epochs:
            plan.steps = max(1, math.ceil(plan.epochs * len(windows) / plan.batch_size))
        ctx.raise_if_cancelled()
        model = causal_lm.prepare_model(
            model, plan.method, rank=plan.rank, alpha=plan.alpha, seed=plan.seed,
            gradient_checkpointing=plan.gradient_checkpointing,
        )  # fmt: skip
        settings = causal_lm.LoopSettings(
            method=plan.method,
            steps=plan.steps,
            learning_rate=plan.learning_rate,
            batch_size=plan.batch_size,
            seed=plan.seed,
            gradient_checkpointing=plan.gradient_checkpointing,
            checkpoint_every=plan.checkpoint_every,
            sample_every=plan.sample_every,
            identity={"base": str(base.path), "rank": plan.rank, "alpha": plan.alpha, "seq_len": plan.seq_len},
        )
        prompts = plan.sample_prompts or ("a tune",)
        sampler = melody_sampler(base, vocab, prompts, plan.seed, device)
        result = causal_lm.run_loop(model, windows, settings, ctx, device, sampler=sampler)
        outcome = TrainingOutcome(
            steps=result.steps,
            final_loss=result.final_loss,
            best_loss=result.best_loss,
            curve=result.curve,
            device=result.device,
            result_kind="music",
            format="melody",
        )
        if result.estimated_only:
            return outcome
        ctx.progress(result.steps, plan.steps, phase="saving")
        save_melody_result(model, base, plan, vocab, Path(ctx.output_dir))
        return outcome

    def _tunes(self, files: Sequence[TrainingFile]) -> list[Tune]:
        """Every tune once, in file order: a melody output and its own ``.mid`` are one tune."""
        tunes: list[Tune] = []
        seen: set[Path] = set()
        for f in sorted(files, key=lambda f: f.path):
            source = source_of(Path(f.path)).resolve()
            if source in seen:
                continue
            seen.add(source)
            try:
                tunes.extend(read_tunes(Path(f.path)))
            except UnreadableData:
                continue
        return tunes

    def _data_prompts(self, files: Sequence[TrainingFile]) -> tuple[str, ...]:
        counts = Counter(t.header for t in self._tunes(files))
        return tuple(tune_prompt(h) for h, _ in counts.most_common(SAMPLE_PROMPTS))


def _manifest(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((Path(folder) / "studio_model.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _max_positions(folder: Path) -> int:
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
        return int(config.get("max_position_embeddings") or 2048)
    except (OSError, ValueError, TypeError):
        return 2048


def melody_sampler(base: ModelSpec, vocab: Any, prompts: Sequence[str], seed: int, device: Any) -> Any:
    """Samples a short tune per prompt, as the melody engine would (its rules, its renderer)."""
    from studio.engines import melody
    from studio.engines.synth import SAMPLE_RATE

    def sample(model: Any, step: int) -> list[TrainingSample]:
        # peft's wrapper hides the base model's cache argument; its LoRA layers live in the base.
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        loaded = melody.LoadedMelodyModel(base, device, inner, vocab, int(inner.config.max_position_embeddings))
        made = []
        for index, prompt in enumerate(prompts):
            plan, bars = melody.fit_to_length(melody.read_prompt(prompt), SAMPLE_SECONDS)
            ids = melody.sample_tune(loaded, plan, bars, seed=seed + index, temperature=1.0, top_k=0)
            audio, _midi, _facts = melody.perform(ids, loaded, plan, seed + index)
            made.append(TrainingSample(step, prompt, "music", (audio.astype("float32"), SAMPLE_RATE)))
        return made

    return sample


def save_melody_result(model: Any, base: ModelSpec, plan: TrainingPlan, vocab: Any, out: Path) -> None:
    """A complete ``studio-melody`` folder: weights, config, vocabulary and ``studio_model.json``."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    if plan.gradient_checkpointing:
        model.gradient_checkpointing_disable()
    if plan.method == "lora":
        model = model.merge_and_unload()
    model.config.use_cache = True
    model.to("cpu").to(torch.float32).save_pretrained(out, safe_serialization=True)
    vocab.save(out / "melody_vocab.json")
    manifest = _manifest(base.path) or {"format": "studio-melody", "kind": "music"}
    manifest["vocabulary"] = "melody_vocab.json"
    (out / "studio_model.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")

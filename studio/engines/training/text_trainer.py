"""The text trainer: teaches a causal language model (format ``transformers-text``) the artist's
writing — a full fine-tune of the starter and other small models, a peft LoRA for larger ones.

The texts are tokenised with the base's own tokenizer, joined with its end-of-text token and cut
into windows of ``seq_len`` tokens (``causal_lm.stream_windows``); the loop is
``causal_lm.run_loop``. Samples continue fixed prompts (the data's own opening words unless the
artist gives some). The result: a complete model folder (full) or a peft adapter folder (LoRA)
whose ``adapter_config.json`` names the base's folder, so the library files it under that base.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from studio.core.errors import InvalidRequest, StudioError
from studio.core.models import ModelSpec
from studio.core.training import DataSummary, TrainingFile, TrainingSample, TrainRequest
from studio.engines.training.base import InspectedFile, TrainContext, TrainingOutcome, TrainingPlan
from studio.engines.training.lm_bases import check_trainable, language_model_plan
from studio.engines.training.text_data import (
    TEXT_SUFFIXES,
    opening_words,
    read_training_text,
    text_near_duplicates,
    text_notes,
)

FORMATS = ("transformers-text",)
# Bases up to this many bytes of weights (about 150 M parameters in fp32) are fully fine-tuned by
# default: on a CPU that is still minutes to hours, and a full model is what the starter is.
FULL_BY_DEFAULT_BYTES = 600_000_000
DEFAULT_STEPS = 300
DEFAULT_LR = {"full": 5e-4, "lora": 1e-3}
DEFAULT_SEQ_LEN = 256
MIN_TOKENS = 16
SAMPLE_TOKENS = 48
SAMPLE_PROMPTS = 3
WORDS_TEXT_CHARS = 200_000  # of each file, for the summary's word counts


def _defaults_from_base(base: ModelSpec) -> tuple[str, ...]:
    small = base.id.startswith("studio-starter") or int(base.details.get("size_bytes") or 0) <= FULL_BY_DEFAULT_BYTES
    return ("full", "lora") if small else ("lora", "full")


def context_length(folder: Path) -> int:
    from studio.engines.transformers_text import _context_length

    return _context_length(folder)


class TextTrainer:
    medium = "text"
    suffixes = TEXT_SUFFIXES

    def inspect(self, path: Path) -> InspectedFile:
        text = read_training_text(path)
        return InspectedFile(units=len(text), words_text=text[:WORDS_TEXT_CHARS])

    def near_duplicates(self, files: Sequence[TrainingFile]) -> list[tuple[str, ...]]:
        return text_near_duplicates(files)

    def data_notes(self, files: Sequence[TrainingFile]) -> list[str]:
        return text_notes(files)

    def methods(self, base: ModelSpec) -> tuple[str, ...]:
        check_trainable(base, "text", FORMATS, "causal language models (transformers folders)")
        return _defaults_from_base(base)

    def plan(self, base: ModelSpec, request: TrainRequest, summary: DataSummary, device: Any) -> TrainingPlan:
        methods = self.methods(base)
        method = request.method or methods[0]
        if method not in methods:
            raise InvalidRequest("method", f"{base.name} cannot be trained with {method}")
        notes: list[str] = []
        context = context_length(base.path) or 2048
        seq_len = request.seq_len or min(DEFAULT_SEQ_LEN, context)
        if seq_len > context:
            raise InvalidRequest(
                "seq_len", f"{base.name} reads at most {context} tokens at once; choose {context} or fewer"
            )
        if method == "full" and (request.alpha or request.rank != 16):
            notes.append("rank and alpha are LoRA settings: a full fine-tune changes every weight and ignores them")
        steps = request.steps or DEFAULT_STEPS
        if request.epochs:
            # An estimate from the characters (≈ 4 a token); the trainer counts the real windows.
            tokens = max(1, sum(f.units for f in summary.files) // 4)
            steps = max(1, math.ceil(request.epochs * max(1, tokens // seq_len) / request.batch_size))
            notes.append(f"{request.epochs} epochs ≈ {steps} steps (counted exactly once the text is tokenised)")
        prompts = tuple(p for p in request.sample_prompts if p.strip()) or _data_prompts(summary)
        return language_model_plan(request, method, steps, seq_len, prompts, notes, DEFAULT_LR[method])

    def train(
        self, base: ModelSpec, plan: TrainingPlan, summary: DataSummary, device: Any, ctx: TrainContext
    ) -> TrainingOutcome:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from studio.engines.training import causal_lm

        self.methods(base)
        ctx.progress(0, plan.steps, phase="reading")
        try:
            tokenizer = AutoTokenizer.from_pretrained(base.path, local_files_only=True, trust_remote_code=False)
            model = AutoModelForCausalLM.from_pretrained(
                base.path,
                local_files_only=True,
                use_safetensors=not base.details.get("pickle_allowed"),
                trust_remote_code=False,
                dtype=torch.float32,  # trained in fp32 (bf16 autocast on a GPU that has it)
            )
        except (OSError, ValueError, KeyError) as exc:
            raise StudioError(f"cannot load {base.name} to train it: {exc}") from exc
        windows, seq_len = token_windows(tokenizer, [Path(f.path) for f in summary.files], plan.seq_len)
        if seq_len != plan.seq_len:
            plan.notes.append(f"the text is only {seq_len} tokens: trained in one window of {seq_len}")
            plan.seq_len = seq_len
        if plan.epochs:
            plan.steps = max(1, math.ceil(plan.epochs * len(windows) / plan.batch_size))
        ctx.raise_if_cancelled()
        model = causal_lm.prepare_model(
            model,
            plan.method,
            rank=plan.rank,
            alpha=plan.alpha,
            seed=plan.seed,
            gradient_checkpointing=plan.gradient_checkpointing,
        )
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
        prompts = plan.sample_prompts or ("The",)
        result = causal_lm.run_loop(
            model, windows, settings, ctx, device, sampler=text_sampler(tokenizer, prompts, plan.seed)
        )
        kind = "lora" if plan.method == "lora" else "text"
        outcome = TrainingOutcome(
            steps=result.steps,
            final_loss=result.final_loss,
            best_loss=result.best_loss,
            curve=result.curve,
            device=result.device,
            result_kind=kind,
            format="lora" if plan.method == "lora" else "transformers-text",
        )
        if result.estimated_only:
            return outcome
        ctx.progress(result.steps, plan.steps, phase="saving")
        save_text_result(model, tokenizer, base, plan, Path(ctx.output_dir))
        return outcome


def _data_prompts(summary: DataSummary) -> tuple[str, ...]:
    prompts: list[str] = []
    for f in sorted(summary.files, key=lambda f: f.path):
        try:
            words = opening_words(read_training_text(Path(f.path)))
        except StudioError:
            continue
        if words and words not in prompts:
            prompts.append(words)
        if len(prompts) == SAMPLE_PROMPTS:
            break
    return tuple(prompts)


def token_windows(tokenizer: Any, paths: list[Path], seq_len: int) -> tuple[Any, int]:
    """The texts as one stream of token ids (each followed by the end-of-text token) cut into
    windows; a stream shorter than ``seq_len`` is one window of its own length."""
    import numpy as np

    from studio.engines.training.causal_lm import stream_windows

    end = tokenizer.eos_token_id
    ids: list[int] = []
    for path in sorted(paths, key=str):
        ids += tokenizer(read_training_text(path), add_special_tokens=False)["input_ids"]
        if end is not None:
            ids.append(int(end))
    if len(ids) < MIN_TOKENS:
        raise StudioError(f"too little text to learn from: {len(ids)} tokens (at least {MIN_TOKENS})")
    stream = np.array(ids, dtype=np.int64)
    seq_len = min(seq_len, len(stream))
    return stream_windows(stream, seq_len), seq_len


def text_sampler(tokenizer: Any, prompts: Sequence[str], seed: int) -> Any:
    import torch

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def sample(model: Any, step: int) -> list[TrainingSample]:
        made = []
        device = next(model.parameters()).device
        for index, prompt in enumerate(prompts):
            encoded = tokenizer(prompt, return_tensors="pt").to(device)
            torch.manual_seed(seed + index)  # the same prompt and seed at every step: only the model changes
            with torch.inference_mode():
                out = model.generate(
                    **encoded, max_new_tokens=SAMPLE_TOKENS, do_sample=True, temperature=0.8, top_k=50, top_p=0.95,
                    repetition_penalty=1.1, pad_token_id=pad, use_cache=True,
                )  # fmt: skip
            text = tokenizer.decode(out[0][encoded["input_ids"].shape[1] :], skip_special_tokens=True)
            made.append(TrainingSample(step, prompt, "text", prompt + text))
        return made

    return sample


def save_text_result(model: Any, tokenizer: Any, base: ModelSpec, plan: TrainingPlan, out: Path) -> None:
    """A complete model folder (full) or a peft adapter folder naming the base (LoRA)."""
    out.mkdir(parents=True, exist_ok=True)
    method = plan.method
    if plan.gradient_checkpointing:
        model.gradient_checkpointing_disable()
    config = model.config if method == "full" else model.get_base_model().config
    config.use_cache = True
    model.to("cpu")
    if method == "full":
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        return
    # The library finds an adapter's base (its family, its width) through this path.
    model.peft_config["default"].base_model_name_or_path = str(Path(base.path).resolve())
    model.save_pretrained(out, safe_serialization=True)
    (out / "README.md").unlink(missing_ok=True)  # peft's template card: Studio writes its own

"""Text generation with local transformers causal language models (format ``transformers-text``):
chat template or plain continuation, streaming, stop, seeds."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer
from transformers.utils import logging as transformers_logging

from studio.core.capabilities import Control, ModelInfo
from studio.core.conversation import chat_messages, fit_context
from studio.core.errors import ModelError, StudioError
from studio.core.files import first_line
from studio.core.models import ModelSpec
from studio.core.outputs import EngineResult, GeneratedOutput
from studio.core.requests import TextRequest
from studio.engines import compile_cache
from studio.engines.adapters import adapter_records, apply_text_lora
from studio.engines.base import RunContext, model_info
from studio.engines.devices import DeviceChoice, library_versions
from studio.engines.registry import TRANSFORMERS_TEXT

transformers_logging.disable_progress_bar()  # progress reaches the user as events, not on stderr


@dataclass
class LoadedTextModel:
    spec: ModelSpec
    device: DeviceChoice
    model: Any
    tokenizer: Any
    compile_cache_file: Any = None  # torch.compile's artifacts for this model, when it compiles (compile_cache)
    compile_cache_saved: bool = False

    @property
    def context_length(self) -> int | None:
        config = self.model.config
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(config, key, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))


class _CancelCriteria(StoppingCriteria):
    """The only way to stop ``generate()`` between tokens: answer True once cancel is asked."""

    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self._ctx.cancelled, dtype=torch.bool, device=input_ids.device)


class _EventStreamer(BaseStreamer):
    """Turns new token ids into text chunks as soon as they decode to whole characters.

    Each step decodes one short window — a few ids already sent, as context, then the new ones —
    and sends what the window's text has beyond the context's: tokenizers that drop a leading space
    at the start of a decode (SentencePiece) still get it right, and a long text costs the same per
    token as a short one (decoding everything since the last line break made each token slower as
    the line grew). The context's text is the window's text as last sent, so a step costs one
    decode; only when the window has grown past ``window`` ids does it restart at the last chunk
    boundary (one decode more, every ``window`` tokens or so).
    """

    def __init__(self, tokenizer: Any, ctx: RunContext, total: int, *, window: int = 16) -> None:
        self._tokenizer = tokenizer
        self._ctx = ctx
        self._total = total
        self._window = window
        self._prompt_seen = False
        self._ids: list[int] = []
        self._prefix = 0  # where the decoded window starts: always where an earlier chunk ended
        self._read = 0  # ids before this are sent
        self._last_chunk_at = 0  # where the last chunk began (a boundary to restart the window at)
        self._context = ""  # the text of ids[_prefix:_read]
        self.tokens = 0
        self.chunks: list[str] = []
        self.first_token_at: float | None = None

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() first hands over the prompt
            self._prompt_seen = True
            return
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        ids = value.reshape(-1).tolist()
        self.tokens += len(ids)
        self._ids.extend(ids)
        self._flush(final=False)

    def end(self) -> None:
        self._flush(final=True)

    def _flush(self, *, final: bool) -> None:
        if self._read - self._prefix > self._window and self._last_chunk_at > self._prefix:
            # Restart the window at the last chunk's start: the context is then that chunk's ids.
            self._prefix = self._last_chunk_at
            self._context = self._decode(self._prefix, self._read)
        text = self._decode(self._prefix, len(self._ids))
        if len(text) <= len(self._context) or (text.endswith("\ufffd") and not final):
            self._ctx.progress(self.tokens, self._total)  # nothing whole to show yet (half a character)
            return
        self._send(text[len(self._context) :])
        self._last_chunk_at, self._read, self._context = self._read, len(self._ids), text

    def _decode(self, start: int, stop: int) -> str:
        return str(self._tokenizer.decode(self._ids[start:stop], skip_special_tokens=True))

    def _send(self, chunk: str) -> None:
        if chunk:
            self.chunks.append(chunk)
            self._ctx.preview(chunk, step=self.tokens, total=self._total)
        self._ctx.progress(self.tokens, self._total)

    @property
    def text(self) -> str:
        return "".join(self.chunks)


class TransformersTextEngine:
    format = TRANSFORMERS_TEXT
    kind = "text"

    def check(self, spec: ModelSpec, request: TextRequest) -> None:
        pass  # every field applies; the context length is checked once the prompt is tokenised

    def describe(self, spec: ModelSpec) -> ModelInfo:
        """Chat or base model and context length, from the tokenizer and model configs (no weights)."""
        chat = has_chat_template(spec.path)
        reasons = {
            Control.SYSTEM_PROMPT: (
                f"{spec.name} is a base model (no chat template): it continues the prompt, so write instructions "
                "into the prompt itself"
            )
        }
        uses = [c for c in Control if c is not Control.SYSTEM_PROMPT or chat]
        return model_info(spec, uses, reasons, chat=chat, context_length=_context_length(spec.path))

    def load(self, spec: ModelSpec, device: DeviceChoice) -> LoadedTextModel:
        try:
            tokenizer = AutoTokenizer.from_pretrained(spec.path, local_files_only=True, trust_remote_code=False)
            model = AutoModelForCausalLM.from_pretrained(
                spec.path,
                local_files_only=True,
                use_safetensors=not spec.details.get("pickle_allowed"),
                trust_remote_code=False,
                dtype=device.dtype,
            )
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"cannot load {spec.name} as a text model: {first_line(exc)}") from exc
        model.to(device.device).eval()  # type: ignore[arg-type]  # transformers types .to() for PreTrainedModel only
        if device.compile_models and device.device == "cuda":
            # A static KV cache gives the decode step fixed shapes; generate() then compiles the forward
            # itself (its compile_config, CUDA graphs included) and copies the outputs it keeps. Wrapping
            # forward in torch.compile by hand failed on an H100: a CUDA graph run overwrote the logits
            # the sampler still read.
            model.generation_config.cache_implementation = "static"
            loaded = LoadedTextModel(spec, device, model, tokenizer)
            loaded.compile_cache_file = compile_cache.artifact_file(str(spec.path), device.name, device.dtype_name)
            compile_cache.load(loaded.compile_cache_file)  # kernels of an earlier run, before the first compile
            return loaded
        return LoadedTextModel(spec, device, model, tokenizer)

    def unload(self, loaded: LoadedTextModel) -> None:
        loaded.model.to("cpu")

    def generate(self, loaded: LoadedTextModel, request: TextRequest, ctx: RunContext) -> EngineResult:
        tokenizer, model = loaded.tokenizer, loaded.model
        adapters = list(getattr(ctx, "adapters", ()))  # a stand-in context (tests) may have none
        apply_text_lora(loaded, adapters)  # before seeding: peft draws random numbers as it builds layers
        notes: list[str] = []
        facts: dict[str, Any] = {}
        encoded = self._encode_prompt(loaded, request, notes, facts)
        input_length = int(encoded["input_ids"].shape[1])
        max_new = request.max_tokens
        context = loaded.context_length
        if context is not None and input_length + max_new > context:
            max_new = max(1, context - input_length)
            notes.append(f"max tokens clamped to {max_new}: the model's context is {context} tokens")
            if input_length >= context:
                raise ModelError(
                    f"the prompt is {input_length} tokens, longer than the model's context of {context}: shorten it"
                )
        encoded = {k: v.to(loaded.device.device) for k, v in encoded.items()}

        torch.manual_seed(request.seed if request.seed is not None else 0)
        sampling = request.temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new,
            "do_sample": sampling,
            "repetition_penalty": request.repetition_penalty,
            "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        }
        if sampling:
            kwargs.update(temperature=request.temperature, top_p=request.top_p, top_k=request.top_k)
            if request.min_p > 0:
                kwargs["min_p"] = request.min_p
        else:  # greedy: reset sampling defaults a model's generation_config may carry
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if request.stop:
            kwargs.update(stop_strings=list(request.stop), tokenizer=tokenizer)

        streamer = _EventStreamer(tokenizer, ctx, max_new)
        started = time.perf_counter()
        with torch.inference_mode():
            model.generate(
                **encoded,
                streamer=streamer,
                stopping_criteria=StoppingCriteriaList([_CancelCriteria(ctx)]),
                **kwargs,
            )
        elapsed = time.perf_counter() - started
        if loaded.compile_cache_file is not None and not loaded.compile_cache_saved:
            loaded.compile_cache_saved = compile_cache.save(loaded.compile_cache_file)  # after the first compile
        stopped = ctx.cancelled
        tokens = streamer.tokens
        first_ms = (streamer.first_token_at - started) * 1000 if streamer.first_token_at else None
        decode_s = elapsed - (first_ms or 0) / 1000
        info = {
            "tokens": tokens,
            "prompt_tokens": input_length,
            "seconds": round(elapsed, 4),
            "tokens_per_s": round(tokens / elapsed, 2) if elapsed > 0 else None,
            "decode_tokens_per_s": round((tokens - 1) / decode_s, 2) if tokens > 1 and decode_s > 0 else None,
            "first_token_ms": round(first_ms, 1) if first_ms is not None else None,
            "stopped": stopped,
            "chat_template": loaded.has_chat_template,
            "notes": notes,
            **facts,
        }
        output = GeneratedOutput("text", request.continue_from + streamer.text, info)
        runtime = {**loaded.device.to_dict(), "versions": library_versions()}
        model_record = loaded.spec.provenance()
        if adapters:
            model_record["adapters"] = adapter_records(adapters)
        return EngineResult([output], model_record, runtime)

    def _encode_prompt(
        self, loaded: LoadedTextModel, request: TextRequest, notes: list[str], facts: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        tokenizer = loaded.tokenizer
        if loaded.has_chat_template:
            messages = chat_messages(request.system, request.messages, request.prompt)
            template_options: dict[str, Any] = {"add_generation_prompt": True}
            context = loaded.context_length
            if request.messages and context:  # the context rule: the oldest turns go first

                def count(kept: list[dict[str, str]]) -> int:
                    text = tokenizer.apply_chat_template(kept, tokenize=False, add_generation_prompt=True)
                    return len(tokenizer(text + request.continue_from, add_special_tokens=False)["input_ids"])

                try:
                    messages, dropped = fit_context(messages, count, context - min(request.max_tokens, context // 2))
                except StudioError as exc:
                    raise ModelError(str(exc)) from exc
                if facts is not None:
                    facts["dropped_turns"] = dropped
                if dropped:
                    notes.append(f"the {dropped} oldest turns were left out: the conversation outgrew the context")
            if request.continue_from:
                messages.append({"role": "assistant", "content": request.continue_from})
                template_options = {"continue_final_message": True}
            try:
                encoded = tokenizer.apply_chat_template(
                    messages, return_tensors="pt", return_dict=True, **template_options
                )
            except Exception as exc:  # Jinja errors: some templates refuse a system role
                if not request.system.strip():
                    raise ModelError(f"the model's chat template failed: {first_line(exc)}") from exc
                notes.append("the chat template refused a system prompt; it was put before the prompt")
                merged = [{**messages[1], "content": f"{request.system}\n\n{messages[1]['content']}"}, *messages[2:]]
                encoded = tokenizer.apply_chat_template(
                    merged, return_tensors="pt", return_dict=True, **template_options
                )
            return dict(encoded)
        if request.system.strip():
            # A base model continues text: a system prompt would only become part of that text.
            notes.append("a base model has no chat template: the system prompt was left out (it continues the prompt)")
        return dict(tokenizer(request.prompt + request.continue_from, return_tensors="pt"))


def has_chat_template(folder: Path) -> bool:
    """Whether the tokenizer in ``folder`` carries a chat template (in its config or a file of its own)."""
    folder = Path(folder)
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and bool(config.get("chat_template"))


def _context_length(folder: Path) -> int:
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0
    if not isinstance(config, dict):
        return 0
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = config.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return 0

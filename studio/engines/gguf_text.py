"""Text generation with GGUF files (format ``gguf``): llama.cpp through ``llama-cpp-python``
when it is installed (the ``studio[gguf]`` extra), else transformers' GGUF loading.

llama.cpp: the prompt is the conversation rendered through the GGUF's own chat template (the
Jinja2 formatter llama-cpp-python uses for chat completions) or, for a base model, the prompt
itself; tokens come one at a time from ``Llama.generate`` so that each is streamed as it is made,
the cancel flag stops within a token, stop strings are held back until they can no longer start
and the sampler gets the request's seed, temperature, top-p, top-k, min-p and repetition penalty.
Every job starts from an empty KV cache: reusing a cached prefix evaluates the prompt's last
token on its own, whose logits can differ in the last bits from a whole-prompt evaluation, and the
same seed must give the same reply.

Without llama.cpp the file is dequantised into a transformers model (fp32 on the CPU: several
times slower and larger in memory) and run by the transformers engine, with a note saying so.
"""

from __future__ import annotations

import codecs
import os
import time
from dataclasses import dataclass
from typing import Any

from studio.core.capabilities import Control, ModelInfo
from studio.core.conversation import chat_messages, fit_context
from studio.core.errors import ModelError, StudioError
from studio.core.files import first_line
from studio.core.models import ModelSpec
from studio.core.outputs import EngineResult, GeneratedOutput
from studio.core.requests import TextRequest
from studio.engines.base import RunContext, model_info
from studio.engines.devices import DeviceChoice, library_versions
from studio.engines.library.gguf_files import GGUFError, GGUFInfo, cached_gguf_info
from studio.engines.registry import GGUF

# A GGUF may state a context of 128k tokens or more; its KV cache at that length would take many
# gigabytes, so Studio opens at most this many (and the conversation is cut to fit).
MAX_CONTEXT = 8192
DEFAULT_CONTEXT = 2048  # when the file does not state its context length
EXTRA_NOTE = (
    'llama.cpp is not installed, so this GGUF was dequantised into a transformers model: install "studio[gguf]" '
    "(llama-cpp-python) to run it several times faster in its own quantisation and with less memory"
)


def llama_cpp_available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class LoadedGGUF:
    spec: ModelSpec
    device: DeviceChoice
    info: GGUFInfo
    llm: Any
    n_ctx: int
    gpu_layers: int
    notes: list[str]

    @property
    def chat_template(self) -> str:
        return self.info.chat_template


def _threads() -> int:
    # llama-cpp-python's default is half the logical CPUs (the physical cores of a hyperthreaded
    # machine); on a small machine that would leave one of two cores idle.
    count = os.cpu_count() or 1
    return count if count <= 4 else max(1, count // 2)


class GGUFTextEngine:
    format = GGUF
    kind = "text"

    def _info(self, spec: ModelSpec) -> GGUFInfo:
        try:
            return cached_gguf_info(spec.path)
        except GGUFError as exc:
            raise ModelError(str(exc)) from exc

    def check(self, spec: ModelSpec, request: TextRequest) -> None:
        info = self._info(spec)
        if not llama_cpp_available():
            from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

            if info.architecture not in GGUF_CONFIG_MAPPING:
                raise ModelError(
                    f"{spec.name} is a {info.architecture} GGUF, which transformers cannot load: install "
                    '"studio[gguf]" (llama-cpp-python) to run it'
                )

    def describe(self, spec: ModelSpec) -> ModelInfo:
        info = self._info(spec)
        chat = bool(info.chat_template)
        reasons = {
            Control.SYSTEM_PROMPT: (
                f"{spec.name} has no chat template in its GGUF: it continues the prompt, so write instructions "
                "into the prompt itself"
            )
        }
        uses = [c for c in Control if c is not Control.SYSTEM_PROMPT or chat]
        context = min(info.context_length, MAX_CONTEXT) if info.context_length else DEFAULT_CONTEXT
        return model_info(spec, uses, reasons, chat=chat, context_length=context)

    # -- loading ---------------------------------------------------------------------------

    def load(self, spec: ModelSpec, device: DeviceChoice) -> Any:
        info = self._info(spec)
        if not llama_cpp_available():
            return self._load_with_transformers(spec, device)
        import llama_cpp

        notes: list[str] = []
        if info.context_length:
            n_ctx = min(info.context_length, MAX_CONTEXT)
            if info.context_length > MAX_CONTEXT:
                notes.append(f"the model's context of {info.context_length} tokens was opened at {MAX_CONTEXT}")
        else:
            n_ctx = DEFAULT_CONTEXT
            notes.append(f"the GGUF does not state its context length; Studio opened {DEFAULT_CONTEXT} tokens")
        gpu = device.device != "cpu" and bool(llama_cpp.llama_supports_gpu_offload())
        gpu_layers = -1 if gpu else 0
        try:
            llm = llama_cpp.Llama(
                model_path=str(spec.path),
                n_ctx=n_ctx,
                n_gpu_layers=gpu_layers,
                n_threads=_threads(),
                seed=0,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(
                f"llama.cpp cannot load {spec.name} ({info.architecture}, {info.quantisation}): {first_line(exc)}"
            ) from exc
        return LoadedGGUF(spec, device, info, llm, n_ctx, gpu_layers, notes)

    def _load_with_transformers(self, spec: ModelSpec, device: DeviceChoice) -> Any:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from studio.engines.transformers_text import LoadedTextModel

        folder, name = spec.path.parent, spec.path.name
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                folder, gguf_file=name, local_files_only=True, dtype=device.dtype
            )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelError(f"transformers cannot load the GGUF {spec.name}: {first_line(exc)}") from exc
        model.to(device.device).eval()  # type: ignore[arg-type]  # transformers types .to() for PreTrainedModel only
        return LoadedTextModel(spec, device, model, tokenizer)

    def unload(self, loaded: Any) -> None:
        if isinstance(loaded, LoadedGGUF):
            loaded.llm.close()
        else:
            loaded.model.to("cpu")

    # -- generating ------------------------------------------------------------------------

    def generate(self, loaded: Any, request: TextRequest, ctx: RunContext) -> EngineResult:
        if not isinstance(loaded, LoadedGGUF):
            from studio.engines.transformers_text import TransformersTextEngine

            result = TransformersTextEngine().generate(loaded, request, ctx)
            for output in result.outputs:
                output.info["notes"] = [*output.info.get("notes", []), EXTRA_NOTE]
                output.info["backend"] = "transformers (GGUF dequantised)"
            return result
        llm = loaded.llm
        notes = list(loaded.notes)
        prompt_tokens, dropped = self._prompt_tokens(loaded, request, notes)
        budget = loaded.n_ctx - len(prompt_tokens)
        if budget <= 0:
            raise ModelError(
                f"the prompt is {len(prompt_tokens)} tokens, the whole context of {loaded.n_ctx}: shorten it"
            )
        max_new = request.max_tokens
        if max_new > budget:
            max_new = budget
            notes.append(f"max tokens clamped to {max_new}: the model's context is {loaded.n_ctx} tokens")

        sampling = request.temperature > 0
        llm.reset()
        llm.set_seed(request.seed if request.seed is not None else 0)
        stream = _StopStrings(request.stop, ctx, max_new)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        is_end = _end_of_generation(llm)
        started = time.perf_counter()
        first_at: float | None = None
        tokens = 0
        finished_by = "length"
        generator = llm.generate(
            prompt_tokens,
            top_k=request.top_k if sampling else 1,
            top_p=request.top_p if sampling else 1.0,
            min_p=request.min_p if sampling else 0.0,
            temp=request.temperature if sampling else 0.0,
            repeat_penalty=request.repetition_penalty,
        )
        try:
            for token in generator:
                if ctx.cancelled:
                    finished_by = "stopped"
                    break
                if is_end(token):
                    finished_by = "end"
                    break
                tokens += 1
                if first_at is None:
                    first_at = time.perf_counter()
                if stream.add(decoder.decode(llm.detokenize([token])), tokens):
                    finished_by = "stop string"
                    break
                if tokens >= max_new:
                    break
        finally:
            generator.close()
        if finished_by != "stop string":
            stream.add(decoder.decode(b"", final=True), tokens)
            stream.finish(tokens)
        elapsed = time.perf_counter() - started
        first_ms = (first_at - started) * 1000 if first_at else None
        decode_s = elapsed - (first_ms or 0) / 1000
        info = {
            "tokens": tokens,
            "prompt_tokens": len(prompt_tokens),
            "seconds": round(elapsed, 4),
            "tokens_per_s": round(tokens / elapsed, 2) if elapsed > 0 else None,
            "decode_tokens_per_s": round((tokens - 1) / decode_s, 2) if tokens > 1 and decode_s > 0 else None,
            "first_token_ms": round(first_ms, 1) if first_ms is not None else None,
            "stopped": ctx.cancelled,
            "finish": finished_by,
            "chat_template": bool(loaded.chat_template),
            "dropped_turns": dropped,
            "backend": "llama.cpp",
            "notes": notes,
        }
        output = GeneratedOutput("text", request.continue_from + stream.text, info)
        runtime = {
            **loaded.device.to_dict(),
            "versions": {**library_versions(), "llama_cpp": _llama_cpp_version()},
            "backend": "llama.cpp",
            "n_ctx": loaded.n_ctx,
            "n_gpu_layers": loaded.gpu_layers,
            "n_threads": _threads(),
        }
        model = {**loaded.spec.provenance(), "quantisation": loaded.info.quantisation}
        return EngineResult([output], model, runtime)

    def _prompt_tokens(self, loaded: LoadedGGUF, request: TextRequest, notes: list[str]) -> tuple[list[int], int]:
        """The request as tokens, and how many earlier turns the context rule left out."""
        llm = loaded.llm
        if not loaded.chat_template:
            if request.system.strip():
                notes.append("the GGUF has no chat template: the system prompt was left out (it continues the prompt)")
            if request.messages:
                notes.append("the GGUF has no chat template: earlier turns were left out (it continues the prompt)")
            return llm.tokenize((request.prompt + request.continue_from).encode("utf-8"), add_bos=True), 0
        formatter = _formatter(loaded)

        def render(messages: list[dict[str, str]]) -> list[int]:
            try:
                prompt = formatter(messages=messages).prompt
            except Exception as exc:  # Jinja errors: a template may refuse a role or an order
                raise ModelError(f"the model's chat template failed: {first_line(exc)}") from exc
            # The template writes the special tokens itself (as llama-cpp-python's chat completion does).
            return list(llm.tokenize((prompt + request.continue_from).encode("utf-8"), add_bos=False, special=True))

        messages = chat_messages(request.system, request.messages, request.prompt)
        reserve = min(request.max_tokens, loaded.n_ctx // 2)
        try:
            kept, dropped = fit_context(messages, lambda m: len(render(m)), loaded.n_ctx - reserve)
        except StudioError as exc:
            raise ModelError(str(exc)) from exc
        if dropped:
            notes.append(f"the {dropped} oldest turns were left out: the conversation outgrew the context")
        return render(kept), dropped


def _formatter(loaded: LoadedGGUF) -> Any:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    model = loaded.llm._model  # llama-cpp-python builds its own chat formatter from the same two texts

    def text_of(token_id: Any) -> str:
        if not isinstance(token_id, int) or token_id < 0:
            return ""
        try:
            return str(model.token_get_text(token_id))
        except Exception:
            return ""

    bos = text_of(loaded.info.facts.get("bos_token_id"))
    eos = text_of(loaded.info.facts.get("eos_token_id"))
    return Jinja2ChatFormatter(template=loaded.chat_template, eos_token=eos, bos_token=bos, add_generation_prompt=True)


def _end_of_generation(llm: Any) -> Any:
    import llama_cpp

    vocab = getattr(llm._model, "vocab", None)
    if vocab is not None and hasattr(llama_cpp, "llama_vocab_is_eog"):
        return lambda token: bool(llama_cpp.llama_vocab_is_eog(vocab, token))
    eos = llm.token_eos()
    return lambda token: token == eos


def _llama_cpp_version() -> str:
    import llama_cpp

    return str(getattr(llama_cpp, "__version__", ""))


class _StopStrings:
    """Streams the reply, holding back only the tail that could still become a stop string, so the
    streamed text is exactly the saved text (a stop string and what follows it are never shown)."""

    def __init__(self, stops: tuple[str, ...], ctx: RunContext, total: int) -> None:
        self._stops = [s for s in stops if s]
        self._hold = max((len(s) for s in self._stops), default=1) - 1
        self._ctx = ctx
        self._total = total
        self._pending = ""
        self.chunks: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    def add(self, piece: str, tokens: int) -> bool:
        """Take new text; True when a stop string was reached (the text before it is sent)."""
        self._pending += piece
        for stop in self._stops:
            at = self._pending.find(stop)
            if at != -1:
                self._send(self._pending[:at], tokens)
                self._pending = ""
                return True
        keep = self._hold if self._stops else 0
        ready = len(self._pending) - keep
        if ready > 0:
            self._send(self._pending[:ready], tokens)
            self._pending = self._pending[ready:]
        else:
            self._ctx.progress(tokens, self._total)
        return False

    def finish(self, tokens: int) -> None:
        self._send(self._pending, tokens)
        self._pending = ""

    def _send(self, chunk: str, tokens: int) -> None:
        if chunk:
            self.chunks.append(chunk)
            self._ctx.preview(chunk, step=tokens, total=self._total)
        self._ctx.progress(tokens, self._total)

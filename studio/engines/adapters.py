"""Applying LoRAs and textual-inversion embeddings to a loaded diffusers pipeline, through diffusers'
adapter API, and a peft LoRA to a loaded causal LM.

A pipeline keeps the LoRAs it has loaded (``load_lora_weights(..., adapter_name=)``, one name per
file digest), up to ``KEPT_LORAS``; a job only switches which are active and their weights
(``set_adapters``), so changing adapters never reloads the base. No adapter → ``disable_lora``: the
LoRA layers are skipped and the base's pixels come back bit for bit. Embeddings are loaded for the
jobs whose prompt uses them and unloaded otherwise, so a token means its embedding only when asked.

A file that fails to load is taken out again before the error is raised: the base stays loaded and
usable, nothing half-applied is kept.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from studio.core.errors import ModelError
from studio.core.files import first_line
from studio.engines.library.adapters import EMBEDDING, LORA, ResolvedAdapter

log = logging.getLogger(__name__)

# LoRAs kept loaded per pipeline beyond those in use (each costs only its own, small, weights).
KEPT_LORAS = 8


@dataclass
class PipelineAdapters:
    """What one loaded pipeline holds: LoRA adapter names by file digest (least recently used
    first) and the embedding tokens loaded into its tokenizers."""

    loras: OrderedDict[str, str] = field(default_factory=OrderedDict)
    embeddings: dict[str, list[str]] = field(default_factory=dict)  # sha256 → tokens added

    def apply(self, pipe: Any, adapters: list[ResolvedAdapter]) -> list[str]:
        """Make exactly ``adapters`` active on ``pipe``; the notes to record (layers matched…)."""
        notes: list[str] = []
        loras = [a for a in adapters if a.kind == LORA]
        for adapter in loras:
            if adapter.sha256 not in self.loras:
                notes += self._load_lora(pipe, adapter)
            self.loras.move_to_end(adapter.sha256)
        self._evict(pipe, {a.sha256 for a in loras})
        if loras:
            pipe.enable_lora()
            pipe.set_adapters([self.loras[a.sha256] for a in loras], adapter_weights=[a.weight for a in loras])
        elif self.loras:
            pipe.disable_lora()
        self._embeddings(pipe, [a for a in adapters if a.kind == EMBEDDING])
        return notes

    def _load_lora(self, pipe: Any, adapter: ResolvedAdapter) -> list[str]:
        name = f"lora_{adapter.sha256[:16]}"
        path = adapter.spec.path
        before = _lora_layer_count(pipe, name)
        try:
            pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=name)
        except Exception as exc:  # a damaged file, keys of another layout, a network diffusers lacks
            _delete(pipe, name)
            raise ModelError(_load_error(adapter, exc)) from exc
        matched = _lora_layer_count(pipe, name) - before
        expected = int(adapter.spec.details.get("module_count") or 0)
        if matched == 0:
            _delete(pipe, name)
            raise ModelError(_matched_none(adapter))
        self.loras[adapter.sha256] = name
        if expected and matched < expected:
            note = f"LoRA {adapter.spec.name!r}: {matched} of its {expected} layers match this model"
            log.info(note)
            return [note]
        return []

    def _evict(self, pipe: Any, active: set[str]) -> None:
        while len(self.loras) > KEPT_LORAS:
            victim = next((digest for digest in self.loras if digest not in active), None)
            if victim is None:
                return
            _delete(pipe, self.loras.pop(victim))

    def _embeddings(self, pipe: Any, wanted: list[ResolvedAdapter]) -> None:
        wanted_digests = {a.sha256 for a in wanted}
        for digest in [d for d in self.embeddings if d not in wanted_digests]:
            tokens = self.embeddings.pop(digest)
            _unload_tokens(pipe, tokens)
        for adapter in wanted:
            if adapter.sha256 in self.embeddings:
                continue
            self.embeddings[adapter.sha256] = _load_embedding(pipe, adapter)

    def clear(self, pipe: Any) -> None:
        for name in list(self.loras.values()):
            _delete(pipe, name)
        self.loras.clear()
        for tokens in self.embeddings.values():
            _unload_tokens(pipe, tokens)
        self.embeddings.clear()


def _lora_layer_count(pipe: Any, name: str) -> int:
    count = 0
    for part in ("unet", "transformer", "text_encoder", "text_encoder_2"):
        module = getattr(pipe, part, None)
        if module is None or not hasattr(module, "named_modules"):
            continue
        for _, layer in module.named_modules():
            lora_a = getattr(layer, "lora_A", None)
            if lora_a is not None and name in lora_a:
                count += 1
    return count


def _delete(pipe: Any, name: str) -> None:
    try:
        pipe.delete_adapters([name])
    except (ValueError, KeyError, AttributeError):
        log.debug("adapter %s was not loaded", name, exc_info=True)


def _matched_none(adapter: ResolvedAdapter) -> str:
    expected = adapter.spec.details.get("module_count") or "its"
    return (
        f"none of the {expected} layers of the LoRA {adapter.spec.name!r} match a layer of this model (0 matched): "
        f"it was made for another model ({adapter.spec.details.get('base', 'unknown base')})"
    )


def _load_error(adapter: ResolvedAdapter, exc: Exception) -> str:
    what = adapter.spec.details.get("network") or "LoRA"
    message = first_line(exc)
    if "not found in the base model" in message:  # peft: no target module matched at all
        return _matched_none(adapter)
    if what in ("LoHa", "LoKr", "OFT"):
        return (
            f"{adapter.spec.name!r} is a LyCORIS {what}, which the installed diffusers cannot load "
            f"into this model ({message})"
        )
    return f"cannot load the LoRA {adapter.spec.name!r} ({adapter.spec.path.name}): {message}"


def _load_embedding(pipe: Any, adapter: ResolvedAdapter) -> list[str]:
    token = adapter.token or adapter.spec.name
    path = adapter.spec.path
    before = _added_tokens(pipe)
    try:
        if adapter.spec.family == "sdxl":
            from safetensors.torch import load_file

            state = load_file(str(path))
            pipe.load_textual_inversion(
                state["clip_l"], token=token, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer
            )
            pipe.load_textual_inversion(
                state["clip_g"], token=token, text_encoder=pipe.text_encoder_2, tokenizer=pipe.tokenizer_2
            )
        else:
            pipe.load_textual_inversion(str(path), token=token)
    except Exception as exc:
        _unload_tokens(pipe, sorted(_added_tokens(pipe) - before))
        raise ModelError(f"cannot load the embedding {adapter.spec.name!r} ({path.name}): {first_line(exc)}") from exc
    return sorted(_added_tokens(pipe) - before) or [token]


def _added_tokens(pipe: Any) -> set[str]:
    tokenizer = getattr(pipe, "tokenizer", None)
    return set(tokenizer.get_added_vocab()) if tokenizer is not None else set()


def _unload_tokens(pipe: Any, tokens: list[str]) -> None:
    if not tokens:
        return
    try:
        pipe.unload_textual_inversion(tokens)
        if getattr(pipe, "tokenizer_2", None) is not None:
            pipe.unload_textual_inversion(tokens, tokenizer=pipe.tokenizer_2, text_encoder=pipe.text_encoder_2)
    except (ValueError, KeyError, AttributeError, RuntimeError):
        log.debug("could not unload embedding tokens %s", tokens, exc_info=True)


def adapters_of(loaded: Any) -> PipelineAdapters:
    """The adapter state of a loaded pipeline (made on first use)."""
    state = getattr(loaded, "adapters", None)
    if not isinstance(state, PipelineAdapters):
        state = PipelineAdapters()
        loaded.adapters = state
    return state


# -- text ---------------------------------------------------------------------------------


@dataclass
class TextAdapters:
    """The peft LoRAs injected into one causal LM, by file digest. peft injects in place, so the
    loaded model itself generates; its LoRA layers are switched off for a job without a LoRA."""

    peft_model: Any = None
    names: dict[str, str] = field(default_factory=dict)


def apply_text_lora(loaded: Any, adapters: list[ResolvedAdapter]) -> None:
    """Make ``loaded.model`` run with the one LoRA of ``adapters`` at its weight, or as the bare base."""
    state = getattr(loaded, "text_adapters", None)
    adapter = adapters[0] if adapters else None
    if adapter is None:
        if isinstance(state, TextAdapters) and state.peft_model is not None:
            state.peft_model.base_model.disable_adapter_layers()
        return
    if not isinstance(state, TextAdapters):
        state = TextAdapters()
        loaded.text_adapters = state
    name = state.names.get(adapter.sha256) or f"lora_{adapter.sha256[:16]}"
    try:
        if state.peft_model is None:
            from peft import PeftModel

            state.peft_model = PeftModel.from_pretrained(loaded.model, str(adapter.spec.path), adapter_name=name)
        elif adapter.sha256 not in state.names:
            state.peft_model.load_adapter(str(adapter.spec.path), adapter_name=name)
    except Exception as exc:
        raise ModelError(f"cannot load the LoRA {adapter.spec.name!r} onto this model: {first_line(exc)}") from exc
    state.names[adapter.sha256] = name
    state.peft_model.base_model.enable_adapter_layers()
    state.peft_model.set_adapter(name)
    for module in state.peft_model.modules():  # scale = trained scale (alpha / r) × the weight
        scaling = getattr(module, "scaling", None)
        if isinstance(scaling, dict) and name in scaling and hasattr(module, "set_scale"):
            module.set_scale(name, adapter.weight)


# -- one image job --------------------------------------------------------------------------


def prepare_image_job(loaded: Any, pipe: Any, request: Any, adapters: list[ResolvedAdapter], kwargs: dict) -> list[str]:
    """Apply the job's adapters to the pipeline and put its prompt into ``kwargs`` as the model reads
    it: ``<lora:…>`` tags out, A1111 attention weights and long prompts as weighted embeddings where
    the pipeline allows (else plain text, with a note). Returns the notes for the record."""
    from studio.core.prompt_syntax import has_weighting, without_lora_tags
    from studio.engines import prompt_weights

    notes = adapters_of(loaded).apply(loaded.pipe, adapters)
    prompt = without_lora_tags(request.prompt)
    negative = request.negative if "negative_prompt" in kwargs or request.negative else ""
    if prompt_weights.can_weight(pipe) and prompt_weights.needs_weighting(pipe, prompt, negative):
        device = getattr(pipe, "_execution_device", None) or loaded.device.device
        kwargs.pop("prompt", None)
        kwargs.pop("negative_prompt", None)
        kwargs.update(prompt_weights.weighted_prompt_kwargs(pipe, prompt, negative, device))
        return notes
    if has_weighting(prompt) or has_weighting(negative):
        notes.append("prompt weights ( ) [ ] are read by SD 1.x/2.x pipelines only for now; the brackets were removed")
    kwargs["prompt"] = prompt_weights.plain_prompt(prompt)
    if "negative_prompt" in kwargs:
        kwargs["negative_prompt"] = prompt_weights.plain_prompt(negative)
    return notes


def adapter_records(adapters: list[ResolvedAdapter]) -> list[dict[str, Any]]:
    return [adapter.to_record() for adapter in adapters]

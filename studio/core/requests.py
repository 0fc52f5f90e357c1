"""Generation requests: frozen, validated parameter sets that are also the saved metadata.

Every numeric parameter declares its limit once, as field metadata (``limit(...)``): validation,
the panels' spin boxes and the model manager's editors are all built from that declaration
(``field_limit``, ``limits``).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

from studio.core.edits import check_edit_fields, check_upscale_fields
from studio.core.errors import InvalidRequest

REQUEST_SCHEMA_VERSION = 1
MAX_SEED = 2**32 - 1
_LIMIT_KEY = "studio.limit"


@dataclass(frozen=True)
class Limit:
    """The values one numeric request field accepts.

    ``low``/``high`` bound it (both included, unless ``above_low``: then the value must be more
    than ``low``); ``integer`` fields take whole numbers only; ``step`` is a sensible increment for
    an editor (and, with ``multiple``, a whole-number field must be a multiple of it); ``hint``
    ends the out-of-range message, e.g. ``" (0 turns top-k off)"``; ``unit`` names what the value
    counts ("seconds"); ``label`` is how a window titles it.
    """

    low: float
    high: float
    integer: bool
    step: float
    label: str
    unit: str = ""
    hint: str = ""
    above_low: bool = False
    multiple: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high or self.step <= 0:
            raise ValueError(f"a limit needs low < high and a positive step, got {self}")
        if self.multiple and not (self.integer and float(self.step).is_integer()):
            raise ValueError("only a whole-number field with a whole step can require a multiple of it")

    def check(self, name: str, value: Any) -> None:
        """Refuse ``value`` for the field ``name`` with an ``InvalidRequest`` naming it."""
        if self.integer and (isinstance(value, bool) or not isinstance(value, int)):
            raise InvalidRequest(name, f"{name} must be a whole number, got {value!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise InvalidRequest(name, f"{name} must be a number, got {value!r}")
        hint = self.hint or (f" {self.unit}" if self.unit else "")
        if not self.low <= value <= self.high:
            raise InvalidRequest(name, f"{name} must be between {self.low} and {self.high}, got {value}{hint}")
        if self.above_low and value == self.low:
            low = f"{self.low:g}"
            message = f"{name} must be more than {low} {self.unit}" if self.unit else f"{name} must be above {low}"
            raise InvalidRequest(name, message)
        if self.multiple and value % self.step:
            step = int(self.step)
            lower = int(value) - int(value) % step
            raise InvalidRequest(name, f"{name} must be a multiple of {step}: try {lower} or {lower + step}")


def limit(
    low: float,
    high: float,
    *,
    step: float | None = None,
    label: str,
    unit: str = "",
    hint: str = "",
    above_low: bool = False,
    multiple: bool = False,
) -> dict[str, Limit]:
    """Field metadata declaring a limit. Whole-number bounds (ints) make a whole-number field."""
    integer = isinstance(low, int) and isinstance(high, int)
    chosen = step if step is not None else (1 if integer else 0.01)
    return {_LIMIT_KEY: Limit(low, high, integer, chosen, label, unit, hint, above_low=above_low, multiple=multiple)}


_DECLARED: dict[type[Any], tuple[tuple[str, Limit, bool], ...]] = {}


def _declared(request_cls: type[Any]) -> tuple[tuple[str, Limit, bool], ...]:
    """(name, limit, may be None) for each field of ``request_cls`` that declares a limit."""
    found = _DECLARED.get(request_cls)
    if found is None:
        found = _DECLARED[request_cls] = tuple(
            (item.name, item.metadata[_LIMIT_KEY], item.default is None)
            for item in dataclasses.fields(request_cls)
            if isinstance(item.metadata.get(_LIMIT_KEY), Limit)
        )
    return found


def limits(request_cls: type[Any]) -> dict[str, Limit]:
    """Every declared limit of a request class, by field name, in field order."""
    return {name: declared for name, declared, _ in _declared(request_cls)}


def field_limit(request_cls: type[Any], name: str) -> Limit:
    """The limit declared for one field; ``KeyError`` when the field has none (or does not exist)."""
    for field_name, declared, _ in _declared(request_cls):
        if field_name == name:
            return declared
    raise KeyError(f"{request_cls.__name__}.{name} declares no limit")


def _check_limits(request: Any) -> None:
    for name, declared, optional in _declared(type(request)):
        value = getattr(request, name)
        if value is None and optional:
            continue
        declared.check(name, value)


def check_limits(request: Any) -> None:
    """Refuse a value outside its declared limit, for any dataclass declaring them (a training run too)."""
    _check_limits(request)


@dataclass(frozen=True)
class _Request:
    """Fields and checks every request shares."""

    kind: ClassVar[str] = ""
    prompt: str
    model: str
    seed: int | None = field(default=None, metadata=limit(0, MAX_SEED, label="Seed"))

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise InvalidRequest("prompt", "prompt must be text")
        if not isinstance(self.model, str) or not self.model.strip():
            raise InvalidRequest("model", "choose a model (a model folder or an id from 'studio models list')")
        self._validate()
        _check_limits(self)

    def _validate(self) -> None:  # the checks of a kind beyond its declared limits
        pass

    def with_seed(self, seed: int) -> _Request:
        return dataclasses.replace(self, seed=seed)

    def with_model(self, model: str) -> _Request:
        return dataclasses.replace(self, model=model)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return {"kind": self.kind, "schema_version": REQUEST_SCHEMA_VERSION, **data}


@dataclass(frozen=True)
class TextRequest(_Request):
    kind: ClassVar[str] = "text"
    system: str = ""
    max_tokens: int = field(default=256, metadata=limit(1, 32768, step=16, label="Max tokens"))
    temperature: float = field(
        default=0.7,
        metadata=limit(0.0, 5.0, step=0.05, label="Temperature", hint=" (0 means always the likeliest token)"),
    )
    top_p: float = field(default=0.95, metadata=limit(0.0, 1.0, step=0.01, label="Top p", above_low=True))
    top_k: int = field(default=50, metadata=limit(0, 100000, label="Top k", hint=" (0 turns top-k off)"))
    repetition_penalty: float = field(default=1.1, metadata=limit(0.5, 3.0, step=0.05, label="Repetition penalty"))
    stop: tuple[str, ...] = ()
    # Text already written that generation continues ("Continue" in the text tab).
    continue_from: str = ""
    # A peft LoRA adapter folder (or its name in the library) on top of the model, and its weight.
    lora: str = ""
    lora_weight: float = field(default=1.0, metadata=limit(-2.0, 2.0, step=0.05, label="LoRA weight"))
    # Min-p sampling (llama.cpp, transformers): drop tokens less likely than this share of the likeliest.
    min_p: float = field(default=0.0, metadata=limit(0.0, 1.0, step=0.01, label="Min p", hint=" (0 turns it off)"))
    # A conversation (``studio.core.conversation``): the earlier turns on the path being answered,
    # oldest first, as (role, content); the conversation's id; the turn the new message follows
    # ("" for the first); ``reply_to``: an existing user turn answered again (regenerate, continue).
    messages: tuple[tuple[str, str], ...] = ()
    conversation: str = ""
    turn_parent: str = ""
    reply_to: str = ""

    def _validate(self) -> None:
        _validate_conversation(self)
        if not isinstance(self.continue_from, str):
            raise InvalidRequest("continue_from", "the text to continue must be text")
        if not isinstance(self.lora, str):
            raise InvalidRequest("lora", "the LoRA must be a folder or a name")
        if not self.prompt.strip():
            raise InvalidRequest("prompt", "write a prompt first")
        if not isinstance(self.stop, tuple) or not all(isinstance(s, str) and s for s in self.stop):
            raise InvalidRequest("stop", "stop strings must be non-empty text")


def _validate_conversation(request: TextRequest) -> None:
    messages = request.messages
    if not isinstance(messages, tuple) or not all(
        isinstance(m, tuple) and len(m) == 2 and m[0] in ("user", "assistant") and isinstance(m[1], str)
        for m in messages
    ):
        raise InvalidRequest("messages", "earlier turns must be (role, text) pairs, role user or assistant")
    for name in ("conversation", "turn_parent", "reply_to"):
        if not isinstance(getattr(request, name), str):
            raise InvalidRequest(name, f"{name} must be an id")
    if (request.turn_parent or request.reply_to or messages) and not request.conversation:
        raise InvalidRequest("conversation", "earlier turns belong to a conversation: give its id")


@dataclass(frozen=True)
class ImageRequest(_Request):
    kind: ClassVar[str] = "image"
    negative: str = ""
    width: int = field(default=512, metadata=limit(8, 4096, step=8, label="Width", multiple=True))
    height: int = field(default=512, metadata=limit(8, 4096, step=8, label="Height", multiple=True))
    steps: int = field(default=25, metadata=limit(1, 500, label="Steps"))
    guidance: float = field(default=7.0, metadata=limit(0.0, 50.0, step=0.5, label="Guidance"))
    scheduler: str = ""
    # How many images one request makes: the tab shows and saves each, so a modest batch.
    count: int = field(default=1, metadata=limit(1, 16, label="Count"))
    # Image-to-image: the picture to start from (a file path) and how much of it to repaint.
    init_image: str = ""
    strength: float = field(
        default=0.6,
        metadata=limit(0.01, 1.0, step=0.05, label="Strength", hint=" (how much of the starting image is repainted)"),
    )
    # LoRA / LyCORIS adapters: (name in the library or file path, weight) pairs, applied in order;
    # ``<lora:NAME:WEIGHT>`` in the prompt adds to them. Embeddings: names or paths; each is used
    # where its token (the file's stem) appears in the prompt or the negative prompt.
    loras: tuple[tuple[str, float], ...] = ()
    embeddings: tuple[str, ...] = ()
    # Editing (``studio.core.edits``): a mask over the starting image (white repaints, black keeps), how
    # far its edge is feathered, "only masked" (repaint a crop around the mask at full resolution and
    # paste it back) with the margin around the mask, and what fills the masked area at the start.
    mask: str = ""
    mask_blur: int = field(default=4, metadata=limit(0, 64, label="Mask blur", unit="pixels"))
    only_masked: bool = False
    only_masked_padding: int = field(default=32, metadata=limit(0, 512, label="Padding", unit="pixels"))
    mask_fill: str = "original"
    # Outpaint: pixels added to the starting image's left, top, right and bottom.
    outpaint: tuple[int, int, int, int] = (0, 0, 0, 0)
    # Hires fix: generate, upscale by ``hires_scale`` (1 = off) with ``upscaler`` (a model file; "" is
    # Lanczos), then repaint at ``hires_strength``.
    hires_scale: float = field(default=1.0, metadata=limit(1.0, 4.0, step=0.25, label="Hires scale"))
    hires_strength: float = field(default=0.45, metadata=limit(0.01, 1.0, step=0.05, label="Hires strength"))
    upscaler: str = ""

    def _validate(self) -> None:
        if not self.prompt.strip():
            raise InvalidRequest("prompt", "write a prompt first")
        check_adapters(self.loras, self.embeddings)
        if not isinstance(self.scheduler, str):
            raise InvalidRequest("scheduler", "the scheduler must be a name")
        if not isinstance(self.init_image, str):
            raise InvalidRequest("init_image", "the starting image must be a file path")
        if self.init_image and not os.path.isfile(self.init_image):
            raise InvalidRequest("init_image", f"the starting image {self.init_image} does not exist")
        check_edit_fields(self)


@dataclass(frozen=True)
class MusicRequest(_Request):
    kind: ClassVar[str] = "music"
    # Seconds of new audio.
    duration: float = field(
        default=8.0, metadata=limit(0.0, 600.0, step=1.0, label="Duration", unit="seconds", above_low=True)
    )
    guidance: float = field(default=3.0, metadata=limit(0.0, 30.0, step=0.5, label="Guidance"))
    temperature: float = field(default=1.0, metadata=limit(0.0, 5.0, step=0.05, label="Temperature"))
    top_k: int = field(default=250, metadata=limit(0, 100000, label="Top k"))
    # Continue this clip (a file path): the result is the clip followed by ``duration`` new seconds.
    audio_prompt: str = ""
    # A melody to follow (a file path), for MusicGen Melody models.
    melody: str = ""
    # Songs (ACE-Step): lyrics with section tags ([verse], [chorus]…), their language, the song's facts.
    lyrics: str = ""
    language: str = ""  # a language code ("en", "ja"…); "" is the model's default (English)
    bpm: int = field(default=0, metadata=limit(0, 300, label="BPM", hint=" (0 lets the model choose)"))
    key: str = ""  # "D major", "F# minor"; "" lets the model choose
    time_signature: int = field(
        default=0, metadata=limit(0, 12, label="Beats per bar", hint=" (0 lets the model choose)")
    )
    steps: int = field(default=0, metadata=limit(0, 200, label="Steps", hint=" (0 is the model's own default)"))
    shift: float = field(
        default=0.0, metadata=limit(0.0, 10.0, step=0.5, label="Shift", hint=" (0 is the model's own default)")
    )
    # Editing a clip (a file path): ``edit`` says what to do with it (one of ``MUSIC_EDITS``).
    init_audio: str = ""
    edit: str = ""
    repaint_start: float = field(
        default=0.0, metadata=limit(0.0, 600.0, step=0.1, label="Region start", unit="seconds")
    )
    repaint_end: float = field(default=0.0, metadata=limit(0.0, 600.0, step=0.1, label="Region end", unit="seconds"))
    extend_left: float = field(default=0.0, metadata=limit(0.0, 600.0, step=1.0, label="Extend left", unit="seconds"))
    extend_right: float = field(default=0.0, metadata=limit(0.0, 600.0, step=1.0, label="Extend right", unit="seconds"))
    cover_strength: float = field(
        default=1.0,
        metadata=limit(0.0, 1.0, step=0.05, label="Cover strength", hint=" (1 keeps the most of the source)"),
    )
    track: str = ""  # the stem to add (layer) or extract: "vocals", "drums", "bass"…

    def _validate(self) -> None:
        if not self.prompt.strip() and not self.audio_prompt and not self.init_audio:
            raise InvalidRequest("prompt", "write a prompt first (or continue a clip)")
        for name in ("audio_prompt", "melody", "init_audio"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise InvalidRequest(name, f"{name} must be a file path")
            if value and not os.path.isfile(value):
                raise InvalidRequest(name, f"the audio file {value} does not exist")
        _validate_music_edit(self)


# The weights an adapter may take (A1111 accepts any; beyond ±2 a LoRA only burns the image).
ADAPTER_WEIGHT_RANGE = (-2.0, 2.0)


def check_adapter_weight(name: str, weight: Any, adapter: str) -> None:
    low, high = ADAPTER_WEIGHT_RANGE
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or math.isnan(weight):
        raise InvalidRequest(name, f"the weight of {adapter} must be a number, got {weight!r}")
    if not low <= weight <= high:
        raise InvalidRequest(name, f"the weight of {adapter} must be between {low:g} and {high:g}, got {weight:g}")


def check_adapters(loras: Any, embeddings: Any) -> None:
    if not isinstance(loras, tuple):
        raise InvalidRequest("loras", "LoRAs must be (name, weight) pairs")
    for pair in loras:
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str) and pair[0].strip()):
            raise InvalidRequest("loras", f"a LoRA must be a (name, weight) pair, got {pair!r}")
        check_adapter_weight("loras", pair[1], f"the LoRA {pair[0]!r}")
    if not isinstance(embeddings, tuple) or not all(isinstance(e, str) and e.strip() for e in embeddings):
        raise InvalidRequest("embeddings", "embeddings must be names or file paths")


# What a music request can do to its ``init_audio``.
MUSIC_EDITS = ("repaint", "extend", "cover", "layer", "extract")


def _validate_music_edit(request: MusicRequest) -> None:
    for name in ("lyrics", "language", "key", "edit", "track"):
        if not isinstance(getattr(request, name), str):
            raise InvalidRequest(name, f"{name} must be text")
    edit = request.edit
    if edit and edit not in MUSIC_EDITS:
        raise InvalidRequest("edit", f"edit must be one of {', '.join(MUSIC_EDITS)}, got {edit!r}")
    if edit and not request.init_audio:
        raise InvalidRequest("init_audio", f"choose the clip to {edit}")
    if request.init_audio and not edit:
        raise InvalidRequest("edit", f"say what to do with the clip: {', '.join(MUSIC_EDITS)}")
    if request.init_audio and request.audio_prompt:
        raise InvalidRequest("audio_prompt", "edit a clip or continue one, not both at once")
    if edit == "repaint":
        start, end = request.repaint_start, request.repaint_end
        if not start and not end:
            raise InvalidRequest("repaint_end", "choose the region to repaint (start and end, in seconds)")
        if end <= start:
            raise InvalidRequest("repaint_end", f"the region to repaint is empty: it ends ({end} s) before it starts")
    if edit == "extend" and request.extend_left <= 0 and request.extend_right <= 0:
        raise InvalidRequest("extend_right", "say how many seconds to add on the left or the right")
    if edit in ("layer", "extract") and not request.track.strip():
        raise InvalidRequest("track", f"name the stem to {'add' if edit == 'layer' else 'extract'} (vocals, drums…)")


@dataclass(frozen=True)
class UpscaleRequest(_Request):
    """Make an image larger: ``init_image`` (the source file) by ``scale`` with ``model`` — an upscaler
    model, the bundled Lanczos, or an image model that can re-render at any size (the pattern
    painter, with the source's ``prompt`` and ``seed``). The result is a new image, a child of the source."""

    kind: ClassVar[str] = "upscale"
    # The kinds of model that can run it (the worker checks the model against these).
    model_kinds: ClassVar[tuple[str, ...]] = ("upscaler", "image")
    init_image: str = ""
    scale: float = field(default=2.0, metadata=limit(1.0, 8.0, step=0.5, label="Scale", above_low=True))
    # Side of the square tiles an upscaler model runs on (0: chosen to fit the free memory).
    tile: int = field(default=0, metadata=limit(0, 4096, step=32, label="Tile", unit="pixels"))

    def _validate(self) -> None:
        check_upscale_fields(self)


Request = TextRequest | ImageRequest | MusicRequest | UpscaleRequest
REQUEST_TYPES: dict[str, type[_Request]] = {
    cls.kind: cls for cls in (TextRequest, ImageRequest, MusicRequest, UpscaleRequest)
}

# The request fields that name a source an output is made from (an image to repaint, a clip to
# continue or edit): an output made from one is a derivative whose record names it as its parent.
# A melody to follow is a condition, not a source, so it is not here.
SOURCE_FIELDS = ("init_image", "init_audio", "audio_prompt")

# What an output made from a source did to it, when the engine does not say more precisely.
_DEFAULT_TASKS = {"init_image": "image-to-image", "init_audio": "audio-to-audio", "audio_prompt": "continuation"}


def source_file(request: Any) -> tuple[str, str]:
    """(field, path) of the source a request starts from, or ("", "") for a plain generation."""
    for name in SOURCE_FIELDS:
        value = getattr(request, name, "")
        if isinstance(value, str) and value:
            return name, value
    return "", ""


def default_task(source_field: str) -> str:
    return _DEFAULT_TASKS.get(source_field, "edit")


def request_from_dict(data: dict[str, Any]) -> Request:
    """Rebuild a request from ``to_dict`` output; unknown keys from newer versions are ignored."""
    if not isinstance(data, dict):
        raise InvalidRequest("request", "a request must be a JSON object")
    kind = data.get("kind")
    cls = REQUEST_TYPES.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise InvalidRequest("kind", f"unknown request kind {kind!r}")
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    values = {k: v for k, v in data.items() if k in names}
    if "stop" in values and isinstance(values["stop"], list):
        values["stop"] = tuple(values["stop"])
    if isinstance(values.get("loras"), list):
        values["loras"] = tuple(tuple(pair) if isinstance(pair, list) else pair for pair in values["loras"])
    if isinstance(values.get("embeddings"), list):
        values["embeddings"] = tuple(values["embeddings"])
    if "outpaint" in values and isinstance(values["outpaint"], list):
        values["outpaint"] = tuple(values["outpaint"])
    if "messages" in values and isinstance(values["messages"], list):
        values["messages"] = tuple(tuple(m) if isinstance(m, list) else m for m in values["messages"])
    try:
        return cls(**values)  # type: ignore[return-value]
    except TypeError as exc:
        raise InvalidRequest("request", f"incomplete request: {exc}") from exc

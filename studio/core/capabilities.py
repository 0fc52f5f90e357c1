"""What a model offers: the controls it uses (and why not the others), its limits and defaults.

Engines fill a ``ModelInfo`` from a model's config files (no weights) — ``Engine.describe`` —
and every layer above reads it: a panel greys out a control the model does not use, with the
reason as its tooltip; the command line refuses a field the model would ignore. One typed,
frozen object instead of loose dict keys, so a new capability is one new ``Control``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from studio.core.errors import InvalidRequest

MODEL_INFO_SCHEMA_VERSION = 1


class Control(enum.StrEnum):
    """A request field (or group of fields) that some models use and others ignore."""

    # image
    NEGATIVE_PROMPT = "negative_prompt"
    STEPS = "steps"
    GUIDANCE = "guidance"
    SCHEDULER = "scheduler"
    IMAGE_INPUT = "image_input"  # start from an image (image-to-image)
    MASK = "mask"  # repaint a masked region (inpaint, outpaint)
    # text
    SYSTEM_PROMPT = "system_prompt"
    TEMPERATURE = "temperature"
    TOP_P = "top_p"
    TOP_K = "top_k"
    REPETITION_PENALTY = "repetition_penalty"
    STOP = "stop"
    # music
    AUDIO_INPUT = "audio_input"  # continue a clip
    MELODY_INPUT = "melody_input"  # follow a melody
    LYRICS = "lyrics"  # sing lyrics (with their language)
    SONG_FIELDS = "song_fields"  # BPM, key and scale, time signature
    SHIFT = "shift"  # the flow-matching timestep shift
    REPAINT = "repaint"  # repaint a region of a clip
    EXTEND = "extend"  # extend a clip on the left or right
    COVER = "cover"  # restyle a whole clip
    STEMS = "stems"  # add a layer to a clip, or extract a stem from it

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Control.NEGATIVE_PROMPT: "a negative prompt",
    Control.STEPS: "steps",
    Control.GUIDANCE: "guidance",
    Control.SCHEDULER: "a scheduler",
    Control.IMAGE_INPUT: "a starting image",
    Control.MASK: "a mask",
    Control.SYSTEM_PROMPT: "a system prompt",
    Control.TEMPERATURE: "temperature",
    Control.TOP_P: "top-p",
    Control.TOP_K: "top-k",
    Control.REPETITION_PENALTY: "a repetition penalty",
    Control.STOP: "stop strings",
    Control.AUDIO_INPUT: "continuing a clip",
    Control.MELODY_INPUT: "a melody to follow",
    Control.LYRICS: "lyrics",
    Control.SONG_FIELDS: "BPM, key and time signature",
    Control.SHIFT: "a timestep shift",
    Control.REPAINT: "repainting a region",
    Control.EXTEND: "extending a clip",
    Control.COVER: "covering a clip",
    Control.STEMS: "adding or extracting stems",
}

# The controls each kind of panel shows; a model of that kind uses some of them.
CONTROLS_BY_KIND: dict[str, tuple[Control, ...]] = {
    "image": (
        Control.NEGATIVE_PROMPT,
        Control.STEPS,
        Control.GUIDANCE,
        Control.SCHEDULER,
        Control.IMAGE_INPUT,
        Control.MASK,
    ),
    "text": (
        Control.SYSTEM_PROMPT,
        Control.TEMPERATURE,
        Control.TOP_P,
        Control.TOP_K,
        Control.REPETITION_PENALTY,
        Control.STOP,
    ),
    "music": (
        Control.GUIDANCE,
        Control.TEMPERATURE,
        Control.TOP_K,
        Control.AUDIO_INPUT,
        Control.MELODY_INPUT,
        Control.STEPS,
        Control.LYRICS,
        Control.SONG_FIELDS,
        Control.SHIFT,
        Control.REPAINT,
        Control.EXTEND,
        Control.COVER,
        Control.STEMS,
    ),
}


# The request fields behind each control: a control the model does not use leaves them unread.
FIELDS_OF_CONTROL: dict[Control, tuple[str, ...]] = {
    Control.NEGATIVE_PROMPT: ("negative",),
    Control.STEPS: ("steps",),
    Control.GUIDANCE: ("guidance",),
    Control.SCHEDULER: ("scheduler",),
    Control.IMAGE_INPUT: ("init_image", "strength"),
    Control.MASK: ("mask", "mask_blur", "only_masked", "only_masked_padding", "mask_fill", "outpaint"),
    Control.SYSTEM_PROMPT: ("system",),
    Control.TEMPERATURE: ("temperature",),
    Control.TOP_P: ("top_p",),
    Control.TOP_K: ("top_k",),
    Control.REPETITION_PENALTY: ("repetition_penalty",),
    Control.STOP: ("stop",),
    Control.AUDIO_INPUT: ("audio_prompt",),
    Control.MELODY_INPUT: ("melody",),
    Control.LYRICS: ("lyrics", "language"),
    Control.SONG_FIELDS: ("bpm", "key", "time_signature"),
    Control.SHIFT: ("shift",),
    Control.REPAINT: ("repaint_start", "repaint_end"),
    Control.EXTEND: ("extend_left", "extend_right"),
    Control.COVER: ("cover_strength",),
    Control.STEMS: ("track",),
}


# Fields that hand the model an input (a file): set for a model that cannot take it, the job is
# refused rather than run without it.
INPUT_FIELDS = frozenset(
    {"init_image", "audio_prompt", "melody", "mask", "outpaint"}
    | {"repaint_start", "extend_left", "extend_right", "cover_strength", "track"}
)


@dataclass(frozen=True)
class ModelInfo:
    """One model as the tabs and the command line see it.

    ``unused`` maps each control of the model's kind that it does not use to a sentence saying
    why (shown as the disabled control's tooltip). ``ref`` is what was asked about (an id or a
    folder), so a panel can tell whether the answer is still about the model it shows.
    """

    ref: str
    id: str = ""
    name: str = ""
    kind: str = ""
    format: str = ""
    family: str = ""
    path: str = ""
    runnable: bool = True
    reason: str = ""  # why it cannot run, when it cannot
    hint: str = ""  # what the tabs say about this model (its card's ``studio_hint``)
    unused: Mapping[Control, str] = field(default_factory=dict)
    suggested_defaults: Mapping[str, float] = field(default_factory=dict)
    # image models
    native_size: int = 0
    size_range: tuple[int, int] = (0, 0)
    schedulers: tuple[str, ...] = ()
    default_scheduler: str = ""
    # text models
    chat: bool = False  # has a chat template: the prompt goes in as a conversation
    context_length: int = 0  # 0: not stated
    # music models
    window_s: float = 0.0  # the longest stretch made in one go (continued past it); 0: no window
    whole_bars: bool = False  # the length is rounded to whole bars (symbolic models)
    max_duration_s: float = 0.0  # the longest piece the model makes; 0: not stated
    default_steps: int = 0  # what steps 0 means for this model; 0: not stated
    default_shift: float = 0.0  # what shift 0 means for this model
    lyrics_tokens: int = 0  # the most lyric tokens the model reads; 0: not stated

    def uses(self, control: Control) -> bool:
        return control not in self.unused

    def why_unused(self, control: Control) -> str:
        return self.unused.get(control, "")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"schema_version": MODEL_INFO_SCHEMA_VERSION}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "unused":
                value = {str(k): v for k, v in value.items()}
            elif isinstance(value, Mapping):
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            data[f.name] = value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelInfo:
        """Rebuild from ``to_dict``; unknown keys and unknown controls (a newer Studio) are ignored."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        unused = values.get("unused") or {}
        values["unused"] = {Control(k): str(v) for k, v in unused.items() if k in Control._value2member_map_}
        for name in ("size_range", "schedulers"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)

    def ignored_fields(self, request: Any) -> list[tuple[str, str]]:
        """(field, why) for each field of ``request`` set away from its default that this model does
        not read — what the command line warns about, since it has no controls to grey out."""
        ignored = []
        editing = self._edits_with_mask(request)
        for control, why in self.unused.items():
            for name in FIELDS_OF_CONTROL[control]:
                if editing and name == "init_image":
                    continue  # the picture the mask is about, not a starting image
                default = _field_default(type(request), name)
                if default is not _NO_DEFAULT and getattr(request, name, default) != default:
                    ignored.append((name, why))
        return ignored

    def refuse_unused_inputs(self, request: Any) -> None:
        """Raise ``InvalidRequest`` when ``request`` hands this model an input it cannot take (a
        starting image for the pattern painter, a clip to continue for a melody model)."""
        if getattr(request, "kind", "") == "upscale":
            return  # the image to upscale is no starting image: the upscale's engine checks it
        for name, why in self.ignored_fields(request):
            if name in INPUT_FIELDS:
                raise InvalidRequest(name, why)
        control = _CONTROL_OF_EDIT.get(str(getattr(request, "edit", "") or ""))
        if control is not None and control in self.unused:
            raise InvalidRequest("edit", self.unused[control])

    def _edits_with_mask(self, request: Any) -> bool:
        """A model that repaints masked regions takes the image its mask (or outpaint) is about."""
        return self.uses(Control.MASK) and (
            bool(getattr(request, "mask", "")) or any(getattr(request, "outpaint", ()) or ())
        )


# The control behind each edit a music request can ask for (``MusicRequest.edit``).
_CONTROL_OF_EDIT = {
    "repaint": Control.REPAINT,
    "extend": Control.EXTEND,
    "cover": Control.COVER,
    "layer": Control.STEMS,
    "extract": Control.STEMS,
}


_NO_DEFAULT = object()


def _field_default(cls: type, name: str) -> Any:
    for f in fields(cls):
        if f.name == name:
            return f.default
    return _NO_DEFAULT


def unused_controls(
    kind: str, uses: Iterable[Control], reasons: Mapping[Control, str] | None = None, *, name: str = "this model"
) -> dict[Control, str]:
    """Every control of ``kind`` not in ``uses``, each with its reason from ``reasons`` or a plain
    "NAME does not use X"."""
    used = set(uses)
    reasons = reasons or {}
    return {
        control: reasons.get(control) or _usual_reason(control, name)
        for control in CONTROLS_BY_KIND.get(kind, ())
        if control not in used
    }


# What a music model that lacks a song or editing control says, naming the models that have it.
_SONG_REASONS = {
    Control.LYRICS: "{name} does not sing lyrics; ACE-Step models do",
    Control.SONG_FIELDS: "{name} takes no BPM, key or time signature; ACE-Step models do",
    Control.SHIFT: "{name} has no timestep shift; ACE-Step models do",
    Control.REPAINT: "{name} cannot repaint a region of a clip; ACE-Step models can",
    Control.EXTEND: "{name} cannot extend a clip; ACE-Step models can (MusicGen continues one on the right)",
    Control.COVER: "{name} cannot cover a clip; ACE-Step models can",
    Control.STEMS: "{name} cannot add or extract stems; ACE-Step base checkpoints can",
}


def _usual_reason(control: Control, name: str) -> str:
    template = _SONG_REASONS.get(control)
    return template.format(name=name) if template else f"{name} does not use {control.label}"

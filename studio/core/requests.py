"""Generation requests: frozen, validated parameter sets that are also the saved metadata."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any, ClassVar

from studio.core.errors import InvalidRequest

REQUEST_SCHEMA_VERSION = 1
MAX_SEED = 2**32 - 1


def _check_range(name: str, value: float, low: float, high: float, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise InvalidRequest(name, f"{name} must be a number, got {value!r}")
    if not low <= value <= high:
        raise InvalidRequest(name, f"{name} must be between {low} and {high}, got {value}{hint}")


def _check_int(name: str, value: Any, low: int, high: int, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(name, f"{name} must be a whole number, got {value!r}")
    _check_range(name, value, low, high, hint)


@dataclass(frozen=True)
class _Request:
    """Fields and checks every request shares."""

    kind: ClassVar[str] = ""
    prompt: str
    model: str
    seed: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise InvalidRequest("prompt", "prompt must be text")
        if not isinstance(self.model, str) or not self.model.strip():
            raise InvalidRequest("model", "choose a model (a model folder or an id from 'studio models list')")
        if self.seed is not None:
            _check_int("seed", self.seed, 0, MAX_SEED)
        self._validate()

    def _validate(self) -> None:  # overridden per kind
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
    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 50
    repetition_penalty: float = 1.1
    stop: tuple[str, ...] = ()
    # Text already written that generation continues ("Continue" in the text tab).
    continue_from: str = ""

    def _validate(self) -> None:
        if not isinstance(self.continue_from, str):
            raise InvalidRequest("continue_from", "the text to continue must be text")
        if not self.prompt.strip():
            raise InvalidRequest("prompt", "write a prompt first")
        _check_int("max_tokens", self.max_tokens, 1, 32768)
        _check_range("temperature", self.temperature, 0.0, 5.0, " (0 means always the likeliest token)")
        _check_range("top_p", self.top_p, 0.0, 1.0)
        if self.top_p == 0:
            raise InvalidRequest("top_p", "top_p must be above 0")
        _check_int("top_k", self.top_k, 0, 100000, " (0 turns top-k off)")
        _check_range("repetition_penalty", self.repetition_penalty, 0.5, 3.0)
        if not isinstance(self.stop, tuple) or not all(isinstance(s, str) and s for s in self.stop):
            raise InvalidRequest("stop", "stop strings must be non-empty text")


@dataclass(frozen=True)
class ImageRequest(_Request):
    kind: ClassVar[str] = "image"
    negative: str = ""
    width: int = 512
    height: int = 512
    steps: int = 25
    guidance: float = 7.0
    scheduler: str = ""
    count: int = 1
    # Image-to-image: the picture to start from (a file path) and how much of it to repaint.
    init_image: str = ""
    strength: float = 0.6

    def _validate(self) -> None:
        if not self.prompt.strip():
            raise InvalidRequest("prompt", "write a prompt first")
        if not isinstance(self.scheduler, str):
            raise InvalidRequest("scheduler", "the scheduler must be a name")
        if not isinstance(self.init_image, str):
            raise InvalidRequest("init_image", "the starting image must be a file path")
        if self.init_image and not os.path.isfile(self.init_image):
            raise InvalidRequest("init_image", f"the starting image {self.init_image} does not exist")
        _check_range("strength", self.strength, 0.01, 1.0, " (how much of the starting image is repainted)")
        for name in ("width", "height"):
            value = getattr(self, name)
            _check_int(name, value, 8, 4096)
            if value % 8:
                lower, upper = value - value % 8, value - value % 8 + 8
                raise InvalidRequest(name, f"{name} must be a multiple of 8: try {lower} or {upper}")
        _check_int("steps", self.steps, 1, 500)
        _check_range("guidance", self.guidance, 0.0, 50.0)
        _check_int("count", self.count, 1, 64)


@dataclass(frozen=True)
class MusicRequest(_Request):
    kind: ClassVar[str] = "music"
    duration: float = 8.0  # seconds of new audio
    guidance: float = 3.0
    temperature: float = 1.0
    top_k: int = 250
    # Continue this clip (a file path): the result is the clip followed by ``duration`` new seconds.
    audio_prompt: str = ""
    # A melody to follow (a file path), for MusicGen Melody models.
    melody: str = ""

    def _validate(self) -> None:
        if not self.prompt.strip() and not self.audio_prompt:
            raise InvalidRequest("prompt", "write a prompt first (or continue a clip)")
        _check_range("duration", self.duration, 0.0, 600.0, " seconds")
        if self.duration <= 0:
            raise InvalidRequest("duration", "duration must be more than 0 seconds")
        for name in ("audio_prompt", "melody"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise InvalidRequest(name, f"{name} must be a file path")
            if value and not os.path.isfile(value):
                raise InvalidRequest(name, f"the audio file {value} does not exist")
        _check_range("guidance", self.guidance, 0.0, 30.0)
        _check_range("temperature", self.temperature, 0.0, 5.0)
        _check_int("top_k", self.top_k, 0, 100000)


Request = TextRequest | ImageRequest | MusicRequest
REQUEST_TYPES: dict[str, type[_Request]] = {cls.kind: cls for cls in (TextRequest, ImageRequest, MusicRequest)}


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
    try:
        return cls(**values)  # type: ignore[return-value]
    except TypeError as exc:
        raise InvalidRequest("request", f"incomplete request: {exc}") from exc

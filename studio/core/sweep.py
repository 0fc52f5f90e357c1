"""Sweeps (A1111's X/Y/Z plot): up to three axes over request fields, expanded into one request per cell.

An axis is ``FIELD=V1,V2,…`` over any field of the request (seed, steps, guidance, scheduler,
width, model, …). Two fields are special, as in A1111: ``prompt`` is *search and replace* — the
first value is the text searched for in the prompt and every value (the first included, so the
original is a cell) replaces it — and ``size`` takes ``WxH`` values. ``lora:NAME`` sweeps an
adapter's weight: an image request's ``loras`` entry named NAME (added when the request has none
of that name; a weight in the list beats a ``<lora:NAME:W>`` tag in the prompt), a text request's
``lora`` / ``lora_weight``. Numbers may be written as
ranges: ``1-5`` (every whole number), ``1-10 (+3)`` (a step), ``1-2 [5]`` (that many values,
evenly spaced). Every cell is validated as the request it becomes, so a bad value is named with
its axis before anything runs. Plain Python: the CLI, the batch plans and the window share it.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass
from typing import Any

from studio.core.errors import InvalidRequest
from studio.core.requests import ImageRequest, Request, TextRequest

MAX_CELLS = 1000
AXIS_NAMES = ("x", "y", "z")
# ``lora:NAME=0.2,0.6,1.0``: the weight of the adapter NAME (a name in the library or a file path).
ADAPTER_AXIS = "lora:"
# Fields a sweep must not vary: what identifies the request, and the sources of an edit.
_NOT_SWEPT = frozenset(
    {"kind", "schema_version", "count", "init_image", "init_audio", "audio_prompt", "melody", "mask", "messages"}
)
_RANGE = re.compile(
    r"^\s*(-?\d+(?:\.\d+)?)\s*-\s*(-?\d+(?:\.\d+)?)\s*(?:\(\s*\+\s*(\d+(?:\.\d+)?)\s*\)|\[\s*(\d+)\s*\])?\s*$"
)


@dataclass(frozen=True)
class Axis:
    """One axis: the field it varies and its values (already of the field's type)."""

    field: str
    values: tuple[Any, ...]
    # For ``prompt``: the text searched for (the first value as written).
    search: str = ""

    def label(self, value: Any) -> str:
        """How a grid names one value of this axis."""
        if self.field == "size" and isinstance(value, tuple):
            return f"size: {value[0]}x{value[1]}"
        if self.field == "model":
            name = str(value).rstrip("/").rsplit("/", 1)[-1]
            return f"model: {name}"
        if self.field.startswith(ADAPTER_AXIS):
            return f"{adapter_label(self.field)}: {value:g}"
        if isinstance(value, float):
            return f"{self.field}: {value:g}"
        return f"{self.field}: {value}"

    def to_dict(self) -> dict[str, Any]:
        values = [list(v) if isinstance(v, tuple) else v for v in self.values]
        return {"field": self.field, "values": values, **({"search": self.search} if self.search else {})}


@dataclass(frozen=True)
class Cell:
    """One cell of a sweep: its index on each axis, and the request it runs."""

    index: tuple[int, ...]  # (x, y, z), 0 for an axis the sweep does not have
    request: Request
    labels: tuple[str, ...]


def _field_types(request: Request) -> dict[str, Any]:
    hints = typing.get_type_hints(type(request))
    return {f.name: hints.get(f.name, str) for f in dataclasses.fields(request) if f.init}


def _split(text: str) -> list[str]:
    """Values separated by commas; a value in double quotes may contain commas."""
    values: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            values.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    values.append("".join(current).strip())
    return [v for v in values if v != ""]


def _expand_range(text: str, integer: bool) -> list[float] | None:
    found = _RANGE.match(text)
    if found is None:
        return None
    start, end = float(found.group(1)), float(found.group(2))
    if found.group(4):  # [count]: evenly spaced
        count = int(found.group(4))
        if count < 1:
            return []
        if count == 1:
            return [start]
        step = (end - start) / (count - 1)
        return [start + step * i for i in range(count)]
    step = float(found.group(3)) if found.group(3) else 1.0
    if step <= 0:
        return None
    direction = 1 if end >= start else -1
    values: list[float] = []
    value = start
    while (value - end) * direction <= 1e-9 and len(values) <= MAX_CELLS:
        values.append(value)
        value += step * direction
    return values


def _number(name: str, text: str, integer: bool) -> list[Any]:
    expanded = _expand_range(text, integer)
    numbers = expanded if expanded is not None else None
    if numbers is None:
        try:
            numbers = [float(text)]
        except ValueError as exc:
            raise InvalidRequest(name, f"{name}: {text!r} is not a number or a range like 1-5") from exc
    if integer:
        whole = [round(n) for n in numbers]
        if any(abs(w - n) > 1e-9 for w, n in zip(whole, numbers, strict=True)):
            raise InvalidRequest(name, f"{name} takes whole numbers, got {text!r}")
        return whole
    return [round(n, 6) for n in numbers]


def _adapter_stem(ref: str) -> str:
    """A LoRA as people name it: its file's stem or its folder's name, whatever path it came by."""
    last = ref.rstrip("/").replace("\\", "/").rsplit("/", 1)[-1]
    return last.rsplit(".", 1)[0] if last.lower().endswith((".safetensors", ".pt", ".bin", ".ckpt")) else last


def adapter_label(field: str) -> str:
    """``lora:/models/inkwash.safetensors`` → ``lora inkwash`` (a grid label names the adapter, not its path)."""
    return f"lora {_adapter_stem(field[len(ADAPTER_AXIS) :])}"


def _same_adapter(listed: str, name: str) -> bool:
    """Whether ``listed`` (a request's LoRA: a name or a path) is the adapter ``name``."""
    return listed == name or _adapter_stem(listed) == _adapter_stem(name)


def _adapter_axis(field: str, rest: str, base: Request) -> Axis:
    name = field[len(ADAPTER_AXIS) :].strip()
    if not name:
        raise InvalidRequest("sweep", "an adapter's weight axis names it: lora:NAME=0.2,0.6,1.0")
    if base.kind not in ("image", "text"):
        raise InvalidRequest("sweep", f"{base.kind} requests take no adapters")
    if isinstance(base, TextRequest) and base.lora and not _same_adapter(base.lora, name):
        raise InvalidRequest("sweep", f"this text request uses the LoRA {base.lora!r}; a text job takes one")
    raw = _split(rest)
    if not raw:
        raise InvalidRequest("sweep", f"the axis {field} has no values")
    values: list[Any] = []
    for text in raw:
        values.extend(_number(adapter_label(field), text, integer=False))
    if len(values) > MAX_CELLS:
        raise InvalidRequest("sweep", f"the axis {field} has {len(values)} values; at most {MAX_CELLS}")
    return Axis(ADAPTER_AXIS + name, tuple(values))


def parse_axis(spec: str, base: Request) -> Axis:
    """``FIELD=V1,V2,…`` → an ``Axis`` over ``base``'s kind of request."""
    field, sep, rest = spec.partition("=")
    field = field.strip()
    if field.lower().startswith(ADAPTER_AXIS) and sep:
        return _adapter_axis(ADAPTER_AXIS + field[len(ADAPTER_AXIS) :], rest, base)
    field = field.replace("-", "_")
    if not sep or not field:
        raise InvalidRequest("sweep", f"an axis is FIELD=V1,V2,… (e.g. seed=1,2,3), got {spec!r}")
    types = _field_types(base)
    if field != "size" and (field not in types or field in _NOT_SWEPT):
        sweepable = sorted(set(types) - _NOT_SWEPT | ({"size"} if base.kind == "image" else set()))
        adapters = ", or lora:NAME for an adapter's weight" if base.kind in ("image", "text") else ""
        raise InvalidRequest(
            "sweep",
            f"{base.kind} requests have no field {field!r} to sweep; try one of: " + ", ".join(sweepable) + adapters,
        )
    if field == "size" and base.kind != "image":
        raise InvalidRequest("sweep", "only images have a size")
    raw = _split(rest)
    if not raw:
        raise InvalidRequest("sweep", f"the axis {field} has no values")
    if field == "prompt":
        search = raw[0]
        if search not in base.prompt:
            raise InvalidRequest("sweep", f"prompt search and replace: {search!r} is not in the prompt")
        return Axis("prompt", tuple(raw), search=search)
    values: list[Any] = []
    if field == "size":
        for text in raw:
            found = re.fullmatch(r"\s*(\d+)\s*[x×]\s*(\d+)\s*", text)
            if not found:
                raise InvalidRequest("sweep", f"size values are WIDTHxHEIGHT, got {text!r}")
            values.append((int(found.group(1)), int(found.group(2))))
    else:
        kind = types[field]
        for text in raw:
            if kind in (int, int | None):
                values.extend(_number(field, text, integer=True))
            elif kind in (float, float | None):
                values.extend(_number(field, text, integer=False))
            elif kind is bool:
                values.append(text.lower() in ("1", "true", "yes", "on"))
            else:
                values.append(text)
    if len(values) > MAX_CELLS:
        raise InvalidRequest("sweep", f"the axis {field} has {len(values)} values; at most {MAX_CELLS}")
    return Axis(field, tuple(values))


def _apply(request: Request, axis: Axis, value: Any) -> Request:
    if axis.field == "prompt":
        return dataclasses.replace(request, prompt=request.prompt.replace(axis.search, str(value)))
    if axis.field == "size":
        return dataclasses.replace(request, width=value[0], height=value[1])
    if axis.field.startswith(ADAPTER_AXIS):
        return _with_adapter_weight(request, axis.field[len(ADAPTER_AXIS) :], float(value))
    return dataclasses.replace(request, **{axis.field: value})


def _with_adapter_weight(request: Request, name: str, weight: float) -> Request:
    """``request`` with the adapter ``name`` at ``weight``: its entry changed in place, else added last."""
    if isinstance(request, TextRequest):
        return dataclasses.replace(request, lora=request.lora or name, lora_weight=weight)
    if not isinstance(request, ImageRequest):
        raise InvalidRequest("sweep", f"{request.kind} requests take no adapters")
    loras = request.loras
    changed = tuple((ref, weight) if _same_adapter(ref, name) else (ref, w) for ref, w in loras)
    if not any(_same_adapter(ref, name) for ref, _ in loras):
        changed = (*loras, (name, weight))
    return dataclasses.replace(request, loras=changed)


def expand(base: Request, axes: list[Axis]) -> list[Cell]:
    """Every cell of the sweep, z-major then y then x (the order a grid is read); each validated."""
    if not 1 <= len(axes) <= 3:
        raise InvalidRequest("sweep", "a sweep has one to three axes (x, y, z)")
    fields = [a.field for a in axes]
    if len(set(fields)) != len(fields):
        raise InvalidRequest("sweep", "each axis must vary a different field")
    padded = list(axes) + [Axis("", ("",))] * (3 - len(axes))
    total = 1
    for axis in axes:
        total *= len(axis.values)
    if total > MAX_CELLS:
        raise InvalidRequest("sweep", f"this sweep would make {total} cells; at most {MAX_CELLS}")
    cells = []
    x_axis, y_axis, z_axis = padded
    for zi, z in enumerate(z_axis.values):
        for yi, y in enumerate(y_axis.values):
            for xi, x in enumerate(x_axis.values):
                request, labels = base, []
                for axis, value in ((x_axis, x), (y_axis, y), (z_axis, z)):
                    if not axis.field:
                        continue
                    try:
                        request = _apply(request, axis, value)
                    except InvalidRequest as exc:
                        raise InvalidRequest("sweep", f"{axis.field} = {value}: {exc}") from exc
                    labels.append(axis.label(value))
                cells.append(Cell((xi, yi, zi), request, tuple(labels)))
    return cells


def describe(axes: list[Axis]) -> list[dict[str, Any]]:
    """The axes as the grid's record lists them."""
    return [{"axis": name, **axis.to_dict()} for name, axis in zip(AXIS_NAMES, axes, strict=False)]

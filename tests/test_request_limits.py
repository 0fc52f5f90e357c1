"""Each numeric request parameter declares its limit once; validation, the panels' spin boxes and
the model manager's editors all follow that one declaration."""

import dataclasses
import math

import pytest

from studio.core.errors import InvalidRequest
from studio.core.models import ModelSpec
from studio.core.requests import (
    MAX_SEED,
    ImageRequest,
    Limit,
    MusicRequest,
    TextRequest,
    field_limit,
    limits,
    request_from_dict,
)
from studio.ui.widgets.controls import double_spin_for, editor_range, spin_for

REQUESTS = (TextRequest, ImageRequest, MusicRequest)
# The numeric fields of each request: every one must declare a limit.
NUMERIC = {
    TextRequest: {"seed", "max_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "min_p", "lora_weight"},
    ImageRequest: {"seed", "width", "height", "steps", "guidance", "count", "strength"}
    | {"mask_blur", "only_masked_padding", "hires_scale", "hires_strength"},  # editing (issue 19)
    MusicRequest: {"seed", "duration", "guidance", "temperature", "top_k"}
    | {"bpm", "time_signature", "steps", "shift", "repaint_start", "repaint_end", "extend_left", "extend_right"}
    | {"cover_strength"},
}
DECLARED = [(cls, name, declared) for cls in REQUESTS for name, declared in limits(cls).items()]
EDITABLE = [(cls, name, declared) for cls, name, declared in DECLARED if name != "seed"]  # a seed has its own field


def _ids(case):
    return f"{case[0].__name__}.{case[1]}"


def _make(cls, **values):
    return cls(prompt="x", model="m", **values)


def _lowest(declared: Limit) -> float:
    """The lowest value the request accepts."""
    if not declared.above_low:
        return declared.low
    return declared.low + 1 if declared.integer else math.nextafter(declared.low, math.inf)


def _below(declared: Limit) -> float:
    if declared.above_low:
        return declared.low
    return declared.low - 1 if declared.integer else math.nextafter(declared.low, -math.inf)


def _above(declared: Limit) -> float:
    return declared.high + 1 if declared.integer else math.nextafter(declared.high, math.inf)


def test_every_numeric_field_declares_a_limit_and_nothing_else_does():
    for cls in REQUESTS:
        assert set(limits(cls)) == NUMERIC[cls]
        numeric = {f.name for f in dataclasses.fields(cls) if f.type in ("int", "float", "int | None")}
        assert numeric == NUMERIC[cls]


def test_field_limit_refuses_fields_without_a_limit():
    with pytest.raises(KeyError):
        field_limit(TextRequest, "prompt")
    with pytest.raises(KeyError):
        field_limit(ImageRequest, "no_such_field")
    assert field_limit(TextRequest, "top_k").hint == " (0 turns top-k off)"


def test_one_count_limit():
    count = field_limit(ImageRequest, "count")
    assert (count.low, count.high, count.integer) == (1, 16, True)
    _make(ImageRequest, count=16)
    with pytest.raises(InvalidRequest):
        _make(ImageRequest, count=17)


@pytest.mark.parametrize(("cls", "name", "declared"), DECLARED, ids=map(_ids, DECLARED))
def test_the_request_takes_its_bounds_and_refuses_just_outside(cls, name, declared):
    for bound in (_lowest(declared), declared.high):
        value = int(bound) if declared.integer else bound
        if declared.multiple:
            value -= value % int(declared.step)
        assert getattr(_make(cls, **{name: value}), name) == value
    for value in (_below(declared), _above(declared)):
        with pytest.raises(InvalidRequest) as caught:
            _make(cls, **{name: value})
        assert caught.value.field == name and name in str(caught.value)


@pytest.mark.parametrize(("cls", "name", "declared"), DECLARED, ids=map(_ids, DECLARED))
def test_wrong_types_are_refused_with_the_field_named(cls, name, declared):
    for value in ("3", True, float("nan")) + ((2.0,) if declared.integer else ()):
        with pytest.raises(InvalidRequest) as caught:
            _make(cls, **{name: value})
        assert caught.value.field == name


def test_the_extra_rules_stay():
    with pytest.raises(InvalidRequest, match="multiple of 8: try 496 or 504"):
        _make(ImageRequest, height=500)
    with pytest.raises(InvalidRequest, match="top_p must be above 0"):
        _make(TextRequest, top_p=0.0)
    with pytest.raises(InvalidRequest, match="duration must be more than 0 seconds"):
        _make(MusicRequest, duration=0)
    with pytest.raises(InvalidRequest, match=r"between 0.0 and 600.0, got 601 seconds"):
        _make(MusicRequest, duration=601)
    with pytest.raises(InvalidRequest, match=r"top_k must be between 0 and 100000, got -1 \(0 turns top-k off\)"):
        _make(TextRequest, top_k=-1)
    with pytest.raises(InvalidRequest, match="repainted"):
        _make(ImageRequest, strength=0.0)
    assert _make(TextRequest, seed=None).seed is None and _make(TextRequest, seed=MAX_SEED).seed == MAX_SEED


def test_round_trip_still_keeps_every_parameter():
    request = _make(ImageRequest, width=64, height=48, steps=3, count=16, strength=0.5, seed=9)
    assert request_from_dict(request.to_dict()) == request
    assert "count" in request.to_dict() and request.to_dict()["count"] == 16


@pytest.mark.parametrize(("cls", "name", "declared"), EDITABLE, ids=map(_ids, EDITABLE))
def test_spin_boxes_follow_the_declaration(qtbot, cls, name, declared):
    default = next(f.default for f in dataclasses.fields(cls) if f.name == name)
    if declared.integer:
        box = spin_for(cls, name, "tip")
        low, high = editor_range(declared)
    else:
        box = double_spin_for(cls, name, "tip")
        low, high = editor_range(declared, 2)
        with pytest.raises(TypeError):
            spin_for(cls, name, "tip")
    qtbot.addWidget(box)
    assert (box.minimum(), box.maximum()) == (low, high)
    assert box.maximum() == declared.high
    assert box.minimum() == (declared.low if not declared.above_low else low)
    assert box.singleStep() == declared.step and box.value() == default
    assert box.accessibleName() == name.replace("_", " ") and box.toolTip() == "tip"
    _make(cls, **{name: box.minimum() if not declared.integer else int(box.minimum())})  # the editor's lowest is valid


def test_spin_box_overrides(qtbot):
    box = spin_for(ImageRequest, "count", "how many", value=4, name="images")
    qtbot.addWidget(box)
    assert (box.value(), box.accessibleName(), box.maximum()) == (4, "images", 16)
    fine = double_spin_for(TextRequest, "top_p", "tip", value=0.5, step=0.001, decimals=3)
    qtbot.addWidget(fine)
    assert (fine.minimum(), fine.singleStep(), fine.decimals(), fine.value()) == (0.001, 0.001, 3, 0.5)
    with pytest.raises(ValueError):
        spin_for(TextRequest, "seed", "past a C int")


def test_model_manager_editors_follow_the_declaration(qtbot, services, tmp_path):
    from studio.core.requests import REQUEST_TYPES
    from studio.ui.model_manager import DEFAULT_PARAMETERS, ModelManager

    dialog = ModelManager(services)
    qtbot.addWidget(dialog)
    assert set(DEFAULT_PARAMETERS) == {"text", "image", "music"}
    for kind, names in DEFAULT_PARAMETERS.items():
        dialog._build_defaults(ModelSpec(kind, kind, kind, "test", tmp_path / kind, "folder", True))
        assert set(dialog.default_fields) == set(names)
        for name, box in dialog.default_fields.items():
            declared = field_limit(REQUEST_TYPES[kind], name)
            low, _ = editor_range(declared, box.decimals())
            assert box.maximum() == declared.high
            assert box.minimum() == pytest.approx(low - declared.step)  # one step below: "tab's own"
            assert box.value() == box.minimum() and box.text() == "tab's own"
            assert box.singleStep() == declared.step
            assert box.decimals() == (0 if declared.integer else 2)
            assert box.accessibleName().startswith(f"default {declared.label.lower()}")


def test_model_manager_saves_only_set_defaults_as_their_declared_types(qtbot, services, tmp_path, monkeypatch):
    from studio.ui.model_manager import ModelManager

    dialog = ModelManager(services)
    qtbot.addWidget(dialog)
    spec = ModelSpec("text", "my-lm", "text", "test", tmp_path / "my-lm", "folder", True)
    monkeypatch.setattr(dialog, "selected", lambda: spec)
    dialog._build_defaults(spec)
    dialog.default_fields["max_tokens"].setValue(100)
    dialog.save_defaults()
    saved = services.settings.get("model_defaults")[str(spec.path)]
    assert saved == {"max_tokens": 100} and isinstance(saved["max_tokens"], int)  # temperature left "tab's own"
    dialog._build_defaults(spec)
    assert dialog.default_fields["max_tokens"].value() == 100
    dialog.default_fields["max_tokens"].setValue(dialog.default_fields["max_tokens"].minimum())
    dialog.save_defaults()
    assert str(spec.path) not in services.settings.get("model_defaults")

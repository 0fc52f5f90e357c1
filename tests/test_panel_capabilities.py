"""Each tab greys out exactly the controls the selected model does not use, from its typed
``ModelInfo``, each with the reason as its tooltip (and its own tooltip back once usable).

First with descriptions made here (every control of each kind in turn), then through the real
worker for every starter model and every tiny test model.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QListWidgetItem

from studio.core.capabilities import CONTROLS_BY_KIND, Control, ModelInfo
from studio.core.requests import ImageRequest, MusicRequest, TextRequest

STARTERS = {"text": "studio-starter-text", "image": "studio-starter-patterns", "music": "studio-starter-melody"}
# Widgets no model's capabilities touch: they stay enabled whatever is described.
ALWAYS = {
    "image": ("prompt", "model_picker", "width_box", "height_box", "size_preset", "count"),
    "text": ("prompt", "model_picker", "max_tokens"),
    "music": ("prompt", "model_picker", "duration"),
}


def _described(qtbot, panel, ref: str) -> ModelInfo:
    qtbot.waitUntil(lambda: panel.model_info is not None and panel.model_info.ref == ref, timeout=60000)
    return panel.model_info


def assert_greys_out_exactly(panel, info: ModelInfo) -> None:
    widgets = panel.capability_widgets()
    # Every control of the kind has its widgets.
    assert set(widgets) == set(CONTROLS_BY_KIND[panel.kind])
    conditions = panel.conditions()
    for control, group in widgets.items():
        assert group, control
        for widget in group:
            own = widget.property("studio_own_tooltip")
            label = f"{control} {widget.accessibleName() or type(widget).__name__}"
            if info.uses(control):
                assert widget.isEnabled() == conditions.get(widget, True), label
                assert widget.toolTip() == own, label
            else:
                assert not widget.isEnabled(), label
                assert widget.toolTip() == info.why_unused(control) != "", label
    for name in ALWAYS[panel.kind]:
        assert getattr(panel, name).isEnabled(), name


def _image_panel_with_a_selected_item(window, qtbot):
    panel = window.image_panel
    entry = QListWidgetItem("")
    entry.setData(Qt.ItemDataRole.UserRole, SimpleNamespace(path=Path("/nowhere/x.png"), id="item", record=None))
    panel.strip.addItem(entry)
    panel.strip.setCurrentItem(entry)
    return panel


@pytest.mark.parametrize("kind", ["image", "text", "music"])
def test_each_control_greys_out_alone_with_its_reason_and_comes_back(window, qtbot, kind):
    panel = window.panels[kind]
    if kind == "image":
        _image_panel_with_a_selected_item(window, qtbot)  # so "Start from this" would be enabled
    ref = panel.model_picker.current_model()
    assert Path(ref).name == STARTERS[kind]
    _described(qtbot, panel, ref)  # the worker's own answer first, so it cannot overwrite ours later
    everything = {c: f"the test model does not use {c.label}" for c in CONTROLS_BY_KIND[kind]}
    for control in CONTROLS_BY_KIND[kind]:
        info = ModelInfo(ref, kind=kind, unused={control: everything[control]})
        panel.show_model_info(info)
        assert panel.model_info is info
        assert_greys_out_exactly(panel, info)
    all_unused = ModelInfo(ref, kind=kind, unused=everything)
    panel.show_model_info(all_unused)
    assert_greys_out_exactly(panel, all_unused)
    none_unused = ModelInfo(ref, kind=kind)
    panel.show_model_info(none_unused)
    assert_greys_out_exactly(panel, none_unused)  # every tooltip is the control's own again
    if kind == "image":
        assert panel.as_start_button.isEnabled()


def test_an_answer_about_another_model_changes_nothing(window, qtbot):
    panel = window.image_panel
    ref = panel.model_picker.current_model()
    info = _described(qtbot, panel, ref)
    panel.show_model_info(ModelInfo("/somewhere/else", kind="image"))
    assert panel.model_info is info


def test_unused_settings_are_left_at_their_defaults_in_the_request(window, qtbot):
    image, text, music = window.image_panel, window.text_panel, window.music_panel
    for panel in (image, text, music):
        _described(qtbot, panel, panel.model_picker.current_model())
    image.show_model_info(
        ModelInfo(
            image.model_picker.current_model(),
            unused={c: "no" for c in (Control.NEGATIVE_PROMPT, Control.STEPS, Control.GUIDANCE, Control.SCHEDULER)},
        )
    )
    image.prompt.setPlainText("waves")
    image.negative.setPlainText("people")
    image.steps.setValue(40)
    image.guidance.setValue(12.5)
    request = image.build_request()
    assert (request.negative, request.steps, request.guidance, request.scheduler) == (
        ImageRequest.negative,
        ImageRequest.steps,
        ImageRequest.guidance,
        ImageRequest.scheduler,
    )
    text.show_model_info(ModelInfo(text.model_picker.current_model(), unused={Control.SYSTEM_PROMPT: "base model"}))
    text.prompt.setPlainText("and the river")
    text.system.setPlainText("be brief")
    text.temperature.setValue(1.5)
    request = text.build_request()
    assert request.system == TextRequest.system and request.temperature == 1.5
    music.show_model_info(ModelInfo(music.model_picker.current_model(), unused={Control.GUIDANCE: "melodies"}))
    music.prompt.setPlainText("a jig")
    music.guidance.setValue(9.0)
    music.temperature.setValue(0.5)
    request = music.build_request()
    assert request.guidance == MusicRequest.guidance and request.temperature == 0.5


def test_a_model_that_cannot_run_disables_generate_and_says_why(window, qtbot):
    for panel in window.panels.values():
        ref = panel.model_picker.current_model()
        _described(qtbot, panel, ref)
        panel.set_prompt("something")
        assert panel.generate_button.isEnabled()
        panel.show_model_info(ModelInfo(ref, name="Broken", runnable=False, reason="it needs diffusers 0.40"))
        assert not panel.generate_button.isEnabled()
        assert "it needs diffusers 0.40" in panel.hint.text()
        panel.show_model_info(ModelInfo(ref, name="Fixed"))
        assert panel.generate_button.isEnabled()


def test_start_from_this_is_greyed_for_a_model_without_image_input(window, qtbot):
    panel = _image_panel_with_a_selected_item(window, qtbot)
    ref = panel.model_picker.current_model()
    _described(qtbot, panel, ref)
    panel.show_model_info(ModelInfo(ref))
    assert panel.as_start_button.isEnabled()
    # A model that repaints masked regions (the pattern painter) still takes the picture its mask is about.
    panel.show_model_info(ModelInfo(ref, unused={Control.IMAGE_INPUT: "no starting images here"}))
    assert panel.as_start_button.isEnabled() and not panel.strength.isEnabled()
    unused = {Control.IMAGE_INPUT: "no starting images here", Control.MASK: "no masks"}
    panel.show_model_info(ModelInfo(ref, unused=unused))
    assert not panel.as_start_button.isEnabled() and panel.as_start_button.toolTip() == "no starting images here"
    assert panel.vary_button.isEnabled() and panel.reuse_button.isEnabled()  # they still work


# -- through the real worker ------------------------------------------------------------


def test_the_starter_models_grey_out_what_they_do_not_use(window, qtbot):
    infos = {}
    for kind, ident in STARTERS.items():
        panel = window.panels[kind]
        ref = panel.model_picker.current_model()
        assert Path(ref).name == ident
        infos[kind] = _described(qtbot, panel, ref)
        assert_greys_out_exactly(panel, infos[kind])
    # What each starter is known not to use.
    assert {Control.STEPS, Control.GUIDANCE, Control.SCHEDULER, Control.NEGATIVE_PROMPT, Control.IMAGE_INPUT} <= set(
        infos["image"].unused
    )
    assert {Control.GUIDANCE, Control.AUDIO_INPUT, Control.MELODY_INPUT} <= set(infos["music"].unused)
    assert Control.SYSTEM_PROMPT in infos["text"].unused  # a base model: no chat template
    image = window.image_panel
    assert not image.steps.isEnabled() and "pattern painter" in image.steps.toolTip()
    assert not window.text_panel.system.isEnabled()


@pytest.mark.parametrize(
    ("kind", "fixture", "unused", "used"),
    [
        (
            "image",
            "tiny_sd",
            set(),
            {Control.NEGATIVE_PROMPT, Control.STEPS, Control.GUIDANCE, Control.SCHEDULER, Control.IMAGE_INPUT},
        ),
        ("text", "tiny_lm", set(), set(CONTROLS_BY_KIND["text"])),
        ("text", "tiny_base_lm", {Control.SYSTEM_PROMPT}, {Control.TEMPERATURE, Control.TOP_P, Control.STOP}),
        ("music", "tiny_musicgen", {Control.MELODY_INPUT}, {Control.GUIDANCE, Control.AUDIO_INPUT, Control.TOP_K}),
        (
            "music",
            "tiny_stable_audio",
            {Control.TEMPERATURE, Control.TOP_K, Control.AUDIO_INPUT, Control.MELODY_INPUT},
            {Control.GUIDANCE},
        ),
    ],
)
def test_the_tiny_models_grey_out_what_they_do_not_use(window, qtbot, request, kind, fixture, unused, used):
    path = request.getfixturevalue(fixture)
    window.services.settings.set("model_folders", [str(path.parent)])
    window.refresh_models()
    panel = window.panels[kind]
    index = panel.model_picker.findData(str(path))
    assert index >= 0
    panel.model_picker.setCurrentIndex(index)
    info = _described(qtbot, panel, str(path))
    assert info.runnable, info.reason
    assert unused <= set(info.unused) and not used & set(info.unused)
    assert_greys_out_exactly(panel, info)


def test_reusing_settings_with_another_model_keeps_them_over_its_defaults(window, qtbot, tiny_sd):
    window.services.settings.set("model_folders", [str(tiny_sd.parent)])
    window.refresh_models()
    defaults = {str(tiny_sd): {"steps": 3, "guidance": 1.5}}
    window.services.settings.set("model_defaults", defaults)
    panel = window.image_panel
    picker = panel.model_picker
    picker.setCurrentIndex(next(i for i in range(picker.count()) if Path(picker.itemData(i)).name == STARTERS["image"]))
    starter = picker.current_model()
    _described(qtbot, panel, starter)
    saved = ImageRequest(prompt="hills", model=str(tiny_sd), steps=9, guidance=4.5, width=32, height=48, seed=5)
    assert panel.apply_request(saved.to_dict())
    assert panel.model_picker.current_model() == str(tiny_sd)
    _described(qtbot, panel, str(tiny_sd))
    assert (panel.steps.value(), panel.guidance.value()) == (9, 4.5)  # not the model's saved 3 and 1.5
    assert (panel.width_box.value(), panel.height_box.value()) == (32, 48)
    assert panel.seed.value() == 5 and panel.prompt.toPlainText() == "hills"
    panel.model_picker.setCurrentIndex(panel.model_picker.findData(starter))
    panel.model_picker.setCurrentIndex(panel.model_picker.findData(str(tiny_sd)))
    _described(qtbot, panel, str(tiny_sd))
    qtbot.waitUntil(lambda: panel.steps.value() == 3)  # chosen by hand: its defaults apply


def test_reusing_settings_goes_through_request_from_dict_and_says_what_it_left_out(window, tmp_path):
    panel = window.text_panel
    saved = {
        "kind": "text",
        "prompt": "a poem",
        "model": "/a/model/not/here",
        "system": "rhyme",
        "temperature": 0.3,
        "stop": ["END", "###"],
        "max_tokens": 10**9,  # past what this version accepts: left out, the default instead
        "seed": 11,
        "newer_field": True,  # a newer Studio's field: ignored
    }
    assert panel.apply_request(saved)
    assert panel.prompt.toPlainText() == "a poem" and panel.system.toPlainText() == "rhyme"
    assert panel.temperature.value() == 0.3 and panel.max_tokens.value() == TextRequest.max_tokens
    assert panel.stop_strings.toPlainText() == "END\n###"
    assert panel.seed.value() == 11 and "max_tokens" in panel.run_status.text()
    image = window.image_panel
    gone = tmp_path / "gone.png"
    assert image.apply_request({"kind": "image", "prompt": "fox", "init_image": str(gone), "steps": 7})
    assert image._start_image == "" and image.steps.value() == 7 and "init_image" in image.run_status.text()
    assert not image.apply_request({"kind": "music", "prompt": "x"})  # another tab's settings

"""The model manager dialog and per-model defaults, offscreen."""

import json
import shutil

from studio.core.models import ModelSpec, suggested_defaults


def test_manager_lists_models_with_facts_and_adds_and_removes_folders(window, qtbot, tiny_lm, tmp_path):
    folder = tmp_path / "models"
    shutil.copytree(tiny_lm, folder / "my-lm")
    broken = folder / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{oops")
    dialog = window.model_manager()
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.models_changed):
        dialog.add_folder(str(folder))
    rows = {
        dialog.table.item(r, 0).text(): [dialog.table.item(r, c).text() for c in range(8)]
        for r in range(dialog.table.rowCount())
    }
    assert rows["my-lm"][2] == "text" and rows["my-lm"][1] == "ready" and "KB" in rows["my-lm"][4]
    assert rows["broken"][1].startswith("cannot run") and "JSON" in rows["broken"][1]
    assert str(folder.resolve()) in window.services.settings.get("model_folders")
    assert window.text_panel.model_picker.findData(str(folder.resolve() / "my-lm")) >= 0  # the tabs see it at once
    dialog.select_path(folder.resolve() / "my-lm")
    dialog.remove_folder()
    assert window.services.settings.get("model_folders") == []


def test_pickle_consent_is_per_model_and_can_be_taken_back(window, qtbot, tmp_path):
    folder = tmp_path / "models" / "old-gpt2"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}))
    (folder / "tokenizer.json").write_text("{}")
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x02")
    dialog = window.model_manager()
    qtbot.addWidget(dialog)
    dialog.add_folder(str(folder.parent))
    dialog.select_path(folder.resolve())
    assert dialog.pickle_button.isEnabled() and not dialog.selected().runnable
    dialog.toggle_pickle(confirmed=True)
    assert dialog.selected().runnable and dialog.pickle_button.text() == "Refuse pickle weights"
    dialog.toggle_pickle()
    assert not dialog.selected().runnable


def test_saved_defaults_are_applied_when_the_model_is_chosen(window, qtbot, tiny_sd):
    window.services.settings.set("model_folders", [str(tiny_sd.parent)])
    window.refresh_models()
    dialog = window.model_manager()
    qtbot.addWidget(dialog)
    dialog.select_path(tiny_sd)
    dialog.default_fields["steps"].setValue(3)
    dialog.default_fields["guidance"].setValue(1.5)
    dialog.save_defaults()
    assert window.services.settings.get("model_defaults")[str(tiny_sd)] == {"steps": 3, "guidance": 1.5}
    panel = window.image_panel
    panel.model_picker.setCurrentIndex(panel.model_picker.findData(str(tiny_sd)))
    panel._model_changed(str(tiny_sd))
    qtbot.waitUntil(lambda: panel.steps.value() == 3, timeout=60000)
    assert panel.guidance.value() == 1.5


def test_distilled_models_suggest_few_steps_and_no_guidance(tmp_path):
    turbo = ModelSpec("sdxl-turbo", "sdxl-turbo", "image", "sdxl", tmp_path / "sdxl-turbo", "folder", True)
    plain = ModelSpec("sd15", "sd15", "image", "sd", tmp_path / "sd15", "folder", True)
    assert suggested_defaults(turbo) == {"steps": 2, "guidance": 0.0}
    assert suggested_defaults(plain) == {}

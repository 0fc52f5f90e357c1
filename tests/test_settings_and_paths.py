import json
import logging

import pytest

from studio.core.paths import StudioPaths
from studio.core.provenance import ProvenanceRecord, new_item_id
from studio.core.settings import SETTINGS_SCHEMA_VERSION, Settings


def test_defaults_declared_once_with_descriptions():
    settings = Settings()
    for setting in Settings.declared():
        assert setting.description and setting.label
        assert settings.get(setting.name) == setting.default


def test_save_and_load_round_trip(tmp_path):
    path = tmp_path / "settings.json"
    settings = Settings(path)
    settings.set("memory_mode", "low")
    settings.set("model_folders", ["/models"])
    settings.save()
    stored = json.loads(path.read_text())
    assert stored["schema_version"] == SETTINGS_SCHEMA_VERSION
    again = Settings.load(path)
    assert again.get("memory_mode") == "low"
    assert again.get("model_folders") == ["/models"]


def test_invalid_stored_value_falls_back_to_default_with_a_log_line(tmp_path, caplog):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"schema_version": 1, "values": {"device": "tpu", "compile_models": "yes"}}))
    with caplog.at_level(logging.WARNING):
        settings = Settings.load(path)
    assert settings.get("device") == "auto"
    assert settings.get("compile_models") is False
    assert "device" in caplog.text and "compile_models" in caplog.text


def test_corrupt_settings_file_gives_defaults(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text("{not json")
    assert Settings.load(path).get("theme") == "dark"


def test_setting_an_invalid_value_is_refused():
    with pytest.raises(ValueError):
        Settings().set("embed_prompts", "sometimes")


def test_data_dir_puts_everything_under_one_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_DATA_DIR", str(tmp_path / "env"))
    from_env = StudioPaths.resolve()
    assert from_env.data.is_relative_to(tmp_path / "env")
    explicit = StudioPaths.resolve(tmp_path / "flag")
    for folder in (explicit.config, explicit.data, explicit.cache, explicit.logs):
        assert folder.is_relative_to(tmp_path / "flag")


def test_item_ids_sort_by_time():
    ids = [new_item_id(now_ms=ms) for ms in (1_000, 2_000, 3_000_000_000_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3 and all(len(i) == 26 for i in ids)


def test_provenance_record_refuses_what_is_not_one():
    with pytest.raises(ValueError):
        ProvenanceRecord.from_dict({"schema": "other/1", "id": "x", "kind": "text", "created_at": "now"})
    with pytest.raises(ValueError):
        ProvenanceRecord.from_dict(
            {"schema": "studio.provenance/1", "id": "x", "kind": "text", "created_at": "t", "model": []}
        )

import json

import pytest

from studio.core.errors import ModelError
from studio.engines.models import ModelCatalog, inspect_folder


def test_tiny_models_are_classified(tiny_lm, tiny_sd, tiny_musicgen):
    text, image, music = inspect_folder(tiny_lm), inspect_folder(tiny_sd), inspect_folder(tiny_musicgen)
    assert (text.kind, text.family, text.runnable) == ("text", "llama", True)
    assert (image.kind, image.family, image.runnable) == ("image", "sd", True)
    assert (music.kind, music.family, music.runnable) == ("music", "musicgen", True)


def test_bad_folders_say_why_they_cannot_run(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{oops")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}))
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x02")
    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "config.json").write_text(json.dumps({"architectures": ["X"], "auto_map": {"AutoModel": "x.X"}}))
    other = tmp_path / "classifier"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"architectures": ["BertForSequenceClassification"]}))
    reasons = {p.name: inspect_folder(p).reason for p in (empty, broken, pickled, remote, other)}
    assert "no model_index.json or config.json" in reasons["empty"]
    assert "not valid JSON" in reasons["broken"]
    assert "pickle" in reasons["pickled"]
    assert "remote code" in reasons["remote"]
    assert "BertForSequenceClassification" in reasons["classifier"]
    assert not any(inspect_folder(p).runnable for p in (empty, broken, pickled, remote, other))


def test_catalog_finds_models_in_nested_folders_and_resolves_ids(tiny_lm, tiny_sd):
    catalog = ModelCatalog(None, [tiny_lm.parent])
    ids = {spec.id for spec in catalog.discover()}
    assert {"tiny-chat-lm", "tiny-sd"} <= ids
    assert catalog.resolve("tiny-chat-lm").path == tiny_lm
    assert catalog.resolve(str(tiny_sd)).kind == "image"
    with pytest.raises(ModelError, match="studio models list"):
        catalog.resolve("no-such-model")
    with pytest.raises(ModelError, match="does not exist"):
        catalog.resolve("/no/such/folder")


def test_provenance_names_the_licence_from_the_model_card(tmp_path):
    from studio.engines.models import ModelSpec

    (tmp_path / "README.md").write_text("---\nlanguage: en\nlicense: apache-2.0\n---\n# A model\n")
    spec = ModelSpec("m", "m", "text", "llama", tmp_path, "folder", True)
    assert spec.provenance()["licence"] == "apache-2.0"
    (tmp_path / "README.md").write_text("# no front matter\nlicense: mit\n")
    assert "licence" not in spec.provenance()

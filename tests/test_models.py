import json

import pytest

from studio.core.errors import ModelError
from studio.engines.library import ModelCatalog, inspect_folder


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
    from studio.core.models import ModelSpec

    (tmp_path / "README.md").write_text("---\nlanguage: en\nlicense: apache-2.0\n---\n# A model\n")
    spec = ModelSpec("m", "m", "text", "llama", tmp_path, "folder", True)
    assert spec.provenance()["licence"] == "apache-2.0"
    (tmp_path / "README.md").write_text("# no front matter\nlicense: mit\n")
    assert "licence" not in spec.provenance()


def _hub_cache(cache, repo_id, source):
    """A Hugging Face hub cache entry in the hub's own layout: blobs, a snapshot of links, refs/main."""
    import hashlib
    import os

    commit = "a" * 40
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    for file in sorted(source.rglob("*")):
        if file.is_file():
            data = file.read_bytes()
            blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
            blob.parent.mkdir(parents=True, exist_ok=True)
            blob.write_bytes(data)
            link = snapshot / file.relative_to(source)
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(blob, link.parent), link)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def test_models_in_the_hugging_face_cache_are_found(tmp_path, tiny_lm):
    cache = tmp_path / "hub"
    snapshot = _hub_cache(cache, "someone/tiny-chat", tiny_lm)
    specs = ModelCatalog(None, hf_cache=cache).discover()
    [spec] = [s for s in specs if s.source == "hf-cache"]
    assert (spec.name, spec.id, spec.kind, spec.runnable) == ("someone/tiny-chat", "someone--tiny-chat", "text", True)
    assert spec.path == snapshot and spec.provenance()["revision"] == "a" * 40
    assert spec.details["size_bytes"] > 1000 and spec.details["dtype"] == "float32"


def test_the_hub_cache_snapshot_is_the_one_main_names_else_the_newest(tmp_path, tiny_lm):
    import os

    from studio.engines.library.hf_cache import hf_cache_models

    cache = tmp_path / "hub"
    named = _hub_cache(cache, "someone/named", tiny_lm)
    (named.parent / ("b" * 40)).mkdir()  # newer than the snapshot main names, but not named
    os.utime(named, (1, 1))
    lost = _hub_cache(cache, "someone/lost-ref", tiny_lm)
    (lost.parent.parent / "refs" / "main").write_text("c" * 40)  # names a snapshot that is gone
    newest = lost.parent / ("d" * 40)
    newest.mkdir()
    os.utime(lost, (1, 1))
    (cache / "datasets--someone--data" / "snapshots" / ("e" * 40)).mkdir(parents=True)
    (cache / "models--someone--empty" / "snapshots").mkdir(parents=True)
    (cache / "version.txt").write_text("1")
    assert hf_cache_models(cache) == [(newest, "hf-cache", "someone/lost-ref"), (named, "hf-cache", "someone/named")]
    assert hf_cache_models(tmp_path / "no-cache") == []


def test_damaged_and_incomplete_folders_are_listed_with_the_reason(tmp_path, tiny_sd, tiny_lm):
    import shutil

    truncated = tmp_path / "truncated"
    shutil.copytree(tiny_lm, truncated)
    weights = next(truncated.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    no_unet = tmp_path / "no-unet"
    shutil.copytree(tiny_sd, no_unet)
    shutil.rmtree(no_unet / "unet")
    no_tokenizer = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_lm, no_tokenizer)
    for file in no_tokenizer.glob("tokenizer*"):
        file.unlink()
    catalog = ModelCatalog(None, [tmp_path])
    reasons = {spec.path.name: spec.reason for spec in catalog.discover()}
    assert "damaged" in reasons["truncated"]
    assert "missing files" in reasons["no-unet"] and "unet" in reasons["no-unet"]
    assert "tokenizer" in reasons["no-tokenizer"]


def test_pickle_weights_load_only_with_the_users_consent(tmp_path):
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}))
    (pickled / "tokenizer.json").write_text("{}")
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x02")
    assert not ModelCatalog(None, [tmp_path]).discover()[0].runnable
    [allowed] = ModelCatalog(None, [tmp_path], allow_pickle=[pickled]).discover()
    assert allowed.runnable and allowed.details["pickle_allowed"]


def test_two_hundred_model_folders_scan_in_under_a_second(tmp_path, tiny_lm, tiny_sd):
    import shutil
    import time

    for n in range(100):
        for source in (tiny_lm, tiny_sd):
            target = tmp_path / f"group-{n % 10}" / f"{source.name}-{n}"
            target.mkdir(parents=True)
            for file in source.rglob("*"):
                if file.is_file():
                    link = target / file.relative_to(source)
                    link.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(file, link) if file.suffix == ".json" else link.symlink_to(file)
    start = time.perf_counter()
    specs = ModelCatalog(None, [tmp_path]).discover()
    elapsed = time.perf_counter() - start
    assert len(specs) == 200 and all(spec.runnable for spec in specs)
    assert elapsed < 1.0, f"scan took {elapsed:.2f} s"

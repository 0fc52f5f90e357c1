"""How a cluster node finds the client's model in its own library: by repo id or name, then by the
weights' sha256 — and never runs other weights under the client's name. Real catalogs over real
folders (copies of the pattern painter, made different by their manifest)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from studio.core.errors import StudioError
from studio.engines.fingerprint import WeightFingerprints
from studio.engines.library import ModelCatalog
from studio.runtime.model_identity import find_model, hub_repo_of, model_identity

PATTERNS = Path(__file__).parents[1] / "resources" / "models" / "studio-starter-patterns"


def _copy(folder: Path, variant: str = "") -> Path:
    shutil.copytree(PATTERNS, folder)
    if variant:  # other "weights": the manifest is the pattern painter's model
        manifest = folder / "studio_model.json"
        data = json.loads(manifest.read_text())
        data["about"] += f" ({variant})"
        manifest.write_text(json.dumps(data))
    return folder


def test_a_node_finds_the_clients_model_under_another_name_by_its_weights(tmp_path):
    client = _copy(tmp_path / "client" / "my-patterns", "mine")
    node_models = tmp_path / "node"
    _copy(node_models / "unrelated")
    renamed = _copy(node_models / "patterns-copied-over", "mine")
    prints = WeightFingerprints(None)
    identity = model_identity(str(client), prints)
    assert identity["name"] == "my-patterns" and len(identity["sha256"]) == 64
    found = find_model(ModelCatalog(None, [node_models]), prints, identity, ["image"])
    assert Path(found) == renamed


def test_the_same_name_with_other_weights_is_refused_not_run(tmp_path):
    client = _copy(tmp_path / "client" / "my-patterns", "mine")
    node_models = tmp_path / "node"
    _copy(node_models / "my-patterns", "someone else's")
    prints = WeightFingerprints(None)
    with pytest.raises(StudioError, match=r"'my-patterns' has other weights"):
        find_model(ModelCatalog(None, [node_models]), prints, model_identity(str(client), prints), ["image"])


def test_nothing_with_those_weights_says_so_and_the_wrong_kind_is_not_searched(tmp_path):
    client = _copy(tmp_path / "client" / "my-patterns", "mine")
    node_models = tmp_path / "node"
    _copy(node_models / "other", "other")
    prints = WeightFingerprints(None)
    identity = model_identity(str(client), prints)
    with pytest.raises(StudioError, match=r"no model with the weights of 'my-patterns'"):
        find_model(ModelCatalog(None, [node_models]), prints, identity, ["image"])
    _copy(node_models / "same-weights", "mine")
    with pytest.raises(StudioError):  # an image model is not what a text job can take
        find_model(ModelCatalog(None, [node_models]), prints, identity, ["text"])


def test_a_model_named_not_pathed_is_found_by_its_name(tmp_path):
    node_models = tmp_path / "node"
    there = _copy(node_models / "patterns-everywhere")
    prints = WeightFingerprints(None)
    identity = model_identity("patterns-everywhere", prints)
    assert identity == {"name": "patterns-everywhere"}  # no file here: nothing to hash
    assert Path(find_model(ModelCatalog(None, [node_models]), prints, identity, ["image"])) == there
    with pytest.raises(StudioError, match="no model named 'nowhere'"):
        find_model(ModelCatalog(None, [node_models]), prints, {"name": "nowhere"}, ["image"])


def test_a_hub_cache_folder_names_its_repo_and_revision(tmp_path):
    snapshot = tmp_path / "hub" / "models--stabilityai--sd-turbo" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    assert hub_repo_of(snapshot) == ("stabilityai/sd-turbo", "abc123")
    assert hub_repo_of(tmp_path) == ("", "")

"""torch.compile's caches under Studio's cache folder (studio.engines.compile_cache), without compiling:
the folders torch is pointed at, one artifact file per model and device, saving and loading through
torch's own mega-cache calls."""

from __future__ import annotations

import logging

import pytest
import torch

from studio.engines import compile_cache
from studio.runtime.services import open_services


@pytest.fixture
def clean(monkeypatch):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.delenv("TRITON_CACHE_DIR", raising=False)
    monkeypatch.setattr(compile_cache, "_state", {})


def test_services_point_the_compile_caches_into_the_cache_folder(clean, paths):
    services = open_services(paths)
    try:
        folder = paths.cache / "torch-compile"
        assert compile_cache.folder() == folder
        import os

        assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(folder / "inductor")
        assert os.environ["TRITON_CACHE_DIR"] == str(folder / "inductor" / "triton")
    finally:
        services.close()


def test_a_cache_folder_the_user_set_wins(clean, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    compile_cache.configure(tmp_path / "cache")
    import os

    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")
    assert os.environ["TRITON_CACHE_DIR"] == str(tmp_path / "mine" / "triton")


def test_one_artifact_file_per_model_device_and_precision(clean, tmp_path):
    assert compile_cache.artifact_file("/m/sd15", "H100", "bfloat16") is None  # not configured: torch's defaults
    compile_cache.configure(tmp_path)
    file = compile_cache.artifact_file("/m/sd15", "H100", "bfloat16")
    assert file is not None and file.parent == tmp_path / "torch-compile" / "artifacts"
    assert file == compile_cache.artifact_file("/m/sd15", "H100", "bfloat16")  # the same after a relaunch
    others = {
        compile_cache.artifact_file("/m/sdxl", "H100", "bfloat16"),
        compile_cache.artifact_file("/m/sd15", "A100", "bfloat16"),
        compile_cache.artifact_file("/m/sd15", "H100", "float16"),
    }
    assert file not in others and len(others) == 3


def test_nothing_compiled_saves_nothing_and_a_missing_file_loads_nothing(clean, tmp_path):
    compile_cache.configure(tmp_path)
    file = compile_cache.artifact_file("/m/never-compiled", "cpu", "float32")
    torch.compiler.save_cache_artifacts()  # what earlier tests in this process may have left
    assert not compile_cache.load(file)
    assert not compile_cache.save(None) and not compile_cache.load(None)


def test_saved_artifacts_are_written_whole_and_handed_back_to_torch(clean, tmp_path, monkeypatch):
    compile_cache.configure(tmp_path)
    file = compile_cache.artifact_file("/m/sd15", "H100", "bfloat16")
    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", lambda: (b"kernels", object()))
    handed: list[bytes] = []
    monkeypatch.setattr(torch.compiler, "load_cache_artifacts", lambda data: handed.append(data) or object())
    assert compile_cache.save(file)
    assert file.read_bytes() == b"kernels" and not file.with_suffix(".part").exists()
    assert compile_cache.load(file) and handed == [b"kernels"]


def test_a_damaged_cache_file_is_a_miss_not_a_failure(clean, tmp_path, caplog):
    compile_cache.configure(tmp_path)
    file = compile_cache.artifact_file("/m/sd15", "H100", "bfloat16")
    assert file is not None
    file.parent.mkdir(parents=True)
    file.write_bytes(b"not a torch cache")
    with caplog.at_level(logging.WARNING, logger="studio.engines.compile_cache"):
        assert not compile_cache.load(file)  # torch's real loader refuses it
    assert "compiling anew" in caplog.text

"""Shared fixtures: offscreen Qt, a private data folder per test, tiny models, no leaked threads."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

# Before anything imports Qt or a Hugging Face library.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="studio-tests-"))
# No test may touch the real user folders: point every per-user location at a temp folder.
os.environ["STUDIO_DATA_DIR"] = str(_SESSION_HOME / "default-data")
for _var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
    os.environ[_var] = str(_SESSION_HOME / _var.lower())
os.environ["HF_HOME"] = str(_SESSION_HOME / "hf-home")

import pytest  # noqa: E402
import tiny_models  # noqa: E402

from studio.core.paths import StudioPaths  # noqa: E402


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Fail a test that leaves a worker thread running."""
    before = {t.ident for t in threading.enumerate()}
    yield
    deadline = time.monotonic() + 5
    while True:
        leaked = [t for t in threading.enumerate() if t.ident not in before and t.name.startswith("studio-")]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "studio-data"
    monkeypatch.setenv("STUDIO_DATA_DIR", str(folder))
    return folder


@pytest.fixture
def paths(data_dir) -> StudioPaths:
    return StudioPaths.under(data_dir).ensure()


@pytest.fixture
def services(paths):
    from studio.runtime.services import open_services

    opened = open_services(paths)
    yield opened
    opened.close()


@pytest.fixture(scope="session")
def models_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def tiny_lm(models_root) -> Path:
    return tiny_models.build_tiny_causal_lm(models_root / "tiny-chat-lm")


@pytest.fixture(scope="session")
def tiny_base_lm(models_root) -> Path:
    return tiny_models.build_tiny_causal_lm(models_root / "tiny-base-lm", chat_template=False)


@pytest.fixture(scope="session")
def tiny_sd(models_root) -> Path:
    return tiny_models.build_tiny_sd_pipeline(models_root / "tiny-sd")


@pytest.fixture(scope="session")
def tiny_musicgen(models_root) -> Path:
    return tiny_models.build_tiny_musicgen(models_root / "tiny-musicgen")


@pytest.fixture(scope="session")
def tiny_stable_audio(models_root) -> Path:
    return tiny_models.build_tiny_stable_audio(models_root / "tiny-stable-audio")


@pytest.fixture(scope="session")
def sd15_single_file(models_root) -> tuple[Path, Path]:
    """(a diffusers folder with SD 1.5's structure at 1/8 width, the same model as one original-layout file)."""
    folder = models_root / "sd15-small"
    tiny_models.make_sd_architecture_pipeline("sd15", "cpu", small=True).save_pretrained(
        folder, safe_serialization=True
    )
    checkpoint = tiny_models.write_sd15_single_file(folder, models_root / "checkpoints" / "my-sd15.safetensors")
    return folder, checkpoint


@pytest.fixture
def window(qtbot, services):
    """The main window over the test's services, shown and active; shut down after the test."""
    from helpers import show_active

    from studio.ui.main_window import MainWindow

    main = MainWindow(services)
    qtbot.addWidget(main)
    show_active(qtbot, main)
    yield main
    main.shutdown()

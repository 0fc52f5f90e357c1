"""Downloads in online mode, from a local stand-in for the Hugging Face Hub on 127.0.0.1."""

import json
import os
import subprocess
import sys

from local_hub import LocalHub

from studio.runtime.download_child import verify_snapshot


def _cli(*args, data_dir, env):
    return subprocess.run(
        [sys.executable, "-m", "studio", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, **env, "STUDIO_DATA_DIR": str(data_dir)},
    )


def test_download_only_in_online_mode_then_the_model_is_listed_and_runs(data_dir, tiny_lm, tmp_path):
    with LocalHub({"someone/tiny-chat": tiny_lm}) as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf")}
        refused = _cli("models", "download", "someone/tiny-chat", data_dir=data_dir, env=env)
        assert refused.returncode == 2 and "online mode is off" in refused.stderr
        assert hub.requests == []  # offline means no connection at all
        assert _cli("settings", "set", "online", "true", data_dir=data_dir, env=env).returncode == 0
        done = _cli("models", "download", "someone/tiny-chat", "--json", data_dir=data_dir, env=env)
        assert done.returncode == 0, done.stderr
        snapshot = json.loads(done.stdout.splitlines()[-1])["path"]
        assert any("/resolve/" in request and "model.safetensors" in request for request in hub.requests)
        missing = _cli("models", "download", "someone/nothing-here", data_dir=data_dir, env=env)
        assert missing.returncode == 1 and "download of someone/nothing-here failed" in missing.stderr
    listed = [
        json.loads(line) for line in _cli("models", "list", "--json", data_dir=data_dir, env=env).stdout.splitlines()
    ]
    [spec] = [m for m in listed if m["source"] == "hf-cache"]
    assert spec["path"] == snapshot and spec["kind"] == "text" and spec["runnable"]
    made = _cli(
        "gen", "text", "hello", "--model", spec["id"], "--max-tokens", "4", "--json", data_dir=data_dir, env=env
    )
    assert made.returncode == 0, made.stderr  # offline again: loads from the cache


def test_a_corrupted_blob_fails_the_checksum(tmp_path):
    import hashlib

    blob = tmp_path / "blobs" / hashlib.sha256(b"weights").hexdigest()
    blob.parent.mkdir()
    blob.write_bytes(b"weights")
    snapshot = tmp_path / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").symlink_to(blob)
    assert verify_snapshot(snapshot) == []
    blob.write_bytes(b"weightz")
    assert verify_snapshot(snapshot) == ["model.safetensors"]


def test_the_model_manager_downloads_with_progress(qtbot, services, tiny_lm, tmp_path, monkeypatch):
    from studio.ui.main_window import MainWindow

    window = MainWindow(services)
    qtbot.addWidget(window)
    with LocalHub({"someone/tiny-chat": tiny_lm}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
        dialog = window.model_manager()
        dialog.start_download("someone/tiny-chat")
        assert dialog._download is None and hub.requests == []  # online mode is off: nothing starts
        services.settings.set("online", True)
        dialog.start_download("someone/tiny-chat")
        assert not dialog.download_progress.isHidden()
        qtbot.waitUntil(lambda: dialog._download is None, timeout=120000)
    assert "Downloaded someone/tiny-chat" in dialog.status.text(), dialog.status.text()
    assert dialog.selected().source == "hf-cache" and dialog.selected().runnable
    window.shutdown()

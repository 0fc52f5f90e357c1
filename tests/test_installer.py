"""The installer's pieces that do not need a full PyInstaller build (that is installer/smoke.sh):
the XDG install and uninstall, the launcher, and the download child of the frozen app."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

INSTALLER = Path(__file__).resolve().parents[1] / "installer"


def _fake_build(folder: Path) -> Path:
    """A dist/Studio folder as build.sh leaves it, with a stand-in executable."""
    folder.mkdir(parents=True)
    (folder / "Studio").write_text('#!/bin/sh\necho studio-stand-in "$@"\n')
    (folder / "Studio").chmod(0o755)
    for name in ("studio.desktop", "install-desktop.sh"):
        shutil.copy(INSTALLER / name, folder / name)
    icons = folder / "icons"
    icons.mkdir()
    for size in (16, 256):
        (icons / f"studio-{size}.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    shutil.copy(INSTALLER.parent / "resources" / "icons" / "studio.svg", icons / "studio.svg")
    return folder


def test_install_desktop_puts_everything_in_the_xdg_places_and_uninstall_removes_it(tmp_path):
    build = _fake_build(tmp_path / "dist" / "Studio")
    home = tmp_path / "home"
    env = {"HOME": str(home), "PATH": os.environ["PATH"]}
    done = subprocess.run(
        ["bash", str(build / "install-desktop.sh")], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    prefix = home / ".local" / "opt" / "Studio"
    launcher = home / ".local" / "share" / "applications" / "studio.desktop"
    entry = launcher.read_text()
    assert f"Exec={prefix}/Studio %F" in entry and "Icon=studio" in entry and "@EXEC@" not in entry
    assert (home / ".local/share/icons/hicolor/256x256/apps/studio.png").is_file()
    assert (home / ".local/share/icons/hicolor/scalable/apps/studio.svg").is_file()
    command = home / ".local" / "bin" / "studio"
    assert subprocess.run([str(command), "--version"], capture_output=True, text=True, check=True).stdout.startswith(
        "studio-stand-in"
    )
    if shutil.which("desktop-file-validate"):
        assert subprocess.run(["desktop-file-validate", str(launcher)], check=False).returncode == 0
    gone = subprocess.run(
        ["bash", str(prefix / "install-desktop.sh"), "--uninstall"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert gone.returncode == 0, gone.stderr
    assert not prefix.exists() and not launcher.exists() and not command.exists()


def test_the_frozen_app_starts_its_download_child_through_itself(monkeypatch):
    from studio.runtime import download_manager

    assert download_manager.download_command("owner/name")[1:3] == ["-m", "studio.runtime.download_child"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", "/opt/Studio/Studio")
    assert download_manager.download_command("owner/name", "abc") == [
        "/opt/Studio/Studio", "--download-child", "owner/name", "--revision", "abc"
    ]  # fmt: skip


def test_the_download_child_argument_reaches_the_downloader(monkeypatch):
    from studio.runtime import download_child

    seen = []
    monkeypatch.setattr(download_child, "main", lambda argv: seen.append(argv) or 0)
    from studio.app import main

    assert main(["--download-child", "owner/name"]) == 0 and seen == [["owner/name"]]

#!/usr/bin/env bash
# Build Studio as a one-folder desktop application in dist/Studio/ (Linux; see README.md here
# for Windows and macOS). The bundle carries whatever torch .venv has: the CPU build by default,
# or a CUDA build if you installed one into .venv first (STUDIO_TORCH_SPEC, see scripts/setup.sh).
#
#   bash installer/build.sh            # build dist/Studio
#   bash installer/smoke.sh            # run the built app headless and check what it makes
#   bash installer/install-desktop.sh  # install it for this user the XDG way
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/python -m pip install -q "pyinstaller>=6.10"
# The app icon as PNG for the window manager and the .desktop file (Qt renders the SVG).
QT_QPA_PLATFORM=offscreen .venv/bin/python installer/render_icons.py resources/icons/studio.svg build/icons
.venv/bin/pyinstaller installer/studio.spec --noconfirm --clean --distpath dist --workpath build/pyinstaller
cp installer/studio.desktop installer/install-desktop.sh dist/Studio/
mkdir -p dist/Studio/icons && cp -r build/icons/. dist/Studio/icons/ && cp resources/icons/studio.svg dist/Studio/icons/
du -sh dist/Studio | awk '{print "built dist/Studio (" $1 ")"}'

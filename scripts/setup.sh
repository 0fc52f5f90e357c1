#!/usr/bin/env bash
# Set up a virtual environment in .venv with Studio and its test tools (idempotent, quick when done).
#
# torch is not pinned by the package, so a GPU user keeps the CUDA build they installed.
# When .venv has no torch yet, this installs STUDIO_TORCH_SPEC (default: torch==2.13.0, the
# CPU build the test machines carry). Set it to e.g. "torch" to let pip choose.
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin="${PYTHON:-}"
if [ -z "$python_bin" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python_bin="$candidate"; break; fi
  done
fi
"$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "Studio needs Python 3.11 or newer; $python_bin is $("$python_bin" --version 2>&1)" >&2
  exit 1
}

if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $python_bin" >&2
  "$python_bin" -m venv .venv
fi
venv_python=.venv/bin/python

# Qt Multimedia (the Music tab's player) needs PulseAudio's client library on Linux. Install it
# where we may (root with apt, as on CI); otherwise say how. Without it the app runs and saves
# music, but cannot play it.
if [ "$(uname -s)" = Linux ] && ! ldconfig -p 2>/dev/null | grep -q 'libpulse\.so\.0'; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing libpulse0 for music playback" >&2
    (apt-get install -y -q libpulse0 >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q libpulse0 >/dev/null 2>&1; }) \
      || echo "could not install libpulse0: music playback will be unavailable" >&2
  else
    echo "note: music playback needs libpulse0 (e.g. sudo apt install libpulse0)" >&2
  fi
fi

# Qt's X11 platform plugin links system libraries the PySide6 wheels do not bundle (libxcb-icccm4,
# libxcb-keysyms1, libxcb-cursor0…); without one the window does not open. scripts/qt_system_libs.py
# reads what the plugin links (ldd) and names the packages: installed where we may, else the command.
qt_system_libraries() {
  [ "$(uname -s)" = Linux ] && "$venv_python" -c 'import PySide6' >/dev/null 2>&1 || return 0
  local packages
  packages="$("$venv_python" scripts/qt_system_libs.py --packages)" || return 0
  [ -n "$packages" ] || return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Qt's window libraries: $packages" >&2
    # shellcheck disable=SC2086  # one word per package
    (apt-get install -y -q $packages >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $packages >/dev/null 2>&1; }) \
      || echo "could not install $packages: the window may not open (see: python scripts/qt_system_libs.py)" >&2
  else
    echo "note: the window needs system libraries that are missing: sudo apt-get install $packages" >&2
  fi
}

stamp=.venv/.studio-setup
wanted="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
  qt_system_libraries
  exit 0
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1
if ! "$venv_python" -c 'import torch' >/dev/null 2>&1; then
  echo "installing ${STUDIO_TORCH_SPEC:-torch==2.13.0}" >&2
  "$venv_python" -m pip install -q "${STUDIO_TORCH_SPEC:-torch==2.13.0}"
fi
echo "installing Studio and its test tools" >&2
"$venv_python" -m pip install -q -e ".[dev]"
# spandrel (upscaler models) requires torchvision, and pip would then replace a CPU or CUDA torch
# with whatever build that torchvision pins; Studio imports spandrel without torchvision
# (studio/engines/spandrel_import.py), so it is installed without its dependencies.
if ! "$venv_python" -c 'import spandrel' >/dev/null 2>&1; then
  "$venv_python" -m pip install -q --no-deps "spandrel>=0.4,<0.5" || echo "could not install spandrel: upscaler models will be unavailable" >&2
fi
# llama-cpp-python compiles for ~10 minutes; where a prebuilt wheel sits beside the checkout
# (../shared/wheels on the test machines), the tests use it. A user's install works without it.
if ! "$venv_python" -c 'import llama_cpp' >/dev/null 2>&1; then
  for wheel in ../shared/wheels/llama_cpp_python-*.whl; do
    [ -f "$wheel" ] || continue
    echo "installing llama.cpp from $wheel" >&2
    "$venv_python" -m pip install -q "$wheel" || echo "could not install $wheel: GGUF tests will use transformers" >&2
    break
  done
fi
echo "$wanted" > "$stamp"
qt_system_libraries

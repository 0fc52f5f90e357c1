"""Which system libraries Qt's X11 (xcb) platform plugin needs and this machine lacks.

The PySide6 wheels bundle Qt but not the X11 client libraries its xcb plugin links; without one
the window does not open ("Could not load the Qt platform plugin xcb"). This reads what the
plugin and its helper library actually link (``ldd``), adds ``libxcb-cursor`` (Qt 6.5+ loads it at
run time, so ``ldd`` cannot see it), and names the Debian/Ubuntu package of each missing one.

    python scripts/qt_system_libs.py             # a sentence per missing library, and the command
    python scripts/qt_system_libs.py --packages  # only the package names (for scripts/setup.sh)
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

# Loaded with dlopen by the xcb plugin, so not in its ldd output.
RUNTIME_LOADED = ("libxcb-cursor.so.0",)


def qt_folder() -> Path | None:
    try:
        import PySide6
    except ImportError:
        return None
    return Path(PySide6.__file__).parent / "Qt"


def linked_libraries(qt: Path) -> list[Path]:
    """The xcb plugin and the Qt library behind it: the files whose links must resolve."""
    candidates = [qt / "plugins" / "platforms" / "libqxcb.so", *sorted((qt / "lib").glob("libQt6XcbQpa.so*"))]
    return [path for path in candidates if path.is_file()][:2]


def missing_libraries(qt: Path) -> list[str]:
    missing: set[str] = set()
    for library in linked_libraries(qt):
        try:
            out = subprocess.run(["ldd", str(library)], capture_output=True, text=True, timeout=30, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        missing.update(re.findall(r"^\s*(\S+) => not found", out, flags=re.MULTILINE))
    try:
        known = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        known = ""
    missing.update(name for name in RUNTIME_LOADED if known and name not in known)
    return sorted(missing)


def debian_package(soname: str) -> str:
    """Debian's name for the package of a shared library: ``libxcb-icccm.so.4`` → ``libxcb-icccm4``
    (a name ending in a digit takes a hyphen before the version: ``libxkbcommon-x11.so.0`` →
    ``libxkbcommon-x11-0``)."""
    match = re.match(r"^(lib.+?)\.so\.(\d+)", soname)
    if not match:
        return soname
    name, version = match.groups()
    return f"{name}-{version}" if name[-1].isdigit() else f"{name}{version}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", action="store_true", help="print only the package names, one line")
    args = parser.parse_args(argv)
    qt = qt_folder()
    if qt is None:
        print("PySide6 is not installed", file=sys.stderr)
        return 1
    if sys.platform != "linux":
        return 0
    missing = missing_libraries(qt)
    packages = sorted({debian_package(name) for name in missing})
    if args.packages:
        print(" ".join(packages))
        return 0
    if not missing:
        print("Qt's xcb platform plugin finds every library it needs")
        return 0
    for name in missing:
        print(f"missing {name} (package {debian_package(name)})")
    print(f"install them with: sudo apt-get install {' '.join(packages)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

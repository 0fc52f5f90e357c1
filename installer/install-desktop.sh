#!/usr/bin/env bash
# Install the built app for this user, the XDG way: the folder to ~/.local/opt/Studio (or
# $PREFIX), a launcher in ~/.local/share/applications, icons in the hicolor theme, and
# ~/.local/bin/studio for the command line. Run from dist/Studio (the build copies it there).
# `install-desktop.sh --uninstall` removes all of it (your gallery and settings stay).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
prefix="${PREFIX:-$HOME/.local/opt/Studio}"
data="${XDG_DATA_HOME:-$HOME/.local/share}"
bin="$HOME/.local/bin"
if [ "${1:-}" = "--uninstall" ]; then
  rm -rf "$prefix" "$data/applications/studio.desktop" "$bin/studio"
  find "$data/icons/hicolor" -name studio.png -delete 2>/dev/null || true
  rm -f "$data/icons/hicolor/scalable/apps/studio.svg"
  echo "Studio removed (the gallery and settings in your data folders are kept)"
  exit 0
fi
[ -x "$here/Studio" ] || { echo "run this from the built dist/Studio folder" >&2; exit 1; }
if [ "$here" != "$prefix" ]; then
  mkdir -p "$(dirname "$prefix")"
  rm -rf "$prefix"
  cp -a "$here" "$prefix"
fi
mkdir -p "$data/applications" "$bin" "$data/icons/hicolor/scalable/apps"
sed "s|@EXEC@|$prefix/Studio|" "$here/studio.desktop" > "$data/applications/studio.desktop"
for png in "$here"/icons/studio-*.png; do
  size="$(basename "$png" .png | cut -d- -f2)"
  mkdir -p "$data/icons/hicolor/${size}x${size}/apps"
  cp "$png" "$data/icons/hicolor/${size}x${size}/apps/studio.png"
done
cp "$here/icons/studio.svg" "$data/icons/hicolor/scalable/apps/studio.svg"
ln -sf "$prefix/Studio" "$bin/studio"
command -v update-desktop-database >/dev/null && update-desktop-database -q "$data/applications" || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$data/icons/hicolor" || true
echo "Studio installed in $prefix; find it in your applications menu, or run 'studio' ($bin)"

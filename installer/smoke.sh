#!/usr/bin/env bash
# Run the built app (dist/Studio/Studio) headless with a fresh data folder and no network: one
# text, one image and one music job with the bundled starter models, then check each file with
# independent readers and with the app's own `verify`. Exit status 0 when all is well.
set -euo pipefail
cd "$(dirname "$0")/.."
app="${1:-dist/Studio/Studio}"
[ -x "$app" ] || { echo "no built app at $app: run installer/build.sh first" >&2; exit 1; }
data="$(mktemp -d -t studio-smoke-XXXXXX)"
trap 'rm -rf "$data"' EXIT
export STUDIO_DATA_DIR="$data" QT_QPA_PLATFORM=offscreen
# A network namespace with no interfaces proves the app needs none (skipped where not allowed).
offline=()
if unshare -rn true 2>/dev/null; then offline=(unshare -rn); fi
run() { "${offline[@]}" "$app" "$@"; }
started=$(date +%s.%N)
"$app" --version
text="$(run gen text "And the river" --max-tokens 24 --seed 1 --json)"
image="$(run gen image "teal rings on navy" --width 256 --height 256 --seed 2 --json)"
music="$(run gen music "a lively jig on the fiddle" --duration 5 --seed 3 --json)"
for item in "$text" "$image" "$music"; do
  file="$(printf '%s' "$item" | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["path"])')"
  run verify "$file" >/dev/null
done
.venv/bin/python installer/check_smoke.py "$text" "$image" "$music"
# The window (offscreen): it must come up, import its engines and log no traceback.
set +e
"${offline[@]}" timeout 30 "$app" --debug >"$data/gui.out" 2>&1
set -e
log="$(find "$data" -name studio.log | head -1)"
grep -q "engines imported" "$log" || { echo "the window did not start:" >&2; tail -20 "$data/gui.out" >&2; exit 1; }
if grep -q Traceback "$log" "$data/gui.out"; then echo "the window logged an error:" >&2; grep -A5 Traceback "$log" >&2; exit 1; fi
echo "window   started and imported its engines"
echo "smoke test passed in $(.venv/bin/python -c "import time; print(round(time.time() - $started, 1))") s (network: ${offline[*]:-allowed})"

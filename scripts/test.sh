#!/usr/bin/env bash
# Set everything up (first run only), then lint, type-check, check the layer contracts and run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export QT_QPA_PLATFORM=offscreen
echo "== ruff" >&2
.venv/bin/ruff check studio tests benchmarks scripts installer main.py
.venv/bin/ruff format --check studio tests benchmarks scripts installer main.py
echo "== mypy" >&2
.venv/bin/mypy
echo "== import-linter" >&2
.venv/bin/lint-imports
echo "== pytest" >&2
exec .venv/bin/python -m pytest "$@"

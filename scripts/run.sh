#!/usr/bin/env bash
# Set everything up (first run only) and open Studio; arguments go to `studio`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/studio "$@"

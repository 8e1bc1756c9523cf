#!/usr/bin/env bash
# Install (if needed) and run the default test suite (slow fits excluded: add -m slow for them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -n 2 "$@"

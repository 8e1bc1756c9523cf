#!/usr/bin/env bash
# Simulate the Danish 1999-2005 register (seed 1), fit munirank's model, print the ranking.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=${1:-demo}
.venv/bin/munirank simulate --preset dk-1999-2005 --seed 1 --out "$out/data"
.venv/bin/munirank fit "$out/data/spells.csv" --spec "$out/data/spec.toml" --out "$out/fit"
echo "Results: $out/fit/municipalities.csv (one row per municipality), diagnostics.json, run.json"

#!/usr/bin/env bash
# Create .venv with Python >= 3.12 and install munirank with its test tools.
# Usage: bash scripts/setup.sh        (idempotent; reuses .venv when it is complete)
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
    local c
    for c in "${PYTHON:-}" python3.14 python3.13 python3.12 python3 python \
             "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python3 /usr/local/bin/python3.1[2-9] \
             /usr/bin/python3.1[2-9]; do
        [ -n "$c" ] || continue
        if command -v "$c" >/dev/null 2>&1 && \
           "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import munirank, pytest' 2>/dev/null; then
    if ! PY=$(find_python); then
        echo "munirank needs Python >= 3.12 (PyMC 6, ArviZ 1.x); none was found." >&2
        echo "Install one (e.g. 'pyenv install 3.12') or set PYTHON=/path/to/python3.12." >&2
        exit 1
    fi
    echo "Using $PY ($("$PY" --version 2>&1))"
    "$PY" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[dev]"
    # Compile munirank's numba kernels once now (about 30 s), so that the first real fit does
    # not (it then compiles only its own model's graph). SKIP_WARMUP=1 skips it.
    if [ -z "${SKIP_WARMUP:-}" ]; then
        echo "Compiling munirank's kernels once (SKIP_WARMUP=1 to skip) ..."
        warm=$(mktemp -d)
        .venv/bin/munirank simulate --preset tiny --out "$warm/data" >/dev/null
        .venv/bin/munirank fit "$warm/data/spells.csv" --spec "$warm/data/spec.toml" \
            --out "$warm/fit" --draws 50 --tune 50 --chains 2 --quiet --allow-unconverged \
            >/dev/null 2>&1 || echo "(the warm-up fit failed: the first real fit compiles instead)"
        rm -rf "$warm"
    fi
fi

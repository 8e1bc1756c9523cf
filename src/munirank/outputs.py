"""Writing results: complete or not at all, reproducible, and with provenance.

Outputs are written into a hidden temporary folder beside the target and renamed into place
only when complete, so an interrupted or failed run leaves no half-written folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

PACKAGES = ("munirank", "pymc", "pytensor", "nutpie", "arviz", "arviz-base", "arviz-stats",
            "arviz-plots", "numpy", "pandas", "xarray", "scipy", "lifelines", "pandera")
FLOAT_FORMAT = "%.6g"


def versions() -> dict[str, str]:
    """Versions of Python and the packages that shape the numbers."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def write_csv(table: pd.DataFrame, path: Path) -> None:
    """CSV with a fixed float format, so the same draws give byte-identical files."""
    table.to_csv(path, index=False, float_format=FLOAT_FORMAT, lineterminator="\n")


def write_json(data: dict[str, Any], path: Path) -> None:
    """Pretty, key-sorted JSON."""
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def atomic_folder(out: str | Path) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``out`` only if the block completes.

    SIGTERM is turned into KeyboardInterrupt while the block runs, so that a terminated run
    cleans up like an interrupted one.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    previous = signal.getsignal(signal.SIGTERM)
    in_main = _is_main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield tmp
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(tmp, ignore_errors=True)


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()

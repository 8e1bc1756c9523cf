"""Writing results: complete or not at all, reproducible, and with provenance.

Outputs are written into a hidden temporary folder (or file) beside the target and renamed
into place only when complete, so an interrupted or failed run leaves no half-written output.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from munirank.errors import Interrupted

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


_RECEIVED: list[int] = []  # signals that arrived while a guard was active
_DEPTH = [0]  # how many guards are active (they nest)
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _on_signal(signum: int, frame: object) -> None:
    _RECEIVED.append(signum)
    raise Interrupted(signum)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into :class:`Interrupted`, even when a library swallows it.

    nutpie (and PyMC) catch KeyboardInterrupt during sampling and return the draws made so
    far as if sampling had finished. Results from such a truncated run must never be
    written, so the signal is also remembered, and the block raises :class:`Interrupted`
    when it ends (or fails) after one arrived. Outside the main thread signals cannot be
    handled and the block runs unguarded.

    Raises
    ------
    Interrupted
        If SIGINT or SIGTERM arrived while the block ran.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _DEPTH[0] == 0:
        _RECEIVED.clear()
    previous = {s: signal.signal(s, _on_signal) for s in _SIGNALS}
    _DEPTH[0] += 1
    try:
        yield
        check_interrupted()
    except Exception:
        check_interrupted()  # a failure caused by a truncated run is an interruption
        raise
    finally:
        _DEPTH[0] -= 1
        for s, handler in previous.items():
            signal.signal(s, handler)


def check_interrupted() -> None:
    """Raise :class:`Interrupted` if a guarded signal has arrived."""
    if _RECEIVED:
        raise Interrupted(_RECEIVED[-1]) from None


@contextlib.contextmanager
def atomic_folder(out: str | Path) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``out`` only if the block completes.

    The temporary folder (``.NAME.partial-*`` beside ``out``) is removed whatever happens.
    SIGINT and SIGTERM are guarded (see :func:`interruptible`): after either, nothing is
    renamed into place.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with interruptible():
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        try:
            yield tmp
            check_interrupted()
            _replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(out: str | Path) -> Iterator[Path]:
    """Yield a temporary file path that replaces the file ``out`` only if the block completes.

    The temporary file (``.NAME.partial-PID`` beside ``out``) is removed whatever happens;
    SIGINT and SIGTERM are guarded as in :func:`atomic_folder`.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with interruptible():
        tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
        try:
            yield tmp
            check_interrupted()
            tmp.replace(out)
        finally:
            tmp.unlink(missing_ok=True)


def _replace(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` is moved aside first, then removed."""
    if not out.exists():
        tmp.rename(out)
        return
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)

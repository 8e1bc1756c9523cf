"""Writing results: reproducible files, provenance, and runs that Ctrl-C cannot cut short.

Where outputs go, and what they may replace, is :mod:`munirank.output.destinations`.
"""

from __future__ import annotations

import contextlib
import csv
import json
import platform
import signal
import threading
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from munirank.errors import Interrupted

if TYPE_CHECKING:  # not imported at run time: the command line loads this module for --help
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


def write_rows_csv(table: pd.DataFrame, path: Path) -> None:
    """A large per-row table (the episodes) as CSV, numbers at full precision, fast.

    pyarrow's writer: numbers as the shortest text that reads back as the same double (0.0 as
    0), text unquoted, or every text value quoted if one holds a comma, a quote or a line end;
    a table pyarrow cannot convert (a column of mixed types) is written by pandas. 1,676,107
    episodes took 0.7 s where pandas took 5.5 s.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    try:
        arrow = pa.Table.from_pandas(table, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        table.to_csv(path, index=False, lineterminator="\n")
        return
    for quoting in ("none", "needed"):
        with open(path, "w", encoding="utf-8", newline="") as f:
            csv.writer(f, lineterminator="\n").writerow(table.columns)
        try:
            with open(path, "ab") as f:
                pa_csv.write_csv(arrow, f, write_options=pa_csv.WriteOptions(
                    include_header=False, quoting_style=quoting))
            return
        except pa.ArrowInvalid:  # a text value needs quotes
            continue


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

"""Where outputs go: complete or not at all, and never over what munirank did not write.

Every command writes into a hidden temporary folder (or file) beside its target and renames it
into place only when complete. What is already at the target decides what happens:

============================== ======================================= ====================
at the target                  without ``--overwrite``                 with ``--overwrite``
============================== ======================================= ====================
nothing, or an empty folder    written                                 written
a folder munirank wrote        replaced whole (the CLI says so)        the same
a folder holding other files   refused (exit 2, nothing changed)       munirank's entries
                               naming what is in the way               replaced, the others
                                                                       kept
a regular file (folder wanted) refused                                 refused
a file munirank wrote          replaced (the CLI says so)              the same
another file (file wanted)     refused                                 replaced
a folder (file wanted)         refused                                 refused
============================== ======================================= ====================

A folder munirank wrote carries a marker, :data:`MARKER`, naming the command and the entries
it wrote. Folders written before the marker existed (munirank 0.1) are recognised by their
defining file (``run.json`` of a fit, ``study.json`` of a study, ...) when every entry in them
is a name that command writes (:data:`WRITES`). A file munirank wrote is recognised by its
content (:func:`written_by_munirank`).

A run killed outright (SIGKILL, power loss) cannot clean up after itself; the next run on the
same target removes the temporary folders of dead processes, and puts back a previous output
that was moved aside for the final rename when the new one never arrived.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from munirank.errors import InputError
from munirank.output.files import check_interrupted, interruptible

MARKER = ".munirank.json"
LOG = logging.getLogger(__name__)

_FIT = ("run.json", "municipalities.csv", "covariates.csv", "survival.csv", "ranks_subset.csv",
        "rank_probabilities.csv", "rank_probabilities_subset.csv", "credible_sets.csv",
        "tiers.csv", "statements.txt", "pairwise.csv", "diagnostics.json", "posterior.nc")
#: What each command writes into its folder, and (first) the file that identifies a folder of
#: munirank 0.1, which had no marker; only used to recognise such folders (and as the entries
#: of study and bench, which write as they go). ``simulate --register-form`` also writes
#: persons.csv, residence.csv and crosswalk.csv, which 0.1 did not.
WRITES: dict[str, tuple[str, ...]] = {
    "fit": _FIT,
    "compare": ("comparison.csv", "frequentist.csv", "frequentist.json",
                "comparison_summary.txt", "truth_scores.json", *_FIT),
    "check": ("check.json", "loo.csv", "rank_sensitivity.csv", "ranks_by_model.csv",
              "completion.csv"),
    "reanalyse": ("kappa.json", "municipalities.csv", "checks.csv", "diagnostics.json",
                  "run.json"),
    "simulate": ("truth.csv", "spells.csv", "municipal.csv", "spec.toml"),
    "episodes": ("summary.json", "spells.csv", "spec.toml", "municipal.csv", "summary.txt"),
    "study": ("study.json", "replicates", "study_summary.csv", "reliability.csv",
              "summary.json", "calibration.png", ".pytensor", ".running"),
    "bench": ("bench.json", "bench.txt", "work"),
    "study-statements": ("summary.txt", "results", "work", "sim", "fit", "worked_example.txt"),
}
_SINCE_MARKER = ("episodes",)
"""Commands that came after the marker: a folder of theirs without one is not theirs."""
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|old)-(?P<pid>\d+)(-.*)?$")


@dataclass(frozen=True)
class Destination:
    """What is at an output path now.

    Attributes
    ----------
    path : Path
        The target.
    kind : str
        ``"missing"``, ``"folder"`` or ``"file"`` (anything not a folder).
    command : str or None
        The munirank command that wrote it, if munirank did.
    ours : tuple of str
        Entries munirank wrote (a folder's names; the file itself for a file).
    foreign : tuple of str
        Entries munirank did not write.
    """

    path: Path
    kind: str
    command: str | None = None
    ours: tuple[str, ...] = ()
    foreign: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """Nothing there, or an empty folder."""
        return self.kind == "missing" or (self.kind == "folder" and not self.ours
                                          and not self.foreign)


def inspect_folder(out: str | Path) -> Destination:
    """Say what is at ``out``, where a command wants to write a folder."""
    out = Path(out)
    if not out.exists() and not out.is_symlink():
        return Destination(out, "missing")
    if not out.is_dir():
        return Destination(out, "file", foreign=(out.name,))
    names = sorted(p.name for p in out.iterdir() if not _TEMPORARY.match(p.name))
    command, written = _marker(out)
    if command is None:
        command, written = _legacy(names)
    ours = tuple(n for n in names if n in written or n == MARKER)
    foreign = tuple(n for n in names if n not in ours)
    return Destination(out, "folder", command if ours else None, ours, foreign)


def _marker(out: Path) -> tuple[str | None, frozenset[str]]:
    try:
        record = json.loads((out / MARKER).read_text(encoding="utf-8"))
        return str(record["command"]), frozenset(map(str, record["entries"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None, frozenset()


def _legacy(names: list[str]) -> tuple[str | None, frozenset[str]]:
    """A folder of munirank 0.1: its defining file, and nothing it does not write."""
    for command, writes in WRITES.items():
        if command in _SINCE_MARKER:
            continue
        if writes[0] in names and set(names) <= set(writes):
            return command, frozenset(writes)
    return None, frozenset()


def _in_the_way(dest: Destination, overwrite: bool, inputs: Iterable[str | Path]) -> str | None:
    """Why ``dest`` may not receive a folder, or None if it may."""
    inside = [str(p) for p in inputs if _is_within(Path(p), dest.path)]
    if inside and dest.kind == "folder":
        return (f"holds this command's input ({inside[0]}), which writing here could delete; "
                "choose another --out")
    if dest.kind == "file":
        return ("is a file, and a folder is written here; remove or rename it, or choose "
                "another --out (--overwrite never deletes files munirank did not write)")
    if dest.foreign and not overwrite:
        shown = ", ".join(dest.foreign[:5]) + (f" (+{len(dest.foreign) - 5} more)"
                                               if len(dest.foreign) > 5 else "")
        return (f"holds files munirank did not write ({shown}); choose an empty or new "
                "folder, or pass --overwrite to replace only munirank's files there")
    return None


def _is_within(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


def claim_folder(out: str | Path, *, overwrite: bool = False,
                 inputs: Iterable[str | Path] = ()) -> Destination:
    """Check that a folder may be written at ``out``, before any work is done.

    Temporary folders that killed runs left beside ``out`` are cleaned up
    (:func:`clean_up_after_dead_runs`); nothing else is changed.

    Parameters
    ----------
    out : str or Path
        The output folder.
    overwrite : bool
        Write beside files munirank did not write (replacing only munirank's own).
    inputs : iterable of str or Path
        The command's input files: an ``out`` that holds one is refused.

    Returns
    -------
    Destination
        What is there now.

    Raises
    ------
    InputError
        If something munirank may not replace is in the way; nothing is changed.
    """
    clean_up_after_dead_runs(Path(out))
    dest = inspect_folder(out)
    reason = _in_the_way(dest, overwrite, inputs)
    if reason:
        raise InputError(reason, file=str(out))
    return dest


@contextlib.contextmanager
def atomic_folder(out: str | Path, *, command: str, overwrite: bool = False,
                  inputs: Iterable[str | Path] = ()) -> Iterator[Path]:
    """Yield a temporary folder that takes the place of ``out`` only if the block completes.

    The temporary folder (``.NAME.partial-PID-*`` beside ``out``) is removed whatever happens.
    SIGINT and SIGTERM are guarded (see :func:`munirank.output.files.interruptible`): after either,
    nothing is renamed into place. What may be replaced is checked on entry and again just
    before the rename (see the module docstring).

    Parameters
    ----------
    out : str or Path
        The output folder.
    command : str
        The munirank command writing it (recorded in :data:`MARKER`).
    overwrite : bool
        Write beside files munirank did not write, replacing only munirank's own.
    inputs : iterable of str or Path
        The command's input files: an ``out`` that holds one is refused.

    Raises
    ------
    InputError
        If something munirank may not replace is in the way.
    """
    out = Path(out)
    inputs = tuple(inputs)
    claim_folder(out, overwrite=overwrite, inputs=inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    with interruptible():
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-{os.getpid()}-",
                                    dir=out.parent))
        try:
            yield tmp
            check_interrupted()
            write_marker(tmp, command, (p.name for p in tmp.iterdir()))
            dest = claim_folder(out, overwrite=overwrite, inputs=inputs)  # changed meanwhile?
            _swap_in(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def write_marker(folder: Path, command: str, entries: Iterable[str]) -> None:
    """Record that ``command`` wrote ``entries`` into ``folder``."""
    names = sorted({*entries} - {MARKER})
    record = {"written_by": "munirank", "command": command, "entries": names}
    (folder / MARKER).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def _add_to_marker(path: Path) -> None:
    """A file written into a munirank folder (a report into its fit folder) joins its entries.

    Without this, the fit folder would hold a file its marker does not name, and the next fit
    into it would be refused.
    """
    command, entries = _marker(path.parent)
    if command is not None and path.name not in entries:
        write_marker(path.parent, command, [*entries, path.name])


def _swap_in(tmp: Path, dest: Destination) -> None:
    with _signals_deferred():
        if dest.kind == "missing":
            tmp.rename(dest.path)
        elif not dest.foreign:  # an empty folder or munirank's own: replaced whole
            old = dest.path.with_name(f".{dest.path.name}.old-{os.getpid()}")
            dest.path.rename(old)
            tmp.rename(dest.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            _merge_in(tmp, dest)
    if dest.command is not None:
        LOG.info("replaced the earlier output of `munirank %s` in %s", dest.command, dest.path)


def _merge_in(tmp: Path, dest: Destination) -> None:
    """--overwrite beside other files: munirank's old entries out, the new ones in."""
    old = dest.path / f".{dest.path.name}.old-{os.getpid()}"
    old.mkdir()
    new = [p.name for p in tmp.iterdir()]
    for name in {*dest.ours, *new}:
        if (dest.path / name).exists() or (dest.path / name).is_symlink():
            (dest.path / name).rename(old / name)
    for name in new:
        (tmp / name).rename(dest.path / name)
    shutil.rmtree(old, ignore_errors=True)


def prepare_folder(out: str | Path, *, command: str, overwrite: bool = False,
                   entries: Iterable[str] | None = None,
                   inputs: Iterable[str | Path] = ()) -> Destination:
    """Make ``out`` ready for a command that writes into it as it goes (study, bench).

    A folder the same command wrote is continued (a study resumes); one another munirank
    command wrote loses that command's entries; munirank's marker then names ``entries``
    (default: everything the command may write, :data:`WRITES`).

    Returns
    -------
    Destination
        What was there before.

    Raises
    ------
    InputError
        If something munirank may not replace is in the way; nothing is changed.
    """
    out = Path(out)
    dest = claim_folder(out, overwrite=overwrite, inputs=inputs)
    if dest.command is not None and dest.command != command:
        for name in dest.ours:
            path = out / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        LOG.info("replaced the earlier output of `munirank %s` in %s", dest.command, out)
    elif dest.command == command:
        LOG.info("continuing the earlier `munirank %s` in %s", command, out)
    out.mkdir(parents=True, exist_ok=True)
    write_marker(out, command, WRITES[command] if entries is None else entries)
    return dest


def clean_up_after_dead_runs(out: Path) -> None:
    """Remove temporary folders of killed runs beside (or inside) ``out``; restore an output.

    A run killed between moving the previous output aside and renaming the new one into place
    leaves ``.NAME.old-PID`` and no ``NAME``: the previous output is put back.
    """
    for place in (out.parent, out):
        if not place.is_dir():
            continue
        for path in place.iterdir():
            match = _TEMPORARY.match(path.name)
            if not match or match["name"] != out.name or _alive(int(match["pid"])):
                continue
            if match["kind"] == "old" and place == out.parent and not out.exists():
                path.rename(out)
            elif path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM during the renames, so that none is left half done.

    A signal that arrives meanwhile is consumed: the output is complete by then, and the
    command ends as if the signal had come a moment later.
    """
    if (threading.current_thread() is not threading.main_thread()
            or not hasattr(signal, "sigtimedwait")):  # Windows and macOS: not deferred
        yield
        return
    signals = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        while signal.sigtimedwait(signals, 0) is not None:
            pass
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


# --- single files -----------------------------------------------------------------------------

GENERATOR = "munirank"


def written_by_munirank(path: Path) -> bool:
    """Whether the file at ``path`` is one munirank writes (a report, a pairwise table).

    A report carries ``<meta name="generator" content="munirank ...">``; a pairwise table is a
    square table of probabilities whose header repeats its first column's names.
    """
    try:
        with path.open(encoding="utf-8") as f:
            head = f.read(4096)
    except (OSError, UnicodeDecodeError):
        return False
    if path.suffix.lower() in (".html", ".htm"):
        return f'<meta name="generator" content="{GENERATOR}' in head
    if path.suffix.lower() == ".csv":
        return _is_pairwise_table(path)
    return False


def _is_pairwise_table(path: Path) -> bool:
    import pandas as pd

    try:
        table = pd.read_csv(path, dtype={"municipality": str})
    except (OSError, ValueError, pd.errors.ParserError):
        return False
    if table.columns[0] != "municipality" or len(table) + 1 != len(table.columns):
        return False
    names = table["municipality"].tolist()
    values = table.drop(columns="municipality")
    return (names == [str(c) for c in values.columns]
            and values.apply(pd.to_numeric, errors="coerce").stack().between(0, 1).all())


def claim_file(out: str | Path, *, overwrite: bool = False) -> Destination:
    """Check that a file may be written at ``out``, before any work is done.

    Raises
    ------
    InputError
        If a folder, or a file munirank did not write (without ``overwrite``), is there.
    """
    out = Path(out)
    clean_up_after_dead_runs(out)
    if not out.exists() and not out.is_symlink():
        return Destination(out, "missing")
    if out.is_dir():
        raise InputError("is a folder, and a file is written here: give the file's name",
                         file=str(out))
    if written_by_munirank(out):
        return Destination(out, "file", ours=(out.name,))
    if not overwrite:
        raise InputError("exists and munirank did not write it; choose another name, or "
                         "pass --overwrite to replace it", file=str(out))
    return Destination(out, "file", foreign=(out.name,))


@contextlib.contextmanager
def atomic_file(out: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary file path that replaces the file ``out`` only if the block completes.

    The temporary file (``.NAME.partial-PID`` beside ``out``) is removed whatever happens;
    SIGINT and SIGTERM are guarded as in :func:`atomic_folder`, and what may be replaced is
    decided by :func:`claim_file`.
    """
    out = Path(out)
    claim_file(out, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    with interruptible():
        tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
        try:
            yield tmp
            check_interrupted()
            dest = claim_file(out, overwrite=overwrite)
            with _signals_deferred():
                tmp.replace(out)
            _add_to_marker(out)
            if dest.kind != "missing":
                LOG.info("replaced %s", out)
        finally:
            tmp.unlink(missing_ok=True)

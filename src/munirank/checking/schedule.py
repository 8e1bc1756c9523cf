"""The alternatives of ``munirank check`` two at a time: about half the work in a second process.

Each model's sampler already runs its chains on every core (nutpie: one thread per core), but
between two samplers a model spends seconds on one core: building and compiling the model,
convergence diagnostics, parts of LOO and of the effects. A second process, started before
the chosen model is fitted, fits some of the alternatives meanwhile, so that one model's
single-threaded stages overlap another's sampling. Which ones: :func:`second_share` splits
the models so that both processes have about as much to do, by each baseline's cost relative
to the Weibull model's (:data:`RELATIVE_COST`, CPU seconds of each model's whole fit on
``dk-1999-2005``, bench of 2026-12-07), the first process also carrying the chosen model and
its own stages (prior sensitivity, completion table), the second its later start. Each model is
fitted with the same spec, seed and episodes as in one process, so its draws and every table
are the same whichever process fits it (tested); the results are gathered in the models'
order.

One process is used where there is one core, in a daemonic process (a study's dask worker may
not start children), with fewer than two alternatives, for small fits (fewer than
:data:`MIN_VALUES` episodes x draws: the second interpreter's start, imports and reading cost
about 3 s of CPU, more than it saves there), or when the memory available is short of
:data:`WORKER_BYTES` per episode for the second process.

Measured on ``dk-1999-2005`` (4 x 1,000 draws, the shared 2-core EPYC of issue 29, load
average about 6 from other work): 207 s in two processes against 220 s in one, the same
files; CPU 170 against 160 s. At 4 x 30 draws two processes took 42 s against 29 s.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MIN_VALUES = 20_000_000
"""Episodes x draws (all chains) from which a second process is used."""
WORKER_BYTES = 60_000
"""Memory a second process may need per episode (the check of ``dk-1999-2005``, 23,563
episodes, peaked at 1.1 GiB in one process: about 50 kB per episode) and its floor below."""
WORKER_FLOOR_BYTES = 1 << 30


RELATIVE_COST = {"weibull": 1.0, "exponential": 1.0, "piecewise_exponential": 1.1,
                 "loglogistic": 1.35, "lognormal": 1.8}
"""CPU seconds of a model's fit (sampling, LOO, effects) over the Weibull model's, by baseline:
15.8, 15.5, 17.5, 21.5 and 28.1 s on ``dk-1999-2005`` (4 x 1,000 draws, 2026-12-07). A
model that changes the effects or drops the municipal covariates costs as its baseline."""
FIRST_EXTRA, SECOND_EXTRA = 0.1, 0.2
"""The first process's own stages (prior sensitivity and completion table of the chosen model,
the comparison at the end) and the second one's later start, in the same units. Set when the
second process started after the first had imported and read the register itself; since
then it starts early and gets the episodes read (both smaller: 0.3-0.4 s and about 0.5 s on
``dk-1999-2005``, check.json's ``start_seconds``), and the split they give has stayed the same."""


def second_share(baselines: list[str]) -> list[int]:
    """Indices (into ``baselines``, the chosen model first) of the models the second process fits.

    The split whose busier process has the least to do, by :data:`RELATIVE_COST`; of equally
    good ones the first in a fixed order, so that the same models always go to the same
    process (their results would be the same either way: tested).
    """
    cost = [RELATIVE_COST.get(b, 1.0) for b in baselines]
    alternatives = range(1, len(cost))
    best: tuple[float, list[int]] = (float("inf"), [])
    for mask in range(1 << (len(cost) - 1)):  # at most 2^6 splits: tried one by one
        second = [i for i in alternatives if mask >> (i - 1) & 1]
        busy = sum(cost[i] for i in second) + SECOND_EXTRA
        first = sum(cost) - busy + SECOND_EXTRA + FIRST_EXTRA
        if second and max(first, busy) < best[0] - 1e-9:
            best = (max(first, busy), second)
    return best[1]


def available_bytes() -> int:
    """Memory available to a new process (Linux: MemAvailable; elsewhere free pages)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def processes(n_alternatives: int, n_episodes: int, n_draws: int) -> int:
    """1 or 2: how many processes fit the models (module docstring)."""
    if (n_alternatives < 2 or (os.cpu_count() or 1) < 2 or n_episodes * n_draws < MIN_VALUES
            or multiprocessing.current_process().daemon):
        return 1
    need = max(WORKER_FLOOR_BYTES, WORKER_BYTES * n_episodes)
    return 2 if available_bytes() >= need else 1


_early: tuple[Path, subprocess.Popen[bytes]] | None = None
"""The second process started by :func:`start_early`, until :func:`second_process` takes it."""


def start_early() -> None:
    """Start the second process now, before this one imports the models (``munirank check``).

    Its interpreter's start and imports (2.6 s of one core) then run beside this process's
    own instead of after them, on a core that would be idle. It waits for its job, which
    :func:`second_process` gives it, and ends without one when told so, at this process's
    exit, or when this process has ended. Nothing is started where two processes cannot be
    used (one core, a daemonic process).
    """
    global _early
    if (_early is not None or (os.cpu_count() or 1) < 2
            or multiprocessing.current_process().daemon):
        return
    folder = Path(tempfile.mkdtemp(prefix="munirank-check-"))
    _early = (folder, _launch(folder))
    atexit.register(_stop_early)


def _stop_early() -> None:
    global _early
    if _early is not None:
        folder, proc = _early
        _early = None
        _end(proc, folder)


def _end(proc: subprocess.Popen[bytes], folder: Path) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    shutil.rmtree(folder, ignore_errors=True)


def _launch(folder: Path) -> subprocess.Popen[bytes]:
    with open(folder / "stderr.txt", "wb") as err:
        return subprocess.Popen([sys.executable, "-m", "munirank.checking.schedule",
                                 str(folder)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err)


def _give_job(folder: Path, job: Any) -> None:
    """Write the job whole, then rename it (the other process polls for the name)."""
    part = folder / "job.part"
    part.write_bytes(pickle.dumps(job))
    os.replace(part, folder / "job.pkl")


def _wait_for_job(folder: Path) -> Any:
    """The job, once written; None if the first process ended first."""
    parent = os.getppid()
    while not (folder / "job.pkl").is_file():
        if os.getppid() != parent:
            return None
        time.sleep(0.01)
    return pickle.loads((folder / "job.pkl").read_bytes())


def _fit_all(folder: Path) -> None:
    """The second process: fit the job's variants, each result pickled as it is done."""
    from munirank.checking.alternatives import fit_variant
    from munirank.input.episodes import load_episodes

    job = _wait_for_job(folder)
    if job is None:
        return
    data, spec, variants = job
    try:
        episodes = load_episodes(data, spec) if isinstance(data, str) else data
        for i, variant in enumerate(variants):
            fit, _ = fit_variant(episodes, variant, spec)
            (folder / f"fit_{i}.pkl").write_bytes(pickle.dumps(fit))
    except Exception as e:  # given back to the first process, which raises it
        (folder / "error.pkl").write_bytes(pickle.dumps(e))
        raise


def _result(proc: subprocess.Popen[bytes], folder: Path, i: int) -> Any:
    if proc.wait() != 0:
        if (folder / "error.pkl").is_file():
            raise pickle.loads((folder / "error.pkl").read_bytes())
        tail = (folder / "stderr.txt").read_text(errors="replace").strip().splitlines()[-1:]
        raise RuntimeError(f"check's second process ended with code {proc.returncode}: "
                           f"{tail[0] if tail else 'no output'}")
    return pickle.loads((folder / f"fit_{i}.pkl").read_bytes())


@contextmanager
def second_process(data: str | Path | Any, spec: Any, variants: list[Any],
                   ) -> Iterator[Callable[[int], Any]]:
    """Start fitting ``variants`` in a second process; yield ``result(i)`` for the i-th.

    ``data``: the spell file, or the episodes already read from it (an ``xarray.Dataset``,
    pickled to the other process in a few milliseconds instead of read and validated again
    there: 0.4-0.5 s of CPU on dk-1999-2005).

    An empty list starts nothing (and ends a process :func:`start_early` started). The process
    is a fresh interpreter (``python -m munirank.checking.schedule``), neither forked (this
    process may already run numba's or the sampler's threads) nor spawned by multiprocessing
    (which re-runs the caller's main script, and a script without a ``__main__`` guard would
    then fail); the one :func:`start_early` started if there is one. Job and results travel as
    pickles in a temporary folder that only these two processes use.
    """
    global _early
    early, _early = _early, None
    if not variants:
        if early is not None:
            _end(early[1], early[0])
        yield lambda i: None
        return
    if early is not None:
        folder, proc = early
    else:
        folder = Path(tempfile.mkdtemp(prefix="munirank-check-"))
        proc = _launch(folder)
    try:
        _give_job(folder, (str(data) if isinstance(data, str | Path) else data, spec, variants))
        yield lambda i: _result(proc, folder, i)
    finally:
        _end(proc, folder)


if __name__ == "__main__":
    _fit_all(Path(sys.argv[1]))

"""Threads that wait without spinning: one BLAS thread, and OpenMP's idle threads asleep.

Every heavy step after sampling (PSIS-LOO, effects in months, the posterior predictive
checks) is a matrix product by BLAS followed by a numba kernel that runs on every core
(``parallel=True``). OpenBLAS keeps its threads spinning for a while after each product, and
they then take the cores from numba's threads. Measured on ``dk-1999-2005`` (4,000 draws,
2-core EPYC, issue 29): PSIS-LOO of one model 2.24 s wall and 4.3 s of CPU with OpenBLAS'
default two threads against 1.18 s and 2.2 s with one; the Weibull effects 1.28 s and 2.5 s
against 0.76 s and 1.35 s; the whole ``munirank check`` 106 s and 203 s of CPU against 88 s
and 167 s. The products themselves (a few draws x episodes x covariates) lose nothing that
shows. The sampler already limits BLAS the same way (:mod:`munirank.model.sampling`).

:func:`one_blas_thread` limits BLAS (through threadpoolctl, which finds OpenBLAS, MKL or BLIS
wherever numpy and scipy loaded them) for the duration of a call and restores the previous
setting after it, so a Python user's own session is left as it was.

numba's parallel kernels run on OpenMP's threads (libgomp where it is installed). At the end
of each parallel loop libgomp lets the threads that are done spin for a while before they
sleep: where another process has the other core (``munirank check``'s two processes, or
anything else the user runs), a thread that finished its half spins while the other half
waits for a core. :func:`passive_openmp` sets ``OMP_WAIT_POLICY=PASSIVE`` (idle threads sleep
at once) unless the environment already sets it; libgomp reads it when it is loaded, so it is
called when munirank is imported, before any kernel runs. Measured on ``dk-1999-2005`` (4,000
draws, 2-core EPYC, issue 29), beside a process keeping two threads busy: PSIS-LOO of one
model 2.0-2.2 s of CPU against 1.33-1.35 s, the Weibull effects 1.37-1.53 s against
1.11-1.21 s; alone on the machine, the same wall seconds (0.80 s and 0.72 s) and 10-12 % less
CPU. The results are the same: the policy changes how threads wait, not the work they share.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

WAIT_POLICY = "OMP_WAIT_POLICY"


def passive_openmp() -> None:
    """``OMP_WAIT_POLICY=PASSIVE`` unless already set (module docstring)."""
    os.environ.setdefault(WAIT_POLICY, "PASSIVE")


def one_blas_thread[**P, R](func: Callable[P, R]) -> Callable[P, R]:
    """Run ``func`` with one BLAS thread (module docstring); the setting is restored after."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return func(*args, **kwargs)

    return wrapper

"""Posterior computation: the only module that calls ``pm.sample``.

Returns the posterior as an ``xarray.DataTree`` with groups ``posterior`` (parameters,
dims chain, draw, ...) and ``sample_stats``. Methods:

- ``nuts`` (default): nutpie (default sampler) or PyMC's own NUTS (``sampler="pymc"``);
- ``laplace``: nested Laplace approximation over a grid of the municipality SD
  (:mod:`munirank.model.laplace`), for registers too large to refit often with NUTS. Its draws
  are independent; validate it against NUTS on the same data (``munirank bench``).

Not offered: numpyro (JAX) cannot run the model, whose cumulative hazard is a numba-compiled
PyTensor Op (:mod:`munirank.model.kernel`) with no JAX implementation; pathfinder's only
implementation for PyMC, in pymc-extras, requires pymc < 6.4 (``docs/methods.md``).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections.abc import Iterator

import pymc as pm
import xarray as xr
from threadpoolctl import threadpool_limits

from munirank.input.spec import SamplingSpec
from munirank.model.build import PARAMETERS


def sample_posterior(model: pm.Model, spec: SamplingSpec, *, progressbar: bool = True,
                     var_names: list[str] | None = None) -> tuple[xr.DataTree, dict[str, float]]:
    """Draw from the posterior of ``model``.

    Parameters
    ----------
    model : pymc.Model
        Built by :func:`munirank.model.build.create_model` (or another munirank model factory).
    spec : SamplingSpec
        Draws, tuning steps, chains, sampler, method, seed and target acceptance.
    progressbar : bool
        Show sampling progress.
    var_names : list of str, optional
        Variables to keep; default: the model's reported parameters (:data:`PARAMETERS`).

    Returns
    -------
    tree : xarray.DataTree
        Groups ``posterior`` and ``sample_stats``.
    timings : dict
        ``sampling_seconds`` (wall time, compilation included), ``compile_seconds`` and
        ``draw_seconds`` (the sampler's own time for tuning and draws).
    """
    if var_names is None:
        var_names = [v for v in PARAMETERS if v in model.named_vars]
    # One BLAS thread: the sampler already runs one chain per core, and OpenBLAS threads
    # fighting over the same cores made each gradient (a matrix-vector product) 40x slower
    # (32 ms -> 0.8 ms per x @ beta and its gradient on dk-1999-2005, measured).
    with threadpool_limits(limits=1, user_api="blas"):
        return _sample(model, spec, progressbar=progressbar, var_names=var_names)


@contextlib.contextmanager
def _one_blas_thread_in_children() -> Iterator[None]:
    """One BLAS thread in PyMC's chain processes, which read it from the environment.

    :func:`threadpool_limits` in this process does not reach processes started later.
    """
    names = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update(dict.fromkeys(names, "1"))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _chain_processes(chains: int) -> int:
    """Processes for PyMC's chains: one per chain up to the cores, one in a daemonic process.

    A daemonic process (a dask worker of ``munirank study``) may not start children, and PyMC
    runs chains in child processes when given more than one core; there the chains run one
    after another (the study already runs one replicate per core).
    """
    if multiprocessing.current_process().daemon:
        return 1
    return min(chains, os.cpu_count() or 1)


def _sample(model: pm.Model, spec: SamplingSpec, *, progressbar: bool,
            var_names: list[str]) -> tuple[xr.DataTree, dict[str, float]]:
    if spec.method == "laplace":
        from munirank.model.laplace import laplace_posterior

        return laplace_posterior(model, spec, var_names=var_names)
    if spec.method != "nuts":
        raise NotImplementedError(f"method {spec.method!r} is not available; use nuts or laplace")
    if spec.sampler == "nutpie":
        return _sample_nutpie(model, spec, progressbar=progressbar, var_names=var_names)
    t0 = time.perf_counter()
    with model, _one_blas_thread_in_children():
        tree = pm.sample(
            draws=spec.draws, tune=spec.tuning_steps, chains=spec.chains,
            cores=_chain_processes(spec.chains), random_seed=spec.seed,
            nuts_sampler=spec.sampler, target_accept=spec.target_accept,
            progressbar=progressbar, var_names=var_names, compute_convergence_checks=False,
        )
    wall = time.perf_counter() - t0
    drawing = float(tree["posterior"].attrs.get("sampling_time", wall))
    return tree, {"sampling_seconds": wall, "compile_seconds": max(wall - drawing, 0.0),
                  "draw_seconds": drawing}


def _sample_nutpie(model: pm.Model, spec: SamplingSpec, *, progressbar: bool,
                   var_names: list[str]) -> tuple[xr.DataTree, dict[str, float]]:
    """Sample with nutpie, the model compiled by :mod:`munirank.model.nutpie_compile`.

    The callbacks are cached across processes.

    What ``pm.sample(nuts_sampler="nutpie")`` does, with the same seeds (so the same draws),
    except that the model is compiled with callbacks numba caches across processes
    (measured on dk-1999-2005: 13.4 s of compilation in every process with nutpie's own,
    1.4-2.0 s with these once cached, bench of 2026-12-01 at 3950d19) and that no per-person
    data groups are attached.
    """
    from pymc.util import get_random_generator

    from munirank.model.nutpie_compile import compile_model, import_nutpie

    nutpie = import_nutpie()

    t0 = time.perf_counter()
    compiled = compile_model(model, var_names=var_names)
    # pm.sample's seed for nutpie: the first of the per-chain seeds it spawns
    seed = int(get_random_generator(spec.seed).spawn(spec.chains)[0].integers(2**30))
    options = {"adaptation": spec.adaptation} if spec.adaptation != "auto" else {}
    t1 = time.perf_counter()
    tree = nutpie.sample(compiled, draws=spec.draws, tune=max(spec.tuning_steps, 1),
                         chains=spec.chains, cores=min(spec.chains, os.cpu_count() or 1),
                         seed=seed, save_warmup=False, progress_bar=progressbar,
                         target_accept=spec.target_accept, **options)
    t2 = time.perf_counter()
    tree["posterior"].attrs.update(sampling_time=t2 - t1, tuning_steps=spec.tuning_steps)
    return tree, {"sampling_seconds": t2 - t0, "compile_seconds": t1 - t0,
                  "draw_seconds": t2 - t1}

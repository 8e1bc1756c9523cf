"""Sampling: the only module that calls ``pm.sample``.

Returns the posterior as an ``xarray.DataTree`` with groups ``posterior`` (parameters,
dims chain, draw, ...) and ``sample_stats``. nutpie is the default sampler; PyMC's own NUTS
(``sampler="pymc"``) and numpyro (needs JAX) are alternatives.
"""

from __future__ import annotations

import os
import time

import pymc as pm
import xarray as xr

from munirank.model import PARAMETERS
from munirank.spec import SamplingSpec


def sample_posterior(model: pm.Model, spec: SamplingSpec, *,
                     progressbar: bool = True) -> tuple[xr.DataTree, dict[str, float]]:
    """Draw from the posterior of ``model``.

    Parameters
    ----------
    model : pymc.Model
        Built by :func:`munirank.model.create_model`.
    spec : SamplingSpec
        Draws, tuning steps, chains, sampler, seed and target acceptance.
    progressbar : bool
        Show sampling progress.

    Returns
    -------
    tree : xarray.DataTree
        Groups ``posterior`` and ``sample_stats``.
    timings : dict
        ``sampling_seconds`` (wall time of ``pm.sample``, compilation included).

    Raises
    ------
    ImportError
        If the sampler's optional dependency (numpyro/JAX) is not installed.
    """
    if spec.method != "nuts":
        raise NotImplementedError(f"method {spec.method!r} is not available yet; use nuts")
    if spec.sampler == "numpyro":
        try:
            import numpyro  # noqa: F401
        except ImportError as err:
            raise ImportError("sampler 'numpyro' needs JAX: pip install numpyro jax") from err
    var_names = [v for v in PARAMETERS if v in model.named_vars]
    t0 = time.perf_counter()
    with model:
        tree = pm.sample(
            draws=spec.draws, tune=spec.tune, chains=spec.chains,
            cores=min(spec.chains, os.cpu_count() or 1), random_seed=spec.seed,
            nuts_sampler=spec.sampler, target_accept=spec.target_accept,
            progressbar=progressbar, var_names=var_names, compute_convergence_checks=False,
        )
    return tree, {"sampling_seconds": time.perf_counter() - t0}

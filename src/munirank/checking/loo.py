r"""PSIS-LOO of a fitted model, block by block of episodes (``munirank check``).

The pointwise log-likelihood :math:`\ell_{is}` (draws x episodes; 4,000 x 23,563 = 754 MB on
``dk-1999-2005``) is never held whole: for each block of episodes the linear predictor is one
matrix product, :math:`\ell` comes from the same compiled functions the sampler uses
(:func:`munirank.model.family_kernel.pointwise_rows`, each episode's draws contiguous), and
PSIS-LOO (:mod:`munirank.checking.psis`) reduces the block to three numbers per episode.
What is kept: elpd, :math:`\hat k` and :math:`p_\text{loo}` per episode (in memory only,
never written) and the log-likelihood summed over episodes per draw, which is all that
power-scaling of the likelihood needs (:func:`arviz_stats.psense_summary` sums it over the
episodes itself).

As :func:`munirank.model.build.pointwise_loglik`, the density is in months (the Jacobian
:math:`-d_i \log T` of the time scale), so that every baseline's elpd is comparable.
Measured on ``dk-1999-2005`` (4,000 draws, loaded 2-core machine of issue 29): 45-95 s per
model with ``pointwise_loglik`` and :func:`arviz_stats.loo` before, whose object also kept the
754 MB of log weights (and :func:`arviz_stats.compare` deep-copies them, 31 s for 7 models).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from munirank.checking.psis import loo_result, psis_loo_rows, relative_efficiency
from munirank.input.episodes import as_codes
from munirank.model.build import (
    PARAMETERS,
    _log_or_minus_inf,
    draws_by_label,
    piece_cuts,
    piece_exposure,
    time_scale,
)
from munirank.model.family_kernel import pointwise_rows

BLOCK_VALUES = 4_000_000
"""Draws x episodes per block (32 MB per float array)."""


@dataclass(frozen=True)
class ModelLoo:
    """PSIS-LOO of one model.

    Attributes
    ----------
    loo : arviz_stats.utils.ELPDDataLOO
        elpd, se, p_loo and the pointwise values (in memory only).
    warnings : list of str
        What arviz-stats would warn about (Pareto k above its threshold).
    loglik_draws : xarray.DataArray
        The log-likelihood summed over episodes, per draw (chain, draw).
    """

    loo: Any
    warnings: list[str]
    loglik_draws: xr.DataArray


def _shape_arguments(posterior: xr.Dataset, episodes: xr.Dataset, baseline: str,
                     t: np.ndarray, s: np.ndarray) -> dict[str, np.ndarray]:
    if baseline == "piecewise_exponential":
        cuts = piece_cuts(episodes)
        log_piece = draws_by_label(posterior, "log_piece", "piece", episodes)
        return {"piece": np.searchsorted(cuts, t), "exposure": piece_exposure(t, s, cuts),
                "log_piece": np.column_stack([np.zeros(len(log_piece)), log_piece])}
    if baseline == "exponential":
        return {}
    return {"alpha": draws_by_label(posterior, "alpha", None, episodes)}


def model_loo(posterior: xr.Dataset, episodes: xr.Dataset, *, baseline: str,
              block_values: int = BLOCK_VALUES) -> ModelLoo:
    """PSIS-LOO of a fitted model from its draws, block by block of episodes.

    Parameters
    ----------
    posterior : xarray.Dataset
        Draws (chain, draw) of the model's parameters.
    episodes : xarray.Dataset
        The episodes the model was fitted to.
    baseline : str
        The fitted model's baseline.
    block_values : int
        Draws x episodes per block (bounds the memory).

    Returns
    -------
    ModelLoo
    """
    scale = time_scale(episodes)
    t = episodes["exit"].to_numpy() / scale
    s = episodes["entry"].to_numpy() / scale
    d = episodes["event"].to_numpy().astype(float)
    log_t, log_s = np.log(t), _log_or_minus_inf(s)
    x, codes = episodes["x"].to_numpy(), as_codes(episodes)
    beta0 = draws_by_label(posterior, "beta0", None, episodes)
    beta = draws_by_label(posterior, "beta", "covariate", episodes)
    # municipality part of the linear predictor, one row of draws per municipality
    mu = np.ascontiguousarray((draws_by_label(posterior, "gamma", "municipal_covariate", episodes)
                               @ episodes["z"].to_numpy().T
                               + draws_by_label(posterior, "u", "municipality", episodes)).T)
    shapes = _shape_arguments(posterior, episodes, baseline, t, s)
    n_draws, n_ep = len(beta0), len(t)
    r_eff = relative_efficiency(posterior[[v for v in PARAMETERS if v in posterior]])
    elpd, khat, p_loo = np.empty(n_ep), np.empty(n_ep), np.empty(n_ep)
    total = np.zeros(n_draws)
    step = max(1, block_values // n_draws)
    for b0 in range(0, n_ep, step):
        sl = slice(b0, min(b0 + step, n_ep))
        eta = x[sl] @ beta.T
        eta += mu[codes[sl]]
        eta += beta0
        extra = ({k: v[sl] for k, v in shapes.items() if k in ("piece", "exposure")}
                 | {k: v for k, v in shapes.items() if k in ("alpha", "log_piece")})
        ll = pointwise_rows(baseline, eta, log_t=log_t[sl], log_s=log_s[sl], d=d[sl], **extra)
        ll -= d[sl, None] * np.log(scale)  # density in months
        total += ll.sum(axis=0)
        elpd[sl], khat[sl], p_loo[sl] = psis_loo_rows(ll, r_eff=r_eff)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loo = loo_result(elpd, khat, p_loo, n_samples=n_draws)
    sd = ("chain", "draw")
    draws = xr.DataArray(total.reshape(posterior.sizes["chain"], posterior.sizes["draw"]),
                         dims=sd, coords={k: posterior[k] for k in sd})
    return ModelLoo(loo, sorted({str(w.message)[:120] for w in caught}), draws)

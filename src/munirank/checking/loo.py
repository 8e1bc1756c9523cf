r"""PSIS-LOO of a fitted model, block by block of episodes (``munirank check``).

The pointwise log-likelihood :math:`\ell_{is}` (draws x episodes; 4,000 x 23,563 = 754 MB on
``dk-1999-2005``) is never held whole: for each block of episodes the covariate part of the
linear predictor is one matrix product (into one buffer reused by every block), and then one
compiled pass takes each episode in turn: the municipality part and the intercept added, its
:math:`\ell` at every draw from the row function the sampler's baselines are tested against
(:func:`munirank.model.family_kernel.pointwise_rows` calls the same one), and its PSIS-LOO
(:func:`munirank.checking.psis.psis_row`), each thread with its own scratch. What is kept:
elpd, :math:`\hat k` and :math:`p_\text{loo}` per episode (in memory only, never written) and
the log-likelihood summed over episodes per draw (in a fixed order of chunks of episodes,
whatever the number of threads), which is all that power-scaling of the likelihood needs
(:func:`arviz_stats.psense_summary` sums it over the episodes itself).

As :func:`munirank.model.build.pointwise_loglik`, the density is in months (the Jacobian
:math:`-d_i \log T` of the time scale), so that every baseline's elpd is comparable.
Measured on ``dk-1999-2005`` (4,000 draws, loaded 2-core machine of issue 29): 45-95 s per
model with ``pointwise_loglik`` and :func:`arviz_stats.loo` before, whose object also kept the
754 MB of log weights (and :func:`arviz_stats.compare` deep-copies them, 31 s for 7 models);
then 2.7 s of CPU per model (one BLAS thread) with the block's linear predictor, its
log-likelihood and PSIS as three passes over new arrays, and 1.85 s in this one pass (quiet
2-core EPYC; elpd equal to 3e-13 relative, :math:`\hat k` to 2e-9).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import xarray as xr

from munirank.checking.psis import (
    ROWS_PER_CHUNK,
    loo_result,
    psis_row,
    relative_efficiency,
    row_scratch,
    tail_length,
    tail_log_survival,
)
from munirank.input.episodes import as_codes
from munirank.model.build import (
    PARAMETERS,
    _log_or_minus_inf,
    draws_by_label,
    model_times,
    piece_cuts,
    piece_exposure,
    time_scale,
)
from munirank.model.family_kernel import FAMILIES, WEIBULL, episode_row
from munirank.model.kernel import FASTMATH
from munirank.model.vector_math import sources_key

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
    t, s = model_times(episodes)
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
    alpha = np.ascontiguousarray(shapes.get("alpha", np.ones(n_draws)), float)
    if "piece" in shapes:
        piece, exposure, log_piece = shapes["piece"], shapes["exposure"], shapes["log_piece"]
    else:  # placeholders of the right types
        piece, exposure, log_piece = (np.zeros(n_ep, np.int64), np.zeros((n_ep, 1)),
                                      np.zeros((n_draws, 1)))
    piece = np.asarray(piece, np.int64)
    exposure = np.ascontiguousarray(exposure, float)
    log_piece = np.ascontiguousarray(log_piece, float)
    n_tail = tail_length(n_draws, relative_efficiency(
        posterior[[v for v in PARAMETERS if v in posterior]]))
    elpd, khat, p_loo = np.empty(n_ep), np.empty(n_ep), np.empty(n_ep)
    total = np.zeros(n_draws)
    step = max(1, block_values // n_draws)
    eta = np.empty((min(step, n_ep), n_draws))  # one buffer for every block (no page faults)
    family = FAMILIES.get(baseline, WEIBULL)
    for b0 in range(0, n_ep, step):
        sl = slice(b0, min(b0 + step, n_ep))
        block = eta[:sl.stop - b0]
        np.matmul(x[sl], beta.T, out=block)
        elpd[sl], khat[sl], p_loo[sl], flat, totals = _block(
            family, block, mu, codes[sl], beta0, log_t[sl], log_s[sl], d[sl], alpha,
            piece[sl], exposure[sl], log_piece, float(np.log(scale)), n_tail)
        if flat.any():
            raise ValueError("All tail values are the same")  # arviz-stats' error
        for row in totals:  # chunk by chunk, in order: the same sum on any number of threads
            total += row
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loo = loo_result(elpd, khat, p_loo, n_samples=n_draws)
    sd = ("chain", "draw")
    draws = xr.DataArray(total.reshape(posterior.sizes["chain"], posterior.sizes["draw"]),
                         dims=sd, coords={k: posterior[k] for k in sd})
    return ModelLoo(loo, sorted({str(w.message)[:120] for w in caught}), draws)


@numba.njit
def _add_rows(eta, mu, beta0):  # noqa: ANN001, ANN202
    """Add mu, then beta0, to eta in that order (no reassociation: as the matrix code did)."""
    for s in range(eta.shape[0]):
        eta[s] = (eta[s] + mu[s]) + beta0[s]


def _compile_block(key: int):  # noqa: ANN202
    @numba.njit(fastmath=FASTMATH, error_model="numpy", cache=True, parallel=True)
    def block(family, eta, mu, codes, beta0, log_t, log_s, d, alpha, piece, exposure,  # noqa: ANN001, ANN202, PLR0913
              log_piece, log_scale, n_tail):
        """One block of episodes, row by row.

        The rest of the linear predictor, the pointwise log-likelihood in months and its
        PSIS-LOO; per chunk of rows the sum of the log-likelihood over its episodes, per draw.
        """
        _ = key  # in numba's cache index: an edit of a module used here recompiles
        n_ep, n_draw = eta.shape
        rates = np.exp(log_piece)  # (draws, pieces), the first piece's 0 included
        log_alpha = np.log(alpha)
        n_chunks = (n_ep + ROWS_PER_CHUNK - 1) // ROWS_PER_CHUNK
        elpd = np.empty(n_ep)
        khat = np.empty(n_ep)
        p_loo = np.empty(n_ep)
        flat = np.zeros(n_ep, np.bool_)
        totals = np.zeros((n_chunks, n_draw))
        log_surv = tail_log_survival(n_tail)
        for c in numba.prange(n_chunks):
            buf = np.empty((8, n_draw))
            ll = np.empty(n_draw)
            lw, work, scratch = row_scratch(n_draw)
            tot = totals[c]
            for i in range(c * ROWS_PER_CHUNK, min((c + 1) * ROWS_PER_CHUNK, n_ep)):
                _add_rows(eta[i], mu[codes[i]], beta0)
                episode_row(family, ll, eta[i], i, log_t, log_s, d, alpha, log_alpha, rates,
                            exposure, log_piece, piece, buf)
                for s in range(n_draw):
                    ll[s] -= d[i] * log_scale  # density in months
                    tot[s] += ll[s]
                elpd[i], khat[i], p_loo[i], ok = psis_row(ll, n_tail, log_surv, lw, work, scratch)
                flat[i] = not ok
        return elpd, khat, p_loo, flat, totals

    return block


_block = _compile_block(sources_key(__name__, "munirank.checking.psis",
                                    "munirank.model.family_kernel", "munirank.model.kernel",
                                    "munirank.model.vector_math"))

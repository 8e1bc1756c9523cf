r"""LOO of the competing-outcomes model against the single-outcome model (``[data] outcome``).

The two models explain different data: the cause-specific model gives the density of the
exit time *and* of which outcome ended the episode, the single-outcome model only of the exit
time. To compare them by PSIS-LOO on the same data, the single-outcome model is completed
with constant cause shares: given an event, its outcome is k with probability
:math:`\pi_k` whatever the person, the municipality and the time,

.. math::

    \ell^{\text{single}}_i = \ell^{\text{Weibull}}_i + d_i \log \pi_{c_i}, \qquad
    \pi \sim \mathrm{Dirichlet}(1 + D_1, \dots, 1 + D_K),

the posterior of the shares under a flat Dirichlet prior (one draw of :math:`\pi` per draw of
the Weibull model; :math:`D_k` the events of outcome k). Its elpd difference to the
cause-specific model then measures what outcome-specific hazards, shapes, covariate effects
and municipality effects add. Both pointwise log-likelihoods are densities in months
(:func:`munirank.model.build.pointwise_loglik`); PSIS-LOO is issue 29's
(:mod:`munirank.checking.psis`). They are per-episode arrays kept in memory, never written.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from munirank.input.episodes import as_codes
from munirank.model.build import model_times, pointwise_loglik, time_scale, weibull_loglik


def outcome_pointwise_loglik(posterior: xr.Dataset, episodes: xr.Dataset) -> xr.DataArray:
    """Per-episode log-likelihood of the competing-outcomes model per draw, in months.

    Returns
    -------
    xarray.DataArray
        Dims (chain, draw, episode): the sum over outcomes of the cause-specific Weibull
        terms (:mod:`munirank.model.outcomes`).
    """
    scale = time_scale(episodes)
    t, s = model_times(episodes)
    code, m = episodes["episode_outcome"].to_numpy(), as_codes(episodes)
    x, z = episodes["x"].to_numpy(), episodes["z"].to_numpy()
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]
    total = np.zeros((n_chain * n_draw, len(t)))
    for k, label in enumerate(episodes["outcome"].to_numpy().tolist()):
        post = posterior.sel(outcome=label)

        def flat(name: str, *dims: str, post: xr.Dataset = post) -> np.ndarray:
            arr = post[name].transpose("chain", "draw", *dims).to_numpy()
            return arr.reshape(n_chain * n_draw, *arr.shape[2:])

        level = flat("gamma", "municipal_covariate") @ z.T + flat("u", "municipality")
        eta = flat("beta0")[:, None] + flat("beta", "covariate") @ x.T + level[:, m]
        total += weibull_loglik(t, s, (code == k).astype(float), eta, flat("alpha")[:, None])
    event = (code >= 0).astype(float)
    out = total - event * np.log(scale)
    return xr.DataArray(out.reshape(n_chain, n_draw, -1), dims=("chain", "draw", "episode"),
                        coords={"chain": posterior["chain"], "draw": posterior["draw"]})


def single_with_shares_loglik(posterior: xr.Dataset, episodes: xr.Dataset, *,
                              seed: int = 0) -> xr.DataArray:
    """The single-outcome model's pointwise log-likelihood completed with cause shares.

    ``posterior`` is a single-outcome fit of the same episodes; the shares are drawn from
    their Dirichlet posterior (module docstring) with a seeded generator.
    """
    base = pointwise_loglik(posterior, episodes)
    code = episodes["episode_outcome"].to_numpy()
    counts = np.bincount(code[code >= 0], minlength=episodes.sizes["outcome"])
    rng = np.random.default_rng(seed)
    shares = rng.dirichlet(1.0 + counts, size=(posterior.sizes["chain"], posterior.sizes["draw"]))
    log_share = np.where(code >= 0, np.log(shares)[..., np.maximum(code, 0)], 0.0)
    return base + xr.DataArray(log_share, dims=("chain", "draw", "episode"))


def psis_loo(posterior: xr.Dataset, loglik: xr.DataArray) -> Any:
    """PSIS-LOO of a pointwise log-likelihood (issue 29's :mod:`munirank.checking.psis`)."""
    import warnings

    from munirank.checking.psis import loo_result, psis_loo_rows, relative_efficiency
    from munirank.model.build import PARAMETERS

    rows = loglik.transpose("episode", "chain", "draw").to_numpy()
    rows = rows.reshape(rows.shape[0], -1)  # (episodes, draws), chains first
    r_eff = relative_efficiency(posterior[[v for v in PARAMETERS if v in posterior]])
    elpd, khat, p_loo = psis_loo_rows(rows, r_eff=r_eff)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto-k warnings are counted in the table instead
        return loo_result(elpd, khat, p_loo, n_samples=rows.shape[1])


def outcome_loo_table(outcome_posterior: xr.Dataset, single_posterior: xr.Dataset,
                      episodes: xr.Dataset) -> pd.DataFrame:
    """PSIS-LOO of both models on the same episodes and outcomes, best first (as loo.csv).

    Parameters
    ----------
    outcome_posterior : xarray.Dataset
        Draws of the competing-outcomes model.
    single_posterior : xarray.Dataset
        Draws of the single-outcome model fitted to the same episodes (outcome ignored).
    episodes : xarray.Dataset
        With ``episode_outcome``.

    Returns
    -------
    pandas.DataFrame
        model, elpd_loo, se, p_loo, elpd_diff, dse, weight, n_pareto_k_gt_0_7.
    """
    import warnings

    import arviz_stats as azs

    from munirank.checking.alternatives import PARETO_K_BAD

    fits = {"competing_outcomes": psis_loo(
                outcome_posterior, outcome_pointwise_loglik(outcome_posterior, episodes)),
            "single_outcome_constant_shares": psis_loo(
                single_posterior, single_with_shares_loglik(single_posterior, episodes))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto-k warnings are counted in the table instead
        comp = azs.compare(fits, round_to="none")
    rows = [{"model": name, "elpd_loo": row["elpd"], "se": row["se"], "p_loo": row["p"],
             "elpd_diff": row["elpd_diff"], "dse": row["dse"], "weight": row["weight"],
             "n_pareto_k_gt_0_7": int((fits[name].pareto_k > PARETO_K_BAD).sum())}
            for name, row in comp.iterrows()]
    return pd.DataFrame(rows)


def without_outcomes(episodes: xr.Dataset) -> xr.Dataset:
    """The same episodes for the single-outcome model (the outcome of each event dropped)."""
    return episodes.drop_dims("outcome").drop_vars("episode_outcome", errors="ignore")

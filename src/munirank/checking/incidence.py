r"""Cumulative incidence by outcome: Aalen-Johansen against the model (``incidence.csv``).

With competing outcomes (``[data] outcome``) a fit writes, instead of survival.csv, the
cumulative incidence :math:`F_k(t)` of each outcome on the monthly grid, nationally and for
the five largest and the ``[ranking] subset`` municipalities (the groups of survival.csv):

- observed: the Aalen-Johansen estimator with delayed entry,

  .. math::

      \hat F_k(t) = \sum_{t_j \le t} \hat S(t_{j-1})\, \frac{d_{kj}}{n_j}, \qquad
      \hat S(t) = \prod_{t_j \le t} \Bigl(1 - \frac{d_j}{n_j}\Bigr),

  :math:`n_j` the episodes at risk just before :math:`t_j` (entered before it, not yet left),
  :math:`d_{kj}` the events of outcome k at :math:`t_j`, :math:`d_j = \sum_k d_{kj}`; its
  delta-method variance (Marubini and Valsecchi 1995, the one lifelines'
  ``AalenJohansenFitter`` computes)

  .. math::

      \sum_{t_j \le t} \Bigl[(\hat F_k(t) - \hat F_k(t_j))^2 \frac{d_j}{n_j (n_j - d_j)}
      + \hat S(t_{j-1})^2 \frac{d_{kj} (n_j - d_{kj})}{n_j^3}
      - 2 (\hat F_k(t) - \hat F_k(t_j))\, \hat S(t_{j-1}) \frac{d_{kj}}{n_j^2}\Bigr]

  and the interval on the log(-log) scale, as lifelines'. Written here because lifelines'
  ``AalenJohansenFitter`` breaks tied event times by adding random noise (with a warning),
  and register times in whole weeks tie everywhere; the estimator itself handles ties
  exactly. Equal to lifelines on untied data (tested).
- expected: the posterior predictive, population-averaged :math:`F_k(t) = n^{-1}\sum_i
  \int_0^t h_{ik} S_i` per draw (Gauss-Legendre, 2 nodes per month), nationally over episodes
  that start at 0, for a municipality over its episodes with its own effects, then the mean
  and the equal-tailed interval over at most 200 draws.

Values are blank where fewer than ``min_cell`` episodes are at risk (as survival.csv).
"""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import erfcinv

from munirank.checking.predictive import _members, _subsample, month_grid, thin_draws
from munirank.input.episodes import as_codes
from munirank.model.build import time_scale
from munirank.model.kernel import FASTMATH
from munirank.model.kernel import exp as fast_exp

COLUMNS = ["group", "outcome", "month", "aj", "aj_lo", "aj_hi", "at_risk", "pred_mean",
           "pred_lo", "pred_hi"]
_NODES_PER_MONTH = 2  # the integrand is smooth within a month after the first
MAX_EPISODES = 20_000  # the national predictive curve averages at most this many episodes


def aalen_johansen(entry: np.ndarray, exit: np.ndarray, outcome: np.ndarray, n_outcomes: int,
                   grid: np.ndarray, *, ci_prob: float = 0.9
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aalen-Johansen cumulative incidence of each outcome on ``grid``, with its interval.

    Parameters
    ----------
    entry, exit : numpy.ndarray
        Entry and exit times of each episode.
    outcome : numpy.ndarray
        Each episode's outcome code (0..n_outcomes - 1), -1 if censored.
    n_outcomes : int
        Number of outcomes.
    grid : numpy.ndarray
        Times at which to report the curves.
    ci_prob : float
        Probability of the pointwise interval.

    Returns
    -------
    tuple of numpy.ndarray
        Estimate, lower and upper bound, each (len(grid), n_outcomes).
    """
    entry, exit = np.asarray(entry, float), np.asarray(exit, float)
    event = outcome >= 0
    times = np.unique(exit[event])
    n = (np.searchsorted(np.sort(entry), times, side="left")
         - np.searchsorted(np.sort(exit), times, side="left")).astype(float)
    at = np.searchsorted(times, exit[event])
    d_k = np.zeros((len(times), n_outcomes))
    np.add.at(d_k, (at, outcome[event]), 1.0)
    d = d_k.sum(axis=1)
    surv = np.cumprod(1.0 - d / n)
    lag = np.concatenate([[1.0], surv[:-1]])
    f_j = np.cumsum(lag[:, None] * d_k / n[:, None], axis=0)
    upto = np.searchsorted(times, grid, side="right")  # events at or before each grid time
    f_t = np.where(upto[:, None] > 0, f_j[np.maximum(upto - 1, 0)], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        w1 = np.where(n > d, d / (n * (n - d)), 0.0)
    w2 = lag[:, None] ** 2 * d_k * (n[:, None] - d_k) / n[:, None] ** 3
    w3 = lag[:, None] * d_k / n[:, None] ** 2
    var = np.zeros_like(f_t)
    for g, u in enumerate(upto):  # a few dozen grid times: one vectorised sum each
        diff = f_t[g][None, :] - f_j[:u]
        var[g] = (diff**2 * w1[:u, None] + w2[:u] - 2 * diff * w3[:u]).sum(axis=0)
    z = -np.sqrt(2) * erfcinv(2 * (1 - (1 - ci_prob) / 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_f = np.log(f_t)
        spread = z * np.sqrt(np.maximum(var, 0.0)) / (f_t * log_f)
        lo = np.exp(-np.exp(np.log(-log_f) - spread))
        hi = np.exp(-np.exp(np.log(-log_f) + spread))
    zero = f_t <= 0
    return f_t, np.where(zero, 0.0, lo), np.where(zero, 0.0, hi)


def aalen_johansen_tables(episodes: xr.Dataset, groups: list[str], *, ci_prob: float = 0.9,
                          min_cell: int = 5) -> list[pd.DataFrame]:
    """The observed part of :func:`incidence_table` per group (data only: before sampling)."""
    grid = month_grid(time_scale(episodes))
    entry, exit_ = episodes["entry"].to_numpy(), episodes["exit"].to_numpy()
    code = episodes["episode_outcome"].to_numpy().astype(np.int64)
    labels = episodes["outcome"].to_numpy().tolist()
    tables = []
    for group in groups:
        mine, _ = _members(episodes, group)
        est, lo, hi = aalen_johansen(entry[mine], exit_[mine], code[mine], len(labels), grid,
                                     ci_prob=ci_prob)
        at_risk = ((entry[mine][None, :] <= grid[:, None])
                   & (exit_[mine][None, :] > grid[:, None])).sum(axis=1)
        hide = at_risk < min_cell
        parts = []
        for k, label in enumerate(labels):
            part = pd.DataFrame({"outcome": label, "month": grid, "aj": est[:, k],
                                 "aj_lo": lo[:, k], "aj_hi": hi[:, k],
                                 "at_risk": pd.array(at_risk, dtype="Int64")})
            part.loc[hide, ["aj", "aj_lo", "aj_hi"]] = np.nan
            part["at_risk"] = part["at_risk"].mask(hide)
            parts.append(part)
        tables.append(pd.concat(parts, ignore_index=True))
    return tables


@numba.njit(cache=True, parallel=True, fastmath=FASTMATH)
def _mean_density(eta, power, g):  # noqa: ANN001, ANN202  # pragma: no cover - compiled
    """Per draw, node and outcome: mean over episodes of g * Lambda_k(s_j) S(s_j).

    ``eta`` (draws, K, episodes); ``power`` and ``g`` (draws, nodes, K): (s_j / T)^alpha_k
    and the quadrature weight times alpha_k / s_j. Lambda_k = e^eta_k (s_j / T)^alpha_k: one
    exponential per node for S, not one per outcome as well.
    """
    n_draw, n_out, n_ep = eta.shape
    n_node = power.shape[1]
    out = np.zeros((n_draw, n_node, n_out))
    for s in numba.prange(n_draw):
        rate = np.empty((n_out, n_ep))
        lam = np.empty((n_out, n_ep))
        total = np.empty(n_ep)
        for k in range(n_out):
            for i in range(n_ep):
                rate[k, i] = fast_exp(eta[s, k, i])
        for j in range(n_node):
            total[:] = 0.0
            for k in range(n_out):
                pj = power[s, j, k]
                for i in range(n_ep):
                    lam[k, i] = rate[k, i] * pj
                    total[i] += lam[k, i]
            for i in range(n_ep):
                total[i] = fast_exp(-total[i])
            for k in range(n_out):
                acc = 0.0
                for i in range(n_ep):
                    acc += lam[k, i] * total[i]
                out[s, j, k] = g[s, j, k] * acc / n_ep
    return out


def predictive_incidence(posterior: xr.Dataset, episodes: xr.Dataset, members: np.ndarray,
                         grid: np.ndarray) -> np.ndarray:
    """Population-averaged model cumulative incidence per draw, month and outcome.

    ``posterior`` has a ``sample`` dim (:func:`munirank.checking.predictive.thin_draws`);
    ``members`` are the episodes averaged (with their municipalities' effects).
    """
    scale = time_scale(episodes)
    edges = np.concatenate([[0.0], grid[grid > 0]])
    x, w = np.polynomial.legendre.leggauss(_NODES_PER_MONTH)
    half = np.diff(edges)[:, None] / 2
    nodes = (edges[:-1, None] + half * (x + 1)).ravel()
    weights = (half * w).ravel()
    alpha = posterior["alpha"].transpose("sample", "outcome").to_numpy()
    beta0 = posterior["beta0"].transpose("sample", "outcome").to_numpy()
    beta = posterior["beta"].transpose("sample", "outcome", "covariate").to_numpy()
    gamma = posterior["gamma"].transpose("sample", "outcome", "municipal_covariate").to_numpy()
    u = posterior["u"].transpose("sample", "municipality", "outcome").to_numpy()
    codes = as_codes(episodes)[members]
    level = np.einsum("skc,mc->smk", gamma, episodes["z"].to_numpy()) + u
    eta = (np.einsum("skc,ic->ski", beta, episodes["x"].to_numpy()[members])
           + beta0[:, :, None] + np.transpose(level[:, codes, :], (0, 2, 1)))
    power = np.exp(alpha[:, None, :] * np.log(nodes / scale)[None, :, None])
    g = (weights / nodes)[None, :, None] * alpha[:, None, :]
    density = _mean_density(np.ascontiguousarray(eta), np.ascontiguousarray(power),
                            np.ascontiguousarray(g))
    per_month = density.reshape(len(alpha), len(edges) - 1, _NODES_PER_MONTH, -1).sum(axis=2)
    cum = np.concatenate([np.zeros((len(alpha), 1, per_month.shape[2])),
                          np.cumsum(per_month, axis=1)], axis=1)
    return cum if grid[0] == 0 else cum[:, 1:]


def incidence_table(posterior: xr.Dataset, episodes: xr.Dataset, *, groups: list[str],
                    observed: list[pd.DataFrame], ci_prob: float = 0.9,
                    max_draws: int = 200) -> pd.DataFrame:
    """incidence.csv: Aalen-Johansen and the model's cumulative incidence per group, outcome.

    Parameters
    ----------
    posterior : xarray.Dataset
        Draws (chain, draw) of the outcome model.
    episodes : xarray.Dataset
        The episodes with outcomes.
    groups : list of str
        ``national`` and municipality codes (:func:`munirank.checking.predictive.survival_groups`).
    observed : list of pandas.DataFrame
        :func:`aalen_johansen_tables` of the same groups.
    ci_prob : float
        Probability of the intervals.
    max_draws : int
        Draws used for the predictive curves.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`.
    """
    grid = month_grid(time_scale(episodes))
    thinned = thin_draws(posterior, max_draws)
    labels = episodes["outcome"].to_numpy().tolist()
    tail = (1 - ci_prob) / 2
    parts = []
    for group, obs in zip(groups, observed, strict=True):
        _, members = _members(episodes, group)
        curves = predictive_incidence(thinned, episodes, _subsample(members, MAX_EPISODES),
                                      grid)
        lo, hi = np.quantile(curves, [tail, 1 - tail], axis=0)
        pred = pd.concat([pd.DataFrame({"outcome": label, "month": grid,
                                        "pred_mean": curves[:, :, k].mean(axis=0),
                                        "pred_lo": lo[:, k], "pred_hi": hi[:, k]})
                          for k, label in enumerate(labels)], ignore_index=True)
        parts.append(obs.merge(pred, on=["outcome", "month"]).assign(group=group))
    out = pd.concat(parts, ignore_index=True)[COLUMNS]
    out.attrs.update(ci_prob=ci_prob, n_draws=thinned.sizes["sample"])
    return out

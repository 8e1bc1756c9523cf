r"""The AKF-style frequentist benchmark: Weibull PH with municipality fixed effects, by ML.

The same episodes and individual covariates as the Bayesian model, fitted by maximum
likelihood with lifelines' ``WeibullAFTFitter`` (delayed entry via ``entry_col``):

.. math::

    h(t \mid x_i, m) = \alpha\,t^{\alpha-1}\exp(c + x_i^\top\beta + f_m), \qquad f_{ref} = 0.

lifelines fits the accelerated failure time form :math:`S(t) = \exp(-(t/\lambda)^\rho)`,
:math:`\log\lambda = X b`; the two are one model: :math:`\alpha = \rho` and every PH
coefficient is :math:`-\alpha b`. Municipal covariates are constant within a municipality, so
they are collinear with the fixed effects and are left out of this fit.

Identification and the national average: the dummies are coded against the largest
municipality and reported as :math:`\theta_m = f_m - \sum_j w_j f_j`, with :math:`w_j` the
municipality's share of the episodes (the national average is the average person's
municipality). A municipality without events has no finite MLE (:math:`f_m \to -\infty`); its
episodes then add nothing to the profile likelihood of the other parameters, so they are left
out of the fit and the municipality is reported as not estimable (NaN, unranked).

Effect in months, as in :mod:`munirank.posterior.effects`: observed_m = mean over m's episodes of
:math:`\mathrm{RMST}_\tau(c + x_i^\top\beta + f_m)`, expected_m = the same with
:math:`f_m = \bar f`, effect_m = observed_m - expected_m (negative = faster). Standard errors
are by the delta method with the inverse observed information from lifelines (analytic
derivatives in the linear predictor, a central difference in :math:`\log\alpha`). Tests are
two-sided z-tests of effect_m = 0 (no different from the national average) with AKF's stars:
``***`` p < 0.05, ``**`` p < 0.10, ``*`` p < 0.20. Rank 1 = most negative effect, among
estimable municipalities with more than ``cutoff`` spells (AKF: 80; None ranks all).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special, stats

from munirank.input.episodes import as_codes
from munirank.model.build import time_scale
from munirank.posterior.effects import rmst_weibull
from munirank.posterior.ranks import rank_kernel

STARS = ((0.05, "***"), (0.10, "**"), (0.20, "*"))
CUTOFF = 80
_FTOL = 1e-13  # SLSQP tolerance on the mean log-likelihood: 3-decimal log HRs for 1-event cells


@dataclass(frozen=True)
class FixedEffectsFit:
    """A fitted fixed-effects Weibull PH model, on the proportional-hazards scale.

    ``free`` holds the estimated parameters in the order intercept, ``beta``, the fixed
    effects of the estimable non-reference municipalities, log alpha; ``cov`` is their
    covariance. ``fe`` is per municipality (0 for the reference, NaN if not estimable).
    """

    municipality: np.ndarray
    estimable: np.ndarray
    reference: str
    intercept: float
    beta: np.ndarray
    fe: np.ndarray
    alpha: float
    cov: np.ndarray
    log_likelihood: float
    fit_seconds: float


def _design(episodes: xr.Dataset, keep_muni: np.ndarray, ref: int) -> pd.DataFrame:
    """The lifelines input: covariates, municipality dummies, entry/exit (horizon units), event."""
    codes = as_codes(episodes)
    scale = time_scale(episodes)
    x = episodes["x"].to_numpy()
    cols = {f"cov{k:04d}": x[:, k] for k in range(x.shape[1])}
    for j in np.flatnonzero(keep_muni):
        if j != ref:
            cols[f"mun{j:05d}"] = (codes == j).astype(float)
    df = pd.DataFrame(cols)
    df["entry"] = episodes["entry"].to_numpy() / scale
    df["exit"] = episodes["exit"].to_numpy() / scale
    df["event"] = episodes["event"].to_numpy().astype(int)
    return df.loc[keep_muni[codes]].reset_index(drop=True)


def _lifelines_fit(df: pd.DataFrame, initial: np.ndarray | None):
    """Run WeibullAFTFitter; low-variance dummies of small municipalities are expected."""
    from lifelines import WeibullAFTFitter
    from lifelines.exceptions import ConvergenceWarning

    fitter = WeibullAFTFitter(penalizer=0.0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*low variance.*", category=ConvergenceWarning)
        fitter.fit(df, duration_col="exit", event_col="event", entry_col="entry",
                   initial_point=initial, fit_options={"ftol": _FTOL, "maxiter": 500})
    return fitter


def _start(df: pd.DataFrame) -> np.ndarray:
    r"""Starting values: covariates-only fit, then each dummy at its conditional MLE.

    Given the other parameters, :math:`f_m = \log(D_m / \sum_{i \in m} \Lambda_i)`
    exactly. The point is on lifelines' internal scale (columns divided by their SD).
    """
    covs = [c for c in df.columns if c.startswith("cov")]
    muns = [c for c in df.columns if c.startswith("mun")]
    base = _lifelines_fit(df[[*covs, "entry", "exit", "event"]], None)
    alpha = float(np.exp(base.params_[("rho_", "Intercept")]))
    b = base.params_["lambda_"]
    eta = -alpha * (df[covs].to_numpy() @ b[covs].to_numpy() + b["Intercept"])
    cum = np.exp(eta) * (df["exit"] ** alpha - df["entry"] ** alpha)
    dummies = df[muns].to_numpy()
    in_ref = dummies.sum(axis=1) == 0
    f_ref = np.log(df["event"][in_ref].sum() / cum[in_ref].sum())
    events = (dummies * df["event"].to_numpy()[:, None]).sum(0)
    f = np.log(events / (dummies * cum.to_numpy()[:, None]).sum(0))
    aft = np.concatenate([b[covs].to_numpy(), -(f - f_ref) / alpha,
                          [b["Intercept"] - f_ref / alpha]])
    sd = df[[*covs, *muns]].std().to_numpy()
    return np.concatenate([aft * np.append(sd, 1.0), [np.log(alpha)]])


def fit_fixed_effects(episodes: xr.Dataset, *, start: bool = True) -> FixedEffectsFit:
    """Fit the Weibull PH model with municipality fixed effects by maximum likelihood.

    Parameters
    ----------
    episodes : xarray.Dataset
        Output of :func:`munirank.data.load_episodes` (``z`` is not used: collinear).
    start : bool
        Give lifelines starting values from a covariates-only fit (faster; same optimum).

    Returns
    -------
    FixedEffectsFit
        PH-scale estimates and their covariance (inverse observed information).
    """
    t0 = time.perf_counter()
    codes = as_codes(episodes)
    names = episodes["municipality"].to_numpy().astype(str)
    events = np.bincount(codes, weights=episodes["event"].to_numpy(), minlength=len(names))
    estimable = events > 0
    ref = int(np.argmax(np.where(estimable, episodes["n_spells"].to_numpy(), -1)))
    df = _design(episodes, estimable, ref)
    fitter = _lifelines_fit(df, _start(df) if start else None)
    return _to_ph(fitter, df, names, estimable, ref, time.perf_counter() - t0)


def _to_ph(fitter, df: pd.DataFrame, names: np.ndarray, estimable: np.ndarray, ref: int,
           seconds: float) -> FixedEffectsFit:
    """AFT to PH: phi = -alpha b, log alpha = log rho, covariance by the Jacobian."""
    covs = [c for c in df.columns if c.startswith("cov")]
    muns = [c for c in df.columns if c.startswith("mun")]
    order = ([("lambda_", "Intercept")] + [("lambda_", c) for c in covs]
             + [("lambda_", c) for c in muns] + [("rho_", "Intercept")])
    b = fitter.params_.loc[order].to_numpy()
    v = fitter.variance_matrix_.loc[order, order].to_numpy()
    alpha = float(np.exp(b[-1]))
    phi = -alpha * b[:-1]
    jac = np.zeros((len(b), len(b)))
    jac[:-1, :-1] = -alpha * np.eye(len(b) - 1)
    jac[:-1, -1] = phi
    jac[-1, -1] = 1.0
    fe = np.full(len(names), np.nan)
    fe[ref] = 0.0
    fe[[int(c[3:]) for c in muns]] = phi[1 + len(covs):]
    return FixedEffectsFit(
        municipality=names, estimable=estimable, reference=str(names[ref]),
        intercept=float(phi[0]), beta=phi[1:1 + len(covs)], fe=fe, alpha=alpha,
        cov=jac @ v @ jac.T, log_likelihood=float(fitter.log_likelihood_), fit_seconds=seconds)


def _free_index(fit: FixedEffectsFit) -> np.ndarray:
    """Position of each municipality's fixed effect in ``free`` (-1: reference or NaN)."""
    pos = np.full(len(fit.municipality), -1)
    free = fit.estimable.copy()
    free[fit.municipality == fit.reference] = False
    pos[free] = 1 + len(fit.beta) + np.arange(free.sum())
    return pos


def national_weights(fit: FixedEffectsFit, n_spells: np.ndarray) -> np.ndarray:
    """Episode shares of the estimable municipalities (0 for the others)."""
    w = np.where(fit.estimable, n_spells, 0).astype(float)
    return w / w.sum()


def centred_log_hr(fit: FixedEffectsFit, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log hazard ratio against the national average and its standard error.

    Returns
    -------
    tuple of numpy.ndarray
        ``theta_m = f_m - sum_j w_j f_j`` and its SE (NaN where not estimable).
    """
    pos = _free_index(fit)
    grad = np.zeros((len(pos), len(fit.cov)))
    has = pos >= 0
    grad[:, pos[has]] -= weights[has]
    grad[np.flatnonzero(has), pos[has]] += 1.0
    theta = fit.fe - np.nansum(weights * np.nan_to_num(fit.fe))
    se = np.sqrt(np.einsum("mp,pq,mq->m", grad, fit.cov, grad))
    return theta, np.where(fit.estimable, se, np.nan)


def rmst_slope(eta: np.ndarray, alpha: float, horizon: float, scale: float) -> np.ndarray:
    r"""Derivative of :func:`munirank.posterior.effects.rmst_weibull` in ``eta``, at fixed alpha.

    .. math::

        \partial\,\mathrm{RMST}_\tau / \partial\eta = -T\,\Gamma(1 + 1/\alpha)\,\alpha^{-1}\,
            \lambda^{-1/\alpha}\,P(1 + 1/\alpha,\ \lambda (\tau/T)^\alpha)
    """
    inv = 1.0 / alpha
    arg = np.exp(eta) * (horizon / scale) ** alpha
    return -scale * inv * special.gamma(1.0 + inv) * np.exp(-eta * inv) * special.gammainc(
        1.0 + inv, arg)


def _means(values: np.ndarray, codes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Mean over each municipality's episodes; ``values`` has episodes on the first axis."""
    cols = values.reshape(len(codes), -1)
    out = np.stack([np.bincount(codes, weights=c, minlength=len(counts)) for c in cols.T], 1)
    return (out / counts[:, None]).reshape(len(counts), *values.shape[1:])


def _rmst_means(fit: FixedEffectsFit, episodes: xr.Dataset, weights: np.ndarray,
                alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Observed and expected months per municipality, and the two linear predictors."""
    codes = as_codes(episodes)
    counts = np.bincount(codes, minlength=len(fit.municipality)).astype(float)
    horizon, scale = float(episodes.attrs["horizon_months"]), time_scale(episodes)
    fe = np.nan_to_num(fit.fe)
    eta_exp = fit.intercept + episodes["x"].to_numpy() @ fit.beta + np.sum(weights * fe)
    eta_obs = fit.intercept + episodes["x"].to_numpy() @ fit.beta + fe[codes]
    observed = _means(rmst_weibull(eta_obs, alpha, horizon, scale), codes, counts)
    expected = _means(rmst_weibull(eta_exp, alpha, horizon, scale), codes, counts)
    return observed, expected, eta_obs, eta_exp


def effect_jacobian(fit: FixedEffectsFit, episodes: xr.Dataset,
                    weights: np.ndarray) -> np.ndarray:
    """Gradient of every municipality's effect in months with respect to ``fit``'s free params.

    Analytic in the linear predictor (intercept, beta, fixed effects); a central difference
    in log alpha.
    """
    codes = as_codes(episodes)
    n_m = len(fit.municipality)
    counts = np.bincount(codes, minlength=n_m).astype(float)
    horizon, scale = float(episodes.attrs["horizon_months"]), time_scale(episodes)
    _, _, eta_obs, eta_exp = _rmst_means(fit, episodes, weights, fit.alpha)
    g_obs = rmst_slope(eta_obs, fit.alpha, horizon, scale)
    g_exp = rmst_slope(eta_exp, fit.alpha, horizon, scale)
    design = np.column_stack([np.ones(len(codes)), episodes["x"].to_numpy()])
    jac = np.zeros((n_m, len(fit.cov)))
    jac[:, :design.shape[1]] = _means((g_obs - g_exp)[:, None] * design, codes, counts)
    pos = _free_index(fit)
    has = pos >= 0
    jac[:, pos[has]] -= np.outer(_means(g_exp, codes, counts), weights[has])
    jac[np.flatnonzero(has), pos[has]] += _means(g_obs, codes, counts)[has]
    h = 1e-5
    up = np.subtract(*_rmst_means(fit, episodes, weights, fit.alpha * np.exp(h))[:2])
    down = np.subtract(*_rmst_means(fit, episodes, weights, fit.alpha * np.exp(-h))[:2])
    jac[:, -1] = (up - down) / (2 * h)
    return jac


def stars(p: np.ndarray) -> np.ndarray:
    """AKF's significance stars: *** p < 0.05, ** p < 0.10, * p < 0.20, else ''."""
    p = np.asarray(p, float)
    out = np.full(p.shape, "", dtype=object)
    for level, mark in reversed(STARS):
        out[p < level] = mark
    return out


def rank_effects(effect: np.ndarray, eligible: np.ndarray) -> pd.Series:
    """Rank 1 = most negative effect among ``eligible`` (others <NA>)."""
    out = pd.Series(pd.NA, index=range(len(effect)), dtype="Int64")
    if eligible.any():
        out[eligible] = rank_kernel(effect[eligible])
    return out


def benchmark_table(fit: FixedEffectsFit, episodes: xr.Dataset, *,
                    cutoff: int | None = CUTOFF) -> pd.DataFrame:
    """Per municipality: log HR, effect in months, delta-method SE, p, stars, rank, cut-off.

    Parameters
    ----------
    fit : FixedEffectsFit
        Output of :func:`fit_fixed_effects` on ``episodes``.
    episodes : xarray.Dataset
        The episodes it was fitted to.
    cutoff : int or None
        Rank only municipalities with more spells than this (AKF: 80); None ranks all.

    Returns
    -------
    pandas.DataFrame
        One row per municipality (raw counts: blank them before writing) with
        ``freq_estimable``, ``freq_log_hr``, ``freq_log_hr_se``, ``freq_observed_months``,
        ``freq_expected_months``, ``freq_effect_months``, ``freq_se``, ``freq_p``,
        ``freq_stars``, ``in_cutoff``, ``freq_rank`` and ``freq_rank_all`` (rank without the
        cut-off). ``attrs`` records alpha, the reference, the cut-off and the SE method.
    """
    n_spells = episodes["n_spells"].to_numpy()
    w = national_weights(fit, n_spells)
    log_hr, log_hr_se = centred_log_hr(fit, w)
    observed, expected, _, _ = _rmst_means(fit, episodes, w, fit.alpha)
    effect = np.where(fit.estimable, observed - expected, np.nan)
    jac = effect_jacobian(fit, episodes, w)
    se = np.where(fit.estimable, np.sqrt(np.einsum("mp,pq,mq->m", jac, fit.cov, jac)), np.nan)
    p = 2 * stats.norm.sf(np.abs(effect / se))
    in_cutoff = n_spells > cutoff if cutoff is not None else np.ones(len(n_spells), bool)
    table = pd.DataFrame({
        "municipality": fit.municipality, "n_spells": n_spells,
        "n_events": episodes["n_events"].to_numpy(), "freq_estimable": fit.estimable,
        "freq_log_hr": log_hr, "freq_log_hr_se": log_hr_se,
        "freq_observed_months": np.where(fit.estimable, observed, np.nan),
        "freq_expected_months": np.where(fit.estimable, expected, np.nan),
        "freq_effect_months": effect, "freq_se": se, "freq_p": p,
        "freq_stars": np.where(fit.estimable, stars(p), ""), "in_cutoff": in_cutoff,
        "freq_rank": rank_effects(effect, fit.estimable & in_cutoff),
        "freq_rank_all": rank_effects(effect, fit.estimable),
    })
    table.attrs.update(alpha=fit.alpha, reference=fit.reference, cutoff=cutoff,
                       se_method="delta method, inverse observed information (lifelines)",
                       fit_seconds=fit.fit_seconds, centre="episode-weighted national average")
    return table


def benchmark(episodes: xr.Dataset, *, cutoff: int | None = CUTOFF) -> pd.DataFrame:
    """Fit the fixed-effects model and tabulate the benchmark (see :func:`benchmark_table`).

    Examples
    --------
    >>> table = benchmark(episodes, cutoff=80)                     # doctest: +SKIP
    >>> table.nsmallest(10, "freq_rank")[["municipality", "freq_effect_months"]]  # doctest: +SKIP
    """
    return benchmark_table(fit_fixed_effects(episodes), episodes, cutoff=cutoff)

r"""The partially pooled Weibull proportional-hazards model (DESIGN.md section 2).

Time is rescaled internally to :math:`t^* = t / T` with :math:`T` = the horizon in months, so
that the sampler sees numbers near one; results are reported in months.

.. math::

    h(t \mid x_i, m) &= \alpha\, t^{\alpha - 1} \exp(\eta_i), \qquad
    \eta_i = \beta_0 + x_i^\top \beta + z_m^\top \gamma + u_m \\
    \ell_i &= d_i\,(\log\alpha + (\alpha - 1)\log t_i + \eta_i)
             - e^{\eta_i}\,(t_i^\alpha - s_i^\alpha)

for an episode entered at :math:`s_i` (0 unless delayed entry), left at :math:`t_i`, with
:math:`d_i = 1` if the outcome was reached. The municipality effect is non-centred,
:math:`u_m = \sigma\,\tilde u_m` with :math:`\tilde u_m \sim N(0, 1)` (or Student-t), or
a ZeroSumNormal.

The event terms reduce to sufficient statistics: :math:`\sum_i d_i \eta_i = D\beta_0 +
(\sum_i d_i x_i)^\top\beta + \sum_m D_m (z_m^\top\gamma + u_m)`, so only the cumulative
hazard needs one term per episode; entry terms are evaluated only for delayed-entry episodes
(which also avoids the gradient of :math:`0^\alpha`).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from munirank.data import as_codes
from munirank.spec import ModelSpec


def time_scale(episodes: xr.Dataset) -> float:
    """Months per internal time unit (the horizon)."""
    return float(episodes.attrs["horizon_months"])


def crude_log_rate(episodes: xr.Dataset) -> float:
    """Log of events per unit of (rescaled) exposure: the centre of the intercept prior."""
    scale = time_scale(episodes)
    exposure = float(((episodes["exit"] - episodes["entry"]) / scale).sum())
    return float(np.log(max(int(episodes["event"].sum()), 1) / exposure))


def weibull_loglik(t: np.ndarray, s: np.ndarray, d: np.ndarray, eta: np.ndarray,
                   alpha: np.ndarray | float) -> np.ndarray:
    r"""Pointwise Weibull PH log-likelihood with right censoring and delayed entry (numpy).

    Parameters
    ----------
    t, s, d : numpy.ndarray
        Exit time, entry time (0 = none) and event indicator, on the model's time scale.
    eta : numpy.ndarray
        Linear predictor (log hazard scale); broadcasts against ``t``.
    alpha : float or numpy.ndarray
        Weibull shape; broadcasts against ``t``.

    Returns
    -------
    numpy.ndarray
        :math:`d(\log\alpha + (\alpha-1)\log t + \eta) - e^\eta (t^\alpha - s^\alpha)`.
    """
    return d * (np.log(alpha) + (alpha - 1) * np.log(t) + eta) - np.exp(eta) * (
        t**alpha - s**alpha)


def create_model(episodes: xr.Dataset, spec: ModelSpec) -> pm.Model:
    """Build the PyMC model for an episodes Dataset (a pure factory: ``spec`` is not changed).

    Parameters
    ----------
    episodes : xarray.Dataset
        Output of :func:`munirank.data.load_episodes`.
    spec : ModelSpec
        Baseline, municipality-effect distribution and priors.

    Returns
    -------
    pymc.Model
        Free variables ``alpha``, ``beta0``, ``beta`` (``covariate``), ``gamma``
        (``municipal_covariate``), ``sigma`` and the municipality effect ``u``
        (``municipality``; non-centred through ``u_raw`` unless ``zerosum``).

    Examples
    --------
    >>> model = create_model(episodes, spec.model)  # doctest: +SKIP
    """
    p = spec.priors
    scale = time_scale(episodes)
    t = episodes["exit"].to_numpy() / scale
    s = episodes["entry"].to_numpy() / scale
    d = episodes["event"].to_numpy().astype(float)
    x = episodes["x"].to_numpy()
    z = episodes["z"].to_numpy()
    codes = as_codes(episodes)
    delayed = np.flatnonzero(s > 0)
    coords = {name: episodes[name].to_numpy().tolist()
              for name in ("municipality", "covariate", "municipal_covariate")}
    with pm.Model(coords=coords) as model:
        log_t = pm.Data("log_t", np.log(t))
        x_d = pm.Data("x", x)
        z_d = pm.Data("z", z)
        code_d = pm.Data("code", codes)
        log_s_delayed = pm.Data("log_s_delayed", np.log(s[delayed]))
        delayed_d = pm.Data("delayed", delayed)
        # sufficient statistics of the event terms
        n_events = float(d.sum())
        sum_d_logt = float((d * np.log(t)).sum())
        sum_d_x = pm.Data("sum_d_x", d @ x)
        events_m = pm.Data("events_m", np.bincount(codes, weights=d,
                                                   minlength=len(coords["municipality"])))

        alpha = pm.LogNormal("alpha", mu=p.alpha_mu, sigma=p.alpha_sigma)
        beta0 = pm.Normal("beta0", mu=crude_log_rate(episodes), sigma=p.beta0_sigma)
        beta = pm.Normal("beta", 0.0, p.beta_sigma, dims="covariate")
        gamma = pm.Normal("gamma", 0.0, p.gamma_sigma, dims="municipal_covariate")
        sigma = pm.HalfNormal("sigma", p.sigma_sigma)
        u = _group_effect(spec, sigma)

        mu_m = pt.dot(z_d, gamma) + u
        eta = beta0 + pt.dot(x_d, beta) + mu_m[code_d]
        event_part = (n_events * (pt.log(alpha) + beta0) + (alpha - 1) * sum_d_logt
                      + pt.dot(sum_d_x, beta) + pt.dot(events_m, mu_m))
        # exp(eta + alpha log t) = exp(eta) t^alpha with one exp per episode
        cum_hazard = pt.sum(pt.exp(eta + alpha * log_t)) - pt.sum(
            pt.exp(eta[delayed_d] + alpha * log_s_delayed))
        pm.Potential("loglik", event_part - cum_hazard)
    return model


def _group_effect(spec: ModelSpec, sigma: pt.TensorVariable) -> pt.TensorVariable:
    if spec.group_effect == "zerosum":
        return pm.ZeroSumNormal("u", sigma=sigma, dims="municipality")
    if spec.group_effect == "student_t":
        u_raw = pm.StudentT("u_raw", nu=spec.priors.nu, mu=0.0, sigma=1.0, dims="municipality")
    else:
        u_raw = pm.Normal("u_raw", 0.0, 1.0, dims="municipality")
    return pm.Deterministic("u", sigma * u_raw, dims="municipality")


PARAMETERS = ("alpha", "beta0", "beta", "gamma", "sigma", "u")


def pointwise_loglik(posterior: xr.Dataset, episodes: xr.Dataset) -> xr.DataArray:
    """Per-episode log-likelihood for every draw (for LOO), in months.

    Computed from the posterior in numpy; it is a per-person array and is never written to
    an output file.

    Returns
    -------
    xarray.DataArray
        Dims (chain, draw, episode).
    """
    scale = time_scale(episodes)
    eta = linear_predictor(posterior, episodes)
    alpha = posterior["alpha"]
    t = episodes["exit"] / scale
    s = episodes["entry"] / scale
    ll = weibull_loglik(t, s, episodes["event"], eta, alpha)
    # the Jacobian of the time rescaling turns the density in t* into a density in months
    return ll - episodes["event"] * np.log(scale)


def linear_predictor(posterior: xr.Dataset, episodes: xr.Dataset,
                     *, with_effect: bool = True) -> xr.DataArray:
    """eta_i per draw (chain, draw, episode) on the model's time scale."""
    xb = xr.dot(episodes["x"], posterior["beta"], dim="covariate")
    mu = xr.dot(episodes["z"], posterior["gamma"], dim="municipal_covariate")
    if with_effect:
        mu = mu + posterior["u"]
    by_episode = mu.sel(municipality=episodes["episode_municipality"])
    return posterior["beta0"] + xb + by_episode.drop_vars("municipality")

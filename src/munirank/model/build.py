r"""The partially pooled Weibull proportional-hazards model (DESIGN.md section 2).

Time is rescaled internally to :math:`t^* = t / T` with :math:`T` = the horizon in months, so
that the sampler sees numbers near one; results are reported in months.

.. math::

    h(t \mid x_i, m) &= \alpha\, t^{\alpha - 1} \exp(\eta_i), \qquad
    \eta_i = \beta_0 + x_i^\top \beta + z_m^\top \gamma + u_m \\
    \ell_i &= d_i\,(\log\alpha + (\alpha - 1)\log t_i + \eta_i)
             - e^{\eta_i}\,(t_i^\alpha - s_i^\alpha)

for an episode entered at :math:`s_i` (0 unless delayed entry), left at :math:`t_i`, with
:math:`d_i = 1` if the outcome was reached. The municipality effect
:math:`u_m \sim N(0, \sigma)` (or Student-t, or a ZeroSumNormal) is sampled partially
non-centred, each municipality by the data's share of the information about it
(:func:`centring_weights`).

The event terms reduce to sufficient statistics: :math:`\sum_i d_i \eta_i = D\beta_0 +
(\sum_i d_i x_i)^\top\beta + \sum_m D_m (z_m^\top\gamma + u_m)`, so only the cumulative
hazard needs one term per episode; entry terms are evaluated only for delayed-entry episodes
(which also avoids the gradient of :math:`0^\alpha`). That term and its gradient are one
hand-written Op (:mod:`munirank.model.kernel`) that reads each episode once per pass.

Alternative baselines (``spec.baseline``, for model checking; :mod:`munirank.checking.alternatives`)
share the linear predictor and write survival as :math:`S(t) = \Psi(\eta + g(t))`
(larger :math:`\eta` = faster in every family):

============================  ======================================  =======================
baseline                      :math:`g(t)`                            :math:`\Psi(z)`
============================  ======================================  =======================
``weibull``                   :math:`\alpha\log t`                    :math:`e^{-e^z}` (PH)
``exponential``               :math:`\log t` (:math:`\alpha = 1`)     :math:`e^{-e^z}` (PH)
``piecewise_exponential``     :math:`\log\Lambda_0(t)`                :math:`e^{-e^z}` (PH)
``loglogistic``               :math:`\alpha\log t`                    :math:`1/(1+e^z)` (AFT)
``lognormal``                 :math:`\alpha\log t`                    :math:`1-\Phi(z)` (AFT)
============================  ======================================  =======================

with :math:`\Lambda_0(t) = \sum_k e^{\delta_k}\,|(0, t] \cap (c_{k-1}, c_k]|` on the cut points
:data:`PIECE_CUTS_MONTHS` (:math:`\delta_1 = 0`, so :math:`\beta_0` is the log hazard of
the first piece). Log-logistic and log-normal are accelerated-failure-time models, not PH:
:math:`\log T = -\eta/\alpha + \varepsilon/\alpha` with logistic or normal
:math:`\varepsilon`, so :math:`u_m` shifts log durations by :math:`-u_m/\alpha` (the
log-logistic :math:`u_m` is also a log odds ratio of having reached the outcome). Every
family's log-likelihood is explicit, :math:`\ell_i = d_i \log h(t_i) - [H(t_i) - H(s_i)]`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy import special

from munirank.input.episodes import as_codes
from munirank.input.spec import ModelSpec, PriorSpec
from munirank.model.family_kernel import FAMILIES, family_extra, family_loglik
from munirank.model.kernel import cumulative_hazard, episode_order, hazard_data, shared_inputs

PIECE_CUTS_MONTHS = (6.0, 12.0, 24.0, 36.0)
"""Cut points of the piecewise-exponential baseline (months since permit)."""


def time_scale(episodes: xr.Dataset) -> float:
    """Months per internal time unit (the horizon)."""
    return float(episodes.attrs["horizon_months"])


def model_times(episodes: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Exit and entry times of the episodes in the model's time unit (:func:`time_scale`)."""
    scale = time_scale(episodes)
    return episodes["exit"].to_numpy() / scale, episodes["entry"].to_numpy() / scale


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


def piece_cuts(episodes: xr.Dataset) -> np.ndarray:
    """Cut points of the piecewise-exponential baseline on the model's time scale."""
    return np.asarray(PIECE_CUTS_MONTHS) / time_scale(episodes)


def piece_exposure(t: np.ndarray, s: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Time each episode (s, t] spends in each piece, shape (episodes, len(cuts) + 1)."""
    lo = np.concatenate([[0.0], cuts])
    hi = np.concatenate([cuts, [np.inf]])
    return np.clip(np.minimum(t[:, None], hi) - np.maximum(s[:, None], lo), 0.0, None)


def _with_first_piece(log_piece: np.ndarray) -> np.ndarray:
    """Prepend the first piece's 0 to (draws, pieces - 1) relative log hazards."""
    lp = np.atleast_2d(log_piece)
    return np.concatenate([np.zeros((lp.shape[0], 1)), lp], axis=1)


def _log_or_minus_inf(s: np.ndarray) -> np.ndarray:
    return np.log(s, out=np.full(np.shape(s), -np.inf), where=s > 0)


def survival_link(baseline: str, z: np.ndarray) -> np.ndarray:
    r"""The family's :math:`\Psi(z)`: survival at :math:`z = \eta + g(t)` (numpy)."""
    if baseline == "loglogistic":
        return special.expit(-z)
    if baseline == "lognormal":
        return special.ndtr(-z)
    return np.exp(-np.exp(z))


def log_time_term(baseline: str, t: np.ndarray, *, alpha: np.ndarray | float = 1.0,
                  log_piece: np.ndarray | None = None,
                  cuts: np.ndarray | None = None) -> np.ndarray:
    r""":math:`g(t)` per draw (rows of ``alpha``/``log_piece``) and time (columns of ``t``)."""
    t = np.asarray(t, float)
    if baseline == "piecewise_exponential":
        flat = t.ravel()
        cum = np.exp(_with_first_piece(log_piece)) @ piece_exposure(flat, np.zeros_like(flat),
                                                                     cuts).T
        return _log_or_minus_inf(cum)
    return alpha * _log_or_minus_inf(t)


def baseline_loglik(baseline: str, t: np.ndarray, s: np.ndarray, d: np.ndarray,
                    eta: np.ndarray, *, alpha: np.ndarray | float = 1.0,
                    log_piece: np.ndarray | None = None,
                    cuts: np.ndarray | None = None) -> np.ndarray:
    r"""Pointwise log-likelihood of any baseline, right censoring and delayed entry (numpy).

    :math:`\ell = d \log h(t) - [H(t) - H(s)]`, written per family (module docstring).

    Parameters
    ----------
    baseline : str
        One of :data:`munirank.input.spec.BASELINES`.
    t, s, d : numpy.ndarray
        Exit time, entry time (0 = none) and event indicator (episodes), model time scale.
    eta : numpy.ndarray
        Linear predictor, shape (draws, episodes) or (episodes,).
    alpha : float or numpy.ndarray
        Shape, broadcasting against ``eta`` (e.g. (draws, 1)); ignored by ``exponential``
        and ``piecewise_exponential``.
    log_piece : numpy.ndarray, optional
        Piecewise-exponential log hazard of each piece relative to the first, (draws, pieces)
        or (pieces,).
    cuts : numpy.ndarray, optional
        Interior cut points of the pieces (model time scale).

    Returns
    -------
    numpy.ndarray
        Same shape as ``eta``.
    """
    if baseline == "piecewise_exponential":
        lp = _with_first_piece(log_piece)
        piece = np.searchsorted(cuts, t, side="left")
        exposure = np.exp(lp) @ piece_exposure(t, s, cuts).T
        ll = d * (eta + lp[:, piece]) - np.exp(eta) * exposure
        return ll.reshape(np.broadcast_shapes(np.shape(eta), ll.shape[-1:]))
    if baseline == "exponential":
        alpha = 1.0
    log_t = np.log(t)
    z_t = eta + alpha * log_t
    z_s = eta + alpha * _log_or_minus_inf(s)
    log_a = np.log(alpha) - log_t
    if baseline == "loglogistic":
        softplus_t = np.logaddexp(0.0, z_t)
        return d * (log_a + z_t - softplus_t) - softplus_t + np.logaddexp(0.0, z_s)
    if baseline == "lognormal":
        return (d * (log_a - 0.5 * z_t**2 - 0.5 * np.log(2 * np.pi))
                + (1 - d) * special.log_ndtr(-z_t) - special.log_ndtr(-z_s))
    return d * (log_a + z_t) - (np.exp(z_t) - np.exp(z_s))


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
    if "outcome" in episodes.dims:  # competing outcomes (model.outcomes)
        from munirank.model.outcomes import create_outcome_model

        return create_outcome_model(episodes, spec)
    if "cell" in episodes.dims:  # a municipal table by year, or nesting (model.cells)
        from munirank.model.cells import create_cell_model

        return create_cell_model(episodes, spec)
    if "period_cell" in episodes.dims:  # measurement periods (model.periods)
        from munirank.model.periods import create_period_model

        return create_period_model(episodes, spec)
    p = spec.priors
    t, s = model_times(episodes)
    d = episodes["event"].to_numpy().astype(float)
    x = episodes["x"].to_numpy()
    z = episodes["z"].to_numpy()
    codes = as_codes(episodes)
    coords = {name: episodes[name].to_numpy().tolist()
              for name in ("municipality", "covariate", "municipal_covariate")}
    log_s = _log_or_minus_inf(s)
    hazard = hazard_data(x, episodes["x_centre"].to_numpy(), episodes["x_scale"].to_numpy(),
                         codes, np.log(t), log_s)
    events = np.bincount(codes, weights=d, minlength=len(coords["municipality"]))
    by_piece = {}
    if spec.baseline == "piecewise_exponential":
        coords["piece"] = piece_names()
        by_piece["events_piece"] = np.bincount(np.searchsorted(piece_cuts(episodes), t),
                                               weights=d, minlength=len(PIECE_CUTS_MONTHS) + 1)
    with pm.Model(coords=coords) as model:
        # every data-dependent value is shared data, not a constant: the compiled graph is then
        # the same for every register of this shape, and PyTensor's cache serves refits
        hazard_vars = shared_inputs(hazard, model.register_data_var)
        data = _packed_data(  # the event terms' sufficient statistics and municipal data
            "model_data", z=z, sum_d_x=d @ x, events_m=events,
            weights=centring_weights(events, spec),
            n_events=d.sum(), sum_d_logt=(d * np.log(t)).sum(),
            beta0_mu=crude_log_rate(episodes), **by_piece)

        alpha, beta0, beta, gamma, sigma = top_level_priors(
            p, data["beta0_mu"], with_alpha=spec.baseline == "weibull")
        # products as elementwise sums, not pt.dot: numba's BLAS calls look their function
        # up through an object-mode block compiled in every process (0.3-0.7 s per fit,
        # measured), and these vectors are too short for BLAS to matter
        z_gamma = (data["z"] * gamma).sum(axis=1)
        u = _group_effect(spec, sigma, data["weights"], beta0 + z_gamma)

        mu_m = z_gamma + u
        if spec.baseline in FAMILIES:
            exposure = (piece_exposure(t, s, piece_cuts(episodes)) if "events_piece" in by_piece
                        else None)
            extra = family_extra(spec.baseline, episode_order(codes, log_s), d, exposure)
            pm.Potential("loglik", _family_potential(spec, data, beta0, beta, mu_m,
                                                     hazard_vars, extra, model))
            return model
        pm.Potential("loglik", weibull_loglik_graph(data, data["events_m"], mu_m, alpha, beta0,
                                                    beta, hazard_vars))
    return model


def weibull_loglik_graph(data: dict[str, pt.TensorVariable], events: pt.TensorVariable,
                   mu: pt.TensorVariable, alpha: pt.TensorVariable, beta0: pt.TensorVariable,
                   beta: pt.TensorVariable, hazard_vars: list[pt.TensorVariable]
                   ) -> pt.TensorVariable:
    """The Weibull log-likelihood of every episode: the event terms as sums, minus C.

    ``mu``: the per-segment part of the linear predictor besides ``beta0`` (a municipality's,
    or a cell's: ``model.cells``, ``model.periods``), ``events`` the events per segment;
    ``data`` holds ``n_events``, ``sum_d_logt`` and ``sum_d_x``; C is the compiled kernel's
    cumulative hazard (:func:`munirank.model.kernel.cumulative_hazard`).
    """
    event_part = (data["n_events"] * (pt.log(alpha) + beta0)
                  + (alpha - 1) * data["sum_d_logt"] + (data["sum_d_x"] * beta).sum()
                  + (events * mu).sum())
    return event_part - cumulative_hazard(beta0 + mu, beta, alpha, hazard_vars)


def piece_names() -> list[str]:
    """Coordinates of the pieces after the first (``log_piece``), e.g. ``"6-12"``."""
    return [f"{lo:g}-{hi:g}" for lo, hi in zip(
        (0.0, *PIECE_CUTS_MONTHS), (*PIECE_CUTS_MONTHS, np.inf), strict=True)][1:]


def _family_potential(spec: ModelSpec, data: dict[str, pt.TensorVariable],
                      beta0: pt.TensorVariable, beta: pt.TensorVariable,
                      mu_m: pt.TensorVariable, hazard_vars: list[pt.TensorVariable],
                      extra: np.ndarray, model: pm.Model) -> pt.TensorVariable:
    """Log-likelihood of a log-logistic, log-normal or piecewise-exponential baseline.

    The event terms as sufficient statistics, the rest in one compiled pass
    (:mod:`munirank.model.family_kernel`, whose docstring has the split).
    """
    sum_d_eta = (data["n_events"] * beta0 + (data["sum_d_x"] * beta).sum()
                 + (data["events_m"] * mu_m).sum())
    if spec.baseline == "piecewise_exponential":
        # pieces after the first, relative to it; sd 1 on the log hazard ratio scale
        theta = pm.Normal("log_piece", 0.0, 1.0, dims="piece")
        event_part = sum_d_eta + (data["events_piece"][1:] * theta).sum()
    else:
        p = spec.priors
        alpha = pm.LogNormal("alpha", mu=p.alpha_mu, sigma=p.alpha_sigma)
        theta = pt.stack([alpha])
        if spec.baseline == "loglogistic":
            event_part = (data["n_events"] * pt.log(alpha) + (alpha - 1) * data["sum_d_logt"]
                          + sum_d_eta)
        else:
            event_part = (data["n_events"] * (pt.log(alpha) - 0.5 * np.log(2 * np.pi))
                          - data["sum_d_logt"])
    rest = family_loglik(spec.baseline, beta0 + mu_m, beta, theta, hazard_vars, extra,
                         model.register_data_var)
    return event_part + rest


def top_level_priors(p: PriorSpec, beta0_mu: pt.TensorVariable,
                     *, with_alpha: bool = True) -> tuple[Any, ...]:
    """alpha, beta0, beta, gamma and sigma of the Weibull model, in this order.

    Without ``with_alpha`` alpha is 1 (the exponential baseline) and no variable.
    """
    alpha = (pm.LogNormal("alpha", mu=p.alpha_mu, sigma=p.alpha_sigma) if with_alpha
             else 1.0)
    beta0 = pm.Normal("beta0", mu=beta0_mu, sigma=p.beta0_sigma)
    beta = pm.Normal("beta", 0.0, p.beta_sigma, dims="covariate")
    gamma = pm.Normal("gamma", 0.0, p.gamma_sigma, dims="municipal_covariate")
    sigma = pm.HalfNormal("sigma", p.sigma_sigma)
    return alpha, beta0, beta, gamma, sigma


def _packed_data(name: str, **arrays: np.ndarray | float) -> dict[str, pt.TensorVariable]:
    """Several float arrays as views of one ``pm.Data`` vector, by name.

    One shared variable instead of seven: nutpie compiles an extraction routine for every
    shared array of a model, about a second each (measured: 24 s against 15 s of nutpie
    compilation on dk-1999-2005). The views' bounds depend only on the shapes.
    """
    flat = np.concatenate([np.ravel(np.asarray(v, float)) for v in arrays.values()])
    packed = pm.Data(name, flat)
    views, start = {}, 0
    for key, value in arrays.items():
        size = int(np.size(value))
        view = packed[start:start + size]
        views[key] = view.reshape(np.shape(value)) if np.ndim(value) != 1 else view
        start += size
    return views


def centring_weights(events_m: np.ndarray, spec: ModelSpec) -> np.ndarray:
    r"""How far each municipality's effect is centred in the sampler's coordinates, in [0, 1].

    The model is the same whatever the weights; they only change the geometry the sampler
    explores (Papaspiliopoulos, Roberts and Sköld 2003, 2007; Gorinova, Moore and Hoffman
    2020). A municipality's :math:`D_m` events carry information :math:`\approx D_m` about
    its log hazard ratio, the prior :math:`1/s^2` (:math:`s` = the prior median of
    :math:`\sigma`, 0.337 for the default HalfNormal(0.5)); the data's share of it is
    :math:`w_m = D_m s^2 / (1 + D_m s^2)`. ``auto`` (= ``partial``) uses :math:`w_m` itself:
    partially non-centred, the weight that makes the sampler's coordinate independent of the
    level for a normal approximation to the likelihood (Papaspiliopoulos et al.), where
    centring is best with many events and non-centring with few. ``switch`` rounds it (fully
    centred where :math:`w_m \ge 1/2`, munirank 0.1's ``auto``); ``centred`` and ``non_centred``
    use 1 and 0.

    Measured on ``dk-1999-2005`` (4 x 1,000 draws, nutpie, the same cost per draw): with
    ``switch`` the smallest bulk ESS of all reported parameters was sigma's, 2,846-3,631 over
    three seeds (153 of 271 municipalities have :math:`w_m` between 0.3 and 0.7, where neither
    geometry fits, and sigma could only move with every centred effect: the squared deviations
    explained R^2 = 0.53 of log sigma's posterior variance); with ``partial`` 4,408-5,623, now
    a covariate's, sigma's 6,435-6,899 (R^2 = 0.24). All non-centred: 993; all centred: 2,137.
    Tuning length and mass matrix did not matter (300/500/1,000 tuning steps: 3,168, 2,870,
    3,310; nutpie's draw-based mass matrix 3,405; low-rank diverged).
    """
    events_m = np.asarray(events_m, float)
    if spec.parametrisation == "centred":
        return np.ones(len(events_m))
    if spec.parametrisation == "non_centred":
        return np.zeros(len(events_m))
    median_sigma = spec.priors.sigma_sigma * special.erfinv(0.5) * np.sqrt(2.0)
    info = events_m * median_sigma**2
    if spec.parametrisation == "switch":
        return (info >= 1.0).astype(float)
    return info / (1.0 + info)


def _group_effect(spec: ModelSpec, sigma: pt.TensorVariable,
                  weights: np.ndarray | pt.TensorVariable,
                  level: pt.TensorVariable) -> pt.TensorVariable:
    r"""The municipality effects u, partially non-centred with the weights :math:`w_m`.

    :math:`\tilde u_m \sim N(w_m\,\ell_m, \sigma^{w_m})` (or Student-t) and
    :math:`u_m = \sigma^{1 - w_m} (\tilde u_m - w_m \ell_m)`, with the municipality's level
    :math:`\ell_m = \beta_0 + z_m^\top\gamma`; then :math:`u_m \sim N(0, \sigma)` for every
    :math:`w_m` (any location-scale family). :math:`w_m = 0` is non-centred
    (:math:`u = \sigma \tilde u`), :math:`w_m = 1` centred on the whole level (Gelfand, Sahu
    and Carlin 1995: with many events the data fix the level, and sampling u itself would tie
    it to beta0 and gamma a posteriori). See :func:`centring_weights`.
    """
    if spec.group_effect == "zerosum":
        return pm.ZeroSumNormal("u", sigma=sigma, dims="municipality")
    mu_raw, scale_raw = weights * level, sigma**weights
    if spec.group_effect == "student_t":
        u_raw = pm.StudentT("u_raw", nu=spec.priors.nu, mu=mu_raw, sigma=scale_raw,
                            dims="municipality")
    else:
        u_raw = pm.Normal("u_raw", mu_raw, scale_raw, dims="municipality")
    return pm.Deterministic("u", sigma ** (1.0 - weights) * (u_raw - mu_raw),
                            dims="municipality")


PARAMETERS = ("alpha", "beta0", "beta", "gamma", "sigma", "u", "log_piece", "sigma_old",
              "u_old", "period_shift_later", "sigma_period", "rho", "u_shared", "u_cell")


def pointwise_loglik(posterior: xr.Dataset, episodes: xr.Dataset, *,
                     baseline: str = "weibull") -> xr.DataArray:
    """Per-episode log-likelihood for every draw (for LOO), in months.

    Computed from the posterior in numpy; it is a per-person array and is never written to
    an output file.

    Parameters
    ----------
    posterior : xarray.Dataset
        Draws (chain, draw) of the model's parameters.
    episodes : xarray.Dataset
        The episodes the model was fitted to.
    baseline : str
        The fitted model's baseline (see the module docstring).

    Returns
    -------
    xarray.DataArray
        Dims (chain, draw, episode).
    """
    scale = time_scale(episodes)
    eta = linear_predictor(posterior, episodes)
    t = episodes["exit"] / scale
    s = episodes["entry"] / scale
    if baseline == "weibull":
        ll = weibull_loglik(t, s, episodes["event"], eta, posterior["alpha"])
    else:
        eta = eta.transpose("chain", "draw", "episode")
        flat = eta.to_numpy().reshape(-1, eta.sizes["episode"])
        values = baseline_loglik(baseline, t.to_numpy(), s.to_numpy(),
                                 episodes["event"].to_numpy().astype(float), flat,
                                 **shape_draws(posterior, baseline, episodes))
        ll = eta.copy(data=values.reshape(eta.shape))
    # the Jacobian of the time rescaling turns the density in t* into a density in months
    return (ll - episodes["event"] * np.log(scale)).transpose("chain", "draw", "episode")


def shape_draws(posterior: xr.Dataset, baseline: str,
                 episodes: xr.Dataset) -> dict[str, np.ndarray]:
    """Shape parameters per draw, (draws, 1) or (draws, pieces), as numpy keyword arguments."""
    if baseline == "piecewise_exponential":
        lp = posterior["log_piece"].transpose("chain", "draw", "piece").to_numpy()
        return {"log_piece": lp.reshape(-1, lp.shape[-1]), "cuts": piece_cuts(episodes)}
    if baseline == "exponential":
        return {"alpha": np.ones((posterior.sizes["chain"] * posterior.sizes["draw"], 1))}
    return {"alpha": posterior["alpha"].transpose("chain", "draw").to_numpy().reshape(-1, 1)}


def draws_by_label(posterior: xr.Dataset, name: str, dim: str | None,
                   episodes: xr.Dataset) -> np.ndarray:
    """A parameter's draws as a (chain x draw, ...) array, matched to the episodes by label.

    Parameters
    ----------
    posterior : xarray.Dataset
        Draws with dims (chain, draw, ...).
    name : str
        The parameter.
    dim : str or None
        Its dimension besides the draws, if any; where the episodes have that coordinate,
        the parameter is ordered as they are.
    episodes : xarray.Dataset
        The episodes the model was fitted to.
    """
    values = posterior[name]
    if dim in episodes.coords and not np.array_equal(values[dim].to_numpy(),
                                                     episodes[dim].to_numpy()):
        values = values.sel({dim: episodes[dim].to_numpy()})
    arr = values.transpose("chain", "draw", *([dim] if dim else [])).to_numpy()
    return arr.reshape(arr.shape[0] * arr.shape[1], *arr.shape[2:])


def predictor_draws(posterior: xr.Dataset, episodes: xr.Dataset, *, with_effect: bool = True
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The linear predictor's parts as numpy arrays, matched to the episodes by label.

    Returns
    -------
    tuple of numpy.ndarray
        ``beta0`` (sample...), ``beta`` (sample..., covariate) and the municipal level
        ``z_m'gamma + u_m`` (sample..., municipality; without ``u_m`` if not ``with_effect``),
        with the posterior's sample dims first. With cells (:mod:`munirank.model.cells`) the
        level is per cell, ``z_c'gamma + u_k(c)``; :func:`segment_codes` gives each
        episode's.
    """
    sample_dims = posterior["beta0"].dims

    def draws(name: str, dim: str) -> np.ndarray:
        values = posterior[name]
        if not np.array_equal(values[dim].to_numpy(), episodes[dim].to_numpy()):
            values = values.sel({dim: episodes[dim].to_numpy()})
        return values.transpose(*sample_dims, dim).to_numpy()

    beta, gamma = draws("beta", "covariate"), draws("gamma", "municipal_covariate")
    if "cell" in episodes.dims:
        from munirank.model.cells import cell_levels

        return (posterior["beta0"].to_numpy(), beta,
                cell_levels(posterior, episodes, gamma, with_effect=with_effect))
    if "period_cell" in episodes.dims:
        from munirank.model import periods

        return (posterior["beta0"].to_numpy(), beta,
                periods.cell_levels(posterior, episodes, gamma, with_effect=with_effect))
    level = gamma @ episodes["z"].to_numpy().T  # sample..., municipality
    if with_effect:
        level = level + draws("u", "municipality")
    return posterior["beta0"].to_numpy(), beta, level


def segment_codes(episodes: xr.Dataset) -> np.ndarray:
    """Each episode's index into :func:`predictor_draws`' level: its cell or municipality."""
    if "cell" in episodes.dims:
        return episodes["episode_cell"].to_numpy()
    if "period_cell" in episodes.dims:
        return episodes["episode_period_cell"].to_numpy()
    return as_codes(episodes)


def linear_predictor(posterior: xr.Dataset, episodes: xr.Dataset,
                     *, with_effect: bool = True) -> xr.DataArray:
    """eta_i per draw (the posterior's sample dims, then episode) on the model's time scale.

    Coefficients are matched to the episodes by coordinate label (covariate, municipal
    covariate, municipality), then multiplied as numpy arrays: xarray aligning the episode
    index in every sum took 13-18 ms per call against 6-8 ms (the 72 municipalities of the
    survival table of dk-1999-2005, 200 draws each; about 0.6 s of every fit, measured).
    """
    sample_dims = posterior["beta0"].dims
    beta0, beta, mu = predictor_draws(posterior, episodes, with_effect=with_effect)
    eta = (beta0[..., None] + beta @ episodes["x"].to_numpy().T
           + np.take(mu, segment_codes(episodes), axis=-1))
    coords = dict(posterior["beta0"].coords)
    if "episode" in episodes.coords:
        coords["episode"] = episodes["episode"]
    return xr.DataArray(eta, dims=(*sample_dims, "episode"), coords=coords)

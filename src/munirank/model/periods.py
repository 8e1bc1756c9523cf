r"""The Weibull model with measurement periods (``[data] period``).

Each episode belongs to a period p = 1..P (ordered, :mod:`munirank.input.periods`). The
kernel's segments (:mod:`munirank.model.kernel`) are the *period cells* c = (m, p) present in
the data, with the level

.. math::

    a_c = \beta_0 + \delta_p + z_m^\top\gamma + u_{m,p}, \qquad \delta_1 = 0,

gathered in PyTensor, so the kernel's cost per row is the default model's: a two-period
register with as many rows as a one-period one costs about as much per gradient. The period
shifts :math:`\delta_p \sim N(0, 1)` (log hazard ratios against the first period) are the
period-specific baseline terms; the Weibull shape and the covariates' coefficients are shared.

How the effects of one municipality are tied across periods (``[model] periods``):

``shared`` (default): a shared effect plus a period deviation,

.. math::

    u_m \sim N(0, \sigma), \qquad u_{m,p} \sim N(u_m, \sigma_p), \qquad
    \sigma_p \sim \text{HalfNormal}(\texttt{sigma\_period\_sigma}),

so :math:`\mathrm{corr}(u_{m,p}, u_{m,q}) = \rho = \sigma^2 / (\sigma^2 + \sigma_p^2)` for
every pair of periods (exchangeable; reported as ``rho``). It is the nested model of old
municipalities in new ones (:func:`munirank.model.cells._nested_normal`) with the cells as the
old units: cells with many events are sampled centred on their level, and the shared effect is
integrated out of the geometry. Chosen as the default because report years or cohorts are
often unevenly spaced and few (two or three), where an ordering adds nothing, and because
its geometry is the one measured on nested registers.

``ar1``: a stationary AR(1) over the ordered periods,

.. math::

    u_{m,1} = \sigma e_{m,1}, \qquad u_{m,p} = \rho\, u_{m,p-1}
    + \sigma\sqrt{1 - \rho^2}\, e_{m,p}, \qquad e \sim N(0, 1),\ \rho \sim U(-1, 1),

so :math:`\mathrm{corr}(u_{m,p}, u_{m,q}) = \rho^{|p - q|}`: for many equally spaced periods,
where a municipality's recent past says more than its distant past. Non-centred throughout.
With two periods the two structures are the same model up to the prior on :math:`\rho`
(the shared structure's :math:`\rho` is non-negative).

In both, each period's effects have SD :math:`\sigma_{tot}` (``shared``:
:math:`\sqrt{\sigma^2 + \sigma_p^2}`, ``ar1``: :math:`\sigma`), the SD the per-period
shrinkage factor of municipalities.csv divides by.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from munirank.input.periods import PERIOD, PERIOD_CELL
from munirank.input.spec import ModelSpec
from munirank.model.build import (
    _log_or_minus_inf,
    _packed_data,
    crude_log_rate,
    model_times,
    top_level_priors,
    weibull_loglik_graph,
)
from munirank.model.cells import _nested_normal, centred_by_information
from munirank.model.kernel import hazard_data, shared_inputs

PERIOD_NAMES = ("u_cell_raw", "u_shared_raw", "u_shared", "u_cell")
"""The shared structure's nested variables (raw cell, raw shared, shared effect, cell effect)."""


def _shared_effects(spec: ModelSpec, sigma: pt.TensorVariable, level: pt.TensorVariable,
                    events_c: np.ndarray, muni: np.ndarray, n_muni: int) -> pt.TensorVariable:
    sigma_period = pm.HalfNormal("sigma_period", spec.priors.sigma_period_sigma)
    pm.Deterministic("rho", sigma**2 / (sigma**2 + sigma_period**2))
    centred = centred_by_information(events_c, spec, spec.priors.sigma_period_sigma)
    return _nested_normal(sigma, sigma_period, centred, level, muni, n_muni,
                          names=PERIOD_NAMES, old_dim=PERIOD_CELL)


def _ar1_effects(sigma: pt.TensorVariable, muni: np.ndarray, period: np.ndarray,
                 n_period: int) -> pt.TensorVariable:
    rho = pm.Uniform("rho", -1.0, 1.0)
    e = pm.Normal("u_period_raw", 0.0, 1.0, dims=("municipality", PERIOD))
    innovation = sigma * pt.sqrt(1.0 - rho**2)
    columns = [sigma * e[:, 0]]
    for p in range(1, n_period):
        columns.append(rho * columns[-1] + innovation * e[:, p])
    u = pt.stack(columns, axis=1)
    return pm.Deterministic("u_cell", u[muni, period], dims=PERIOD_CELL)


def create_period_model(episodes: xr.Dataset, spec: ModelSpec) -> pm.Model:
    """The Weibull model with periods (module docstring); a pure factory like ``create_model``.

    Parameters
    ----------
    episodes : xarray.Dataset
        Episodes with ``period`` and ``period_cell`` dims (:mod:`munirank.input.periods`).
    spec : ModelSpec
        ``periods`` (``shared`` or ``ar1``), parametrisation and priors.

    Returns
    -------
    pymc.Model
        ``alpha``, ``beta0``, ``beta``, ``gamma``, ``sigma``, ``period_shift`` (``period``),
        ``rho``, the cells' effects ``u_cell`` (``period_cell``); ``shared`` also
        ``sigma_period`` and ``u_shared`` (``municipality``).
    """
    p = spec.priors
    t, s = model_times(episodes)
    d = episodes["event"].to_numpy().astype(float)
    x = episodes["x"].to_numpy()
    codes = episodes["episode_period_cell"].to_numpy()
    muni = episodes["cell_municipality"].to_numpy()
    period = episodes["cell_period"].to_numpy()
    n_muni, n_cell = episodes.sizes["municipality"], episodes.sizes[PERIOD_CELL]
    coords = {name: episodes[name].to_numpy().tolist()
              for name in ("municipality", "covariate", "municipal_covariate", PERIOD,
                           PERIOD_CELL)}
    coords["later_period"] = coords[PERIOD][1:]
    hazard = hazard_data(x, episodes["x_centre"].to_numpy(), episodes["x_scale"].to_numpy(),
                         codes, np.log(t), _log_or_minus_inf(s))
    events_c = np.bincount(codes, weights=d, minlength=n_cell)
    with pm.Model(coords=coords) as model:
        hazard_vars = shared_inputs(hazard, model.register_data_var)
        data = _packed_data(
            "model_data", z=episodes["z"].to_numpy()[muni], sum_d_x=d @ x, events_c=events_c,
            n_events=d.sum(), sum_d_logt=(d * np.log(t)).sum(),
            beta0_mu=crude_log_rate(episodes))
        alpha, beta0, beta, gamma, sigma = top_level_priors(p, data["beta0_mu"])
        later = pm.Normal("period_shift_later", 0.0, 1.0, dims="later_period")
        shift = pm.Deterministic("period_shift", pt.concatenate([pt.zeros(1), later]),
                                 dims=PERIOD)
        fixed_c = shift[period] + (data["z"] * gamma).sum(axis=1)
        if spec.periods == "ar1":
            u_cell = _ar1_effects(sigma, muni, period, len(coords[PERIOD]))
        else:
            u_cell = _shared_effects(spec, sigma, beta0 + fixed_c, events_c, muni, n_muni)
        mu_c = fixed_c + u_cell
        pm.Potential("loglik", weibull_loglik_graph(data, data["events_c"], mu_c, alpha, beta0,
                                                    beta, hazard_vars))
    return model


def cell_levels(posterior: xr.Dataset, episodes: xr.Dataset, gamma: np.ndarray, *,
                with_effect: bool = True) -> np.ndarray:
    """delta_p + z_m'gamma (+ u_mp) per draw (the posterior's sample dims) and period cell."""
    muni = episodes["cell_municipality"].to_numpy()
    mu = (gamma @ episodes["z"].to_numpy().T)[..., muni]
    sample_dims = posterior["beta0"].dims
    shift = period_shift(posterior, episodes[PERIOD].to_numpy().tolist()).transpose(
        *sample_dims, PERIOD).to_numpy()
    mu = mu + shift[..., episodes["cell_period"].to_numpy()]
    if with_effect:
        mu = mu + posterior["u_cell"].transpose(*sample_dims, PERIOD_CELL).to_numpy()
    return mu


def period_shift(posterior: xr.Dataset, periods: list[str]) -> xr.DataArray:
    """delta_p per draw (dim ``period``, labelled ``periods``), 0 for the first period."""
    later = posterior["period_shift_later"]
    first = xr.zeros_like(later.isel(later_period=0, drop=True))
    shift = xr.concat([first, later.rename(later_period=PERIOD).drop_vars(PERIOD)], dim=PERIOD)
    return shift.assign_coords({PERIOD: list(periods)})


def total_sd(posterior: xr.Dataset) -> xr.DataArray:
    """SD of one period's effects: sqrt(sigma^2 + sigma_period^2) (shared), sigma (ar1)."""
    if "sigma_period" in posterior:
        return (posterior["sigma"] ** 2 + posterior["sigma_period"] ** 2) ** 0.5
    return posterior["sigma"]

r"""The Weibull model on cells: municipal covariates by year, old municipalities nested in new.

The cumulative-hazard kernel (:mod:`munirank.model.kernel`) sums
:math:`e^{a_s + x_i^\top\beta}` over the rows of each *segment* s; which rows form a segment
is up to the caller. In the default model (:func:`munirank.model.build.create_model`) a
segment is a municipality. Here it is a *cell* c (:mod:`munirank.input.cells`): a
(municipality, calendar year) pair with its own municipal covariates :math:`z_c`, or an old
municipality nested in a new one, or both. Its level is gathered in PyTensor,

.. math::

    a_c = \beta_0 + z_c^\top\gamma + u_{k(c)},

with :math:`k(c)` the municipality (or old municipality) of cell c. The kernel, its cost per
row and the exactness of the likelihood are unchanged; the event terms reduce to sums per
cell, :math:`\sum_i d_i \eta_i = D\beta_0 + (\sum_i d_i x_i)^\top\beta + \sum_c D_c
(z_c^\top\gamma + u_{k(c)})`. A piece of an episode split at 1 January is a row like any
other (the likelihood of an episode is the sum of its pieces', :mod:`munirank.input.years`).

Nesting (``[data] parent``): old municipality o in new municipality n(o),

.. math::

    u^{new}_n \sim N(0, \sigma), \qquad u^{old}_o \sim N(u^{new}_{n(o)}, \sigma_{old}),

and the cells' effects are the old ones. :math:`u^{new}` is the reported ``u`` (ranked), the
old effects are ``u_old``; a new municipality's effect in months is over all the episodes
of its old municipalities, each with its own old effect (:mod:`munirank.posterior.cells`).

Parametrisation (the model is the same either way; ``[model] parametrisation``). As in the
default model, a unit is sampled centred on its whole log-hazard level where its data
dominate the prior, non-centred elsewhere. The level of a unit with cells is
:math:`L_k = \beta_0 + \bar z_k^\top\gamma` with :math:`\bar z_k` the mean of its cells'
covariates weighted by their events (what its events pin down; the cells' mean where it has
none), which is the default model's level when the covariates do not change over years.

- Without nesting: as the default model, municipality m partially non-centred on its level
  :math:`L_m` with the weight :math:`w_m = D_m s^2/(1 + D_m s^2)`, s the prior median of
  :math:`\sigma` (:func:`munirank.model.build.centring_weights`).
- Old municipality o: centred (:math:`\tilde u_o \sim N(L_o + u^{new}_{n(o)},
  \sigma_{old})`, :math:`u_o = \tilde u_o - L_o`) when :math:`D_o s_{old}^2 \ge 1`, else
  :math:`u_o = u^{new}_{n(o)} + \sigma_{old}\tilde u_o`. An old municipality with many
  events is then sampled as the level its data fix, whatever its new municipality's effect.
- New municipality n: its effect is informed through its old municipalities, each worth
  about :math:`1 / (1/D_o + s_{old}^2)` (its data, then the spread within n); centred on
  :math:`L_n` when :math:`s^2 \sum_{o \in n} 1/(1/D_o + s_{old}^2) \ge 1`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy import special

from munirank.input.cells import CELL, OLD
from munirank.input.spec import ModelSpec
from munirank.model.build import (
    _group_effect,
    _log_or_minus_inf,
    _packed_data,
    crude_log_rate,
    model_times,
    top_level_priors,
    weibull_loglik_graph,
)
from munirank.model.kernel import hazard_data, shared_inputs


def unit_dim(episodes: xr.Dataset) -> str:
    """The dim of the units whose effects the cells have: old municipalities or municipalities."""
    return OLD if OLD in episodes.dims else "municipality"


def cell_units(episodes: xr.Dataset) -> np.ndarray:
    """Each cell's unit, as an index into :func:`unit_dim`'s coordinate."""
    units = pd.Index(episodes[unit_dim(episodes)].to_numpy())
    return units.get_indexer(episodes["cell_unit"].to_numpy()).astype(np.int64)


def unit_parents(episodes: xr.Dataset) -> np.ndarray:
    """Each old municipality's new one, as an index into ``municipality``."""
    return pd.Index(episodes["municipality"].to_numpy()).get_indexer(
        episodes["old_parent"].to_numpy()).astype(np.int64)


def event_weighted(z: np.ndarray, events: np.ndarray, group: np.ndarray, n: int) -> np.ndarray:
    """Per group, the mean of its rows of ``z`` weighted by ``events`` (equal weights if none)."""
    total = np.bincount(group, weights=events, minlength=n)
    w = np.where(total[group] > 0, events / np.where(total > 0, total, 1.0)[group],
                 1.0 / np.bincount(group, minlength=n)[group])
    out = np.zeros((n, z.shape[1]))
    np.add.at(out, group, w[:, None] * z)
    return out


def prior_median(scale: float) -> float:
    """Median of HalfNormal(scale)."""
    return float(scale * special.erfinv(0.5) * np.sqrt(2.0))


def centred_by_information(information: np.ndarray, spec: ModelSpec,
                           prior_scale: float) -> np.ndarray:
    """Centre where the data's information on an effect beats the prior's (module docstring).

    Whole (boolean): the nested effects' geometry is built on fully centred or non-centred
    units (:func:`_nested_normal`).
    """
    if spec.parametrisation == "centred":
        return np.ones(len(information), bool)
    if spec.parametrisation == "non_centred":
        return np.zeros(len(information), bool)
    return np.asarray(information) * prior_median(prior_scale) ** 2 >= 1.0


def centring_by_information(information: np.ndarray, spec: ModelSpec,
                            prior_scale: float) -> np.ndarray:
    """The weights of partial centring (:func:`munirank.model.build.centring_weights`)."""
    if spec.parametrisation in ("switch", "centred", "non_centred"):
        return centred_by_information(information, spec, prior_scale).astype(float)
    info = np.asarray(information, float) * prior_median(prior_scale) ** 2
    return info / (1.0 + info)


def _new_information(events_old: np.ndarray, parent: np.ndarray, n_new: int,
                     spec: ModelSpec) -> np.ndarray:
    spread = prior_median(spec.priors.sigma_old_sigma) ** 2
    each = np.where(events_old > 0, events_old / (1.0 + events_old * spread), 0.0)
    return np.bincount(parent, weights=each, minlength=n_new)


def _old_effect(spec: ModelSpec, sigma_old: pt.TensorVariable, centred: pt.TensorVariable,
                level: pt.TensorVariable, mean: pt.TensorVariable) -> pt.TensorVariable:
    """u_old around its new municipality's effect ``mean``, centred or not (module docstring)."""
    centred = pt.gt(centred, 0)
    mu_raw = pt.switch(centred, level + mean, 0.0)
    scale_raw = pt.switch(centred, sigma_old, 1.0)
    if spec.group_effect == "student_t":
        raw = pm.StudentT("u_old_raw", nu=spec.priors.nu, mu=mu_raw, sigma=scale_raw, dims=OLD)
    else:
        raw = pm.Normal("u_old_raw", mu_raw, scale_raw, dims=OLD)
    return pm.Deterministic("u_old", pt.switch(centred, raw - level, mean + sigma_old * raw),
                            dims=OLD)


NESTED_NAMES = ("u_old_raw", "u_raw", "u", "u_old")
"""The nested effects' variables: the old units' raw and effect, the new units' raw and effect
(:mod:`munirank.model.periods` names its own: period cells nested in municipalities)."""


def _nested_normal(sigma: pt.TensorVariable, sigma_old: pt.TensorVariable,
                   centred: np.ndarray, level: pt.TensorVariable, parent: np.ndarray,
                   n_new: int, *, names: tuple[str, ...] = NESTED_NAMES,
                   old_dim: str = OLD) -> pt.TensorVariable:
    r"""Normal nested effects with the new level integrated out of the geometry.

    Centred old municipalities C are sampled as their levels ``v_o`` (flat; ``y_o = v_o -
    L_o`` is u_old), the others as ``u_old = u_new + sigma_old e_o``. Given sigma, sigma_old
    and the y of its centred old municipalities, a new municipality's effect is normal with
    precision :math:`P_n = 1/\sigma^2 + k_n/\sigma_{old}^2` and mean
    :math:`m_n = \sigma_{old}^{-2} \sum_{o \in C_n} y_o / P_n`; it is sampled as
    :math:`u^{new}_n = m_n + P_n^{-1/2}\varepsilon_n`, :math:`\varepsilon_n \sim N(0, 1)`
    (``u_raw``), and the y carry their marginal density,
    :math:`y_{C_n} \sim N(0, \sigma_{old}^2 I + \sigma^2 \mathbf{1}\mathbf{1}^\top)`.
    The joint density is the model's (the Jacobian :math:`P_n^{-1/2}` makes it so), and the
    new effects no longer form a funnel with sigma_old: measured on the tiny register
    nested in a simulated reform, the plain centred/non-centred version had R-hat 1.6.
    """
    c, nc = np.flatnonzero(centred), np.flatnonzero(~centred)
    k = np.bincount(parent[c], minlength=n_new).astype(float)
    old_raw, new_raw, new_name, old_name = names
    raw = pm.Flat(old_raw, dims=old_dim)
    y = raw[c] - level[c]
    s1 = pt.zeros(n_new)[parent[c]].inc(y)
    s2 = pt.zeros(n_new)[parent[c]].inc(y**2)
    v_old, v_new = sigma_old**2, sigma**2
    precision = 1.0 / v_new + k / v_old
    eps = pm.Normal(new_raw, 0.0, 1.0, dims="municipality")
    u_new = pm.Deterministic(new_name, s1 / v_old / precision + eps / pt.sqrt(precision),
                             dims="municipality")
    has = k > 0
    log_det = np.where(has, k - 1, 0.0) * pt.log(v_old) + pt.where(
        has, pt.log(v_old + k * v_new), 0.0)
    quad = (s2 - v_new * s1**2 / (v_old + k * v_new)) / v_old
    pm.Potential("u_old_prior", -0.5 * (log_det + quad).sum() - 0.5 * (raw[nc] ** 2).sum()
                 - 0.5 * np.log(2 * np.pi) * (len(c) + len(nc)))
    u_old = pt.zeros(len(parent))
    u_old = pt.set_subtensor(u_old[c], y)
    u_old = pt.set_subtensor(u_old[nc], u_new[parent[nc]] + sigma_old * raw[nc])
    return pm.Deterministic(old_name, u_old, dims=old_dim)


def _unit_data(episodes: xr.Dataset, spec: ModelSpec, events_c: np.ndarray,
               ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per unit (and new municipality): centring and the covariates of its level; indices."""
    z = episodes["z_cell"].to_numpy()
    k = cell_units(episodes)
    n_unit = episodes.sizes[unit_dim(episodes)]
    events_u = np.bincount(k, weights=events_c, minlength=n_unit)
    out = {"z_unit": event_weighted(z, events_c, k, n_unit)}
    if OLD not in episodes.dims:  # as the default model: partially non-centred
        out["centred"] = centring_by_information(events_u, spec, spec.priors.sigma_sigma)
        return out, k
    parent = unit_parents(episodes)
    n_new = episodes.sizes["municipality"]
    out["centred"] = centred_by_information(events_u, spec, spec.priors.sigma_old_sigma)
    out["z_new"] = event_weighted(z, events_c, parent[k], n_new)
    out["centred_new"] = centred_by_information(
        _new_information(events_u, parent, n_new, spec), spec, spec.priors.sigma_sigma)
    return out, np.concatenate([k, parent])


def create_cell_model(episodes: xr.Dataset, spec: ModelSpec) -> pm.Model:
    """The Weibull model with cells (module docstring); a pure factory like ``create_model``.

    Parameters
    ----------
    episodes : xarray.Dataset
        Episodes with a ``cell`` dim (:func:`munirank.input.cells.cell_dataset`).
    spec : ModelSpec
        Municipality-effect distribution, parametrisation and priors.

    Returns
    -------
    pymc.Model
        As :func:`munirank.model.build.create_model`; with nesting also ``sigma_old`` and
        ``u_old`` (``old_municipality``), ``u`` being the new municipalities' effects.
    """
    p = spec.priors
    t, s = model_times(episodes)
    d = episodes["event"].to_numpy().astype(float)
    x = episodes["x"].to_numpy()
    codes = episodes["episode_cell"].to_numpy().astype(np.int64)
    nested = OLD in episodes.dims
    dims = ("municipality", "covariate", "municipal_covariate", CELL, *((OLD,) if nested else ()))
    coords = {name: episodes[name].to_numpy().tolist() for name in dims}
    hazard = hazard_data(x, episodes["x_centre"].to_numpy(), episodes["x_scale"].to_numpy(),
                         codes, np.log(t), _log_or_minus_inf(s))
    events_c = np.bincount(codes, weights=d, minlength=episodes.sizes[CELL])
    units, index = _unit_data(episodes, spec, events_c)
    n_cell = episodes.sizes[CELL]
    with pm.Model(coords=coords) as model:
        hazard_vars = shared_inputs(hazard, model.register_data_var)
        data = _packed_data(
            "model_data", z=episodes["z_cell"].to_numpy(), sum_d_x=d @ x, events_c=events_c,
            n_events=d.sum(), sum_d_logt=(d * np.log(t)).sum(),
            beta0_mu=crude_log_rate(episodes),
            **{k: v.astype(float) for k, v in units.items()})
        unit_of = pm.Data("model_index", index)  # the cells' units, then the units' parents
        alpha, beta0, beta, gamma, sigma = top_level_priors(p, data["beta0_mu"])
        z_gamma = (data["z"] * gamma).sum(axis=1)
        level = beta0 + (data["z_unit"] * gamma).sum(axis=1)
        if nested and spec.group_effect == "normal":
            sigma_old = pm.HalfNormal("sigma_old", p.sigma_old_sigma)
            u_unit = _nested_normal(sigma, sigma_old, units["centred"], level,
                                    unit_parents(episodes), episodes.sizes["municipality"])
        elif nested:  # student_t, zerosum: no closed form for the new level
            sigma_old = pm.HalfNormal("sigma_old", p.sigma_old_sigma)
            level_new = beta0 + (data["z_new"] * gamma).sum(axis=1)
            u_new = _group_effect(spec, sigma, data["centred_new"], level_new)
            u_unit = _old_effect(spec, sigma_old, data["centred"], level,
                                 u_new[unit_of[n_cell:]])
        else:
            u_unit = _group_effect(spec, sigma, data["centred"], level)
        mu_c = z_gamma + u_unit[unit_of[:n_cell]]
        pm.Potential("loglik", weibull_loglik_graph(data, data["events_c"], mu_c, alpha, beta0,
                                                    beta, hazard_vars))
    return model


def cell_levels(posterior: xr.Dataset, episodes: xr.Dataset, gamma: np.ndarray, *,
                with_effect: bool = True) -> np.ndarray:
    """z_c'gamma (+ the cell's unit effect) per draw (the posterior's sample dims) and cell."""
    mu = gamma @ episodes["z_cell"].to_numpy().T
    if with_effect:
        dim = unit_dim(episodes)
        name = "u_old" if dim == OLD else "u"
        sample_dims = posterior["beta0"].dims
        u = posterior[name]
        if not np.array_equal(u[dim].to_numpy(), episodes[dim].to_numpy()):
            u = u.sel({dim: episodes[dim].to_numpy()})
        mu = mu + np.take(u.transpose(*sample_dims, dim).to_numpy(), cell_units(episodes),
                          axis=-1)
    return mu

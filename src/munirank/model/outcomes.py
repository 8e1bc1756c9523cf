r"""Cause-specific Weibull hazards with correlated municipality effects (``[data] outcome``).

An episode ends at the first of K competing outcomes (self-support, education, ...) or is
censored. Outcome k has its own Weibull proportional hazard,

.. math::

    h_k(t \mid x_i, m) = \alpha_k t^{\alpha_k - 1} \exp(\eta_{ik}), \qquad
    \eta_{ik} = \beta_{0k} + x_i^\top\beta_k + z_m^\top\gamma_k + u_{mk},

and the log-likelihood of episode (s_i, t_i] with outcome c_i (none if censored) is exact
with delayed entry:

.. math::

    \ell_i = \sum_k \Big[ d_{ik}\,(\log\alpha_k + (\alpha_k - 1)\log t_i + \eta_{ik})
             - e^{\eta_{ik}}\,(t_i^{\alpha_k} - s_i^{\alpha_k}) \Big],
    \qquad d_{ik} = 1[c_i = k].

It separates by outcome: each outcome's part is the single-outcome likelihood of
:mod:`munirank.model.build` with the other outcomes' events counted as censored. So the event
terms reduce to each outcome's sufficient statistics, and the cumulative hazard of outcome k
is one pass of the compiled kernel (:mod:`munirank.model.kernel`) over the same rows (the same
shared data) with outcome k's parameters, all K in one Op (:mod:`munirank.model.hazards`).

Municipality effects: :math:`u_m = L e_m`, :math:`e_m \sim N(0, I_K)`, with :math:`L` the
Cholesky factor of :math:`\Sigma = \mathrm{diag}(\sigma) R\, \mathrm{diag}(\sigma)`,
``pm.LKJCholeskyCov`` with :math:`R \sim \mathrm{LKJ}(\eta)` (``[model.priors] lkj_eta``,
2: mildly towards no correlation) and
:math:`\sigma_k \sim \mathrm{HalfNormal}(\text{sigma\_sigma})`.

How the sampler sees u (the model is the same): outcome by outcome, conditionally on the
outcomes before it, :math:`u_{mk} \mid u_{m,<k} \sim N(\mu_{mk}, L_{kk})` with
:math:`\mu_{mk} = \sum_{j<k} L_{kj} e_{mj}`, partially non-centred exactly as the
single-outcome model's effects (:func:`munirank.model.build.centring_weights`, weights
:math:`w_{mk}` from outcome k's events in m):

.. math::

    \tilde u_{mk} \sim N\big(w_{mk}(\ell_{mk} + \mu_{mk}),\ L_{kk}^{w_{mk}}\big), \qquad
    u_{mk} = \mu_{mk} + L_{kk}^{1 - w_{mk}}\big(\tilde u_{mk} - w_{mk}(\ell_{mk} + \mu_{mk})\big),

:math:`\ell_{mk} = \beta_{0k} + z_m^\top\gamma_k`, so that :math:`e_{mk} = (u_{mk} -
\mu_{mk}) / L_{kk}` is standard normal whatever the weights. Why not the plain non-centred
:math:`u = L e`: the frequent outcome (self-support, 92 % of the events in AKF 2006) has as
many events per municipality as the single-outcome model, where all non-centred effects gave
a fifth of the partial centring's ESS (docs/methods.md); the rare outcome's municipalities
have few events and get weights near 0, i.e. non-centred.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy import special

from munirank.input.episodes import as_codes
from munirank.input.spec import ModelSpec
from munirank.model.build import (
    _log_or_minus_inf,
    _packed_data,
    centring_weights,
    model_times,
    time_scale,
)
from munirank.model.hazards import cumulative_hazards
from munirank.model.kernel import hazard_data, shared_inputs

OUTCOME_PARAMETERS = ("alpha", "beta0", "beta", "gamma", "sigma", "rho", "u")
"""The parameters of the outcome model reported and gated (``rho``: the correlations)."""


def outcome_pairs(labels: list[str]) -> list[str]:
    """Names of the off-diagonal correlations, ``a~b`` for each pair (in order)."""
    return [f"{a}~{b}" for i, a in enumerate(labels) for b in labels[i + 1:]]


def outcome_statistics(episodes: xr.Dataset) -> dict[str, np.ndarray]:
    """Per outcome: events, sum of log exit times and of covariates over its events."""
    scale = time_scale(episodes)
    code = episodes["episode_outcome"].to_numpy()
    k = episodes.sizes["outcome"]
    d = (code[:, None] == np.arange(k)[None, :]).astype(float)  # episode, outcome
    log_t = np.log(episodes["exit"].to_numpy() / scale)
    exposure = float(((episodes["exit"] - episodes["entry"]) / scale).sum())
    n = d.sum(axis=0)
    return {"n_events": n, "sum_d_logt": log_t @ d, "sum_d_x": d.T @ episodes["x"].to_numpy(),
            "beta0_mu": np.log(np.maximum(n, 1) / exposure)}


def create_outcome_model(episodes: xr.Dataset, spec: ModelSpec) -> pm.Model:
    """Build the competing-outcomes model (a pure factory; see the module docstring).

    Parameters
    ----------
    episodes : xarray.Dataset
        With ``episode_outcome`` and the ``outcome`` dim (:mod:`munirank.input.outcomes`).
    spec : ModelSpec
        Priors (``lkj_eta`` for the correlation), effect parametrisation.

    Returns
    -------
    pymc.Model
        Free variables ``alpha``, ``beta0`` (``outcome``), ``beta`` (``outcome``,
        ``covariate``), ``gamma`` (``outcome``, ``municipal_covariate``), the LKJ Cholesky
        factor ``chol``, the raw effects ``u_raw_<k>``; deterministics ``sigma``
        (``outcome``), ``rho`` (``outcome_pair``) and ``u`` (``municipality``, ``outcome``).
    """
    p = spec.priors
    labels = episodes["outcome"].to_numpy().tolist()
    n_out = len(labels)
    t, s = model_times(episodes)
    codes = as_codes(episodes)
    coords = {name: episodes[name].to_numpy().tolist()
              for name in ("municipality", "covariate", "municipal_covariate", "outcome")}
    coords["outcome_pair"] = outcome_pairs(labels)
    hazard = hazard_data(episodes["x"].to_numpy(), episodes["x_centre"].to_numpy(),
                         episodes["x_scale"].to_numpy(), codes, np.log(t), _log_or_minus_inf(s))
    stats = outcome_statistics(episodes)
    events_mk = episodes["n_events_outcome"].to_numpy().astype(float)
    weights = np.stack([centring_weights(events_mk[:, k], spec) for k in range(n_out)], axis=1)
    with pm.Model(coords=coords) as model:
        hazard_vars = shared_inputs(hazard, model.register_data_var)
        data = _packed_data("model_data", z=episodes["z"].to_numpy(), events_mk=events_mk,
                            weights=weights, **stats)
        alpha = pm.LogNormal("alpha", mu=p.alpha_mu, sigma=p.alpha_sigma, dims="outcome")
        beta0 = pm.Normal("beta0", mu=data["beta0_mu"], sigma=p.beta0_sigma, dims="outcome")
        beta = pm.Normal("beta", 0.0, p.beta_sigma, dims=("outcome", "covariate"))
        gamma = pm.Normal("gamma", 0.0, p.gamma_sigma, dims=("outcome", "municipal_covariate"))
        chol, corr, sigma = pm.LKJCholeskyCov(
            "chol", n=n_out, eta=p.lkj_eta, compute_corr=True, store_in_trace=False,
            sd_dist=pm.HalfNormal.dist(p.sigma_sigma, shape=n_out),
            initval=_initial_cholesky(n_out, p.sigma_sigma))
        pm.Deterministic("sigma", sigma, dims="outcome")
        upper = np.triu_indices(n_out, 1)
        pm.Deterministic("rho", corr[upper], dims="outcome_pair")
        # products as elementwise sums, not pt.dot (see model.build.create_model)
        z_gamma = (data["z"][:, None, :] * gamma[None, :, :]).sum(axis=2)  # municipality, k
        u = _correlated_effects(spec, chol, data["weights"], beta0 + z_gamma, labels)
        mu = z_gamma + u  # municipality, outcome
        event_part = ((data["n_events"] * (pt.log(alpha) + beta0)).sum()
                      + ((alpha - 1) * data["sum_d_logt"]).sum()
                      + (data["sum_d_x"] * beta).sum() + (data["events_mk"] * mu).sum())
        cum_hazard = cumulative_hazards((beta0 + mu).T, beta, alpha, hazard_vars)
        pm.Potential("loglik", event_part - cum_hazard)
    return model


def _initial_cholesky(n_out: int, sigma_sigma: float) -> np.ndarray:
    """The packed Cholesky factor to start from: no correlation, the prior median SDs.

    Given explicitly because PyMC's default start (the support point) of an LKJ Cholesky
    factor is a Scan compiled by PyTensor's C backend, which looks for a BLAS library (a
    warning where there is none) and compiles in every process.
    """
    packed = np.zeros(n_out * (n_out + 1) // 2)
    diagonal = np.arange(1, n_out + 1) * np.arange(2, n_out + 2) // 2 - 1
    packed[diagonal] = sigma_sigma * special.erfinv(0.5) * np.sqrt(2.0)
    return packed


def _correlated_effects(spec: ModelSpec, chol: pt.TensorVariable, weights: pt.TensorVariable,
                        level: pt.TensorVariable, labels: list[str]) -> pt.TensorVariable:
    """The effects u (municipality, outcome), conditionally partially non-centred."""
    if spec.group_effect != "normal":
        raise NotImplementedError("competing outcomes have normal municipality effects")
    columns, standard = [], []
    for k in range(len(labels)):
        mu = sum((chol[k, j] * standard[j] for j in range(k)), start=pt.zeros_like(level[:, k]))
        w, sd = weights[:, k], chol[k, k]
        centre = w * (level[:, k] + mu)
        u_raw = pm.Normal(f"u_raw_{k}", centre, sd**w, dims="municipality")
        u_k = mu + sd ** (1.0 - w) * (u_raw - centre)
        columns.append(u_k)
        standard.append((u_k - mu) / sd)
    return pm.Deterministic("u", pt.stack(columns, axis=1), dims=("municipality", "outcome"))

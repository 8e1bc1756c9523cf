"""The model with measurement periods: exact likelihood on period cells, both structures."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from munirank.input.episodes import load_episodes
from munirank.input.spec import load_spec
from munirank.model.build import create_model, time_scale, weibull_loglik


@pytest.fixture(scope="module")
def period_episodes(periods_dir):
    spec = load_spec(periods_dir / "spec.toml")
    return load_episodes(periods_dir / "spells.csv", spec), spec


def _numpy_loglik(ep, values) -> float:
    """sum_i of the Weibull log-likelihood with eta_i of the module docstring, in numpy."""
    scale = time_scale(ep)
    cell = ep["episode_period_cell"].to_numpy()
    muni = ep["cell_municipality"].to_numpy()[cell]
    period = ep["cell_period"].to_numpy()[cell]
    eta = (values["beta0"] + ep["x"].to_numpy() @ values["beta"]
           + values["period_shift"][period] + (ep["z"].to_numpy() @ values["gamma"])[muni]
           + values["u_cell"][cell])
    return float(weibull_loglik(ep["exit"].to_numpy() / scale, ep["entry"].to_numpy() / scale,
                                ep["event"].to_numpy().astype(float), eta,
                                values["alpha"]).sum())


@pytest.mark.parametrize("structure", ["shared", "ar1"])
def test_period_likelihood_is_the_weibull_likelihood_of_each_episode(period_episodes,
                                                                     structure):
    ep, spec = period_episodes
    model = create_model(ep, replace(spec.model, periods=structure))
    names = ["loglik", "alpha", "beta0", "beta", "gamma", "period_shift", "u_cell"]
    outs = model.replace_rvs_by_values([model[n] for n in names])
    fn = model.compile_fn(outs, inputs=model.value_vars, point_fn=True)
    rng = np.random.default_rng(4)
    for seed in range(3):
        point = {k: v + rng.normal(0.0, 0.3, np.shape(v))
                 for k, v in model.initial_point(random_seed=seed).items()}
        out = dict(zip(names, fn(point), strict=True))
        assert out["period_shift"][0] == 0.0 and np.ptp(out["period_shift"]) > 0
        assert out["loglik"] == pytest.approx(_numpy_loglik(ep, out), rel=1e-9)


def test_period_models_have_their_structures_variables(period_episodes):
    ep, spec = period_episodes
    shared = create_model(ep, spec.model)
    ar1 = create_model(ep, replace(spec.model, periods="ar1"))
    assert {"sigma_period", "u_shared", "u_cell", "rho", "period_shift"} <= set(shared.named_vars)
    assert "sigma_period" not in ar1.named_vars
    assert "rho" in [v.name for v in ar1.free_RVs]
    assert {"rho", "u_cell", "u_period_raw"} <= set(ar1.named_vars)
    assert shared.named_vars_to_dims["u_cell"] == ("period_cell",)
    assert ep.sizes["period_cell"] == 39
    for model in (shared, ar1):
        logp = model.compile_logp()(model.initial_point(random_seed=1))
        assert np.isfinite(logp)


def test_ar1_effects_have_correlation_rho_to_the_power_of_the_lag(period_episodes):
    """Prior draws of the AR(1) effects: SD sigma each period, corr rho between two."""
    import pymc as pm

    ep, spec = period_episodes
    model = create_model(ep, replace(spec.model, periods="ar1"))
    with model, pytest.warns(UserWarning, match="Potentials"):  # the likelihood: not drawn
        prior = pm.sample_prior_predictive(draws=3000, var_names=["u_cell", "rho", "sigma"],
                                           random_seed=2).prior
    cell_m = ep["cell_municipality"].to_numpy()
    first = np.flatnonzero((cell_m == 0) & (ep["cell_period"].to_numpy() == 0))[0]
    second = np.flatnonzero((cell_m == 0) & (ep["cell_period"].to_numpy() == 1))[0]
    u = prior["u_cell"].to_numpy().reshape(-1, ep.sizes["period_cell"])
    sigma = prior["sigma"].to_numpy().ravel()
    rho = prior["rho"].to_numpy().ravel()
    a, b = u[:, first] / sigma, u[:, second] / sigma
    assert np.std(a) == pytest.approx(1.0, abs=0.05)
    assert np.mean(a * b) == pytest.approx(np.mean(rho), abs=0.05)
    assert np.mean(a * b * rho) == pytest.approx(np.mean(rho**2), abs=0.05)


def test_without_a_period_the_default_model_is_the_one_before_periods(tiny_dir):
    """The tiny model's density at a fixed point as computed before issue 25 (main e49846d).

    Checked by hand as well: a tiny fit (seed 1) with and without this branch gives identical
    draws, tables, statements and report (but for its folder name and wall time).
    """
    spec = load_spec(tiny_dir / "spec.toml")
    ep = load_episodes(tiny_dir / "spells.csv", spec)
    assert not {"period", "period_cell"} & set(ep.dims)
    model = create_model(ep, spec.model)
    rng = np.random.default_rng(7)
    point = {k: v + rng.normal(0, 0.3, np.shape(v))
             for k, v in model.initial_point(random_seed=1).items()}
    assert float(model.compile_logp()(point)) == pytest.approx(-1235.1220209183828, rel=1e-10)
    assert float(np.sum(model.compile_dlogp()(point))) == pytest.approx(-18.135909135928184,
                                                                       rel=1e-8)
    assert [v.name for v in model.free_RVs] == ["alpha", "beta0", "beta", "gamma", "sigma",
                                                "u_raw"]

"""The competing-outcomes model: exact likelihood, the prior of u whatever the centring."""

from __future__ import annotations

import warnings

import numpy as np
import pymc as pm
import pytest

from munirank.input.episodes import as_codes
from munirank.input.spec import ModelSpec
from munirank.model.build import create_model, time_scale, weibull_loglik

# PyTensor's C backend (initial points, prior draws) looks for a BLAS library once and warns
# when it finds none; the model itself compiles with numba
pytestmark = pytest.mark.filterwarnings("ignore:PyTensor could not link to a BLAS")


@pytest.fixture(scope="module")
def outcome_model(outcome_episodes):
    return create_model(outcome_episodes, ModelSpec())


def test_likelihood_is_the_sum_of_cause_specific_weibull_terms(outcome_model, outcome_episodes):
    model, ep = outcome_model, outcome_episodes
    rng = np.random.default_rng(4)
    start = model.initial_point()
    point = {k: v + 0.3 * rng.normal(size=np.shape(v)) for k, v in start.items()}
    outs = model.replace_rvs_by_values([model.potentials[0], model["u"], model["alpha"],
                                        model["beta0"], model["beta"], model["gamma"]])
    fn = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore",
                          mode="NUMBA")
    loglik, u, alpha, beta0, beta, gamma = fn(point)
    scale = time_scale(ep)
    t, s = ep["exit"].to_numpy() / scale, ep["entry"].to_numpy() / scale
    code, m = ep["episode_outcome"].to_numpy(), as_codes(ep)
    x, z = ep["x"].to_numpy(), ep["z"].to_numpy()
    expected = 0.0
    for k in range(ep.sizes["outcome"]):
        eta = beta0[k] + x @ beta[k] + (z @ gamma[k] + u[:, k])[m]
        expected += weibull_loglik(t, s, (code == k).astype(float), eta, alpha[k]).sum()
    assert loglik == pytest.approx(expected, rel=1e-9, abs=1e-6)


def test_prior_of_u_is_the_lkj_covariance_centred_or_not(outcome_model, outcome_episodes):
    """u_m ~ N(0, Sigma) for every centring weight: the sampler's coordinates change nothing."""
    with outcome_model, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Potentials are ignored by prior sampling, as meant
        prior = pm.sample_prior_predictive(draws=3000, var_names=["u", "sigma", "rho"],
                                           random_seed=5)["prior"]
    u = prior["u"].stack(sample=("chain", "draw")).transpose("sample", "municipality",
                                                             "outcome").to_numpy()
    sigma = prior["sigma"].stack(sample=("chain", "draw")).transpose("sample", "outcome")
    sigma = sigma.to_numpy()
    rho = prior["rho"].stack(sample=("chain", "draw")).to_numpy()[0]
    events = outcome_episodes["n_events_outcome"].to_numpy()
    centred = events[:, 0] >= 50  # w_m above 0.85 for the first outcome
    assert centred.sum() >= 3 and (~centred).sum() >= 3
    for group in (centred, ~centred):
        v = u[:, group, :]
        for k in range(2):
            assert np.mean(v[:, :, k] ** 2) == pytest.approx(np.mean(sigma[:, k] ** 2), rel=0.1)
        cross = np.mean(v[:, :, 0] * v[:, :, 1])
        assert cross == pytest.approx(np.mean(sigma[:, 0] * sigma[:, 1] * rho), abs=0.01)


def test_the_default_model_has_no_outcome_variables(tiny_episodes):
    model = create_model(tiny_episodes, ModelSpec())
    assert "rho" not in model.named_vars and "u_raw" in model.named_vars

import numpy as np
import pytest
from scipy import stats

from munirank.model import create_model, weibull_loglik
from munirank.spec import ModelSpec


def _scipy_loglik(t, s, d, eta, alpha):
    """Weibull PH through scipy: rate exp(eta) <=> weibull_min(c=alpha, scale=exp(-eta/alpha)).
    Events: log f(t); censored: log S(t); delayed entry: minus log S(s)."""
    dist = stats.weibull_min(c=alpha, scale=np.exp(-eta / alpha))
    ll = np.where(d == 1, dist.logpdf(t), dist.logsf(t))
    return ll - np.where(s > 0, dist.logsf(s), 0.0)


@pytest.mark.parametrize("alpha", [0.6, 1.0, 1.7])
def test_loglik_matches_scipy_with_censoring_and_truncation(alpha):
    rng = np.random.default_rng(3)
    n = 400
    s = np.where(rng.random(n) < 0.3, rng.uniform(0.1, 1.0, n), 0.0)
    t = s + rng.uniform(0.05, 2.0, n)
    d = (rng.random(n) < 0.5).astype(float)
    eta = rng.normal(0, 0.7, n)
    ours = weibull_loglik(t, s, d, eta, alpha)
    np.testing.assert_allclose(ours, _scipy_loglik(t, s, d, eta, alpha), rtol=1e-10, atol=1e-12)


def test_model_potential_equals_numpy_loglik(tiny_episodes):
    """The vectorised PyTensor likelihood (sufficient statistics, delayed entry) equals the
    per-episode numpy likelihood summed, at an arbitrary parameter point."""
    model = create_model(tiny_episodes, ModelSpec())
    rng = np.random.default_rng(5)
    point = {
        "alpha_log__": np.log(1.3), "beta0": -0.4, "sigma_log__": np.log(0.35),
        "beta": rng.normal(0, 0.3, tiny_episodes.sizes["covariate"]),
        "gamma": rng.normal(0, 0.3, tiny_episodes.sizes["municipal_covariate"]),
        "u_raw": rng.normal(size=tiny_episodes.sizes["municipality"]),
    }
    (term,) = model.replace_rvs_by_values([model.potentials[0]])
    potential = model.compile_fn(term, inputs=model.value_vars)(point)
    scale = float(tiny_episodes.attrs["horizon_months"])
    u = 0.35 * point["u_raw"]
    mu = tiny_episodes["z"].to_numpy() @ point["gamma"] + u
    from munirank.data import as_codes

    eta = -0.4 + tiny_episodes["x"].to_numpy() @ point["beta"] + mu[as_codes(tiny_episodes)]
    expected = weibull_loglik(tiny_episodes["exit"].to_numpy() / scale,
                              tiny_episodes["entry"].to_numpy() / scale,
                              tiny_episodes["event"].to_numpy(), eta, 1.3).sum()
    assert float(potential) == pytest.approx(expected, rel=1e-10)


def test_every_municipality_is_in_the_model(tiny_episodes):
    model = create_model(tiny_episodes, ModelSpec())
    assert model.coords["municipality"] == tuple(tiny_episodes["municipality"].to_numpy())
    assert min(tiny_episodes["n_spells"].to_numpy()) < 10  # small ones are included too


@pytest.mark.parametrize("effect", ["normal", "zerosum", "student_t"])
def test_group_effect_variants_build(tiny_episodes, effect):
    model = create_model(tiny_episodes, ModelSpec(group_effect=effect))
    assert "u" in model.named_vars
    assert np.isfinite(model.compile_logp()(model.initial_point()))

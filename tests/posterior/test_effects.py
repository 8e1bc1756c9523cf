import numpy as np
import pytest
from scipy import integrate, special

from munirank.posterior.effects import duration_effects, regularized_lower_gamma, rmst_weibull


@pytest.mark.parametrize(("eta", "alpha"), [(-3.0, 0.7), (-1.0, 1.0), (0.5, 1.6), (-6.0, 2.5)])
def test_rmst_closed_form_matches_numerical_integration(eta, alpha):
    scale, horizon = 48.0, 48.0
    lam = np.exp(eta)
    numeric, _ = integrate.quad(lambda m: np.exp(-lam * (m / scale) ** alpha), 0, horizon,
                                epsabs=1e-12)
    assert rmst_weibull(eta, alpha, horizon, scale) == pytest.approx(numeric, 1e-9)


def test_interpolated_gamma_matches_scipy_over_the_whole_range():
    rng = np.random.default_rng(0)
    a = rng.uniform(0.25, 4.0, (40, 1))
    x = np.exp(rng.uniform(-35, 12, (40, 3000)))
    x[:, :3] = [0.0, 1e-300, 1e6]
    np.testing.assert_allclose(regularized_lower_gamma(a, x), special.gammainc(a, x),
                               atol=1e-6, rtol=1e-6)
    # in RMST units the error is at most 48 months * 1e-6: far below what is reported


def test_effects_are_zero_without_municipality_effects(tiny_episodes, tiny_posterior):
    post = tiny_posterior.copy()
    post["u"] = post["u"] * 0
    eff = duration_effects(post, tiny_episodes)
    np.testing.assert_allclose(eff["effect_months"], 0.0, atol=1e-12)
    assert eff["effect_months"].dims == ("chain", "draw", "municipality")


def test_faster_municipality_has_negative_effect(tiny_episodes, tiny_posterior):
    eff = duration_effects(tiny_posterior, tiny_episodes)
    u = tiny_posterior["u"].to_numpy()
    e = eff["effect_months"].to_numpy()
    nonzero = np.abs(u) > 1e-3
    assert np.all(np.sign(e[nonzero]) == -np.sign(u[nonzero]))
    horizon = tiny_episodes.attrs["horizon_months"]
    assert float(eff["observed_months"].max()) <= horizon


def test_effects_match_a_direct_per_episode_computation(tiny_episodes, tiny_posterior):
    """Draw by draw, observed_m is the mean over m's episodes of the exact RMST."""
    eff = duration_effects(tiny_posterior, tiny_episodes)
    p = tiny_posterior.isel(chain=1, draw=7)
    m = str(tiny_episodes["municipality"][3].item())
    mask = tiny_episodes["episode_municipality"].to_numpy() == m
    eta = (float(p["beta0"]) + tiny_episodes["x"].to_numpy()[mask] @ p["beta"].to_numpy()
           + float(tiny_episodes["z"].sel(municipality=m).to_numpy() @ p["gamma"].to_numpy())
           + float(p["u"].sel(municipality=m)))
    scale = tiny_episodes.attrs["horizon_months"]
    direct = rmst_weibull(eta, float(p["alpha"]), 48.0, scale).mean()
    got = float(eff["observed_months"].isel(chain=1, draw=7).sel(municipality=m))
    assert got == pytest.approx(direct, abs=1e-4)

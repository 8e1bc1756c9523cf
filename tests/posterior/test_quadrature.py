"""Effects in months by quadrature (any baseline) against closed forms and the per-draw numpy
algorithm the compiled pass replaced (issue 29)."""

import numpy as np
import pytest
from scipy import integrate, stats

from conftest import fake_posterior
from munirank.input.episodes import as_codes
from munirank.model.build import (
    PIECE_CUTS_MONTHS,
    linear_predictor,
    log_time_term,
    shape_draws,
    survival_link,
)
from munirank.posterior.effects import duration_effects
from munirank.posterior.quadrature import duration_effects_quadrature, rmst_nodes, rmst_table


def test_quadrature_effects_match_weibull_closed_form(tiny_episodes, tiny_posterior):
    exact = duration_effects(tiny_posterior, tiny_episodes)
    quad = duration_effects_quadrature(tiny_posterior, tiny_episodes, baseline="weibull")
    for name in ("observed_months", "expected_months", "effect_months"):
        np.testing.assert_allclose(quad[name], exact[name], atol=0.01)


@pytest.mark.parametrize("baseline", ["loglogistic", "lognormal"])
@pytest.mark.parametrize("alpha", [0.6, 1.5])
def test_rmst_table_matches_adaptive_quadrature(baseline, alpha):
    horizon = 48.0
    nodes, weights = rmst_nodes(horizon, (6.0, 12.0))
    eta = np.array([-3.0, -0.5, 0.0, 1.5])
    table = rmst_table(baseline, alpha * np.log(nodes / horizon), weights, eta)
    exact = [integrate.quad(lambda t, e=e: survival_link(baseline, e + alpha * np.log(t / horizon)),
                            0, horizon, limit=200)[0] for e in eta]
    np.testing.assert_allclose(table, exact, rtol=1e-5)


def test_lognormal_rmst_matches_closed_form():
    """E[min(T, tau)] of a log-normal: exp(mu + s^2/2) Phi((log tau - mu - s^2)/s) + tau S(tau)."""
    nodes, weights = rmst_nodes(48.0)
    alpha, eta = 1.2, np.array([-1.0, 0.4])
    mu, s = np.log(48.0) - eta / alpha, 1 / alpha  # log T in months
    closed = (np.exp(mu + s**2 / 2) * stats.norm.cdf((np.log(48) - mu - s**2) / s)
              + 48 * stats.norm.sf((np.log(48) - mu) / s))
    table = rmst_table("lognormal", alpha * np.log(nodes / 48.0), weights, eta)
    np.testing.assert_allclose(table, closed, rtol=1e-5)


def _per_draw_reference(posterior, episodes, baseline):
    """The algorithm before issue 29, per draw in numpy: np.interp on the same grid."""
    scale = float(episodes.attrs["horizon_months"])
    nodes, weights = rmst_nodes(scale, PIECE_CUTS_MONTHS)
    g = log_time_term(baseline, nodes[None, :] / scale,
                      **shape_draws(posterior, baseline, episodes))
    dims = ("chain", "draw", "episode")
    eta1 = linear_predictor(posterior, episodes).transpose(*dims).to_numpy()
    eta0 = linear_predictor(posterior, episodes, with_effect=False).transpose(*dims).to_numpy()
    eta1, eta0 = eta1.reshape(-1, eta1.shape[-1]), eta0.reshape(-1, eta0.shape[-1])
    codes = as_codes(episodes)
    counts = np.bincount(codes)
    out = []
    for r in range(len(eta1)):
        grid = np.linspace(min(eta0[r].min(), eta1[r].min()) - 1e-9,
                           max(eta0[r].max(), eta1[r].max()) + 1e-9, 512)
        table = rmst_table(baseline, g[min(r, len(g) - 1)], weights, grid)
        obs = np.bincount(codes, np.interp(eta1[r], grid, table)) / counts
        exp_ = np.bincount(codes, np.interp(eta0[r], grid, table)) / counts
        out.append(obs - exp_)
    return np.array(out)


@pytest.mark.parametrize("baseline", ["exponential", "weibull", "loglogistic", "lognormal",
                                      "piecewise_exponential"])
def test_compiled_pass_equals_the_per_draw_numpy_algorithm(tiny_episodes, baseline):
    post = fake_posterior(tiny_episodes, draws=30, seed=4)
    if baseline == "piecewise_exponential":
        rng = np.random.default_rng(1)
        post["log_piece"] = (("chain", "draw", "piece"), rng.normal(0, 0.3, (2, 30, 4)))
    if baseline in ("exponential", "piecewise_exponential"):
        post = post.drop_vars("alpha")
    got = duration_effects_quadrature(post, tiny_episodes, baseline=baseline)
    want = _per_draw_reference(post, tiny_episodes, baseline)
    np.testing.assert_allclose(got["effect_months"].to_numpy().reshape(want.shape), want,
                               rtol=1e-9, atol=1e-10)
    assert got["effect_months"].dims == ("chain", "draw", "municipality")


def test_without_municipal_covariates(tiny_episodes):
    episodes = tiny_episodes.isel(municipal_covariate=[])
    post = fake_posterior(episodes, draws=10, seed=2)
    got = duration_effects_quadrature(post, episodes, baseline="loglogistic")
    want = _per_draw_reference(post, episodes, "loglogistic")
    np.testing.assert_allclose(got["effect_months"].to_numpy().reshape(want.shape), want,
                               rtol=1e-9, atol=1e-10)

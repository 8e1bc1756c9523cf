"""LOO block by block (issue 29) against arviz-stats' loo of the whole pointwise array."""

import warnings

import arviz_stats as azs
import numpy as np
import pytest
import xarray as xr

from conftest import fake_posterior
from munirank.checking import alternatives as checks
from munirank.checking.loo import model_loo
from munirank.input.spec import BASELINES
from munirank.model.build import pointwise_loglik


def _posterior(episodes, baseline, seed=3):
    post = fake_posterior(episodes, chains=4, draws=100, seed=seed)
    if baseline == "piecewise_exponential":
        rng = np.random.default_rng(seed)
        post["log_piece"] = (("chain", "draw", "piece"), rng.normal(0, 0.3, (4, 100, 4)))
        post = post.assign_coords(piece=["6-12", "12-24", "24-36", "36-inf"])
    if baseline in ("exponential", "piecewise_exponential"):
        post = post.drop_vars("alpha")
    # coordinates in another order than the episodes': matched by label
    return post.isel(municipality=np.random.default_rng(seed).permutation(
        post.sizes["municipality"]))


@pytest.mark.parametrize("baseline", BASELINES)
def test_blocks_equal_arviz_stats_on_the_whole_array(tiny_episodes, baseline):
    post = _posterior(tiny_episodes, baseline)
    loglik = pointwise_loglik(post, tiny_episodes, baseline=baseline)
    tree = xr.DataTree.from_dict({"posterior": post,
                                  "log_likelihood": xr.Dataset({"loglik": loglik})})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto k warnings: both raise them
        want = azs.loo(tree, pointwise=True, var_name="loglik")
        got = model_loo(post, tiny_episodes, baseline=baseline, block_values=4000)
    assert got.loo.elpd == pytest.approx(want.elpd, rel=1e-12)
    assert got.loo.se == pytest.approx(want.se, rel=1e-10)
    assert got.loo.p == pytest.approx(want.p, rel=1e-9)
    np.testing.assert_allclose(got.loo.elpd_i.values, want.elpd_i.values, rtol=1e-10)
    np.testing.assert_allclose(got.loo.pareto_k.values, want.pareto_k.values, rtol=1e-9,
                               atol=1e-10)
    np.testing.assert_allclose(got.loglik_draws.values, loglik.sum("episode").values,
                               rtol=1e-12)
    assert got.loo.log_weights is None  # no draws x episodes array is kept


def test_prior_sensitivity_from_the_summed_loglik_equals_the_pointwise(tiny_episodes,
                                                                      tiny_spec):
    """Power-scaling the likelihood needs only its sum over episodes per draw."""
    post = fake_posterior(tiny_episodes, draws=200, seed=3)
    post["sigma"] = post["sigma"] + 0.05 * np.abs(
        np.random.default_rng(2).normal(size=post["sigma"].shape))
    pointwise = pointwise_loglik(post, tiny_episodes)
    summed = model_loo(post, tiny_episodes, baseline="weibull").loglik_draws
    out = []
    for loglik in (pointwise, summed):
        tree = xr.DataTree.from_dict({"posterior": post,
                                      "log_likelihood": xr.Dataset({"loglik": loglik})})
        out.append(checks.prior_sensitivity(tree, tiny_spec.model, tiny_episodes))
    assert out[0].keys() == out[1].keys()
    for key, value in out[0].items():
        assert out[1][key]["prior"] == pytest.approx(value["prior"], rel=1e-8, abs=1e-12)
        assert out[1][key]["likelihood"] == pytest.approx(value["likelihood"], rel=1e-8,
                                                          abs=1e-12)


def test_without_municipal_covariates(tiny_episodes):
    """The check's variant without municipal covariates (an empty gamma)."""
    episodes = tiny_episodes.isel(municipal_covariate=[])
    post = fake_posterior(episodes, chains=2, draws=50, seed=1)
    loglik = pointwise_loglik(post, episodes)
    got = model_loo(post, episodes, baseline="weibull")
    np.testing.assert_allclose(got.loglik_draws.values, loglik.sum("episode").values,
                               rtol=1e-12)

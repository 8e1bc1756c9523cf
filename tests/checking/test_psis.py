"""PSIS-LOO by rows (issue 29) against arviz-stats' own, episode by episode."""

import math

import numpy as np
import pytest
import xarray as xr

from munirank.checking.psis import psis_loo_rows, tail_length


def _arviz(loglik_rows, chains, r_eff):
    n, s = loglik_rows.shape
    da = xr.DataArray(loglik_rows.T.reshape(chains, s // chains, n),
                      dims=("chain", "draw", "episode"))
    elpd, khat, p_loo = da.azstats.loo(sample_dims=("chain", "draw"), r_eff=r_eff)
    return elpd.values, khat.values, p_loo.values


@pytest.mark.parametrize(("draws", "r_eff"), [(4000, 0.83), (1000, 1.0), (200, 0.9), (100, 0.5)])
def test_rows_equal_arviz_stats(draws, r_eff):
    """Heavy and light tails, both rules for the tail length (3 sqrt(S / r_eff) and S / 5)."""
    rng = np.random.default_rng(draws)
    n = 120
    ll = (rng.normal(-1, 0.3, (n, draws))
          + rng.standard_t(2.5, (n, draws)) * rng.uniform(0, 0.8, (n, 1)))
    want = _arviz(ll, 4, r_eff)
    got = psis_loo_rows(ll, r_eff=r_eff)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
    assert tail_length(draws, r_eff) == (np.floor(3 * (draws / r_eff) ** 0.5)
                                         if draws * r_eff > 225 else draws // 5)


def test_rows_with_ties_and_a_flat_quartile_equal_arviz_stats():
    """Repeated values in the tail (a sort and a partition may order them differently) and a
    tail whose first quartile equals its minimum (k-hat undefined: no smoothing, NaN)."""
    rng = np.random.default_rng(5)
    ll = rng.normal(-1, 0.5, (3, 1000))
    ll[0, :60] = -3.0  # 60 of the tail's 94 draws tied
    ll[1] = np.round(ll[1], 1)
    ll[2] = rng.normal(-0.5, 0.1, 1000)
    ll[2, :60] = -1.0  # the cutoff and the tail's lower 54 draws tied
    ll[2, 60:100] = -1.5 - rng.random(40)
    want = _arviz(ll, 4, 1.0)
    assert np.isnan(want[1][2])
    got = psis_loo_rows(ll, r_eff=1.0)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12, equal_nan=True)


def test_a_tail_of_one_value_is_refused_as_arviz_stats_does():
    ll = np.random.default_rng(1).normal(-1, 0.5, (1, 1000))
    ll[0, :400] = -3.0
    with pytest.raises(ValueError, match="All tail values are the same"):
        _arviz(ll, 4, 1.0)
    with pytest.raises(ValueError, match="All tail values are the same"):
        psis_loo_rows(ll, r_eff=1.0)


def test_max_is_numpys_maximum_with_nan_propagated():
    from munirank.checking.psis import _max

    rng = np.random.default_rng(5)
    for n in (1, 7, 8, 9, 4000, 4003):
        a = rng.normal(size=n)
        assert _max(a) == a.max()
        a[n // 2] = np.nan
        assert np.isnan(_max(a))
    assert _max(np.array([-np.inf, -np.inf])) == -np.inf


def test_tail_log_survival_is_log1p_of_the_plotting_positions():
    from munirank.checking.psis import tail_log_survival

    m = 189
    want = [math.log1p(-((j + 0.5) / m)) for j in range(m)]
    # to rounding: the log1p that numba's compiled code calls is not always Python's (a
    # clean checkout's first run differed in the last bit for 69 of these 189 values)
    np.testing.assert_allclose(tail_log_survival(m), want, rtol=1e-14, atol=0)

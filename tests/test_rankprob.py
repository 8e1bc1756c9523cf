import numpy as np
import xarray as xr

from munirank.rankprob import rank_probabilities, rank_probability_kernel


def test_kernel_counts_ranks():
    ranks = np.array([[1, 2, 3], [1, 3, 2], [2, 1, 3], [1, 2, 3]])  # draws x municipalities
    out = rank_probability_kernel(ranks, 3, axis=0)
    np.testing.assert_allclose(out[0], [0.75, 0.25, 0.0])
    np.testing.assert_allclose(out[2], [0.0, 0.25, 0.75])


def test_rank_probabilities_rows_and_columns_sum_to_one():
    rng = np.random.default_rng(2)
    effects = rng.normal(size=(2, 30, 6))
    ranks = xr.DataArray(effects.argsort(-1).argsort(-1) + 1,
                         dims=("chain", "draw", "municipality"),
                         coords={"municipality": list("abcdef")})
    probs = rank_probabilities(ranks)
    assert probs.dims == ("municipality", "rank")
    np.testing.assert_allclose(probs.sum("rank"), 1.0)
    np.testing.assert_allclose(probs.sum("municipality"), 1.0)
    expected = (ranks.sel(municipality="c") == 2).mean()
    assert float(probs.sel(municipality="c", rank=2)) == float(expected)

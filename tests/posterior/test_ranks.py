import numpy as np
import pytest
import xarray as xr

from munirank.posterior.ranks import (
    pairwise_faster,
    rank_draws,
    rank_probabilities,
    rank_probability_kernel,
    summarise_effect,
    summarise_ranks,
)


def _draws(values, names):
    arr = np.asarray(values, float)[None]  # one chain
    return xr.DataArray(arr, dims=("chain", "draw", "municipality"),
                        coords={"municipality": names})


def test_rank_one_is_the_most_negative_effect():
    eff = _draws([[0.5, -2.0, 1.0], [-1.0, 0.0, 3.0]], ["A", "B", "C"])
    r = rank_draws(eff)
    assert r.sel(municipality="B").values.tolist() == [[1, 2]]
    assert r.sel(municipality="C").values.tolist() == [[3, 3]]


def test_summaries_on_hand_made_draws():
    # four draws: A ranks 1,1,2,1; B 2,3,1,2; C 3,2,3,3
    eff = _draws([[-1, 0, 1], [-2, 1, 0], [0, -1, 1], [-3, -2, -1]], ["A", "B", "C"])
    s = summarise_ranks(rank_draws(eff), top_k=1, ci_prob=0.5)
    assert s["rank_mean"].sel(municipality="A") == pytest.approx(1.25)
    assert s["p_top1"].values.tolist() == [0.75, 0.25, 0.0]
    assert s["p_bottom1"].values.tolist() == [0.0, 0.25, 0.75]
    assert s.attrs["ci_prob"] == 0.5
    assert int(s["rank_lo"].sel(municipality="C")) == 2
    assert int(s["rank_hi"].sel(municipality="C")) == 3


def test_top_k_probabilities_sum_to_k():
    rng = np.random.default_rng(1)
    eff = xr.DataArray(rng.normal(size=(2, 300, 30)), dims=("chain", "draw", "municipality"),
                       coords={"municipality": [f"m{i}" for i in range(30)]})
    s = summarise_ranks(rank_draws(eff), top_k=10)
    assert float(s["p_top10"].sum()) == pytest.approx(10.0)
    assert float(s["p_bottom10"].sum()) == pytest.approx(10.0)


def test_subset_ranks_only_named_municipalities():
    eff = _draws([[3.0, -2.0, 1.0, -5.0]], ["A", "B", "C", "D"])
    r = rank_draws(eff, subset=["A", "C"])
    assert r["municipality"].values.tolist() == ["A", "C"]
    assert r.values.ravel().tolist() == [2, 1]


def test_effect_interval_and_pairwise():
    eff = _draws([[0.0, 1.0], [1.0, 0.5], [2.0, 3.0], [3.0, 2.5]], ["A", "B"])
    s = summarise_effect(eff, "effect_months", ci_prob=0.9)
    assert float(s["effect_months_mean"].sel(municipality="A")) == pytest.approx(1.5)
    assert s["effect_months_lo"].sel(municipality="A") < s["effect_months_hi"].sel(municipality="A")
    p = pairwise_faster(eff, ["A", "B"])
    assert float(p.sel(municipality="A", other="B")) == pytest.approx(0.5)  # 0<1, 2<3
    assert float(p.sel(municipality="A", other="A")) == 0.0


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

"""Changes between periods, overlaps of top-k lists and the spread, on synthetic draws."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from munirank.input.spec import spec_from_dict
from munirank.posterior import ranks as rk
from munirank.posterior.changes import (
    change_table,
    overlap_summary,
    spread_summary,
    summary,
)
from munirank.posterior.period_statements import change_lines


def _period(effect: np.ndarray, names: list[str], shrinkage: float = 0.2):
    """(derived, table, spec) of one period from effect draws (chain, draw, municipality)."""
    da = xr.DataArray(effect, dims=("chain", "draw", "municipality"),
                      coords={"municipality": names})
    derived = xr.Dataset({"effect_months": da, "rank": rk.rank_draws(da)})
    table = pd.DataFrame({
        "municipality": names, "n_spells": np.full(len(names), 50),
        "small_cell": np.zeros(len(names), bool),
        "effect_months_mean": da.mean(rk.SAMPLE_DIMS).to_numpy(),
        "rank_mean": derived["rank"].mean(rk.SAMPLE_DIMS).to_numpy(),
        "shrinkage": np.full(len(names), shrinkage)})
    return derived, table, SPEC


SPEC = spec_from_dict({"ranking": {"top_k": 3}, "sampling": {"seed": 3}})
NAMES = [f"K{i:02d}" for i in range(12)]


def _results(a: np.ndarray, b: np.ndarray, names_b: list[str] | None = None,
             shrinkage: float = 0.2):
    return {"2007": _period(a, NAMES, shrinkage), "2009": _period(b, names_b or NAMES,
                                                                   shrinkage)}


def test_change_table_is_computed_draw_by_draw():
    rng = np.random.default_rng(1)
    a = rng.normal(0, 3, (2, 200, 12)) + np.linspace(-6, 6, 12)
    b = a[..., :11] + rng.normal(0, 1, (2, 200, 11)) - 0.5
    table = change_table(_results(a, b, NAMES[:11]), SPEC)
    assert len(table) == 11 and set(table["period_from"]) == {"2007"}  # K11: 2007 only
    row = table.set_index("municipality").loc["K03"]
    change = b[..., 3] - a[..., 3]
    assert row["change_months_mean"] == pytest.approx(change.mean())
    assert row["p_improved"] == pytest.approx((change < 0).mean())
    ra, rb = rk.rank_kernel(a), rk.rank_kernel(b)
    assert row["rank_change_mean"] == pytest.approx((ra[..., 3] - rb[..., 3]).mean())
    assert row["p_top3_both"] == pytest.approx(((ra[..., 3] <= 3) & (rb[..., 3] <= 3)).mean())
    assert row["p_bottom3_both"] == pytest.approx(((ra[..., 3] > 9) & (rb[..., 3] > 8)).mean())
    assert row["p_rank_rose10"] == pytest.approx((ra[..., 3] - rb[..., 3] >= 10).mean())
    lo, hi = np.quantile(change, [0.05, 0.95])
    assert (row["change_months_lo"], row["change_months_hi"]) == pytest.approx((lo, hi))
    assert table.attrs["ci_prob"] == 0.9


def test_unchanged_exact_effects_repeat_every_list_entry():
    """No change and no noise: the lists are the same, in truth and in every reference."""
    fixed = np.broadcast_to(np.linspace(-6, 6, 12), (2, 100, 12)).copy()
    o = overlap_summary(_results(fixed, fixed, shrinkage=0.0), "2007", "2009", SPEC,
                        np.random.default_rng(0))
    for tail in ("top", "bottom"):
        x = o[tail]
        assert x["point_estimates"] == x["posterior_mean_lists"] == 3
        assert x["posterior"]["mean"] == x["no_change"]["mean"] == x["as_fitted"]["mean"] == 3
        assert x["no_change"]["distribution"][-1] == 1.0
        assert x["independent"]["mean"] == pytest.approx(3 * 3 / 12)


def test_noise_alone_lowers_the_overlap_of_point_estimate_lists():
    """True effects the same in both periods, estimated with noise: repeats fall below k."""
    rng = np.random.default_rng(2)
    truth = np.linspace(-2, 2, 12)
    draws = truth + rng.normal(0, 1.5, (2, 400, 12))
    o = overlap_summary(_results(draws, draws.copy()), "2007", "2009", SPEC,
                        np.random.default_rng(0))
    top = o["top"]
    assert top["posterior"]["mean"] == 3  # the same draws: the true lists are the same
    assert top["no_change"]["mean"] < 2.5  # but noisy estimates' lists are not
    assert sum(top["no_change"]["distribution"]) == pytest.approx(1.0, abs=1e-3)
    assert 0 <= top["no_change"]["p_at_least_point_estimates"] <= 1


def test_spread_of_point_estimates_exceeds_the_true_gap_under_noise():
    rng = np.random.default_rng(3)
    draws = np.linspace(-1, 1, 12) + rng.normal(0, 2.0, (2, 400, 12))
    s = spread_summary(_results(draws, draws), "2007", SPEC, np.random.default_rng(0))
    flat = draws.reshape(-1, 12)
    assert s["true_gap_months"]["mean"] == pytest.approx(np.mean(flat.max(1) - flat.min(1)),
                                                         rel=1e-3)
    assert s["estimate_gap_months_under_posterior"]["mean"] > s["true_gap_months"]["mean"]
    means = flat.mean(0)
    assert s["posterior_mean_gap_months"] == pytest.approx(means.max() - means.min(), rel=1e-3)
    assert s["point_estimate_gap_months"] == pytest.approx((means.max() - means.min()) / 0.8,
                                                           rel=1e-3)


def test_integer_summaries_cover_at_least_their_probability():
    s = summary(np.array([0, 1, 1, 2, 2, 2, 3, 3, 9, 10]), 0.8, integer=True)
    assert s["interval"] == [0.0, 10.0] and s["ci_prob"] == 0.8


def test_change_lines_word_the_overlap_and_the_spread():
    rng = np.random.default_rng(1)
    a = rng.normal(0, 3, (2, 200, 12)) + np.linspace(-6, 6, 12)
    results = _results(a, a + rng.normal(0, 1, a.shape))
    from munirank.posterior.changes import periods_summary

    post = xr.Dataset({"rho": (("chain", "draw"), np.full((2, 200), 0.8)),
                       "sigma": (("chain", "draw"), np.full((2, 200), 0.3)),
                       "period_shift_later": (("chain", "draw", "later_period"),
                                              np.zeros((2, 200, 1)))},
                      coords={"later_period": ["2009"]})
    text = "\n".join(change_lines(periods_summary(post, results, SPEC), change_table(results,
                                                                                     SPEC)))
    assert "Of the 3 fastest of 12 in 2007 by point estimates" in text
    assert "If no municipality had truly changed" in text
    assert "Lists drawn at random would share 0.8 (90% interval 0 to 2)" in text
    assert "between the fastest and the slowest of 12" in text
    assert "correlated 0.80 (90% interval 0.80 to 0.80)" in text


def test_three_periods_give_two_consecutive_pairs():
    rng = np.random.default_rng(4)
    draws = [rng.normal(0, 2, (2, 100, 12)) + np.linspace(-5, 5, 12) for _ in range(3)]
    results = {p: _period(d, NAMES) for p, d in zip(("2005", "2007", "2009"), draws,
                                                     strict=True)}
    table = change_table(results, SPEC)
    assert list(table.groupby(["period_from", "period_to"]).size().items()) == [
        (("2005", "2007"), 12), (("2007", "2009"), 12)]

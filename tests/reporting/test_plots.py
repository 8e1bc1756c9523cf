import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from fit_folder import fake_comparison
from munirank.reporting import plots


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(7)
    n = 12
    mean = rng.normal(0, 3, n)
    spells = pd.array(rng.integers(20, 300, n), dtype="Int64")
    spells[0] = pd.NA
    t = pd.DataFrame({"municipality": [f"K{i:02d}" for i in range(n)], "n_spells": spells,
                      "n_events": spells, "small_cell": pd.isna(spells),
                      "effect_months_mean": mean, "effect_months_lo": mean - 2,
                      "effect_months_hi": mean + 2, "rank_mean": mean.argsort().argsort() + 1.0,
                      "p_top3": rng.uniform(size=n), "p_bottom3": rng.uniform(size=n),
                      "p_faster": rng.uniform(size=n)})
    t["rank_lo"] = (t["rank_mean"] - 2).clip(1)
    t["rank_hi"] = (t["rank_mean"] + 2).clip(upper=n)
    return t


def _segments(ax):
    return [c for c in ax.collections if isinstance(c, LineCollection)]


def test_caterpillar_sorted_and_small_marked(table):
    fig = plots.plot_caterpillar(table, ci_prob=0.8, small=80)
    ax = fig.axes[0]
    (lines,) = _segments(ax)
    lows = [seg[0][1] for seg in lines.get_segments()]
    assert np.all(np.diff(lows) >= 0)  # sorted by mean, intervals are mean +/- 2
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["posterior mean, 80 % interval", "fewer than 80 spells"]
    small = ax.collections[2].get_offsets()
    expected = (pd.to_numeric(table["n_spells"]).fillna(0) < 80).sum()
    assert len(small) == expected
    assert [t.get_text() for t in ax.get_xticklabels()][0] == table.loc[
        table["effect_months_mean"].idxmin(), "municipality"]


def test_rank_distribution_draws_given_probabilities():
    probs = xr.DataArray(np.eye(3)[[2, 0, 1]], dims=("municipality", "rank"),
                         coords={"municipality": ["a", "b", "c"], "rank": [1, 2, 3]})
    fig = plots.plot_rank_distribution(probs, order=["b", "c", "a"])
    image = fig.axes[0].images[0].get_array()
    np.testing.assert_array_equal(np.asarray(image), np.eye(3))
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["b", "c", "a"]


def test_top_bottom_bars(table):
    fig = plots.plot_top_bottom(table, top_k=3, n=5)
    top, bottom = fig.axes[:2]
    heights = [p.get_width() for p in top.patches]
    assert len(heights) == 5
    assert heights == sorted(heights)  # largest at the top of a barh chart
    assert max(heights) == pytest.approx(table["p_top3"].max())
    assert max(p.get_width() for p in bottom.patches) == pytest.approx(table["p_bottom3"].max())


def test_shrinkage_one_arrow_per_shown_municipality(table):
    comp = fake_comparison(table.rename(columns={"p_top3": "p_top10",
                                                 "p_bottom3": "p_bottom10"}), top_k=10)
    fig = plots.plot_shrinkage(comp)
    arrows = [t for t in fig.axes[0].texts if t.arrow_patch is not None]
    assert len(arrows) == comp["n_spells"].notna().sum() == len(table) - 1
    assert fig.axes[0].get_xscale() == "log"


def test_funnel_limits_and_groups(table):
    comp = fake_comparison(table.rename(columns={"p_top3": "p_top10",
                                                 "p_bottom3": "p_bottom10"}), top_k=10)
    fig = plots.plot_funnel(comp)
    ax = fig.axes[0]
    ranked, excluded = ax.collections[:2]
    assert len(ranked.get_offsets()) == comp["in_cutoff"].sum()
    assert len(ranked.get_offsets()) + len(excluded.get_offsets()) == len(comp)
    upper = ax.lines[0]
    x, y = upper.get_data()
    np.testing.assert_allclose(np.asarray(y) * np.asarray(x), 1.96)


def test_rank_comparison_only_ranked(table):
    comp = fake_comparison(table.rename(columns={"p_top3": "p_top10",
                                                 "p_bottom3": "p_bottom10"}), top_k=10)
    fig = plots.plot_rank_comparison(comp, ci_prob=0.9)
    (lines,) = _segments(fig.axes[0])
    assert len(lines.get_segments()) == comp["freq_rank"].notna().sum()
    assert "90 % interval" in fig.axes[0].get_legend().get_texts()[0].get_text()


def test_survival_panels_skip_blank_km():
    month = np.arange(5.0)
    rows = []
    for g in ("national", "A"):
        km = [1, 0.9, 0.8, np.nan, np.nan] if g == "A" else [1, 0.9, 0.8, 0.7, 0.6]
        rows.append(pd.DataFrame({"group": g, "month": month, "km": km, "km_lo": km,
                                  "km_hi": km, "at_risk": 10, "pred_mean": 1 - month / 10,
                                  "pred_lo": 1 - month / 8, "pred_hi": 1 - month / 12}))
    fig = plots.plot_survival(pd.concat(rows), ci_prob=0.9)
    axes = [a for a in fig.axes if a.get_visible()]
    assert [a.get_title() for a in axes] == ["national", "A"]
    km_line = axes[1].lines[1]
    y = np.asarray(km_line.get_ydata(), float)
    assert np.isnan(y[3:]).all() and not np.isnan(y[:3]).any()


def test_figure_to_png_is_png(table):
    fig = plots.plot_caterpillar(table)
    assert isinstance(fig, Figure)
    assert plots.figure_to_png(fig).startswith(b"\x89PNG")

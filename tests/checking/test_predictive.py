import numpy as np
import pandas as pd
import pytest
import xarray as xr
from lifelines import KaplanMeierFitter

from conftest import fake_posterior
from munirank.checking import predictive


def test_kaplan_meier_matches_lifelines_and_blanks_small_risk_sets():
    rng = np.random.default_rng(5)
    n = 60
    exit_ = rng.uniform(0.5, 20, n)
    entry = np.where(rng.uniform(size=n) < 0.3, exit_ * 0.4, 0.0)
    event = (rng.uniform(size=n) < 0.7).astype(int)
    grid = np.arange(21.0)
    out = predictive.kaplan_meier(entry, exit_, event, grid, ci_prob=0.9, min_cell=5)
    kmf = KaplanMeierFitter().fit(exit_, event, entry=entry)
    at_risk = ((entry[None] <= grid[:, None]) & (exit_[None] > grid[:, None])).sum(1)
    shown = at_risk >= 5
    assert out["at_risk"].isna().to_numpy().tolist() == (~shown).tolist()
    expected = kmf.survival_function_at_times(grid).to_numpy()
    np.testing.assert_allclose(out["km"].to_numpy()[shown], expected[shown])
    assert out["km"].isna().to_numpy()[~shown].all()
    assert (out["km_lo"][shown] <= out["km"][shown]).all()


def test_predictive_survival_is_weibull_for_one_episode():
    episodes = xr.Dataset(
        {"x": (("episode", "covariate"), np.zeros((1, 0))),
         "z": (("municipality", "municipal_covariate"), np.zeros((1, 0))),
         "episode_municipality": ("episode", np.array(["A"], dtype=object))},
        coords={"municipality": ["A"], "covariate": [], "municipal_covariate": []},
        attrs={"horizon_months": 12.0})
    post = xr.Dataset(
        {"alpha": ("sample", [1.5]), "beta0": ("sample", [0.2]),
         "beta": (("sample", "covariate"), np.zeros((1, 0))),
         "gamma": (("sample", "municipal_covariate"), np.zeros((1, 0))),
         "u": (("sample", "municipality"), [[0.3]])},
        coords={"municipality": ["A"]})
    grid = np.arange(13.0)
    out = predictive.predictive_survival(post, episodes, grid)
    expected = np.exp(-np.exp(0.5) * (grid / 12.0) ** 1.5)
    np.testing.assert_allclose(out["pred_mean"], expected)
    np.testing.assert_allclose(out["pred_lo"], expected)


def test_survival_table_shape_groups_and_thinning(tiny_episodes):
    post = fake_posterior(tiny_episodes, draws=100)
    groups = predictive.survival_groups(tiny_episodes, n_largest=2, named=("M20", "nope"))
    sizes = tiny_episodes["n_spells"].to_series().sort_values(ascending=False)
    assert groups == ["national", *sizes.index[:2], "M20"]
    table = predictive.survival_table(post, tiny_episodes, groups=groups, max_draws=30)
    assert list(table.columns) == predictive.COLUMNS
    assert table.attrs["n_draws"] == 30
    assert len(table) == len(groups) * 49
    national = table[table["group"] == "national"]
    assert national["pred_mean"].iloc[0] == pytest.approx(1.0)
    assert (np.diff(national["pred_mean"]) < 0).all()
    assert (national["pred_lo"] <= national["pred_hi"]).all()
    assert isinstance(table["at_risk"].dtype, pd.Int64Dtype)


def test_thin_draws_even():
    post = xr.Dataset({"a": (("chain", "draw"), np.arange(20.0).reshape(2, 10))})
    thinned = predictive.thin_draws(post, 5)
    assert thinned.sizes["sample"] == 5
    assert thinned["a"].to_numpy().tolist() == [0.0, 5.0, 10.0, 14.0, 19.0]


def test_survival_table_without_municipal_covariates(tiny_dir, tiny_spec):
    """An empty municipal-covariate dim (gamma of size zero) must not break the curves."""
    import dataclasses

    from conftest import fake_posterior
    from munirank.checking import predictive
    from munirank.input.episodes import load_episodes

    spec = dataclasses.replace(tiny_spec, covariates=dataclasses.replace(
        tiny_spec.covariates, municipal=()))
    episodes = load_episodes(tiny_dir / "spells.csv", spec)
    assert episodes.sizes["municipal_covariate"] == 0
    table = predictive.survival_table(fake_posterior(episodes), episodes)
    national = table[table["group"] == "national"]
    assert national["pred_mean"].between(0, 1).all()
    assert national["pred_mean"].is_monotonic_decreasing


def test_split_episodes_give_the_unsplit_curves_when_z_is_constant(split_tiny, tiny_dir):
    """Pieces count by their share of their episode; nationally, persons' first episodes."""
    from munirank.checking.predictive import completion_table, survival_table
    from munirank.input.episodes import load_episodes
    from munirank.input.spec import load_spec

    split = load_episodes(split_tiny / "spells.csv", load_spec(split_tiny / "spec.toml"))
    whole = load_episodes(tiny_dir / "spells.csv", load_spec(split_tiny / "unsplit.toml"))
    post = fake_posterior(whole)
    groups = ["national", "M01", "M20"]
    a = survival_table(post, whole, groups=groups, min_cell=1)
    b = survival_table(post, split, groups=groups, min_cell=1)
    for c in ("km", "at_risk", "pred_mean", "pred_lo", "pred_hi"):
        np.testing.assert_allclose(b[c].astype(float), a[c].astype(float), rtol=1e-10,
                                   err_msg=c)
    a, b = completion_table(post, whole, min_cell=1), completion_table(post, split, min_cell=1)
    for c in ("observed", "pred_mean"):
        np.testing.assert_allclose(b[c].astype(float), a[c].astype(float), rtol=1e-10,
                                   err_msg=c)

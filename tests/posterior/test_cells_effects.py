"""Effects in months of split and nested episodes; a short fit of Danish register extracts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from conftest import fake_posterior
from munirank.cli import run
from munirank.input.episodes import load_episodes
from munirank.input.spec import load_spec
from munirank.posterior.effects import duration_effects, rmst_weibull


def _with_old_effects(post: xr.Dataset, episodes: xr.Dataset, seed: int = 7) -> xr.Dataset:
    """A fake posterior's u_old: its new municipality's u plus noise."""
    parent = episodes["old_parent"].to_numpy()
    u = post["u"].sel(municipality=parent).to_numpy()
    noise = 0.2 * np.random.default_rng(seed).normal(size=u.shape)
    return post.assign(u_old=(("chain", "draw", "old_municipality"), u + noise)).assign_coords(
        old_municipality=episodes["old_municipality"].to_numpy())


def test_split_effects_equal_the_unsplit_when_z_is_constant_over_years(split_tiny, tiny_dir):
    split = load_episodes(split_tiny / "spells.csv", load_spec(split_tiny / "spec.toml"))
    whole = load_episodes(tiny_dir / "spells.csv", load_spec(split_tiny / "unsplit.toml"))
    post = fake_posterior(whole)
    a, b = duration_effects(post, whole), duration_effects(post, split)
    for name in ("observed_months", "expected_months", "effect_months", "log_hr"):
        np.testing.assert_allclose(b[name], a[name], rtol=1e-12, atol=1e-10, err_msg=name)


def test_an_episodes_rmst_is_its_pieces_weighted_by_their_time(split_tiny):
    """Pieces with different years' z: the mean of their RMSTs weighted by time at risk."""
    split = load_episodes(split_tiny / "spells.csv", load_spec(split_tiny / "spec.toml"))
    post = fake_posterior(split, chains=1, draws=3)
    shift = np.random.default_rng(2).normal(size=split.sizes["cell"])  # z varies by year now
    split = split.assign(z_cell=split["z_cell"] + shift[:, None])
    eff = duration_effects(post, split)
    weight = split["piece_weight"].to_numpy()
    cell = split["episode_cell"].to_numpy()
    unit = pd.Index(split["municipality"].to_numpy()).get_indexer(
        split["cell_unit"].to_numpy()[cell])
    d = post.isel(chain=0, draw=1)
    eta = (float(d["beta0"]) + split["x"].to_numpy() @ d["beta"].to_numpy()
           + split["z_cell"].to_numpy()[cell] @ d["gamma"].to_numpy())
    u = d["u"].to_numpy()[unit]
    observed = weight * rmst_weibull(eta + u, float(d["alpha"]), 48.0, 48.0)
    expected = weight * rmst_weibull(eta, float(d["alpha"]), 48.0, 48.0)
    n = split["n_spells"].to_numpy()
    want = (np.bincount(unit, observed) - np.bincount(unit, expected)) / n
    np.testing.assert_allclose(eff["effect_months"].isel(chain=0, draw=1), want, atol=2e-5)


def test_a_new_municipality_is_all_episodes_of_its_old_ones(panel_dk):
    ep = load_episodes(panel_dk / "spells.csv", load_spec(panel_dk / "spec.toml"))
    post = _with_old_effects(fake_posterior(ep), ep)
    eff = duration_effects(post, ep)
    assert eff["effect_months"].dims == ("chain", "draw", "municipality")
    assert eff["effect_months_old"].dims == ("chain", "draw", "old_municipality")
    parent = ep["old_parent"].to_numpy()
    for name in ("observed_months", "expected_months"):
        total_old = (eff[f"{name}_old"] * ep["n_spells_old"]).groupby(
            xr.DataArray(parent, dims="old_municipality", name="municipality")).sum()
        total_new = eff[name] * ep["n_spells"]
        np.testing.assert_allclose(total_old.transpose(*total_new.dims), total_new, rtol=1e-10)
    # each episode carries its own old municipality's effect, not the new one's
    same = post.assign(u_old=post["u"].sel(municipality=xr.DataArray(
        parent, dims="old_municipality")).drop_vars("municipality"))
    assert not np.allclose(duration_effects(same, ep)["effect_months"], eff["effect_months"])
    np.testing.assert_array_equal(eff["log_hr_old"], post["u_old"])


def test_short_fit_of_danish_register_extracts_writes_new_and_old_tables(panel_dk, tmp_path):
    """Split at years, by-year unemployment, old municipalities in new: files and shapes."""
    out = tmp_path / "fit"
    assert run(["fit", str(panel_dk / "spells.csv"), "--spec", str(panel_dk / "spec.toml"),
                "--out", str(out), "--draws", "100", "--tune", "150", "--chains", "2",
                "--quiet", "--allow-unconverged", "--min-cell", "1"]) == 0
    spells = pd.read_csv(panel_dk / "spells.csv", dtype={"kommune": str})
    table = pd.read_csv(out / "municipalities.csv")
    assert sorted(table["municipality"]) == sorted(set(spells["kommune_new"]))
    assert table["n_spells"].sum() == spells["forloeb"].nunique()
    assert table["n_events"].sum() == spells["haendelse"].sum()
    assert table["p_top3"].sum() == pytest.approx(3.0)
    old = pd.read_csv(out / "old_municipalities.csv")
    assert sorted(old["old_municipality"]) == sorted(set(spells["kommune"]))
    parent = spells.drop_duplicates("kommune").set_index("kommune")["kommune_new"]
    assert (old["municipality"] == old["old_municipality"].map(parent)).all()
    assert old["n_spells"].sum() == spells["forloeb"].nunique()
    assert {"effect_months_mean", "log_hr_mean", "log_hr_vs_new_mean", "shrinkage",
            "p_faster"} <= set(old.columns) and "rank_mean" not in old
    covs = pd.read_csv(out / "covariates.csv")
    assert covs["covariate"].tolist() == ["mand", "alder", "ledighed"]
    tree = xr.open_datatree(out / "posterior.nc")
    for node in tree.subtree:
        assert not {"episode", "cell"} & set(node.dataset.dims)
    post = tree["posterior"].dataset
    assert post["u_old"].dims == ("chain", "draw", "old_municipality")
    assert post["u"].sizes["municipality"] == len(table)
    assert "effect_months_old" in tree["derived"].dataset
    survival = pd.read_csv(out / "survival.csv")
    assert survival["group"].iloc[0] == "national" and survival["pred_mean"].notna().all()
    run_info = json.loads((out / "run.json").read_text())
    assert run_info["spec"]["data"]["parent"] == "kommune_new"

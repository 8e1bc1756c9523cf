"""A short fit with measurement periods end to end: every period's tables, changes, words."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import xarray as xr


def test_municipalities_csv_has_every_period_in_long_form(period_fit):
    table = pd.read_csv(period_fit / "municipalities.csv", dtype={"municipality": str,
                                                                  "period": str})
    assert list(table.columns[:2]) == ["municipality", "period"]
    assert len(table) == 39 and set(table["period"]) == {"2007", "2009"}
    assert table[table["municipality"] == "M20"]["period"].tolist() == ["2009"]
    for _, rows in table.groupby("period"):
        n = len(rows)
        assert rows["rank_mean"].between(1, n).all() and rows["rank_mean"].is_monotonic_increasing
        assert rows["rank_mean"].mean() == pytest.approx((n + 1) / 2)
        assert rows["p_top5"].sum() == pytest.approx(5.0)
    assert {"effect_months_mean", "effect_months_lo", "shrinkage", "small_cell"} <= set(table)


def test_changes_csv_and_periods_json(period_fit):
    changes = pd.read_csv(period_fit / "changes.csv", dtype={"municipality": str})
    assert len(changes) == 19 and "M20" not in set(changes["municipality"])
    assert {"change_months_mean", "change_months_lo", "change_months_hi", "p_improved",
            "rank_change_mean", "p_rank_rose10", "p_top5_both", "p_bottom5_both",
            "n_spells_from", "n_spells_to", "converged"} <= set(changes)
    assert changes["p_top5_both"].sum() <= 5.0 + 1e-9
    assert (changes["change_months_lo"] <= changes["change_months_hi"]).all()
    summary = json.loads((period_fit / "periods.json").read_text())
    assert summary["periods"] == ["2007", "2009"] and summary["structure"] == "shared"
    (o,) = summary["overlap"]
    assert (o["from"], o["to"], o["top_k"], o["n_common"]) == ("2007", "2009", 5, 19)
    for tail in ("top", "bottom"):
        assert 0 <= o[tail]["point_estimates"] <= 5
        assert len(o[tail]["no_change"]["distribution"]) == 6
    assert [s["period"] for s in summary["spread"]] == ["2007", "2009"]
    assert summary["spread"][0]["true_gap_months"]["ci_prob"] == 0.9
    assert set(summary["period_shift_log_hr"]) == {"2007", "2009"}


def test_statements_and_ranking_files_per_period(period_fit):
    text = (period_fit / "statements.txt").read_text()
    assert "Period 2007:" in text and "Period 2009:" in text
    assert "Changes between periods" in text and "If no municipality had truly changed" in text
    assert "Lists drawn at random would share" in text
    assert "between the fastest and the slowest" in text
    for name in ("credible_sets.csv", "tiers.csv", "rank_probabilities.csv"):
        table = pd.read_csv(period_fit / name)
        assert table.columns[0] == "period" and set(table["period"]) == {2007, 2009}
    with xr.open_datatree(period_fit / "posterior.nc") as tree:
        derived = tree["derived"].dataset
        assert derived["effect_months"].dims == ("period", "chain", "draw", "municipality")
        assert {"u_cell", "period_shift_later", "rho", "sigma_period"} <= set(
            tree["posterior"].dataset)


def test_ar1_structure_fits_end_to_end(periods_dir, tmp_path):
    import tomli_w

    from munirank.cli import run
    from munirank.input.spec import load_spec, spec_to_dict

    spec = spec_to_dict(load_spec(periods_dir / "spec.toml"))
    spec["model"]["periods"] = "ar1"
    spec["data"]["municipal_table"] = str(periods_dir / "municipal.csv")
    (tmp_path / "ar1.toml").write_text(tomli_w.dumps(spec))
    out = tmp_path / "fit"
    assert run(["fit", str(periods_dir / "spells.csv"), "--spec", str(tmp_path / "ar1.toml"),
                "--out", str(out), "--draws", "100", "--tune", "100", "--chains", "2",
                "--allow-unconverged", "--quiet"]) == 0
    summary = json.loads((out / "periods.json").read_text())
    assert summary["structure"] == "ar1" and "sigma_period" not in summary
    assert -1 <= summary["rho"]["interval"][0] <= summary["rho"]["interval"][1] <= 1
    assert len(pd.read_csv(out / "municipalities.csv")) == 39

"""Reanalysis of a published O-E table: pure functions, recovery on simulated tables, CLI."""

from __future__ import annotations

import json
from importlib.resources import files

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from munirank.cli import run
from munirank.errors import InputError
from munirank.established import published as pb

AKF = files("munirank") / "bundled" / "akf2006_table4.csv"


@pytest.fixture(scope="module")
def akf() -> pd.DataFrame:
    raw = pd.read_csv(AKF, dtype={"municipality": str})
    return pb.prepare_table(raw, file=str(AKF))


def test_star_counts_and_bad_stars():
    assert pb.star_counts(pd.Series(["***", None, "*", "", " ** "])).tolist() == [3, 0, 1, 0, 2]
    with pytest.raises(InputError, match=r"column 'stars'.*rows 2"):
        pb.star_counts(pd.Series(["*", "ns", "**"]), file="t.csv")


def test_stars_from_z_uses_two_sided_thresholds():
    z = np.array([0.0, 1.28, 1.29, 1.65, -1.97, 5.0])
    assert pb.stars_from_z(z).tolist() == [0, 0, 1, 2, 3, 3]


def test_se_from_p_inverts_the_two_sided_test():
    effect = np.array([2.0, -1.0, 0.0, 1.0])
    se = pb.se_from_p(effect, np.array([0.05, 0.2, 0.5, 1.0]))
    assert se[0] == pytest.approx(2.0 / 1.959964)
    assert se[1] == pytest.approx(1.0 / stats.norm.ppf(0.9))
    assert np.isnan(se[2]) and np.isnan(se[3])  # undefined: inferred instead


def test_star_bins_contain_the_true_se():
    rng = np.random.default_rng(4)
    se = np.exp(rng.normal(0, 0.5, 200))
    effect = rng.normal(0, 2, 200)
    lower, upper = pb.star_bins(effect, pb.stars_from_z(effect / se))
    assert np.all((lower < np.log(se)) & (np.log(se) <= upper))


def test_se_sources_prefer_se_then_p():
    table = pd.DataFrame({"effect": [1.0, 1.0, 1.0], "p": [0.05, np.nan, 0.05],
                          "se": [np.nan, np.nan, 3.0]})
    se, inferred = pb.se_sources(table)
    assert inferred.tolist() == [False, True, False]
    assert se[2] == 3.0 and se[0] == pytest.approx(1 / 1.959964)


def test_akf_table_checks_find_kjellerup_only(akf):
    checks = pb.table_checks(akf)
    flagged = checks[checks["flag"]]
    assert flagged["municipality"].tolist() == ["Kjellerup"]
    row = flagged.iloc[0]
    assert row["check"] == "effect_vs_observed_minus_expected"
    assert row["value"] - row["expected"] == pytest.approx(-0.01, abs=1e-9)


def test_star_checks_on_akf_flag_inconsistent_stars(akf):
    draws = np.full(100, 10.0)
    checks = pb.star_checks(akf, draws, np.full(100, 0.35))
    assert len(checks) == 72
    flagged = set(checks.loc[checks["flag"], "municipality"])
    assert "København" in flagged  # ** with 1261 events would need kappa ~ 19
    assert "Grindsted" not in flagged  # *** by a wide margin


@pytest.mark.parametrize(("change", "column", "message"), [
    (lambda d: d.drop(columns="n_spells"), "n_spells", "missing column"),
    (lambda d: d.assign(effect_months=d["effect_months"].astype(object).where(
        d.index != 4, "n/a")), "effect_months", "not a number"),
    (lambda d: d.assign(completed_pct=d["completed_pct"].where(d.index != 0, 120)),
     "completed_pct", r"\(0, 100\]"),
    (lambda d: d.drop(columns="stars"), None, "stars, p-values or standard errors"),
])
def test_bad_input_names_file_column_rows(change, column, message):
    raw = change(pd.read_csv(AKF, dtype={"municipality": str}))
    with pytest.raises(InputError, match=message) as err:
        pb.prepare_table(raw, file="akf.csv")
    assert "akf.csv" in str(err.value)
    if column:
        assert column in str(err.value)


def test_column_mapping(akf):
    raw = pd.read_csv(AKF, dtype={"municipality": str}).rename(
        columns={"effect_months": "effektmaal", "municipality": "kommune"})
    table = pb.prepare_table(raw, {"effect": "effektmaal", "municipality": "kommune"})
    pd.testing.assert_series_equal(table["effect"], akf["effect"])
    with pytest.raises(InputError, match="no column 'nope'"):
        pb.prepare_table(raw, {"effect": "nope"}, file="akf.csv")


def test_simulated_table_is_consistent():
    table = pb.simulate_table(50, seed=2)
    z = table["effect_months"] / table["true_se"]
    assert (table["stars"].str.len() == pb.stars_from_z(z)).all()
    assert set(pb.table_checks(pb.prepare_table(table))["flag"]) == {False}


def test_recovery_on_a_simulated_table(tmp_path):
    """kappa recovered; 90 % intervals of the true effects cover at about the nominal rate."""
    truth = pb.simulate_table(120, kappa=10.0, omega=0.3, tau=1.5, seed=5)
    result = pb.reanalyse(truth.drop(columns=["true_effect", "true_se"]), out=tmp_path / "r",
                          draws=500, tune=500, chains=2, seed=5, progressbar=False)
    k = result.kappa["kappa"]
    assert k["lo"] < 10.0 < k["hi"]
    assert k["median"] == pytest.approx(10.0, rel=0.1)
    table = result.municipalities.set_index("municipality").loc[truth["municipality"]]
    covered = ((table["effect_months_lo"].to_numpy() <= truth["true_effect"].to_numpy())
               & (truth["true_effect"].to_numpy() <= table["effect_months_hi"].to_numpy()))
    assert 0.8 <= covered.mean() <= 0.98
    assert result.diagnostics["divergences"] == 0
    assert result.diagnostics["rhat_max"] < 1.05


def test_cli_on_the_akf_table(tmp_path, capsys):
    out = tmp_path / "akf"
    code = run(["reanalyse", str(AKF), "--out", str(out), "--draws", "300", "--tune", "300",
                "--chains", "2", "--quiet", "--allow-unconverged"])
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [".munirank.json", "checks.csv", "diagnostics.json", "kappa.json",
                     "municipalities.csv", "run.json"]
    table = pd.read_csv(out / "municipalities.csv", keep_default_na=False)
    assert len(table) == 72
    assert {"published_rank", "published_stars", "se_inferred", "se_mean", "p_top10",
            "p_bottom10", "rank_lo", "rank_hi", "shrinkage"} <= set(table.columns)
    kappa = json.loads((out / "kappa.json").read_text())
    assert 5 < kappa["kappa"]["median"] < 20
    assert "kappa =" in capsys.readouterr().out


def test_cli_bad_column_exit_2_nothing_written(tmp_path, capsys):
    out = tmp_path / "akf"
    code = run(["reanalyse", str(AKF), "--out", str(out), "--col-effect", "effekt"])
    assert code == 2
    err = capsys.readouterr().err
    assert "akf2006_table4.csv" in err and "effekt" in err and "\n" not in err.strip()
    assert not out.exists()

"""munirank compare: the comparison table, its flags, truth scores and the CLI on tiny."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from munirank.cli import run
from munirank.established import comparison as cmp

K = 2


def _freq() -> pd.DataFrame:
    """Five municipalities; E is dropped by the cut-off."""
    return pd.DataFrame({
        "municipality": list("ABCDE"), "n_spells": [200, 150, 120, 100, 30],
        "n_events": [150, 100, 90, 60, 3], "freq_estimable": [True] * 5,
        "freq_log_hr": [0.5, 0.3, 0.0, -0.4, 0.8], "freq_log_hr_se": [0.1] * 5,
        "freq_effect_months": [-6.0, -3.0, 0.0, 5.0, -9.0], "freq_se": [1.0, 2.0, 1.0, 1.0, 6.0],
        "freq_p": [0.001, 0.13, 1.0, 0.001, 0.13], "freq_stars": ["***", "*", "", "***", "*"],
        "in_cutoff": [True, True, True, True, False],
        "freq_rank": pd.array([1, 2, 3, 4, pd.NA], dtype="Int64"),
        "freq_rank_all": pd.array([2, 3, 4, 5, 1], dtype="Int64"),
    })


def _bayes() -> pd.DataFrame:
    return pd.DataFrame({
        "municipality": list("EABCD"), "n_spells": pd.array([30, 200, 150, 120, 100], "Int64"),
        "n_events": pd.array([pd.NA, 150, 100, 90, 60], "Int64"),
        "small_cell": [True, False, False, False, False],
        "effect_months_mean": [-4.0, -5.0, -1.0, 0.5, 4.0],
        "effect_months_lo": [-9.0, -7.0, -4.0, -1.0, 2.0],
        "effect_months_hi": [1.0, -3.0, 2.0, 2.0, 6.0],
        "rank_mean": [1.6, 1.5, 2.9, 4.0, 5.0], "rank_lo": [1, 1, 2, 3, 5],
        "rank_hi": [3, 2, 4, 5, 5], f"p_top{K}": [0.7, 0.9, 0.3, 0.05, 0.0],
        f"p_bottom{K}": [0.05, 0.0, 0.1, 0.6, 1.0], "p_faster": [0.85, 1.0, 0.6, 0.3, 0.0],
    })


@pytest.fixture
def comparison():
    return cmp.comparison_table(_freq(), _bayes(), top_k=K)


def test_comparison_columns_and_flags(comparison):
    c = comparison.set_index("municipality")
    assert list(comparison.columns[:4]) == ["municipality", "n_spells", "n_events", "small_cell"]
    assert {"bayes_rank_hi", f"p_top{K}", "flag_excluded_but_extreme"} <= set(comparison.columns)
    # B is starred fast (p < 0.20) and ranked, but P(faster) = 0.6
    assert c["flag_starred_fast_not_credible"].tolist() == [False, True, False, False, False]
    # B is frequentist top 2 with P(top 2) = 0.3
    assert c[f"flag_top{K}_not_credible"].to_dict() == dict(A=False, B=True, C=False, D=False,
                                                           E=False)
    # E is dropped by the cut-off, yet in the top 2 with probability 0.7
    assert c.loc["E", "flag_excluded_but_extreme"]
    assert comparison["municipality"].tolist() == list("ABCDE")  # frequentist rank, NA last
    assert pd.isna(c.loc["E", "n_events"])  # blanked counts come through


def test_truth_scores_count_top_k_and_rmse(comparison):
    truth = pd.DataFrame({"municipality": list("ABCDE"), "true_rank": [2, 3, 4, 5, 1],
                          "true_effect_months": [-5.0, -1.0, 1.0, 4.0, -8.0]})
    scores = cmp.truth_scores(comparison, _freq(), truth)
    assert scores["bayes"]["top_k_found"] == 2            # E and A
    assert scores["frequentist"]["top_k_found"] == 1      # A and B; E cut off
    assert scores["frequentist_no_cutoff"]["top_k_found"] == 2
    assert scores["frequentist"]["rmse_common"] == pytest.approx(
        np.sqrt(np.mean([1, 4, 1, 1, 1])))
    assert scores["bayes"]["rmse_in_cutoff"] == pytest.approx(np.sqrt(np.mean([0, 0, 0.25, 0])))
    text = cmp.summary_text(comparison, _freq(), cutoff=80, fit_seconds=1.0, truth=scores)
    assert "1 of 2 frequentist top-2" in text and "cut-off dropped 1" in text
    assert "Bayesian 2, frequentist 1" in text


def test_compare_cli_on_tiny(tiny_dir, tmp_path, capsys):
    out = tmp_path / "cmp"
    code = run([
        "compare", str(tiny_dir / "spells.csv"), "--spec", str(tiny_dir / "spec.toml"),
        "--out", str(out), "--draws", "100", "--tune", "200", "--chains", "2", "--quiet",
        "--allow-unconverged", "--min-cell", "10"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Rank correlation" in printed and "Against the simulated truth" in printed
    for name in ("municipalities.csv", "posterior.nc", "frequentist.csv", "comparison.csv",
                 "comparison_summary.txt", "truth_scores.json"):
        assert (out / name).is_file(), name
    assert not (out / "_fit").exists()
    comp = pd.read_csv(out / "comparison.csv", dtype={"municipality": str})
    assert len(comp) == 20
    assert comp["in_cutoff"].sum() == 11  # tiny: 11 municipalities have more than 80 spells
    assert sorted(comp["freq_rank"].dropna().astype(int)) == list(range(1, 12))
    # --min-cell 10 blanks the one municipality with fewer than 10 spells, in both tables
    assert comp["n_spells"].isna().sum() == 1 and comp["small_cell"].any()
    freq = pd.read_csv(out / "frequentist.csv")
    assert freq["n_spells"].isna().sum() == 1 and "freq_observed_months" in freq
    scores = json.loads((out / "truth_scores.json").read_text())
    assert 0 <= scores["frequentist"]["top_k_found"] <= scores["top_k"] == 5
    assert scores["frequentist"]["rmse_common"] > 0


def test_compare_bad_input_writes_nothing(tiny_dir, tmp_path, capsys):
    out = tmp_path / "cmp"
    bad = tmp_path / "spells.csv"
    pd.read_csv(tiny_dir / "spells.csv").drop(columns=["event"]).to_csv(bad, index=False)
    code = run(["compare", str(bad), "--spec", str(tiny_dir / "spec.toml"), "--out", str(out)])
    assert code == 2
    assert not out.exists()
    assert "event" in capsys.readouterr().err

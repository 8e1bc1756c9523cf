"""Slow: a default fit of ``dk-two-periods`` recovers its correlated truth."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import munirank


@pytest.mark.slow
def test_two_period_fit_recovers_effects_correlation_and_changes(tmp_path):
    data = munirank.simulate("dk-two-periods", seed=2, out=tmp_path / "data")
    result = munirank.fit(data / "spells.csv", spec=data / "spec.toml", out=tmp_path / "fit",
                          progressbar=False)
    assert result.converged
    truth = pd.read_csv(data / "truth.csv", dtype={"municipality": str, "period": str})
    table = result.municipalities.merge(truth, on=["municipality", "period"])
    assert len(table) == len(truth) == 271 + 268
    for _, rows in table.groupby("period"):
        rho = stats.spearmanr(rows["true_effect_months"], rows["effect_months_mean"])[0]
        assert rho > 0.7
    covered = ((table["true_log_hr"] >= table["log_hr_lo"])
               & (table["true_log_hr"] <= table["log_hr_hi"])).mean()
    assert 0.8 <= covered <= 0.98  # 90 % intervals
    # the correlation between periods: the truth's own (about 0.8) within three posterior SDs
    wide = truth.pivot(index="municipality", columns="period", values="true_log_hr").dropna()
    rho_true = np.corrcoef(wide["2007"], wide["2009"])[0, 1]
    rho = result.tree["posterior"]["rho"].to_numpy().ravel()
    assert abs(rho.mean() - rho_true) < 3 * rho.std()
    changes = pd.read_csv(tmp_path / "fit" / "changes.csv", dtype={"municipality": str})
    true_changes = pd.read_csv(data / "truth_changes.csv", dtype={"municipality": str})
    both = changes.merge(true_changes, on="municipality")
    covered = ((both["true_change_months"] >= both["change_months_lo"])
               & (both["true_change_months"] <= both["change_months_hi"])).mean()
    assert 0.8 <= covered <= 0.98
    # P(improved) and P(top 10 in both) beat the base rate (Brier)
    for p, y in (("p_improved", "true_improved"), ("p_top10_both", "true_top10_both")):
        obs = both[y].astype(float)
        assert np.mean((both[p] - obs) ** 2) < np.mean((obs.mean() - obs) ** 2)
    summary = json.loads((tmp_path / "fit" / "periods.json").read_text())
    assert summary["overlap"][0]["top"]["no_change"]["ci_prob"] == 0.9

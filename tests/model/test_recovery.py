"""Slow: a real default fit of the tiny register recovers the truth."""

import numpy as np
import pytest
from scipy import stats

import munirank


@pytest.mark.slow
def test_tiny_fit_recovers_truth(tmp_path, tiny_dir):
    result = munirank.fit(tiny_dir / "spells.csv", spec=tiny_dir / "spec.toml",
                          out=tmp_path / "fit", progressbar=False)
    assert result.converged
    truth = munirank.read_truth(tiny_dir / "spells.csv")
    merged = result.municipalities.merge(truth, on="municipality")
    rho = stats.spearmanr(merged["true_effect_months"], merged["effect_months_mean"])[0]
    assert rho > 0.8
    covered = ((merged["true_log_hr"] >= merged["log_hr_lo"])
               & (merged["true_log_hr"] <= merged["log_hr_hi"])).mean()
    assert covered >= 0.75  # 90 % intervals, 20 municipalities
    covs = result.covariates.set_index("covariate")
    # male: true log HR 0.4 per unit; the table is per SD (sd of a 0/1 dummy ~ 0.5)
    male = covs.loc["male"]
    assert male["log_hr_lo"] < 0.4 * male["sd"] < male["log_hr_hi"]
    assert np.isclose(merged["p_top5"].sum(), 5.0)

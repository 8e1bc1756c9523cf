"""munirank fit with competing outcomes ([data] outcome), end to end, in a user's own names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

import munirank

OUTCOME_FILES = ("municipalities.csv", "outcomes.csv", "outcome_correlations.csv",
                 "incidence.csv", "covariates.csv", "statements.txt", "posterior.nc")


@pytest.fixture(scope="module")
def short_fit(outcomes_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("outcome_fit") / "fit"
    munirank.fit(outcomes_dir / "spells.csv", spec=outcomes_dir / "spec.toml", out=out,
                 draws=60, tune=60, chains=2, progressbar=False)
    return out


def test_fit_writes_the_outcome_tables(short_fit, outcome_episodes):
    names = {p.name for p in short_fit.iterdir()}
    assert set(OUTCOME_FILES) <= names and "survival.csv" not in names
    table = pd.read_csv(short_fit / "outcomes.csv", dtype={"kommune": str})
    n_m = outcome_episodes.sizes["municipality"]
    assert table["outcome"].unique().tolist() == ["selvforsoergelse", "uddannelse"]
    assert len(table) == 2 * n_m
    for _, part in table.groupby("outcome"):
        assert part["p_top5"].sum() == pytest.approx(5.0)
    combined = pd.read_csv(short_fit / "municipalities.csv")
    per = table.groupby("municipality")["effect_months_mean"].sum()
    merged = combined.set_index("municipality")["effect_months_mean"]
    assert np.allclose(per.loc[merged.index], merged)  # the means of a sum
    corr = pd.read_csv(short_fit / "outcome_correlations.csv")
    assert corr.loc[corr["parameter"] == "rho", "term"].tolist() == [
        "selvforsoergelse~uddannelse"]
    incidence = pd.read_csv(short_fit / "incidence.csv")
    assert set(incidence["outcome"]) == {"selvforsoergelse", "uddannelse"}


def test_fit_outputs_hold_no_per_person_data(short_fit):
    tree = xr.open_datatree(short_fit / "posterior.nc")
    dims = {d for node in tree.subtree for d in node.dataset.dims}
    assert "episode" not in dims and "outcome" in dims
    assert "effect_months_outcome" in tree["derived"].dataset
    table = pd.read_csv(short_fit / "outcomes.csv")
    shown = table["n_events_outcome"].dropna()
    assert (shown >= 5).all()


@pytest.mark.slow
def test_outcome_fit_recovers_both_outcomes(outcomes_dir, tmp_path):
    result = munirank.fit(outcomes_dir / "spells.csv", spec=outcomes_dir / "spec.toml",
                          out=tmp_path / "fit", progressbar=False)
    assert result.converged
    table = pd.read_csv(tmp_path / "fit" / "outcomes.csv", dtype={"municipality": str})
    truth = pd.read_csv(outcomes_dir / "truth_outcomes.csv", dtype={"kommune": str}).rename(
        columns={"kommune": "municipality"})
    merged = table.merge(truth, on=["municipality", "outcome"])
    for label, part in merged.groupby("outcome"):
        rho = stats.spearmanr(part["true_effect_months"], part["effect_months_mean"])[0]
        assert rho > 0.7, label
        covered = ((part["true_log_hr"] >= part["log_hr_lo"])
                   & (part["true_log_hr"] <= part["log_hr_hi"])).mean()
        assert covered >= 0.75, label
    post = result.tree["posterior"].dataset
    lo, hi = np.quantile(post["alpha"].sel(outcome="uddannelse"), [0.05, 0.95])
    assert lo < 0.9 < hi


def test_report_shows_the_outcomes_side_by_side(short_fit, tmp_path):
    from munirank.reporting.html import report

    html = report(short_fit, out=tmp_path / "report.html", progress=False).read_text()
    assert 'id="outcomes"' in html and 'href="#outcomes"' in html
    assert "selvforsoergelse" in html and "uddannelse" in html
    assert "Correlation of the municipality effects" in html


def test_statements_per_outcome(short_fit):
    text = (short_fit / "statements.txt").read_text()
    assert "Among all" in text
    assert "Outcome 'selvforsoergelse', among all" in text
    assert "Outcome 'uddannelse', among all" in text
